from .legacy import build_legacy_rla_resnet
from .rla_mobilenet_v2 import RLAMobileNetV2
from .rla_resnet import RLAECANet, RLAResNet

__all__ = [
    'RLAResNet', 'RLAECANet', 'RLAMobileNetV2', 'build_legacy_rla_resnet'
]
