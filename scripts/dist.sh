#!/usr/bin/env bash
# Builds the release tarball: OUT/berth-<version>-<arch>-linux.tar.gz, holding the binary,
# the systemd units and their environment files, the agent's compose file, crds/ and the
# README's install section, plus OUT/SHA256SUMS beside it. Usage: scripts/dist.sh BINARY
# [OUT]; OUT defaults to dist/. What the binary says it is names the tarball, so a debug
# build in a test and the release build in `make dist` go through the same steps.
set -euo pipefail

bin="${1:?usage: scripts/dist.sh BINARY [OUT]}"
out="${2:-dist}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
version="$("$bin" --version | awk '{print $2}')"
arch="$(uname -m)"
name="berth-$version-$arch-linux"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/bin" "$root/systemd" "$root/compose"
install -m 0755 "$bin" "$root/bin/berth"
cp "$repo"/deploy/systemd/*.service "$repo"/deploy/systemd/*.env.example "$root/systemd/"
cp "$repo/deploy/compose/agent.yaml" "$root/compose/"
cp -r "$repo/crds" "$root/crds"
cp "$repo/SECURITY.md" "$root/"
# The README's install section, from its heading to the next one of the same level.
{
  echo "# Installing Berth $version"
  echo
  echo "This tarball holds bin/berth (for $arch Linux with glibc), systemd/, compose/agent.yaml"
  echo "and crds/. The section below is the README's; paths in it are relative to the source"
  echo "tree: deploy/systemd/ is systemd/ here, deploy/compose/ is compose/."
  echo
  awk '/^## Installing on several hosts/{on=1; print; next} on && /^## /{exit} on' "$repo/README.md"
} >"$root/INSTALL.md"
if ! grep -q '^## Installing on several hosts' "$root/INSTALL.md"; then
  echo "dist: README.md has no section '## Installing on several hosts'" >&2
  exit 1
fi

mkdir -p "$out"
tarball="$out/$name.tar.gz"
# Owned by root and dated by the commit, so the same tree gives the same listing.
tar --owner=0 --group=0 --numeric-owner --sort=name \
  --mtime="@$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)" \
  -C "$stage" -czf "$tarball" "$name"
(cd "$out" && sha256sum "$name.tar.gz" >SHA256SUMS)
echo "$tarball"
