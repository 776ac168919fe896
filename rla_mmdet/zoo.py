"""The published RLA-Net checkpoints and results, in one place.

The files are hosted by the paper's authors on Google Drive and Baidu Drive
(repository ``fangyanwen1106/RLANet``); this package never downloads them.
Error messages, the zoo tables (README, docs/model_zoo.md) and the metafiles
read this module. The config paths are relative to the repository root;
nothing here reads them.
"""
import os.path as osp
from typing import Dict, NamedTuple, Optional, Tuple

AUTHORS_REPO = 'https://github.com/fangyanwen1106/RLANet'


class Published(NamedTuple):
    """A checkpoint file released by the authors."""
    name: str  # file stem as released
    filename: str  # file name as released
    google_drive: str
    baidu_drive: str
    baidu_code: str


def _gd(file_id: str) -> str:
    return f'https://drive.google.com/file/d/{file_id}/view?usp=sharing'


def _bd(share: str) -> str:
    return f'https://pan.baidu.com/s/{share}'


#: ImageNet checkpoints, keyed by backbone name.
IMAGENET: Dict[str, Published] = {
    'rla-r50': Published('resnet50_rla_2283', 'resnet50_rla_2283.pth.tar',
                         _gd('1cetP1SdOiwznLxlBUaHG8Q8c4RIwToWW'),
                         _bd('1GrNxNariVpb9S5EUFW1eng'), '5lf1'),
    'rla-eca-r50': Published('ecanet50_rla_2215', 'ecanet50_rla_2215.pth.tar',
                             _gd('173qoDPGe2q5l7CKVm54-_xJtg3_UFRR-'),
                             _bd('1B5wVN4s_WVVq8nGiiOVncA'), 'xrfo'),
    'rla-r101': Published('resnet101_rla_2148', 'resnet101_rla_2148.pth.tar',
                          _gd('1V9Iv0KbN1O92ll8rcf45kLkD9EOA9VCE'),
                          _bd('1sZQlAU4ksIjnOUg4iSSO-Q'), 'zrv5'),
    'rla-eca-r101': Published('ecanet101_rla_2100',
                              'ecanet101_rla_2100.pth.tar',
                              _gd('1QMR_yf0RYugpJosCSo0uNRBmfl2e7cGa'),
                              _bd('1ILfQ8pK1WdnAxSWb5X88PQ'), 'vhpy'),
}

#: ImageNet results (params / FLOPs in the paper's binary units).
IMAGENET_RESULTS: Dict[str, Tuple[str, str, float, float]] = {
    'rla-r50': ('24.67M', '4.17G', 22.83, 6.58),
    'rla-eca-r50': ('24.67M', '4.18G', 22.15, 6.11),
    'rla-r101': ('42.92M', '7.79G', 21.48, 5.80),
    'rla-eca-r101': ('42.92M', '7.80G', 21.00, 5.51),
}


class Detector(NamedTuple):
    """One of the 12 COCO configs with the paper's result."""
    config: str  # path relative to the repository root: configs/...
    family: str  # 'faster_rcnn', 'retinanet' or 'mask_rcnn'
    backbone: str  # key of IMAGENET
    box_ap: Tuple[float, float, float]  # AP, AP50, AP75 on val2017
    published: Published

    def config_in(self, configs_dir: str) -> str:
        """The path of this config in ``configs_dir``, the ``configs/``
        folder of a clone (the installed package holds no configs)."""
        return osp.join(configs_dir, *self.config.split('/')[1:])


