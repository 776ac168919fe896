"""Test (and evaluate) a detector: MMDetection's tools/test.py, with RLA.

Usage: python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
       [--show-dir DIR] [--data-root DIR] [--cfg-options K=V ...]
       [--launcher {none,pytorch,slurm,mpi}]

COCO mAP comes from the config's evaluator (mmdet's CocoMetric: bbox, and
segm for Mask R-CNN). ``--cfg-options test_evaluator.classwise=True`` prints
per-class AP; ``test_evaluator.format_only=True
test_evaluator.outfile_prefix=DIR/results`` writes test-dev JSON files.
"""
import argparse
import os.path as osp
import runpy

# An installed rla_mmdet, else the clone this script is in.
runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '_find_package.py'))

from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import rla_mmdet  # noqa: E402,F401
from rla_mmdet.checkpoint import is_remote  # noqa: E402
from rla_mmdet.engine import enable_checkpoint_io  # noqa: E402
from rla_mmdet.tools_support.args import (apply_common_args,  # noqa: E402
                                          parse_tool_args)
from rla_mmdet.tools_support.config import (check_model_config,  # noqa: E402
                                            load_config)
from rla_mmdet.tools_support.data_checks import check_datasets  # noqa: E402
from rla_mmdet.tools_support.distributed import (  # noqa: E402
    setup_distributed, teardown_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument(
        '--work-dir', help='the dir to save the evaluation metrics and logs')
    parser.add_argument(
        '--out', help='dump the predictions to this pickle file (.pkl)')
    parser.add_argument(
        '--show-dir', help='save images painted with the predictions in '
        'this dir (inside the run\'s timestamped log dir)')
    parser.add_argument(
        '--data-root', help='dataset root that replaces the config\'s '
        'data_root')
    parser.add_argument(
        '--skip-data-check', action='store_true',
        help='do not read the annotation file and check the images first')
    return parse_tool_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    # The allow-list loader (one-sentence errors for a bad checkpoint) for
    # this process, also for configs that do not list CheckpointIOHook.
    enable_checkpoint_io()
    if not is_remote(args.checkpoint) and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'checkpoint {args.checkpoint!r} does not exist; pass the .pth '
            'file written by tools/train.py or a published checkpoint (a '
            'path or a URL).')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must name a .pkl file, got {args.out!r}.')
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    apply_common_args(cfg, args, args.config)
    cfg.load_from = args.checkpoint
    check_model_config(cfg, split='test')
    if not args.skip_data_check:
        check_datasets(cfg, splits=('test', ))
    # The test run loads every weight from the checkpoint: the backbone's
    # pretrained init is never called, so a missing ImageNet file is fine.
    if args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook
        args.show, args.wait_time = False, 0
        cfg = trigger_visualization_hook(cfg, args)
    setup_distributed(cfg, args.launcher)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    metrics = runner.test()
    teardown_distributed()
    return metrics


if __name__ == '__main__':
    main()
