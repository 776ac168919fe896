"""The RLA-ResNet forward pass written out independently, as the oracle.

:func:`reference_forward` runs the modules of an :class:`RLAResNet` one by one
with plain tensor operations: the hidden state starts at zero and is
concatenated to each block's input, the residual is added, and the
hidden-state update reads the block's final output (after the residual add
and the ReLU), ``h = recurrent_conv(tanh(stage_bn(h + conv_out(x))))``. It
shares no code with the package's forward, so a mistake in the package's
architecture (or in any of its operator forms) shows up as a difference.
"""
from typing import Tuple

import torch
import torch.nn.functional as F


def _block(block, x: torch.Tensor,
           h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    identity = x
    out = block.relu(block.bn1(block.conv1(torch.cat((x, h), dim=1))))
    if hasattr(block, 'conv3'):
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:
        out = block.bn2(block.conv2(out))
    if block.se is not None:
        out = block.se(out)
    if block.eca is not None:
        out = block.eca(out)
    if block.downsample is not None:
        identity = block.downsample(x)
        if block.stride != 1:
            h = F.avg_pool2d(h, 2, 2, ceil_mode=True)
    return F.relu(out + identity), h


def reference_run_stages(model, img: torch.Tensor):
    """``(outputs, last x, last h)`` like :meth:`RLAResNet.run_stages`."""
    if model.deep_stem:
        x = model.stem(img)
    else:
        x = model.relu(model.bn1(model.conv1(img)))
    x = model.maxpool(x)
    b, _, height, width = x.shape
    h = torch.zeros(
        b, model.rla_channel, height, width, dtype=x.dtype, device=x.device)
    outs = []
    for s, stage in enumerate(model.stages):
        for i, block in enumerate(stage):
            x, h = _block(block, x, h)
            if i < len(model.stage_bns[s]):
                y = model.stage_bns[s][i](h + model.conv_outs[s](x))
                h = model.recurrent_convs[s](torch.tanh(y))
        if s in model.out_indices:
            outs.append(x)
    return tuple(outs), x, h


def reference_forward(model, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """The outputs of ``model`` (an :class:`RLAResNet`), computed literally."""
    return reference_run_stages(model, img)[0]
