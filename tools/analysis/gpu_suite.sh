#!/usr/bin/env bash
# Every GPU measurement of docs/performance.md in one run, about 5 minutes
# on one H100 / H200. Each benchmark times RLA against the plain model in
# its own process. $OUT receives log.txt (every table) and results.tar.gz
# (a JSON per run, packed at the end: the device tool returns 8 files).
#
# On a machine without OpenMMLab packages, first (here, with registry
# access) `bash scripts/gpu_wheels.sh`, then carry .whl/ along: they are
# installed into /tmp/rla_site. mmcv's compiled ops are not needed: every
# run goes through tools/analysis/torch_ops.py, whose pure-torch stand-ins
# both detectors of a comparison use alike.
#
# Usage: OUT=results bash tools/analysis/gpu_suite.sh
# Smaller settings for a smoke run on the CPU: WHEELS=none DEVICE=cpu
# SHAPE="96 96" TRAIN_SHAPE="96 96" CP_SHAPE="96 96" REPEAT=2
# PYTHON=.venv/bin/python bash tools/analysis/gpu_suite.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-work_dirs/gpu_suite}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SHAPE=${SHAPE:-800 1216}
TRAIN_SHAPE=${TRAIN_SHAPE:-800 1216}
CP_SHAPE=${CP_SHAPE:-512 512}
REPEAT=${REPEAT:-20}
STEP_LIMIT=${STEP_LIMIT:-300}
WHEELS=${WHEELS:-.whl}  # WHEELS=none installs nothing
mkdir -p "$OUT/json"
export PYTHONUNBUFFERED=1
if ls "$WHEELS"/*.whl > /dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/rla_site "$WHEELS"/*.whl ||
        exit 1
    export PYTHONPATH=/tmp/rla_site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi

{
    echo "== $(date -u +%FT%TZ) device $DEVICE"
    "$PY" -c 'import torch; print("torch", torch.__version__,
        torch.cuda.get_device_name() if torch.cuda.is_available() else "")'
    if [ "$DEVICE" != cpu ]; then
        "$PY" tools/analysis/torch_ops.py --check "$DEVICE"
    fi
} 2>&1 | tee "$OUT/log.txt"

FAILED=()
bench() {  # bench NAME ARGS...: one benchmark process
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$OUT/log.txt"
    timeout "$STEP_LIMIT" "$PY" tools/analysis/torch_ops.py \
        tools/analysis/benchmark.py --device "$DEVICE" --repeat "$REPEAT" \
        --train-repeat "$REPEAT" --json "$OUT/json/$name.json" "$@" 2>&1 |
        grep -v -i 'warn\|pkg_resources\|_bootstrap' | tee -a "$OUT/log.txt"
    local status=${PIPESTATUS[0]}
    if [ "$status" -ne 0 ]; then
        FAILED+=("$name (exit $status)")
    fi
}

# The backbone (RLA-R50 / ResNet-50), AMP and fp32: train step and eval
# forward at 800x1216, operators and kernels per step.
# shellcheck disable=SC2086
bench amp --amp --shape $SHAPE --train-shape $TRAIN_SHAPE \
    --tasks eval train ops
# shellcheck disable=SC2086
bench fp32 --shape $SHAPE --train-shape $TRAIN_SHAPE --tasks eval train
# eval forward with 8 images, AMP
# shellcheck disable=SC2086
bench eval_b8_amp --amp --eval-batch 8 --shape $SHAPE --tasks eval
# with_cp's factor at 512x512, AMP (the train task times both models with
# and without it)
# shellcheck disable=SC2086
bench cp_amp --amp --train-shape $CP_SHAPE --tasks train
# Every form of the RLA operators (the CUDA rows of the dispatch table)
# shellcheck disable=SC2086
bench forms_amp --amp --shape $SHAPE --train-shape $TRAIN_SHAPE \
    --tasks forms
# Whole RetinaNet / Faster R-CNN training steps, batch 2, AMP and fp32
# shellcheck disable=SC2086
bench detector_amp --amp --train-shape $TRAIN_SHAPE --tasks detector_train
# shellcheck disable=SC2086
bench detector_fp32 --train-shape $TRAIN_SHAPE --tasks detector_train
# RLA-MobileNetV2 / MobileNetV2, AMP
# shellcheck disable=SC2086
bench mobilenetv2_amp --variant mobilenetv2 --amp --shape $SHAPE \
    --train-shape $TRAIN_SHAPE --tasks eval train
tar -czf "$OUT/results.tar.gz" -C "$OUT" json && rm -r "$OUT/json"
echo "== done $(date -u +%FT%TZ)" | tee -a "$OUT/log.txt"
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "== failed: ${FAILED[*]}" | tee -a "$OUT/log.txt"
    exit 1
fi
