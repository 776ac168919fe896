"""RLA-ResNet and RLA-ECANet: ResNets with Recurrent Layer Aggregation.

A small hidden state ``h`` (``rla_channel`` channels) runs along the depth of
the network beside the feature map ``x``. Every block reads ``h`` (it is
concatenated to the block's input) and writes back into it through a
recurrent update whose weights are shared by all blocks of a stage::

    x = block(x, h)                        # residual block on cat([x, h])
    h = recurrent_convs[s](tanh(stage_bns[s][b](h + conv_outs[s](x))))

``h`` starts at zero; ``conv_outs[s]`` reads the block's final output
(after the residual add and the ReLU), as the published weights were trained.

This file is the architecture only: the blocks and the builders of the
network. The recurrence (the start of ``h``, the loop, its pooling and its
update) is :class:`~rla_mmdet.backbones.rla_engine.RLAEngine`'s, shared by
every RLA network. ``conv1`` on ``cat([x, h])`` is
:func:`rla_mmdet.layers.concat_conv`, whose faster forms per device live in
:mod:`rla_mmdet.layers` (``select_impl('literal')`` forces the literal
ones). The attention modules (SE, ECA) and their one argument live in
:mod:`.attention`, the argument checks in :mod:`.checks`, initialisation
and freezing in :mod:`.base`.

As in mmdet's ``resnet.py``, the blocks (:class:`RLABasicBlock`,
:class:`RLABottleneck`) and the builders (:meth:`RLAResNet.make_stem`,
:meth:`RLAResNet.make_stage` for a stage's blocks,
:meth:`RLAResNet.make_rla_stage` for the recurrent modules they share) are
public, so that a variant subclasses them; ``plugins`` (mmcv's
``ContextBlock``, ``GeneralizedAttention``, ``NonLocal2d``...) go where
mmdet's ``Bottleneck`` puts them.

The module names (``stages``, ``stage_bns``, ``conv_outs``,
``recurrent_convs``, ``conv1``/``bn1``...) are the ones of the published
checkpoints, so those load without renaming.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer, build_plugin_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init
from mmdet.registry import MODELS

from ..layers import concat_conv
from .attention import (AttentionType, build_attention, check_attention,
                        refuse_arguments, stage_attention)
from .base import DEFAULT_INIT_CFG, RLABackboneMixin, freeze
from .checks import (check_bool, check_cfg, check_choice, check_dcn,
                     check_init_cfg, check_int, check_int_tuple,
                     check_out_stages, check_plugins, is_int)
from .rla_engine import build_rla_modules

__all__ = [
    'RLABlock', 'RLABasicBlock', 'RLABottleneck', 'RLAResNet', 'RLAECANet'
]

ConfigType = Dict
OptConfigType = Optional[Dict]


class RLABlock(nn.Module):
    """Common part of the RLA residual blocks.

    A block takes the feature map ``x`` and the hidden state ``h`` and
    returns ``relu(residual(cat([x, h])) + identity)``, twice: as its
    output and as what the update of ``h`` reads (the block contract of
    :mod:`~rla_mmdet.backbones.rla_engine`). The update of ``h`` belongs
    to the stage (its weights are shared) and runs in the engine.

    A subclass builds its layers, calls :meth:`_init_tail` and defines
    :meth:`residual` and :attr:`last_norm`.
    """

    expansion = 1

    def _init_tail(self, out_channels: int, stride: int,
                   downsample: Optional[nn.Module],
                   attention: OptConfigType) -> None:
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        # The block halves the resolution, and h follows it (not when a
        # stride is replaced by dilation).
        self.pool_hidden = downsample is not None and stride != 1
        # One attention module or none, under the name the published
        # checkpoints give its type (``se``, ``eca``); the others are None.
        self.se = self.eca = None
        module = build_attention(attention, out_channels)
        self.attention_name = None if module is None else module.name
        if module is not None:
            setattr(self, module.name, module)

    @property
    def last_norm(self) -> nn.Module:
        """The norm before the residual add (zeroed by
        ``zero_init_residual``)."""
        raise NotImplementedError

    def residual(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The residual branch on ``cat([x, h])``, up to before the add."""
        raise NotImplementedError

    def attend(self, out: torch.Tensor) -> torch.Tensor:
        """The block's attention (SE, ECA) on ``out``, if it has one."""
        if self.attention_name is None:
            return out
        return getattr(self, self.attention_name)(out)

    def forward(self, x: torch.Tensor,
                h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(x, h) -> (x, x)``: the block's output, which is also what
        the update of ``h`` reads."""
        identity = x
        out = self.residual(x, h)
        if self.downsample is not None:
            identity = self.downsample(x)
        # In place, as in mmdet's ResNet: the branch output is not needed by
        # autograd (the norm / attention before it saved their inputs).
        out += identity
        out = self.relu(out)
        return out, out


class RLABasicBlock(RLABlock):
    """RLA BasicBlock (two 3x3 convolutions), for depths 18 and 34.

    Args:
        inplanes: Channels of ``x``.
        planes: Channels of the block's output.
        rla_channel: Channels ``k`` of ``h``.
        stride: Stride of the first convolution.
        dilation: Dilation of the first convolution.
        downsample: The shortcut's projection, or ``None`` for identity.
        style: Unused (one stride position); kept for the Bottleneck's
            signature.
        groups, width_per_group: Must be 1 and 64.
        conv_cfg, norm_cfg: Configs of the layers.
        dcn: Must be ``None``.
        attention: ``None``, ``dict(type='se', reduction=...)`` or
            ``dict(type='eca', kernel_size=...)``
            (:func:`~rla_mmdet.backbones.attention.build_attention`).
        plugins: Must be ``None``: as in mmdet, plugins apply to the
            Bottleneck.
    """

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
                 attention: OptConfigType = None,
                 plugins: Optional[List[Dict]] = None) -> None:
        super().__init__()
        if plugins:
            raise ValueError('plugins apply to Bottleneck depths (50, 101, '
                             '152) only, as in mmdet; set plugins=None for '
                             'depth 18 or 34.')
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
        self._init_tail(planes, stride, downsample, attention)

    @property
    def last_norm(self) -> nn.Module:
        return self.bn2

    def residual(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(concat_conv(self.conv1, x, h)))
        out = self.bn2(self.conv2(out))
        return self.attend(out)


class RLABottleneck(RLABlock):
    """RLA Bottleneck (1x1, 3x3, 1x1), for depths 50, 101 and 152.

    ``style='pytorch'`` puts the stride on the 3x3 convolution, ``'caffe'``
    on the first 1x1 convolution. ResNeXt widths follow torchvision:
    ``width = int(planes * width_per_group / 64) * groups``. The arguments
    are those of :class:`RLABasicBlock`; ``planes * 4`` output channels.
    ``plugins`` are mmdet's: a list of ``dict(cfg=..., position=...)``
    whose modules (mmcv's ``build_plugin_layer``) run after ``conv1``,
    ``conv2`` (their ReLU) or ``conv3`` (its norm, before the attention),
    by ``position`` ``'after_conv1'``, ``'after_conv2'`` or
    ``'after_conv3'``, each under the name mmcv gives it.
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
                 attention: OptConfigType = None,
                 plugins: Optional[List[Dict]] = None) -> None:
        super().__init__()
        width = int(planes * (width_per_group / 64.)) * groups
        out_channels = planes * self.expansion
        stride1, stride2 = (1, stride) if style == 'pytorch' else (stride, 1)
        self.conv1 = build_conv_layer(
            conv_cfg, inplanes + rla_channel, width, 1, stride=stride1,
            bias=False)
        self.bn1 = build_norm_layer(norm_cfg, width)[1]
        conv2_cfg = conv_cfg
        if dcn is not None:
            # mmdet's dcn key: a strided 3x3 conv stays a plain conv.
            dcn = dict(dcn)
            if not (dcn.pop('fallback_on_stride', False) and stride2 != 1):
                conv2_cfg = dcn
        self.conv2 = build_conv_layer(
            conv2_cfg, width, width, 3, stride=stride2, padding=dilation,
            dilation=dilation, groups=groups, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, width)[1]
        self.conv3 = build_conv_layer(
            conv_cfg, width, out_channels, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, out_channels)[1]
        self.plugin_names = {
            position: self.make_block_plugins(
                out_channels if position == 'after_conv3' else width,
                [p for p in plugins or () if p['position'] == position])
            for position in ('after_conv1', 'after_conv2', 'after_conv3')
        }
        self._init_tail(out_channels, stride, downsample, attention)

    def make_block_plugins(self, in_channels: int,
                           plugins: List[Dict]) -> List[str]:
        """Build ``plugins`` on ``in_channels`` as mmdet's ``Bottleneck``
        does, and return their module names."""
        names = []
        for plugin in plugins:
            cfg = dict(plugin['cfg'])
            name, layer = build_plugin_layer(
                cfg, in_channels=in_channels, postfix=cfg.pop('postfix', ''))
            if hasattr(self, name):
                raise ValueError(f'two plugins of a block are named {name}; '
                                 'give them different postfix values.')
            self.add_module(name, layer)
            names.append(name)
        return names

    def forward_plugins(self, out: torch.Tensor,
                        position: str) -> torch.Tensor:
        """The plugins at ``position`` on ``out``, in order."""
        for name in self.plugin_names[position]:
            out = getattr(self, name)(out)
        return out

    @property
    def last_norm(self) -> nn.Module:
        return self.bn3

    def residual(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(concat_conv(self.conv1, x, h)))
        out = self.forward_plugins(out, 'after_conv1')
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.forward_plugins(out, 'after_conv2')
        out = self.forward_plugins(self.bn3(self.conv3(out)), 'after_conv3')
        return self.attend(out)


@MODELS.register_module()
class RLAResNet(RLABackboneMixin, BaseModule):
    """ResNet with Recurrent Layer Aggregation (RLA-Net, NeurIPS 2021).

    The arguments are those of MMDetection's ``ResNet`` with its detection
    defaults, plus the RLA ones. The four stage outputs feed an FPN with
    ``in_channels=[256, 512, 1024, 2048]`` (depth >= 50) or
    ``[64, 128, 256, 512]`` (depth 18/34).

    Published ImageNet weights exist for depth 50 and 101 (RLA-ResNet and
    RLA-ECANet); depths 18 and 34 (RLA BasicBlock) and 152 have none.

    A variant subclasses it as mmdet's ResNet variants do: its own
    ``arch_settings`` (block class, blocks per stage) or ``stage_widths``,
    its own block (an :class:`RLABlock`), or an override of
    :meth:`make_stem`, :meth:`make_stage` (a stage's blocks) or
    :meth:`make_rla_stage` (a stage's recurrent modules).

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
        plugins: mmdet's plugins of the Bottleneck (depth >= 50): a list of
            ``dict(cfg=dict(type=...), position=..., stages=...)``, with
            ``position`` one of ``'after_conv1'``, ``'after_conv2'``,
            ``'after_conv3'`` and optional ``stages`` (one bool per stage).
        with_cp: Use gradient checkpointing on each block and its RLA update.
        zero_init_residual: Zero-initialise the last norm of each block when
            no ``init_cfg`` is given.
        attention: The attention of every block
            (:func:`~rla_mmdet.backbones.attention.check_attention`):
            ``None`` (none), ``'se'``, ``'eca'``,
            ``dict(type='se', reduction=16)`` or
            ``dict(type='eca', kernel_size=(5, 5, 5, 7))`` (one odd kernel
            size per stage; ``'eca'`` takes the published ones,
            :attr:`default_eca_kernel_size`).
        groups: ResNeXt cardinality. Default 1.
        width_per_group: ResNeXt width per group. Default 64.
        pretrained: Deprecated; use
            ``init_cfg=dict(type='Pretrained', checkpoint=...)``.
        init_cfg: ``None`` (Kaiming convs, unit norms:
            :data:`~rla_mmdet.backbones._base.DEFAULT_INIT_CFG`) or an
            MMEngine init config; a ``Pretrained`` one, with an optional
            ``prefix`` such as ``'backbone.'`` to take the backbone of a
            whole-detector checkpoint, loads strictly.
        **kwargs: Refused, each with one sentence; the earlier attention
            arguments (``se``, ``se_reduction``, ``eca_kernel_sizes``) with
            the ``attention=`` that replaces them.

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
        18: (RLABasicBlock, (2, 2, 2, 2)),
        34: (RLABasicBlock, (3, 4, 6, 3)),
        50: (RLABottleneck, (3, 4, 6, 3)),
        101: (RLABottleneck, (3, 4, 23, 3)),
        152: (RLABottleneck, (3, 8, 36, 3)),
    }
    #: Planes of each stage, in units of ``base_channels``.
    stage_widths: Tuple[int, ...] = (1, 2, 4, 8)
    #: ECA kernel size of each of the four stages for ``attention='eca'``:
    #: those of the published RLA-ECANet.
    default_eca_kernel_size: Tuple[int, ...] = (5, 5, 5, 7)

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
                 attention: AttentionType = None,
                 groups: int = 1,
                 width_per_group: int = 64,
                 pretrained: Optional[str] = None,
                 init_cfg: Union[Dict, List[Dict], None] = None,
                 **kwargs: Any) -> None:
        refuse_arguments(type(self).__name__, kwargs)
        init_cfg = check_init_cfg(init_cfg, pretrained)
        super().__init__(
            init_cfg=DEFAULT_INIT_CFG if init_cfg is None else init_cfg)
        if not is_int(depth) or depth not in self.arch_settings:
            raise ValueError(f'depth must be one of '
                             f'{tuple(self.arch_settings)}, got {depth!r}.')
        self.depth = int(depth)
        self.rla_channel = check_int('rla_channel', rla_channel, 1)
        self.in_channels = check_int('in_channels', in_channels, 1)
        self.base_channels = check_int('base_channels', base_channels, 1)
        self.stem_channels = check_int(
            'stem_channels',
            base_channels if stem_channels is None else stem_channels, 1)
        self.num_stages = check_int('num_stages', num_stages, 1, 4)
        self.strides = check_int_tuple('strides', strides, num_stages)
        self.dilations = check_int_tuple('dilations', dilations, num_stages)
        self.out_indices = check_out_stages(out_indices, num_stages)
        self.style = check_choice('style', style, ('pytorch', 'caffe'))
        self.deep_stem = check_bool('deep_stem', deep_stem)
        self.avg_down = check_bool('avg_down', avg_down)
        self.frozen_stages = check_int('frozen_stages', frozen_stages, -1,
                                       num_stages)
        self.conv_cfg = conv_cfg
        self.norm_cfg = check_cfg('norm_cfg', norm_cfg)
        self.norm_eval = check_bool('norm_eval', norm_eval)
        self.dcn, self.stage_with_dcn = check_dcn(dcn, conv_cfg,
                                                  stage_with_dcn, num_stages)
        self.plugins = check_plugins(plugins, num_stages)
        self.with_cp = check_bool('with_cp', with_cp)
        self.zero_init_residual = check_bool('zero_init_residual',
                                             zero_init_residual)
        self.attention = check_attention(attention,
                                         self.default_eca_kernel_size)
        self.groups = check_int('groups', groups, 1)
        self.width_per_group = check_int('width_per_group', width_per_group,
                                         1)

        block, stage_blocks = self.arch_settings[self.depth]
        self.stage_blocks = stage_blocks[:self.num_stages]
        self.make_stem(self.in_channels, self.stem_channels)
        self.make_stages(block)
        self._freeze_stages()

    # ------------------------------------------------------------------ build
    def make_stem(self, in_channels: int, stem_channels: int) -> None:
        """The stem: ``conv1`` (7x7, stride 2), ``bn1``, ``relu`` and
        ``maxpool``, or with ``deep_stem`` three 3x3 convs as ``stem``."""
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

    def make_stages(self, block: type) -> None:
        """The blocks (:meth:`make_stage`) and the recurrent modules
        (:meth:`make_rla_stage`) of every stage, and the channels and
        strides of the outputs."""
        stages, stage_bns, conv_outs, recurrent_convs = [], [], [], []
        inplanes, channels, strides, stride = self.stem_channels, [], [], 4
        for i, num_blocks in enumerate(self.stage_blocks):
            planes = self.base_channels * self.stage_widths[i]
            stages.append(
                self.make_stage(
                    block, inplanes, planes, num_blocks,
                    stride=self.strides[i],
                    dilation=self.dilations[i],
                    dcn=self.dcn if self.stage_with_dcn[i] else None,
                    attention=stage_attention(self.attention, i),
                    groups=self.groups,
                    width_per_group=self.width_per_group,
                    **self.make_stage_plugins(i)))
            inplanes = planes * block.expansion
            # The update after the network's very last block would never be
            # read, so its norm layer is not built: every parameter of the
            # backbone then gets a gradient.
            norms, conv_out, recurrent_conv = self.make_rla_stage(
                inplanes, num_blocks - (i == self.num_stages - 1))
            stage_bns.append(norms)
            conv_outs.append(conv_out)
            recurrent_convs.append(recurrent_conv)
            channels.append(inplanes)
            stride *= self.strides[i]
            strides.append(stride)
        self.stages = nn.ModuleList(stages)
        self.stage_bns = nn.ModuleList(stage_bns)
        self.conv_outs = nn.ModuleList(conv_outs)
        self.recurrent_convs = nn.ModuleList(recurrent_convs)
        #: Channels of every stage's output.
        self.stage_channels = tuple(channels)
        #: Channels of each returned output, in order.
        self.out_channels = tuple(channels[i] for i in self.out_indices)
        #: Stride of each returned output with respect to the input.
        self.out_strides = tuple(strides[i] for i in self.out_indices)

    def make_stage(self, block: type, inplanes: int, planes: int,
                   num_blocks: int, stride: int, dilation: int,
                   **kwargs) -> nn.ModuleList:
        """The blocks of one stage (``stages[s]``), like mmdet's
        ``ResNet.make_res_layer``.

        The first block takes ``inplanes`` channels and ``stride``, with a
        projection shortcut (1x1 conv + norm, after a 2x2 average pool with
        ``avg_down``) when the shape changes; the others keep
        ``planes * block.expansion`` channels. The stage's recurrent
        modules are built by :meth:`make_rla_stage`.

        Args:
            block: The block class, an :class:`RLABlock`.
            inplanes: Channels of the stage's input.
            planes: Planes of the blocks.
            num_blocks: Number of blocks.
            stride: Stride of the first block.
            dilation: Dilation of the blocks' 3x3 convolutions.
            **kwargs: Passed to every block (``dcn``, ``attention``,
                ``groups``, ``width_per_group``, ``plugins``).
        """
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

    def make_stage_plugins(self, stage: int) -> Dict[str, List[Dict]]:
        """``dict(plugins=[...])``: the plugins of ``stage``'s blocks (each
        without its ``stages``), as mmdet's ``ResNet.make_stage_plugins``;
        ``{}`` when it has none."""
        plugins = [{k: v for k, v in p.items() if k != 'stages'}
                   for p in self.plugins or ()
                   if p.get('stages') is None or p['stages'][stage]]
        return dict(plugins=plugins) if plugins else {}

    def make_rla_stage(self, channels: int, num_updates: int
                       ) -> Tuple[nn.ModuleList, nn.Module, nn.Module]:
        """The recurrent modules of one stage, shared by its blocks:
        ``(stage_bns[s], conv_outs[s], recurrent_convs[s])``.

        The engine runs them after each block:
        ``h = recurrent_conv(tanh(norms[b](h + conv_out(x))))``. A variant
        overrides this method to change them (a GroupNorm, a depthwise
        recurrent convolution...); the published checkpoints hold these
        modules under these names.

        Args:
            channels: Channels of the stage's output ``x``.
            num_updates: Updates of ``h`` in the stage, one norm each (one
                fewer than blocks in the last stage, whose last update no
                output reads).

        Returns:
            :func:`~rla_mmdet.backbones.rla_engine.build_rla_modules`: the
            ``num_updates`` norms, ``conv_out`` (1x1, ``channels`` to
            ``rla_channel``) and ``recurrent_conv`` (3x3, ``rla_channel``
            to ``rla_channel``), all without bias.
        """
        return build_rla_modules(channels, self.rla_channel, num_updates,
                                 self.conv_cfg, self.norm_cfg)

    def describe(self) -> str:
        """A short description used in error messages."""
        attention = (f', attention={self.attention!r}'
                     if self.attention else '')
        return (f'depth={self.depth}, rla_channel={self.rla_channel}, '
                f'num_stages={self.num_stages}{attention}')

    def init_weights(self) -> None:
        """Strict pretrained loading, or the declarative ``init_cfg``; with
        the default one (Kaiming convs, unit norms) and
        ``zero_init_residual``, each block's last norm starts at zero, as in
        mmdet's ``ResNet``."""
        super().init_weights()
        if self.zero_init_residual and self.init_cfg == DEFAULT_INIT_CFG:
            for m in self.modules():
                if isinstance(m, RLABlock):
                    constant_init(m.last_norm, 0)

    # ---------------------------------------------------------------- forward
    def forward_stem(self, img: torch.Tensor) -> torch.Tensor:
        """The stem, before the first block (and ``h``)."""
        if self.deep_stem:
            x = self.stem(img)
        else:
            x = self.relu(self.bn1(self.conv1(img)))
        return self.maxpool(x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the outputs of the stages in ``out_indices``."""
        self.check_sync_bn(x)
        return tuple(self.run_stages(x)[0])

    # --------------------------------------------------------------- training
    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            freeze([self.stem] if self.deep_stem else [self.conv1, self.bn1])
        super()._freeze_stages()


@MODELS.register_module()
class RLAECANet(RLAResNet):
    """RLA-ResNet with ECA attention in every block (RLA-ECANet).

    The same arguments as :class:`RLAResNet`, with ``attention='eca'``: the
    kernel sizes of the published RLA-ECANet, ``(5, 5, 5, 7)``;
    ``attention=dict(type='eca', kernel_size=...)`` changes them.
    """

    def __init__(self,
                 depth: int,
                 attention: AttentionType = 'eca',
                 **kwargs) -> None:
        kind = attention.get('type') if isinstance(attention,
                                                   dict) else attention
        if kind != 'eca':
            raise ValueError(
                "RLAECANet has 'eca' attention in every block, got "
                f'attention={attention!r}; use RLAResNet for another '
                'attention or none.')
        super().__init__(depth, attention=attention, **kwargs)
