"""Params and FLOPs of a config's model, counted by MMEngine's FlopAnalyzer.

Usage:
    python tools/analysis/get_flops.py CONFIG [--shape H W]
        [--backbone | --imagenet-classifier] [--cfg-options K=V ...]

Counts the whole detector (default, test-time forward on one padded image
of H x W, default 800 x 1333), its backbone alone (``--backbone``), or the
ImageNet classification network around an RLA backbone
(``--imagenet-classifier``, default 224 x 224; for RLA-MobileNetV2 the
backbone with its head and the authors' ``classifier``), which is what
the paper's table counts. FLOPs are multiply-accumulates (MACs), as in
MMEngine and in the paper; both are printed in decimal units and in the
paper's binary units (params / 1024**2, FLOPs / 1024**3; below 1024**3
FLOPs also / 1024**2, as the paper prints light models). See
``rla_mmdet/analysis/complexity.py`` for what is and is not counted.
"""
import argparse
import os.path as osp
import runpy

# An installed rla_mmdet, else the clone this script is in.
runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '..', '_find_package.py'))

from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import rla_mmdet  # noqa: E402,F401  registers the RLA backbones
from rla_mmdet.analysis import (RLAMobileNetV2Classifier,  # noqa: E402
                                binary_units, classifier_complexity,
                                complexity, decimal_units,
                                detector_complexity)
from rla_mmdet.backbones import RLAResNet  # noqa: E402
from rla_mmdet.tools_support.config import load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Count the params and FLOPs (MACs) of a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape', type=int, nargs=2, metavar=('H', 'W'),
        help='input height and width (default 800 1333; 224 224 with '
        '--imagenet-classifier)')
    part = parser.add_mutually_exclusive_group()
    part.add_argument(
        '--backbone', action='store_true',
        help='count the backbone of the config alone')
    part.add_argument(
        '--imagenet-classifier', action='store_true',
        help='count the config\'s RLA backbone with the ImageNet classifier '
        'of the paper (the last hidden-state update, bn2 and fc)')
    parser.add_argument(
        '--num-classes', type=int, default=1000,
        help='classes of the ImageNet classifier (default 1000)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (see MMEngine DictAction)')
    args = parser.parse_args(argv)
    if args.num_classes != 1000 and not args.imagenet_classifier:
        parser.error('--num-classes applies to --imagenet-classifier only.')
    if args.shape is not None and min(args.shape) < 1:
        parser.error(f'--shape must be two positive ints, got {args.shape}.')
    return args


def _fmt(n: int) -> str:
    return f'{n:,}'


def report(title: str, result, input_shape) -> str:
    """The lines printed for one count."""
    p_dec, f_dec = decimal_units(result.params, result.flops)
    p_bin, f_bin = binary_units(result.params, result.flops)
    lines = [
        f'model:  {title}',
        f'input:  1 x 3 x {input_shape[0]} x {input_shape[1]}',
        f'params: {_fmt(result.params)} = {p_dec} (10^6) = {p_bin} '
        '(2^20, the paper\'s unit)',
        f'FLOPs:  {_fmt(result.flops)} MACs = {f_dec} (10^9) = {f_bin} '
        '(2^30, the paper\'s unit)' + (
            # the paper prints light models' FLOPs in binary M
            f' = {result.flops / 1e6:.1f}M (10^6) = '
            f'{result.flops / 2**20:.1f}M (2^20)'
            if result.flops < 2**30 else ''),
    ]
    if len(result.by_module) > 1:
        lines.append('by module (MACs): ' + ', '.join(
            f'{k} {_fmt(v)}' for k, v in result.by_module.items() if v))
    lines.append('by operator (MACs): ' + ', '.join(
        f'{k} {_fmt(v)}' for k, v in sorted(
            result.by_operator.items(), key=lambda kv: -kv[1])))
    if result.uncounted:
        lines.append('not counted (no FLOP handle in MMEngine; element-wise '
                     'ops, pooling, NMS...): ' + ', '.join(
                         f'{k} x{v}'
                         for k, v in sorted(result.uncounted.items())))
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmdet.registry import MODELS

    if args.imagenet_classifier and \
            cfg.model.backbone.get('type') == 'RLAMobileNetV2':
        import torch
        model = RLAMobileNetV2Classifier.from_backbone_cfg(
            cfg.model.backbone, num_classes=args.num_classes).eval()
        shape = tuple(args.shape or (224, 224))
        with torch.no_grad():
            result = complexity(model, torch.zeros(1, 3, *shape))
        title = (f'RLAMobileNetV2({model.backbone.describe()}) with the '
                 'ImageNet classifier (dropout, classifier.1 '
                 f'{model.backbone.stage_channels[-1]} -> {args.num_classes})')
    elif args.backbone or args.imagenet_classifier:
        backbone = MODELS.build(cfg.model.backbone)
        if args.imagenet_classifier:
            if not isinstance(backbone, RLAResNet):
                raise ValueError(
                    '--imagenet-classifier needs an RLA backbone, but the '
                    f'backbone of {args.config!r} is '
                    f'{type(backbone).__name__}.')
            shape = tuple(args.shape or (224, 224))
            result = classifier_complexity(backbone, shape, args.num_classes)
            title = (f'{type(backbone).__name__}({backbone.describe()}) with '
                     'the ImageNet classifier (last stage_bn, bn2, fc '
                     f'{backbone.stage_channels[-1] + backbone.rla_channel} '
                     f'-> {args.num_classes})')
        else:
            import torch
            shape = tuple(args.shape or (800, 1333))
            with torch.no_grad():
                result = complexity(backbone.eval(),
                                    torch.zeros(1, 3, *shape))
            title = f'backbone {type(backbone).__name__}'
    else:
        model = MODELS.build(cfg.model)
        shape = tuple(args.shape or (800, 1333))
        result, padded = detector_complexity(model, shape)
        title = (f'{type(model).__name__}, test-time forward up to the raw '
                 'head outputs')
        if padded != shape:
            title += (f' ({shape[0]} x {shape[1]} padded to {padded[0]} x '
                      f'{padded[1]} by the data_preprocessor)')
        shape = padded
    print(f'config: {args.config}')
    print(report(title, result, shape))
    if not (args.backbone or args.imagenet_classifier) and \
            'roi_head' in result.by_module:
        print('note: the roi_head count grows with the number of proposals '
              'the RPN keeps on this image (random weights, zero image).')
    return result


if __name__ == '__main__':
    main()
