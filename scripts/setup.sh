#!/usr/bin/env bash
# Installs what Berth needs to build, run and test on a Debian machine, idempotently:
# etcd, busybox (for the test image), protoc (etcd-client's build), prometheus (for the
# metrics test), a Docker registry and htpasswd (for the private-registry tests), Chromium
# and chromedriver (for the web view's browser tests), and a Docker engine if none answers; with --bench, docker-compose too (for `make bench`). Then
# builds the test image.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q "statically" || dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[ -d /usr/include/google/protobuf ] || need+=(libprotobuf-dev)
command -v curl >/dev/null 2>&1 || need+=(curl)
# tests/prometheus.rs scrapes a running controller and agent with a real Prometheus.
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# tests/common/registry.rs runs a real registry with htpasswd (bcrypt) auth, so that tests
# pull private images the way a deployment would.
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
# tests/web.rs drives a real headless Chromium through chromedriver (WebDriver).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# `make bench` (setup.sh --bench) compares Berth with docker-compose; the tests do not.
if [ "${1:-}" = "--bench" ]; then
  command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
fi

docker_ok() { docker info >/dev/null 2>&1; }
if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
  docker_ok || need+=(docker.io)
fi

if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker_ok; then
  echo "setup: no Docker engine answers; starting dockerd"
  $SUDO sh -c 'nohup dockerd >/var/log/berth-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker_ok && break; sleep 1; done
  docker_ok || { echo "setup: dockerd did not start; see /var/log/berth-dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect berth-test/busybox:latest >/dev/null 2>&1; then
  here="$(cd "$(dirname "$0")/.." && pwd)"
  bb="$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || command -v busybox)"
  cp "$bb" "$here/testimage/busybox"
  docker build -q -t berth-test/busybox:latest "$here/testimage" >/dev/null
  rm -f "$here/testimage/busybox"
  echo "setup: built berth-test/busybox:latest"
fi
