"""RLA backbone vs mmdet's ResNet of the same depth: time, memory, FLOPs.

Examples:
    python tools/analysis/benchmark.py                       # RLA-R50, CPU
    python tools/analysis/benchmark.py --depth 101 --variant eca
    python tools/analysis/benchmark.py --device cuda --json out.json
    python tools/analysis/benchmark.py --tasks eval --shape 512 512
    python tools/analysis/benchmark.py --tasks profile   # where the time goes

Both models run interleaved in this process; ratios are RLA / ResNet.
"""
import argparse
import json
import logging
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

from rla_mmdet.benchmark import run  # noqa: E402

TASKS = ('eval', 'train', 'memory', 'flops', 'detector', 'profile')
DEFAULT_TASKS = TASKS[:-1]  # the profile is asked for by name


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--depth', type=int, default=50, choices=[18, 34, 50, 101,
                                                              152])
    p.add_argument('--variant', choices=['rla', 'eca'], default='rla',
                   help="'eca' benchmarks RLAECANet against plain ResNet")
    p.add_argument('--shape', type=int, nargs=2, default=[800, 1216],
                   metavar=('H', 'W'), help='eval/detector input size')
    p.add_argument('--train-shape', type=int, nargs=2, default=[512, 512],
                   metavar=('H', 'W'))
    p.add_argument('--train-batch', type=int, default=2)
    p.add_argument('--repeat', type=int, default=10,
                   help='timed eval forwards per model')
    p.add_argument('--train-repeat', type=int, default=6,
                   help='timed training steps per model')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--channels-last', action='store_true',
                   help='run both models in channels_last memory format')
    p.add_argument('--literal', action='store_true',
                   help='run the RLA backbone with the literal forward of the '
                   'spec (the straightforward implementation) instead of the '
                   'optimised one')
    p.add_argument('--tasks', nargs='+', choices=TASKS,
                   default=list(DEFAULT_TASKS),
                   help='what to measure (default: all but profile, which '
                   'lists the operators of a training step that cost RLA '
                   'its extra time)')
    p.add_argument('--json', help='write the results to this JSON file')
    args = p.parse_args(argv)
    for name in ('repeat', 'train_repeat', 'train_batch'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1')
    if min(args.shape + args.train_shape) < 32:
        p.error('--shape and --train-shape must be at least 32 pixels')
    return args


def main(argv=None):
    args = parse_args(argv)
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)
    results = run(
        depth=args.depth, variant=args.variant, shape=args.shape,
        train_shape=args.train_shape, train_batch=args.train_batch,
        repeat=args.repeat, train_repeat=args.train_repeat,
        device=args.device, channels_last=args.channels_last,
        literal=args.literal, tasks=args.tasks)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'results written to {args.json}')
    return results


if __name__ == '__main__':
    main()
