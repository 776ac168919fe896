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

The update of ``h`` is the RLA-ResNet's operator,
:func:`rla_mmdet.layers.rla_update`, with the depthwise recurrent
convolution; the argument checks live in :mod:`._checks`.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import (build_activation_layer, build_conv_layer,
                      build_norm_layer)
from mmdet.registry import MODELS
from mmengine.model import BaseModule

from ..checkpoint import CheckpointAdapterMixin, load_pretrained_init_cfg
from ..layers import rla_update
from .attention import ECA
from ._freezing import FrozenStagesMixin, freeze
from ._checks import check_init_cfg, check_mobilenet_v2_args

__all__ = ['RLAMobileNetV2']

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


class _RLAInvertedResidual(nn.Module):
    """MobileNetV2's inverted residual block with the hidden state ``h``
    joining after the expansion.

    Args:
        in_channels: Channels of ``x``.
        out_channels: Channels of the block's output.
        stride: Stride of the depthwise convolution (1 or 2).
        expand_ratio: Expansion of the hidden layer; 1 means no expansion
            convolution.
        rla_channel: Channels ``k`` of ``h``.
        eca_kernel_size: Kernel of the ECA module, or ``None`` for none.
        conv_cfg, norm_cfg, act_cfg: Configs of the layers.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 expand_ratio: int, rla_channel: int,
                 eca_kernel_size: Optional[int], conv_cfg: Optional[Dict],
                 norm_cfg: Dict, act_cfg: Dict) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        mixed = hidden + rla_channel
        self.stride = stride
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
        if eca_kernel_size is not None:
            layers.append(ECA(out_channels, eca_kernel_size))
        self.conv = nn.Sequential(*layers)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(output, branch y before the residual add, h at the output's
        resolution)``."""
        e = x if self.conv1x1 is None else self.conv1x1(x)
        y = self.conv(torch.cat([e, h], dim=1))
        out = x + y if self.use_res_connect else y
        if self.stride != 1:
            # ceil_mode: h keeps the strided conv's size for odd inputs too
            # (the plain 2x2 average for even ones).
            h = F.avg_pool2d(h, 2, 2, ceil_mode=True)
        return out, y, h