_DET = [
    # family, config stem, backbone, (AP, AP50, AP75), file stem, gd, bd, code
    ('faster_rcnn', 'faster-rcnn_rla-r50_fpn_1x_coco', 'rla-r50',
     (38.8, 59.6, 42.0), 'faster_rcnn_r50rla_fpn_1x_coco_388',
     '16yqHnLT2ZZuLTcLDejyi7fsxPRuh36hN', '1Kz39oBtwNporxM5mSGD8rw', 'q5c8'),
    ('faster_rcnn', 'faster-rcnn_rla-eca-r50_fpn_1x_coco', 'rla-eca-r50',
     (39.8, 61.2, 43.2), 'faster_rcnn_r50rlaeca_fpn_1x_coco_398',
     '1oLZtRCNr0x8c6xACS41znmWKsm2SnqEw', '1UD-3nECcc0rYcQ6Fc86yDg', 'f5xs'),
    ('faster_rcnn', 'faster-rcnn_rla-r101_fpn_1x_coco', 'rla-r101',
     (41.2, 61.8, 44.9), 'faster_rcnn_r101rla_fpn_1x_coco_412',
     '15UqsMFKPSeBWnr-v7fy8Q2qidkj5_9Rj', '13Ec2jUrs7z32Z4ovRA0j0g', '0ri3'),
    ('faster_rcnn', 'faster-rcnn_rla-eca-r101_fpn_1x_coco', 'rla-eca-r101',
     (42.1, 63.3, 46.1), 'faster_rcnn_r101rlaeca_fpn_1x_coco_421',
     '1OhiVpiwohQG436ruUyV683xzmdfYV9el', '1ue02A9evqCbi7KFWeHyH1A', 'cpug'),
    ('retinanet', 'retinanet_rla-r50_fpn_1x_coco', 'rla-r50',
     (37.9, 57.0, 40.8), 'retinanet_r50rla_fpn_1x_coco_379',
     '1sbKOUvSV0u1nj1WHSNVzSQTvB8PGIcwy', '1u6aDamYPj4WRYzVAxTxgvA', 'lahj'),
    ('retinanet', 'retinanet_rla-eca-r50_fpn_1x_coco', 'rla-eca-r50',
     (39.0, 58.7, 41.7), 'retinanet_r50rlaeca_fpn_1x_coco_390',
     '1okSs7HzBex9uB_AhKbF9qWq8rW8mEGrw', '17VHcUDWvW9CxYnScym7i3g', 'adyd'),
    ('retinanet', 'retinanet_rla-r101_fpn_1x_coco', 'rla-r101',
     (40.3, 59.8, 43.5), 'retinanet_r101rla_fpn_1x_coco_403',
     '1PWKq1AiOf1f9dm_k7zUin9fcsQfKx7U-', '14-QdA1pl4e0iV4DYfvKrFw', 'p8y0'),
    ('retinanet', 'retinanet_rla-eca-r101_fpn_1x_coco', 'rla-eca-r101',
     (41.5, 61.6, 44.4), 'retinanet_r101rlaeca_fpn_1x_coco_415',
     '1Hl7mhi-CAPnWR_m2reJug8hzhkokYQpa', '1ArVb6TR1ifwGMx3RXL6ILw', 'hdqx'),
    ('mask_rcnn', 'mask-rcnn_rla-r50_fpn_1x_coco', 'rla-r50',
     (39.5, 60.1, 43.3), 'mask_rcnn_r50rla_fpn_1x_coco_395',
     '1UrIzo9ZunyjwTRVm6qZmbJtfEJ2Fnqcp', '1FF3RJDTcABt1GjvmqCEXmQ', 'j1x6'),
    ('mask_rcnn', 'mask-rcnn_rla-eca-r50_fpn_1x_coco', 'rla-eca-r50',
     (40.6, 61.8, 44.0), 'mask_rcnn_r50rlaeca_fpn_1x_coco_406',
     '1i6J0h_5FZDg8BxvGvS1VBbVxHIxmJk4L', '1Ne4Rb33VN5_UyFxtyzxBQw', 'c08r'),
    ('mask_rcnn', 'mask-rcnn_rla-r101_fpn_1x_coco', 'rla-r101',
     (41.8, 62.3, 46.2), 'mask_rcnn_r101rla_fpn_1x_coco_418',
     '1mGS2R5vx-u9KyQoK1WpyQwx-J7PI9lN2', '1X_fLMF73vlBCb2GBurGCeQ', '8bsn'),
    ('mask_rcnn', 'mask-rcnn_rla-eca-r101_fpn_1x_coco', 'rla-eca-r101',
     (42.9, 63.6, 46.9), 'mask_rcnn_r101rlaeca_fpn_1x_coco_429',
     '1RKkoE8E6n1CG2BDaNuYGLzrxWY9j7XB_', '1zeLKIZPJGaM77nDNMnhrIA', '3kmz'),
]

