"""Run a detector on images and save the drawn results and a JSON.

Usage:
    python tools/demo.py INPUT [INPUT ...] CONFIG CHECKPOINT
        [--out-dir DIR] [--device DEVICE] [--score-thr THR]
        [--batch-size N]

INPUT is an image file, a folder (its images, not recursive) or a glob
pattern such as ``'data/*/val/*.jpg'`` (quote it). Inference and drawing are
MMDetection's ``DetInferencer`` and its visualizer. Written under
``--out-dir`` (nothing elsewhere):

- ``vis/<image name>``: the image with the boxes, class names and scores
  (and masks for Mask R-CNN) of the predictions scoring at least
  ``--score-thr``;
- ``predictions.json``: those predictions, per image: ``label``,
  ``label_name``, ``score``, ``bbox`` (x1, y1, x2, y2 in pixels of the
  original image) and, for instance segmentation, ``mask`` (COCO RLE).
"""
import argparse
import glob
import json
import os
import os.path as osp
import runpy
from typing import Dict, List, Sequence

# An installed rla_mmdet, else the clone this script is in.
runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '_find_package.py'))

import torch  # noqa: E402
from mmdet.apis import DetInferencer  # noqa: E402

import rla_mmdet  # noqa: E402,F401  registers the RLA backbones
from rla_mmdet.checkpoint import (detector_unbuilt,  # noqa: E402
                                  fit_state_dict, get_state_dict, is_remote)
from rla_mmdet.engine import enable_checkpoint_io  # noqa: E402

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Detect objects in images with a trained detector')
    parser.add_argument(
        'inputs', nargs='+', metavar='INPUT',
        help='image files, folders or glob patterns')
    parser.add_argument('config', help='config file of the detector')
    parser.add_argument('checkpoint', help='checkpoint file (.pth) or URL')
    parser.add_argument(
        '--out-dir', default='outputs/demo',
        help='folder for vis/ and predictions.json (default outputs/demo)')
    parser.add_argument(
        '--device', default=None,
        help='cuda:0, cpu... (default: cuda:0 when CUDA is available, '
        'else cpu)')
    parser.add_argument(
        '--score-thr', type=float, default=0.3,
        help='draw and save the predictions scoring at least this '
        '(default 0.3)')
    parser.add_argument(
        '--batch-size', type=int, default=1,
        help='images per forward pass (default 1)')
    args = parser.parse_args(argv)
    if not 0.0 <= args.score_thr <= 1.0:
        parser.error(f'--score-thr must be in [0, 1], got {args.score_thr}.')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}.')
    return args


def find_images(inputs: Sequence[str]) -> List[str]:
    """The image files named by files, folders and glob patterns."""
    images = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(
                osp.join(item, name) for name in os.listdir(item)
                if name.lower().endswith(IMG_EXTENSIONS)
                and osp.isfile(osp.join(item, name)))
            what = f'folder {item!r}'
        elif osp.isfile(item):
            if not item.lower().endswith(IMG_EXTENSIONS):
                raise ValueError(f'input {item!r} is not an image file '
                                 f'({", ".join(IMG_EXTENSIONS)}).')
            found = [item]
            what = ''
        elif any(c in item for c in '*?['):
            found = sorted(
                p for p in glob.glob(item)
                if osp.isfile(p) and p.lower().endswith(IMG_EXTENSIONS))
            what = f'glob pattern {item!r}'
        else:
            raise FileNotFoundError(
                f'input {item!r} is neither a file, a folder nor a glob '
                'pattern that matches files.')
        if not found:
            raise FileNotFoundError(
                f'no images found in {what} (looked for '
                f'{", ".join(IMG_EXTENSIONS)}).')
        images += found
    names: Dict[str, str] = {}
    unique = []
    for path in images:
        name = osp.basename(path)
        if names.get(name) == path:
            continue  # named twice, e.g. by a folder and a glob
        if name in names:
            raise ValueError(
                f'{names[name]!r} and {path!r} have the same file name, so '
                'their drawings would overwrite each other in '
                '--out-dir/vis; run the demo on them with separate '
                '--out-dir folders.')
        names[name] = path
        unique.append(path)
    return unique


def _pick_device(device):
    if device is None:
        return 'cuda:0' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'--device {device} asks for CUDA, which this '
                         'machine does not have; use --device cpu.')
    return device


class _Inferencer(DetInferencer):
    """``DetInferencer`` that refuses a checkpoint not made for the model.

    MMEngine loads inference weights non-strictly, logging missing keys;
    a detector that keeps its random weights then draws random boxes.
    """

    def __init__(self, *args, checkpoint_name: str = '', **kwargs):
        self._checkpoint_name = checkpoint_name
        super().__init__(*args, **kwargs)

    def _load_weights_to_model(self, model, checkpoint, cfg):
        if checkpoint is not None:
            # The same strict check as the backbone loader's.
            fit_state_dict(
                get_state_dict(checkpoint, self._checkpoint_name), model,
                detector_unbuilt(model), repr(self._checkpoint_name),
                'the model of the config', lambda missing, unexpected:
                ' Pass the checkpoint trained with this config.')
        super()._load_weights_to_model(model, checkpoint, cfg)


    def _init_visualizer(self, cfg):
        # The inferencer writes the drawings to --out-dir/vis itself; the
        # config's storage backends (LocalVisBackend...) are not needed.
        if cfg.get('visualizer') is not None:
            cfg.visualizer.pop('vis_backends', None)
        return super()._init_visualizer(cfg)


def _instances(pred: dict, classes: Sequence[str], score_thr: float
               ) -> List[dict]:
    out = []
    for i, (label, score) in enumerate(zip(pred['labels'], pred['scores'])):
        if score < score_thr:
            continue
        item = dict(
            label=int(label),
            label_name=classes[label] if label < len(classes) else None,
            score=float(score),
            bbox=[float(v) for v in pred['bboxes'][i]])
        if 'masks' in pred:
            item['mask'] = pred['masks'][i]
        out.append(item)
    return out


def main(argv=None):
    args = parse_args(argv)
    # DetInferencer loads the checkpoint through MMEngine's loader: make it
    # the allow-list loader of rla_mmdet for this process.
    enable_checkpoint_io()
    for path, what in ((args.config, 'config'),
                       (args.checkpoint, 'checkpoint')):
        if not (what == 'checkpoint' and is_remote(path)) and \
                not osp.isfile(path):
            raise FileNotFoundError(f'{what} file {path!r} does not exist.')
    images = find_images(args.inputs)
    device = _pick_device(args.device)

    inferencer = _Inferencer(
        model=args.config,
        weights=args.checkpoint,
        device=device,
        show_progress=len(images) > 1,
        checkpoint_name=args.checkpoint)
    results = inferencer(
        images,
        batch_size=args.batch_size,
        out_dir=args.out_dir,
        pred_score_thr=args.score_thr,
        no_save_pred=True)
    classes = list(inferencer.model.dataset_meta['classes'])
    records = []
    for path, pred in zip(images, results['predictions']):
        records.append(
            dict(
                image=path,
                vis=osp.join('vis', osp.basename(path)),
                instances=_instances(pred, classes, args.score_thr)))
    summary = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        score_thr=args.score_thr,
        classes=classes,
        images=records)
    out_file = osp.join(args.out_dir, 'predictions.json')
    with open(out_file, 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=1)
    total = sum(len(r['instances']) for r in records)
    print(f'{len(images)} image(s), {total} prediction(s) with score >= '
          f'{args.score_thr}: drawings in {osp.join(args.out_dir, "vis")}, '
          f'JSON in {out_file}')
    return summary


if __name__ == '__main__':
    main()
