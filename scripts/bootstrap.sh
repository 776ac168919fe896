#!/usr/bin/env bash
# Create (or reuse) one of the project's three tested environments, the
# corners of the supported range:
#
#   scripts/bootstrap.sh [main]   .venv         newest: Python 3.12, torch 2.15,
#                                               numpy 2, mmcv 2.1.0 (C++20)
#                                               (requirements/lock.txt)
#   scripts/bootstrap.sh torch21  .venv-torch21 common: Python 3.11, torch
#                                               2.1.2, mmcv 2.1.0, mmdet 3.3
#                                               (requirements/lock-torch21.txt)
#   scripts/bootstrap.sh oldest   .venv-oldest  oldest: Python 3.8, torch 2.0.1,
#                                               mmcv 2.0.1, mmengine 0.7.1,
#                                               mmdet 3.0.0
#                                               (requirements/lock-oldest.txt)
#
# Every pip call installs under the stack's lock file alone (PIP_CONSTRAINT
# set to it), so a machine-wide pip constraint does not change what a stack
# gets. mmcv is compiled by scripts/build_mmcv.py from its hash-pinned source
# with its C++ ops, with the C++ standard the stack's torch needs; the wheel
# is cached per (mmcv, torch, Python, standard) under
# ${XDG_CACHE_HOME:-~/.cache}/rla_mmdet/mmcv, so a rebuilt environment takes
# a minute or two. An environment is rebuilt only when this script, its lock
# file, requirements/*.txt, setup.py, rla_mmdet/dependencies.py or
# scripts/build_mmcv.py change (their hash is stored in VENV/.rla-stamp).
#
# Environment: RLA_VENV (where to create it), RLA_PYTHON (the interpreter,
# default: pythonX.Y of the stack, found on PATH or in pyenv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
req=$root/requirements
stack=${1:-main}
case "$stack" in
    main)    venv=${RLA_VENV:-$root/.venv};         lock=$req/lock.txt;         pyver=3.12 ;;
    torch21) venv=${RLA_VENV:-$root/.venv-torch21}; lock=$req/lock-torch21.txt; pyver=3.11 ;;
    oldest)  venv=${RLA_VENV:-$root/.venv-oldest};  lock=$req/lock-oldest.txt;  pyver=3.8 ;;
    *)
        echo "usage: $0 [main|torch21|oldest]" >&2
        exit 2 ;;
esac
stamp_file=$venv/.rla-stamp
stamp=$(cat "$0" "$req"/build.txt "$req"/runtime.txt "$req"/tests.txt \
        "$lock" "$root"/setup.py "$root"/rla_mmdet/dependencies.py \
        "$root"/scripts/build_mmcv.py | sha256sum | cut -d' ' -f1)

if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    exit 0
fi

# The stack's interpreter: RLA_PYTHON, pythonX.Y on PATH, or pyenv's newest
# X.Y (pyenv's shims answer only for the selected version).
find_python() {
    if [ -n "${RLA_PYTHON:-}" ]; then
        echo "$RLA_PYTHON"; return
    fi
    if "python$pyver" -c '' >/dev/null 2>&1; then
        command -v "python$pyver"; return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local found
        found=$(ls -d "$(pyenv root)/versions/$pyver".*/bin/"python$pyver" \
                2>/dev/null | sort -V | tail -n 1)
        if [ -n "$found" ]; then
            echo "$found"; return
        fi
    fi
    return 1
}
if ! python=$(find_python); then
    echo "bootstrap: the $stack stack needs Python $pyver, which was not found;" \
         "install it or set RLA_PYTHON=/path/to/python$pyver" >&2
    exit 1
fi
mmcv=$(sed -n 's/^mmcv==//p' "$lock")

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
# Another process may have finished the job while this one waited.
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    exit 0
fi
start=$(date +%s)
echo "bootstrap: creating $venv ($stack: $("$python" -V 2>&1), mmcv $mmcv;" \
     "a first run compiles mmcv's C++ ops: ~10 min on 2 cores)"
rm -rf "$venv"
"$python" -m venv "$venv"
export PIP_CONSTRAINT=$lock PIP_DISABLE_PIP_VERSION_CHECK=1
pip=("$venv/bin/python" -m pip -q)
# Step 1: what mmcv's setup.py imports at build time (torch, setuptools<81).
"${pip[@]}" install -r "$req/build.txt"
# Step 2: mmcv with its ops, compiled for this torch (or taken from the cache).
"$venv/bin/python" "$root/scripts/build_mmcv.py" "$mmcv" --install >/dev/null
# Step 3: the rest of the stack, then this package, editable, so tools/ and
# configs work from the clone.
"${pip[@]}" install --no-build-isolation -r "$req/runtime.txt" -r "$req/tests.txt"
"${pip[@]}" install --no-build-isolation --no-deps -e "$root"
"$venv/bin/python" -m pip check
"$venv/bin/python" - <<'PY'
import torch
from mmcv.ops import RoIAlign, nms
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)[1]
assert keep.tolist() == [0], keep
import mmdet, rla_mmdet  # noqa: F401
print(f'bootstrap: torch {torch.__version__}, mmcv ops OK, rla_mmdet {rla_mmdet.__version__}')
PY
echo "$stamp" > "$stamp_file"
echo "bootstrap: done in $(( $(date +%s) - start )) s"
