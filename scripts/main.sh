#!/usr/bin/env bash
# The main job: train Mask R-CNN with an RLA-ResNet-18 from scratch on the
# synthetic shapes dataset, then evaluate the final checkpoint on its
# validation split (COCO bbox and segm mAP). 8 to 18 minutes on 2 CPU cores.
#
# Usage: scripts/main.sh        (after scripts/bootstrap.sh)
# Environment: PYTHON (default .venv/bin/python of the repository).
#
# The dataset is generated into data/shapes/ when it is not there yet; every
# run trains into a new work_dirs/shapes/<timestamp>/, so no earlier run is
# touched.
set -euo pipefail

if [ $# -ne 0 ]; then
    echo "usage: $0 (no arguments; set PYTHON to choose the interpreter)" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
if ! [ -x "$PYTHON" ] && ! command -v "$PYTHON" >/dev/null; then
    echo "error: python interpreter '$PYTHON' not found; run" \
        "scripts/bootstrap.sh first or set PYTHON." >&2
    exit 1
fi
CONFIG=configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py
DATA=data/shapes
START=$(date +%s)

# The val annotations are written last: without them the data is incomplete.
if [ -f "$DATA/annotations/instances_val.json" ]; then
    echo "== dataset: using $DATA"
else
    echo "== dataset: generating $DATA"
    "$PYTHON" tools/misc/make_shapes_dataset.py "$DATA" --overwrite
fi

STAMP=$(date +%Y%m%d_%H%M%S)
WORK_DIR=work_dirs/shapes/$STAMP
n=1
while [ -e "$WORK_DIR" ]; do
    WORK_DIR=work_dirs/shapes/${STAMP}_$n
    n=$((n + 1))
done
mkdir -p "$WORK_DIR"

echo "== training: $CONFIG -> $WORK_DIR"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"

CHECKPOINT=$(cat "$WORK_DIR/last_checkpoint")
echo "== testing: $CHECKPOINT"
"$PYTHON" tools/test.py "$CONFIG" "$CHECKPOINT" --work-dir "$WORK_DIR/test"

END=$(date +%s)
"$PYTHON" - "$WORK_DIR" "$CHECKPOINT" $((END - START)) <<'EOF'
import glob
import json
import os.path as osp
import sys

work_dir, checkpoint, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
logs = sorted(glob.glob(osp.join(work_dir, 'test', '*', '*.json')))
if not logs:
    sys.exit(f'error: tools/test.py wrote no metrics under {work_dir}/test.')
metrics = json.load(open(logs[-1]))
print('== summary')
for task in ('bbox', 'segm'):
    print(f'{task} AP: {metrics[f"coco/{task}_mAP"]:.3f} '
          f'(AP50 {metrics[f"coco/{task}_mAP_50"]:.3f}, '
          f'AP75 {metrics[f"coco/{task}_mAP_75"]:.3f})')
print(f'wall time: {seconds // 60} min {seconds % 60} s')
print(f'checkpoints: {osp.dirname(checkpoint)}/ (final: {checkpoint})')
print(f'metrics: {logs[-1]}')
EOF
