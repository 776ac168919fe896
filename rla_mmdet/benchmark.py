"""RLA backbone against mmdet's ResNet of the same depth, in one process.

Used by ``tools/analysis/benchmark.py``. Every timing runs the two models
interleaved (alternating which goes first) so that both see the same machine
state, and reports min / median / max and the RLA/ResNet ratio of the mins
and of the medians. On a GPU, times come from CUDA events and the training
step also reports ``torch.cuda.max_memory_allocated``.
"""
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .backbones import RLAECANet, RLAResNet
from .backbones.reference import reference_forward


class _Literal(nn.Module):
    """An RLA backbone run with the literal forward of the spec: the
    straightforward implementation, the "before" of the optimisations."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return reference_forward(self.backbone, x)


def build_backbones(depth: int = 50,
                    variant: str = 'rla',
                    device: str = 'cpu',
                    **kwargs) -> Dict[str, nn.Module]:
    """The RLA backbone and mmdet's ``ResNet`` with identical settings."""
    from mmdet.models.backbones import ResNet
    cls = RLAECANet if variant == 'eca' else RLAResNet
    torch.manual_seed(0)
    rla = cls(depth=depth, **kwargs)
    rla.init_weights()
    torch.manual_seed(0)
    resnet = ResNet(depth=depth, **kwargs)
    resnet.init_weights()
    return {'rla': rla.to(device), 'resnet': resnet.to(device)}


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_interleaved(fns: Dict[str, Callable[[], object]],
                     repeat: int,
                     warmup: int = 2,
                     device: str = 'cpu') -> Dict[str, List[float]]:
    """Seconds of each call of each function, run alternately."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    _sync(device)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in (names if r % 2 == 0 else names[::-1]):
            if device.startswith('cuda'):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fns[name]()
                end.record()
                torch.cuda.synchronize()
                times[name].append(start.elapsed_time(end) / 1000)
            else:
                t = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t)
    return times


def summarize(times: Dict[str, List[float]],
              baseline: str = 'resnet') -> Dict[str, dict]:
    """min / median / max in ms and the ratios against ``baseline``.

    ``ratio_paired`` is the median over the repetitions of the ratio of the
    two calls made side by side in that repetition: a slow spell of a noisy
    machine slows both calls of a pair, so it is the steadiest of the three
    ratios.
    """
    out = {}
    base = times[baseline]
    for name, ts in times.items():
        out[name] = dict(
            min_ms=min(ts) * 1e3,
            median_ms=statistics.median(ts) * 1e3,
            max_ms=max(ts) * 1e3,
            n=len(ts),
            ratio_min=min(ts) / min(base),
            ratio_median=statistics.median(ts) / statistics.median(base),
            ratio_paired=statistics.median(
                t / b for t, b in zip(ts, base)))
    return out


def saved_activation_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward in one forward.

    Counted with ``torch.autograd.graph.saved_tensors_hooks``: every tensor
    saved for backward, deduplicated by storage (in-place ops and views share
    one), parameters and buffers excluded. With gradient checkpointing the
    checkpointed blocks save only their inputs, which are counted.
    """
    own = {t.untyped_storage().data_ptr()
           for t in list(model.parameters()) + list(model.buffers())}
    seen: Dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in own and ptr != 0:
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outs = model(inputs)
    del outs
    return sum(seen.values())


def train_step(model: nn.Module, inputs: torch.Tensor) -> None:
    """Forward and backward of a backbone with a loss on all its outputs."""
    outs = model(inputs)
    sum(o.float().mean() for o in outs).backward()
    for p in model.parameters():
        p.grad = None


def op_profile(fns: Dict[str, Callable[[], object]],
               steps: int = 5,
               warmup: int = 2) -> Dict[str, Dict[str, float]]:
    """Self CPU time per operator (ms per call of ``fn``), from
    ``torch.profiler``: where each model's time goes, backward included.

    Every call is profiled on its own, the functions alternating as in
    :func:`time_interleaved`, and each operator's time is its median over
    the ``steps`` calls, so one slow call does not skew the table. The
    profiler's own per-op overhead inflates the totals, most for the model
    with more (and smaller) operators: compare the per-op figures, take the
    ratios from the timed runs.
    """
    from torch.profiler import ProfilerActivity, profile
    samples: Dict[str, List[Dict[str, float]]] = {name: [] for name in fns}

    def profiled(name: str) -> None:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fns[name]()
        per_op: Dict[str, float] = {}
        for event in prof.key_averages():
            per_op[event.key] = per_op.get(event.key, 0.0) + \
                event.self_cpu_time_total / 1e3
        samples[name].append(per_op)

    time_interleaved(fns, 0, warmup)  # the warm-up calls only
    time_interleaved({name: (lambda n=name: profiled(n)) for name in fns},
                     steps, warmup=0)
    return {
        name: {
            op: statistics.median(s.get(op, 0.0) for s in runs)
            for op in set().union(*runs)
        }
        for name, runs in samples.items()
    }


