"""Convert an RLA-Net detector checkpoint of mmdetection 2.x to 3.x.

Usage:
    python tools/model_converters/rla_mmdet2_to_mmdet3.py \
        faster_rcnn_r50rla_fpn_1x_coco_388.pth \
        checkpoints/faster-rcnn_rla-r50_fpn_1x_coco.pth [--config CONFIG] \
        [--format pth|safetensors]

Checks every key and shape against the 3.x model of the matching config of
configs/ (or --config), moves meta.CLASSES to meta.dataset_meta.classes and
drops the optimizer state. Any unknown key stops the conversion. The output
loads with tools/test.py CONFIG OUT.
"""
import argparse
import os.path as osp
import runpy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# An installed rla_mmdet, else the clone this script is in.
runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '..', '_find_package.py'))

from rla_mmdet.converters import mmdet2_to_mmdet3  # noqa: E402
from rla_mmdet.tools_support.args import add_format_arg  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an mmdetection 2.x RLA-Net detector checkpoint '
        'to MMDetection 3.x')
    parser.add_argument('src', help='the mmdetection 2.x .pth file')
    parser.add_argument(
        'dst', help='output file (.pth, or .safetensors with --format '
        'safetensors)')
    add_format_arg(parser, 'a dst')
    parser.add_argument(
        '--config',
        help='3.x config to check the keys against (default: the config of '
        'configs/ for the detector and backbone found in the file)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Without --config: the matching config of this clone's configs/.
    meta = mmdet2_to_mmdet3(args.src, args.dst, args.config,
                            configs_dir=osp.join(ROOT, 'configs'),
                            file_format=args.format)
    print(f'{args.src} (mmdet {meta["source_mmdet_version"]}, epoch '
          f'{meta["epoch"]}) -> {args.dst}: checked against {meta["config"]}, '
          f'{len(meta["dataset_meta"]["classes"])} classes; dropped '
          f'{", ".join(meta["dropped"]) or "nothing"} and the optimizer state')
    return meta


if __name__ == '__main__':
    main()
