"""mmdet's ``plugins`` on RLAResNet / RLAECANet: built where and as mmdet's
ResNet builds them, run where its Bottleneck runs them, and trained in a
detector."""
import os.path as osp

import pytest
import torch
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import init_default_scope

from rla_mmdet import RLAECANet, RLAResNet
from helpers import ROOT
from test_configs import fake_batch, total_loss

pytestmark = pytest.mark.core

CONTEXT = dict(cfg=dict(type='ContextBlock', ratio=1. / 4),
               stages=(False, True, True, True), position='after_conv3')
ATTENTION = dict(cfg=dict(type='GeneralizedAttention', spatial_range=-1,
                          num_heads=8, attention_type='0010', kv_stride=2),
                 stages=(False, False, True, True), position='after_conv2')
FIRST = dict(cfg=dict(type='ContextBlock', ratio=1. / 4, postfix=1),
             position='after_conv1')
PLUGINS = [CONTEXT, ATTENTION, FIRST]
SMALL = dict(depth=50, base_channels=16, stem_channels=16)


def _plugins_of(block):
    """``{name: (type, channels)}`` of a block's plugins."""
    return {
        name: (type(m).__name__, m.in_channels)
        for name, m in block.named_children()
        if name.startswith(('context_block', 'gen_attention_block'))
    }


@pytest.mark.parametrize('cls', [RLAResNet, RLAECANet])
def test_plugins_are_built_as_mmdet_builds_them(cls):
    model = cls(plugins=PLUGINS, **SMALL)
    ref = ResNet(plugins=PLUGINS, **SMALL)
    for s, stage in enumerate(model.stages):
        layer = getattr(ref, f'layer{s + 1}')
        assert len(stage) == len(layer)
        for block, ref_block in zip(stage, layer):
            assert _plugins_of(block) == _plugins_of(ref_block)
            assert _plugins_of(block)
    assert 'gen_attention_block' not in dict(model.stages[1][0].
                                             named_children())
    assert 'gen_attention_block' in dict(model.stages[2][0].named_children())


def test_plugins_run_where_mmdets_bottleneck_runs_them():
    model = RLAECANet(plugins=PLUGINS, **SMALL).eval()
    block = model.stages[3][1]
    order = []
    for name in ('bn1', 'context_block1', 'bn2', 'gen_attention_block',
                 'bn3', 'context_block', 'eca'):
        getattr(block, name).register_forward_hook(
            lambda m, i, o, name=name: order.append(name))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert order == ['bn1', 'context_block1', 'bn2', 'gen_attention_block',
                     'bn3', 'context_block', 'eca']


def test_a_plugin_changes_the_output_and_none_changes_nothing():
    torch.manual_seed(0)
    plain = RLAResNet(**SMALL).eval()
    torch.manual_seed(0)
    same = RLAResNet(plugins=[], **SMALL).eval()
    with_plugin = RLAResNet(plugins=[FIRST], **SMALL).eval()
    with_plugin.load_state_dict(plain.state_dict(), strict=False)
    for m in with_plugin.modules():
        if type(m).__name__ == 'ContextBlock':
            torch.nn.init.normal_(m.channel_add_conv[-1].weight)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert list(plain.state_dict()) == list(same.state_dict())
        assert torch.equal(plain(x)[-1], same(x)[-1])
        assert not torch.allclose(plain(x)[-1], with_plugin(x)[-1])


def test_detector_with_context_block_and_attention_trains():
    register_all_modules()
    init_default_scope('mmdet')
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py'))
    cfg.model.backbone = dict(type='RLAECANet', plugins=PLUGINS,
                              frozen_stages=1, **SMALL)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.backbone.stages[3][0].gen_attention_block is not None
    data = model.data_preprocessor(fake_batch(model, True, num_classes=3),
                                   True)
    model.train()
    losses = model(**data, mode='loss')
    loss = total_loss(losses)
    assert torch.isfinite(loss)
    loss.backward()
    trained = [(n, p) for n, p in model.backbone.named_parameters()
               if p.requires_grad]
    assert [n for n, p in trained if p.grad is None] == []
    plugin_grads = [p.grad for n, p in trained
                    if 'gen_attention_block' in n or 'context_block' in n]
    assert plugin_grads and all(torch.isfinite(g).all() for g in plugin_grads)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            fake_batch(model, True, num_classes=3), False)
        assert len(model(**data, mode='predict')) == 2
