# Mask R-CNN with an RLA-MobileNetV2 trained from scratch on the shapes
# dataset: the main job's config (mask-rcnn_rla-r18_fpn_shapes.py: data,
# heads, schedule, seed) with the backbone replaced. Outputs 1, 2, 4 and 7
# (strides 4, 8, 16, 32) feed the FPN. mask-rcnn_mobilenetv2_fpn_shapes.py
# is its plain MobileNetV2 twin.
_base_ = './mask-rcnn_rla-r18_fpn_shapes.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='RLAMobileNetV2',
        out_indices=(1, 2, 4, 7),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[24, 32, 96, 1280]))
