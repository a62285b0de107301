#!/usr/bin/env bash
# Builds the container images (run through deploy/podman-env; `make images` does both):
#   deploy/images/build.sh            the local Debian base, then every image on it
#   deploy/images/build.sh gpu        the GPU Triton image (needs NGC's tritonserver image)
# BASE_IMAGE picks another base (e.g. docker.io/library/python:3.11-slim-bookworm) and skips
# the local one. Needs `make proto models console` first (stubs are rebuilt inside; the models and
# the console's built app are copied).
# Tags (compose.yaml's defaults; deploy/compose/standins.env names the stand-ins):
#   localhost/facegrid:latest              api_svc, embed_svc, admin_svc (command picks one)
#   localhost/facegrid-console:latest      the web console's server with the app `make console` built
#   localhost/facegrid-triton-cpu:latest   Triton on CPU with triton_models/
#   localhost/facegrid-envoy:latest        stand-in for envoyproxy/envoy
#   localhost/facegrid-postgres:latest     stand-in for pgvector/pgvector
#   localhost/facegrid-triton-gpu:latest   (gpu) NGC tritonserver with build/triton_models_gpu
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
here=deploy/images
local_base=localhost/facegrid-base:bookworm
base=${BASE_IMAGE:-$local_base}

args=(--network host --layers)
# pip inside the build shares the host's pip cache: wheels `make venv` downloaded are not
# downloaded again.
pip_cache=${PIP_CACHE_DIR:-$(python3 -m pip cache dir 2>/dev/null || echo "$HOME/.cache/pip")}
mkdir -p "$pip_cache"
args+=(--volume "$pip_cache:/root/.cache/pip")
# pip inside the build trusts the host's CA bundle (HTTPS through an intercepting proxy).
for bundle in "${PIP_CERT:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$bundle" ] && [ -s "$bundle" ]; then
    args+=(--volume "$bundle:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
    break
  fi
done

stamped() {  # each line of stdin, prefixed with the seconds since $1
  local line
  while IFS= read -r line; do printf '%4d %s\n' $((SECONDS - $1)) "$line"; done
}

# Each image's log (build/images/NAME.log) has the seconds since its build started on each line.
build() {  # build TAG CONTAINERFILE [extra args]
  local tag=$1 file=$2 start=$SECONDS log
  log=build/images/${tag##*/}.log
  shift 2
  podman build "${args[@]}" "$@" -f "$file" -t "$tag" . 2>&1 | stamped "$start" > "$log" \
    || { tail -n 40 "$log" >&2; echo "building $tag failed" >&2; exit 1; }
  echo "built $tag ($((SECONDS - start)) s)"
}

mkdir -p build/images
if [ "${1:-}" = gpu ]; then
  test -s build/triton_models_gpu/dlib_resnet/1/model.onnx || { echo "run make models" >&2; exit 1; }
  build localhost/facegrid-triton-gpu:latest "$here/triton-gpu.Containerfile" \
    ${TRITON_GPU_BASE:+--build-arg TRITON_GPU_BASE=$TRITON_GPU_BASE}
  exit 0
fi

test -s gateway/descriptor.pb || { echo "run make proto" >&2; exit 1; }
test -s triton_models/dlib_resnet/1/model.onnx || { echo "run make models" >&2; exit 1; }
test -s console/web/dist/index.html && test -s console/web/dist/openapi.json \
  || { echo "run make console" >&2; exit 1; }
if [ "$base" = "$local_base" ]; then "$here/base.sh" "$local_base"; fi
with_base=(--build-arg "BASE_IMAGE=$base")
# The builds run side by side: they mostly wait on downloads and disk, not on each other.
pids=()
build localhost/facegrid:latest "$here/Containerfile" "${with_base[@]}" & pids+=($!)
build localhost/facegrid-console:latest "$here/console.Containerfile" "${with_base[@]}" & pids+=($!)
build localhost/facegrid-triton-cpu:latest "$here/triton-cpu.Containerfile" "${with_base[@]}" & pids+=($!)
build localhost/facegrid-envoy:latest "$here/envoy.Containerfile" "${with_base[@]}" & pids+=($!)
build localhost/facegrid-postgres:latest "$here/postgres.Containerfile" "${with_base[@]}" & pids+=($!)
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || exit 1
# No `podman image prune` here: it would delete the build stages' layers (untagged), and the next
# run would install every venv again. `deploy/podman-env podman image prune` reclaims the space.
