# Mask R-CNN with an RLA-ResNet-18 trained from scratch on the shapes
# dataset: the job of scripts/main.sh, about 9 minutes on 2 CPU cores.
# For 128-pixel images and a CPU budget, the FPN and the heads are narrower
# than MMDetection's (64 channels, fewer RoIs), the anchors half as large, and
# the FPN and mask head have BN layers, which train faster from scratch.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/shapes.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/rla_runtime.py',
]
_width = 64
_norm = dict(type='BN', requires_grad=True)
model = dict(
    backbone=_base_.rla_r18_scratch,
    neck=dict(
        in_channels=_base_.rla_r18_channels,
        out_channels=_width,
        norm_cfg=_norm),
    rpn_head=dict(
        in_channels=_width,
        feat_channels=_width,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=_width),
        bbox_head=dict(
            in_channels=_width,
            fc_out_channels=256,
            num_classes=_base_.num_classes),
        mask_roi_extractor=dict(out_channels=_width),
        mask_head=dict(
            num_convs=2,
            in_channels=_width,
            conv_out_channels=_width,
            norm_cfg=_norm,
            num_classes=_base_.num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=256),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))
del _width, _norm

# AdamW with a cosine decay: from scratch, it converges in far fewer steps
# than the SGD recipe of the COCO configs.
_batch_size = 4
train_dataloader = dict(batch_size=_batch_size)
auto_scale_lr = dict(base_batch_size=_batch_size)
del _batch_size
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
max_epochs = 15
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, end=100),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        eta_min_ratio=0.01,
        convert_to_iter_based=True)
]
default_hooks = dict(
    logger=dict(interval=25), checkpoint=dict(interval=5, max_keep_ckpts=2))
