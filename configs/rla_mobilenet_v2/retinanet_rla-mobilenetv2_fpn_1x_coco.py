# RetinaNet with RLA-MobileNetV2 (dsRLA, k = 32) + FPN on COCO, on
# MMDetection's RetinaNet 1x config (SGD lr 0.01 for 16 images, 12 epochs),
# with the detection recipe of the RLA ResNet configs: ImageNet weights of
# the authors, conv1 and stage 0 frozen, BN statistics frozen. Outputs 2, 4
# and 7 (strides 8, 16, 32) feed the FPN, which adds P6 and P7 on its input.
# No COCO result has been published for this model.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/rla_backbones.py',
    '../_base_/rla_runtime.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='RLAMobileNetV2',
        out_indices=(2, 4, 7),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg={{_base_.rla_mobilenetv2_inits.mobilenetv2}}),
    neck=dict(in_channels=[32, 96, 1280], start_level=0, num_outs=5))
