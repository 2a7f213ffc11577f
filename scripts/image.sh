#!/usr/bin/env bash
# Builds Berth's image with no registry: FROM scratch, holding the binary, exactly the
# shared libraries `ldd` says it loads, the CA certificates (TLS to etcd and registries)
# and a non-root user. Usage: scripts/image.sh BINARY [TAG...]; tags default to
# berth:<version> and berth:latest.
set -euo pipefail

bin="${1:?usage: scripts/image.sh BINARY [TAG...]}"
shift
version="$("$bin" --version | awk '{print $2}')"
revision="$("$bin" --version | sed -n 's/.*(rev \(.*\)).*/\1/p')"
# Where the source lives, as this checkout's remote says (no label when it has none).
source="$(git -C "$(dirname "$0")/.." config --get remote.origin.url 2>/dev/null || true)"
tags=("$@")
if [ "${#tags[@]}" -eq 0 ]; then tags=("berth:$version" "berth:latest"); fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$bin" "$root/usr/local/bin/berth"
# The loader and every library, at the paths the binary asks for them.
for lib in $(ldd "$bin" | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# uid 10001, no shell: the agent reaches Docker's socket through its group (docker run
# --group-add "$(stat -c %g /var/run/docker.sock)").
printf 'root:x:0:0:root:/:/sbin/nologin\nberth:x:10001:10001:berth:/:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nberth:x:10001:\n' >"$root/etc/group"

cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/berth"]
LABEL org.opencontainers.image.title="berth" \\
      org.opencontainers.image.version="$version" \\
      org.opencontainers.image.revision="$revision" \\
      org.opencontainers.image.licenses="Apache-2.0"
DOCKERFILE
if [ -n "$source" ]; then
  echo "LABEL org.opencontainers.image.source=\"$source\"" >>"$ctx/Dockerfile"
fi
args=()
for t in "${tags[@]}"; do args+=(-t "$t"); done
if ! out="$(docker build -q "${args[@]}" "$ctx" 2>&1)"; then
  echo "$out" >&2
  exit 1
fi
echo "built ${tags[*]} ($("$bin" --version))"
