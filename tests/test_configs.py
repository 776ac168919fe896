"""Every config builds and runs; the COCO configs follow the paper's recipe."""
import glob
import os.path as osp
import subprocess
import sys
import textwrap
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from mmengine.structures import InstanceData

from rla_mmdet.zoo import DETECTORS, IMAGENET
from helpers import ROOT

pytestmark = pytest.mark.core

CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                       recursive=True) if '/_base_' not in p)
COCO_CONFIGS = [d.config for d in DETECTORS]

register_all_modules()


def load(config):
    return Config.fromfile(osp.join(ROOT, config))


def build_without_pretrained(cfg):
    init_default_scope('mmdet')
    cfg.model.backbone.init_cfg = None  # no ImageNet file in tests
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def total_loss(losses: dict) -> torch.Tensor:
    """The sum of every loss term of a detector's ``mode='loss'`` output
    (tensors, or lists of tensors per level)."""
    return sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
               for k, v in losses.items() if 'loss' in k)


def fake_batch(model, with_masks, size=(128, 160), num_classes=80):
    h, w = size
    samples, images = [], []
    for i in range(2):
        sample = DetDataSample(metainfo=dict(
            img_shape=size, ori_shape=size, pad_shape=size,
            scale_factor=(1., 1.), batch_input_shape=size))
        boxes = torch.tensor([[8., 10., 70., 90.], [60., 30., 150., 120.]])
        inst = InstanceData(bboxes=boxes, labels=torch.tensor([1, i + 2]) %
                            num_classes)
        if with_masks:
            masks = np.zeros((2, h, w), dtype=np.uint8)
            for k, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                masks[k, y1:y2, x1:x2] = 1
            inst.masks = BitmapMasks(masks, h, w)
        sample.gt_instances = inst
        samples.append(sample)
        images.append(torch.randint(0, 255, (3, h, w), dtype=torch.uint8))
    return dict(inputs=images, data_samples=samples)


def test_config_list_is_complete():
    assert set(COCO_CONFIGS) <= set(CONFIGS)
    assert len(COCO_CONFIGS) == 12


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_and_runs_loss_and_predict(config):
    cfg = load(config)
    # The plain twins of the shapes configs use mmdet's own backbones.
    assert cfg.model.backbone.type in ('RLAResNet', 'RLAECANet',
                                       'RLAMobileNetV2', 'ResNet',
                                       'MobileNetV2')
    # checked loading for the process: init_detector runs no hooks
    assert cfg.custom_imports == dict(
        imports=['rla_mmdet', 'rla_mmdet.checked_loading'],
        allow_failed_imports=False)
    # the explicit switch for atomic saves and the allow-list loader
    assert 'CheckpointIOHook' in [h.type for h in cfg.custom_hooks]
    model = build_without_pretrained(cfg)
    with_masks = 'mask_head' in cfg.model.get('roi_head', {})
    heads = cfg.model.get('roi_head', cfg.model).get('bbox_head')
    num_classes = heads.get('num_classes')
    data = model.data_preprocessor(
        fake_batch(model, with_masks, num_classes=num_classes), True)
    model.train()
    losses = model(**data, mode='loss')
    total = total_loss(losses)
    assert torch.isfinite(total)
    total.backward()
    # DistributedDataParallel with find_unused_parameters=False needs this.
    no_grad = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert no_grad == []
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            fake_batch(model, with_masks, num_classes=num_classes), False)
        results = model(**data, mode='predict')
    assert len(results) == 2
    assert results[0].pred_instances.bboxes.shape[-1] == 4
    if with_masks:
        assert 'masks' in results[0].pred_instances


@pytest.mark.parametrize('detector', DETECTORS, ids=lambda d: d.config)
def test_coco_config_follows_the_paper_recipe(detector):
    cfg = load(detector.config)
    backbone = cfg.model.backbone
    depth = 101 if 'r101' in detector.backbone else 50
    assert backbone.type == ('RLAECANet' if 'eca' in detector.backbone
                             else 'RLAResNet')
    assert backbone.depth == depth
    assert backbone.frozen_stages == 1 and backbone.norm_eval is True
    assert backbone.init_cfg == dict(
        type='Pretrained',
        checkpoint='checkpoints/' + IMAGENET[detector.backbone].filename)
    assert cfg.model.neck.in_channels == [256, 512, 1024, 2048]
    # mmdetection's 1x schedule: lr 0.02 for 16 images (RetinaNet's own
    # config in mmdetection, which the authors trained with, uses 0.01).
    optim = cfg.optim_wrapper.optimizer
    assert optim.type == 'SGD'
    assert optim.lr == (0.01 if detector.family == 'retinanet' else 0.02)
    assert (optim.momentum, optim.weight_decay) == (0.9, 1e-4)
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.train_cfg.max_epochs == 12
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR',
                                                              0.001, 500)
    assert warmup.by_epoch is False
    assert (steps.type, steps.milestones) == ('MultiStepLR', [8, 11])
    assert [h.type for h in cfg.custom_hooks] == [
        'CheckpointIOHook', 'NonFiniteLossHook', 'EpochSeedHook']
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    metric = cfg.val_evaluator.metric
    if detector.family == 'mask_rcnn':
        assert metric == ['bbox', 'segm']
    else:
        assert metric == 'bbox'
    if detector.family == 'retinanet':
        assert cfg.model.neck.start_level == 1
        assert cfg.model.neck.add_extra_convs == 'on_input'


def test_config_with_custom_imports_builds_in_a_fresh_interpreter(tmp_path):
    config = tmp_path / 'my_config.py'
    config.write_text(textwrap.dedent("""
        custom_imports = dict(imports=['rla_mmdet'],
                              allow_failed_imports=False)
        model = dict(type='RLAECANet', depth=18, out_indices=(1, 2, 3))
    """))
    script = textwrap.dedent(f"""
        import sys
        from mmengine.config import Config
        from mmdet.registry import MODELS
        assert 'rla_mmdet' not in sys.modules
        cfg = Config.fromfile({str(config)!r})
        model = MODELS.build(cfg.model)
        print(type(model).__name__, model.out_channels)
    """)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True, cwd=str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == 'RLAECANet (128, 256, 512)'


@pytest.mark.parametrize('config', [
    'configs/faster_rcnn/faster-rcnn_rla-r50_fpn_1x_coco.py',
    'configs/retinanet/retinanet_rla-r50_fpn_1x_coco.py',
    'configs/mask_rcnn/mask-rcnn_rla-eca-r50_fpn_1x_coco.py',
])
def test_authors_mmdet2_detector_checkpoint_loads_strictly(tmp_path, config):
    """A checkpoint in the layout the authors' mmdetection 2.x wrote."""
    model = build_without_pretrained(load(config))
    g = torch.Generator().manual_seed(3)
    state_dict = OrderedDict(
        (k, torch.randn(v.shape, generator=g) if v.is_floating_point()
         else v.clone()) for k, v in model.state_dict().items())
    # the authors' backbone also kept the never-read last hidden-state norm
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        state_dict[f'backbone.stage_bns.3.2.{name}'] = torch.rand(32)
    path = tmp_path / 'faster_rcnn_r50rla_fpn_1x_coco_388.pth'
    torch.save(
        dict(meta=dict(mmdet_version='2.11.0', CLASSES=('person', 'car'),
                       config='model = dict(...)', epoch=12, iter=87960),
             state_dict=state_dict,
             optimizer=dict(state={}, param_groups=[])), path)
    fresh = build_without_pretrained(load(config))
    load_checkpoint(fresh, str(path), strict=True)  # raises on any mismatch
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state_dict[k]), k
