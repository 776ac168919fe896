"""tools/analysis/torch_ops.py: pure-torch stand-ins for mmcv's ops, checked
against mmcv's own compiled CPU ops (and mmdet's pure-torch focal loss)."""
import subprocess
import sys
import textwrap

import mmcv.ops
import pytest
import torch
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss

from helpers import ROOT, load_tool

ops = load_tool('analysis/torch_ops.py')


def _boxes(n, seed, size=100.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    scores = torch.rand(n, generator=g)
    return torch.cat([xy, xy + wh], 1), scores


@pytest.mark.parametrize('offset', [0, 1])
@pytest.mark.parametrize('iou', [0.3, 0.7])
def test_nms_equals_mmcv(offset, iou):
    boxes, scores = _boxes(300, seed=int(iou * 10) + offset)
    dets, inds = ops.nms(boxes, scores, iou, offset=offset)
    ref_dets, ref_inds = mmcv.ops.nms(boxes, scores, iou, offset=offset)
    assert 0 < len(inds) < len(boxes)
    assert torch.equal(inds, ref_inds)
    assert torch.equal(dets, ref_dets)


def test_nms_score_threshold_and_max_num_equal_mmcv():
    boxes, scores = _boxes(200, seed=3)
    kwargs = dict(score_threshold=0.4, max_num=20)
    dets, inds = ops.nms(boxes, scores, 0.5, **kwargs)
    ref_dets, ref_inds = mmcv.ops.nms(boxes, scores, 0.5, **kwargs)
    assert len(inds) == 20
    assert torch.equal(inds, ref_inds) and torch.equal(dets, ref_dets)


@pytest.mark.parametrize('cfg', [
    dict(type='nms', iou_threshold=0.7),
    dict(type='nms', iou_threshold=0.5, max_num=30),
    dict(type='nms', iou_threshold=0.5, class_agnostic=True),
])
def test_batched_nms_equals_mmcv(cfg):
    boxes, scores = _boxes(400, seed=5)
    idxs = torch.randint(0, 4, (400, ), generator=torch.Generator().
                         manual_seed(6))
    dets, keep = ops.batched_nms(boxes, scores, idxs, cfg)
    ref_dets, ref_keep = mmcv.ops.batched_nms(boxes, scores, idxs, cfg)
    assert torch.equal(keep, ref_keep)
    assert torch.equal(dets, ref_dets)


def test_batched_nms_refuses_other_types():
    boxes, scores = _boxes(10, seed=1)
    with pytest.raises(NotImplementedError, match='soft_nms'):
        ops.batched_nms(boxes, scores, torch.zeros(10, dtype=torch.long),
                        dict(type='soft_nms', iou_threshold=0.5))


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_roi_align_equals_mmcv_with_gradients(aligned, sampling_ratio):
    g = torch.Generator().manual_seed(sampling_ratio + aligned)
    feature = torch.rand(2, 5, 24, 32, generator=g, dtype=torch.float64)
    boxes, _ = _boxes(40, seed=7, size=140.0)
    boxes[0] = torch.tensor([-20., -10., 30., 40.])  # partly outside
    boxes[1] = torch.tensor([10., 10., 10.2, 10.3])  # under one pixel
    batch = torch.randint(0, 2, (40, 1), generator=g).to(boxes)
    rois = torch.cat([batch, boxes], 1).double()
    x1 = feature.clone().requires_grad_(True)
    x2 = feature.clone().requires_grad_(True)
    out = ops.RoIAlign((7, 6), 0.25, sampling_ratio, aligned=aligned)(x1,
                                                                       rois)
    ref = mmcv.ops.RoIAlign((7, 6), 0.25, sampling_ratio,
                            aligned=aligned)(x2.float(), rois.float())
    torch.testing.assert_close(out.float(), ref, rtol=1e-5, atol=1e-6)
    weights = torch.rand(out.shape, generator=g, dtype=torch.float64)
    (out * weights).sum().backward()
    (ref * weights.float()).sum().backward()
    torch.testing.assert_close(x1.grad.float(), x2.grad.float(), rtol=1e-4,
                               atol=1e-5)


def test_sigmoid_focal_loss_equals_mmdet_pure_torch_form():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 6, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 7, (50, ), generator=g)  # 6 = background
    x1 = logits.clone().requires_grad_(True)
    x2 = logits.clone().requires_grad_(True)
    loss = ops.sigmoid_focal_loss(x1, labels, 2.0, 0.25, None, 'none')
    one_hot = torch.nn.functional.one_hot(labels, 7)[:, :6].to(logits)
    ref = py_sigmoid_focal_loss(x2, one_hot, reduction='none')
    torch.testing.assert_close(loss, ref)
    loss.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    mean = ops.sigmoid_focal_loss(logits, labels, reduction='mean')
    torch.testing.assert_close(mean, ref.sum() / 50)


def _run(code, *args):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code), *args],
                          capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


_STEP = """
    import sys
    if sys.argv[1] == 'stand-ins':
        sys.path.insert(0, 'tools/analysis')
        import torch_ops
        torch_ops.install()
    import mmcv.ops
    import torch
    from mmengine.config import Config
    from mmengine.model import BaseModel
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    import rla_mmdet
    from rla_mmdet.analysis.complexity import detector_inputs
    register_all_modules()
    init_default_scope('mmdet')
    cfg = Config.fromfile('configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = detector_inputs(model, (96, 96), batch=2, random_images=True,
                           with_gt=True)
    torch.manual_seed(1)
    total, log = BaseModel.parse_losses(model, model(**data, mode='loss'))
    total.backward()
    grad = sum(p.grad.norm() ** 2 for p in model.parameters()
               if p.grad is not None) ** 0.5
    print(getattr(mmcv.ops, '_torch_stand_in', False))
    print(float(total), float(grad))
"""


