# The synthetic shapes dataset (tools/misc/make_shapes_dataset.py;
# scripts/main.sh writes it to data/shapes/) and an RLA-ResNet-18 trained
# from scratch: what the configs of this folder share.
_base_ = 'mmdet::_base_/datasets/coco_instance.py'
# rla_mmdet.checked_loading: every checkpoint of the process loads through the
# checked loader, init_detector and DetInferencer included (docs/reliability.md).
custom_imports = dict(
    imports=['rla_mmdet', 'rla_mmdet.checked_loading'],
    allow_failed_imports=False)

data_root = 'data/shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle', 'star', 'hexagon'))
num_classes = len(metainfo['classes'])

# No pretrained weights: every norm layer learns, no stage is frozen.
rla_r18_scratch = dict(
    _delete_=True,
    type='RLAResNet',
    depth=18,
    out_indices=(0, 1, 2, 3),
    frozen_stages=-1,
    norm_cfg=dict(type='BN', requires_grad=True),
    norm_eval=False,
    style='pytorch',
    init_cfg=None)
rla_r18_channels = [64, 128, 256, 512]

# The images are generated at the size the model sees: no resizing. The
# Resize by 1.0 only records the scale factor, which mmdet 3.0's
# PackDetInputs requires.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale_factor=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=1.0),  # records the scale factor
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# Small images decode in no time: loading in the main process leaves both
# cores to the model.
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

randomness = dict(seed=0, deterministic=True)
