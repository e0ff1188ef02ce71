#!/usr/bin/env bash
# Make .venv with the exact versions of requirements.lock and the normsweep package in it.
# Safe to rerun: an existing .venv is updated in place. --timm also installs the optional timm
# (requirements-timm.txt), for `arch: "timm:<name>"` models.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet pip==26.3 uv==0.13.10
# uv installs the same pinned wheels as pip, in parallel: measured on 2 cores, a fresh .venv
# in 25-37 s where pip took 150 s. Where uv cannot reach the index (its own TLS and proxy
# settings), pip installs them.
install() {
    .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python "$@" ||
        { echo "uv failed: installing with pip" >&2; .venv/bin/python -m pip install --quiet "$@"; }
}
install -r requirements.lock
if [ "${1:-}" = "--timm" ]; then
    install --no-deps -r requirements-timm.txt
fi
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
.venv/bin/python -c "import normsweep, torch, snakemake; print('normsweep ready: torch', torch.__version__, '| snakemake', snakemake.__version__)"
