"""MMDetection 3.3.0's ``SSDHead``, able to predict.

``BaseDenseHead._predict_by_feat_single`` reads ``self.loss_cls``, which
``SSDHead`` never sets (it skips ``AnchorHead.__init__``), so every SSD /
SSDLite validation, test or demo stops with ``AttributeError: 'SSDHead'
object has no attribute 'loss_cls'`` (open-mmlab/mmdetection#11780, #11305;
fix proposed in #11524, not released). :class:`SSDLiteHead` is the same head
with that attribute set to ``None``, the value that makes the check fall
through to SSD's softmax scores. The SSDLite config of this package uses it.
"""
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS

__all__ = ['SSDLiteHead']


@MODELS.register_module()
class SSDLiteHead(SSDHead):
    """``SSDHead`` with ``loss_cls = None``, so that ``predict`` works under
    mmdet 3.3.0. The arguments are those of ``SSDHead``."""

    loss_cls = None