@pytest.mark.slow
def test_mask_rcnn_training_step_is_the_same_with_the_stand_ins():
    """RPN nms, RoIAlign of boxes and masks: the whole loss and gradient
    of a Mask R-CNN step, mmcv's ops against the stand-ins."""
    runs = {}
    for which in ('mmcv', 'stand-ins'):
        proc = _run(_STEP, which)
        assert proc.returncode == 0, proc.stderr[-3000:]
        used, numbers = proc.stdout.strip().splitlines()[-2:]
        assert used == str(which == 'stand-ins')
        runs[which] = [float(v) for v in numbers.split()]
    assert runs['mmcv'] == pytest.approx(runs['stand-ins'], rel=1e-5)


def test_cli_runs_a_script_with_the_stand_ins(tmp_path):
    script = tmp_path / 'probe.py'
    script.write_text(textwrap.dedent("""
        import sys
        import mmcv.ops
        from mmcv.ops.carafe import CARAFEPack
        import mmdet.models  # imports many mmcv.ops names
        print(mmcv.ops._torch_stand_in, sys.argv[1:])
        try:
            CARAFEPack(16, 2)
        except NotImplementedError as e:
            print('refused:', e)
    """))
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/torch_ops.py', str(script), 'a',
         '--b'], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "True ['a', '--b']"
    assert lines[1].startswith('refused: mmcv.ops.CARAFEPack has no '
                               'pure-torch stand-in')
    assert 'mmcv.ops: pure-torch stand-ins' in proc.stderr


def test_cli_names_a_missing_script():
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/torch_ops.py', 'no/such.py'],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode != 0
    assert "SCRIPT 'no/such.py' is not a file" in proc.stderr


def test_install_refuses_after_mmcv_ops_was_imported():
    proc = _run("""
        import sys
        sys.path.insert(0, 'tools/analysis')
        import mmcv.ops
        import torch_ops
        try:
            torch_ops.install()
        except RuntimeError as e:
            print(e)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'imported before the pure-torch stand-ins' in proc.stdout


def test_check_compares_torchvision_with_the_plain_forms(monkeypatch,
                                                         capsys):
    """``--check`` (run on a GPU where torchvision is), here with mmcv's
    CPU ops in torchvision's place, then with a wrong nms."""

    class Kernels:

        @staticmethod
        def nms(boxes, scores, iou):
            return mmcv.ops.nms(boxes, scores, iou)[1]

        @staticmethod
        def roi_align(x, rois, size, scale, ratio, aligned):
            return mmcv.ops.roi_align(x, rois, size, scale, ratio, 'avg',
                                      aligned)

    monkeypatch.setattr(ops, '_tv', Kernels)
    assert ops.check('cpu')
    out = capsys.readouterr().out
    assert 'torchvision == plain torch: True' in out
    monkeypatch.setattr(Kernels, 'nms',
                        staticmethod(lambda b, s, iou: s.argsort()))
    assert not ops.check('cpu')


RUNS = ('amp', 'fp32', 'eval_b8_amp', 'cp_amp', 'forms_amp', 'detector_amp',
        'detector_fp32', 'mobilenetv2_amp')


def _suite(tmp_path, **overrides):
    import os
    env = dict(os.environ, WHEELS='none', DEVICE='cpu', REPEAT='1',
               SHAPE='64 64', TRAIN_SHAPE='64 64', CP_SHAPE='64 64',
               PYTHON=sys.executable, OUT=str(tmp_path / 'out'))
    env.update(overrides)
    return subprocess.run(['bash', 'tools/analysis/gpu_suite.sh'],
                          capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=900)


@pytest.mark.slow
def test_gpu_suite_runs_every_benchmark_on_the_cpu(tmp_path):
    """The GPU script at tiny sizes on the CPU: every run, its JSON packed
    into results.tar.gz, and the whole log."""
    import json
    import tarfile
    proc = _suite(tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    out = tmp_path / 'out'
    assert sorted(p.name for p in out.iterdir()) == ['log.txt',
                                                     'results.tar.gz']
    log = (out / 'log.txt').read_text()
    assert 'Traceback' not in log
    with tarfile.open(out / 'results.tar.gz') as tar:
        results = {
            m.name.split('/')[-1][:-5]: json.load(tar.extractfile(m))
            for m in tar.getmembers() if m.name.endswith('.json')
        }
    assert sorted(results) == sorted(RUNS)
    for name in RUNS:
        assert f'== {name}: ' in log
    assert results['amp']['amp'] and not results['fp32']['amp']
    assert results['amp']['ops_train_step']['rla (cuda)']['aten_calls'] > 0
    assert results['eval_b8_amp']['eval_batch'] == 8
    assert 'split+literal' in results['forms_amp']['forms']['train']
    assert 'faster_rcnn_train_step' in results['detector_fp32']
    assert results['mobilenetv2_amp']['variant'] == 'mobilenetv2'
    assert results['cp_amp']['with_cp_cost']


@pytest.mark.slow
def test_gpu_suite_exits_non_zero_when_a_run_fails(tmp_path):
    proc = _suite(tmp_path, SHAPE='16 16', TRAIN_SHAPE='16 16',
                  CP_SHAPE='16 16')
    assert proc.returncode == 1
    log = (tmp_path / 'out' / 'log.txt').read_text()
    assert '== failed: amp (exit 2)' in log
