#!/usr/bin/env bash
# Builds the local Debian base image, a stand-in for python:3.11-slim-bookworm where no registry
# can be reached: debootstrap's minbase bookworm with Python 3.11 (venv, shared libpython: Triton's
# python backend stub links it) and CA certificates, imported into podman as $1 (default
# localhost/facegrid-base:bookworm). The root file system is cached as a tar under build/images/
# (keyed by suite and package list), so a second run only re-imports it. Packages come from the
# Debian mirror apt is configured with (or $DEBIAN_MIRROR). Run through deploy/podman-env.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
image=${1:-localhost/facegrid-base:bookworm}
suite=bookworm
# python3.11-venv's dependencies are spelled out: debootstrap does not resolve them all.
packages=ca-certificates,python3.11,python3.11-venv,python3-distutils,python3-lib2to3,python3-pip-whl,python3-setuptools-whl,libpython3.11
key=$(printf '%s %s\n' "$suite" "$packages" | sha256sum | cut -c1-12)
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
podman import --quiet --change "LABEL facegrid.base=$key" --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3.11"]' "$cache" "$image" >/dev/null
echo "base image $image imported from $cache"
