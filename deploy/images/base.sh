#!/usr/bin/env bash
# Builds the local Debian base image (a stand-in for python:3.11-slim-bookworm where no registry
# can be reached): debootstrap's minbase bookworm with CA certificates, imported into podman, then
# Python 3.11 (venv, shared libpython) installed by base.Containerfile; tagged $1 (default
# localhost/facegrid-base:bookworm). The root file system is cached as a tar under build/images/
# (keyed by suite and package list), so a second run only re-imports it. Run through
# deploy/podman-env.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
image=${1:-localhost/facegrid-base:bookworm}
suite=bookworm
packages=ca-certificates
here=$(dirname "$0")
key=$( (printf '%s %s\n' "$suite" "$packages"; cat "$here/base.Containerfile") | sha256sum | cut -c1-12)
cache=$repo/build/images/base-$suite-$key.tar

if podman image exists "$image" \
   && [ "$(podman image inspect --format '{{index .Labels "facegrid.base"}}' "$image")" = "$key" ]; then
  echo "base image $image is current"
  exit 0
fi

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # The mirror apt is configured with (deb822 sources first, then the one-line format).
  mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
           | grep -v security | head -n1 || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi

if [ ! -s "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  rootfs=$(mktemp -d "$repo/build/images/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "debootstrap $suite from $mirror"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -cf "$cache.partial" .
  mv "$cache.partial" "$cache"
fi
podman import --change 'CMD ["/bin/bash"]' "$cache" "localhost/facegrid-debian:$suite" >/dev/null
podman build --network host --label "facegrid.base=$key" --build-arg "DEBIAN=localhost/facegrid-debian:$suite" \
  -f "$here/base.Containerfile" -t "$image" "$here" >/dev/null
echo "base image $image built from $cache"
