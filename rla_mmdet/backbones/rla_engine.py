"""The recurrence of RLA, for every RLA network: the whole life of ``h``.

A network is a sequence of blocks in stages; ``h`` (``rla_channel``
channels) runs beside the feature map ``x`` through all of them::

    h = 0                                       # at the stem's resolution
    for each stage s, block t:
        x, r = block(x, h)                      # the block reads cat([x, h])
        h = pool(h)        if block.pool_hidden # follows x to its resolution
        h = g_s(h, r)      (h_t = g(h_{t-1}, x_t) of the paper)
    g_s(h, r) = recurrent_conv_s(tanh(norm_{s,t}(h + conv_out_s(r))))

:class:`RLAEngine` is that loop, the only place where ``h`` is made,
pooled and updated; the update runs through
:func:`rla_mmdet.layers.rla_update`, whose faster forms live beside the
literal one in :mod:`rla_mmdet.layers`.

The block contract, the same for every RLA block (RLA-ResNet's
:class:`~rla_mmdet.backbones.RLABasicBlock` and
:class:`~rla_mmdet.backbones.RLABottleneck`, RLA-MobileNetV2's
:class:`~rla_mmdet.backbones.RLAInvertedResidual`, a new one): a module
whose ``forward(x, h)`` returns ``(x, r)``, its output and the tensor the
update reads (the output itself in RLA-ResNet; the branch before the
residual add in RLA-MobileNetV2), with ``h`` at the resolution of its input,
and whose ``pool_hidden`` says whether its output has half that resolution.

A network using the engine holds ``stages`` (a list of lists of blocks),
``stage_bns`` (per stage, one norm per update: a stage whose last update no
output reads has one fewer), ``conv_outs`` and ``recurrent_convs`` (per
stage; :func:`build_rla_modules` builds them; :meth:`RLAEngine.recurrent_conv`
picks a stage's), and sets ``rla_channel``,
``out_indices``, ``with_cp`` and ``frozen_stages``. It defines
:meth:`RLAEngine.forward_stem`.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer

from ..layers import rla_update

__all__ = ['RLAEngine', 'build_rla_modules']


def build_rla_modules(channels: int,
                   rla_channel: int,
                   num_updates: int,
                   conv_cfg: Optional[dict] = None,
                   norm_cfg: dict = dict(type='BN')
                   ) -> Tuple[nn.ModuleList, nn.Module, nn.Module]:
    """The recurrent modules of one stage, shared by its blocks:
    ``(norms, conv_out, recurrent_conv)``.

    Args:
        channels: Channels of the tensor the update reads.
        rla_channel: Channels ``k`` of ``h``.
        num_updates: Updates of ``h`` in the stage, one norm each.
        conv_cfg, norm_cfg: Configs of the layers.

    Returns:
        The ``num_updates`` norms, ``conv_out`` (1x1, ``channels`` to ``k``)
        and ``recurrent_conv`` (3x3, ``k`` to ``k``), all without bias; for
        a stage without updates, ``nn.Identity()`` for both convolutions, so
        that no parameter goes without a gradient.
    """
    k = rla_channel
    if not num_updates:
        return nn.ModuleList(), nn.Identity(), nn.Identity()
    norms = nn.ModuleList(
        build_norm_layer(norm_cfg, k)[1] for _ in range(num_updates))
    conv_out = build_conv_layer(conv_cfg, channels, k, 1, bias=False)
    recurrent_conv = build_conv_layer(conv_cfg, k, k, 3, padding=1, bias=False)
    return norms, conv_out, recurrent_conv


class RLAEngine:
    """The recurrence of an RLA network (see the module's docstring for
    what the network and its blocks provide). List it before
    ``BaseModule`` in the bases."""

    def forward_stem(self, img: torch.Tensor) -> torch.Tensor:
        """The layers before the first block."""
        raise NotImplementedError

    def init_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """``h`` before the first block: zeros with ``rla_channel``
        channels at the resolution, dtype and device of ``x``."""
        return x.new_zeros((x.shape[0], self.rla_channel) + x.shape[2:])

    @staticmethod
    def pool_hidden(h: torch.Tensor) -> torch.Tensor:
        """``h`` at the resolution of a block that halved it: the 2x2
        average (``ceil_mode`` keeps a strided conv's size for odd
        inputs)."""
        return F.avg_pool2d(h, 2, 2, ceil_mode=True)

    def recurrent_conv(self, stage: int) -> nn.Module:
        """The recurrent convolution of ``stage``."""
        return self.recurrent_convs[stage]

    def rla_update(self, stage: int, norm: nn.Module, r: torch.Tensor,
                   h: torch.Tensor) -> torch.Tensor:
        """``h = recurrent_conv(tanh(norm(h + conv_out(r))))`` with the
        ``conv_out`` and ``recurrent_conv`` of ``stage``, through
        :func:`rla_mmdet.layers.rla_update`."""
        return rla_update(self.conv_outs[stage], norm,
                          self.recurrent_conv(stage), r, h)

    def rla_step(self, stage: int, index: int, x: torch.Tensor,
                 h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Block ``index`` of ``stage``, then ``h`` to its resolution and
        its update (none where no output reads it)."""
        block = self.stages[stage][index]
        x, r = block(x, h)
        if block.pool_hidden:
            h = self.pool_hidden(h)
        if index < len(self.stage_bns[stage]):
            h = self.rla_update(stage, self.stage_bns[stage][index], r, h)
        return x, h

    def _checkpointed(self, stage: int) -> bool:
        """``with_cp`` recomputes the blocks of the trained stages in
        backward; frozen stages keep nothing for backward anyway."""
        return (self.with_cp and self.training and torch.is_grad_enabled()
                and stage >= self.frozen_stages)

    def run_stages(
        self, img: torch.Tensor
    ) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The stem and every block with its update of ``h``:
        ``(outputs of the stages in out_indices, last x, last h)``."""
        x = self.forward_stem(img)
        h = self.init_hidden(x)
        outs = []
        for s, stage in enumerate(self.stages):
            for i in range(len(stage)):
                if self._checkpointed(s):
                    x, h = cp.checkpoint(
                        self.rla_step, s, i, x, h, use_reentrant=False)
                else:
                    x, h = self.rla_step(s, i, x, h)
            if s in self.out_indices:
                outs.append(x)
        return outs, x, h
