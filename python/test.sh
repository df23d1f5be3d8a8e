#!/usr/bin/env bash
# Builds the dcp wheel and runs the Python package's tests (CPU; GPU tests skip with a message).
# Uses a virtual environment under target/pyenv, created on first use (maturin, pytest, numpy,
# torch and transformers from PyPI: ~3 GB with PyPI torch's NVIDIA wheels), reused while it imports.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/pyenv
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    echo "python/test.sh: creating $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
if ! "$VENV/bin/python" -c "import torch, numpy, pytest, transformers" 2>/dev/null || [ ! -x "$VENV/bin/maturin" ]; then
    echo "python/test.sh: pip install maturin pytest numpy torch transformers into $VENV"
    "$VENV/bin/pip" install -q maturin pytest numpy torch transformers
fi
rm -rf target/pywheels
(cd python && "../$VENV/bin/maturin" build -q -o ../target/pywheels)
"$VENV/bin/pip" install -q --force-reinstall --no-deps target/pywheels/dcp-*.whl
# Run from outside the source tree so the installed package (with its extension) is imported.
cd python/tests && "../../$VENV/bin/python" -m pytest -q -rs .
