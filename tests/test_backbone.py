"""Behaviour of the RLA backbones that users of mmdet's ResNet rely on."""
import copy
import re
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from rla_mmdet import RLAECANet, RLAMobileNetV2, RLAResNet
from rla_mmdet.backbones import RLABasicBlock, RLABottleneck
from rla_mmdet.checkpoint import unbuilt_prefixes
from rla_spec import (published_mobilenet_v2_layout, published_resnet_layout,
                      reference_forward)
from helpers import assert_same_grads, build, randomize_norms

pytestmark = pytest.mark.core

EXPANSION = {18: 1, 34: 1, 50: 4, 101: 4, 152: 4}


@pytest.mark.parametrize('depth', [18, 34, 50, 101, 152])
def test_outputs_match_out_channels_for_every_depth(depth):
    model = build(depth).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 96))
    assert len(outs) == 4
    assert tuple(o.shape[1] for o in outs) == model.out_channels
    assert model.out_channels == tuple(64 * 2**i * EXPANSION[depth]
                                       for i in range(4))
    for out, stride in zip(outs, model.out_strides):
        assert out.shape[2:] == (64 // stride, 96 // stride)


@pytest.mark.parametrize('num_stages,out_indices', [(4, (3, )),
                                                    (4, (1, 3)),
                                                    (3, (0, 2)),
                                                    (2, (1, ))])
def test_out_indices_subsets(num_stages, out_indices):
    model = build(
        50,
        num_stages=num_stages,
        out_indices=out_indices,
        strides=(1, 2, 2, 2)[:num_stages],
        dilations=(1, ) * num_stages,
        stage_with_dcn=(False, ) * num_stages).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert len(outs) == len(out_indices)
    assert tuple(o.shape[1] for o in outs) == model.out_channels
    assert model.out_channels == tuple(256 * 2**i for i in out_indices)
    assert len(model.stages) == num_stages


def test_optimised_forward_equals_the_literal_spec():
    for cls, depth, kwargs in [(RLAResNet, 50, {}), (RLAECANet, 18, {}),
                               (RLAResNet, 50, dict(style='caffe',
                                                    attention='se')),
                               (RLAResNet, 34, {})]:
        model = randomize_norms(build(depth, cls, **kwargs)).eval()
        x = torch.rand(2, 3, 96, 128)
        with torch.no_grad():
            ours, ref = model(x), reference_forward(model, x)
        for a, b in zip(ours, ref):
            assert a.shape == b.shape
            assert (a - b).abs().max() <= 1e-5, (cls, depth, kwargs)


def test_dilation_keeps_resolution_and_hidden_state_unpooled():
    model = randomize_norms(
        build(50, strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2))).eval()
    assert not model.stages[3][0].pool_hidden
    assert model.stages[2][0].pool_hidden
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
        ref = reference_forward(model, x)
    assert outs[3].shape[2:] == outs[2].shape[2:] == (4, 4)
    assert model.out_strides == (4, 8, 16, 16)
    assert model.stages[3][1].conv2.dilation == (2, 2)
    for a, b in zip(outs, ref):
        assert (a - b).abs().max() <= 1e-5


def test_odd_input_sizes_work():
    # A strided conv rounds up; the pooled hidden state must follow it.
    model = build(18).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 75, 99))
    assert [tuple(o.shape[2:]) for o in outs] == [(19, 25), (10, 13), (5, 7),
                                                  (3, 4)]


def _rla_modules_of_stage(model, i):
    return [model.stages[i], model.stage_bns[i], model.conv_outs[i],
            model.recurrent_convs[i]]


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 4])
def test_frozen_stages_freeze_blocks_and_rla_modules(frozen_stages):
    model = build(18, frozen_stages=frozen_stages, norm_eval=False)
    model.train()
    stem = [model.conv1, model.bn1]
    for m in stem:
        for p in m.parameters():
            assert p.requires_grad == (frozen_stages < 0)
    assert model.bn1.training == (frozen_stages < 0)
    for i in range(4):
        frozen = i < frozen_stages
        for module in _rla_modules_of_stage(model, i):
            for p in module.parameters():
                assert p.requires_grad == (not frozen), (i, module)
            for m in module.modules():
                if isinstance(m, _BatchNorm):
                    assert m.training == (not frozen), (i, m)
    # train() again (as the Runner does every epoch) keeps them frozen
    model.train()
    if frozen_stages >= 1:
        assert not model.stage_bns[0][0].training
        assert not model.recurrent_convs[0].weight.requires_grad


