"""What the two RLA backbones share, as MMDetection's backbones share it.

:class:`RLABackboneMixin` gives both the same initialisation (MMEngine's
declarative ``init_cfg``, :data:`DEFAULT_INIT_CFG` unless one is given, or
strict loading of a ``Pretrained`` one), the same start of the hidden
state, the same ``with_cp`` rule and loop over the blocks, and mmdet's
``frozen_stages`` / ``norm_eval`` in ``train()``.
"""
from typing import Iterable, List, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from torch.nn.modules.batchnorm import _BatchNorm

from ..checkpoint import load_pretrained_init_cfg

#: The initialisation without ``init_cfg``, as mmdet's ``ResNet`` and
#: ``MobileNetV2`` declare it: Kaiming convolutions, unit norms.
DEFAULT_INIT_CFG = [
    dict(type='Kaiming', layer='Conv2d'),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
]


def freeze(modules: Iterable[nn.Module]) -> None:
    """Eval mode and no gradient for every parameter of ``modules``."""
    for m in modules:
        m.eval()
        for p in m.parameters():
            p.requires_grad = False


class RLABackboneMixin:
    """The shared part of :class:`RLAResNet` and :class:`RLAMobileNetV2`.

    A backbone sets ``rla_channel``, ``out_indices``, ``frozen_stages``,
    ``norm_eval`` and ``with_cp``, holds its blocks in ``stages`` and
    defines :meth:`_step` (one block and its update of ``h``) and
    :meth:`_freeze_stages`. List it before ``BaseModule`` in the bases.
    """

    def init_weights(self) -> None:
        """Strict loading of a ``Pretrained`` ``init_cfg`` by
        :func:`rla_mmdet.checkpoint.load_backbone_weights` (the authors'
        ImageNet files and, with ``prefix``, whole-detector checkpoints;
        any missing or unexpected key raises), else MMEngine's declarative
        ``init_cfg``."""
        if not load_pretrained_init_cfg(self):
            super().init_weights()

    def init_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden state before the first block: zeros with
        ``rla_channel`` channels at the resolution, dtype and device of
        ``x``."""
        return x.new_zeros((x.shape[0], self.rla_channel) + x.shape[2:])

    def _step(self, stage: int, index: int, x: torch.Tensor,
              h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Block ``index`` of ``stage`` and its update of ``h``."""
        raise NotImplementedError

    def _checkpointed(self, stage: int) -> bool:
        """``with_cp`` recomputes the blocks of the trained stages in
        backward; frozen stages keep nothing for backward anyway."""
        return (self.with_cp and self.training and torch.is_grad_enabled()
                and stage >= self.frozen_stages)

    def run_blocks(
        self, x: torch.Tensor, h: torch.Tensor
    ) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Every block with its update of ``h``, stage by stage:
        ``(outputs of the stages in out_indices, last x, last h)``."""
        outs = []
        for s, stage in enumerate(self.stages):
            for i in range(len(stage)):
                if self._checkpointed(s):
                    x, h = cp.checkpoint(
                        self._step, s, i, x, h, use_reentrant=False)
                else:
                    x, h = self._step(s, i, x, h)
            if s in self.out_indices:
                outs.append(x)
        return outs, x, h

    def _freeze_stages(self) -> None:
        raise NotImplementedError

    def train(self, mode: bool = True):
        """``train()`` that keeps the frozen stages frozen and, with
        ``norm_eval``, every BatchNorm in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
