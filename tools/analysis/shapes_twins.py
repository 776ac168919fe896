"""Train twin configs with several seeds; print mean and spread of their AP.

Usage: python tools/analysis/shapes_twins.py [--configs CONFIG ...]
       [--seeds S ...] [--work-dir DIR] [--data-root DIR] [--report-only]
       [--json OUT] [--cfg-options K=V ...]

Each (config, seed) pair is trained by ``tools/train.py`` into
``DIR/<config name>/seed<S>/`` with ``--cfg-options randomness.seed=S`` and
``--resume``, so a run that was stopped continues where it left off and a
finished run (its ``twins_result.json`` exists) is not trained again. The
configs of ``configs/shapes/`` validate once, after their last epoch, on the
val split (the same data as ``tools/test.py``'s test split): bbox and segm
AP are read from that validation, the time per iteration from MMEngine's log
(the median of the logged ``time`` values, which average the iterations of
each logging interval). Runs are sequential, one process at a time.

The default trains the main job's config (RLA-ResNet-18) and its plain
ResNet-18 twin with seeds 0, 1 and 2: six runs of about 8 to 15 minutes each
on 2 CPU cores.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIGS = [
    'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py',
    'configs/shapes/mask-rcnn_r18_fpn_shapes.py',
]
RESULT = 'twins_result.json'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train configs with several seeds (sequentially) and '
        'print mean and spread of bbox/segm AP and time per iteration.')
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS,
                        help='configs to train (default: the main job and '
                        'its plain ResNet-18 twin)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='seeds (default 0 1 2)')
    parser.add_argument('--work-dir', default='work_dirs/twins',
                        help='root of the runs (default work_dirs/twins)')
    parser.add_argument('--data-root', default='data/shapes',
                        help='shapes dataset, generated when missing '
                        '(default data/shapes, the configs\' own)')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing; report the finished runs')
    parser.add_argument('--json', help='also write the table to this file')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='K=V',
                        help='passed to every tools/train.py run')
    args = parser.parse_args(argv)
    for config in args.configs:
        if not osp.isfile(config):
            parser.error(f'--configs: {config!r} is not a file')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds: {args.seeds} repeats a seed')
    return args


def run_dir(work_dir, config, seed):
    name = osp.splitext(osp.basename(config))[0]
    return osp.join(work_dir, name, f'seed{seed}')


def read_log(directory):
    """bbox/segm AP of the last validation and the logged iteration times
    from the ``vis_data/scalars.json`` files of a work dir (a resumed run
    has several)."""
    metrics, times = {}, []
    for path in sorted(
            glob.glob(osp.join(directory, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if 'coco/bbox_mAP' in entry:
                    metrics = entry
                elif 'time' in entry and 'loss' in entry:
                    times.append(entry['time'])
    return metrics, times


def train(config, seed, directory, python, data_root, cfg_options):
    cmd = [
        python, osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
        directory, '--resume', '--data-root', data_root, '--cfg-options',
        f'randomness.seed={seed}'
    ] + list(cfg_options)
    print('== ' + ' '.join(cmd), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True)
    seconds = time.time() - start
    metrics, times = read_log(directory)
    if 'coco/bbox_mAP' not in metrics:
        raise RuntimeError(f'{directory}: the run ended without a validation '
                           '(no coco/bbox_mAP in its scalars.json)')
    result = dict(
        config=config,
        seed=seed,
        bbox_mAP=metrics['coco/bbox_mAP'],
        segm_mAP=metrics.get('coco/segm_mAP'),
        sec_per_iter=statistics.median(times),
        train_seconds=round(seconds, 1))
    with open(osp.join(directory, RESULT), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def spread(values):
    """'mean ± sample std [min, max]' of the values that are not None."""
    values = [v for v in values if v is not None]
    if not values:
        return '-'
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return (f'{statistics.mean(values):.3f} ± {std:.3f} '
            f'[{min(values):.3f}, {max(values):.3f}]')


def report(results):
    print('config                                 seed  bbox AP  segm AP  '
          's/iter  train time')
    for r in results:
        segm = '-' if r['segm_mAP'] is None else f'{r["segm_mAP"]:.3f}'
        t = int(r['train_seconds'])
        name = osp.splitext(osp.basename(r['config']))[0]
        print(f'{name:38s} {r["seed"]:4d}  {r["bbox_mAP"]:7.3f}  {segm:>7s}  '
              f'{r["sec_per_iter"]:6.3f}  {t // 60} min {t % 60:02d} s')
    print('mean ± sample std [min, max] over the seeds:')
    for config in dict.fromkeys(r['config'] for r in results):
        rs = [r for r in results if r['config'] == config]
        name = osp.splitext(osp.basename(config))[0]
        print(f'{name} ({len(rs)} seeds): '
              f'bbox AP {spread([r["bbox_mAP"] for r in rs])}; '
              f'segm AP {spread([r["segm_mAP"] for r in rs])}; '
              f's/iter {spread([r["sec_per_iter"] for r in rs])}; '
              'train min '
              f'{spread([r["train_seconds"] / 60 for r in rs])}')


def main(argv=None):
    args = parse_args(argv)
    python = sys.executable
    if not args.report_only and not osp.isfile(
            osp.join(args.data_root, 'annotations', 'instances_val.json')):
        subprocess.run([
            python,
            osp.join(ROOT, 'tools', 'misc', 'make_shapes_dataset.py'),
            args.data_root, '--overwrite'
        ], check=True)
    results = []
    for seed in args.seeds:  # seed-major: a cut-short sweep keeps pairs
        for config in args.configs:
            directory = run_dir(args.work_dir, config, seed)
            done = osp.join(directory, RESULT)
            if osp.isfile(done):
                with open(done) as f:
                    results.append(json.load(f))
            elif not args.report_only:
                os.makedirs(directory, exist_ok=True)
                results.append(
                    train(config, seed, directory, python, args.data_root,
                          args.cfg_options))
    if not results:
        sys.exit(f'no finished run under {args.work_dir}')
    results.sort(key=lambda r: (args.configs.index(r['config']), r['seed']))
    report(results)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
