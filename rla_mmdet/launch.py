"""What ``tools/train.py`` and ``tools/test.py`` do before MMEngine's Runner.

The scripts stay thin: they read a config, apply the command-line switches
that MMDetection's own tools have, and hand over to ``Runner``. The few
things added here are checks that a user would otherwise discover late
(a missing pretrained file after the data loaders were built, a work dir
holding another run's checkpoints) and the set-up that lets the distributed
path run on machines without GPUs (gloo process group, DDP without
``device_ids``).
"""
import argparse
import glob
import logging
import os
import os.path as osp
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from .data_checks import dataset_classes, iter_datasets
from .zoo import where_to_get

_REMOTE_PREFIXES = ('http://', 'https://', 'torchvision://', 'open-mmlab://',
                    'mmcls://', 'mmpretrain://', 's3://', 'pavi://')


@MODEL_WRAPPERS.register_module()
class AnyDeviceDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps CPU models.

    MMEngine's Runner always passes ``device_ids=[LOCAL_RANK]``, which
    PyTorch refuses for a model on the CPU; this wrapper drops it there, so
    ``tools/dist_train.sh`` runs N CPU processes with the gloo backend.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        params = list(module.parameters())
        if params and params[0].device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                data_root: Optional[str] = None) -> Config:
    """Read a config, apply ``--cfg-options`` and ``--data-root``."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'config file {path!r} does not exist; pass the path of a file '
            'under configs/, e.g. configs/faster_rcnn/'
            'faster-rcnn_rla-r50_fpn_1x_coco.py.')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root is not None:
        set_data_root(cfg, data_root)
    return cfg


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataset and evaluator of ``cfg`` at ``data_root``.

    The configs of MMDetection compose paths from ``data_root`` when the file
    is read, so ``--cfg-options data_root=...`` has no effect on them; this
    rewrites the dataset roots and the evaluators' annotation files (paths
    that start with the old root) instead.
    """
    if not isinstance(data_root, str) or not data_root:
        raise ValueError(f'--data-root must be a directory, got {data_root!r}.')
    if not osp.isdir(data_root):
        raise FileNotFoundError(
            f'--data-root {data_root!r} is not a directory; it should hold '
            'annotations/ and the image folders (COCO layout).')
    old = cfg.get('data_root')
    new = data_root if data_root.endswith('/') else data_root + '/'
    for _, dataset in iter_datasets(cfg):
        if 'data_root' in dataset:
            dataset.data_root = new
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key)
        if not evaluators:
            continue
        if not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        for ev in evaluators:
            ann = ev.get('ann_file')
            if isinstance(ann, str) and old and ann.startswith(old):
                ev.ann_file = new + ann[len(old):].lstrip('/')
    cfg.data_root = new


