"""The optimised forward under torch.compile, channels_last and autocast,
and the benchmark tool's measurements."""
import copy
import json
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from rla_mmdet import RLAECANet, RLAResNet
from rla_mmdet.backbones.reference import reference_forward
from rla_mmdet.backbones.rla_resnet import conv1x1, conv_on_concat
from rla_mmdet.benchmark import saved_activation_bytes, summarize
from test_backbone import build, randomize_norms


@pytest.mark.parametrize('kernel,stride', [(1, 1), (1, 2), (3, 1), (3, 2)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_conv_on_concat_equals_conv_of_the_concatenation(
        kernel, stride, channels_last):
    conv = nn.Conv2d(40, 24, kernel, stride=stride, padding=kernel // 2,
                     bias=False)
    x, h = torch.randn(2, 32, 9, 11), torch.randn(2, 8, 9, 11)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        h = h.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    h.requires_grad_(True)
    ours = conv_on_concat(conv, x, h)
    ref = conv(torch.cat((x, h), 1))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn(ref.shape)
    gx, gh, gw = torch.autograd.grad((ours * g).sum(), (x, h, conv.weight))
    rx, rh, rw = torch.autograd.grad((ref * g).sum(), (x, h, conv.weight))
    for a, b in [(gx, rx), (gh, rh), (gw, rw)]:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_conv1x1_matches_the_module_and_falls_back():
    conv = nn.Conv2d(16, 4, 1, bias=False)
    x = torch.randn(3, 16, 5, 7)
    torch.testing.assert_close(conv1x1(conv, x), conv(x))
    cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(conv1x1(conv, cl), conv(x))
    biased = nn.Conv2d(16, 4, 1, bias=True)
    torch.testing.assert_close(conv1x1(biased, x), biased(x))


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


def test_torch_compile_matches_eager():
    model = randomize_norms(build(18)).eval()
    x = torch.rand(1, 3, 64, 64)
    compiled = torch.compile(model)
    with torch.no_grad():
        ref = reference_forward(model, x)
        outs = compiled(x)
    for a, b in zip(outs, ref):
        assert (a - b).abs().max() <= 1e-5


def test_saved_activation_bytes_counts_what_autograd_keeps():
    # Linear saves its input; ReLU saves its output; shared storages count
    # once and parameters never.
    model = nn.Sequential(nn.Linear(100, 50), nn.ReLU())
    x = torch.rand(8, 100, requires_grad=True)
    assert saved_activation_bytes(model, x) == 8 * 100 * 4 + 8 * 50 * 4


def test_with_cp_saves_fewer_activations():
    x = torch.rand(2, 3, 128, 128)
    plain = build(50, frozen_stages=1).train()
    ckpt = build(50, frozen_stages=1, with_cp=True).train()
    saved_plain = saved_activation_bytes(plain, x)
    saved_cp = saved_activation_bytes(ckpt, x)
    assert saved_cp < 0.6 * saved_plain


def test_rla_saves_at_most_ten_percent_more_than_resnet():
    from mmdet.models.backbones import ResNet
    x = torch.rand(2, 3, 128, 128)
    rla = build(50, frozen_stages=1).train()
    resnet = ResNet(depth=50, frozen_stages=1)
    resnet.train()
    ratio = saved_activation_bytes(rla, x) / saved_activation_bytes(resnet, x)
    assert 1.0 < ratio <= 1.10, ratio


def test_summarize_ratios():
    s = summarize({'rla': [2.0, 3.0, 4.0], 'resnet': [1.0, 2.0, 8.0]})
    assert s['rla']['ratio_min'] == 2.0
    assert s['rla']['ratio_median'] == 1.5
    assert s['resnet']['max_ms'] == 8000.0
    assert s['rla']['ratio_paired'] == 1.5  # median of 2, 1.5, 0.5


def test_benchmark_tool_runs_and_writes_json(tmp_path):
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--depth', '18',
         '--shape', '64', '64', '--train-shape', '64', '64', '--repeat', '2',
         '--train-repeat', '1', '--tasks', 'eval', 'train',
         'memory', 'flops', 'profile', '--json', str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'ratio(min)' in proc.stdout
    result = json.loads(out.read_text())
    assert set(result['eval_forward']) == {'rla', 'resnet'}
    assert set(result['train_step']) == {'rla', 'resnet', 'rla_cp',
                                         'resnet_cp'}
    assert result['rla_forward'] == 'optimised'
    assert result['eval_forward']['resnet']['ratio_min'] == 1.0
    assert result['saved_activations']['ratio'] > 1.0
    comp = result['complexity']
    assert comp['rla']['params'] == sum(
        p.numel() for p in RLAResNet(depth=18).parameters())
    assert comp['ratio_flops'] > 1.0
    # The profile covers forward and backward of both models, and RLA's
    # extra operators (the hidden state's tanh) show up only on its side.
    profile = result['train_profile_ms']
    assert 'training step profile' in proc.stdout
    for name in ('rla', 'resnet'):
        assert any('convolution' in k and 'backward' in k.lower()
                   for k in profile[name]), sorted(profile[name])[:20]

    def tanh_ms(ops):
        return sum(v for k, v in ops.items() if k.startswith('aten::tanh'))

    assert tanh_ms(profile['rla']) > 0
    assert tanh_ms(profile['resnet']) == 0


@pytest.mark.parametrize('cls,kwargs', [(RLAResNet, {}),
                                        (RLAECANet, dict(frozen_stages=1)),
                                        (RLAResNet, dict(norm_eval=False))])
def test_training_gradients_equal_the_literal_spec(cls, kwargs):
    """The training forward (stacked conv_out / conv1, split concatenation)
    gives the outputs and gradients of the literal formulation. In float64,
    so that only a change of the mathematics could exceed the tolerance."""
    model = randomize_norms(build(50, cls, **kwargs)).double()
    ref = copy.deepcopy(model)
    model.train()
    ref.train()
    x1 = torch.rand(2, 3, 64, 96, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    outs, ref_outs = model(x1), reference_forward(ref, x2)
    weights = [torch.rand(o.shape, dtype=torch.float64) for o in outs]
    sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    sum((o * w).sum() for o, w in zip(ref_outs, weights)).backward()
    for a, b in zip(outs, ref_outs):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-7, atol=1e-9)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-7, atol=1e-9,
                                       msg=name)
