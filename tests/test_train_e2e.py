"""tools/train.py and tools/test.py end to end on the tiny shapes dataset.

The main job's config (Mask R-CNN, RLA-ResNet-18 from scratch) trains for a
few iterations, resumes from its checkpoint, and is evaluated with COCO mAP.
"""
import glob
import json
import os.path as osp
import pickle
import shutil

import pytest
import torch

CONFIG = 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py'
# 8 training images, 2 per batch: 4 iterations an epoch, no validation
# during training (the config validates at its last epoch only).
TINY = ['train_dataloader.batch_size=2', 'default_hooks.logger.interval=1']
# An untrained model's scores are low: keep every box, so that COCO's
# evaluation has results to match.
KEEP_ALL = ['model.test_cfg.rcnn.score_thr=0.0']
# Every test here uses the trained run of first_run.
pytestmark = [pytest.mark.core, pytest.mark.slow]


def _train(run_tool, shapes_data, work_dir, epochs, *extra, check=True):
    return run_tool([
        'tools/train.py', CONFIG, '--work-dir', work_dir, '--data-root',
        shapes_data['root'], *extra, '--cfg-options', *TINY,
        f'train_cfg.max_epochs={epochs}'
    ], check=check)


def _checkpoint(path):
    # Our own file, written by the run above.
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.fixture(scope='module')
def first_run(tmp_path_factory, run_tool, shapes_data):
    """One epoch (4 iterations) of training; returns (work_dir, output)."""
    work_dir = str(tmp_path_factory.mktemp('train'))
    proc = _train(run_tool, shapes_data, work_dir, 1)
    return work_dir, proc.stdout


def test_training_writes_a_checkpoint(first_run):
    work_dir, output = first_run
    assert 'Epoch(train) [1][4/4]' in output
    assert osp.isfile(osp.join(work_dir, 'last_checkpoint'))
    ckpt = _checkpoint(osp.join(work_dir, 'epoch_1.pth'))
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 4
    assert ckpt['meta']['seed'] == 0
    keys = ckpt['state_dict']
    assert any(k.startswith('backbone.recurrent_convs.') for k in keys)
    assert any(k.startswith('roi_head.mask_head.') for k in keys)
    assert 'optimizer' in ckpt and 'param_schedulers' in ckpt
    # Trained from scratch: the losses are finite numbers.
    losses = [line for line in output.splitlines() if 'loss_mask:' in line]
    assert len(losses) == 4
    assert 'nan' not in ''.join(losses).lower()


def test_training_refuses_a_used_work_dir(first_run, run_tool, shapes_data):
    work_dir, _ = first_run
    before = open(osp.join(work_dir, 'epoch_1.pth'), 'rb').read()
    proc = _train(run_tool, shapes_data, work_dir, 1, check=False)
    assert proc.returncode != 0
    assert 'already holds checkpoints' in proc.stdout
    assert open(osp.join(work_dir, 'epoch_1.pth'), 'rb').read() == before


def test_resume_continues_the_iteration_count(first_run, run_tool,
                                              shapes_data, tmp_path):
    work_dir = str(tmp_path / 'resumed')
    shutil.copytree(first_run[0], work_dir)
    first = _checkpoint(osp.join(work_dir, 'epoch_1.pth'))
    proc = _train(run_tool, shapes_data, work_dir, 2, '--resume',
                  osp.join(work_dir, 'epoch_1.pth'))
    assert 'resumed epoch: 1, iter: 4' in proc.stdout
    assert 'Epoch(train) [2][4/4]' in proc.stdout
    assert 'Epoch(train) [1]' not in proc.stdout
    second = _checkpoint(osp.join(work_dir, 'epoch_2.pth'))
    assert second['meta']['epoch'] == 2 and second['meta']['iter'] == 8
    key = 'backbone.conv1.weight'
    assert not torch.equal(first['state_dict'][key],
                           second['state_dict'][key])


def test_resume_with_a_cut_last_checkpoint_pointer(first_run, run_tool,
                                                   shapes_data, tmp_path):
    """A run killed while MMEngine rewrote last_checkpoint still resumes."""
    work_dir = str(tmp_path / 'cut')
    shutil.copytree(first_run[0], work_dir)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, 'epoch_'))  # the write stopped here
    proc = _train(run_tool, shapes_data, work_dir, 2, '--resume')
    assert 'resuming from the newest checkpoint' in proc.stdout
    assert 'resumed epoch: 1, iter: 4' in proc.stdout
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))


def test_resumed_run_equals_the_uninterrupted_one(first_run, run_tool,
                                                  shapes_data, tmp_path):
    """Two epochs in one go give the weights of one epoch + a resume."""
    resumed = str(tmp_path / 'resumed')
    shutil.copytree(first_run[0], resumed)
    _train(run_tool, shapes_data, resumed, 2, '--resume')
    straight = str(tmp_path / 'straight')
    _train(run_tool, shapes_data, straight, 2)
    a = _checkpoint(osp.join(resumed, 'epoch_2.pth'))['state_dict']
    b = _checkpoint(osp.join(straight, 'epoch_2.pth'))['state_dict']
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def test_test_tool_reports_coco_bbox_and_segm(first_run, run_tool,
                                              shapes_data, tmp_path):
    checkpoint = osp.join(first_run[0], 'epoch_1.pth')
    out = tmp_path / 'predictions.pkl'
    run_tool([
        'tools/test.py', CONFIG, checkpoint, '--work-dir', tmp_path,
        '--data-root', shapes_data['root'], '--out', out, '--cfg-options',
        *KEEP_ALL
    ])
    (log, ) = glob.glob(str(tmp_path / '*' / '*.json'))
    metrics = json.load(open(log))
    for task in ('bbox', 'segm'):
        for name in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'):
            value = metrics[f'coco/{task}_{name}']
            # COCO writes -1 for an area range without objects.
            assert value == -1 or 0 <= value <= 1, (task, name, value)
        assert 0 <= metrics[f'coco/{task}_mAP'] <= 1
    predictions = pickle.load(open(out, 'rb'))
    assert len(predictions) == 4  # the validation images
    assert {'bboxes', 'labels', 'scores', 'masks'} <= set(
        predictions[0]['pred_instances'])
