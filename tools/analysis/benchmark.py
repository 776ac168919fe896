"""RLA backbone vs mmdet's ResNet of the same depth: time, memory, FLOPs,
operator counts, and whole-detector training steps.

Examples:
    python tools/analysis/benchmark.py                       # RLA-R50, CPU
    python tools/analysis/benchmark.py --depth 101 --variant eca
    python tools/analysis/benchmark.py --impl literal        # the "before"
    python tools/analysis/benchmark.py --impl cuda --tasks ops   # the CUDA
                                                    # choice's ops, on a CPU
    python tools/analysis/benchmark.py --device cuda --amp --json out.json
    python tools/analysis/benchmark.py --tasks profile   # where the time goes

Both models run interleaved in this process (alternating which goes first)
so that both see the same machine state; the tables give min / median / max
and the RLA / ResNet ratios of the mins, of the medians, and the median of
the ratios of back-to-back pairs (the steadiest on a noisy machine). On a
GPU, times come from CUDA events and training steps also report
``torch.cuda.max_memory_allocated``.
"""
import argparse
import contextlib
import json
import logging
import os.path as osp
import runpy
import statistics
import time
from typing import Callable, Dict, List, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# An installed rla_mmdet, else the clone this script is in.
runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '..', '_find_package.py'))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

from rla_mmdet import RLAECANet, RLAResNet  # noqa: E402
from rla_mmdet.analysis import complexity, detector_inputs  # noqa: E402
from rla_mmdet.layers import (DISPATCH, FORMS, IMPL_CHOICES,  # noqa: E402
                              select_impl)

TASKS = ('eval', 'train', 'memory', 'flops', 'ops', 'detector',
         'detector_train', 'profile', 'forms')
DEFAULT_TASKS = TASKS[:-2]  # the profile and the forms are asked for by name

