"""RLA-ResNet and RLA-ECANet: ResNets with Recurrent Layer Aggregation.

A small hidden state ``h`` (``rla_channel`` channels) runs along the depth of
the network beside the feature map ``x``. Every block reads ``h`` (it is
concatenated to the block's input) and writes back into it through a
recurrent update whose weights are shared by all blocks of a stage::

    x, h = block(x, h)                     # residual block on cat([x, h])
    h = recurrent_convs[s](tanh(stage_bns[s][b](h + conv_outs[s](x))))

The module names (``stages``, ``stage_bns``, ``conv_outs``,
``recurrent_convs``, ``conv1``/``bn1``...) are the ones of the published
checkpoints, so those load without renaming.
"""
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, kaiming_init
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ..checkpoint import load_backbone_weights
from ._checks import (check_bool, check_choice, check_int, check_int_tuple,
                      is_int)

ConfigType = Dict
OptConfigType = Optional[Dict]


class _ECA(nn.Module):
    """Efficient channel attention: a 1-D convolution across channels.

    Args:
        kernel_size: Odd size of the convolution along the channel axis.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        weight = self.conv(x.mean((2, 3)).view(b, 1, c)).sigmoid()
        return x * weight.view(b, c, 1, 1)


class _SE(nn.Module):
    """Squeeze-and-excitation with bias-free linear layers.

    Args:
        channels: Channels of the input.
        reduction: Ratio between the input and the hidden channels.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        return x * self.fc(x.mean((2, 3))).view(b, c, 1, 1)


def _plain_conv(conv: nn.Module) -> bool:
    """True for a bias-free, ungrouped ``nn.Conv2d`` with zero padding."""
    return (type(conv) is nn.Conv2d and conv.bias is None
            and conv.groups == 1 and conv.padding_mode == 'zeros')


def _is_nchw(*tensors: torch.Tensor) -> bool:
    return all(t.is_contiguous() for t in tensors)


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def conv1x1(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a 1x1 convolution; one batched matmul on CPU NCHW.

    On the CPU, a convolution over a large NCHW tensor first reorders it into
    the kernel's blocked layout; ``W @ x`` over the flattened pixels reads
    ``x`` where it is (about twice as fast for the 256-channel stride-4
    maps). On GPUs, in channels_last, or for custom conv layers, ``conv`` is
    called as is.
    """
    if not (x.device.type == 'cpu' and _plain_conv(conv)
            and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and _is_nchw(x)):
        return conv(x)
    b, c, height, width = x.shape
    weight = conv.weight.view(1, conv.out_channels, c).to(x.dtype)
    # bmm on views: autograd keeps x itself (which the network keeps anyway)
    # where a broadcasting matmul would save a transposed copy of it.
    out = torch.bmm(weight.expand(b, -1, -1), x.view(b, c, height * width))
    return out.view(b, conv.out_channels, height, width)


class _StackedConv1x1(torch.autograd.Function):
    """Two 1x1 convolutions of one input, run as one convolution.

    ``(conv2d(x, w_a), conv2d(x, w_b))`` computed as one ``conv2d`` with the
    weights stacked: one kernel reads ``x``, and backward yields one
    gradient of ``x``. The two outputs are returned as separate tensors (not
    slices of one, whose gradients autograd would scatter into zero-filled
    copies of the whole output) and only ``x`` and the two weights are kept
    for backward: the stacked weight is rebuilt there rather than saved.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w_a: torch.Tensor,
                w_b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        device = x.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            x, w_a, w_b = x.to(dtype), w_a.to(dtype), w_b.to(dtype)
        ctx.save_for_backward(x, w_a, w_b)
        with torch.autocast(device, enabled=False):
            out = F.conv2d(x, torch.cat((w_a, w_b)))
        n = w_a.shape[0]
        return out[:, :n].contiguous(), out[:, n:].contiguous()

    @staticmethod
    def backward(ctx, grad_a: Optional[torch.Tensor],
                 grad_b: Optional[torch.Tensor]):
        x, w_a, w_b = ctx.saved_tensors
        shape = list(x.shape)
        if grad_a is None:
            shape[1] = w_a.shape[0]
            grad_a = x.new_zeros(shape)
        if grad_b is None:
            shape[1] = w_b.shape[0]
            grad_b = x.new_zeros(shape)
        grad = torch.cat((grad_a, grad_b), dim=1).to(x.dtype)
        need_x, need_a, need_b = ctx.needs_input_grad
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad, x, torch.cat((w_a, w_b)), None, [1, 1], [0, 0], [1, 1],
            False, [0, 0], 1, [need_x, need_a or need_b, False])
        grad_wa = grad_wb = None
        if grad_w is not None:
            grad_wa, grad_wb = grad_w.split([w_a.shape[0], w_b.shape[0]])
        return grad_x, grad_wa, grad_wb


