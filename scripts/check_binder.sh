#!/usr/bin/env bash
# Build the Binder environment from binder/ the way repo2docker does, in a fresh venv,
# then run notebooks/01-quickstart.ipynb top to bottom with that venv's kernel.
#
#   scripts/check_binder.sh [VENV_DIR]        (default: a new temporary directory)
#
# Steps, as repo2docker's Python buildpack runs them: pip install -r binder/requirements.txt,
# then binder/postBuild from the repository root. Nothing from this machine's site-packages
# is visible in the venv, so a dependency missing from binder/ fails here as on Binder.
#
# PyTorch's CPU index (the --extra-index-url line) is only reachable where the internet
# is. Where it is not, pip retries it five times for every package (many minutes), so
# the line is dropped and torch==2.13.0+cpu must come from pip's find-links (here
# /opt/wheels, through the pip config). BINDER_CHECK_TORCH_INDEX=keep|drop overrides
# the probe (default: auto).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-$(mktemp -d)/venv}
python=${PYTHON:-python3}
start=$(date +%s)
say() { echo "check_binder [$(( $(date +%s) - start ))s]: $*"; }

requirements="$repo/binder/requirements.txt"
index=$(sed -n 's/^--extra-index-url[ =]*\(https:\/\/download\.pytorch\.org[^ ]*\).*/\1/p' "$requirements")
mode=${BINDER_CHECK_TORCH_INDEX:-auto}
if [ "$mode" = auto ] && [ -n "$index" ]; then
    if "$python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=10)" \
        "$index" >/dev/null 2>&1; then
        mode=keep
    else
        mode=drop
    fi
fi
if [ "$mode" = drop ]; then
    filtered=$(mktemp)
    grep -v '^--extra-index-url[ =]*https://download\.pytorch\.org' "$requirements" >"$filtered"
    say "$index is not reachable: installing without it (torch from pip's find-links)"
    requirements=$filtered
fi

say "creating $venv"
"$python" -m venv "$venv"
export PATH="$venv/bin:$PATH"
# What repo2docker's image puts on PATH first is its own environment: so does this.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

say "pip install -r binder/requirements.txt"
python -m pip install -q -r "$requirements"

say "binder/postBuild"
(cd "$repo" && ./binder/postBuild >/dev/null)

say "checking the environment"
python - "$repo" <<'PY'
import os
import sys

import ipylab
import ipywidgets
import jupyterlab
import matplotlib  # noqa: F401
import torch

import repro

assert sys.prefix != sys.base_prefix, "not running in the venv"
assert "+cpu" in torch.__version__, f"torch is not the CPU build: {torch.__version__}"
# postBuild's editable install: repro is this checkout's src/, not a copy.
src = os.path.join(os.path.realpath(sys.argv[1]), "src", "repro")
assert os.path.realpath(repro.__file__).startswith(src), repro.__file__
print(
    f"  python {sys.version.split()[0]} · torch {torch.__version__} · ipywidgets "
    f"{ipywidgets.__version__} · ipylab {ipylab.__version__} · jupyterlab "
    f"{jupyterlab.__version__} · repro {repro.__version__} from {repro.__file__}"
)
PY

say "running notebooks/01-quickstart.ipynb with the venv's kernel"
python - "$repo/notebooks/01-quickstart.ipynb" "$venv" <<'PY'
import os
import sys

import nbformat
from nbclient import NotebookClient

path, venv = sys.argv[1], os.path.realpath(sys.argv[2])
nb = nbformat.read(path, as_version=4)
# First, prove that the kernel is the venv's python and not this machine's.
probe = nbformat.v4.new_code_cell(
    f"import os, sys\nassert os.path.realpath(sys.prefix) == {venv!r}, sys.prefix"
)
nb.cells.insert(0, probe)
client = NotebookClient(
    nb,
    kernel_name="python3",
    timeout=300,
    store_widget_state=False,
    resources={"metadata": {"path": os.path.dirname(path)}},
)
client.execute()
print(f"  {len(nb.cells) - 1} cells ran without error")
PY
say "ok"
