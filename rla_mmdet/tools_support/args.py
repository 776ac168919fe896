"""The command-line options ``tools/train.py`` and ``tools/test.py`` share
with MMDetection's tools, and how they apply to a config; the ``--format``
option of the tools that write a checkpoint."""
import argparse
import os
import os.path as osp
from typing import Any, Optional, Sequence

from mmengine.config import Config, DictAction

from ..converters import FORMATS


def parse_tool_args(parser: argparse.ArgumentParser,
                    argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Add the options ``tools/train.py`` and ``tools/test.py`` share with
    MMDetection's (``--cfg-options``, ``--launcher``, ``--local-rank``) and
    parse ``argv``; ``LOCAL_RANK`` is set from ``--local-rank`` for launchers
    that pass it as an argument."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (see MMEngine DictAction)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def apply_common_args(cfg: Config, args: Any, config_path: str) -> None:
    """``--launcher`` and ``--work-dir`` as MMDetection's tools apply them."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(config_path))[0])


def add_format_arg(parser: argparse.ArgumentParser, output: str) -> None:
    """``--format pth|safetensors`` for a tool that writes a checkpoint to
    its argument ``output`` (default: the format of that name's
    extension)."""
    parser.add_argument(
        '--format', choices=FORMATS, default=None,
        help=f'file format of the output (default: safetensors for {output} '
        'ending in .safetensors, else pth)')