#: The detectors of the whole-model measurements: our config, mmdet's.
DETECTORS = {
    'faster_rcnn': ('configs/faster_rcnn/faster-rcnn_rla-r50_fpn_1x_coco.py',
                    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'),
    'retinanet': ('configs/retinanet/retinanet_rla-r50_fpn_1x_coco.py',
                  'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'),
}


def build_backbones(depth: int = 50,
                    variant: str = 'rla',
                    device: str = 'cpu',
                    **kwargs) -> Dict[str, nn.Module]:
    """The RLA backbone and its plain mmdet twin with identical settings:
    ``ResNet`` of ``depth`` (variants ``'rla'``, ``'eca'``), or
    ``MobileNetV2`` (variant ``'mobilenetv2'``, ``depth`` unused). The
    plain model is returned under the key ``'resnet'``, the baseline of
    every ratio."""
    if variant == 'mobilenetv2':
        from mmdet.models.backbones import MobileNetV2

        from rla_mmdet import RLAMobileNetV2
        rla_cls, plain_cls, arch = RLAMobileNetV2, MobileNetV2, {}
    else:
        from mmdet.models.backbones import ResNet
        rla_cls = RLAECANet if variant == 'eca' else RLAResNet
        plain_cls, arch = ResNet, dict(depth=depth)
    torch.manual_seed(0)
    rla = rla_cls(**arch, **kwargs)
    rla.init_weights()
    torch.manual_seed(0)
    plain = plain_cls(**arch, **kwargs)
    plain.init_weights()
    return {'rla': rla.to(device), 'resnet': plain.to(device)}


def build_detectors(family: str, device: str = 'cpu') -> Dict[str, nn.Module]:
    """``family`` (a key of :data:`DETECTORS`) with RLA-R50 and ResNet-50."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
    register_all_modules()
    init_default_scope('mmdet')
    models = {}
    for name, path in zip(('rla', 'resnet'), DETECTORS[family]):
        cfg = (get_config(path) if '::' in path else Config.fromfile(
            osp.join(ROOT, path)))
        cfg.model.backbone.init_cfg = None
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        models[name] = model.to(device)
    return models


def autocast(device: str, amp: bool):
    """fp16 autocast on CUDA, bf16 on the CPU; nothing without ``amp``."""
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.startswith('cuda') else torch.bfloat16
    return torch.autocast(device.split(':')[0], dtype=dtype)


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


def train_step(model: nn.Module, inputs: torch.Tensor,
               amp: bool = False) -> None:
    """Forward and backward of a backbone with a loss on all its outputs."""
    with autocast(inputs.device.type, amp):
        outs = model(inputs)
        loss = sum(o.float().mean() for o in outs)
    loss.backward()
    for p in model.parameters():
        p.grad = None


def detector_train_step(model: nn.Module, data: dict,
                        amp: bool = False) -> None:
    """``model(mode='loss')`` summed and back-propagated."""
    with autocast(data['inputs'].device.type, amp):
        losses = model(**data, mode='loss')
    total = sum(v.float().sum() if isinstance(v, torch.Tensor) else sum(
        t.float().sum() for t in v) for k, v in losses.items() if 'loss' in k)
    total.backward()
    for p in model.parameters():
        p.grad = None


def count_ops(fn: Callable[[], object], device: str = 'cpu') -> dict:
    """Operators dispatched by one call of ``fn`` (``torch.profiler``).

    ``ops``: aten operators called from Python or autograd (nested calls
    inside an operator are not counted again); ``aten_calls``: every aten
    call, nested ones included; on CUDA, ``kernels``: GPU kernels launched.
    Where the profiler records whole microseconds (torch 2.1), a nested call
    that shares its parent's timestamps can be counted as top-level, so
    ``ops`` may vary between runs there; ``aten_calls`` does not.
    """
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.startswith('cuda'):
        activities.append(ProfilerActivity.CUDA)
    fn()  # warm-up
    _sync(device)
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    ops = aten = kernels = 0
    for event in prof.events():
        if getattr(event, 'device_type', None) is not None and \
                str(event.device_type).endswith('CUDA'):
            kernels += 1
            continue
        if not event.name.startswith('aten::'):
            continue
        aten += 1
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith('aten::'):
            parent = parent.cpu_parent
        ops += parent is None
    result = dict(ops=ops, aten_calls=aten)
    if device.startswith('cuda'):
        result['kernels'] = kernels
    return result


def _ops_table(title: str, counts: Dict[str, dict]) -> str:
    keys = list(next(iter(counts.values())))
    lines = [title, f"  {'model':<16}" + ''.join(f'{k:>12}' for k in keys)]
    for name, c in counts.items():
        lines.append(f'  {name:<16}' + ''.join(f'{c[k]:>12}' for k in keys))
    return '\n'.join(lines)


class _Run:
    """The settings of one :func:`run`, what it measured so far
    (``results``), and the models and inputs its tasks share."""

    def __init__(self, depth: int, variant: str, shape: Sequence[int],
                 train_shape: Sequence[int], train_batch: int, repeat: int,
                 train_repeat: int, device: str, eval_batch: int,
                 channels_last: bool, amp: bool, impl: str,
                 log: Callable[[str], None]) -> None:
        self.depth, self.variant, self.device = depth, variant, device
        self.shape, self.train_shape = tuple(shape), tuple(train_shape)
        self.train_batch, self.eval_batch = train_batch, eval_batch
        self.repeat, self.train_repeat = repeat, train_repeat
        self.amp, self.impl, self.log = amp, impl, log
        self.memory_format = (torch.channels_last if channels_last else
                              torch.contiguous_format)
        self.amp_note = ', AMP' if amp else ''
        self.results: dict = dict(
            depth=depth, variant=variant, device=device, impl=impl, amp=amp,
            device_name=(torch.cuda.get_device_name(device)
                         if device.startswith('cuda') else 'cpu'),
            threads=torch.get_num_threads(), torch=torch.__version__,
            channels_last=channels_last, shape=self.shape,
            train_shape=self.train_shape, train_batch=train_batch,
            eval_batch=eval_batch)

    def train_models(self, with_cp: bool = False) -> Dict[str, nn.Module]:
        """RLA and ResNet set up for the training step (frozen_stages=1)."""
        models = build_backbones(self.depth, self.variant, self.device,
                                 frozen_stages=1, with_cp=with_cp)
        for m in models.values():
            m.train()
            m.to(memory_format=self.memory_format)
        return models

    def train_input(self) -> torch.Tensor:
        return torch.rand(self.train_batch, 3, *self.train_shape,
                          device=self.device).to(
                              memory_format=self.memory_format)

    @property
    def train_title(self) -> str:
        return (f'batch {self.train_batch}, '
                f'{self.train_shape[0]}x{self.train_shape[1]}')


def _eval_task(r: _Run) -> None:
    models = build_backbones(r.depth, r.variant, r.device)
    for m in models.values():
        m.eval()  # mmdet's ResNet.train() returns None: no chaining
        m.to(memory_format=r.memory_format)
    x = torch.rand(r.eval_batch, 3, *r.shape, device=r.device).to(
        memory_format=r.memory_format)

    def forward(m):
        with autocast(r.device, r.amp):
            return m(x)

    fns = {name: (lambda m=m: forward(m)) for name, m in models.items()}
    with torch.no_grad():
        times = time_interleaved(fns, r.repeat, device=r.device)
    r.results['eval_forward'] = summarize(times)
    r.log(_table(f'eval forward, batch {r.eval_batch}, '
                 f'{r.shape[0]}x{r.shape[1]}{r.amp_note}',
                 r.results['eval_forward']))


def _train_task(r: _Run, variants: Dict[str, nn.Module],
                x: torch.Tensor) -> None:
    fns = {name: (lambda m=m: train_step(m, x, r.amp))
           for name, m in variants.items()}
    times = time_interleaved(fns, r.train_repeat, device=r.device)
    results = r.results
    results['train_step'] = summarize(times)
    r.log(_table(f'training step, {r.train_title}, frozen_stages=1'
                 f'{r.amp_note}', results['train_step']))
    med = {k: v['median_ms'] for k, v in results['train_step'].items()}
    results['with_cp_cost'] = dict(rla=med['rla_cp'] / med['rla'],
                                   resnet=med['resnet_cp'] / med['resnet'])
    r.log('  with_cp step / own step without (medians): rla '
          f"{results['with_cp_cost']['rla']:.3f}, resnet "
          f"{results['with_cp_cost']['resnet']:.3f}")
    if r.device.startswith('cuda'):
        peak = {}
        for name, m in variants.items():
            torch.cuda.reset_peak_memory_stats(r.device)
            train_step(m, x, r.amp)
            peak[name] = torch.cuda.max_memory_allocated(r.device)
        results['train_peak_memory_bytes'] = peak
        r.log('peak CUDA memory (MiB): ' + ', '.join(
            f'{k} {v / 2**20:.0f}' for k, v in peak.items()))


def _memory_task(r: _Run, variants: Dict[str, nn.Module],
                 x: torch.Tensor) -> None:
    saved = {name: saved_activation_bytes(m, x)
             for name, m in variants.items()}
    r.results['saved_activations'] = dict(
        bytes=saved,
        ratio=saved['rla'] / saved['resnet'],
        ratio_cp=saved['rla_cp'] / saved['resnet_cp'],
        rla_cp_saving=1 - saved['rla_cp'] / saved['rla'])
    saved_activations = r.results['saved_activations']
    r.log('saved activations (MiB): ' + ', '.join(
        f'{k} {v / 2**20:.1f}' for k, v in saved.items()))
    r.log(f"  RLA/ResNet {saved_activations['ratio']:.3f}, "
          f"with_cp {saved_activations['ratio_cp']:.3f}; "
          'with_cp saves '
          f"{saved_activations['rla_cp_saving']:.1%} of "
          'RLA\'s bytes')


def _train_and_memory_tasks(r: _Run, tasks: Sequence[str]) -> None:
    """The training steps and saved activations, with and without
    ``with_cp``, of the same models."""
    variants = {}
    for with_cp in (False, True):
        for name, m in r.train_models(with_cp=with_cp).items():
            variants[f'{name}{"_cp" if with_cp else ""}'] = m
    x = r.train_input()
    if 'train' in tasks:
        _train_task(r, variants, x)
    if 'memory' in tasks:
        _memory_task(r, variants, x)


def _ops_task(r: _Run) -> None:
    """The operators of one training step and one eval forward, for the
    form of the RLA operators in force and for each forced choice."""
    models = r.train_models()
    x = r.train_input()
    counts: Dict[str, dict] = {}
    evals: Dict[str, dict] = {}
    for choice in ('auto', 'literal', 'cpu', 'cuda'):
        with select_impl(r.impl if choice == 'auto' else choice):
            counts[f'rla ({choice})'] = count_ops(
                lambda: train_step(models['rla'], x, r.amp), r.device)
            models['rla'].eval()
            with torch.no_grad():
                evals[f'rla ({choice})'] = count_ops(
                    lambda: models['rla'](x[:1]), r.device)
            models['rla'].train()
    counts['resnet'] = count_ops(
        lambda: train_step(models['resnet'], x, r.amp), r.device)
    models['resnet'].eval()
    with torch.no_grad():
        evals['resnet'] = count_ops(lambda: models['resnet'](x[:1]),
                                    r.device)
    r.results['ops_train_step'] = counts
    r.results['ops_eval_forward'] = evals
    r.log(_ops_table(f'operators per training step ({r.train_title}'
                     f'{r.amp_note}); (choice) = form of the RLA operators',
                     counts))
    r.log(_ops_table('operators per eval forward (batch 1)', evals))


def _profile_task(r: _Run) -> None:
    models = r.train_models()
    x = r.train_input()
    ops = op_profile({name: (lambda m=m: train_step(m, x, r.amp))
                      for name, m in models.items()})
    r.results['train_profile_ms'] = ops
    r.log(_profile_table(
        f'training step profile, {r.train_title} (largest differences)',
        ops))


def _flops_task(r: _Run) -> None:
    models = build_backbones(r.depth, r.variant, r.device)
    comp = {}
    for name, m in models.items():
        m.eval()
        with torch.no_grad():
            c = complexity(m, torch.rand(1, 3, *r.shape, device=r.device))
        comp[name] = dict(
            params=c.params, params_M=c.params / 1e6,
            params_binary_M=c.params / 1024**2, flops=c.flops,
            flops_G=c.flops / 1e9, flops_binary_G=c.flops / 1024**3)
    comp['ratio_flops'] = comp['rla']['flops'] / comp['resnet']['flops']
    comp['ratio_params'] = comp['rla']['params'] / comp['resnet']['params']
    r.results['complexity'] = comp
    for name in ('rla', 'resnet'):
        c = comp[name]
        r.log(f"{name}: {c['params']:,} params ({c['params_M']:.2f}M, "
              f"{c['params_binary_M']:.2f}M binary), {c['flops_G']:.1f} "
              f"GFLOPs ({c['flops_binary_G']:.1f}G binary) at "
              f'{r.shape[0]}x{r.shape[1]}')
    r.log(f"  FLOPs ratio {comp['ratio_flops']:.3f}, params ratio "
          f"{comp['ratio_params']:.3f}")


def _detector_task(r: _Run) -> None:
    detectors = build_detectors('faster_rcnn', r.device)
    data = {}
    for name, m in detectors.items():
        m.eval()
        data[name] = detector_inputs(m, r.shape, random_images=True,
                                     device=r.device)

    def predict(m, d):
        with autocast(r.device, r.amp):
            return m(**d, mode='predict')

    fns = {name: (lambda m=m, d=data[name]: predict(m, d))
           for name, m in detectors.items()}
    with torch.no_grad():
        times = time_interleaved(fns, max(r.repeat // 2, 3),
                                 device=r.device)
    r.results['detector_inference'] = summarize(times)
    r.log(_table(f'Faster R-CNN inference, batch 1, {r.shape[0]}x'
                 f'{r.shape[1]}{r.amp_note}', r.results['detector_inference']))


def _detector_train_task(r: _Run, family: str) -> None:
    detectors = build_detectors(family, r.device)
    data = {}
    for name, m in detectors.items():
        m.train()
        data[name] = detector_inputs(
            m, r.train_shape, batch=r.train_batch, random_images=True,
            with_gt=True, device=r.device)
    fns = {name: (lambda m=m, d=data[name]: detector_train_step(m, d, r.amp))
           for name, m in detectors.items()}
    times = time_interleaved(fns, r.train_repeat, device=r.device)
    key = f'{family}_train_step'
    r.results[key] = summarize(times)
    r.log(_table(f'{family} training step (loss + backward), '
                 f'{r.train_title}{r.amp_note}', r.results[key]))


def run(depth: int = 50,
        variant: str = 'rla',
        shape: Sequence[int] = (800, 1216),
        train_shape: Sequence[int] = (512, 512),
        train_batch: int = 2,
        repeat: int = 10,
        train_repeat: int = 6,
        device: str = 'cpu',
        eval_batch: int = 1,
        channels_last: bool = False,
        amp: bool = False,
        impl: str = 'auto',
        tasks: Sequence[str] = DEFAULT_TASKS,
        log: Callable[[str], None] = print) -> dict:
    """Run the selected measurements and return them as a dict.

    ``impl`` only labels the results and the ``(auto)`` row of the operator
    counts: the caller selects it (``with select_impl(impl)``).
    """
    r = _Run(depth, variant, shape, train_shape, train_batch, repeat,
             train_repeat, device, eval_batch, channels_last, amp, impl, log)
    if 'eval' in tasks:
        _eval_task(r)
    if 'train' in tasks or 'memory' in tasks:
        _train_and_memory_tasks(r, tasks)
    if 'ops' in tasks:
        _ops_task(r)
    if 'forms' in tasks:
        r.results['forms'] = compare_forms(
            depth, variant, device, r.shape, r.train_shape, train_batch,
            repeat, train_repeat, amp, log)
    if 'profile' in tasks:
        _profile_task(r)
    if 'flops' in tasks:
        _flops_task(r)
    whole = depth == 50 and variant == 'rla'
    # mmcv's CPU nms refuses bfloat16 boxes: no two-stage detector under
    # CPU autocast.
    cpu_amp = amp and not device.startswith('cuda')
    if cpu_amp and ('detector' in tasks or 'detector_train' in tasks):
        log('Faster R-CNN skipped: --amp on the CPU (bfloat16) meets '
            "mmcv's CPU nms, which takes float32 boxes only")
    if 'detector' in tasks and whole and not cpu_amp:
        _detector_task(r)
    if 'detector_train' in tasks and whole:
        for family in DETECTORS:
            if not (cpu_amp and family == 'faster_rcnn'):
                _detector_train_task(r, family)
    return r.results


def compare_forms(depth: int, variant: str, device: str,
                  shape: Tuple[int, int], train_shape: Tuple[int, int],
                  train_batch: int, repeat: int, train_repeat: int,
                  amp: bool, log: Callable[[str], None]) -> dict:
    """Every combination of the RLA operators' forms, interleaved with
    ResNet in one process, for the training step and the eval forward:
    the measurement behind each row of the dispatch table."""
    import itertools
    device_type = device.split(':')[0]
    combos = list(itertools.product(*FORMS.values()))
    out = {}
    for training in (True, False):
        models = build_backbones(depth, variant, device, frozen_stages=1)
        if training:
            for m in models.values():
                m.train()
            x = torch.rand(train_batch, 3, *train_shape, device=device)

            def call(m):
                train_step(m, x, amp)
        else:
            for m in models.values():
                m.eval()
            x = torch.rand(1, 3, *shape, device=device)

            def call(m):
                with torch.no_grad(), autocast(device, amp):
                    m(x)

        key = (device_type, training, amp)
        saved = DISPATCH.get(key)

        def with_forms(forms):
            def fn():
                DISPATCH[key] = forms
                try:
                    call(models['rla'])
                finally:
                    if saved is None:
                        DISPATCH.pop(key)
                    else:
                        DISPATCH[key] = saved
            return fn

        fns = {'resnet': lambda: call(models['resnet'])}
        for combo in combos:
            fns['+'.join(combo)] = with_forms(dict(zip(FORMS, combo)))
        times = time_interleaved(fns, train_repeat if training else repeat,
                                 device=device)
        name = 'train' if training else 'eval'
        out[name] = summarize(times)
        log(_table(f'forms of ({" + ".join(FORMS)}), {name}, RLA vs ResNet '
                   f'in one process', out[name]))
        del models, fns
    return out


def _table(title: str, summary: Dict[str, dict]) -> str:
    width = max(10, max(len(name) for name in summary) + 2)
    lines = [title,
             f"  {'model':<{width}}{'min ms':>10}{'median':>10}{'max':>10}"
             f"{'ratio(min)':>12}{'ratio(med)':>12}{'ratio(pair)':>13}"]
    for name, s in summary.items():
        lines.append(f"  {name:<{width}}{s['min_ms']:>10.1f}"
                     f"{s['median_ms']:>10.1f}"
                     f"{s['max_ms']:>10.1f}{s['ratio_min']:>12.3f}"
                     f"{s['ratio_median']:>12.3f}{s['ratio_paired']:>13.3f}")
    return '\n'.join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--depth', type=int, default=50, choices=[18, 34, 50, 101,
                                                              152])
    p.add_argument('--variant', choices=['rla', 'eca', 'mobilenetv2'],
                   default='rla',
                   help="'eca' benchmarks RLAECANet against plain ResNet, "
                   "'mobilenetv2' RLAMobileNetV2 against mmdet's MobileNetV2 "
                   '(--depth unused; the row named resnet is the plain '
                   'model)')
    p.add_argument('--shape', type=int, nargs=2, default=[800, 1216],
                   metavar=('H', 'W'), help='eval/detector input size')
    p.add_argument('--train-shape', type=int, nargs=2, default=[512, 512],
                   metavar=('H', 'W'), help='training step input size')
    p.add_argument('--train-batch', type=int, default=2)
    p.add_argument('--eval-batch', type=int, default=1,
                   help='images per eval forward (the eval task only)')
    p.add_argument('--repeat', type=int, default=10,
                   help='timed eval forwards per model')
    p.add_argument('--train-repeat', type=int, default=6,
                   help='timed training steps per model')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--amp', action='store_true',
                   help='autocast (fp16 on CUDA, bf16 on the CPU)')
    p.add_argument('--channels-last', action='store_true',
                   help='run both models in channels_last memory format')
    p.add_argument('--impl', choices=IMPL_CHOICES, default='auto',
                   help="form of the RLA operators: 'auto' (the dispatch "
                   "table), 'literal' (the straightforward forms: the "
                   "\"before\"), or the choice of a device")
    p.add_argument('--form', nargs='+', default=[], metavar='OP=FORM',
                   help='replace the form of an RLA operator in the '
                   "dispatch rows of --device, e.g. rla_update=bmm (forms: "
                   + '; '.join(f"{op}: {', '.join(f)}"
                               for op, f in FORMS.items()) + ')')
    p.add_argument('--tasks', nargs='+', choices=TASKS,
                   default=list(DEFAULT_TASKS),
                   help='what to measure (default: all but profile, which '
                   'lists the operators of a training step that cost RLA '
                   'its extra time)')
    p.add_argument('--json', help='write the results to this JSON file')
    args = p.parse_args(argv)
    for name in ('repeat', 'train_repeat', 'train_batch', 'eval_batch'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1')
    if min(args.shape + args.train_shape) < 32:
        p.error('--shape and --train-shape must be at least 32 pixels')
    args.forms = {}
    for item in args.form:
        op, _, form = item.partition('=')
        if op not in FORMS or form not in FORMS[op]:
            p.error(f'--form {item!r}: expected OP=FORM with OP one of '
                    f'{tuple(FORMS)} and FORM one of its forms ('
                    + '; '.join(f"{o}: {', '.join(f)}"
                                for o, f in FORMS.items()) + ')')
        args.forms[op] = form
    return args


def override_forms(device: str, forms: Dict[str, str]) -> None:
    """Put ``forms`` into every dispatch row of ``device``'s type."""
    device_type = device.split(':')[0]
    for key in list(DISPATCH):
        if key[0] == device_type:
            DISPATCH[key] = dict(DISPATCH[key], **forms)


def main(argv=None):
    args = parse_args(argv)
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)
    override_forms(args.device, args.forms)
    with select_impl(args.impl):
        results = run(
            depth=args.depth, variant=args.variant, shape=args.shape,
            train_shape=args.train_shape, train_batch=args.train_batch,
            repeat=args.repeat, train_repeat=args.train_repeat,
            device=args.device, channels_last=args.channels_last,
            amp=args.amp, impl=args.impl, tasks=args.tasks,
            eval_batch=args.eval_batch)
    results['form_overrides'] = args.forms
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'results written to {args.json}')
    return results


if __name__ == '__main__':
    main()
