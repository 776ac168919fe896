#!/usr/bin/env bash
# Download into .whl/ the wheels that tools/analysis/gpu_suite.sh installs on
# a GPU machine without package registries (Python 3.12, torch and
# torchvision already there): OpenMMLab's pure-Python packages at the lock
# file's versions, mmcv-lite (mmcv without compiled ops; the benchmarks run
# pure-torch stand-ins for them, tools/analysis/torch_ops.py) and the
# dependencies such an image lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PYVER=${GPU_PYTHON_VERSION:-3.12}
lock() { grep -i "^$1==" requirements/lock.txt | head -1; }
mkdir -p .whl
$PY -m pip download -q --no-deps --only-binary=:all: \
    --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    mmcv-lite==2.1.0 "$(lock mmengine)" "$(lock mmdet)" "$(lock addict)" \
    "$(lock yapf)" "$(lock platformdirs)" "$(lock termcolor)" \
    "$(lock terminaltables)" "$(lock pycocotools)" "$(lock shapely)"
ls .whl
du -sh .whl
