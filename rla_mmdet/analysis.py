"""Model complexity and training curves: the logic of ``tools/analysis/``.

Complexity is counted by MMEngine's ``FlopAnalyzer`` (a ``torch.jit`` trace
with one handle per operator). As in MMEngine, and as the paper's numbers
imply, a "FLOP" is a multiply-accumulate (MAC) of a convolution or matrix
product; batch norms count one operation per element (two with an affine
transform); element-wise additions, activations and pooling are not
counted. (This is why RLA-ECANet counts the same 4.17G as RLA-ResNet here,
where the paper prints 4.18G: ECA's pooling, sigmoid and scaling are
element-wise.) The RLA
backbones are traced in their literal formulation (:func:`literal_rla`):
the optimised forward skips the terms of the zero initial state and folds
norms into matrix products, which would hide part of the architecture's
cost.

The paper prints params and FLOPs in binary units: "24.67M" parameters is
``params / 1024**2`` and "4.17G" FLOPs is ``MACs / 1024**3``, both for the
ImageNet network with its classifier (:class:`RLAClassifier`).

Training curves are read from MMEngine's ``vis_data/scalars.json`` files
(one JSON object per line, see :func:`load_curves`).
"""
import contextlib
import functools
import glob
import json
import math
import os.path as osp
from collections import Counter
from typing import (Any, Dict, Iterator, List, NamedTuple, Sequence, Tuple,
                    Union)

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.analysis import FlopAnalyzer, parameter_count

from .backbones import RLAResNet
from .backbones.reference import reference_run_stages

__all__ = [
    'RLAClassifier', 'Complexity', 'complexity', 'count_params',
    'detector_complexity', 'classifier_complexity', 'binary_units',
    'decimal_units', 'Curve', 'find_scalar_logs', 'load_curves'
]


# ---------------------------------------------------------------- complexity
class Complexity(NamedTuple):
    """What :func:`complexity` counted.

    ``flops`` are MACs; ``uncounted`` maps the operators the analyzer met
    but has no handle for (element-wise ops, pooling...) to their number of
    calls.
    """
    params: int
    flops: int
    by_operator: Dict[str, int]
    by_module: Dict[str, int]  # MACs of each direct child of the model
    uncounted: Dict[str, int]


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers such as BN statistics excluded)."""
    return int(parameter_count(model)[''])


@contextlib.contextmanager
def literal_rla(model: nn.Module) -> Iterator[None]:
    """Run every RLA backbone inside ``model`` with the literal forward.

    The optimised forward skips terms of the all-zero initial state and, in
    inference, folds norms into matrix products; the architecture's FLOPs
    are those of the literal formulation (what the paper counts), so the
    analysis traces that one.
    """
    backbones = [m for m in model.modules() if isinstance(m, RLAResNet)]
    for m in backbones:
        m.run_stages = functools.partial(reference_run_stages, m)
    try:
        yield
    finally:
        for m in backbones:
            del m.run_stages


def complexity(model: nn.Module, inputs: Union[torch.Tensor, Tuple]
               ) -> Complexity:
    """Params and MACs of ``model(*inputs)``, by MMEngine's FlopAnalyzer.

    The MACs are those of the whole batch in ``inputs``, with the RLA
    backbones traced in their literal formulation (:func:`literal_rla`).
    """
    if not isinstance(inputs, tuple):
        inputs = (inputs, )
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    children = [name for name, _ in model.named_children()]
    with literal_rla(model):
        flops = int(analyzer.total())
        by_module = analyzer.by_module()
        by_operator = analyzer.by_operator()
        uncounted = dict(Counter(analyzer.unsupported_ops()))
    return Complexity(
        count_params(model), flops,
        {k: int(v) for k, v in by_operator.items()},
        {name: int(by_module.get(name, 0)) for name in children}, uncounted)


def binary_units(params: int, flops: int) -> Tuple[str, str]:
    """``('24.67M', '4.17G')``: params / 1024**2 and FLOPs / 1024**3, as
    the paper prints them."""
    return f'{params / 2**20:.2f}M', f'{flops / 2**30:.2f}G'


def decimal_units(params: int, flops: int) -> Tuple[str, str]:
    """``('25.87M', '4.48G')``: params / 1e6 and FLOPs / 1e9."""
    return f'{params / 1e6:.2f}M', f'{flops / 1e9:.2f}G'


class RLAClassifier(nn.Module):
    """An RLA backbone with the authors' ImageNet classifier, for counting.

    The detection backbone leaves out three parts of the ImageNet network
    (see ``RLAResNet.unbuilt_prefixes``); this module adds them back so that
    params and FLOPs compare with the paper's table:

    - ``last_stage_bn``: the norm of the hidden-state update after the last
      block (``stage_bns.{last}.{n-1}`` in the published files), with that
      update itself (``conv_outs`` and ``recurrent_convs`` of the last stage
      run once more);
    - ``bn2``: the norm of the final hidden state;
    - ``fc``: the linear classifier on ``avgpool(cat([x, relu(bn2(h))]))``,
      with ``C + rla_channel`` inputs.

    It is not registered and not used for training; the published ImageNet
    checkpoints are loaded into the detection backbone instead.

    Args:
        backbone: A four-stage :class:`RLAResNet` (or ``RLAECANet``).
        num_classes: Classes of the classifier. Default 1000 (ImageNet).

    Example:
        >>> from rla_mmdet import RLAResNet
        >>> from rla_mmdet.analysis import RLAClassifier, count_params
        >>> count_params(RLAClassifier(RLAResNet(depth=50)))
        25870696
    """

    def __init__(self, backbone: RLAResNet, num_classes: int = 1000) -> None:
        super().__init__()
        if not isinstance(backbone, RLAResNet):
            raise TypeError('backbone must be an RLAResNet or RLAECANet, got '
                            f'{type(backbone).__name__}.')
        if backbone.num_stages != 4:
            raise ValueError('the ImageNet classifier follows the fourth '
                             'stage; build the backbone with num_stages=4 '
                             f'(got {backbone.num_stages}).')
        if isinstance(num_classes, bool) or not isinstance(
                num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got '
                             f'{num_classes!r}.')
        k = backbone.rla_channel
        self.backbone = backbone
        self.last_stage_bn = build_norm_layer(backbone.norm_cfg, k)[1]
        self.bn2 = build_norm_layer(backbone.norm_cfg, k)[1]
        self.fc = nn.Linear(backbone.stage_channels[-1] + k, num_classes)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Logits of the classifier, ``(B, num_classes)``."""
        net = self.backbone
        _, x, h = net.run_stages(img)
        # The update after the last block, which the detection backbone
        # skips because no detector reads it.
        s = net.num_stages - 1
        h = net.recurrent_convs[s](
            torch.tanh(self.last_stage_bn(h + net.conv_outs[s](x))))
        h = F.relu(self.bn2(h))
        x = F.adaptive_avg_pool2d(torch.cat([x, h], dim=1), 1)
        return self.fc(torch.flatten(x, 1))


