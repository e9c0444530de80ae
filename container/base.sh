#!/usr/bin/env bash
# A Debian base image made here, for machines that reach Debian's packages but no container
# registry: debootstrap a minimal bookworm with Python 3.11, then `podman import` it as
# localhost/consentsvc-base:bookworm. Made once per machine; `--force` makes it again.
# Users with a registry build on the official image instead (docs/operations.md).
set -euo pipefail
IMAGE=localhost/consentsvc-base:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ "${1:-}" != --force ] && podman image exists "$IMAGE"; then
  echo "$IMAGE is there"
  exit 0
fi
root=$(mktemp -d /var/tmp/consentsvc-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tzdata \
  bookworm "$root" "$MIRROR" >/dev/null
# What an image needs no copy of: package lists, caches and documentation.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
  "$root"/usr/share/man/*
tar -C "$root" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "$IMAGE made ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
