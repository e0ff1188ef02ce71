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
.venv/bin/python -m pip install --quiet pip==26.3
.venv/bin/python -m pip install --quiet -r requirements.lock
if [ "${1:-}" = "--timm" ]; then
    .venv/bin/python -m pip install --quiet --no-deps -r requirements-timm.txt
fi
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
.venv/bin/python -c "import normsweep, torch, snakemake; print('normsweep ready: torch', torch.__version__, '| snakemake', snakemake.__version__)"
