"""Train a detector: MMDetection's tools/train.py, with RLA registered.

Usage: python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
       [--amp] [--auto-scale-lr] [--data-root DIR] [--cfg-options K=V ...]
       [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import os.path as osp
import runpy

# An installed rla_mmdet, else the clone this script is in.
runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '_find_package.py'))

from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import rla_mmdet  # noqa: E402,F401  registers the RLA backbones
from rla_mmdet.checkpoint.safetensors_io import (  # noqa: E402
    check_resume_source)
from rla_mmdet.engine import enable_checkpoint_io  # noqa: E402
from rla_mmdet.tools_support.args import (apply_common_args,  # noqa: E402
                                          parse_tool_args)
from rla_mmdet.tools_support.config import (check_model_config,  # noqa: E402
                                            check_pretrained, load_config)
from rla_mmdet.tools_support.data_checks import check_datasets  # noqa: E402
from rla_mmdet.tools_support.distributed import (  # noqa: E402
    setup_distributed, teardown_distributed)
from rla_mmdet.tools_support.work_dir import (  # noqa: E402
    auto_resume_fallback, protect_work_dir)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision (fp16 on GPU, bf16 on CPU)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate by the total batch size against '
        'auto_scale_lr.base_batch_size of the config')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint (a .pth a run saved: a '
        '.safetensors holds weights only and is refused), or (no value) from '
        'the latest checkpoint in the work dir')
    parser.add_argument(
        '--data-root',
        help='dataset root that replaces the config\'s data_root (COCO '
        'layout: annotations/, train2017/, val2017/)')
    parser.add_argument(
        '--skip-data-check', action='store_true',
        help='do not read the annotation files and check the images before '
        'training (saves a few seconds on COCO-sized datasets)')
    return parse_tool_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    # Atomic checkpoint writes and the allow-list loader for this process,
    # also for configs that do not list CheckpointIOHook.
    enable_checkpoint_io()
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    apply_common_args(cfg, args, args.config)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(
                '--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                f'config {args.config!r}; add auto_scale_lr = '
                'dict(base_batch_size=16) (the total batch the lr is for).')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = auto_resume_fallback(cfg.work_dir)
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if cfg.get('resume'):  # weights only: a .safetensors cannot resume
        check_resume_source(cfg.get('load_from'))

    protect_work_dir(cfg.work_dir, cfg.get('resume', False))
    check_model_config(cfg)
    if not args.skip_data_check:
        check_datasets(
            cfg, splits=('train', 'val') if cfg.get('val_cfg') else
            ('train', ))
    check_pretrained(
        cfg, resuming=bool(cfg.get('resume')) or bool(cfg.get('load_from')))
    setup_distributed(cfg, args.launcher)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    main()
