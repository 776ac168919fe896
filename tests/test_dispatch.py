"""Every form of the RLA operators, and every dispatch choice of the whole
backbone, against the literal forms and the independent oracle
(``rla_spec.py``); the switch; torch.compile, channels_last, autocast."""
import copy

import pytest
import torch
import torch._dynamo  # torch 2.0 does not import it with torch
import torch.nn as nn
import mmcv.ops  # noqa: F401  registers DCN
from mmcv.cnn import build_conv_layer

from rla_mmdet import RLAECANet, RLAResNet
from rla_mmdet.layers import DISPATCH, current_impl, select_impl
from rla_mmdet.layers import rla_ops
from rla_mmdet.layers.dispatch import choose
from rla_spec import reference_forward, reference_mobilenet_v2_forward
from helpers import assert_same_grads, build, randomize_norms

pytestmark = pytest.mark.core

CHOICES = ('literal', 'cpu', 'cuda', 'auto')


def _grads(fn, inputs, params):
    out = fn()
    g = torch.Generator().manual_seed(1)
    w = torch.rand(out.shape, generator=g, dtype=out.dtype)
    return out, torch.autograd.grad((out * w).sum(), inputs + params)


# ------------------------------------------------------------ the operators
@pytest.mark.parametrize('kernel,stride', [(1, 1), (1, 2), (3, 1), (3, 2)])
@pytest.mark.parametrize('conv_cfg', [None, dict(type='ConvWS')])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('form', ['split'])
def test_concat_conv_forms_equal_the_literal_form(kernel, stride, conv_cfg,
                                                  channels_last, form):
    conv = build_conv_layer(conv_cfg, 40, 24, kernel, stride=stride,
                            padding=kernel // 2, bias=False).double()
    x = torch.randn(2, 32, 9, 11, dtype=torch.float64)
    h = torch.randn(2, 8, 9, 11, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        h = h.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    h.requires_grad_(True)
    ours, g_ours = _grads(lambda: getattr(rla_ops, f'concat_conv_{form}')(
        conv, x, h), (x, h), (conv.weight, ))
    ref, g_ref = _grads(lambda: conv(torch.cat((x, h), 1)), (x, h),
                        (conv.weight, ))
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def _update_modules(norm_type='BN', conv_cfg=None):
    torch.manual_seed(0)
    conv_out = build_conv_layer(conv_cfg, 64, 16, 1, bias=False)
    rconv = build_conv_layer(conv_cfg, 16, 16, 3, padding=1, bias=False)
    norm = (nn.BatchNorm2d(16) if norm_type == 'BN' else nn.GroupNorm(4, 16))
    randomize_norms(norm)
    return conv_out.double(), norm.double(), rconv.double()


@pytest.mark.parametrize('form', ['folded'])
@pytest.mark.parametrize('norm_type', ['BN', 'GN'])
@pytest.mark.parametrize('conv_cfg', [None, dict(type='ConvWS')])
@pytest.mark.parametrize('train', [False, True])
def test_rla_update_forms_equal_the_literal_form(form, norm_type, conv_cfg,
                                                 train):
    conv_out, norm, rconv = _update_modules(norm_type, conv_cfg)
    # Batch statistics in training, except for the folded form, which
    # applies to eval-mode norms (norm_eval) under autograd too.
    norm.train(train and form != 'folded')
    literal = copy.deepcopy(norm)
    x = torch.randn(2, 64, 7, 9, dtype=torch.float64, requires_grad=train)
    h = torch.randn(2, 16, 7, 9, dtype=torch.float64, requires_grad=train)
    fn = getattr(rla_ops, f'rla_update_{form}')
    with torch.set_grad_enabled(train):
        ours = fn(conv_out, norm, rconv, x, h)
        ref = rla_ops.rla_update_literal(conv_out, literal, rconv, x, h)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    if train:
        params = (conv_out.weight, rconv.weight, norm.weight, norm.bias)
        g_ours = torch.autograd.grad(ours.sum(), (x, h) + params)
        g_ref = torch.autograd.grad(
            ref.sum(), (x, h, conv_out.weight, rconv.weight, literal.weight,
                        literal.bias))
        for a, b in zip(g_ours, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        # Batch statistics were updated alike.
        for a, b in zip(norm.buffers(), literal.buffers()):
            torch.testing.assert_close(a, b)


# ------------------------------------------------------------ the dispatch
def test_dispatch_table_and_switch():
    assert current_impl() == 'auto'
    assert choose('concat_conv', 'cpu', True) == 'split'
    assert choose('concat_conv', 'cpu', False) == 'split'
    assert choose('rla_update', 'cpu', False) == 'folded'
    assert choose('rla_update', 'cpu', True) == 'literal'
    for training in (False, True):
        # CUDA runs the literal forms (measured faster there).
        assert choose('concat_conv', 'cuda', training) == 'literal'
        assert choose('rla_update', 'cuda', training) == 'literal'
        # An unknown device type or operator runs the literal form.
        assert choose('rla_update', 'xpu', training) == 'literal'
    assert choose('no_such_op', 'cpu', True) == 'literal'
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert choose('concat_conv', 'cpu', True) == 'literal'
    with select_impl('cuda'):
        assert current_impl() == 'cuda'
        assert choose('concat_conv', 'cpu', True) == 'literal'
        with select_impl('literal'):
            assert choose('rla_update', 'cpu', False) == 'literal'
        assert current_impl() == 'cuda'
    assert current_impl() == 'auto'
    previous = select_impl('cpu')  # as a function: stays until changed
    try:
        assert choose('rla_update', 'cuda', False) == 'folded'
    finally:
        select_impl(previous.previous)
    assert current_impl() == 'auto'
    with pytest.raises(ValueError, match="select_impl takes one of"):
        select_impl('fast')
    # Every row names forms that exist.
    for row in DISPATCH.values():
        assert row['concat_conv'] in rla_ops._CONCAT_CONV
        assert row['rla_update'] in rla_ops._RLA_UPDATE


def test_forced_choice_runs_that_devices_forms(monkeypatch):
    """Under select_impl('cuda') a CPU forward runs only literal forms; under
    'cpu' the split and folded forms run."""
    called = []
    for table in (rla_ops._CONCAT_CONV, rla_ops._RLA_UPDATE):
        for name, fn in list(table.items()):
            monkeypatch.setitem(
                table, name,
                lambda *a, _n=name, _f=fn: called.append(_n) or _f(*a))
    model = build(18).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        with select_impl('cuda'):
            model(x)
        assert set(called) == {'literal'}
        called.clear()
        with select_impl('cpu'):
            model(x)
        assert set(called) == {'split', 'folded'}
        called.clear()
        model(x)  # auto, on the CPU
        assert set(called) == {'split', 'folded'}
    called.clear()
    model.train()
    model(x)
    assert set(called) == {'split', 'literal'}


def test_every_backbone_and_classifier_runs_the_one_update(monkeypatch):
    """RLA-ResNet, RLA-MobileNetV2 and the ImageNet classifier around
    RLA-ResNet update the hidden state through the one dispatched operator:
    on the CPU in eval mode, its folded form."""
    from rla_mmdet import RLAMobileNetV2
    from rla_mmdet.analysis import RLAClassifier
    called = []
    for name, fn in list(rla_ops._RLA_UPDATE.items()):
        monkeypatch.setitem(
            rla_ops._RLA_UPDATE, name,
            lambda *a, _n=name, _f=fn: called.append(_n) or _f(*a))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for model, updates in [(build(18), 7),
                               (RLAMobileNetV2(out_indices=(7, )), 17),
                               (RLAClassifier(build(18)), 8)]:
            called.clear()
            model.eval()(x)
            assert called == ['folded'] * updates, type(model).__name__
            called.clear()
            with select_impl('literal'):
                model(x)
            assert called == ['literal'] * updates


# ------------------------------------------- whole backbone, every choice
MODELS = [
    (RLAResNet, 50, {}),
    (RLAECANet, 18, {}),
    (RLAResNet, 50, dict(style='caffe', attention='se')),
    (RLAResNet, 34, {}),
    (RLAResNet, 18, dict(conv_cfg=dict(type='ConvWS'))),
    (RLAResNet, 18, dict(conv_cfg=dict(type='ConvWS'),
                         norm_cfg=dict(type='GN', num_groups=8))),
    (RLAResNet, 50, dict(conv_cfg=dict(type='ConvWS'))),
    (RLAResNet, 50, dict(dcn=dict(type='DCN', deform_groups=1,
                                  fallback_on_stride=False),
                         stage_with_dcn=(False, True, True, True))),
]


def _ids(params):
    cls, depth, kwargs = params
    return f'{cls.__name__}{depth}-' + '-'.join(sorted(kwargs)) or 'plain'


@pytest.mark.parametrize('choice', CHOICES)
@pytest.mark.parametrize('params', MODELS, ids=_ids)
def test_eval_forward_of_every_choice_equals_the_spec(choice, params):
    cls, depth, kwargs = params
    model = randomize_norms(build(depth, cls, **kwargs)).eval()
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        ref = reference_forward(model, x)
        with select_impl(choice):
            ours = model(x)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        err = ((a - b).abs().max() / b.abs().max()).item()
        assert err <= 1e-5, (choice, err)


@pytest.mark.parametrize('choice', CHOICES)
@pytest.mark.parametrize('params', [
    (RLAResNet, 50, {}),
    (RLAECANet, 50, dict(frozen_stages=1)),
    (RLAResNet, 50, dict(norm_eval=False)),
    (RLAResNet, 18, dict(conv_cfg=dict(type='ConvWS'),
                         norm_cfg=dict(type='GN', num_groups=8))),
    (RLAResNet, 18, dict(with_cp=True, norm_eval=False)),
], ids=_ids)
def test_training_gradients_of_every_choice_equal_the_spec(choice, params):
    """In float64, so that only a change of the mathematics could exceed
    the tolerance."""
    cls, depth, kwargs = params
    model = randomize_norms(build(depth, cls, **kwargs)).double()
    ref = copy.deepcopy(model)
    model.train()
    ref.train()
    x1 = torch.rand(2, 3, 64, 96, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    with select_impl(choice):
        outs = model(x1)
    ref_outs = reference_forward(ref, x2)
    weights = [torch.rand(o.shape, dtype=torch.float64) for o in outs]
    with select_impl(choice):
        sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    sum((o * w).sum() for o, w in zip(ref_outs, weights)).backward()
    for a, b in zip(outs, ref_outs):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-7, atol=1e-9)
    assert_same_grads(model, ref, rtol=1e-7, atol=1e-9)
    if not model.with_cp:
        # (with_cp re-runs each block in backward, and its batch norms then
        # update their running statistics a second time, as in mmdet.)
        for (name, a), b in zip(model.named_buffers(), ref.buffers()):
            torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize('choice', CHOICES)
@pytest.mark.parametrize('eca', [False, True], ids=['plain', 'eca'])
def test_rla_mobilenet_v2_every_choice_equals_the_spec(choice, eca):
    from rla_mmdet import RLAMobileNetV2
    out_indices = (1, 2, 4, 7)
    model = randomize_norms(RLAMobileNetV2(
        out_indices=out_indices, attention='eca' if eca else None)).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        ref = reference_mobilenet_v2_forward(
            dict(model.state_dict()), x, out_indices, eca)
        with select_impl(choice):
            ours = model(x)
    assert len(ours) == len(ref) == 4
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        err = ((a - b).abs().max() / b.abs().max()).item()
        assert err <= 1e-5, (choice, err)


# torch 2.0's dynamo stops at torch.is_autocast_cpu_enabled() (the dispatch
# reads it) under fullgraph=True: "torch.* op returned non-Tensor bool".
_NEEDS_TORCH_21 = pytest.mark.skipif(
    tuple(int(p) for p in torch.__version__.split('.')[:2]) < (2, 1),
    reason='fullgraph torch.compile of the dispatch needs torch >= 2.1')


# ---------------------------------------- compile, channels_last, autocast
@_NEEDS_TORCH_21
@pytest.mark.parametrize('choice', ['auto', 'literal'])
def test_torch_compile_fullgraph_matches_the_spec(choice):
    torch._dynamo.reset()  # each test compiles from scratch
    model = randomize_norms(build(18)).eval()
    x = torch.rand(1, 3, 64, 64)
    with select_impl(choice):
        compiled = torch.compile(model, fullgraph=True)
        with torch.no_grad():
            outs = compiled(x)
            ref = reference_forward(model, x)
    for a, b in zip(outs, ref):
        assert (a - b).abs().max() <= 1e-5


@_NEEDS_TORCH_21
def test_torch_compile_fullgraph_training_step():
    torch._dynamo.reset()
    model = build(18, frozen_stages=1).train()
    ref = copy.deepcopy(model)
    x = torch.rand(2, 3, 64, 64)
    compiled = torch.compile(model, fullgraph=True)
    sum(o.sum() for o in compiled(x)).backward()
    sum(o.sum() for o in reference_forward(ref, x)).backward()
    assert_same_grads(model, ref, rtol=1e-3, atol=1e-4)


def test_channels_last_gives_the_same_outputs():
    model = randomize_norms(build(50)).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        model.to(memory_format=torch.channels_last)
        outs = model(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(outs, ref):
        assert a.is_contiguous(memory_format=torch.channels_last)
        assert (a - b).abs().max() <= 1e-5


def test_channels_last_training_step():
    model = build(18, frozen_stages=1).train()
    model.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    sum(o.mean() for o in model(x)).backward()
    assert model.stages[3][1].conv2.weight.grad is not None


def test_bf16_autocast_is_close_to_fp32():
    model = randomize_norms(build(50, RLAECANet)).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs = model(x)
    for a, b in zip(outs, ref):
        assert a.dtype == torch.bfloat16
        err = (a.float() - b).abs().max() / b.abs().max()
        assert err < 0.1, err


def test_bf16_autocast_training_step():
    model = build(18).train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(torch.rand(2, 3, 64, 64))
    sum(o.float().mean() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters())
