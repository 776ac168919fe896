_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/rla_backbones.py',
    '../_base_/rla_runtime.py',
]
model = dict(backbone={{_base_.rla_backbones.r50}})