def _as_int_pair(value: Any, name: str) -> Tuple[int, int]:
    """Check a (height, width) pair."""
    if (not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool)
                       and v > 0 for v in value)):
        raise ValueError(f'{name} must be two positive ints (height width), '
                         f'got {value!r}.')
    return int(value[0]), int(value[1])


def detector_complexity(model: nn.Module,
                        shape: Sequence[int]) -> Tuple[Complexity, Tuple]:
    """Params and MACs of a detector's test-time forward on one image.

    A zero image of ``shape`` (height, width) goes through the model's
    ``data_preprocessor`` (which pads it as in inference) and then through
    ``model(inputs, data_samples, mode='tensor')``: the raw outputs of the
    heads, before the final box decoding and NMS. For two-stage detectors
    this includes the RPN's proposals and the RoI head on them, whose cost
    grows with the number of proposals the RPN keeps.

    Returns:
        The complexity and the (height, width) of the padded input.
    """
    from mmdet.structures import DetDataSample
    height, width = _as_int_pair(tuple(shape), 'shape')
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(height, width),
            ori_shape=(height, width),
            scale_factor=(1.0, 1.0)))
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(
                inputs=[torch.zeros(3, height, width, dtype=torch.uint8)],
                data_samples=[sample]), False)
        inputs = data['inputs']
        # mmdet's own get_flops binds the samples the same way.
        model.forward = functools.partial(
            model.forward, data_samples=data['data_samples'], mode='tensor')
        try:
            result = complexity(model, inputs)
        finally:
            del model.forward
    return result, tuple(inputs.shape[-2:])


def classifier_complexity(backbone: RLAResNet,
                          shape: Sequence[int] = (224, 224),
                          num_classes: int = 1000) -> Complexity:
    """Params and MACs of the ImageNet network around ``backbone``.

    The backbone is wrapped in :class:`RLAClassifier`, put in eval mode and
    run on one zero image of ``shape`` (height, width).
    """
    height, width = _as_int_pair(tuple(shape), 'shape')
    model = RLAClassifier(backbone, num_classes).eval()
    with torch.no_grad():
        return complexity(model, torch.zeros(1, 3, height, width))