def _profile_table(title: str, ops: Dict[str, Dict[str, float]],
                   top: int = 12) -> str:
    rla, base = ops['rla'], ops['resnet']
    names = sorted(set(rla) | set(base),
                   key=lambda k: -abs(rla.get(k, 0.0) - base.get(k, 0.0)))
    lines = [title,
             f"  {'operator (self CPU time)':<56}{'rla ms':>10}"
             f"{'resnet ms':>11}{'extra ms':>10}"]
    for key in names[:top]:
        a, b = rla.get(key, 0.0), base.get(key, 0.0)
        lines.append(f'  {key[:55]:<56}{a:>10.1f}{b:>11.1f}{a - b:>+10.1f}')
    a, b = sum(rla.values()), sum(base.values())
    lines.append(f"  {'all operators':<56}{a:>10.1f}{b:>11.1f}{a - b:>+10.1f}")
    return '\n'.join(lines)


def complexity(model: nn.Module, shape: Tuple[int, int]) -> dict:
    """Parameters and FLOPs (multiply-adds) from ``mmengine.analysis``."""
    from .analysis import complexity as count
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        result = count(model, torch.rand(1, 3, *shape, device=device))
    params, flops = result.params, result.flops
    return dict(params=params, params_M=params / 1e6,
                params_binary_M=params / 1024**2, flops=flops,
                flops_G=flops / 1e9, flops_binary_G=flops / 1024**3)


def build_detectors(device: str = 'cpu') -> Dict[str, nn.Module]:
    """Faster R-CNN with RLA-R50 (our config) and with mmdet's ResNet-50."""
    import os.path as osp
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
    register_all_modules()
    init_default_scope('mmdet')
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    configs = {
        'rla': osp.join(root, 'configs', 'faster_rcnn',
                        'faster-rcnn_rla-r50_fpn_1x_coco.py'),
        'resnet': 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    }
    models = {}
    for name, path in configs.items():
        cfg = get_config(path) if '::' in path else Config.fromfile(path)
        cfg.model.backbone.init_cfg = None
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        models[name] = model.to(device).eval()
    return models


def detector_inputs(model: nn.Module, shape: Tuple[int, int],
                    device: str) -> dict:
    from mmdet.structures import DetDataSample
    h, w = shape
    sample = DetDataSample(metainfo=dict(
        img_shape=shape, ori_shape=shape, pad_shape=shape,
        scale_factor=(1., 1.), batch_input_shape=shape))
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 255, (3, h, w), generator=g, dtype=torch.uint8)
    return model.data_preprocessor(
        dict(inputs=[img.to(device)], data_samples=[sample]), False)


