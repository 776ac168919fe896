"""``frozen_stages`` and ``norm_eval``, as in MMDetection's backbones,
shared by the RLA backbones."""
from typing import Iterable

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def freeze(modules: Iterable[nn.Module]) -> None:
    """Eval mode and no gradient for every parameter of ``modules``."""
    for m in modules:
        m.eval()
        for p in m.parameters():
            p.requires_grad = False


class FrozenStagesMixin:
    """``train()`` that keeps the frozen stages (``self._freeze_stages()``)
    and, with ``self.norm_eval``, every BatchNorm in eval mode."""

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
