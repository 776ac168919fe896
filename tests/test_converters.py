"""tools/model_converters: the authors' ImageNet and mmdetection 2.x files.

The published files cannot be downloaded here, so each test writes a file of
the same layout (``module.``-prefixed ImageNet state dicts with the
classifier; mmdetection 2.x ``state_dict`` + ``meta``, see
``rla_mmdet/converters.py``) with random tensors of the right names and
shapes.
"""
import hashlib
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint

from rla_mmdet import RLAECANet, RLAResNet
from rla_mmdet.checkpoint import load_checkpoint_file
from rla_mmdet.converters import imagenet_to_mmdet, mmdet2_to_mmdet3
from helpers import ROOT, load_tool

pytestmark = pytest.mark.core

FASTER_R50 = 'configs/faster_rcnn/faster-rcnn_rla-r50_fpn_1x_coco.py'
RETINA_ECA_R50 = 'configs/retinanet/retinanet_rla-eca-r50_fpn_1x_coco.py'
SHAPES_MASK_R18 = 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py'
CONFIGS_DIR = osp.join(ROOT, 'configs')
COCO_CLASSES = tuple(f'class{i}' for i in range(80))
BN = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def _tool(name):
    return load_tool(f'model_converters/{name}.py')


def _randomised(state_dict, seed=0):
    """Same names and shapes, random values (counters stay integers)."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for k, v in state_dict.items():
        if v.is_floating_point():
            out[k] = torch.randn(v.shape, generator=g, dtype=v.dtype)
        else:
            out[k] = torch.full_like(v, 1234)
    return out


def _bn(prefix, channels, g):
    return {
        f'{prefix}.{name}':
        (torch.tensor(5) if name == 'num_batches_tracked' else torch.randn(
            channels, generator=g))
        for name in BN
    }


def _authors_imagenet(path, backbone, arch, num_classes=1000):
    """A file as the authors' ImageNet training script writes it."""
    g = torch.Generator().manual_seed(1)
    k, last = backbone.rla_channel, backbone.stage_blocks[-1] - 1
    state = dict(_randomised(backbone.state_dict()))
    # What the ImageNet network has and the detection backbone does not.
    state.update(_bn(f'stage_bns.3.{last}', k, g))
    state.update(_bn('bn2', k, g))
    state['fc.weight'] = torch.randn(num_classes,
                                     backbone.stage_channels[-1] + k,
                                     generator=g)
    state['fc.bias'] = torch.randn(num_classes, generator=g)
    state = OrderedDict(('module.' + k, v) for k, v in state.items())
    optimizer = {
        'state': {0: {'momentum_buffer': torch.randn(3, generator=g)}},
        'param_groups': [{'lr': 1e-4, 'momentum': 0.9, 'params': [0]}],
    }
    torch.save(
        dict(epoch=120, arch=arch, state_dict=state,
             best_acc1=torch.tensor(77.17), optimizer=optimizer), path)
    return state


def _build(config, num_classes=None):
    cfg = Config.fromfile(osp.join(ROOT, config))
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    if num_classes is not None:
        for head in ('bbox_head', 'mask_head'):
            if head in cfg.model.get('roi_head', {}):
                cfg.model.roi_head[head].num_classes = num_classes
    return MODELS.build(cfg.model)


def _mmdet2_file(path, model, classes, version='2.11.0', extra=None):
    """A detector checkpoint as mmdetection 2.x's runner writes it."""
    g = torch.Generator().manual_seed(2)
    backbone = model.backbone
    state = _randomised(model.state_dict(), seed=3)
    # The authors' detection backbone still builds (and runs) the update
    # after the last block.
    state.update(
        _bn(f'backbone.stage_bns.3.{backbone.stage_blocks[-1] - 1}',
            backbone.rla_channel, g))
    state.update(extra or {})
    meta = dict(
        mmdet_version=version,
        mmcv_version='1.3.8',
        CLASSES=classes,
        config="model = dict(type='FasterRCNN')\n",
        epoch=12,
        iter=87960,
        time='Mon Jul  5 12:00:00 2021',
        hook_msgs=dict(last_ckpt='work_dirs/epoch_12.pth'))
    optimizer = {
        'state': {0: {'momentum_buffer': torch.randn(3, generator=g)}},
        'param_groups': [{'lr': 2e-4, 'momentum': 0.9, 'params': [0]}],
    }
    torch.save(dict(state_dict=state, meta=meta, optimizer=optimizer), path)
    return state


