#!/usr/bin/env bash
# Create (or reuse) one of the project's three tested environments, the
# corners of the supported range:
#
#   scripts/bootstrap.sh [main]   .venv         newest: Python 3.13, 3.12 or
#                                               3.11 (the newest found),
#                                               torch 2.15, numpy 2, mmcv
#                                               2.1.0 (C++20)
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
# gets. The main stack's lock holds one set of versions for each of its
# Pythons (tests/test_lock.py resolves it with every one the machine has).
# mmcv is compiled by scripts/build_mmcv.py from its hash-pinned source
# with its C++ ops, with the C++ standard the stack's torch needs; the wheel
# is cached per (mmcv, torch, Python, standard) under
# ${XDG_CACHE_HOME:-~/.cache}/rla_mmdet/mmcv, so a rebuilt environment takes
# a minute or two. An environment is rebuilt only when this script, its lock
# file, requirements/*.txt, setup.py, rla_mmdet/dependencies.py,
# scripts/build_mmcv.py or the chosen interpreter (its path and version)
# change (their hash is stored in VENV/.rla-stamp).
#
# Disk: PyPI's torch for Linux is a CUDA build, so each environment holds
# torch's CUDA libraries (measured, installed: .venv 5.9 GiB, .venv-torch21
# 5.3 GiB, .venv-oldest 4.8 GiB; while pip installs torch, its downloaded
# wheels take up to 1.9 GiB more). need_mib below is that peak plus 1 GiB of
# room; a disk with less free space is refused before anything is
# downloaded, instead of pip stopping half-way with "No space left on
# device". Downloading and installing torch (step 1) runs one environment
# at a time, so that three environments built side by side do not hold
# three sets of downloaded wheels at once.
#
# Environment: RLA_VENV (where to create it), RLA_PYTHON (the interpreter,
# one of the stack's Python versions; default: the newest of them found as
# pythonX.Y on PATH or in pyenv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
req=$root/requirements
stack=${1:-main}
case "$stack" in
    main)    venv=${RLA_VENV:-$root/.venv};         lock=$req/lock.txt;         pythons="3.13 3.12 3.11"; need_mib=9000 ;;
    torch21) venv=${RLA_VENV:-$root/.venv-torch21}; lock=$req/lock-torch21.txt; pythons="3.11";           need_mib=8400 ;;
    oldest)  venv=${RLA_VENV:-$root/.venv-oldest};  lock=$req/lock-oldest.txt;  pythons="3.8";            need_mib=7600 ;;
    *)
        echo "usage: $0 [main|torch21|oldest]" >&2
        exit 2 ;;
esac
stamp_file=$venv/.rla-stamp

# The stack's Python versions in words, newest first: "3.13, 3.12 or 3.11".
spelled=$(echo "$pythons" | sed 's/ /, /g; s/\(.*\), /\1 or /')
# The X.Y of the interpreter $1, or nothing when it does not run.
py_version() {
    "$1" -V 2>&1 | sed -n 's/^Python \([0-9]*\.[0-9]*\).*/\1/p'
}
# The stack's interpreter: RLA_PYTHON, or the newest of the stack's
# versions found as pythonX.Y on PATH or in pyenv (pyenv's shims answer only
# for the selected version, so its versions folder is read too). Each
# refusal is one sentence naming the versions the stack accepts.
find_python() {
    local v found
    if [ -n "${RLA_PYTHON:-}" ]; then
        v=$(py_version "$RLA_PYTHON")
        case " $pythons " in
            *" $v "*) echo "$RLA_PYTHON"; return ;;
        esac
        if [ -n "$v" ]; then v="Python $v"; else v="not a Python that runs"; fi
        echo "bootstrap: RLA_PYTHON=$RLA_PYTHON is $v, and the $stack stack" \
             "needs Python $spelled; point RLA_PYTHON at one of those or" \
             "unset it" >&2
        return 1
    fi
    for v in $pythons; do
        if [ "$(py_version "python$v")" = "$v" ]; then
            command -v "python$v"; return
        fi
        if command -v pyenv >/dev/null 2>&1; then
            found=$(ls -d "$(pyenv root)/versions/$v".*/bin/"python$v" \
                    2>/dev/null | sort -V | tail -n 1)
            if [ -n "$found" ]; then
                echo "$found"; return
            fi
        fi
    done
    v=$(py_version python3)
    echo "bootstrap: the $stack stack needs Python $spelled, and none was" \
         "found on PATH or in pyenv${v:+ (python3 here is Python $v)};" \
         "install one or set RLA_PYTHON=/path/to/python3.X" >&2
    return 1
}
python=$(find_python) || exit 1
stamp=$( (cat "$0" "$req"/build.txt "$req"/runtime.txt "$req"/tests.txt \
             "$lock" "$root"/setup.py "$root"/rla_mmdet/dependencies.py \
             "$root"/scripts/build_mmcv.py
          readlink -f "$(command -v "$python")"
          "$python" -V 2>&1) | sha256sum | cut -d' ' -f1)

if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    exit 0
fi

mmcv=$(sed -n 's/^mmcv==//p' "$lock")

# Free MiB on the filesystem of $1 (its nearest existing folder).
free_mib() {
    local dir=$1
    while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done
    df -Pm "$dir" | awk 'NR == 2 {print $4}'
}
# MiB as GiB with one decimal.
gib() {
    echo "$(( $1 / 1024 )).$(( $1 % 1024 * 10 / 1024 ))"
}
# Refuse, in one sentence, a disk that cannot hold the environment (and,
# when TMPDIR lies on another disk, one that cannot hold pip's downloads).
check_space() {
    local tmp=${TMPDIR:-/tmp} free
    free=$(free_mib "$venv")
    if [ "$free" -lt "$need_mib" ]; then
        echo "bootstrap: the $stack environment needs about $(gib "$need_mib") GiB" \
             "free on the disk of $venv (torch's CUDA build and its libraries)" \
             "and $(gib "$free") GiB are free; free some space there or set" \
             "RLA_VENV to a folder on a larger disk" >&2
        exit 1
    fi
    if [ "$(stat -c %d "$tmp")" != "$(stat -c %d "$(dirname "$venv")")" ]; then
        free=$(free_mib "$tmp")
        if [ "$free" -lt 2560 ]; then
            echo "bootstrap: pip needs about 2.5 GiB free in $tmp while it" \
                 "installs torch and $(gib "$free") GiB are free; free some" \
                 "space there or set TMPDIR to a folder on a larger disk" >&2
            exit 1
        fi
    fi
}

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
# Another process may have finished the job while this one waited.
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    exit 0
fi
start=$(date +%s)
echo "bootstrap: creating $venv ($stack: $("$python" -V 2>&1) at $python, mmcv $mmcv;" \
     "a first run compiles mmcv's C++ ops: ~10 min on 2 cores)"
rm -rf "$venv"
# One environment at a time checks the disk and installs torch.
exec 8>"$root/.bootstrap.lock"
flock 8
check_space
"$python" -m venv "$venv"
export PIP_CONSTRAINT=$lock PIP_DISABLE_PIP_VERSION_CHECK=1
pip=("$venv/bin/python" -m pip -q)
# Step 1: what mmcv's setup.py imports at build time (torch, setuptools<81).
"${pip[@]}" install -r "$req/build.txt"
flock -u 8
exec 8>&-
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
