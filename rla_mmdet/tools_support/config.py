"""Reading a config for ``tools/``, and the mistakes caught before a run.

:func:`load_config` applies ``--cfg-options`` and ``--data-root`` (which
rewrites every dataset root and evaluator annotation file);
:func:`check_pretrained` stops a training run whose local pretrained file is
missing, and :func:`check_model_config` an unknown backbone type or a head
whose ``num_classes`` disagrees with the dataset, before any data or weights
are loaded.
"""
import os.path as osp
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from ..checkpoint import is_remote
from ..zoo import where_to_get
from .data_checks import dataset_classes, iter_datasets


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
        if isinstance(ckpt, str) and not is_remote(ckpt) \
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