def test_frozen_stage_gets_no_gradient_and_keeps_its_statistics():
    model = build(18, frozen_stages=1, norm_eval=False)
    model.train()
    before = copy.deepcopy(model.stage_bns[0][0].running_mean)
    sum(o.sum() for o in model(torch.rand(2, 3, 64, 64))).backward()
    assert model.conv_outs[0].weight.grad is None
    assert model.stages[0][0].conv1.weight.grad is None
    assert model.conv_outs[1].weight.grad is not None
    assert torch.equal(before, model.stage_bns[0][0].running_mean)
    # stage 1 is trainable and in train mode: its statistics move
    assert model.stage_bns[1][0].num_batches_tracked.item() == 1


@pytest.mark.parametrize('norm_eval', [True, False])
def test_norm_eval(norm_eval):
    model = build(18, norm_eval=norm_eval)
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(m.training != norm_eval for m in norms)
    model.eval()
    assert all(not m.training for m in norms)


def test_group_norm_applies_to_rla_norms():
    model = build(18, norm_cfg=dict(type='GN', num_groups=8,
                                    requires_grad=True))
    assert isinstance(model.stage_bns[0][0], nn.GroupNorm)
    assert isinstance(model.stages[1][0].bn1, nn.GroupNorm)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    outs = model.train()(torch.rand(2, 3, 64, 64))
    assert outs[-1].shape == (2, 512, 2, 2)


def test_sync_bn_builds_and_runs_on_cpu_in_one_process():
    model = build(18, norm_cfg=dict(type='SyncBN', requires_grad=True),
                  norm_eval=False)
    assert isinstance(model.stage_bns[0][0], nn.SyncBatchNorm)
    assert isinstance(model.stages[0][0].bn1, nn.SyncBatchNorm)
    # Without a process group SyncBN normalises like BN.
    outs = model.train()(torch.rand(2, 3, 64, 64))
    assert outs[0].shape == (2, 64, 16, 16)


def test_sync_bn_in_a_distributed_cpu_run_gives_a_clear_error(tmp_path):
    import torch.distributed as dist
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "pg"}', rank=0,
        world_size=1)
    try:
        model = build(18, norm_cfg=dict(type='SyncBN'), norm_eval=False)
        with pytest.raises(ValueError, match=r"SyncBN.*type='BN'"):
            model.train()(torch.rand(2, 3, 64, 64))
        # with frozen statistics nothing is synchronised: it runs
        model = build(18, norm_cfg=dict(type='SyncBN'), norm_eval=True)
        assert model.train()(torch.rand(2, 3, 64, 64))[0].shape[1] == 64
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('depth,kwargs', [(18, {}), (50, {}),
                                          (50, dict(attention='se')),
                                          (18, dict(norm_eval=False))])
