#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv.
#
# The environment is rebuilt only when requirements/*.txt or this script
# change (their hash is stored in .venv/.rla-stamp). mmcv has no wheel for
# torch 2.13, so it is compiled from its PyPI source with its C++ ops; pip's
# wheel cache makes every later build of the same version instant.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${RLA_VENV:-$root/.venv}
python=${PYTHON:-python3.11}
req=$root/requirements
stamp_file=$venv/.rla-stamp
stamp=$(cat "$0" "$req"/build.txt "$req"/runtime.txt "$req"/tests.txt \
        "$req"/lock.txt "$root"/setup.py | sha256sum | cut -d' ' -f1)

if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    exit 0
fi
if ! command -v "$python" >/dev/null 2>&1; then
    echo "bootstrap: $python not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
exec 9>"$root/.venv.lock"
flock 9
# Another process may have finished the job while this one waited.
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    exit 0
fi
start=$(date +%s)
echo "bootstrap: creating $venv (first run builds mmcv's C++ ops: ~7-10 min on 2 cores)"
rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# Step 1: what mmcv's setup.py imports at build time.
"${pip[@]}" install -c "$req/lock.txt" -r "$req/build.txt"
# Step 2: mmcv from source with its ops, then the rest of the stack.
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "${pip[@]}" install --no-build-isolation -c "$req/lock.txt" \
    -r "$req/runtime.txt" -r "$req/tests.txt"
# Step 3: this package, editable, so tools/ and configs work from the clone.
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
