"""Write the synthetic shapes dataset (COCO layout) into a directory.

Usage: python tools/misc/make_shapes_dataset.py OUT_DIR [--num-train N]
       [--num-val N] [--image-size PX] [--seed S] [--overwrite]

The same arguments always give the same files; see
:func:`rla_mmdet.tools_support.shapes.make_shapes_dataset`.
"""
import argparse
import os.path as osp
import runpy
import sys

# An installed rla_mmdet, else the clone this script is in.
runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '..', '_find_package.py'))

from rla_mmdet.tools_support.shapes import (SHAPE_CLASSES,  # noqa: E402
                                            make_shapes_dataset)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the synthetic shapes dataset (COCO layout): '
        'OUT_DIR/annotations/instances_{train,val}.json, OUT_DIR/train/, '
        'OUT_DIR/val/.')
    parser.add_argument('out_dir', help='directory to write into')
    parser.add_argument('--num-train', type=int, default=400,
                        help='number of training images (default 400)')
    parser.add_argument('--num-val', type=int, default=100,
                        help='number of validation images (default 100)')
    parser.add_argument('--image-size', type=int, default=128,
                        help='side of the square images in px (default 128)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default 0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the annotation files of an existing '
                        'dataset in OUT_DIR')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        paths = make_shapes_dataset(
            args.out_dir,
            num_train=args.num_train,
            num_val=args.num_val,
            image_size=args.image_size,
            seed=args.seed,
            overwrite=args.overwrite)
    except (ValueError, TypeError, FileExistsError,
            NotADirectoryError) as e:
        sys.exit(f'error: {e}')
    print(f'wrote {args.num_train} train and {args.num_val} val images of '
          f'{len(SHAPE_CLASSES)} classes ({", ".join(SHAPE_CLASSES)}):')
    for key, path in paths.items():
        print(f'  {key}: {path}')
    return paths


if __name__ == '__main__':
    main()
