"""Params and FLOPs of RLA networks, counted by MMEngine's ``FlopAnalyzer``.

Complexity is counted by MMEngine's ``FlopAnalyzer`` (a ``torch.jit`` trace
with one handle per operator). As in MMEngine, and as the paper's numbers
imply, a "FLOP" is a multiply-accumulate (MAC) of a convolution or matrix
product; batch norms count one operation per element (two with an affine
transform); element-wise additions, activations and pooling are not
counted. (This is why RLA-ECANet counts the same 4.17G as RLA-ResNet here,
where the paper prints 4.18G: ECA's pooling, sigmoid and scaling are
element-wise.) The RLA operators are traced in their literal forms
(``select_impl('literal')``): the faster forms fold norms into matrix
products, which would hide part of the architecture's cost.

The paper prints params and FLOPs in binary units: "24.67M" parameters is
``params / 1024**2`` and "4.17G" FLOPs is ``MACs / 1024**3``, both for the
ImageNet network with its classifier
(:class:`rla_mmdet.analysis.RLAClassifier`).
"""
import functools
from collections import Counter
from typing import Any, Dict, NamedTuple, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count

from ..backbones import RLAResNet
from ..layers import select_impl
from .classifier import RLAClassifier

__all__ = [
    'Complexity', 'complexity', 'count_params', 'detector_complexity',
    'classifier_complexity', 'binary_units', 'decimal_units',
    'detector_inputs'
]


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


def complexity(model: nn.Module, inputs: Union[torch.Tensor, Tuple]
               ) -> Complexity:
    """Params and MACs of ``model(*inputs)``, by MMEngine's FlopAnalyzer.

    The MACs are those of the whole batch in ``inputs``, with the RLA
    operators traced in their literal forms.
    """
    if not isinstance(inputs, tuple):
        inputs = (inputs, )
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    children = [name for name, _ in model.named_children()]
    with select_impl('literal'):
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


def _as_int_pair(value: Any, name: str) -> Tuple[int, int]:
    """Check a (height, width) pair."""
    if (not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool)
                       and v > 0 for v in value)):
        raise ValueError(f'{name} must be two positive ints (height width), '
                         f'got {value!r}.')
    return int(value[0]), int(value[1])


def detector_inputs(model: nn.Module,
                    shape: Sequence[int],
                    batch: int = 1,
                    random_images: bool = False,
                    with_gt: bool = False,
                    device: Union[str, torch.device] = 'cpu') -> dict:
    """What ``model(**data, mode=...)`` takes for ``batch`` images.

    The images (zeros, or random pixels with a fixed seed) of ``shape``
    (height, width) go through the model's ``data_preprocessor``, which pads
    them as in inference. ``with_gt`` gives each image three boxes of class
    0 (and their masks), for ``mode='loss'``.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    height, width = _as_int_pair(tuple(shape), 'shape')
    g = torch.Generator().manual_seed(0)
    images, samples = [], []
    for _ in range(batch):
        if random_images:
            img = torch.randint(0, 256, (3, height, width), generator=g,
                                dtype=torch.uint8)
        else:
            img = torch.zeros(3, height, width, dtype=torch.uint8)
        images.append(img.to(device))
        sample = DetDataSample(metainfo=dict(
            img_shape=(height, width), ori_shape=(height, width),
            scale_factor=(1.0, 1.0)))
        if with_gt:
            xy = torch.rand(3, 2, generator=g) * torch.tensor(
                [width * .6, height * .6])
            wh = (torch.rand(3, 2, generator=g) * .3 + .1) * torch.tensor(
                [width, height])
            boxes = torch.cat([xy, xy + wh], dim=1)
            masks = torch.zeros(3, height, width, dtype=torch.uint8)
            for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
                masks[i, y0:y1, x0:x1] = 1
            sample.gt_instances = InstanceData(
                bboxes=boxes, labels=torch.zeros(3, dtype=torch.long),
                masks=BitmapMasks(masks.numpy(), height, width))
        samples.append(sample)
    return model.data_preprocessor(
        dict(inputs=images, data_samples=samples), with_gt)


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
    model.eval()
    with torch.no_grad():
        data = detector_inputs(model, shape)
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
