#!/usr/bin/env bash
# Offline validation of every manifest in deploy/ and of the CI/CD workflow; see validate.py for
# the list of checks. Needs: bash, python3 with kubernetes-validate (+ PyYAML), kubectl.
# Exit status: 0 valid, 1 problems found, 3 a required tool is missing (the message says how to
# install it).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null 2>&1; then
  echo "validate: MISSING TOOL: python3 (3.9 or newer); install it, e.g. apt-get install python3 python3-pip" >&2
  exit 3
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "validate: MISSING TOOL: kubectl (renders the kustomize overlays); see https://kubernetes.io/docs/tasks/tools/" >&2
  exit 3
fi
exec python3 deploy/validate.py "$@"
