"""Convert the authors' ImageNet RLA-Net checkpoint into a backbone file.

Usage:
    python tools/model_converters/rla_imagenet_to_mmdet.py \
        resnet50_rla_2283.pth.tar checkpoints/rla-r50_imagenet.pth [--eca] \
        [--format pth|safetensors]

Drops ``module.``, the classifier (``bn2``, ``fc``) and the norm of the
final hidden-state update, checks that every other key fits the inferred
RLAResNet / RLAECANet, and writes ``{'state_dict', 'meta'}``. The
RLA-MobileNetV2 files (``dsrla_mobilenetv2_k32*.pth.tar``) lose only their
``classifier``; the five stored copies of their shared recurrent
convolution must be identical. Any unknown
key stops the conversion. Use the output with
``init_cfg=dict(type='Pretrained', checkpoint=OUT)``.
"""
import argparse
import os.path as osp
import runpy

# An installed rla_mmdet, else the clone this script is in.
runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '..', '_find_package.py'))

from rla_mmdet.converters import imagenet_to_mmdet  # noqa: E402
from rla_mmdet.tools_support.args import add_format_arg  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an RLA-Net ImageNet checkpoint of the authors '
        'into a clean backbone checkpoint')
    parser.add_argument('src', help='the authors\' .pth.tar file')
    parser.add_argument(
        'dst', help='output file (.pth, or .safetensors with --format '
        'safetensors)')
    add_format_arg(parser, 'a dst')
    parser.add_argument(
        '--eca', action='store_true',
        help='require an RLA-ECANet file (by default ECA is inferred from '
        'the .eca. keys)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    meta = imagenet_to_mmdet(
        args.src, args.dst, eca=True if args.eca else None,
        file_format=args.format)
    backbone = dict(meta['backbone'])
    kind = backbone.pop('type')
    args_str = ', '.join(f'{k}={v!r}' for k, v in backbone.items())
    print(f'{args.src} (arch {meta["arch"]}, epoch {meta["epoch"]}, '
          f'best_acc1 {meta["best_acc1"]:.4g}) -> {args.dst}: '
          f'{kind}({args_str}); dropped {", ".join(meta["dropped"])}')
    return meta


if __name__ == '__main__':
    main()
