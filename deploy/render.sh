#!/usr/bin/env bash
# Render a Kubernetes overlay to stdout, optionally pinning the agora image.
#
#   deploy/render.sh dev                                         # the overlay as committed
#   deploy/render.sh prod ghcr.io/acme/agora@sha256:<digest>     # what CI/CD applies for a release
#   deploy/render.sh dev  ghcr.io/acme/agora:sha-1a2b3c4
#
# The pin is a throw-away kustomization on top of the overlay (so the committed files never
# change), whose `images` entry renames the overlay's image (its `newName`) to the given one.
# Needs only kubectl (`kubectl kustomize`), no separate kustomize binary.
set -euo pipefail

usage() { echo "usage: $0 <overlay> [image[:tag]|image@sha256:digest]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
overlay=$1
image=${2:-}
deploy_dir=$(cd "$(dirname "$0")" && pwd)
overlay_dir=$deploy_dir/k8s/overlays/$overlay
[ -f "$overlay_dir/kustomization.yaml" ] || { echo "render: no overlay named '$overlay' in $deploy_dir/k8s/overlays" >&2; exit 2; }

if [ -z "$image" ]; then
  exec kubectl kustomize "$overlay_dir"
fi

# The name the overlay gives the image: the `newName` of its images entry for `agora`.
current=$(awk '/^images:/ {in_images=1; next} in_images && /newName:/ {print $2; exit}' "$overlay_dir/kustomization.yaml")
[ -n "$current" ] || { echo "render: $overlay_dir/kustomization.yaml has no images[].newName for agora" >&2; exit 1; }

case "$image" in
  *@sha256:*) name=${image%@*}; pin="    digest: ${image#*@}" ;;
  *)
    last=${image##*/}
    if [[ "$last" == *:* ]]; then name=${image%:*}; tag=${last##*:}; else name=$image; tag=""; fi
    [ -n "$tag" ] || { echo "render: '$image' has no tag or digest; refusing an implicit :latest" >&2; exit 1; }
    [ "$tag" != latest ] || { echo "render: refusing the mutable tag :latest; use a version, a commit tag or a digest" >&2; exit 1; }
    pin="    newTag: \"$tag\""
    ;;
esac

# kustomize refuses absolute resource paths: reach the overlay relative to the temporary root.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
relative=$(realpath --relative-to="$work" "$overlay_dir")
cat > "$work/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $relative
images:
  - name: $current
    newName: $name
$pin
YAML
kubectl kustomize "$work"