#: The 12 COCO configs, in README order.
DETECTORS: Tuple[Detector, ...] = tuple(
    Detector(f'configs/{family}/{stem}.py', family, backbone, ap,
             Published(name, name + '.pth', _gd(gd), _bd(bd), code))
    for family, stem, backbone, ap, name, gd, bd, code in _DET)

#: MMDetection's own ResNet results for the same 1x configs (box AP).
MMDET_BASELINES = {
    ('faster_rcnn', 50): 37.4,
    ('faster_rcnn', 101): 39.4,
    ('retinanet', 50): 36.5,
    ('retinanet', 101): 38.5,
    ('mask_rcnn', 50): 38.2,
    ('mask_rcnn', 101): 40.0,
}


#: RLA-MobileNetV2 (dsRLA, k = 32) ImageNet checkpoints, listed with their
#: Google Drive / Baidu links in the README of the authors' repository:
#: file name, params, FLOPs (the paper's binary units), top-1 / top-5 error.
IMAGENET_MOBILENET_V2: Dict[str, Tuple[str, str, str, float, float]] = {
    'rla-mobilenetv2': ('dsrla_mobilenetv2_k32_2762.pth.tar', '3.46M',
                        '351.8M', 27.62, 9.18),
    'rla-eca-mobilenetv2': ('dsrla_mobilenetv2_k32_eca_2707.pth.tar',
                            '3.46M', '352.4M', 27.07, 8.89),
}


class MobileNetV2Detector(NamedTuple):
    """A COCO config with RLA-MobileNetV2: no result has been published."""
    config: str  # path relative to the repository root
    family: str  # 'ssdlite' or 'retinanet'
    backbone: str  # key of IMAGENET_MOBILENET_V2
    epochs: int
    batch_size: int  # total, for the learning rate of the config


#: The COCO configs with RLA-MobileNetV2 (initialised from ImageNet).
MOBILENET_V2_DETECTORS: Tuple[MobileNetV2Detector, ...] = (
    MobileNetV2Detector(
        'configs/rla_mobilenet_v2/ssdlite_rla-mobilenetv2_8xb24-600e_coco.py',
        'ssdlite', 'rla-mobilenetv2', 600, 192),
    MobileNetV2Detector(
        'configs/rla_mobilenet_v2/retinanet_rla-mobilenetv2_fpn_1x_coco.py',
        'retinanet', 'rla-mobilenetv2', 12, 16),
)


def find_published(path: str) -> Optional[Published]:
    """The published checkpoint whose file name ``path`` ends with."""
    base = osp.basename(str(path))
    for item in list(IMAGENET.values()) + [d.published for d in DETECTORS]:
        if base in (item.filename, item.name, item.name + '.pth.tar'):
            return item
    return None


def where_to_get(path: str) -> str:
    """A sentence saying where the authors publish the file ``path``."""
    item = find_published(path)
    base = osp.basename(str(path))
    for filename, *_ in IMAGENET_MOBILENET_V2.values():
        if item is None and base in (filename, filename[:-len('.pth.tar')]):
            return (f'{filename} is published by the RLA-Net authors; its '
                    'Google Drive and Baidu Drive links are in the README '
                    f'of {AUTHORS_REPO}.')
    if item is None:
        return ''
    return (f'{item.filename} is published by the RLA-Net authors '
            f'({AUTHORS_REPO}): Google Drive {item.google_drive} or Baidu '
            f'Drive {item.baidu_drive} (extract code {item.baidu_code}).')
