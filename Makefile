# The two commands the README promises: `make run` and `make test`.
.PHONY: setup build run test unit lint image dist clean bench crds e2e

CARGO ?= cargo

setup:
	./scripts/setup.sh

build: setup
	$(CARGO) build --release

# Berth on this machine: its own etcd (data in .berth/, client port 2379) plus a
# controller and an agent for the local Docker engine.
run: build
	./target/release/berth up

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Unit tests and integration tests against a real etcd and the real Docker engine.
test: lint
	$(CARGO) test -- --test-threads=2

# The multi-host end-to-end suite alone (tests/e2e/, also part of `make test`): three
# hosts in network namespaces, each with its own dockerd and agent; needs root.
e2e: setup
	$(CARGO) test --test e2e

unit:
	$(CARGO) test --lib

# Regenerate crds/ from the types in src/spec; tests/crds.rs fails until this is re-run.
crds:
	$(CARGO) run --quiet -- schema crds --out crds

# Berth's own image, berth:<version> and berth:latest, built with no registry: FROM scratch
# with the release binary and the libraries it loads (scripts/image.sh).
image: build
	./scripts/image.sh target/release/berth

# The release tarball, dist/berth-<version>-<arch>-linux.tar.gz, and dist/SHA256SUMS: the
# binary, systemd units and env files, the agent's compose file, crds/, the install notes.
dist: build
	./scripts/dist.sh target/release/berth dist

clean:
	$(CARGO) clean
	rm -rf .berth dist

# Benchmarks (not tests), results in docs/benchmarks.md: the pure scheduler, then
# convergence against raw Docker and docker-compose on the local engine (about 12 minutes),
# then rolling updates against Docker Swarm (a single-node swarm on the local engine, left
# at the end; an engine already in a swarm is refused).
bench:
	./scripts/setup.sh --bench
	$(CARGO) bench --bench scheduler --bench converge --bench rollout
