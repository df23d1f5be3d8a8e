#!/usr/bin/env bash
# Builds the dcp wheel and runs the Python package's tests (CPU; GPU tests skip with a message).
# Uses a virtual environment under target/pyenv, created on first use (maturin, pytest, numpy,
# torch, transformers and mypy from PyPI: ~5 GB with PyPI torch's NVIDIA wheels), reused while it imports.
# pip runs without its download cache, which would hold a second copy of those wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/pyenv
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    echo "python/test.sh: creating $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --no-cache-dir --upgrade pip
fi
if ! "$VENV/bin/python" -c "import torch, numpy, pytest, transformers, mypy" 2>/dev/null || [ ! -x "$VENV/bin/maturin" ]; then
    free=$(df -Pk "$VENV" | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }')
    echo "python/test.sh: pip install maturin pytest numpy torch transformers mypy into $VENV (~5 GB; ${free} GB free there)"
    "$VENV/bin/pip" install -q --no-cache-dir maturin pytest numpy torch transformers mypy
fi
rm -rf target/pywheels
(cd python && "../$VENV/bin/maturin" build -q -o ../target/pywheels)
"$VENV/bin/pip" install -q --no-cache-dir --force-reinstall --no-deps target/pywheels/dcp-*.whl
# Run from outside the source tree so the installed package (with its extension) is imported.
cd python/tests && "../../$VENV/bin/python" -m pytest -q -rs .