@MODELS.register_module()
class RLAMobileNetV2(CheckpointAdapterMixin, FrozenStagesMixin, BaseModule):
    """MobileNetV2 with depthwise-separable RLA (the authors' dsRLA).

    The arguments and defaults are those of MMDetection's ``MobileNetV2``,
    plus ``rla_channel`` and ``eca``. Outputs 0..6 are the seven stages,
    output 7 the head: ``conv2(cat([x, relu6(bn2(h))]))`` with 1280 channels
    (``int(1280 * widen_factor)`` when ``widen_factor > 1``), where the
    hidden state reaches the detector. Stages after the last requested
    output, the last hidden-state update when output 7 is not requested,
    ``bn2`` and ``conv2`` are not built: every parameter gets a gradient.

    Published ImageNet weights (``dsrla_mobilenetv2_k32_2762.pth.tar``,
    ``dsrla_mobilenetv2_k32_eca_2707.pth.tar``) load as they are through
    ``init_cfg=dict(type='Pretrained', checkpoint=...)``; the five stored
    copies of the shared recurrent convolution must be identical.

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
        eca: Add ECA to every block (kernel 1 for fewer than 96 output
            channels, else 3): the published RLA-ECA-MobileNetV2.
        init_cfg: ``None`` (Kaiming convs, unit norms) or a ``Pretrained``
            config, with an optional ``prefix`` such as ``'backbone.'``.

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
                 eca: bool = False,
                 init_cfg: Any = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1,
                     layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(init_cfg=check_init_cfg(init_cfg))
        args = check_mobilenet_v2_args(
            self, widen_factor=widen_factor, out_indices=out_indices,
            frozen_stages=frozen_stages, conv_cfg=conv_cfg,
            norm_cfg=norm_cfg, act_cfg=act_cfg, norm_eval=norm_eval,
            with_cp=with_cp, rla_channel=rla_channel, eca=eca)
        # Every argument, checked, under its own name.
        for name, value in args.items():
            setattr(self, name, value)
        k = self.rla_channel
        layer_cfgs = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                          act_cfg=self.act_cfg)

        in_ch = _make_divisible(32 * self.widen_factor, 8)
        self.conv1 = _conv_norm_act(3, in_ch, 3, stride=2, **layer_cfgs)
        self.with_head = self.head_index in self.out_indices
        # Stages after the last requested one are not built.
        num_built = min(self.out_indices[-1], len(self.arch_settings) - 1) + 1
        stages, stage_bns, conv_outs, channels = [], [], [], []
        for j, (t, c, n, s) in enumerate(self.arch_settings[:num_built]):
            out_ch = _make_divisible(c * self.widen_factor, 8)
            stages.append(
                nn.ModuleList(
                    _RLAInvertedResidual(
                        in_ch if i == 0 else out_ch,
                        out_ch,
                        s if i == 0 else 1,
                        t,
                        k,
                        (1 if c < 96 else 3) if self.eca else None,
                        **layer_cfgs) for i in range(n)))
            # The update after the last built block feeds only the head.
            num_updates = n - (j == num_built - 1 and not self.with_head)
            stage_bns.append(
                nn.ModuleList(
                    build_norm_layer(norm_cfg, k)[1]
                    for _ in range(num_updates)))
            if num_updates:
                conv_outs.append(
                    build_conv_layer(conv_cfg, out_ch, k, 1, bias=False))
            channels.append(out_ch)
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.stage_bns = nn.ModuleList(stage_bns)
        self.conv_outs = nn.ModuleList(conv_outs)
        if len(conv_outs):
            # ONE module; the list repeats it so that the state dict has
            # the published layout (recurrent_dsconvs.0 ... .4).
            shared = build_conv_layer(
                conv_cfg, k, k, 3, padding=1, groups=k, bias=False)
            self.recurrent_dsconvs = nn.ModuleList([shared] *
                                                   NUM_STORED_COPIES)
        if self.with_head:
            head_ch = (int(1280 * self.widen_factor)
                       if self.widen_factor > 1.0 else 1280)
            self.bn2 = build_norm_layer(norm_cfg, k)[1]
            self.act2 = build_activation_layer(act_cfg)
            self.conv2 = _conv_norm_act(in_ch + k, head_ch, 1, **layer_cfgs)
            channels.append(head_ch)
        #: Channels of every built output 0..6 (and 7 with the head).
        self.stage_channels = tuple(channels)
        #: Channels of each returned output, in order.
        self.out_channels = tuple(
            channels[-1] if i == self.head_index else channels[i]
            for i in self.out_indices)
        self._freeze_stages()

    # ------------------------------------------------------------------ build
    @property
    def recurrent_dsconv(self) -> nn.Module:
        """The recurrent 3x3 depthwise convolution shared by all blocks."""
        return self.recurrent_dsconvs[0]

    # ---------------------------------------------------------------- weights
    plain_network = 'MobileNetV2'
    plain_key_prefixes = ('layer1.', 'features.')
    rla_modules = ('stage_bns', 'conv_outs', 'recurrent_dsconvs')

    def describe(self) -> str:
        """A short description used in error messages."""
        return (f'widen_factor={self.widen_factor}, rla_channel='
                f'{self.rla_channel}, eca={self.eca}, out_indices='
                f'{self.out_indices}')

    def unbuilt_prefixes(self) -> Tuple[str, ...]:
        """Key prefixes of checkpoints that this backbone has no module for.

        The ImageNet classifier (``classifier``), the stages after the last
        requested output with their RLA modules, and the parts only the head
        reads (the last update, ``bn2``, ``conv2``) when output 7 is not
        requested. Loading drops them quietly.
        """
        prefixes = ['classifier.']
        built = len(self.stages)
        for j in range(built, len(self.arch_settings)):
            prefixes += [f'stages.{j}.', f'stage_bns.{j}.', f'conv_outs.{j}.']
        if not self.with_head:
            prefixes += ['bn2.', 'conv2.']
            last = built - 1
            prefixes.append(f'stage_bns.{last}.{len(self.stages[last]) - 1}.')
            if len(self.conv_outs) < built:
                prefixes.append(f'conv_outs.{last}.')
            if not len(self.conv_outs):
                prefixes.append('recurrent_dsconvs.')
        return tuple(prefixes)

    @staticmethod
    def check_state_dict(state_dict: Dict[str, torch.Tensor],
                         source: str = 'the state dict',
                         prefix: str = '') -> None:
        """Refuse a state dict whose copies of the shared recurrent
        convolution differ.

        The published files store the one module five times
        (``recurrent_dsconvs.0`` ... ``.4``); they must be equal, or the
        file was not written by that network.

        Raises:
            ValueError: naming ``source`` and the first differing copy.
        """
        keys = [
            f'{prefix}recurrent_dsconvs.{i}.weight'
            for i in range(NUM_STORED_COPIES)
        ]
        present = [k for k in keys if k in state_dict]
        if not present:
            return
        first = state_dict[present[0]]
        for key in present[1:]:
            other = state_dict[key]
            if other.shape != first.shape or not torch.equal(other, first):
                raise ValueError(
                    f'{source} holds different tensors under {present[0]} '
                    f'and {key}: RLA-MobileNetV2 has one recurrent '
                    'convolution, stored as identical copies '
                    'recurrent_dsconvs.0-4, so this file is corrupt or not an '
                    'RLA-MobileNetV2 checkpoint.')

    def variant_hint(self, missing: List[str], unexpected: List[str]) -> str:
        """Whether a mismatching file is of the other ECA setting."""
        return self.marker_hint(
            missing, unexpected, '.conv.3.',
            has=(' The file has ECA weights (conv.3): it is an '
                 'RLA-ECA-MobileNetV2 checkpoint; set eca=True.'),
            lacks=(' The file has no ECA weights (conv.3): it is an '
                   'RLA-MobileNetV2 checkpoint without ECA; set eca=False.'))

    def init_weights(self) -> None:
        """Kaiming / constant init, or strict loading of a ``Pretrained``
        checkpoint by :func:`rla_mmdet.checkpoint.load_backbone_weights`."""
        if not load_pretrained_init_cfg(self):
            super().init_weights()

    # ---------------------------------------------------------------- forward
    def rla_update(self, j: int, i: int, y: torch.Tensor,
                   h: torch.Tensor) -> torch.Tensor:
        """The recurrent update after block ``i`` of stage ``j``::

            h = recurrent_dsconv(tanh(stage_bns[j][i](h + conv_outs[j](y))))

        ``y`` is the block's branch output (before the residual add).
        """
        return rla_update(self.conv_outs[j], self.stage_bns[j][i],
                          self.recurrent_dsconv, y, h)

    def _step(self, j: int, i: int, x: torch.Tensor,
              h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Block ``i`` of stage ``j`` and its update (when built)."""
        x, y, h = self.stages[j][i](x, h)
        if i < len(self.stage_bns[j]):
            h = self.rla_update(j, i, y, h)
        return x, h

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the outputs in ``out_indices``."""
        x = self.conv1(img)
        b, _, height, width = x.shape
        h = torch.zeros(
            b, self.rla_channel, height, width, dtype=x.dtype,
            device=x.device)
        outs = []
        for j, stage in enumerate(self.stages):
            for i in range(len(stage)):
                if self.with_cp and self.training:
                    x, h = cp.checkpoint(
                        self._step, j, i, x, h, use_reentrant=False)
                else:
                    x, h = self._step(j, i, x, h)
            if j in self.out_indices:
                outs.append(x)
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


def __getattr__(name: str) -> Any:
    # RLAMobileNetV2Classifier lives in rla_mmdet.analysis.classifier beside
    # RLAClassifier; it is importable from here too, on first use (that
    # module imports this one).
    if name == 'RLAMobileNetV2Classifier':
        from ..analysis.classifier import RLAMobileNetV2Classifier
        return RLAMobileNetV2Classifier
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