def _sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


# ----------------------------------------------------------------- ImageNet
@pytest.mark.parametrize('cls,depth,arch', [
    (RLAResNet, 50, 'rla_resnet50'),
    (RLAECANet, 101, 'rla_resnet101_eca'),
    (RLAResNet, 34, 'rla_resnet34'),  # same blocks per stage as 50
])
def test_imagenet_checkpoint_converts_to_a_clean_backbone(
        tmp_path, cls, depth, arch):
    src = str(tmp_path / f'{arch}.pth.tar')
    source = _authors_imagenet(src, cls(depth=depth), arch)
    dst = str(tmp_path / 'out' / 'backbone.pth')
    meta = imagenet_to_mmdet(src, dst)

    out = load_checkpoint_file(dst)
    assert set(out) == {'state_dict', 'meta'}
    model = cls(depth=depth)
    state = out['state_dict']
    # Exactly the backbone's keys: no module., no classifier, no norm of
    # the final hidden-state update.
    assert list(state) == list(model.state_dict())
    for key, value in state.items():
        assert torch.equal(value, source['module.' + key]), key
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    # The way the configs use it: a Pretrained init_cfg.
    pretrained = cls(depth=depth,
                     init_cfg=dict(type='Pretrained', checkpoint=dst))
    pretrained.init_weights()
    for key, value in pretrained.state_dict().items():
        assert torch.equal(value, source['module.' + key]), key

    assert out['meta'] == meta
    last = model.stage_blocks[-1] - 1
    assert set(meta['dropped']) == {'bn2', 'fc', f'stage_bns.3.{last}'}
    assert meta['source'] == osp.basename(src)
    assert meta['source_sha256'] == _sha256(src)
    assert meta['arch'] == arch and meta['epoch'] == 120
    assert meta['best_acc1'] == pytest.approx(77.17, abs=1e-4)
    assert meta['backbone']['type'] == cls.__name__
    assert meta['backbone']['depth'] == depth
    assert meta['converter_version']


@pytest.fixture(scope='module')
def r18_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('imagenet') / 'r18.pth.tar')
    return path, _authors_imagenet(path, RLAResNet(depth=18), 'rla_resnet18')


def _rewrite(path, src_state, tmp_path, change):
    state = OrderedDict(src_state)
    change(state)
    out = str(tmp_path / osp.basename(path))
    checkpoint = load_checkpoint_file(path)
    checkpoint['state_dict'] = state
    torch.save(checkpoint, out)
    return out


def test_imagenet_cli_and_eca_inference(tmp_path, capsys, r18_file):
    tool = _tool('rla_imagenet_to_mmdet')
    src = str(tmp_path / 'eca.pth.tar')
    eca = dict(type='eca', kernel_size=(3, 5, 5, 7))
    _authors_imagenet(src, RLAECANet(depth=18, attention=eca), 'x')
    meta = tool.main([src, str(tmp_path / 'eca.pth')])
    assert meta['backbone'] == dict(type='RLAECANet', depth=18,
                                    attention=eca)
    assert ("RLAECANet(depth=18, attention={'type': 'eca', 'kernel_size': "
            "(3, 5, 5, 7)})") in capsys.readouterr().out
    tool.main([src, str(tmp_path / 'eca2.pth'), '--eca'])
    with pytest.raises(ValueError, match='RLA-ResNet checkpoint .* --eca'):
        tool.main([r18_file[0], str(tmp_path / 'no.pth'), '--eca'])
    assert not osp.exists(tmp_path / 'no.pth')


