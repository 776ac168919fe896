"""Checks of a config's COCO-style datasets before a run starts.

MMDetection finds most dataset problems late: a missing image stops training
inside a data-loader worker halfway through an epoch, a malformed JSON file
raises a bare ``JSONDecodeError``, degenerate boxes are dropped without a
word, and an empty validation split fails after the first training epoch.
:func:`check_datasets` reads the annotation files once, before the Runner is
built, and reports each problem in one sentence naming the file (and image).
"""
import json
import os.path as osp
import warnings
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config


class DatasetWarning(UserWarning):
    """Annotations that MMDetection will skip."""


def iter_datasets(cfg: Config) -> Iterator[Tuple[str, Any]]:
    """``(split, dataset config)`` for every dataset of the data loaders.

    Wrappers (``RepeatDataset``, ``ClassBalancedDataset``... with a
    ``dataset``) come before the datasets they wrap, a ``ConcatDataset``
    before its ``datasets``.
    """

    def walk(split: str, dataset: Any) -> Iterator[Tuple[str, Any]]:
        if not isinstance(dataset, dict):
            return
        yield split, dataset
        yield from walk(split, dataset.get('dataset'))
        for inner in dataset.get('datasets') or ():
            yield from walk(split, inner)

    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            yield from walk(split, loader.get('dataset'))


def _coco_datasets(cfg: Config) -> Iterator[Tuple[str, Any]]:
    """The datasets of :func:`iter_datasets` that read an annotation file."""
    for split, dataset in iter_datasets(cfg):
        if 'ann_file' in dataset:
            yield split, dataset


def _paths(dataset: dict) -> Tuple[str, str]:
    root = dataset.get('data_root') or ''
    ann = dataset['ann_file']
    ann = ann if osp.isabs(ann) else osp.join(root, ann)
    prefix = (dataset.get('data_prefix') or {}).get('img', '')
    img_dir = prefix if osp.isabs(prefix) else osp.join(root, prefix)
    return ann, img_dir


def load_coco_json(ann_file: str, split: str = '') -> dict:
    """Read and sanity-check a COCO annotation file."""
    where = f' ({split} split)' if split else ''
    if not osp.isfile(ann_file):
        raise FileNotFoundError(
            f'annotation file {ann_file!r}{where} does not exist; check '
            'data_root / ann_file in the config or pass --data-root.')
    try:
        with open(ann_file, encoding='utf-8') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f'annotation file {ann_file!r}{where} is not valid JSON: '
            f'{exc}') from None
    if not isinstance(data, dict) or not isinstance(data.get('images'),
                                                    list):
        raise ValueError(
            f'annotation file {ann_file!r}{where} is not in COCO format: it '
            'needs an "images" list (and "annotations", "categories").')
    for key in ('annotations', 'categories'):
        if not isinstance(data.get(key, []), list):
            raise ValueError(f'annotation file {ann_file!r}{where}: "{key}" '
                             'must be a list.')
    return data


def check_coco_split(ann_file: str,
                     img_dir: str,
                     split: str = '',
                     check_images: bool = True) -> Dict[str, int]:
    """Check one split; return counts of images and annotations.

    Raises:
        FileNotFoundError: the annotation file or listed images are missing.
        ValueError: malformed JSON, not COCO, or no images in the split.

    Warns:
        DatasetWarning: boxes with zero or negative width or height, which
            MMDetection's ``CocoDataset`` skips, naming the images.
    """
    data = load_coco_json(ann_file, split)
    where = f' ({split} split)' if split else ''
    images = data['images']
    if not images:
        raise ValueError(
            f'annotation file {ann_file!r}{where} lists no images; the '
            f'{split or "dataset"} split must not be empty.')
    names = {}
    for img in images:
        if not isinstance(img, dict) or 'id' not in img or \
                'file_name' not in img:
            raise ValueError(
                f'annotation file {ann_file!r}{where}: every image needs '
                f'"id" and "file_name", got {str(img)[:80]}.')
        names[img['id']] = img['file_name']
    if check_images:
        missing = [n for n in names.values()
                   if not osp.isfile(osp.join(img_dir, n))]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} of the {len(names)} images listed in '
                f'{ann_file!r}{where} are missing under {img_dir!r}: '
                f'{", ".join(missing[:5])}; restore them or remove them from '
                'the annotation file.')
    degenerate: Dict[str, int] = {}
    for ann in data.get('annotations', []):
        bbox = ann.get('bbox') if isinstance(ann, dict) else None
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ValueError(
                f'annotation file {ann_file!r}{where}: annotation '
                f'{ann.get("id") if isinstance(ann, dict) else ann!r} has no '
                '[x, y, w, h] "bbox".')
        if bbox[2] <= 0 or bbox[3] <= 0:
            name = names.get(ann.get('image_id'), f'image_id '
                             f'{ann.get("image_id")}')
            degenerate[name] = degenerate.get(name, 0) + 1
    if degenerate:
        listed = ', '.join(f'{n} ({c})' for n, c in
                           list(degenerate.items())[:5])
        warnings.warn(
            f'{sum(degenerate.values())} boxes with zero or negative width or '
            f'height in {ann_file!r}{where} will be skipped in training: '
            f'{listed}' + (' ...' if len(degenerate) > 5 else ''),
            DatasetWarning, stacklevel=2)
    return dict(images=len(images),
                annotations=len(data.get('annotations', [])),
                degenerate=sum(degenerate.values()))


def check_datasets(cfg: Config,
                   splits: Tuple[str, ...] = ('train', 'val'),
                   check_images: bool = True) -> Dict[str, Dict[str, int]]:
    """Check the COCO-style datasets of ``cfg`` for the given splits.

    Returns:
        ``{split: {'images': n, 'annotations': n, 'degenerate': n}}``,
        summed over the datasets of a split (a ``ConcatDataset``).
    """
    result: Dict[str, Dict[str, int]] = {}
    for split, dataset in _coco_datasets(cfg):
        if split not in splits:
            continue
        ann, img_dir = _paths(dataset)
        counts = check_coco_split(ann, img_dir, split, check_images)
        total = result.setdefault(split, dict.fromkeys(counts, 0))
        for key, value in counts.items():  # several datasets of a split add
            total[key] += value
    return result


def dataset_classes(cfg: Config, split: str = 'train') -> Optional[List[str]]:
    """Class names the dataset of ``split`` will use, if they can be told.

    ``metainfo=dict(classes=...)`` in the config wins; otherwise the
    dataset class's own ``METAINFO`` (80 classes for ``CocoDataset``).
    """
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    for name, dataset in _coco_datasets(cfg):
        if name != split:
            continue
        classes = (dataset.get('metainfo') or {}).get('classes')
        if classes:
            return list(classes)
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        cls = DATASETS.get(dataset.get('type', 'CocoDataset'))
        meta = getattr(cls, 'METAINFO', None) or {}
        return list(meta['classes']) if 'classes' in meta else None
    return None
