"""tools/analysis/benchmark.py: what it measures (saved activations,
operator counts, summaries) and its runs, which write JSON."""
import json
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from rla_mmdet import RLAResNet
from helpers import ROOT, build, load_tool


def _benchmark():
    return load_tool('analysis/benchmark.py')


def test_saved_activation_bytes_counts_what_autograd_keeps():
    # Linear saves its input; ReLU saves its output; shared storages count
    # once and parameters never.
    bench = _benchmark()
    model = nn.Sequential(nn.Linear(100, 50), nn.ReLU())
    x = torch.rand(8, 100, requires_grad=True)
    assert bench.saved_activation_bytes(model, x) == 8 * 100 * 4 + 8 * 50 * 4


def test_with_cp_saves_fewer_activations():
    bench = _benchmark()
    x = torch.rand(2, 3, 128, 128)
    plain = build(50, frozen_stages=1).train()
    ckpt = build(50, frozen_stages=1, with_cp=True).train()
    saved_plain = bench.saved_activation_bytes(plain, x)
    saved_cp = bench.saved_activation_bytes(ckpt, x)
    assert saved_cp < 0.6 * saved_plain


def test_rla_saves_at_most_five_percent_more_than_resnet_on_cpu():
    from mmdet.models.backbones import ResNet
    bench = _benchmark()
    x = torch.rand(2, 3, 128, 128)
    rla = build(50, frozen_stages=1).train()
    resnet = ResNet(depth=50, frozen_stages=1)
    resnet.train()
    ratio = (bench.saved_activation_bytes(rla, x) /
             bench.saved_activation_bytes(resnet, x))
    assert 1.0 < ratio <= 1.05, ratio


def test_summarize_ratios():
    s = _benchmark().summarize({'rla': [2.0, 3.0, 4.0],
                                'resnet': [1.0, 2.0, 8.0]})
    assert s['rla']['ratio_min'] == 2.0
    assert s['rla']['ratio_median'] == 1.5
    assert s['resnet']['max_ms'] == 8000.0
    assert s['rla']['ratio_paired'] == 1.5  # median of 2, 1.5, 0.5


def test_count_ops_counts_top_level_operators():
    bench = _benchmark()
    x = torch.rand(4, 4)
    none = bench.count_ops(lambda: None)
    one = bench.count_ops(lambda: x + 1)
    three = bench.count_ops(lambda: torch.relu(x @ x + 1))
    assert none['ops'] == 0
    assert 1 <= one['ops'] <= one['aten_calls']
    # matmul, add, relu: 3 top-level calls of 12 in all
    assert three['aten_calls'] == 12
    if _profiler_times_are_whole_microseconds():
        # A nested call that starts and ends in the same microsecond as its
        # neighbours can lose its parent: then it counts as top-level too.
        assert 3 <= three['ops'] <= three['aten_calls']
    else:
        assert one['ops'] == 1
        assert three['ops'] == 3


def _profiler_times_are_whole_microseconds():
    from torch.profiler import ProfilerActivity, profile
    x = torch.rand(4, 4)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(20):
            x + 1
    starts = [e.time_range.start for e in prof.events()]
    return all(float(t).is_integer() for t in starts)


@pytest.mark.slow
def test_benchmark_tool_runs_and_writes_json(tmp_path):
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--depth', '18',
         '--shape', '64', '64', '--train-shape', '64', '64', '--repeat', '2',
         '--train-repeat', '1', '--tasks', 'eval', 'train', 'ops',
         'memory', 'flops', 'profile', '--json', str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'ratio(min)' in proc.stdout
    result = json.loads(out.read_text())
    assert set(result['eval_forward']) == {'rla', 'resnet'}
    assert set(result['train_step']) == {'rla', 'resnet', 'rla_cp',
                                         'resnet_cp'}
    assert result['impl'] == 'auto'
    assert result['eval_forward']['resnet']['ratio_min'] == 1.0
    assert result['saved_activations']['ratio'] > 1.0
    comp = result['complexity']
    assert comp['rla']['params'] == sum(
        p.numel() for p in RLAResNet(depth=18).parameters())
    assert comp['ratio_flops'] > 1.0
    # The CPU forms and the literal ones (the CUDA choice) dispatch
    # different numbers of operators, and RLA more than ResNet.
    ops = result['ops_train_step']

    def same(a, b):
        # every aten call: torch 2.1's top-level count varies between runs
        # (see test_count_ops_counts_top_level_operators)
        return abs(a['aten_calls'] - b['aten_calls']) <= 0.02 * b['aten_calls']

    assert same(ops['rla (cuda)'], ops['rla (literal)'])
    assert same(ops['rla (auto)'], ops['rla (cpu)'])
    assert not same(ops['rla (cpu)'], ops['rla (literal)'])
    assert ops['resnet']['aten_calls'] < ops['rla (literal)']['aten_calls']
    evals = result['ops_eval_forward']
    assert not same(evals['rla (cpu)'], evals['rla (literal)'])
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


@pytest.mark.slow
@pytest.mark.parametrize('amp', [False, True])
def test_benchmark_detector_training_step(tmp_path, amp):
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--train-shape', '64',
         '64', '--train-repeat', '1', '--tasks', 'detector_train', '--json',
         str(out)] + (['--amp'] if amp else []),
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['amp'] is amp
    # bfloat16 autocast on the CPU: mmcv's CPU nms takes float32 only, so
    # the two-stage detector is skipped, and said so.
    families = ('retinanet', ) if amp else ('faster_rcnn', 'retinanet')
    assert [k for k in result if k.endswith('_train_step')] == [
        f'{f}_train_step' for f in families]
    for family in families:
        step = result[f'{family}_train_step']
        assert set(step) == {'rla', 'resnet'}
        assert step['rla']['min_ms'] > 0
    assert 'retinanet training step (loss + backward), batch 2' in proc.stdout
    assert ('Faster R-CNN skipped' in proc.stdout) is amp


def test_benchmark_compares_rla_mobilenet_v2_with_mobilenet_v2(tmp_path):
    from rla_mmdet import RLAMobileNetV2
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--variant',
         'mobilenetv2', '--shape', '64', '64', '--repeat', '1', '--tasks',
         'eval', 'flops', '--json', str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    comp = json.loads(out.read_text())['complexity']
    assert comp['rla']['params'] == sum(
        p.numel() for p in RLAMobileNetV2().parameters())
    assert comp['resnet']['params'] == 2_223_872  # mmdet's MobileNetV2
    assert comp['ratio_flops'] > 1.0