def _pretrained_inits(node: Any, path: str = 'model'
                      ) -> Iterator[Tuple[str, dict]]:
    if isinstance(node, dict):
        init = node.get('init_cfg')
        inits = init if isinstance(init, list) else [init]
        for i, item in enumerate(inits):
            if isinstance(item, dict) and item.get('type') == 'Pretrained':
                yield f'{path}.init_cfg', item
        for key, value in node.items():
            if key != 'init_cfg':
                yield from _pretrained_inits(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_inits(value, f'{path}[{i}]')


def missing_pretrained(cfg: Config) -> List[Tuple[str, str]]:
    """``(config key, file)`` of every local pretrained file that is absent."""
    result = []
    for key, init in _pretrained_inits(cfg.get('model', {})):
        ckpt = init.get('checkpoint')
        if isinstance(ckpt, str) and not ckpt.startswith(_REMOTE_PREFIXES) \
                and not osp.isfile(osp.expanduser(ckpt)):
            result.append((key, ckpt))
    return result


def check_pretrained(cfg: Config, resuming: bool) -> None:
    """Refuse to start training when a pretrained file is missing.

    A config of the paper's recipe starts from the published ImageNet
    weights; training silently from random weights would cost a 12-epoch
    run for a far lower AP. When the run resumes or loads a full checkpoint,
    the initial weights are replaced anyway, so the init is dropped instead.

    Raises:
        FileNotFoundError: naming the file, where it is published and how to
            train from scratch.
    """
    missing = missing_pretrained(cfg)
    if not missing:
        return
    if resuming:
        for key, ckpt in missing:
            print_log(
                f'{key}: {ckpt} is absent; the weights come from the '
                'checkpoint being loaded, so the pretrained init is skipped.',
                logger='current')
            _drop_init(cfg, key)
        return
    key, ckpt = missing[0]
    where = where_to_get(ckpt)
    raise FileNotFoundError(
        f'pretrained weights {ckpt!r} ({key}) do not exist, so training '
        'would start from random weights. ' +
        (where + ' Put the file at that path. ' if where else
         'Put the checkpoint at that path. ') +
        f'To train from scratch instead, pass --cfg-options {key}=None '
        '(expect a much lower AP for the same schedule).')


def _drop_init(cfg: Config, key: str) -> None:
    node = cfg
    parts = key.split('.')
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = None


def checkpoints_in(work_dir: str) -> List[str]:
    """Checkpoint files a previous run left in ``work_dir``."""
    if not work_dir or not osp.isdir(work_dir):
        return []
    found = glob.glob(osp.join(work_dir, '*.pth'))
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        found.append(osp.join(work_dir, 'last_checkpoint'))
    return sorted(found)


def auto_resume_fallback(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (no path) should use when MMEngine's
    pointer to it is broken, else ``None``.

    MMEngine writes ``WORK_DIR/last_checkpoint`` (the path of the latest
    checkpoint) in place, after the checkpoint itself: a run killed during
    that write leaves it empty or cut short, and MMEngine would then try to
    resume from that string. The checkpoints themselves are written
    atomically, so the newest ``*.pth`` of the work dir is complete: it is
    returned, with a warning, when the pointer is empty or names a file that
    does not exist.

    Raises:
        FileNotFoundError: the pointer is broken and the work dir holds no
            checkpoint to fall back on.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None  # MMEngine starts afresh and says so
    with open(pointer) as f:
        named = f.read().strip()
    if named and osp.isfile(named):
        return None
    found = [f for f in checkpoints_in(work_dir) if f.endswith('.pth')]
    if not found:
        raise FileNotFoundError(
            f'{pointer} names {named!r}, which does not exist, and '
            f'{work_dir!r} holds no .pth checkpoint to resume from; pass '
            '--resume PATH, or delete that file to start the run afresh.')
    newest = max(found, key=osp.getmtime)
    print_log(
        f'{pointer} names {named!r}, which does not exist (a run stopped '
        f'while writing it?); resuming from the newest checkpoint {newest}.',
        logger='current', level=logging.WARNING)
    return newest


def protect_work_dir(work_dir: str, resume: bool) -> None:
    """Refuse to train over another run's checkpoints without ``--resume``.

    MMEngine names checkpoints ``epoch_N.pth`` / ``iter_N.pth``: a new run in
    the same work dir would overwrite them one by one. A run with
    ``load_from`` (weights only, not resuming) is a new run too and writes
    the same names, so it gets no exception.
    """
    if resume:
        return
    found = checkpoints_in(work_dir)
    if found:
        raise FileExistsError(
            f'work dir {work_dir!r} already holds checkpoints of another run '
            f'({", ".join(osp.basename(f) for f in found[:3])}); pass '
            '--resume to continue that run, or choose a new --work-dir.')


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Let ``--launcher pytorch`` run without GPUs.

    On a machine without CUDA the process group is created here with the
    gloo backend (MMEngine would ask for NCCL and call
    ``torch.cuda.set_device``) and the model is wrapped by
    :class:`AnyDeviceDistributedDataParallel`.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(
            f'--launcher {launcher} needs GPUs (MMEngine sets the CUDA device '
            'of each process); on a machine without GPUs use '
            'tools/dist_train.sh / dist_test.sh (--launcher pytorch), which '
            'run CPU processes with the gloo backend.')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='AnyDeviceDistributedDataParallel')


def teardown_distributed() -> None:
    """End a distributed run cleanly once every rank is done.

    Without this the gloo process group is torn down by the interpreter's
    exit, where a rank that exits while its peer still talks to it can abort
    ("terminate called without an active exception") and turn a finished run
    into a failed job. A barrier first, so no rank leaves early.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


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


def _heads_num_classes(node: Any, path: str = 'model'
                       ) -> Iterator[Tuple[str, int]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'num_classes' and path.endswith('_head') and \
                    not path.endswith('rpn_head') and isinstance(value, int):
                yield f'{path}.num_classes', value
            else:
                yield from _heads_num_classes(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _heads_num_classes(value, f'{path}[{i}]')


def check_model_config(cfg: Config, split: str = 'train') -> None:
    """Catch config mistakes before any data or weights are loaded.

    Raises:
        ValueError: an unknown backbone type (the message lists the
            registered RLA backbones and the closest name), or a head whose
            ``num_classes`` disagrees with the classes of the ``split``
            dataset.
    """
    import difflib

    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = cfg.get('model') or {}
    backbone = model.get('backbone') or {}
    btype = backbone.get('type')
    if isinstance(btype, str) and MODELS.get(btype) is None:
        rla = ['RLAResNet', 'RLAECANet', 'RLAMobileNetV2']
        close = difflib.get_close_matches(
            btype, rla + ['RLA_ResNet'] + list(MODELS.module_dict), n=1)
        raise ValueError(
            f'unknown backbone type {btype!r} in model.backbone; the '
            f'registered RLA backbones are {", ".join(rla)} (and the legacy '
            "mmdetection 2.x name 'RLA_ResNet')" +
            (f'; did you mean {close[0]!r}?' if close else '.'))
    classes = dataset_classes(cfg, split)
    if not classes:
        return
    for key, n in _heads_num_classes(model):
        if n != len(classes):
            shown = ', '.join(map(str, classes[:5])) + (
                ', ...' if len(classes) > 5 else '')
            raise ValueError(
                f'{key}={n} but the {split} dataset has {len(classes)} '
                f'classes ({shown}); set {key}={len(classes)} or give the '
                'dataset metainfo=dict(classes=...) with the classes the '
                'model should predict.')
