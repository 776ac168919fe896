# The plain twin of mask-rcnn_rla-r18_fpn_shapes.py (the main job): the same
# model, data, schedule and seed with MMDetection's ResNet-18 in place of the
# RLA-ResNet-18 (the backbone's other arguments are inherited unchanged), so a
# difference between the two runs is what RLA changes.
# tools/analysis/shapes_twins.py trains both with several seeds.
_base_ = './mask-rcnn_rla-r18_fpn_shapes.py'
model = dict(backbone=dict(type='ResNet'))
