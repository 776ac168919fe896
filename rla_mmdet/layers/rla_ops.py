"""The two operators of RLA, each with its literal form first.

``concat_conv(conv, x, h)`` is ``conv(cat([x, h]))``, the first convolution
of a block; ``rla_update(conv_out, norm, recurrent_conv, x, h)`` is the
recurrent update ``recurrent_conv(tanh(norm(h + conv_out(x))))`` of every
RLA network here (RLA-ResNet, whose ``x`` is a block's output;
RLA-MobileNetV2, whose ``x`` is a block's branch before the residual add
and whose ``recurrent_conv`` is depthwise; their ImageNet classifiers). The
faster forms compute the same values (tests compare every form with the literal
one, outputs and gradients) and fall back to the literal form whenever their
preconditions do not hold (a convolution that is not a plain ``nn.Conv2d``,
such as mmcv's ``ConvWS``; a norm that is not an eval-mode BatchNorm; a
tensor that is not contiguous NCHW). :mod:`.dispatch` picks the form.
"""
from typing import Callable, Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from .dispatch import choose

__all__ = ['concat_conv', 'rla_update', 'FORMS']


# The checks below loop explicitly: torch 2.1's torch.compile cannot trace
# a generator expression with fullgraph=True.
def _recorded(*tensors: torch.Tensor) -> bool:
    """Whether autograd records an operation on ``tensors``."""
    if not torch.is_grad_enabled():
        return False
    for t in tensors:
        if t.requires_grad:
            return True
    return False


def _plain_conv(conv: nn.Module) -> bool:
    """A bias-free, ungrouped ``nn.Conv2d`` (not a subclass) with zero
    padding: the convolutions the faster forms may take apart."""
    return (type(conv) is nn.Conv2d and conv.bias is None
            and conv.groups == 1 and conv.padding_mode == 'zeros')


def _pointwise(conv: nn.Module) -> bool:
    """A plain 1x1 convolution with stride 1: a matrix product per pixel."""
    return (_plain_conv(conv) and conv.kernel_size == (1, 1)
            and conv.stride == (1, 1))


def _nchw(*tensors: torch.Tensor) -> bool:
    for t in tensors:
        if not t.is_contiguous():
            return False
    return True


# ------------------------------------------------------------- concat_conv
def concat_conv_literal(conv: nn.Module, x: torch.Tensor,
                        h: torch.Tensor) -> torch.Tensor:
    """``conv(cat([x, h]))``."""
    return conv(torch.cat((x, h), dim=1))


def concat_conv_split(conv: nn.Module, x: torch.Tensor,
                      h: torch.Tensor) -> torch.Tensor:
    """``conv(cat([x, h]))`` as the sum of the convolutions of the parts.

    ``x`` goes through the convolution with ``weight[:, :C]``, ``h`` through
    the one with ``weight[:, C:]``, and the two are added in place. No
    concatenated copy of ``x`` is made, nor kept for backward.
    """
    if not (_plain_conv(conv) and _nchw(x, h)):
        return concat_conv_literal(conv, x, h)
    c = x.shape[1]
    out = F.conv2d(x, conv.weight[:, :c], None, conv.stride, conv.padding,
                   conv.dilation)
    return out.add_(
        F.conv2d(h, conv.weight[:, c:], None, conv.stride, conv.padding,
                 conv.dilation))


_CONCAT_CONV: Dict[str, Callable] = dict(
    literal=concat_conv_literal, split=concat_conv_split)


def concat_conv(conv: nn.Module, x: torch.Tensor,
                h: torch.Tensor) -> torch.Tensor:
    """``conv(cat([x, h], dim=1))`` in the form chosen for this call.

    Args:
        conv: A convolution over ``C + k`` input channels.
        x: The feature map (``C`` channels).
        h: The hidden state (``k`` channels, same spatial size as ``x``).
    """
    form = choose('concat_conv', x.device.type,
                  _recorded(x, h, conv.weight))
    return _CONCAT_CONV[form](conv, x, h)


# --------------------------------------------------------------- rla_update
def rla_update_literal(conv_out: nn.Module, norm: nn.Module,
                       recurrent_conv: nn.Module, x: torch.Tensor,
                       h: torch.Tensor) -> torch.Tensor:
    """``recurrent_conv(tanh(norm(h + conv_out(x))))``."""
    return recurrent_conv(torch.tanh(norm(h + conv_out(x))))


def rla_update_folded(conv_out: nn.Module, norm: nn.Module,
                      recurrent_conv: nn.Module, x: torch.Tensor,
                      h: torch.Tensor) -> torch.Tensor:
    """The update with an eval-mode BatchNorm folded into ``conv_out``.

    The norm is the affine map ``a * y + b`` per channel, so
    ``norm(h + W @ x) = (a W) @ x + (a * h + b)``: one ``baddbmm`` over the
    flattened pixels (reading ``x`` where it is, where a convolution first
    reorders a large NCHW ``x`` into its kernel's layout) instead of a
    convolution, an addition and a normalisation, each a pass over ``h``.
    Correct under autograd too (gradients reach the norm's weight and bias
    through the folded scale and shift); a norm in training mode, or any
    other norm, runs the literal form.
    """
    if not (_pointwise(conv_out) and _nchw(x, h)
            and isinstance(norm, _BatchNorm) and not norm.training
            and norm.running_var is not None):
        return rla_update_literal(conv_out, norm, recurrent_conv, x, h)
    b, c = x.shape[:2]
    k = conv_out.out_channels
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    scale, shift = scale.to(x.dtype).view(1, k, 1), shift.to(x.dtype).view(
        1, k, 1)
    weight = (conv_out.weight.view(1, k, c).to(x.dtype) * scale).expand(
        b, -1, -1)
    y = torch.baddbmm(torch.addcmul(shift, h.flatten(2), scale), weight,
                      x.flatten(2)).view(h.shape)
    # tanh's backward reads its output, so in place is fine under autograd.
    return recurrent_conv(y.tanh_())


_RLA_UPDATE: Dict[str, Callable] = dict(
    literal=rla_update_literal, folded=rla_update_folded)


def rla_update(conv_out: nn.Module, norm: nn.Module,
               recurrent_conv: nn.Module, x: torch.Tensor,
               h: torch.Tensor) -> torch.Tensor:
    """The new hidden state ``recurrent_conv(tanh(norm(h + conv_out(x))))``
    in the form chosen for this call.

    Args:
        conv_out: 1x1 convolution from ``x``'s channels to ``k``.
        norm: The norm layer of this block's update.
        recurrent_conv: The convolution from ``k`` to ``k`` channels (3x3;
            depthwise in RLA-MobileNetV2).
        x: What the update reads from the block: its output (RLA-ResNet) or
            its branch before the residual add (RLA-MobileNetV2).
        h: The hidden state at ``x``'s resolution.
    """
    training = _recorded(x, h, conv_out.weight, *norm.parameters(),
                         *recurrent_conv.parameters())
    form = choose('rla_update', x.device.type, training)
    return _RLA_UPDATE[form](conv_out, norm, recurrent_conv, x, h)


#: The forms of each operator, by name (the values of ``DISPATCH`` rows).
FORMS = dict(concat_conv=tuple(_CONCAT_CONV), rla_update=tuple(_RLA_UPDATE))
