"""RLA-Net (Recurrent Layer Aggregation) backbones for MMDetection 3.x.

Importing the package checks the versions of torch, numpy, mmengine, mmcv
and mmdet (:mod:`rla_mmdet.dependencies`), registers ``RLAResNet``,
``RLAECANet``, ``RLAMobileNetV2``, the legacy ``RLA_ResNet`` builder and
``SSDLiteHead`` in ``mmdet.registry.MODELS`` and the hooks of
:mod:`rla_mmdet.engine` in MMEngine's ``HOOKS``. It changes nothing else:
torch's ``weights_only`` allow-list, MMEngine's checkpoint loaders and
file backends stay as they are until ``CheckpointIOHook`` (listed in this
package's configs) or a ``tools/`` script switches on :func:`rla_mmdet.engine.enable_checkpoint_io`,
or :mod:`rla_mmdet.checked_loading` (named in the ``custom_imports`` of this
package's configs) is imported.
"""
from .dependencies import check_installed as _check_installed

_check_installed()

from .backbones import RLAECANet, RLAMobileNetV2, RLAResNet  # noqa: E402
# The strict loader of the published layouts for the backbones' Pretrained
# init_cfg (the backbones themselves read no file).
from .checkpoint import adaptation as _adaptation  # noqa: E402,F401
from .engine import (CheckpointIOHook, EpochSeedHook,  # noqa: E402,F401
                     NonFiniteLossHook)
from .ssd_head import SSDLiteHead  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['RLAResNet', 'RLAECANet', 'RLAMobileNetV2', '__version__']