def run(depth: int = 50,
        variant: str = 'rla',
        shape: Sequence[int] = (800, 1216),
        train_shape: Sequence[int] = (512, 512),
        train_batch: int = 2,
        repeat: int = 10,
        train_repeat: int = 6,
        device: str = 'cpu',
        channels_last: bool = False,
        literal: bool = False,
        tasks: Sequence[str] = ('eval', 'train', 'memory', 'flops',
                                'detector'),  # and 'profile'
        log: Callable[[str], None] = print) -> dict:
    """Run the selected measurements and return them as a dict."""
    shape, train_shape = tuple(shape), tuple(train_shape)
    memory_format = (torch.channels_last if channels_last else
                     torch.contiguous_format)
    results: dict = dict(
        depth=depth, variant=variant, device=device,
        rla_forward='literal' if literal else 'optimised',
        device_name=(torch.cuda.get_device_name(device)
                     if device.startswith('cuda') else 'cpu'),
        threads=torch.get_num_threads(), torch=torch.__version__,
        channels_last=channels_last, shape=shape, train_shape=train_shape,
        train_batch=train_batch)

    def train_models(with_cp: bool = False) -> Dict[str, nn.Module]:
        """RLA and ResNet set up for the training step (frozen_stages=1)."""
        models = build_backbones(depth, variant, device, frozen_stages=1,
                                 with_cp=with_cp)
        for name, m in models.items():
            m.train()
            m.to(memory_format=memory_format)
            if literal and name == 'rla':
                models[name] = _Literal(m)
        return models

    if 'eval' in tasks:
        models = build_backbones(depth, variant, device)
        for m in models.values():
            m.eval()  # mmdet's ResNet.train() returns None: no chaining
            m.to(memory_format=memory_format)
        x = torch.rand(1, 3, *shape, device=device).to(
            memory_format=memory_format)
        if literal:
            models['rla'] = _Literal(models['rla'])
        fns = {name: (lambda m=m: m(x)) for name, m in models.items()}
        with torch.no_grad():
            times = time_interleaved(fns, repeat, device=device)
        results['eval_forward'] = summarize(times)
        log(_table(f'eval forward, batch 1, {shape[0]}x{shape[1]}',
                   results['eval_forward']))
        del models, fns, x

    if 'train' in tasks or 'memory' in tasks:
        variants = {}
        for with_cp in (False, True):
            for name, m in train_models(with_cp=with_cp).items():
                variants[f'{name}{"_cp" if with_cp else ""}'] = m
        x = torch.rand(train_batch, 3, *train_shape, device=device).to(
            memory_format=memory_format)
        if 'train' in tasks:
            fns = {name: (lambda m=m: train_step(m, x))
                   for name, m in variants.items()}
            times = time_interleaved(fns, train_repeat, device=device)
            results['train_step'] = summarize(times)
            log(_table(f'training step, batch {train_batch}, '
                       f'{train_shape[0]}x{train_shape[1]}, frozen_stages=1',
                       results['train_step']))
            if device.startswith('cuda'):
                peak = {}
                for name, m in variants.items():
                    torch.cuda.reset_peak_memory_stats(device)
                    train_step(m, x)
                    peak[name] = torch.cuda.max_memory_allocated(device)
                results['train_peak_memory_bytes'] = peak
                log('peak CUDA memory (MiB): ' + ', '.join(
                    f'{k} {v / 2**20:.0f}' for k, v in peak.items()))
        if 'memory' in tasks:
            saved = {name: saved_activation_bytes(m, x)
                     for name, m in variants.items()}
            results['saved_activations'] = dict(
                bytes=saved,
                ratio=saved['rla'] / saved['resnet'],
                ratio_cp=saved['rla_cp'] / saved['resnet_cp'],
                rla_cp_saving=1 - saved['rla_cp'] / saved['rla'])
            log('saved activations (MiB): ' + ', '.join(
                f'{k} {v / 2**20:.1f}' for k, v in saved.items()))
            log(f"  RLA/ResNet {results['saved_activations']['ratio']:.3f}, "
                f"with_cp {results['saved_activations']['ratio_cp']:.3f}; "
                'with_cp saves '
                f"{results['saved_activations']['rla_cp_saving']:.1%} of "
                'RLA\'s bytes')
        del variants, x

    if 'profile' in tasks:
        models = train_models()
        x = torch.rand(train_batch, 3, *train_shape, device=device).to(
            memory_format=memory_format)
        ops = op_profile({name: (lambda m=m: train_step(m, x))
                          for name, m in models.items()})
        results['train_profile_ms'] = ops
        log(_profile_table(
            f'training step profile, batch {train_batch}, '
            f'{train_shape[0]}x{train_shape[1]} (largest differences)', ops))
        del models, x

    if 'flops' in tasks:
        models = build_backbones(depth, variant, device)
        comp = {name: complexity(m, shape) for name, m in models.items()}
        comp['ratio_flops'] = comp['rla']['flops'] / comp['resnet']['flops']
        comp['ratio_params'] = comp['rla']['params'] / comp['resnet']['params']
        results['complexity'] = comp
        for name in ('rla', 'resnet'):
            c = comp[name]
            log(f"{name}: {c['params']:,} params ({c['params_M']:.2f}M, "
                f"{c['params_binary_M']:.2f}M binary), {c['flops_G']:.1f} "
                f"GFLOPs ({c['flops_binary_G']:.1f}G binary) at "
                f'{shape[0]}x{shape[1]}')
        log(f"  FLOPs ratio {comp['ratio_flops']:.3f}, params ratio "
            f"{comp['ratio_params']:.3f}")
        del models

    if 'detector' in tasks and depth == 50 and variant == 'rla':
        detectors = build_detectors(device)
        data = {name: detector_inputs(m, shape, device)
                for name, m in detectors.items()}
        fns = {name: (lambda m=m, d=data[name]: m(**d, mode='predict'))
               for name, m in detectors.items()}
        if literal:
            from .analysis import literal_rla
            rla_det, rla_data = detectors['rla'], data['rla']

            def literal_detector():
                with literal_rla(rla_det):
                    return rla_det(**rla_data, mode='predict')

            fns['rla'] = literal_detector
        with torch.no_grad():
            times = time_interleaved(fns, max(repeat // 2, 3), device=device)
        results['detector_inference'] = summarize(times)
        log(_table(f'Faster R-CNN inference, batch 1, {shape[0]}x{shape[1]}',
                   results['detector_inference']))
    return results


def _table(title: str, summary: Dict[str, dict]) -> str:
    lines = [title,
             f"  {'model':<10}{'min ms':>10}{'median':>10}{'max':>10}"
             f"{'ratio(min)':>12}{'ratio(med)':>12}{'ratio(pair)':>13}"]
    for name, s in summary.items():
        lines.append(f"  {name:<10}{s['min_ms']:>10.1f}{s['median_ms']:>10.1f}"
                     f"{s['max_ms']:>10.1f}{s['ratio_min']:>12.3f}"
                     f"{s['ratio_median']:>12.3f}{s['ratio_paired']:>13.3f}")
    return '\n'.join(lines)
