_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    '../_base_/rla_backbones.py',
    '../_base_/rla_runtime.py',
]
model = dict(backbone={{_base_.rla_backbones.r50}})
