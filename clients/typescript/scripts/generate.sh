#!/bin/sh
# Regenerates everything derived from the payload models, in this order:
#   1. schema/*.json          python -m broseph.schema (the models in broseph/jobs/)
#   2. src/generated/jobs.ts  node scripts/generate.mjs (camelCase types + the name map)
# CI runs this and fails when `git diff` shows a change: commit what it writes.
# PYTHON picks the interpreter that has broseph installed (default: the repository's .venv).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
if [ ! -x "$python" ] && [ -z "${PYTHON:-}" ]; then python=python3; fi
"$python" -m broseph.schema --out "$here/schema"
node "$here/scripts/generate.mjs"
