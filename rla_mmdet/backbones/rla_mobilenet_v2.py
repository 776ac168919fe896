"""RLA-MobileNetV2: MobileNetV2 with depthwise-separable Recurrent Layer
Aggregation ("dsRLA", Zhao, Fang & Li, NeurIPS 2021), for MMDetection.

The module names are those of the authors' published ImageNet files, so
those load as they are. Per inverted-residual block ``i`` of stage ``j``::

    e = relu6(bn(conv1x1(x)))          if expand_ratio != 1 else x
    y = bn(pw1x1(relu6(bn(dw3x3(cat([e, h]), stride)))))    (then ECA)
    x = x + y                          if stride == 1 and in == out else y
    h = avgpool2x2(h)                  if stride != 1
    h = recurrent_dsconv(tanh(stage_bns[j][i](h + conv_outs[j](y))))

``conv_outs[j]`` reads the branch ``y`` (before the residual add), and the
3x3 depthwise ``recurrent_dsconv`` is one module shared by the whole network.
Output 7 is the head ``relu6(bn(conv1x1(cat([x, relu6(bn2(h))]))))``.

The recurrence (the start of ``h``, the loop, its pooling and its update)
is the engine of every RLA network,
:class:`~rla_mmdet.backbones.rla_engine.RLAEngine`, here with the depthwise
recurrent convolution; the blocks honour its contract (``(x, h) -> (x, y)``).
The attention takes RLA-ResNet's one argument (:mod:`.attention`);
initialisation and freezing are RLA-ResNet's too (:mod:`.base`).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import (build_activation_layer, build_conv_layer,
                      build_norm_layer)
from mmdet.registry import MODELS
from mmengine.model import BaseModule

from .attention import (AttentionType, build_attention, check_attention,
                        refuse_arguments, stage_attention)
from .base import DEFAULT_INIT_CFG, RLABackboneMixin, freeze
from .checks import (check_bool, check_cfg, check_indices, check_init_cfg,
                     check_int)

__all__ = ['RLAInvertedResidual', 'RLAMobileNetV2']

#: The authors store their one recurrent convolution five times
#: (``recurrent_dsconvs.0`` ... ``.4``, the same module).
NUM_STORED_COPIES = 5


def _make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least
    ``divisor``, and not below 90% of ``value``): MobileNetV2's widths."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _conv_norm_act(in_channels: int,
                   out_channels: int,
                   kernel_size: int,
                   conv_cfg: Optional[Dict],
                   norm_cfg: Dict,
                   act_cfg: Dict,
                   stride: int = 1,
                   groups: int = 1) -> nn.Sequential:
    """``Sequential(conv, norm, act)``: the ``.0`` / ``.1`` names of the
    published checkpoints."""
    return nn.Sequential(
        build_conv_layer(
            conv_cfg,
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False),
        build_norm_layer(norm_cfg, out_channels)[1],
        build_activation_layer(act_cfg))


class RLAInvertedResidual(nn.Module):
    """MobileNetV2's inverted residual block with the hidden state ``h``
    joining after the expansion: ``(x, h) -> (output, branch y before the
    residual add)``, ``y`` being what the update of ``h`` reads (the block
    contract of :mod:`~rla_mmdet.backbones.rla_engine`).

    Args:
        in_channels: Channels of ``x``.
        out_channels: Channels of the block's output.
        stride: Stride of the depthwise convolution (1 or 2).
        expand_ratio: Expansion of the hidden layer; 1 means no expansion
            convolution.
        rla_channel: Channels ``k`` of ``h``.
        attention: ``None`` or a block's attention config, such as
            ``dict(type='eca', kernel_size=3)``
            (:func:`~rla_mmdet.backbones.attention.build_attention`); the
            module follows the pointwise norm (``conv.3``).
        conv_cfg, norm_cfg, act_cfg: Configs of the layers.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 expand_ratio: int, rla_channel: int,
                 attention: Optional[Dict], conv_cfg: Optional[Dict],
                 norm_cfg: Dict, act_cfg: Dict) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        mixed = hidden + rla_channel
        self.stride = stride
        self.pool_hidden = stride != 1
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.conv1x1 = (
            _conv_norm_act(in_channels, hidden, 1, conv_cfg, norm_cfg,
                           act_cfg) if expand_ratio != 1 else None)
        layers = [
            _conv_norm_act(mixed, mixed, 3, conv_cfg, norm_cfg, act_cfg,
                           stride=stride, groups=mixed),
            build_conv_layer(conv_cfg, mixed, out_channels, 1, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1],
        ]
        module = build_attention(attention, out_channels)
        if module is not None:
            layers.append(module)
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor,
                h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(output, branch y before the residual add)``."""
        e = x if self.conv1x1 is None else self.conv1x1(x)
        y = self.conv(torch.cat([e, h], dim=1))
        out = x + y if self.use_res_connect else y
        return out, y


@MODELS.register_module()
class RLAMobileNetV2(RLABackboneMixin, BaseModule):
    """MobileNetV2 with depthwise-separable RLA (the authors' dsRLA).

    The arguments and defaults are those of MMDetection's ``MobileNetV2``,
    plus ``rla_channel`` and ``attention``. Outputs 0..6 are the seven
    stages, output 7 the head: ``conv2(cat([x, relu6(bn2(h))]))`` with 1280
    channels (``int(1280 * widen_factor)`` when ``widen_factor > 1``), where
    the hidden state reaches the detector. Stages after the last requested
    output, the last hidden-state update when output 7 is not requested,
    ``bn2`` and ``conv2`` are not built: every parameter gets a gradient.

    Published ImageNet weights (``dsrla_mobilenetv2_k32_2762.pth.tar``,
    ``dsrla_mobilenetv2_k32_eca_2707.pth.tar``) load as they are through
    ``init_cfg=dict(type='Pretrained', checkpoint=...)``; the five stored
    copies of the shared recurrent convolution must be identical.

    A variant overrides :meth:`make_stem`, :meth:`make_stage` (a stage's
    blocks) or :meth:`make_rla_stage` (a stage's recurrent modules), as
    for :class:`~rla_mmdet.backbones.RLAResNet`.

    Args:
        widen_factor: Width multiplier of every layer. Default 1.0 (the
            published weights).
        out_indices: Increasing outputs to return, in 0..7. Default
            ``(1, 2, 4, 7)``.
        frozen_stages: -1 freezes nothing, 0 ``conv1``, ``i`` ``conv1`` and
            stages ``0..i-1`` with their ``stage_bns`` and ``conv_outs``; the
            shared ``recurrent_dsconv`` freezes with the last stage that
            uses it. ``bn2`` / ``conv2`` are never frozen (as in mmdet).
        conv_cfg: Config of the convolutions.
        norm_cfg: Config of every norm layer, the RLA ones included.
        act_cfg: Config of the activations. Default ReLU6.
        norm_eval: Keep the norm layers in eval mode while training.
        with_cp: Gradient checkpointing of each block with its update.
        rla_channel: Channels ``k`` of the hidden state. Default 32.
        attention: The attention of every block, as for ``RLAResNet``:
            ``None`` (none), ``'se'``, ``'eca'``, ``dict(type='se',
            reduction=16)`` or ``dict(type='eca', kernel_size=...)`` with
            one odd kernel size per stage (seven). ``'eca'`` is the
            published RLA-ECA-MobileNetV2: kernel 1 for the stages of fewer
            than 96 channels, else 3 (:attr:`default_eca_kernel_size`).
        init_cfg: ``None`` (Kaiming convs, unit norms:
            :data:`~rla_mmdet.backbones.base.DEFAULT_INIT_CFG`) or an
            MMEngine init config; a ``Pretrained`` one, with an optional
            ``prefix`` such as ``'backbone.'``, loads strictly.
        **kwargs: Refused, each with one sentence; the earlier ``eca``
            with the ``attention=`` that replaces it.

    Example:
        >>> import torch
        >>> from rla_mmdet import RLAMobileNetV2
        >>> model = RLAMobileNetV2(out_indices=(2, 4, 7)).eval()
        >>> outs = model(torch.rand(1, 3, 64, 64))
        >>> [tuple(o.shape) for o in outs]
        [(1, 32, 8, 8), (1, 96, 4, 4), (1, 1280, 2, 2)]
        >>> model.out_channels
        (32, 96, 1280)
    """

    # expand_ratio t, channels c, blocks n, stride s of the seven stages.
    arch_settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2),
                     (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                     (6, 320, 1, 1))
    #: ``out_indices`` value of the head output.
    head_index = 7
    #: ECA kernel size of each stage for ``attention='eca'``: those of the
    #: published RLA-ECA-MobileNetV2 (1 below 96 channels, else 3).
    default_eca_kernel_size: Tuple[int, ...] = (1, 1, 1, 1, 3, 3, 3)

    def __init__(self,
                 widen_factor: float = 1.,
                 out_indices: Sequence[int] = (1, 2, 4, 7),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[Dict] = None,
                 norm_cfg: Dict = dict(type='BN'),
                 act_cfg: Dict = dict(type='ReLU6'),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 rla_channel: int = 32,
                 attention: AttentionType = None,
                 init_cfg: Any = None,
                 **kwargs: Any) -> None:
        refuse_arguments(type(self).__name__, kwargs)
        init_cfg = check_init_cfg(init_cfg)
        super().__init__(
            init_cfg=DEFAULT_INIT_CFG if init_cfg is None else init_cfg)
        if isinstance(widen_factor, bool) or not isinstance(
                widen_factor, (int, float)):
            raise TypeError(f'widen_factor must be a number > 0, got '
                            f'{widen_factor!r}.')
        if not widen_factor > 0:
            raise ValueError(f'widen_factor must be > 0, got {widen_factor}.')
        if conv_cfg is not None and not isinstance(conv_cfg, dict):
            raise TypeError(f'conv_cfg must be a dict or None, got '
                            f'{conv_cfg!r}.')
        self.widen_factor = float(widen_factor)
        self.out_indices = check_indices(
            'out_indices', out_indices, self.head_index,
            f' (0-6: stages, {self.head_index}: the head)')
        self.frozen_stages = check_int('frozen_stages', frozen_stages, -1,
                                       len(self.arch_settings))
        self.conv_cfg = conv_cfg
        self.norm_cfg = check_cfg('norm_cfg', norm_cfg)
        self.act_cfg = check_cfg('act_cfg', act_cfg)
        self.norm_eval = check_bool('norm_eval', norm_eval)
        self.with_cp = check_bool('with_cp', with_cp)
        self.rla_channel = check_int('rla_channel', rla_channel, 1)
        self.attention = check_attention(attention,
                                         self.default_eca_kernel_size)

        self.with_head = self.head_index in self.out_indices
        self.make_stages(self.make_stem())
        self._freeze_stages()

    # ------------------------------------------------------------------ build
    def make_stem(self) -> int:
        """The stem ``conv1`` (3x3, stride 2, norm, activation); returns
        its channels."""
        channels = _make_divisible(32 * self.widen_factor, 8)
        self.conv1 = _conv_norm_act(3, channels, 3, self.conv_cfg,
                                    self.norm_cfg, self.act_cfg, stride=2)
        return channels

    def make_stages(self, in_channels: int) -> None:
        """The stages up to the last requested output (:meth:`make_stage`,
        :meth:`make_rla_stage`), the shared recurrent convolution and,
        with output 7, the head; and the channels of the outputs."""
        k = self.rla_channel
        # Stages after the last requested one are not built.
        num_built = min(self.out_indices[-1], len(self.arch_settings) - 1) + 1
        stages, stage_bns, conv_outs, channels, strides = [], [], [], [], []
        stride = 2
        for j, (t, c, n, s) in enumerate(self.arch_settings[:num_built]):
            out_channels = _make_divisible(c * self.widen_factor, 8)
            stages.append(
                self.make_stage(in_channels, out_channels, t, n, s,
                                stage_attention(self.attention, j)))
            # The update after the last built block feeds only the head.
            norms, conv_out, _ = self.make_rla_stage(
                out_channels, n - (j == num_built - 1 and not self.with_head))
            stage_bns.append(norms)
            if conv_out is not None:
                conv_outs.append(conv_out)
            channels.append(out_channels)
            stride *= s
            strides.append(stride)
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.stage_bns = nn.ModuleList(stage_bns)
        self.conv_outs = nn.ModuleList(conv_outs)
        if len(conv_outs):
            # ONE module; the list repeats it so that the state dict has
            # the published layout (recurrent_dsconvs.0 ... .4).
            shared = build_conv_layer(
                self.conv_cfg, k, k, 3, padding=1, groups=k, bias=False)
            self.recurrent_dsconvs = nn.ModuleList([shared] *
                                                   NUM_STORED_COPIES)
        if self.with_head:
            head = (int(1280 * self.widen_factor)
                    if self.widen_factor > 1.0 else 1280)
            self.bn2 = build_norm_layer(self.norm_cfg, k)[1]
            self.act2 = build_activation_layer(self.act_cfg)
            self.conv2 = _conv_norm_act(in_channels + k, head, 1,
                                        self.conv_cfg, self.norm_cfg,
                                        self.act_cfg)
            channels.append(head)
            strides.append(stride)
        #: Channels of every built output 0..6 (and 7 with the head).
        self.stage_channels = tuple(channels)
        #: Channels of each returned output, in order.
        self.out_channels = tuple(
            channels[-1] if i == self.head_index else channels[i]
            for i in self.out_indices)
        #: Stride of each returned output with respect to the input.
        self.out_strides = tuple(
            strides[-1] if i == self.head_index else strides[i]
            for i in self.out_indices)

    def make_stage(self, in_channels: int, out_channels: int,
                   expand_ratio: int, num_blocks: int, stride: int,
                   attention: Optional[Dict]) -> nn.ModuleList:
        """The inverted-residual blocks of one stage (``stages[j]``); the
        first takes ``in_channels`` and ``stride``, ``attention`` is the
        blocks' config (:func:`~rla_mmdet.backbones.attention.
        stage_attention`)."""
        return nn.ModuleList(
            RLAInvertedResidual(
                in_channels if i == 0 else out_channels, out_channels,
                stride if i == 0 else 1, expand_ratio, self.rla_channel,
                attention, self.conv_cfg, self.norm_cfg, self.act_cfg)
            for i in range(num_blocks))

    def make_rla_stage(
        self, channels: int, num_updates: int
    ) -> Tuple[nn.ModuleList, Optional[nn.Module], Optional[nn.Module]]:
        """The recurrent modules of one stage, as
        :meth:`RLAResNet.make_rla_stage <rla_mmdet.backbones.RLAResNet.
        make_rla_stage>`: its ``num_updates`` norms (``stage_bns[j]``),
        ``conv_outs[j]`` (1x1, ``channels`` to ``rla_channel``, no bias;
        ``None`` without updates) and ``None`` for the recurrent
        convolution, which is one for the whole network
        (:attr:`recurrent_dsconv`, built after the stages)."""
        norms = nn.ModuleList(
            build_norm_layer(self.norm_cfg, self.rla_channel)[1]
            for _ in range(num_updates))
        conv_out = (build_conv_layer(self.conv_cfg, channels,
                                     self.rla_channel, 1, bias=False)
                    if num_updates else None)
        return norms, conv_out, None

    @property
    def recurrent_dsconv(self) -> nn.Module:
        """The recurrent 3x3 depthwise convolution shared by all blocks."""
        return self.recurrent_dsconvs[0]

    def recurrent_conv(self, stage: int) -> nn.Module:
        """The recurrent convolution of every stage, the shared
        :attr:`recurrent_dsconv`."""
        return self.recurrent_dsconv

    def describe(self) -> str:
        """A short description used in error messages."""
        return (f'widen_factor={self.widen_factor}, rla_channel='
                f'{self.rla_channel}, attention={self.attention!r}, '
                f'out_indices={self.out_indices}')

    # ---------------------------------------------------------------- forward
    def forward_stem(self, img: torch.Tensor) -> torch.Tensor:
        """The stem, before the first block (and ``h``)."""
        return self.conv1(img)

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the outputs in ``out_indices``."""
        self.check_sync_bn(img)
        outs, x, h = self.run_stages(img)
        if self.with_head:
            h = self.act2(self.bn2(h))
            outs.append(self.conv2(torch.cat([x, h], dim=1)))
        return tuple(outs)

    # --------------------------------------------------------------- training
    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.conv1)
        for j in range(min(self.frozen_stages, len(self.stages))):
            frozen += [self.stages[j], self.stage_bns[j]]
            if j < len(self.conv_outs):
                frozen.append(self.conv_outs[j])
        # Shared by every stage with an update: frozen with the last one.
        if len(self.conv_outs) and self.frozen_stages >= len(self.conv_outs):
            frozen.append(self.recurrent_dsconv)
        freeze(frozen)
