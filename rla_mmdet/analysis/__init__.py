"""What ``tools/analysis/`` computes: params and FLOPs
(:mod:`.complexity`, with the paper's ImageNet classifiers in
:mod:`.classifier`) and training curves (:mod:`.curves`)."""
from .classifier import RLAClassifier, RLAMobileNetV2Classifier
from .complexity import (Complexity, binary_units, classifier_complexity,
                         complexity, count_params, decimal_units,
                         detector_complexity, detector_inputs)
from .curves import Curve, find_scalar_logs, load_curves

__all__ = [
    'RLAClassifier', 'RLAMobileNetV2Classifier', 'Complexity', 'complexity',
    'count_params', 'detector_complexity', 'classifier_complexity',
    'binary_units', 'decimal_units', 'detector_inputs', 'Curve',
    'find_scalar_logs', 'load_curves'
]
