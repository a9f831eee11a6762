#!/bin/sh
# The image's install steps (Dockerfile), also run outside any container by tests/test_image.py.
#
#   deploy/install.sh deps VENV   the locked dependencies: broseph's and its production extras'
#   deploy/install.sh app VENV    broseph itself, as a wheel, on top of them
#
# Production extras: every extra in pyproject.toml except `test`, `demo` (the embedded
# Postgres) and `bench` (the benchmarks' baselines), so an extra added there is in the image
# after one `uv lock`.
#
# Run from the repository root (pyproject.toml, uv.lock) with `uv` on PATH. Two steps so that an
# image rebuilt after a code change reuses the dependency layer.
set -eu

step=${1:-}
venv=${2:-}
[ -n "$venv" ] || step=usage

case "$step" in
deps)
    req=$(mktemp)
    # --locked: refuse a uv.lock that no longer matches pyproject.toml (relock: `uv lock`).
    uv export --locked --all-extras --no-extra test --no-extra demo --no-extra bench --no-dev \
        --no-emit-project --no-header --format requirements-txt --output-file "$req" >/dev/null
    python3 -m venv "$venv"
    # Every package pinned and checked against the lock's sha256; wheels only, so no compiler is
    # ever needed; nothing but what the lock lists (--no-deps).
    "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check \
        --require-hashes --only-binary :all: --no-deps --requirement "$req"
    rm -f "$req"
    ;;
app)
    dist=$(mktemp -d)
    # The wheel carries the SQL migrations (pyproject: force-include migrations → broseph/_migrations).
    uv build --quiet --wheel --out-dir "$dist"
    "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check \
        --no-deps --no-index "$dist"/broseph-*.whl
    rm -rf "$dist"
    # Every requirement of broseph and its extras is satisfied by what the lock installed.
    "$venv/bin/pip" check
    ;;
*)
    echo "usage: deploy/install.sh deps|app VENV" >&2
    exit 2
    ;;
esac