def test_with_cp_gives_same_outputs_and_gradients(depth, kwargs):
    plain = randomize_norms(build(depth, **kwargs))
    ckpt = copy.deepcopy(plain)
    ckpt.with_cp = True
    plain.train()
    ckpt.train()
    x1 = torch.rand(2, 3, 64, 64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    outs1, outs2 = plain(x1), ckpt(x2)
    weights = [torch.rand(o.shape) for o in outs1]
    sum((o * w).sum() for o, w in zip(outs1, weights)).backward()
    sum((o * w).sum() for o, w in zip(outs2, weights)).backward()
    for a, b in zip(outs1, outs2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-6)
    assert_same_grads(plain, ckpt, rtol=1e-4, atol=1e-6)


def test_with_cp_actually_checkpoints():
    model = build(18, with_cp=True).train()
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    calls = []
    hook = model.stages[1][0].register_forward_hook(
        lambda *_: calls.append(1))
    sum(o.sum() for o in model(x)).backward()
    hook.remove()
    # forward once, recomputed once during backward
    assert len(calls) == 2


@pytest.mark.parametrize('depth', [18, 50])
def test_zero_init_residual(depth):
    model = build(depth)
    lasts = [b.bn2 if depth < 50 else b.bn3 for s in model.stages for b in s]
    assert all(torch.all(n.weight == 0) for n in lasts)
    assert all(torch.all(b.bn1.weight == 1) for s in model.stages for b in s)
    assert torch.all(model.stage_bns[0][0].weight == 1)
    model = build(depth, zero_init_residual=False)
    lasts = [b.bn2 if depth < 50 else b.bn3 for s in model.stages for b in s]
    assert all(torch.all(n.weight == 1) for n in lasts)


@pytest.mark.parametrize('cls,depth,kwargs', [(RLAResNet, 18, {}),
                                              (RLAResNet, 50, {}),
                                              (RLAECANet, 50, {}),
                                              (RLAResNet, 50,
                                               dict(attention='se')),
                                              (RLAResNet, 50,
                                               dict(groups=4,
                                                    width_per_group=8))])
def test_every_parameter_gets_a_gradient(cls, depth, kwargs):
    model = build(depth, cls, zero_init_residual=False, **kwargs).train()
    outs = model(torch.rand(2, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_final_hidden_state_norm_is_not_built():
    model = build(50)
    assert [len(b) for b in model.stage_bns] == [3, 4, 6, 2]
    assert 'stage_bns.3.2' in unbuilt_prefixes(model)[-1]


def test_parameter_counts_match_the_paper():
    # The paper counts the ImageNet network: + bn2 (2*32), fc ((2048+32)*1000
    # + 1000) and the last stage norm (2*32) that detection does not build.
    classifier = 64 + (2048 + 32) * 1000 + 1000 + 64
    for cls, depth, paper in [(RLAResNet, 50, 24.67), (RLAECANet, 50, 24.67),
                              (RLAResNet, 101, 42.92)]:
        n = sum(p.numel() for p in cls(depth=depth).parameters())
        assert round((n + classifier) / 1024**2, 2) == paper
    assert sum(p.numel() for p in RLAResNet(depth=50).parameters()) \
        + classifier == 25870696


def test_resnext_width():
    model = build(50, groups=32, width_per_group=4)
    assert model.stages[0][0].conv2.groups == 32
    assert model.stages[0][0].conv2.out_channels == 128
    assert model(torch.rand(1, 3, 64, 64))[-1].shape[1] == 2048


def test_eca_kernel_sizes():
    model = build(18, RLAECANet)
    assert [s[0].eca.conv.kernel_size[0] for s in model.stages] == [5, 5, 5, 7]
    model = build(18, RLAECANet,
                  attention=dict(type='eca', kernel_size=(3, 3, 5, 5)))
    assert [s[0].eca.conv.kernel_size[0] for s in model.stages] == [3, 3, 5, 5]
    assert build(18).stages[0][0].eca is None


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_one_attention_argument():
    # The one slot builds the published module names; the authors' spelling
    # (the legacy builder) builds the same network.
    se = build(50, attention='se')
    with pytest.warns(DeprecationWarning):
        legacy_se = MODELS.build(dict(type='RLA_ResNet', layers=[3, 4, 6, 3],
                                      SE=True))
    assert _shapes(se) == _shapes(legacy_se)
    assert 'stages.0.0.se.fc.0.weight' in se.state_dict()
    assert se.stages[0][0].eca is None
    assert se.attention == dict(type='se', reduction=16)
    assert se.stages[0][0].se.fc[0].out_features == 256 // 16
    se8 = build(50, attention=dict(type='se', reduction=8))
    assert se8.stages[0][0].se.fc[0].out_features == 256 // 8
    eca = build(18, attention='eca')
    assert eca.attention == dict(type='eca', kernel_size=(5, 5, 5, 7))
    assert _shapes(eca) == _shapes(build(18, RLAECANet))
    assert eca.stages[0][0].se is None
    sizes = [s[0].eca.conv.kernel_size[0] for s in build(
        18, attention=dict(type='eca', kernel_size=(3, 3, 5, 5))).stages]
    assert sizes == [3, 3, 5, 5]
    # the same keys as a block's config: one kernel size per stage here
    assert build(18, attention=dict(type='eca', kernel_size=[3, 3, 5, 5])) \
        .attention['kernel_size'] == (3, 3, 5, 5)
    assert eca.stages[3][0].eca.conv.kernel_size == (7, )
    plain = build(18)
    assert plain.attention is None
    assert 'se' not in str(_shapes(plain)) and '.eca.' not in str(
        _shapes(plain))


def test_same_outputs_through_the_one_slot_and_the_authors_spelling():
    x = torch.rand(1, 3, 64, 64)
    for new, old in [(dict(attention='se'), dict(SE=True)),
                     (dict(attention=dict(type='eca', kernel_size=(3, 5, 5,
                                                                   7))),
                      dict(ECA=[3, 5, 5, 7]))]:
        a = randomize_norms(build(50, **new)).eval()
        with pytest.warns(DeprecationWarning):
            b = MODELS.build(dict(type='RLA_ResNet', layers=[3, 4, 6, 3],
                                  **old))
        b = randomize_norms(b).eval()
        b.load_state_dict(a.state_dict())
        assert b.attention == a.attention
        with torch.no_grad():
            for u, v in zip(a(x), b(x)):
                assert torch.equal(u, v)
            ref = reference_forward(a, x)
        assert (a(x)[-1] - ref[-1]).abs().max() <= 1e-5


@pytest.mark.parametrize('cls,kwargs,exc,pattern', [
    (RLAResNet, dict(attention='cbam'), ValueError,
     r"attention must be None, 'se', 'eca'.* got 'cbam'"),
    (RLAResNet, dict(attention=True), TypeError, r'attention must be'),
    (RLAResNet, dict(attention=dict(type='se', kernel_size=(3, 3, 3, 3))),
     ValueError, r"'se' takes the keys \('reduction',\).*kernel_size"),
    (RLAResNet, dict(attention=dict(type='eca', kernel_sizes=(5, 5, 5, 7))),
     ValueError, r"'eca' takes the keys \('kernel_size',\).*kernel_sizes"),
    (RLAResNet, dict(attention=dict(type='eca', kernel_size=(5, 5))),
     ValueError, r'kernel_size of attention must be a sequence of 4'),
    (RLAResNet, dict(attention=dict(type='eca', kernel_size=5)),
     TypeError, r'kernel_size of attention must be a sequence of 4'),
    (RLAResNet, dict(attention=dict(type='se', reduction=0)), ValueError,
     r'reduction of attention must be >= 1, got 0'),
    (RLAECANet, dict(attention='se'), ValueError,
     r"RLAECANet has 'eca' attention in every block, got attention='se'"),
    (RLAECANet, dict(attention=dict(type='se')), ValueError,
     r"RLAECANet has 'eca' attention in every block"),
])
def test_bad_attention_raises_clear_errors(cls, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        cls(depth=18, **kwargs)


@pytest.mark.parametrize('kwargs,new', [
    (dict(se=True), "attention='se'"),
    (dict(se='yes'), "attention='se'"),
    (dict(se_reduction=8), "attention=dict(type='se', reduction=8)"),
    (dict(eca_kernel_sizes=(3, 5, 5, 7)),
     "attention=dict(type='eca', kernel_size=(3, 5, 5, 7))"),
    (dict(eca_kernel_sizes=None), 'attention=None'),
    (dict(eca=True), "attention='eca'"),
])
@pytest.mark.parametrize('cls', [RLAResNet, RLAECANet, 'RLAMobileNetV2'])
def test_old_attention_spellings_are_refused_naming_attention(
        cls, kwargs, new):
    """The constructors take the attention in one argument only; each
    earlier spelling is refused with one sentence that writes it there."""
    if cls == 'RLAMobileNetV2':
        from rla_mmdet import RLAMobileNetV2
        cls, args = RLAMobileNetV2, kwargs
    else:
        args = dict(depth=18, **kwargs)
    with pytest.raises(TypeError) as info:
        cls(**args)
    message = str(info.value)
    name, value = next(iter(kwargs.items()))
    assert message == (f'{cls.__name__} takes its attention in one '
                       f'argument: write {new} instead of {name}={value!r}.')
    assert message.count('. ') == 0  # one sentence
    # through the registry, as a config writes it
    with pytest.raises(TypeError, match=re.escape(new)):
        MODELS.build(dict(type=cls.__name__, **args))


def test_the_authors_spellings_stay_with_the_legacy_builder():
    with pytest.warns(DeprecationWarning, match="attention='se'"):
        se = MODELS.build(dict(type='RLA_ResNet', layers=[3, 4, 6, 3],
                               SE=True))
    assert type(se) is RLAResNet and se.attention['type'] == 'se'
    with pytest.warns(DeprecationWarning, match=r"attention=\{'type': 'eca', "
                      r"'kernel_size': \(3, 5, 5, 7\)\}"):
        eca = MODELS.build(dict(type='RLA_ResNet', layers=[3, 4, 6, 3],
                                ECA=[3, 5, 5, 7]))
    assert type(eca) is RLAECANet
    assert eca.attention == dict(type='eca', kernel_size=(3, 5, 5, 7))
    with pytest.raises(ValueError, match='SE=True and ECA=.* one'):
        MODELS.build(dict(type='RLA_ResNet', SE=True, ECA=[5, 5, 5, 7]))
    # any other unknown argument is refused as Python refuses it
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        RLAResNet(depth=18, foo=1)


def test_blocks_and_stage_builder_are_public_for_variants():
    assert RLAResNet.arch_settings[18][0] is RLABasicBlock
    assert RLAResNet.arch_settings[50][0] is RLABottleneck

    class Block(RLABasicBlock):
        """A variant block: its residual branch scaled by one half."""

        def residual(self, x, h):
            return super().residual(x, h) * 0.5

    class Variant(RLAResNet):
        arch_settings = {18: (Block, (1, 1, 1, 1))}
        built = []

        def make_stage(self, block, inplanes, planes, num_blocks, stride,
                       dilation, **kwargs):
            self.built.append((block, planes, num_blocks, stride))
            return super().make_stage(block, inplanes, planes, num_blocks,
                                      stride, dilation, **kwargs)

    model = randomize_norms(build(18, Variant, attention='se')).eval()
    assert Variant.built == [(Block, 64 * 2**i, 1, (1, 2, 2, 2)[i])
                             for i in range(4)]
    assert all(isinstance(s[0], Block) and s[0].se is not None
               for s in model.stages)
    assert [len(b) for b in model.stage_bns] == [1, 1, 1, 0]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
        # The variant's residual is the one that runs.
        plain = copy.deepcopy(model)
        for block in (b for s in plain.stages for b in s):
            block.__class__ = RLABasicBlock
        assert not torch.allclose(outs[-1], plain(x)[-1])
    assert tuple(o.shape[1] for o in outs) == model.out_channels


def test_rla_stage_builder_is_public_for_variants():
    """A variant changes a stage's recurrent modules by overriding
    make_rla_stage: GroupNorm norms and a depthwise recurrent
    convolution here. It builds, runs the literal spec's update with its
    modules, and every parameter gets a gradient."""

    class Variant(RLAResNet):

        def make_rla_stage(self, channels, num_updates):
            k = self.rla_channel
            norms = nn.ModuleList(
                nn.GroupNorm(8, k) for _ in range(num_updates))
            conv_out = nn.Conv2d(channels, k, 1, bias=False)
            recurrent_conv = nn.Conv2d(k, k, 3, padding=1, groups=k,
                                       bias=False)
            return norms, conv_out, recurrent_conv

    model = randomize_norms(build(18, Variant, zero_init_residual=False))
    assert [len(n) for n in model.stage_bns] == [2, 2, 2, 1]
    assert all(isinstance(n, nn.GroupNorm) for s in model.stage_bns
               for n in s)
    assert all(c.groups == 32 for c in model.recurrent_convs)
    assert model.recurrent_convs[0].weight.shape == (32, 1, 3, 3)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        outs = model.eval()(x)
        ref = reference_forward(model, x)
    for a, b in zip(outs, ref):
        assert (a - b).abs().max() <= 1e-5
    assert tuple(o.shape[1] for o in outs) == model.out_channels
    outs = model.train()(x)
    sum(o.mean() for o in outs).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    # frozen with their stage, like the published modules
    frozen = build(18, Variant, frozen_stages=1).train()
    assert not frozen.recurrent_convs[0].weight.requires_grad
    assert frozen.recurrent_convs[1].weight.requires_grad


def _published_file(path, layout, seed=0):
    """A file in the authors' layout (``*.pth.tar``, ``module.`` keys),
    random values under the key names and shapes of ``layout``."""
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in layout.items():
        state['module.' + key] = (
            torch.tensor(7) if key.endswith('num_batches_tracked') else
            torch.randn(shape, generator=g))
    copies = [k for k in state if '.recurrent_dsconvs.' in k]
    for key in copies[1:]:  # one module, stored five times
        state[key] = state[copies[0]].clone()
    torch.save(dict(epoch=120, arch='x', state_dict=state, best_acc1=77.0,
                    optimizer={}), path)
    return state


#: The published ImageNet files: their backbone, and the parameters of the
#: whole network as the paper gives them (binary millions; exact where the
#: authors' code was counted), the shared MobileNetV2 convolution once.
PUBLISHED = [
    ('resnet50_rla_2283', RLAResNet, dict(depth=50), (24.67, 25_870_696)),
    ('ecanet50_rla_2215', RLAECANet, dict(depth=50), (24.67, None)),
    ('resnet101_rla_2148', RLAResNet, dict(depth=101), (42.92, None)),
    ('ecanet101_rla_2100', RLAECANet, dict(depth=101), (42.92, None)),
    ('dsrla_mobilenetv2_k32_2762', RLAMobileNetV2, dict(out_indices=(7, )),
     (3.46, 3_624_168)),
    ('dsrla_mobilenetv2_k32_eca_2707', RLAMobileNetV2,
     dict(out_indices=(7, ), attention='eca'), (3.46, 3_624_199)),
]


@pytest.mark.parametrize('variant,cls,kwargs,paper_params', PUBLISHED,
                         ids=[p[0] for p in PUBLISHED])
def test_published_checkpoints_of_every_variant_load(tmp_path, variant, cls,
                                                     kwargs, paper_params):
    """Each published ImageNet file, in the layout the spec gives (not one
    taken from the package's modules), loads bit-identically into its
    backbone; the key names are those of the published files."""
    eca = 'eca' in variant
    layout = (published_mobilenet_v2_layout(eca) if cls is RLAMobileNetV2
              else published_resnet_layout(kwargs['depth'], eca))
    buffers = ('running_mean', 'running_var', 'num_batches_tracked')
    params = sum(int(torch.Size(shape).numel())
                 for key, shape in layout.items()
                 if not key.endswith(buffers)
                 and not key.startswith(tuple(f'recurrent_dsconvs.{i}.'
                                              for i in range(1, 5))))
    # the layout is the published network
    assert round(params / 1024**2, 2) == paper_params[0]
    assert paper_params[1] in (None, params)
    path = str(tmp_path / f'{variant}.pth.tar')
    state = _published_file(path, layout)
    model = cls(init_cfg=dict(type='Pretrained', checkpoint=path), **kwargs)
    model.init_weights()
    own = model.state_dict()
    for key, value in own.items():
        assert torch.equal(value, state['module.' + key]), key
    unbuilt = unbuilt_prefixes(model)
    assert sorted(own) == sorted(k for k in layout
                                 if not k.startswith(unbuilt))


def test_bf16_autocast_and_float64():
    model = build(18).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    assert outs[0].dtype == torch.bfloat16
    model64 = build(18).double().eval()
    with torch.no_grad():
        outs = model64(x.double())
    assert outs[-1].dtype == torch.float64


def test_hidden_state_follows_the_input_device():
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    for device in devices:
        model = build(18).to(device).eval()
        with torch.no_grad():
            outs = model(torch.rand(1, 3, 64, 64, device=device))
        assert outs[0].device.type == device


def test_registered_in_mmdet_models():
    model = MODELS.build(dict(type='RLAECANet', depth=18))
    assert isinstance(model, RLAECANet)
    assert MODELS.get('RLAResNet') is RLAResNet


def test_legacy_authors_dict_builds_the_same_network():
    with pytest.warns(DeprecationWarning, match="type='RLAECANet'"):
        legacy = MODELS.build(
            dict(type='RLA_ResNet', layers=[3, 4, 6, 3], ECA=[5, 5, 5, 7],
                 frozen_stages=1, norm_eval=True, style='pytorch'))
    new = RLAECANet(depth=50, frozen_stages=1)
    assert type(legacy) is RLAECANet
    assert {k: v.shape for k, v in legacy.state_dict().items()} == \
        {k: v.shape for k, v in new.state_dict().items()}
    assert legacy.frozen_stages == 1 and legacy.norm_eval
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        plain = MODELS.build(dict(type='RLA_ResNet', layers=[3, 4, 23, 3]))
    assert type(plain) is RLAResNet and plain.depth == 101
    assert "dict(type='RLAResNet', depth=101)" in str(caught[0].message)
    with pytest.raises(ValueError, match='layers'):
        MODELS.build(dict(type='RLA_ResNet', layers=[1, 2, 3, 4]))


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize('kwargs,exc,pattern', [
    (dict(depth=42), ValueError, r'depth must be one of .* got 42'),
    (dict(depth='50'), ValueError, r'depth must be one of'),
    (dict(rla_channel=0), ValueError, r'rla_channel must be >= 1, got 0'),
    (dict(rla_channel=3.5), TypeError, r'rla_channel must be an int'),
    (dict(out_indices=(0, 4)), ValueError, r'out_indices must be .* \[0, 3\]'),
    (dict(out_indices=(0, 1)), ValueError, r'num_stages=2'),
    (dict(out_indices=(3, 1)), ValueError, r'out_indices'),
    (dict(out_indices=3), TypeError, r'out_indices'),
    (dict(frozen_stages=5), ValueError, r'frozen_stages must be in \[-1, 4\]'),
    (dict(frozen_stages=-2), ValueError, r'frozen_stages'),
    (dict(strides=(1, 2, 2)), ValueError, r'strides must be a sequence of 4'),
    (dict(dilations=(1, 1, 1, 1, 1)), ValueError, r'dilations'),
    (dict(dilations=(1, 0, 1, 1)), ValueError, r'dilations'),
    (dict(num_stages=5), ValueError, r'num_stages must be in \[1, 4\]'),
    (dict(style='tf'), ValueError, r"style must be one of \('pytorch', "),
    (dict(attention=dict(type='eca', kernel_size=(5, 5, 5))), ValueError,
     r'kernel_size of attention .* 4'),
    (dict(attention=dict(type='eca', kernel_size=(5, 5, 4, 7))), ValueError,
     r'odd'),
    (dict(attention=dict(type='eca', kernel_size=(5, 5, -1, 7))), ValueError,
     r'kernel_size of attention'),
    (dict(attention=dict(type='eca', kernel_size=(5, 5, 5.0, 7))), TypeError,
     r'kernel_size of attention'),
    (dict(attention=dict(type='eca', kernel_size='5557')), TypeError,
     r'kernel_size of attention'),
    (dict(norm_cfg='BN'), TypeError, r'norm_cfg must be a dict'),
    (dict(plugins=[dict(cfg=dict(type='ContextBlock'))]), ValueError,
     r'plugins\[0\] needs a position in'),
    (dict(depth=18, plugins=[dict(cfg=dict(type='ContextBlock'),
                                  position='after_conv1')]), ValueError,
     r'plugins apply to Bottleneck'),
    (dict(plugins=[dict(cfg=dict(type='ContextBlock'), position='after_conv1',
                        stages=(True, ))]), ValueError,
     r'plugins\[0\] stages must have 4 items'),
    (dict(norm_eval='yes'), TypeError, r'norm_eval must be True or False'),
    (dict(with_cp=1), TypeError, r'with_cp'),
    (dict(pretrained='a.pth', init_cfg=dict(type='Pretrained',
                                            checkpoint='b')),
     ValueError, r'pretrained and init_cfg'),
    (dict(depth=18, groups=2), ValueError, r'groups and width_per_group'),
    (dict(stage_with_dcn=(True, )), ValueError, r'stage_with_dcn'),
])
def test_bad_arguments_raise_clear_errors(kwargs, exc, pattern):
    kwargs = dict(dict(depth=50), **kwargs)
    with pytest.raises(exc, match=pattern):
        RLAResNet(**kwargs)


def test_ecanet_refuses_no_eca():
    with pytest.raises(ValueError, match='use RLAResNet'):
        RLAECANet(depth=50, attention=None)


def test_deprecated_pretrained_argument_becomes_init_cfg():
    with pytest.warns(DeprecationWarning, match='init_cfg'):
        model = RLAResNet(depth=18, pretrained='x.pth')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='x.pth')