@pytest.mark.parametrize('change,message', [
    (lambda s: s.__setitem__('module.stages.0.0.extra.weight',
                             torch.zeros(1)),
     'does not fit RLAResNet.*: unexpected keys: stages.0.0.extra.weight'),
    (lambda s: s.__setitem__('module.head.weight', torch.zeros(1)),
     'unexpected keys: head.weight.* Nothing was written'),
    (lambda s: s.pop('module.conv_outs.1.weight'),
     'does not fit RLAResNet.*: missing keys: conv_outs.1.weight'),
    (lambda s: s.__setitem__('module.recurrent_convs.0.weight',
                             torch.zeros(32, 32, 1, 1)),
     r'recurrent_convs.0.weight: file \(32, 32, 1, 1\)'),
])
def test_imagenet_converter_refuses_what_it_does_not_know(
        tmp_path, r18_file, change, message):
    src = _rewrite(r18_file[0], r18_file[1], tmp_path, change)
    dst = tmp_path / 'out.pth'
    with pytest.raises(ValueError, match=message):
        imagenet_to_mmdet(src, str(dst))
    assert not dst.exists() and not osp.exists(str(dst) + '.tmp')


def test_imagenet_converter_names_the_wrong_kind_of_file(tmp_path, r18_file):
    plain = str(tmp_path / 'resnet.pth')
    resnet = {'module.conv1.weight': torch.zeros(1),
              'module.layer1.0.conv1.weight': torch.zeros(1)}
    torch.save({'state_dict': resnet}, plain)
    with pytest.raises(ValueError, match='plain ResNet'):
        imagenet_to_mmdet(plain, str(tmp_path / 'a.pth'))
    detector = str(tmp_path / 'det.pth')
    torch.save({'state_dict': OrderedDict(
        ('backbone.' + k[len('module.'):], v)
        for k, v in r18_file[1].items())}, detector)
    with pytest.raises(ValueError, match='rla_mmdet2_to_mmdet3'):
        imagenet_to_mmdet(detector, str(tmp_path / 'b.pth'))
    with pytest.raises(ValueError, match='is the input file'):
        imagenet_to_mmdet(r18_file[0], r18_file[0])
    with pytest.raises(FileNotFoundError, match='does not exist'):
        imagenet_to_mmdet(str(tmp_path / 'missing.pth.tar'),
                          str(tmp_path / 'c.pth'))


# ----------------------------------------------------------------- detector
def _check_converted(dst, src_state, model, classes):
    out = load_checkpoint_file(dst)
    assert set(out) == {'state_dict', 'meta'}  # the optimizer is dropped
    assert out['meta']['dataset_meta'] == {'classes': tuple(classes)}
    state = out['state_dict']
    assert list(state) == list(model.state_dict())
    for key, value in state.items():
        assert torch.equal(value, src_state[key]), key
    return out


def test_faster_rcnn_mmdet2_checkpoint_loads_in_the_test_runner(tmp_path):
    model = _build(FASTER_R50)
    src = str(tmp_path / 'faster_rcnn_r50rla_fpn_1x_coco_388.pth')
    source = _mmdet2_file(src, model, COCO_CLASSES)
    dst = str(tmp_path / 'faster.pth')
    meta = mmdet2_to_mmdet3(src, dst, configs_dir=CONFIGS_DIR)  # found there
    assert meta['config'] == FASTER_R50
    assert meta['source_mmdet_version'] == '2.11.0'
    assert meta['source_sha256'] == _sha256(src)
    assert meta['dropped'] == ['backbone.stage_bns.3.2']
    _check_converted(dst, source, model, COCO_CLASSES)

    # What tools/test.py does with CHECKPOINT: Runner.load_checkpoint.
    cfg = Config.fromfile(osp.join(ROOT, FASTER_R50))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    runner.load_checkpoint(dst, strict=True)
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, source[key]), key


