# The plain twin of mask-rcnn_rla-mobilenetv2_fpn_shapes.py: MMDetection's
# MobileNetV2 with the same arguments, everything else identical, so a
# difference between the two runs is what RLA changes.
_base_ = './mask-rcnn_rla-mobilenetv2_fpn_shapes.py'
model = dict(backbone=dict(type='MobileNetV2'))