def conv_on_concat(conv: nn.Module,
                   x: torch.Tensor,
                   h: Optional[torch.Tensor],
                   x_part: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``conv(cat([x, h], dim=1))``, computed the cheapest way per device.

    A convolution of a channel concatenation is the sum of convolutions of
    its parts with the matching slices of the weight. The large part (``x``)
    goes through the same convolution kernel as in a plain ResNet; the small
    part (the ``k`` channels of ``h``) is added to it, as a batched matmul
    for 1x1 convolutions on CPU NCHW tensors. This saves copying ``x`` into
    a new tensor in every block, which costs CPU time (a large allocation)
    and, under autograd, the memory kept for that copy.

    On a GPU in inference the copy is cheap and every extra kernel launch
    counts, so the concatenation is built and convolved once.

    Args:
        conv: The block's first convolution (input ``C + k`` channels).
        x: The block input (``C`` channels).
        h: The hidden state, or ``None`` for the all-zero initial state.
        x_part: ``x``'s share of the result when it was computed already
            (see :meth:`RLAResNet._update`).
    """
    if h is None:
        if x_part is not None:
            return x_part
        return F.conv2d(x, conv.weight[:, :x.shape[1]], None, conv.stride,
                        conv.padding, conv.dilation)
    if x_part is None and (not _plain_conv(conv) or (
            x.device.type != 'cpu' and not _needs_grad(x, h, conv.weight))):
        return conv(torch.cat((x, h), dim=1))
    c = x.shape[1]
    weight = conv.weight
    if x_part is None:
        out = F.conv2d(x, weight[:, :c], None, conv.stride, conv.padding,
                       conv.dilation)
    else:
        out = x_part
    w_h = weight[:, c:].to(out.dtype)
    h = h.to(out.dtype)
    if (x.device.type == 'cpu' and conv.kernel_size == (1, 1)
            and conv.stride == (1, 1) and h.is_contiguous()):
        b, n = out.shape[:2]
        w_h = w_h.reshape(1, n, -1).expand(b, -1, -1)
        if x_part is None and out.is_contiguous():
            out.view(b, n, -1).baddbmm_(w_h, h.flatten(2))
            return out
        # a precomputed part is a view of a larger output: add out of place
        return torch.baddbmm(out.flatten(2), w_h, h.flatten(2)).view(
            out.shape)
    h_part = F.conv2d(h, w_h, None, conv.stride, conv.padding, conv.dilation)
    return out + h_part if x_part is not None else out.add_(h_part)


def _foldable(conv_out: nn.Module, norm: nn.Module, x: torch.Tensor,
              h: Optional[torch.Tensor]) -> bool:
    """Whether :func:`_folded_update` applies: inference on CPU NCHW tensors
    with a plain 1x1 ``conv_out`` and a BatchNorm using running statistics.
    """
    return (x.device.type == 'cpu' and isinstance(norm, _BatchNorm)
            and not norm.training and norm.running_var is not None
            and _plain_conv(conv_out) and conv_out.kernel_size == (1, 1)
            and conv_out.stride == (1, 1) and _is_nchw(x)
            and (h is None or _is_nchw(h))
            and not _needs_grad(x, conv_out.weight, *norm.parameters(),
                                *([] if h is None else [h])))


def _folded_update(conv_out: nn.Module, norm: _BatchNorm, x: torch.Tensor,
                   h: Optional[torch.Tensor]) -> torch.Tensor:
    """``norm(conv_out(x) + h)`` for an eval-mode BatchNorm, in one matmul.

    The norm is an affine map ``a * y + b`` per channel, so the result is
    ``(a W) @ x + (a * h + b)``: one ``baddbmm`` instead of a matmul, an
    addition and a normalisation, each a pass over the hidden state.
    """
    b, c, height, width = x.shape
    k = conv_out.out_channels
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    scale, shift = scale.to(x.dtype).view(1, k, 1), shift.to(x.dtype).view(
        1, k, 1)
    weight = (conv_out.weight.view(1, k, c).to(x.dtype) *
              scale.view(1, k, 1)).expand(b, -1, -1)
    base = shift if h is None else torch.addcmul(shift, h.flatten(2), scale)
    out = torch.baddbmm(base, weight, x.view(b, c, height * width))
    return out.view(b, k, height, width)


class _RLABlock(nn.Module):
    """Common part of the RLA residual blocks.

    A block takes the feature map ``x`` and the hidden state ``h`` and returns
    its output ``relu(residual(cat([x, h])) + identity)`` with ``h`` pooled
    to the new resolution when the block strides. The recurrent update of ``h``
    belongs to the stage (its weights are shared) and lives in
    :class:`RLAResNet`.
    """

    expansion = 1

    def _init_tail(self, out_channels: int, stride: int,
                   downsample: Optional[nn.Module], se: bool,
                   se_reduction: int, eca_kernel_size: Optional[int]) -> None:
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        # The hidden state follows the feature map to the lower resolution.
        # ceil_mode keeps its size equal to a strided conv's output for odd
        # inputs, and is the plain 2x2 average for even ones.
        self.pool_hidden = downsample is not None and stride != 1
        self.se = _SE(out_channels, se_reduction) if se else None
        self.eca = (
            _ECA(eca_kernel_size) if eca_kernel_size is not None else None)

    def residual(self, x: torch.Tensor, h: Optional[torch.Tensor],
                 x_part: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The residual branch on ``cat([x, h])``, up to before the add."""
        raise NotImplementedError

    def _attention(self, out: torch.Tensor) -> torch.Tensor:
        if self.se is not None:
            out = self.se(out)
        if self.eca is not None:
            out = self.eca(out)
        return out

    def forward(
        self,
        x: torch.Tensor,
        h: Optional[torch.Tensor],
        x_part: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``(output, h at the output's resolution)``.

        ``h=None`` stands for the all-zero initial state; ``x_part`` is
        ``conv1``'s share of ``x`` if it was computed beforehand.
        """
        out = self.residual(x, h, x_part)
        identity = x if self.downsample is None else self.downsample(x)
        if self.pool_hidden and h is not None:
            h = F.avg_pool2d(h, 2, 2, ceil_mode=True)
        # In place, as in mmdet's ResNet: the branch output is not needed by
        # autograd (the norm / attention before it saved their inputs).
        out += identity
        return self.relu(out), h


class _RLABasicBlock(_RLABlock):
    """RLA BasicBlock (two 3x3 convolutions), for depths 18 and 34."""

    expansion = 1

    def __init__(self,
                 inplanes: int,
                 planes: int,
                 rla_channel: int,
                 stride: int = 1,
                 dilation: int = 1,
                 downsample: Optional[nn.Module] = None,
                 style: str = 'pytorch',
                 groups: int = 1,
                 width_per_group: int = 64,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='BN'),
                 dcn: OptConfigType = None,
                 se: bool = False,
                 se_reduction: int = 16,
                 eca_kernel_size: Optional[int] = None) -> None:
        super().__init__()
        if groups != 1 or width_per_group != 64:
            raise ValueError(
                'groups and width_per_group apply to Bottleneck depths '
                f'(50, 101, 152) only, got groups={groups}, '
                f'width_per_group={width_per_group} for a BasicBlock depth.')
        if dcn is not None:
            raise ValueError('dcn applies to Bottleneck depths (50, 101, 152) '
                             'only; set dcn=None for depth 18 or 34.')
        self.conv1 = build_conv_layer(
            conv_cfg, inplanes + rla_channel, planes, 3, stride=stride,
            padding=dilation, dilation=dilation, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, planes)[1]
        self.conv2 = build_conv_layer(
            conv_cfg, planes, planes, 3, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, planes)[1]
        self._init_tail(planes, stride, downsample, se, se_reduction,
                        eca_kernel_size)

    @property
    def last_norm(self) -> nn.Module:
        return self.bn2

    def residual(self, x: torch.Tensor, h: Optional[torch.Tensor],
                 x_part: Optional[torch.Tensor] = None) -> torch.Tensor:
        out = self.relu(self.bn1(conv_on_concat(self.conv1, x, h, x_part)))
        out = self.bn2(self.conv2(out))
        return self._attention(out)


class _RLABottleneck(_RLABlock):
    """RLA Bottleneck (1x1, 3x3, 1x1), for depths 50, 101 and 152.

    ``style='pytorch'`` puts the stride on the 3x3 convolution, ``'caffe'``
    on the first 1x1 convolution. ResNeXt widths follow torchvision:
    ``width = int(planes * width_per_group / 64) * groups``.
    """

    expansion = 4

    def __init__(self,
                 inplanes: int,
                 planes: int,
                 rla_channel: int,
                 stride: int = 1,
                 dilation: int = 1,
                 downsample: Optional[nn.Module] = None,
                 style: str = 'pytorch',
                 groups: int = 1,
                 width_per_group: int = 64,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='BN'),
                 dcn: OptConfigType = None,
                 se: bool = False,
                 se_reduction: int = 16,
                 eca_kernel_size: Optional[int] = None) -> None:
        super().__init__()
        width = int(planes * (width_per_group / 64.)) * groups
        out_channels = planes * self.expansion
        stride1, stride2 = (1, stride) if style == 'pytorch' else (stride, 1)
        self.conv1 = build_conv_layer(
            conv_cfg, inplanes + rla_channel, width, 1, stride=stride1,
            bias=False)
        self.bn1 = build_norm_layer(norm_cfg, width)[1]
        self.conv2 = build_conv_layer(
            dcn if dcn is not None else conv_cfg, width, width, 3,
            stride=stride2, padding=dilation, dilation=dilation,
            groups=groups, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, width)[1]
        self.conv3 = build_conv_layer(
            conv_cfg, width, out_channels, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, out_channels)[1]
        self._init_tail(out_channels, stride, downsample, se, se_reduction,
                        eca_kernel_size)

    @property
    def last_norm(self) -> nn.Module:
        return self.bn3

    def residual(self, x: torch.Tensor, h: Optional[torch.Tensor],
                 x_part: Optional[torch.Tensor] = None) -> torch.Tensor:
        out = self.relu(self.bn1(conv_on_concat(self.conv1, x, h, x_part)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self._attention(out)


@MODELS.register_module()
class RLAResNet(BaseModule):
    """ResNet with Recurrent Layer Aggregation (RLA-Net, NeurIPS 2021).

    The arguments are those of MMDetection's ``ResNet`` with its detection
    defaults, plus the RLA ones. The four stage outputs feed an FPN with
    ``in_channels=[256, 512, 1024, 2048]`` (depth >= 50) or
    ``[64, 128, 256, 512]`` (depth 18/34).

    Published ImageNet weights exist for depth 50 and 101 (RLA-ResNet and
    RLA-ECANet); depths 18 and 34 (RLA BasicBlock) and 152 have none.

    Args:
        depth: 18, 34, 50, 101 or 152.
        rla_channel: Channels ``k`` of the recurrent hidden state. Default 32.
        in_channels: Channels of the input image. Default 3.
        stem_channels: Channels of the stem; ``None`` means
            ``base_channels``.
        base_channels: Planes of the first stage. Default 64.
        num_stages: Number of stages, 1 to 4. Default 4.
        strides: Stride of the first block of each stage.
        dilations: Dilation of the 3x3 convolutions of each stage. When a
            stride is replaced by dilation, the hidden state is not pooled.
        out_indices: Stages whose outputs are returned. The last one must be
            the last stage (``num_stages - 1``), so that no stage is computed
            for nothing.
        style: ``'pytorch'`` (stride on the 3x3 conv) or ``'caffe'``.
        deep_stem: Replace the 7x7 stem conv with three 3x3 convs.
        avg_down: Downsample the shortcut with an average pool.
        frozen_stages: Stages to freeze (no grad, norms in eval mode): -1
            none, 0 the stem, ``i`` the stem and stages ``0..i-1`` with their
            ``stage_bns``, ``conv_outs`` and ``recurrent_convs``.
        conv_cfg: Config of the convolution layers.
        norm_cfg: Config of every norm layer, the RLA ones included.
        norm_eval: Keep the norm layers in eval mode while training.
        dcn: Config of a deformable 3x3 conv (Bottleneck depths only).
        stage_with_dcn: Which stages use ``dcn``.
        plugins: Not supported; must be ``None``.
        with_cp: Use gradient checkpointing on each block and its RLA update.
        zero_init_residual: Zero-initialise the last norm of each block when
            no pretrained weights are given.
        se: Add squeeze-and-excitation to every block.
        se_reduction: Reduction ratio of the SE modules. Default 16.
        eca_kernel_sizes: ``None`` (no ECA) or four odd kernel sizes of the
            ECA modules of each stage.
        groups: ResNeXt cardinality. Default 1.
        width_per_group: ResNeXt width per group. Default 64.
        pretrained: Deprecated; use
            ``init_cfg=dict(type='Pretrained', checkpoint=...)``.
        init_cfg: ``None`` (Kaiming init) or a ``Pretrained`` init config,
            with an optional ``prefix`` such as ``'backbone.'`` to take the
            backbone of a whole-detector checkpoint.

    Example:
        >>> import torch
        >>> from rla_mmdet import RLAResNet
        >>> model = RLAResNet(depth=18).eval()
        >>> outs = model(torch.rand(1, 3, 64, 64))
        >>> [tuple(o.shape) for o in outs]
        [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
        >>> model.out_channels
        (64, 128, 256, 512)
    """

    arch_settings = {
        18: (_RLABasicBlock, (2, 2, 2, 2)),
        34: (_RLABasicBlock, (3, 4, 6, 3)),
        50: (_RLABottleneck, (3, 4, 6, 3)),
        101: (_RLABottleneck, (3, 4, 23, 3)),
        152: (_RLABottleneck, (3, 8, 36, 3)),
    }
    #: ECA kernel sizes used when the argument is left out.
    default_eca_kernel_sizes: Optional[Tuple[int, ...]] = None

    def __init__(self,
                 depth: int,
                 rla_channel: int = 32,
                 in_channels: int = 3,
                 stem_channels: Optional[int] = None,
                 base_channels: int = 64,
                 num_stages: int = 4,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 style: str = 'pytorch',
                 deep_stem: bool = False,
                 avg_down: bool = False,
                 frozen_stages: int = -1,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 norm_eval: bool = True,
                 dcn: OptConfigType = None,
                 stage_with_dcn: Sequence[bool] = (False, False, False,
                                                   False),
                 plugins: Optional[List] = None,
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 se: bool = False,
                 se_reduction: int = 16,
                 eca_kernel_sizes: Union[Sequence[int], None, str] = 'default',
                 groups: int = 1,
                 width_per_group: int = 64,
                 pretrained: Optional[str] = None,
                 init_cfg: Union[Dict, List[Dict], None] = None) -> None:
        init_cfg = self._resolve_init_cfg(pretrained, init_cfg)
        super().__init__(init_cfg=init_cfg)
        if not is_int(depth) or depth not in self.arch_settings:
            raise ValueError(f'depth must be one of '
                             f'{tuple(self.arch_settings)}, got {depth!r}.')
        self.depth = int(depth)
        self.rla_channel = check_int('rla_channel', rla_channel, 1)
        in_channels = check_int('in_channels', in_channels, 1)
        base_channels = check_int('base_channels', base_channels, 1)
        if stem_channels is None:
            stem_channels = base_channels
        stem_channels = check_int('stem_channels', stem_channels, 1)
        self.num_stages = check_int('num_stages', num_stages, 1, 4)
        self.strides = check_int_tuple('strides', strides, self.num_stages)
        self.dilations = check_int_tuple('dilations', dilations,
                                         self.num_stages)
        self.out_indices = self._check_out_indices(out_indices)
        self.style = check_choice('style', style, ('pytorch', 'caffe'))
        self.deep_stem = check_bool('deep_stem', deep_stem)
        self.avg_down = check_bool('avg_down', avg_down)
        self.frozen_stages = check_int('frozen_stages', frozen_stages, -1,
                                       self.num_stages)
        self.norm_eval = check_bool('norm_eval', norm_eval)
        self.with_cp = check_bool('with_cp', with_cp)
        self.zero_init_residual = check_bool('zero_init_residual',
                                             zero_init_residual)
        se = check_bool('se', se)
        se_reduction = check_int('se_reduction', se_reduction, 1)
        groups = check_int('groups', groups, 1)
        width_per_group = check_int('width_per_group', width_per_group, 1)
        if eca_kernel_sizes == 'default':
            eca_kernel_sizes = self.default_eca_kernel_sizes
        if eca_kernel_sizes is not None:
            eca_kernel_sizes = check_int_tuple(
                'eca_kernel_sizes', eca_kernel_sizes, 4, low=1, odd=True)
        self.eca_kernel_sizes = eca_kernel_sizes
        if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
            raise TypeError('norm_cfg must be a dict with a "type" key, such '
                            f"as dict(type='BN'), got {norm_cfg!r}.")
        self.norm_cfg = norm_cfg
        self.conv_cfg = conv_cfg
        if plugins is not None:
            raise ValueError('plugins are not supported by the RLA blocks; '
                             f'set plugins=None (got {plugins!r}).')
        if dcn is not None:
            if not isinstance(dcn, dict):
                raise TypeError(f'dcn must be a config dict or None, got '
                                f'{dcn!r}.')
            if conv_cfg is not None:
                raise ValueError('dcn and conv_cfg cannot be used together; '
                                 'set conv_cfg=None to use dcn.')
        stage_with_dcn = tuple(stage_with_dcn)
        if len(stage_with_dcn) != self.num_stages:
            raise ValueError(f'stage_with_dcn must have {self.num_stages} '
                             f'items (num_stages), got {stage_with_dcn!r}.')

        block, stage_blocks = self.arch_settings[self.depth]
        self.stage_blocks = stage_blocks[:self.num_stages]
        self._make_stem(in_channels, stem_channels)

        stages, stage_bns, conv_outs, recurrent_convs = [], [], [], []
        inplanes = stem_channels
        channels = []
        for i, num_blocks in enumerate(self.stage_blocks):
            planes = base_channels * 2**i
            out_ch = planes * block.expansion
            stages.append(
                self._make_stage(
                    block, inplanes, planes, num_blocks,
                    stride=self.strides[i],
                    dilation=self.dilations[i],
                    dcn=dcn if stage_with_dcn[i] else None,
                    se=se,
                    se_reduction=se_reduction,
                    eca_kernel_size=(eca_kernel_sizes[i]
                                     if eca_kernel_sizes else None),
                    groups=groups,
                    width_per_group=width_per_group))
            # The update after the network's very last block would never be
            # read, so its norm layer is not built: every parameter of the
            # backbone then gets a gradient.
            num_updates = num_blocks - (i == self.num_stages - 1)
            stage_bns.append(
                nn.ModuleList(
                    build_norm_layer(norm_cfg, self.rla_channel)[1]
                    for _ in range(num_updates)))
            conv_outs.append(
                build_conv_layer(
                    conv_cfg, out_ch, self.rla_channel, 1, bias=False))
            recurrent_convs.append(
                build_conv_layer(
                    conv_cfg, self.rla_channel, self.rla_channel, 3,
                    padding=1, bias=False))
            inplanes = out_ch
            channels.append(out_ch)
        self.stages = nn.ModuleList(stages)
        self.stage_bns = nn.ModuleList(stage_bns)
        self.conv_outs = nn.ModuleList(conv_outs)
        self.recurrent_convs = nn.ModuleList(recurrent_convs)
        #: Channels of every stage's output.
        self.stage_channels = tuple(channels)
        #: Channels of each returned output, in order.
        self.out_channels = tuple(channels[i] for i in self.out_indices)
        #: Stride of each returned output with respect to the input.
        self.out_strides = tuple(self._stage_strides()[i]
                                 for i in self.out_indices)
        self._has_sync_bn = any(
            isinstance(m, nn.SyncBatchNorm) for m in self.modules())
        self._freeze_stages()

    # ------------------------------------------------------------------ build
    @staticmethod
    def _resolve_init_cfg(pretrained, init_cfg):
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('pretrained and init_cfg cannot both be set; '
                                 'use init_cfg=dict(type="Pretrained", '
                                 'checkpoint=...) alone.')
            if not isinstance(pretrained, str):
                raise TypeError(f'pretrained must be a checkpoint path (str), '
                                f'got {pretrained!r}.')
            warnings.warn(
                'pretrained is deprecated, use init_cfg=dict(type='
                f'"Pretrained", checkpoint={pretrained!r}) instead.',
                DeprecationWarning)
            return dict(type='Pretrained', checkpoint=pretrained)
        if init_cfg is not None and not isinstance(init_cfg, (dict, list)):
            raise TypeError(f'init_cfg must be a dict, a list of dicts or '
                            f'None, got {init_cfg!r}.')
        return init_cfg

    def _check_out_indices(self, out_indices) -> Tuple[int, ...]:
        what = (f'a non-empty, increasing sequence of stage indices in '
                f'[0, {self.num_stages - 1}]')
        if isinstance(out_indices, (str, bytes)) or not isinstance(
                out_indices, Sequence) or not out_indices:
            raise TypeError(f'out_indices must be {what}, got '
                            f'{out_indices!r}.')
        for i in out_indices:
            if not is_int(i) or not 0 <= i < self.num_stages:
                raise ValueError(f'out_indices must be {what}, got '
                                 f'{tuple(out_indices)!r}.')
        out_indices = tuple(int(i) for i in out_indices)
        if list(out_indices) != sorted(set(out_indices)):
            raise ValueError(f'out_indices must be {what}, got '
                             f'{out_indices!r}.')
        if out_indices[-1] != self.num_stages - 1:
            raise ValueError(
                f'out_indices={out_indices!r} leaves stage(s) after '
                f'{out_indices[-1]} computed for nothing (their parameters '
                'would never get a gradient); set '
                f'num_stages={out_indices[-1] + 1} to drop them.')
        return out_indices

    def _stage_strides(self) -> List[int]:
        total, result = 4, []
        for s in self.strides:
            total *= s
            result.append(total)
        return result

    def _make_stem(self, in_channels: int, stem_channels: int) -> None:
        if self.deep_stem:
            half = stem_channels // 2
            layers = []
            for i, (cin, cout) in enumerate([(in_channels, half),
                                             (half, half),
                                             (half, stem_channels)]):
                layers += [
                    build_conv_layer(self.conv_cfg, cin, cout, 3,
                                     stride=2 if i == 0 else 1, padding=1,
                                     bias=False),
                    build_norm_layer(self.norm_cfg, cout)[1],
                    nn.ReLU(inplace=True)
                ]
            self.stem = nn.Sequential(*layers)
        else:
            self.conv1 = build_conv_layer(
                self.conv_cfg, in_channels, stem_channels, 7, stride=2,
                padding=3, bias=False)
            self.bn1 = build_norm_layer(self.norm_cfg, stem_channels)[1]
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _make_stage(self, block, inplanes: int, planes: int, num_blocks: int,
                    stride: int, dilation: int, **kwargs) -> nn.ModuleList:
        out_ch = planes * block.expansion
        downsample = None
        if stride != 1 or inplanes != out_ch:
            layers = []
            conv_stride = stride
            if self.avg_down and stride != 1:
                conv_stride = 1
                layers.append(
                    nn.AvgPool2d(stride, stride, ceil_mode=True,
                                 count_include_pad=False))
            layers += [
                build_conv_layer(self.conv_cfg, inplanes, out_ch, 1,
                                 stride=conv_stride, bias=False),
                build_norm_layer(self.norm_cfg, out_ch)[1]
            ]
            downsample = nn.Sequential(*layers)
        common = dict(
            rla_channel=self.rla_channel, dilation=dilation, style=self.style,
            conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, **kwargs)
        blocks = [block(inplanes, planes, stride=stride,
                        downsample=downsample, **common)]
        blocks += [block(out_ch, planes, **common)
                   for _ in range(1, num_blocks)]
        return nn.ModuleList(blocks)

    # ---------------------------------------------------------------- weights
    def describe(self) -> str:
        """A short description used in error messages."""
        eca = (f', eca_kernel_sizes={self.eca_kernel_sizes}'
               if self.eca_kernel_sizes else '')
        return (f'depth={self.depth}, rla_channel={self.rla_channel}, '
                f'num_stages={self.num_stages}{eca}')

    def unbuilt_prefixes(self) -> Tuple[str, ...]:
        """Key prefixes of checkpoints that this backbone has no module for.

        The ImageNet classifier (``bn2``, ``fc``), stages beyond
        ``num_stages``, and the norm of the hidden-state update after the
        last block, which no output reads. Loading drops them quietly.
        """
        prefixes = ['fc.', 'bn2.']
        for s in range(self.num_stages, 4):
            prefixes += [
                f'stages.{s}.', f'stage_bns.{s}.', f'conv_outs.{s}.',
                f'recurrent_convs.{s}.'
            ]
        last = self.num_stages - 1
        prefixes.append(f'stage_bns.{last}.{self.stage_blocks[last] - 1}.')
        return tuple(prefixes)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Whichever loader is used (MMEngine's load_checkpoint, a plain
        # load_state_dict), the tensors of unbuilt modules are not reported
        # as unexpected keys.
        unbuilt = self.unbuilt_prefixes()
        for key in [k for k in state_dict if k.startswith(prefix)]:
            if key[len(prefix):].startswith(unbuilt):
                del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def init_weights(self) -> None:
        """Kaiming init (zero last norms), or strict pretrained loading.

        A ``Pretrained`` ``init_cfg`` is loaded by
        :func:`rla_mmdet.checkpoint.load_backbone_weights`, which accepts the
        authors' ImageNet files and whole-detector checkpoints (with
        ``prefix``) and raises on any missing or unexpected key.
        """
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            load_backbone_weights(
                self,
                cfg.get('checkpoint'),
                prefix=cfg.get('prefix'),
                map_location=cfg.get('map_location', 'cpu'))
            self._is_init = True
        elif cfg is None:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    kaiming_init(m)
                elif isinstance(m, (_BatchNorm, nn.GroupNorm)):
                    constant_init(m, 1)
            if self.zero_init_residual:
                for m in self.modules():
                    if isinstance(m, _RLABlock):
                        constant_init(m.last_norm, 0)
            self._is_init = True
        else:
            super().init_weights()

    # ---------------------------------------------------------------- forward
    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.relu(self.bn1(self.conv1(x)))
        return self.maxpool(x)

    def _next_conv1(self, stage: int, index: int) -> Optional[nn.Module]:
        """``conv1`` of the block after ``stages[stage][index]``, if it is a
        plain 1x1 stride-1 convolution that can share a kernel with
        ``conv_outs[stage]``."""
        if index + 1 < len(self.stages[stage]):
            nxt = self.stages[stage][index + 1]
        elif stage + 1 < self.num_stages:
            nxt = self.stages[stage + 1][0]
        else:
            return None
        conv, conv_out = nxt.conv1, self.conv_outs[stage]
        if (_plain_conv(conv) and _plain_conv(conv_out)
                and conv.kernel_size == conv_out.kernel_size == (1, 1)
                and conv.stride == conv_out.stride == (1, 1)):
            return conv
        return None

    def _update(self, stage: int, index: int, x: torch.Tensor,
                h: Optional[torch.Tensor]
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The RLA update after block ``index``: the new ``h``, and the next
        block's ``conv1`` share of ``x`` when it was computed here.

        Under autograd, ``conv_outs[stage]`` and the next block's ``conv1``
        (both 1x1 convolutions of ``x``) run as one convolution with the two
        weights stacked: ``x`` is read once and its gradient comes out of
        one kernel instead of two (a full-size gradient allocation and sum
        less per block). In inference the separate, cheaper ``conv1x1`` is
        used; there, with an eval-mode BatchNorm, ``conv_out``, the ``+ h``
        and the norm are a single batched matmul (:func:`_folded_update`).
        """
        conv_out, norm = self.conv_outs[stage], self.stage_bns[stage][index]
        if _foldable(conv_out, norm, x, h):
            y = _folded_update(conv_out, norm, x, h)
            return self.recurrent_convs[stage](y.tanh_()), None
        x_part = None
        nxt = (self._next_conv1(stage, index)
               if _needs_grad(x, conv_out.weight) else None)
        if nxt is not None:
            c = x.shape[1]
            x_part, y = _StackedConv1x1.apply(x, nxt.weight[:, :c],
                                              conv_out.weight)
            if h is not None:
                y = y + h  # outputs of a Function: no in-place ops
        else:
            y = conv1x1(conv_out, x)
            if h is not None:
                y += h
        y = norm(y)
        return self.recurrent_convs[stage](torch.tanh(y)), x_part

    def _step(self, stage: int, index: int, x: torch.Tensor,
              h: Optional[torch.Tensor], x_part: Optional[torch.Tensor]
              ) -> Tuple[torch.Tensor, Optional[torch.Tensor],
                         Optional[torch.Tensor]]:
        """One block of ``stage`` and, unless it is the last, its update."""
        x, h = self.stages[stage][index](x, h, x_part)
        x_part = None
        if index < len(self.stage_bns[stage]):
            h, x_part = self._update(stage, index, x, h)
        return x, h, x_part

    def _use_cp(self, stage: int, index: int, x: torch.Tensor,
                h: Optional[torch.Tensor]) -> bool:
        if not (self.with_cp and torch.is_grad_enabled()):
            return False
        return _needs_grad(x, *([] if h is None else [h])) or any(
            p.requires_grad for p in self.stages[stage][index].parameters())

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the outputs of the stages in ``out_indices``."""
        if (self._has_sync_bn and self.training and not self.norm_eval
                and x.device.type == 'cpu' and dist.is_available()
                and dist.is_initialized()):
            raise ValueError(
                "norm_cfg=dict(type='SyncBN') synchronises batch statistics "
                'only for GPU tensors, and this distributed run trains on the '
                "CPU: use norm_cfg=dict(type='BN') (or norm_eval=True), or "
                'convert the model with '
                'mmengine.model.revert_sync_batchnorm(model).')
        return self.run_stages(x)[0]

    def run_stages(
        self, img: torch.Tensor
    ) -> Tuple[Tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        """``(outputs of out_indices, last x, last h)``.

        ``h`` is the hidden state entering the update after the last block,
        which the backbone does not compute (a classifier built on it, such
        as the paper's ImageNet head, does).
        """
        x = self._stem(img)
        # h starts at zero: None spares the first block its zero terms.
        h, x_part = None, None
        outs = []
        for s in range(self.num_stages):
            for i in range(len(self.stages[s])):
                if self._use_cp(s, i, x, h):
                    x, h, x_part = cp.checkpoint(
                        self._step, s, i, x, h, x_part, use_reentrant=False)
                else:
                    x, h, x_part = self._step(s, i, x, h, x_part)
            if s in self.out_indices:
                outs.append(x)
        return tuple(outs), x, h

    # --------------------------------------------------------------- training
    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            stem = ([self.stem] if self.deep_stem else [self.conv1, self.bn1])
            for m in stem:
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False
        for i in range(self.frozen_stages):
            for m in (self.stages[i], self.stage_bns[i], self.conv_outs[i],
                      self.recurrent_convs[i]):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True) -> 'RLAResNet':
        """Set train mode, keeping frozen stages and (with ``norm_eval``)
        norm layers in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


@MODELS.register_module()
class RLAECANet(RLAResNet):
    """RLA-ResNet with ECA attention in every block (RLA-ECANet).

    The same arguments as :class:`RLAResNet`; ``eca_kernel_sizes`` defaults to
    ``(5, 5, 5, 7)``, the kernel sizes of the published RLA-ECANet.
    """

    default_eca_kernel_sizes = (5, 5, 5, 7)

    def __init__(self, depth: int, **kwargs) -> None:
        if kwargs.get('eca_kernel_sizes', 'default') is None:
            raise ValueError('eca_kernel_sizes of RLAECANet must be four odd '
                             'ints such as (5, 5, 5, 7); use RLAResNet for a '
                             'network without ECA.')
        super().__init__(depth, **kwargs)
