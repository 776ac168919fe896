_base_ = './faster-rcnn_rla-r50_fpn_1x_coco.py'
model = dict(backbone={{_base_.rla_backbones.eca_r50}})
