"""RLA-Net (Recurrent Layer Aggregation) backbones for MMDetection 3.x.

Importing the package checks the versions of torch, numpy, mmengine, mmcv
and mmdet (:mod:`rla_mmdet.dependencies`), registers ``RLAResNet``,
``RLAECANet`` and the legacy ``RLA_ResNet`` builder in
``mmdet.registry.MODELS``, the hooks of :mod:`rla_mmdet.engine` in
MMEngine's ``HOOKS``, and MMEngine's checkpoint types on torch's allow-list
for ``torch.load(weights_only=True)``. It changes nothing else: MMEngine's
checkpoint loader and file backends stay as they are until
``CheckpointIOHook`` (listed in this package's configs) or a ``tools/``
script switches on :func:`rla_mmdet.engine.enable_checkpoint_io`.
"""
from .dependencies import check_installed as _check_installed

_check_installed()

from .backbones import RLAECANet, RLAResNet  # noqa: E402
from .checkpoint import register_safe_globals  # noqa: E402
from .engine import (CheckpointIOHook, EpochSeedHook,  # noqa: E402,F401
                     NonFiniteLossHook)
from .version import __version__  # noqa: E402

register_safe_globals()

__all__ = ['RLAResNet', 'RLAECANet', '__version__']
