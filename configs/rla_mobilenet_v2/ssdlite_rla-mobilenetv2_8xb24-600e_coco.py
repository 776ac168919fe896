# SSDLite with RLA-MobileNetV2 (dsRLA, k = 32) on COCO: MMDetection's SSDLite
# MobileNetV2 config (120 epochs of the train set repeated 5 times, 8 GPUs x
# 24 images) with the backbone replaced and initialised from the authors'
# ImageNet weights. Outputs 4 (96 channels, stride 16) and 7 (the
# 1280-channel head, where the hidden state joins) feed the SSD neck, as
# MobileNetV2's do. No COCO result has been published for this model.
_base_ = [
    'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py',
    '../_base_/rla_backbones.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='RLAMobileNetV2',
        out_indices=(4, 7),
        norm_cfg=dict(type='BN', eps=0.001, momentum=0.03),
        init_cfg={{_base_.rla_mobilenetv2_inits.mobilenetv2}}),
    # mmdet 3.3.0's SSDHead fails in predict (see rla_mmdet/ssd_head.py).
    bbox_head=dict(type='SSDLiteHead'))
# The base config's NumClassCheckHook, with the hooks of
# configs/_base_/rla_runtime.py (whose custom_hooks would clash with the
# base config's own).
custom_hooks = [
    dict(type='NumClassCheckHook'),
    dict(type='CheckpointIOHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='EpochSeedHook'),
]
