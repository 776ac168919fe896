# RLA backbones for the COCO configs, with the detection recipe of the paper:
# stem and stage 0 frozen, BN statistics frozen, ImageNet weights released by
# the authors, expected under ./checkpoints (links in docs/model_zoo.md).
# A config uses one of them with `model = dict(backbone={{_base_.rla_backbones.r50}})`.
# rla_mmdet.checked_loading: every checkpoint of the process loads through the
# checked loader, init_detector and DetInferencer included (docs/reliability.md).
custom_imports = dict(
    imports=['rla_mmdet', 'rla_mmdet.checked_loading'],
    allow_failed_imports=False)

_recipe = dict(
    out_indices=(0, 1, 2, 3),
    frozen_stages=1,
    norm_cfg=dict(type='BN', requires_grad=True),
    norm_eval=True,
    style='pytorch')

rla_backbones = dict(
    r50=dict(
        _delete_=True,
        type='RLAResNet',
        depth=50,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/resnet50_rla_2283.pth.tar'),
        **_recipe),
    eca_r50=dict(
        _delete_=True,
        type='RLAECANet',
        depth=50,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/ecanet50_rla_2215.pth.tar'),
        **_recipe),
    r101=dict(
        _delete_=True,
        type='RLAResNet',
        depth=101,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/resnet101_rla_2148.pth.tar'),
        **_recipe),
    eca_r101=dict(
        _delete_=True,
        type='RLAECANet',
        depth=101,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/ecanet101_rla_2100.pth.tar'),
        **_recipe),
)
del _recipe

# ImageNet weights of RLA-MobileNetV2 (dsRLA, k = 32), published by the
# authors beside the ResNet ones: the init_cfg of the RLAMobileNetV2 configs,
# which set out_indices and the norm layers for their detector.
rla_mobilenetv2_inits = dict(
    mobilenetv2=dict(
        type='Pretrained',
        checkpoint='checkpoints/dsrla_mobilenetv2_k32_2762.pth.tar'),
    eca_mobilenetv2=dict(
        type='Pretrained',
        checkpoint='checkpoints/dsrla_mobilenetv2_k32_eca_2707.pth.tar'),
)
