from .legacy import build_legacy_rla_resnet
from .rla_mobilenet_v2 import RLAMobileNetV2
from .rla_resnet import (RLABasicBlock, RLABlock, RLABottleneck, RLAECANet,
                         RLAResNet)

__all__ = [
    'RLAResNet', 'RLAECANet', 'RLAMobileNetV2', 'RLABlock', 'RLABasicBlock',
    'RLABottleneck', 'build_legacy_rla_resnet'
]
