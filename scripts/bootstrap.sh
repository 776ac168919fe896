#!/usr/bin/env bash
# Create (or reuse) one of the project's virtual environments.
#
#   scripts/bootstrap.sh [main]   .venv: torch 2.13 (requirements/lock.txt)
#   scripts/bootstrap.sh torch21  .venv-torch21: torch 2.1.2, the stack of
#                                 OpenMMLab's prebuilt mmcv 2.1.0 wheels
#                                 (requirements/lock-torch21.txt)
#
# An environment is rebuilt only when its lock file, requirements/*.txt,
# setup.py, rla_mmdet/dependencies.py or this script change (their hash is
# stored in VENV/.rla-stamp). mmcv is compiled from its PyPI source with its
# C++ ops against the stack's torch; pip's wheel cache (one cache directory
# per stack, since the cached mmcv wheel only fits the torch it was built
# against) makes every later build of the same stack fast.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
req=$root/requirements
stack=${1:-main}
case "$stack" in
    main)
        venv=${RLA_VENV:-$root/.venv}
        lock=$req/lock.txt
        cache=() ;;
    torch21)
        venv=${RLA_VENV:-$root/.venv-torch21}
        lock=$req/lock-torch21.txt
        cache=(--cache-dir "${XDG_CACHE_HOME:-$HOME/.cache}/pip-rla-torch21") ;;
    *)
        echo "usage: $0 [main|torch21]" >&2
        exit 2 ;;
esac
python=${PYTHON:-python3.11}
stamp_file=$venv/.rla-stamp
stamp=$(cat "$0" "$req"/build.txt "$req"/runtime.txt "$req"/tests.txt \
        "$lock" "$root"/setup.py "$root"/rla_mmdet/dependencies.py \
        | sha256sum | cut -d' ' -f1)

if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    exit 0
fi
if ! command -v "$python" >/dev/null 2>&1; then
    echo "bootstrap: $python not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
exec 9>"$venv.lock"
flock 9
# Another process may have finished the job while this one waited.
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    exit 0
fi
start=$(date +%s)
echo "bootstrap: creating $venv ($stack; a first run builds mmcv's C++ ops: ~7-10 min on 2 cores)"
rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q ${cache[@]+"${cache[@]}"})
# Step 1: what mmcv's setup.py imports at build time.
"${pip[@]}" install -c "$lock" -r "$req/build.txt"
# Step 2: mmcv from source with its ops, then the rest of the stack.
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "${pip[@]}" install --no-build-isolation -c "$lock" \
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
