#!/usr/bin/env bash
# Deploy an overlay to the cluster of the current kubeconfig, in an order that is safe:
#
#   deploy/deploy.sh <overlay> <image>@sha256:<digest>      (what .github/workflows/ci-cd.yaml runs)
#
# 1. Everything but the Agora workloads (namespace, config, NetworkPolicies, the CloudNativePG
#    Cluster, monitoring objects); wait until the database Cluster is Ready.
# 2. The migration Job alone (the previous one deleted first: a Job's pod template is immutable);
#    wait until it has completed, print its logs and stop if it failed.
# 3. The rest (Deployments, Services, Ingress, HPAs, PDBs); `kubectl rollout status` each
#    Deployment with a timeout. If one does not become ready, `kubectl rollout undo` every
#    Deployment whose revision this run changed, wait for the rollback, and exit non-zero.
#
# Migrations are additive (expand/contract), so the previous release runs against the migrated
# schema and the undo is safe. Objects removed from the manifests are not pruned.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 <overlay> <image>@sha256:<digest>|<image>:<tag>" >&2; exit 2; }
overlay=$1
image=$2
rollout_timeout=${ROLLOUT_TIMEOUT:-300s}
database_timeout=${DATABASE_TIMEOUT:-900s}
migrate_timeout_s=${MIGRATE_TIMEOUT_SECONDS:-600}
deploy_dir=$(cd "$(dirname "$0")" && pwd)
deployments=(agora-command agora-query agora-projector)

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
"$deploy_dir/render.sh" "$overlay" "$image" > "$rendered"
namespace=$(awk '/^namespace:/ {print $2; exit}' "$deploy_dir/k8s/overlays/$overlay/kustomization.yaml")
[ -n "$namespace" ] || { echo "deploy: overlay $overlay sets no namespace" >&2; exit 1; }
k() { kubectl --namespace "$namespace" "$@"; }

echo "deploy: $overlay -> namespace $namespace, image $image"

echo "deploy: step 1/3, infrastructure and configuration"
kubectl apply -f "$rendered" --selector "app.kubernetes.io/component notin (command,query,projector,migrate)"
k wait cluster.postgresql.cnpg.io/agora-db --for=condition=Ready --timeout="$database_timeout"

echo "deploy: step 2/3, migrations"
k delete job agora-migrate --ignore-not-found --wait=true
kubectl apply -f "$rendered" --selector app.kubernetes.io/component=migrate
deadline=$((SECONDS + migrate_timeout_s))
while :; do
  complete=$(k get job agora-migrate -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}')
  failed=$(k get job agora-migrate -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')
  if [ "$complete" = True ]; then break; fi
  if [ "$failed" = True ] || [ $SECONDS -ge $deadline ]; then
    echo "deploy: migration job did not complete; nothing was rolled out" >&2
    k logs job/agora-migrate --all-containers --tail=200 >&2 || true
    exit 1
  fi
  sleep 5
done
k logs job/agora-migrate --all-containers --tail=50 || true

echo "deploy: step 3/3, workloads"
revision() { k get deployment "$1" -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}' 2>/dev/null || true; }
declare -A before
for d in "${deployments[@]}"; do before[$d]=$(revision "$d"); done
kubectl apply -f "$rendered"

failed_rollout=""
for d in "${deployments[@]}"; do
  if ! k rollout status "deployment/$d" --timeout="$rollout_timeout"; then
    failed_rollout="$failed_rollout $d"
  fi
done
if [ -z "$failed_rollout" ]; then
  echo "deploy: $overlay is running $image"
  exit 0
fi

echo "deploy: rollout failed for:$failed_rollout; rolling back" >&2
for d in "${deployments[@]}"; do
  k describe "deployment/$d" | tail -n 20 >&2 || true
  now=$(revision "$d")
  if [ -n "${before[$d]}" ] && [ "$now" != "${before[$d]}" ]; then
    k rollout undo "deployment/$d"
    k rollout status "deployment/$d" --timeout="$rollout_timeout" || echo "deploy: rollback of $d is not healthy either" >&2
  elif [ -z "${before[$d]}" ]; then
    echo "deploy: $d is new in this namespace, nothing to roll back to" >&2
  fi
done
exit 1
