"""Plot training curves (loss, mAP...) from MMEngine's scalar logs.

Usage:
    python tools/analysis/plot_curves.py WORK_DIR_OR_JSON [...]
        [--keys loss bbox_mAP] [--out curves.png] [--title TITLE]

Each input is a work dir of tools/train.py (its runs'
``<timestamp>/vis_data/scalars.json``, joined in time order), a run dir or a
JSON log; each becomes one line per plot. Each key gets its own plot against
the training iteration; ``bbox_mAP`` also matches ``coco/bbox_mAP``.
"""
import argparse
import os
import os.path as osp
import runpy

# An installed rla_mmdet, else the clone this script is in.
runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '..', '_find_package.py'))

import matplotlib  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rla_mmdet.analysis import load_curves  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Plot loss / mAP curves from MMEngine scalar logs')
    parser.add_argument(
        'logs', nargs='+', metavar='WORK_DIR_OR_JSON',
        help='work dirs, run dirs or scalars.json files')
    parser.add_argument(
        '--keys', nargs='+', default=['loss', 'bbox_mAP'],
        help='logged keys to plot (default: loss bbox_mAP)')
    parser.add_argument(
        '--legend', nargs='+',
        help='one name per input (default: the input paths)')
    parser.add_argument('--title', help='title of the figure')
    parser.add_argument(
        '--out', default='curves.png',
        help='image file to write (default curves.png)')
    args = parser.parse_args(argv)
    if args.legend is not None and len(args.legend) != len(args.logs):
        parser.error(f'--legend needs one name per input: got '
                     f'{len(args.legend)} names for {len(args.logs)} inputs.')
    if not args.out.lower().endswith('.png'):
        parser.error(f'--out must name a .png file, got {args.out!r}.')
    return args


def plot(curves_per_log, names, keys, out, title=None) -> None:
    """Draw one axis per key, one line per log, and save to ``out``."""
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(8, 3 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for name, curves in zip(names, curves_per_log):
            for curve in curves[key]:
                label = name if curve.key == key else f'{name} {curve.key}'
                marker = 'o' if len(curve.x) < 30 else None
                ax.plot(curve.x, curve.y, label=label, marker=marker)
        ax.set_ylabel(key)
        ax.set_xlabel('iteration')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_dir = osp.dirname(out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    curves = [load_curves(path, args.keys) for path in args.logs]
    plot(curves, args.legend or args.logs, args.keys, args.out, args.title)
    for path, per_key in zip(args.logs, curves):
        for key in args.keys:
            for c in per_key[key]:
                print(f'{path}: {c.key}: {len(c.x)} points, iterations '
                      f'{c.x[0]}..{c.x[-1]}, last value {c.y[-1]:.4g}')
    print(f'saved {args.out}')


if __name__ == '__main__':
    main()