def test_retinanet_eca_mmdet2_checkpoint(tmp_path):
    model = _build(RETINA_ECA_R50)
    src = str(tmp_path / 'retinanet_r50rlaeca_fpn_1x_coco_390.pth')
    source = _mmdet2_file(src, model, COCO_CLASSES)
    dst = str(tmp_path / 'retina.pth')
    assert mmdet2_to_mmdet3(
        src, dst, configs_dir=CONFIGS_DIR)['config'] == RETINA_ECA_R50
    _check_converted(dst, source, model, COCO_CLASSES)
    fresh = _build(RETINA_ECA_R50)
    load_checkpoint(fresh, dst, strict=True)  # raises on missing keys
    assert torch.equal(fresh.bbox_head.retina_cls.weight,
                       source['bbox_head.retina_cls.weight'])


@pytest.fixture(scope='module')
def mask_r18(tmp_path_factory):
    classes = ('circle', 'square', 'triangle', 'star', 'hexagon')
    model = _build(SHAPES_MASK_R18, len(classes))
    src = str(tmp_path_factory.mktemp('mmdet2') / 'mask_r18.pth')
    return model, src, _mmdet2_file(src, model, classes), classes


def test_mask_rcnn_cli_with_config(tmp_path, capsys, mask_r18):
    model, src, source, classes = mask_r18
    dst = str(tmp_path / 'mask.pth')
    config = osp.join(ROOT, SHAPES_MASK_R18)
    meta = _tool('rla_mmdet2_to_mmdet3').main([src, dst, '--config', config])
    assert meta['config'] == SHAPES_MASK_R18
    assert '5 classes' in capsys.readouterr().out
    _check_converted(dst, source, model, classes)
    fresh = _build(SHAPES_MASK_R18, len(classes))
    load_checkpoint(fresh, dst, strict=True)
    assert torch.equal(fresh.roi_head.mask_head.conv_logits.weight,
                       source['roi_head.mask_head.conv_logits.weight'])


def _mmdet2_variant(tmp_path, mask_r18, change):
    model, src, source, classes = mask_r18
    checkpoint = load_checkpoint_file(src)
    change(checkpoint)
    path = str(tmp_path / 'variant.pth')
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize('change,message', [
    (lambda c: c['state_dict'].__setitem__(
        'roi_head.bbox_head.fc_extra.weight', torch.zeros(2)),
     'does not fit the MaskRCNN of .*: unexpected keys: '
     'roi_head.bbox_head.fc_extra.weight'),
    (lambda c: c['state_dict'].pop('neck.fpn_convs.0.conv.weight'),
     'missing keys: .*neck.fpn_convs.0.conv.weight'),
    (lambda c: c['meta'].__setitem__('mmdet_version', '3.3.0'),
     'reads 2.x files only'),
    (lambda c: c['meta'].pop('mmdet_version'), 'no meta.mmdet_version'),
    (lambda c: c['meta'].pop('CLASSES'), 'meta.CLASSES'),
    (lambda c: c.pop('meta'), 'not an mmdetection 2.x checkpoint'),
])
def test_mmdet2_converter_refuses_what_it_does_not_know(
        tmp_path, mask_r18, change, message):
    src = _mmdet2_variant(tmp_path, mask_r18, change)
    dst = tmp_path / 'out.pth'
    with pytest.raises(ValueError, match=message):
        mmdet2_to_mmdet3(src, str(dst),
                         config=osp.join(ROOT, SHAPES_MASK_R18))
    assert not dst.exists()


def test_mmdet2_converter_needs_a_config_for_unknown_backbones(
        tmp_path, mask_r18):
    # No config of configs/ has a COCO Mask R-CNN with an RLA-ResNet-18.
    with pytest.raises(ValueError, match='pass the config .* --config'):
        mmdet2_to_mmdet3(mask_r18[1], str(tmp_path / 'out.pth'),
                         configs_dir=CONFIGS_DIR)
    # The package reads no configs/ of its own: without config or
    # configs_dir it says what to pass.
    with pytest.raises(ValueError, match='config=PATH, or configs_dir='):
        mmdet2_to_mmdet3(mask_r18[1], str(tmp_path / 'out.pth'))