# -------------------------------------------------------------------- curves
class Curve(NamedTuple):
    """One logged quantity over the training iterations."""
    key: str  # as written in the log, e.g. 'coco/bbox_mAP'
    x: List[int]  # training iteration
    y: List[float]


def find_scalar_logs(path: str) -> List[str]:
    """The scalar log files of a work dir, a run dir or a JSON file.

    A work dir of ``tools/train.py`` holds one timestamped folder per run,
    each with ``vis_data/scalars.json``; they are returned in time order
    (a resumed run comes after the run it continues).
    """
    if osp.isfile(path):
        if not path.endswith('.json'):
            raise ValueError(f'{path!r} is not a JSON log; pass a work dir or '
                             'a vis_data/scalars.json file.')
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path!r} does not exist; pass a work dir of '
                                'tools/train.py or a scalars.json file.')
    for pattern in ('scalars.json', 'vis_data/scalars.json',
                    '*/vis_data/scalars.json'):
        found = sorted(glob.glob(osp.join(glob.escape(path), pattern)))
        if found:
            return found
    raise FileNotFoundError(
        f'no training log found in {path!r}: expected '
        '<timestamp>/vis_data/scalars.json (written by MMEngine\'s '
        'LocalVisBackend during tools/train.py).')


def _read_records(path: str) -> List[Dict[str, Any]]:
    records = []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f'{path!r} line {n} is not JSON ({exc.msg}); '
                                 'expected one JSON object per line, as '
                                 'MMEngine writes scalars.json.') from None
            if not isinstance(record, dict) or 'step' not in record:
                raise ValueError(f'{path!r} line {n} is not an MMEngine '
                                 'scalar record (a JSON object with a '
                                 '"step").')
            records.append(record)
    return records


def _file_curves(path: str) -> Dict[str, Curve]:
    """Every numeric key of one log file against the training iteration.

    Training records carry ``iter``. Validation records carry only ``step``:
    the iteration in an iteration-based run, the epoch in an epoch-based one
    (MMEngine's ``log_metric_by_epoch``), where they are placed at the last
    training iteration logged before them, i.e. the end of that epoch (exact
    when the epoch ends on a logged iteration, as it does when an epoch is
    shorter than the logging interval or a multiple of it).
    """
    records = _read_records(path)
    epoch_based = any('epoch' in r for r in records if 'iter' in r)
    curves: Dict[str, Curve] = {}
    last_iter = None
    for r in records:
        if 'iter' in r:
            x = last_iter = int(r['iter'])
        elif not epoch_based:
            x = int(r['step'])
        elif last_iter is None:
            raise ValueError(
                f'{path!r} has validation results of epoch {r["step"]} '
                'before any training record, so they cannot be placed on '
                'the iteration axis.')
        else:
            x = last_iter
        for key, value in r.items():
            if key in ('step', 'iter', 'epoch') or isinstance(
                    value, bool) or not isinstance(value, (int, float)):
                continue
            curve = curves.setdefault(key, Curve(key, [], []))
            curve.x.append(x)
            curve.y.append(float(value))
    return curves


def _matches(log_key: str, key: str) -> bool:
    return log_key == key or log_key.endswith('/' + key)


def load_curves(path: str, keys: Sequence[str]) -> Dict[str, List[Curve]]:
    """The curves of ``keys`` in the logs of ``path``.

    Args:
        path: A work dir (all its runs), a run dir or a JSON log.
        keys: Keys to read; ``'bbox_mAP'`` also matches ``'coco/bbox_mAP'``
            (a metric prefixed with its evaluator's name).

    Returns:
        For each key, the matching curves. The runs of a work dir are joined
        in time order; where a later run logged the same iterations again (a
        resumed or restarted run), its values replace the earlier ones.

    Raises:
        FileNotFoundError: No log under ``path``.
        ValueError: A key is in none of the logs; the message lists those
            that are.
    """
    files = find_scalar_logs(path)
    merged: Dict[str, Curve] = {}
    for f in files:
        for key, curve in _file_curves(f).items():
            old = merged.get(key)
            if old is None:
                merged[key] = curve
                continue
            start = curve.x[0]
            keep = [i for i, x in enumerate(old.x) if x < start]
            merged[key] = Curve(key, [old.x[i] for i in keep] + curve.x,
                                [old.y[i] for i in keep] + curve.y)
    result = {}
    for key in keys:
        found = [c for k, c in merged.items() if _matches(k, key)]
        if not found:
            raise ValueError(
                f'{key!r} is not in the log of {path!r} '
                f'({", ".join(files)}); its keys are: '
                f'{", ".join(sorted(merged)) or "none"}.')
        result[key] = found
    return result

