"""The new RLA block of docs/extending.md, built from the page's own code:
registered, in Mask R-CNN, one training step, a checkpoint saved and
reloaded."""
import importlib.util
import os.path as osp
import re

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint

from helpers import ROOT
from test_configs import fake_batch, total_loss

pytestmark = pytest.mark.core

DOC = osp.join(ROOT, 'docs', 'extending.md')
DIMS = (16, 32, 64, 128)


def example_source() -> str:
    """The first Python block of docs/extending.md."""
    with open(DOC, encoding='utf-8') as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
    assert blocks, DOC
    return blocks[0]


@pytest.fixture(scope='module')
def example(tmp_path_factory):
    """The page's code as the one new file a user writes, imported."""
    path = tmp_path_factory.mktemp('user') / 'rla_convnext.py'
    path.write_text(example_source())
    spec = importlib.util.spec_from_file_location('rla_convnext', str(path))
    module = importlib.util.module_from_spec(spec)
    MODELS.module_dict.pop('RLAConvNeXt', None)
    spec.loader.exec_module(module)
    yield module
    MODELS.module_dict.pop('RLAConvNeXt', None)


def test_the_example_is_one_short_file_of_public_names():
    source = example_source()
    assert len(source.splitlines()) <= 90
    imports = re.findall(r'^from (rla_mmdet\S*) import (.*)$', source, re.M)
    assert imports == [('rla_mmdet.backbones',
                        'RLABackboneMixin, RLAEngine, build_rla_modules')]
    import rla_mmdet.backbones as backbones
    for name in imports[0][1].split(', '):
        assert name in backbones.__all__


def test_the_example_runs_the_engine(example):
    model = example.RLAConvNeXt(depths=(1, 2, 1, 1), dims=DIMS,
                                rla_channel=8).eval()
    assert [len(n) for n in model.stage_bns] == [1, 2, 1, 0]
    x = torch.rand(1, 3, 64, 64)
    calls = []
    update = model.rla_update
    model.rla_update = lambda *a: calls.append(a[0]) or update(*a)
    with torch.no_grad():
        outs = model(x)
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 16), (1, 32, 8, 8),
                                              (1, 64, 4, 4), (1, 128, 2, 2)]
    # One update per block but the last, in stage order.
    assert calls == [0, 1, 1, 2]


def _detector_cfg():
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py'))
    cfg.model.backbone = dict(type='RLAConvNeXt', depths=(1, 1, 1, 1),
                              dims=DIMS, rla_channel=8)
    cfg.model.neck.in_channels = list(DIMS)
    return cfg


def test_mask_rcnn_on_the_example_trains_saves_and_reloads(example,
                                                           tmp_path):
    register_all_modules()
    init_default_scope('mmdet')
    cfg = _detector_cfg()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone) is example.RLAConvNeXt
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data = model.data_preprocessor(
        fake_batch(model, True, num_classes=3), True)
    model.train()
    losses = model(**data, mode='loss')
    loss = total_loss(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert [n for n, p in model.backbone.named_parameters()
            if p.grad is None] == []
    optimizer.step()

    path = str(tmp_path / 'rla_convnext_mask_rcnn.pth')
    save_checkpoint(model.state_dict(), path)
    fresh = MODELS.build(cfg.model)
    load_checkpoint(fresh, path, map_location='cpu', strict=True)
    for (k, v), w in zip(model.state_dict().items(),
                         fresh.state_dict().values()):
        assert torch.equal(v, w), k
    model.eval()
    fresh.eval()
    img = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.extract_feat(img), fresh.extract_feat(img)):
            assert torch.equal(a, b)
