"""Make a checkpoint ready to publish, as MMDetection's tool of this name.

Usage:
    python tools/model_converters/publish_model.py IN_FILE OUT_FILE \
        [--save-keys meta state_dict] [--format pth|safetensors]

Keeps only ``meta`` and ``state_dict`` of IN_FILE (the optimizer, parameter
schedulers and message hub of a training checkpoint are dropped), and
writes OUT_FILE's stem + ``-<first 8 hex digits of the sha256>.pth`` (or
``.safetensors`` with ``--format safetensors``, a file with no pickle in
it), then prints the file's full sha256. The hash in the name is what the
checkpoint loader checks a download against, so the URL of the published
file verifies itself. IN_FILE is read by the checked loader (a path or a
URL, ``.pth`` or ``.safetensors``).
"""
import argparse
import os.path as osp
import runpy

runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '..', '_find_package.py'))

from rla_mmdet.converters import publish_checkpoint  # noqa: E402
from rla_mmdet.tools_support.args import add_format_arg  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Process a checkpoint to be published')
    parser.add_argument('in_file', help='input checkpoint filename')
    parser.add_argument(
        'out_file', help='output checkpoint filename; -<sha256 prefix> is '
        'added before the extension')
    parser.add_argument(
        '--save-keys', nargs='+', default=['meta', 'state_dict'],
        help='keys of the checkpoint to keep (default: meta state_dict)')
    add_format_arg(parser, 'an out_file')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    path, digest, dropped = publish_checkpoint(
        args.in_file, args.out_file, args.save_keys, args.format)
    if dropped:
        print(f'dropped {", ".join(dropped)} (not in --save-keys)')
    print(f'The published model is saved at {path}')
    print(f'sha256 {digest}')
    return path, digest


if __name__ == '__main__':
    main()
