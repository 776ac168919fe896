"""Convert the authors' checkpoints into clean MMDetection 3.x files.

Two kinds of files were published with the paper (listed in
:mod:`rla_mmdet.zoo`):

- ImageNet checkpoints (``resnet50_rla_2283.pth.tar``...): written by a
  ``DistributedDataParallel`` training script, a dict with ``epoch``,
  ``arch``, ``state_dict`` (keys prefixed ``module.``), ``best_acc1`` and
  ``optimizer``; the state dict holds the classifier (``bn2``, ``fc``) and
  the norm of the final hidden-state update (``stage_bns.3.{n-1}``).
  :func:`imagenet_to_mmdet` keeps the backbone only.
- Detector checkpoints of mmdetection 2.x (``faster_rcnn_r50rla_fpn_1x_coco
  _388.pth``...): ``state_dict`` with ``backbone.``, ``neck.``, ``rpn_head.``
  and ``roi_head.`` (or RetinaNet's ``bbox_head.``) keys, ``meta`` with
  ``mmdet_version``, ``CLASSES`` and the config text, maybe ``optimizer``.
  :func:`mmdet2_to_mmdet3` writes the MMDetection 3.x layout.

MMDetection 3.x kept the module names of the parts these detectors use
(``FPN``, ``RPNHead``, ``StandardRoIHead`` with ``Shared2FCBBoxHead`` and
``FCNMaskHead``, ``RetinaHead``), and the RLA backbone keeps the authors'
names, so the keys carry over one to one. The converter does not trust this:
it builds the 3.x model from a config (given, or the matching config of the
zoo found in a ``configs/`` folder that the caller names) and requires the
converted keys and shapes to be exactly the model's.

Both converters refuse a file they do not fully understand: any key that
the target model does not have, any missing key and any shape mismatch
raise a ``ValueError`` naming the first keys. Nothing is written then.

Nothing is built from a number the file claims before that number is
checked: every tensor must fit in the file's bytes (a view with stride 0
can claim any shape over one stored element), ``rla_channel`` and
``widen_factor`` read from shapes must lie within :data:`MAX_RLA_CHANNEL`
and :data:`MAX_WIDEN_FACTOR`, and ``meta.CLASSES`` must be a list of at
most :data:`MAX_CLASSES` names of at most :data:`MAX_CLASS_NAME`
characters. A file outside these bounds is refused with one sentence
before any model is built.
"""
import hashlib
import io
import os
import os.path as osp
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .atomic import atomic_write
from .backbones import RLAECANet, RLAMobileNetV2, RLAResNet
from .checkpoint import (abbreviate, check_state_dict, checkpoint_hint,
                         detector_unbuilt, file_kind_hint, fit_state_dict,
                         get_state_dict, load_checkpoint_file, remote,
                         unbuilt_prefixes)
from .checkpoint.safetensors_io import SUFFIX, dump_safetensors
from .version import __version__
from .zoo import DETECTORS

__all__ = [
    'CONVERTER_VERSION', 'FORMATS', 'MAX_RLA_CHANNEL', 'MAX_WIDEN_FACTOR',
    'MAX_CLASSES', 'MAX_CLASS_NAME', 'check_tensor_sizes', 'infer_backbone',
    'imagenet_to_mmdet', 'mmdet2_to_mmdet3', 'output_format',
    'checkpoint_bytes', 'publish_checkpoint'
]

#: Written to the ``meta`` of every converted file.
CONVERTER_VERSION = '1.0'
#: The file formats the converters and the publish tool write.
FORMATS = ('pth', 'safetensors')
#: The keys of a checkpoint that a ``.safetensors`` file can hold.
_SAFETENSORS_KEYS = ('meta', 'state_dict')

#: The largest hidden state (``rla_channel``, k) a converter builds: every
#: published network has k = 32, and the hidden state is small by design;
#: 256 leaves room for variants and keeps any model a converter builds
#: small.
MAX_RLA_CHANNEL = 256
#: The largest RLA-MobileNetV2 ``widen_factor`` a converter builds (the
#: published networks have 1.0).
MAX_WIDEN_FACTOR = 4.0
#: The most classes a detector checkpoint may name: a config of COCO has
#: 80, LVIS 1203; more would make the converter build heads of gigabytes.
MAX_CLASSES = 5000
#: The longest class name a detector checkpoint may hold.
MAX_CLASS_NAME = 200

#: What to do with a detector checkpoint given to the ImageNet converter.
_DETECTOR_ADVICE = ('convert it with '
                    'tools/model_converters/rla_mmdet2_to_mmdet3.py')
#: The hint of a converter for a file that does not fit, if none better.
_NOT_UNDERSTOOD = (' Nothing was written: a converter only converts files '
                   'it fully understands; check that this is the right kind '
                   'of checkpoint (and config).')

_BACKBONE_NAMES = {
    (50, False): 'rla-r50',
    (50, True): 'rla-eca-r50',
    (101, False): 'rla-r101',
    (101, True): 'rla-eca-r101',
}


def sha256sum(src: str) -> str:
    """Hex SHA-256 of a checkpoint (a path, or a URL's cached download)."""
    return remote.sha256_of(remote.local_path(src))


def _short(key: str, n: int = 80) -> str:
    """A key of the file for a message, at most ``n`` characters."""
    return key if len(key) <= n else key[:n] + '...'


def check_tensor_sizes(state_dict: Mapping[str, torch.Tensor],
                       limit: int, what: str) -> None:
    """Refuse a tensor that claims more bytes than ``limit``.

    A checkpoint stores every element of a tensor it holds, so no tensor of
    a file is larger than the file; a view with stride 0 (or overlapping
    strides) can claim any shape over a few stored elements. Checked on the
    sizes alone, before any shape is used and without reading the data.

    Raises:
        ValueError: naming ``what`` and the key.
    """
    for key, tensor in state_dict.items():
        claimed = tensor.numel() * tensor.element_size()
        if claimed > limit:
            raise ValueError(
                f'{what} claims {claimed} bytes for the tensor '
                f'{_short(key)!r}, more than the {limit} bytes of the file '
                '(a view that repeats its elements); a converter only reads '
                'files that store every element, so nothing was built.')


def _check_file_tensors(state_dict: Mapping[str, torch.Tensor],
                        src: str) -> None:
    """:func:`check_tensor_sizes` with the size of ``src``'s file."""
    check_tensor_sizes(state_dict, osp.getsize(remote.local_path(src)),
                       repr(src))


def _shape_channel(state_dict: Mapping[str, torch.Tensor], key: str,
                   what: str) -> int:
    """``rla_channel`` from the first dimension of ``state_dict[key]``,
    within ``[1, MAX_RLA_CHANNEL]``."""
    k = int(state_dict[key].shape[0]) if state_dict[key].dim() else 0
    if not 1 <= k <= MAX_RLA_CHANNEL:
        raise ValueError(
            f'{what} has {k} hidden-state channels ({_short(key)}); RLA '
            f'networks have 32 (at most {MAX_RLA_CHANNEL} are converted), so '
            'this is no RLA checkpoint.')
    return k


# ------------------------------------------------------------------ backbone
def infer_backbone(state_dict: Mapping[str, torch.Tensor],
                   prefix: str = '', filename: str = '') -> Dict[str, Any]:
    """The RLA backbone config that a state dict was saved from.

    The depth comes from the number of blocks per stage and the block type
    (``conv3`` for Bottleneck), ``rla_channel`` from ``conv_outs.0``, ECA
    (and its kernel sizes) from the ``.eca.`` keys, SE from the ``.se.``
    keys.

    Args:
        state_dict: The tensors.
        prefix: Prefix of the backbone keys, e.g. ``'backbone.'``.
        filename: Named in error messages.

    Returns:
        A config dict such as ``dict(type='RLAECANet', depth=50)`` or
        ``dict(type='RLAResNet', depth=50, attention='se')``.
    """
    what = f'{filename!r}' if filename else 'the state dict'
    keys = [k[len(prefix):] for k in state_dict if k.startswith(prefix)]
    if 'recurrent_dsconvs.0.weight' in keys:
        return _infer_mobilenet_v2(state_dict, prefix, what)
    blocks: Dict[int, int] = {}
    for key in keys:
        m = re.match(r'stages\.(\d+)\.(\d+)\.', key)
        if m:
            s, b = int(m.group(1)), int(m.group(2))
            blocks[s] = max(blocks.get(s, 0), b + 1)
    if not blocks:
        hint = file_kind_hint(keys, _DETECTOR_ADVICE)
        raise ValueError(
            f'{what} has no RLA block keys ({prefix}stages.S.B.*); its first '
            f'keys are {abbreviate(state_dict)}.{hint}')
    if sorted(blocks) != list(range(4)):
        raise ValueError(f'{what} has RLA stages {sorted(blocks)}; the '
                         'published networks have the four stages 0-3.')
    stage_blocks = tuple(blocks[s] for s in range(4))
    bottleneck = 'stages.0.0.conv3.weight' in keys
    depth = None
    for d, (block, layout) in RLAResNet.arch_settings.items():
        if tuple(layout) == stage_blocks and (block.expansion == 4) == \
                bottleneck:
            depth = d
    if depth is None:
        kind = 'Bottleneck' if bottleneck else 'BasicBlock'
        raise ValueError(
            f'{what} has {list(stage_blocks)} {kind} blocks per stage, '
            'which is no RLA-ResNet depth (18, 34, 50, 101, 152).')
    cfg: Dict[str, Any] = dict(type='RLAResNet', depth=depth)
    if prefix + 'conv_outs.0.weight' not in state_dict:
        raise ValueError(f'{what} has no {prefix}conv_outs.0.weight, the '
                         'first RLA update of the hidden state.')
    channels = _shape_channel(state_dict, prefix + 'conv_outs.0.weight',
                              what)
    if channels != 32:
        cfg['rla_channel'] = channels
    cfg.update(_infer_attention(state_dict, prefix, keys, what))
    return cfg


def _infer_attention(state_dict: Mapping[str, torch.Tensor], prefix: str,
                     keys: List[str], what: str) -> Dict[str, Any]:
    """The ``type`` and ``attention`` of an RLA-ResNet config from the
    ``.eca.`` (kernel sizes) and ``.se.`` (reduction) keys; empty without
    attention."""
    cfg: Dict[str, Any] = {}
    if any('.eca.' in k for k in keys):
        sizes = []
        for s in range(4):
            weight = state_dict.get(f'{prefix}stages.{s}.0.eca.conv.weight')
            if weight is None or not weight.dim():
                raise ValueError(f'{what} has ECA weights, but none in the '
                                 f'first block of stage {s} '
                                 f'({prefix}stages.{s}.0.eca.conv.weight).')
            sizes.append(int(weight.shape[-1]))
        cfg['type'] = 'RLAECANet'
        if tuple(sizes) != RLAECANet.default_eca_kernel_size:
            cfg['attention'] = dict(type='eca', kernel_size=tuple(sizes))
    if any('.se.' in k for k in keys):
        key = f'{prefix}stages.0.0.se.fc.0.weight'
        weight = state_dict.get(key)
        if weight is None or weight.dim() != 2 or not \
                0 < weight.shape[0] <= weight.shape[1]:
            raise ValueError(f'{what} has SE weights, but {key} is not the '
                             'first linear layer of an SE module.')
        reduction = weight.shape[1] // weight.shape[0]
        cfg['attention'] = ('se' if reduction == 16 else dict(
            type='se', reduction=int(reduction)))
    return cfg


def _infer_mobilenet_v2(state_dict: Mapping[str, torch.Tensor], prefix: str,
                        what: str) -> Dict[str, Any]:
    """The config of an RLA-MobileNetV2 state dict (``recurrent_dsconvs``
    keys): ECA (``attention='eca'``) from the ``.conv.3.`` keys,
    ``rla_channel`` and
    ``widen_factor`` from ``bn2`` and ``conv1``."""
    cfg: Dict[str, Any] = dict(type='RLAMobileNetV2')
    channels = _shape_channel(state_dict,
                              prefix + 'recurrent_dsconvs.0.weight', what)
    check_state_dict(RLAMobileNetV2, state_dict, what, prefix)
    if channels != 32:
        cfg['rla_channel'] = channels
    stem = state_dict.get(prefix + 'conv1.0.weight')
    if stem is not None and stem.dim() and stem.shape[0] != 32:
        if not 0 < stem.shape[0] <= 32 * MAX_WIDEN_FACTOR:
            raise ValueError(
                f'{what} has a stem of {stem.shape[0]} channels '
                f'({prefix}conv1.0.weight), a widen_factor outside (0, '
                f'{MAX_WIDEN_FACTOR}]; the published RLA-MobileNetV2 has 32.')
        cfg['widen_factor'] = stem.shape[0] / 32
    if any(k.startswith(prefix + 'stages.') and '.conv.3.' in k
           for k in state_dict):
        cfg['attention'] = 'eca'
    return cfg


def _build_backbone(cfg: Dict[str, Any]) -> torch.nn.Module:
    cfg = dict(cfg)
    kind = cfg.pop('type')
    if kind == 'RLAMobileNetV2':  # every part, the head included
        return RLAMobileNetV2(out_indices=tuple(range(8)), **cfg)
    cls = RLAECANet if kind == 'RLAECANet' else RLAResNet
    return cls(**cfg)


def _prefixes(dropped: List[str]) -> List[str]:
    """``['bn2', 'fc', 'stage_bns.3.2']`` for the dropped keys."""
    names = []
    for key in dropped:
        parts = key.split('.')
        name = '.'.join(parts[:-1]) if parts[-1] in (
            'weight', 'bias', 'running_mean', 'running_var',
            'num_batches_tracked') else key
        if name not in names:
            names.append(name)
    return names


# ------------------------------------------------------------------ writing
def output_format(dst: str, file_format: Optional[str] = None) -> str:
    """The format to write ``dst`` in: ``file_format`` (``'pth'`` or
    ``'safetensors'``), or by default the one its extension names
    (``.safetensors``, else ``pth``). A ``.safetensors`` name written as
    ``pth``, or another name written as ``safetensors``, is refused."""
    named = 'safetensors' if str(dst).endswith(SUFFIX) else 'pth'
    if file_format is None:
        return named
    _check_format_name(file_format)
    if file_format != named:
        wanted = 'ending in .safetensors' if file_format == 'safetensors' \
            else 'not ending in .safetensors'
        raise ValueError(
            f'the output {dst!r} does not match --format {file_format}; '
            f'name the output {wanted}, or pass the other --format.')
    return file_format


def _check_format_name(file_format: Any) -> None:
    if file_format not in FORMATS:
        raise ValueError(f'format must be one of {", ".join(FORMATS)}, got '
                         f'{str(file_format)[:40]!r}.')


def checkpoint_bytes(checkpoint: Mapping[str, Any], file_format: str) -> bytes:
    """The file of ``checkpoint`` in ``file_format``: ``torch.save``'s zip
    format for ``'pth'``, or a ``.safetensors`` file of its
    ``state_dict`` and ``meta`` (no other key fits that format)."""
    if file_format == 'pth':
        buffer = io.BytesIO()
        torch.save(dict(checkpoint), buffer)
        return buffer.getvalue()
    extra = [k for k in checkpoint if k not in _SAFETENSORS_KEYS]
    if extra:
        raise ValueError(
            'a .safetensors file holds only state_dict and meta, not '
            f'{abbreviate(extra, 3)}; leave those out or write a .pth file.')
    return dump_safetensors(checkpoint['state_dict'],
                            checkpoint.get('meta'))


def _check_output(src: str, dst: str) -> None:
    if osp.exists(dst) and osp.samefile(remote.local_path(src), dst):
        raise ValueError(f'the output {dst!r} is the input file; choose '
                         'another output path.')


def _write(data: bytes, dst: str) -> None:
    """Write ``data`` to ``dst`` atomically (a failed write leaves no
    partial ``dst``, and no other file is touched); the file gets the
    permissions of any new file, for sharing."""
    atomic_write(data, dst)


def _save(checkpoint: Dict[str, Any], src: str, dst: str,
          file_format: str) -> None:
    _check_output(src, dst)
    _write(checkpoint_bytes(checkpoint, file_format), dst)


def _number(value: Any) -> Any:
    if torch.is_tensor(value) and value.numel() == 1:
        return value.item()
    return value


def imagenet_to_mmdet(src: str, dst: str,
                      eca: Optional[bool] = None,
                      file_format: Optional[str] = None) -> Dict[str, Any]:
    """Convert an ImageNet checkpoint of the authors into a backbone file.

    The output is ``{'state_dict': ..., 'meta': ...}`` with exactly the keys
    of the inferred :class:`RLAResNet` / :class:`RLAECANet` (no
    ``module.``, no classifier, no norm of the final hidden-state update),
    loadable with ``init_cfg=dict(type='Pretrained', checkpoint=dst)``.

    Args:
        src: The authors' ``*.pth.tar`` (or any checkpoint of that layout,
            ``.safetensors`` included).
        dst: Output ``.pth`` or ``.safetensors`` file.
        eca: ``True`` / ``False`` to require an RLA-ECANet / RLA-ResNet
            file; ``None`` (default) infers it from the ``.eca.`` keys.
        file_format: ``'pth'`` or ``'safetensors'``; by default the one
            ``dst``'s extension names (see :func:`output_format`).

    Returns:
        The ``meta`` written to ``dst``.
    """
    file_format = output_format(dst, file_format)
    checkpoint = load_checkpoint_file(src)
    if not isinstance(checkpoint.get('state_dict'), Mapping):
        raise ValueError(
            f'{src!r} has no "state_dict"; the authors\' ImageNet files are '
            'dicts with epoch, arch, state_dict, best_acc1 and optimizer '
            f'(this one has {abbreviate(checkpoint)}).')
    state_dict = get_state_dict(checkpoint, src)
    _check_file_tensors(state_dict, src)
    backbone_cfg = infer_backbone(state_dict, filename=src)
    is_eca = (backbone_cfg['type'] == 'RLAECANet'
              or backbone_cfg.get('attention') == 'eca')
    if eca is not None and eca != is_eca:
        mobile = backbone_cfg['type'] == 'RLAMobileNetV2'
        kind = ('RLA-ECA-MobileNetV2' if mobile else 'RLA-ECANet') \
            if is_eca else ('RLA-MobileNetV2' if mobile else 'RLA-ResNet')
        has = 'it has' if is_eca else 'it has no'
        raise ValueError(
            f'{src!r} is an {kind} checkpoint ({has} ECA weights), but '
            f'{"--eca" if eca else "no ECA"} was asked for.')
    model = _build_backbone(backbone_cfg)
    weights, dropped = fit_state_dict(
        state_dict, model, unbuilt_prefixes(model), repr(src),
        f'{backbone_cfg["type"]}({model.describe()})',
        lambda missing, unexpected: checkpoint_hint(
            model, missing, unexpected) or _NOT_UNDERSTOOD)
    meta = dict(
        source=osp.basename(src),
        source_sha256=sha256sum(src),
        arch=checkpoint.get('arch'),
        epoch=_number(checkpoint.get('epoch')),
        best_acc1=_number(checkpoint.get('best_acc1')),
        backbone=backbone_cfg,
        dropped=_prefixes(dropped),
        converter='rla_mmdet.converters.imagenet_to_mmdet',
        converter_version=CONVERTER_VERSION,
        rla_mmdet_version=__version__)
    _save(dict(state_dict=weights, meta=meta), src, dst, file_format)
    return meta


# ------------------------------------------------------------------ detector
def _detector_family(keys: List[str], what: str) -> str:
    if any(k.startswith('roi_head.mask_head.') for k in keys):
        return 'mask_rcnn'
    if any(k.startswith('roi_head.bbox_head.') for k in keys):
        return 'faster_rcnn'
    if any(k.startswith('bbox_head.retina_cls.') for k in keys):
        return 'retinanet'
    raise ValueError(
        f'{what} is none of the detectors of the paper: it has no '
        'roi_head.mask_head.* (Mask R-CNN), roi_head.bbox_head.* (Faster '
        f'R-CNN) or bbox_head.retina_cls.* (RetinaNet) keys; its first keys '
        f'are {abbreviate(keys)}.')


def _zoo_config(family: str, backbone_cfg: Dict[str, Any], what: str,
                configs_dir: str) -> str:
    eca = backbone_cfg['type'] == 'RLAECANet'
    name = _BACKBONE_NAMES.get((backbone_cfg['depth'], eca))
    extra = set(backbone_cfg) - {'type', 'depth'}
    for det in DETECTORS:
        if det.family == family and det.backbone == name and not extra:
            path = det.config_in(configs_dir)
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'{what} is a {family} with a {backbone_cfg} backbone, '
                    f'whose config {path!r} does not exist; pass the '
                    'configs/ folder of an rla_mmdet clone, or the config '
                    'itself as --config.')
            return path
    raise ValueError(
        f'{what} is a {family} with a {backbone_cfg} backbone, which matches '
        'none of the configs of this repository; pass the config it was '
        'trained with (3.x) as --config.')


def _set_num_classes(model_cfg: Any, num_classes: int) -> None:
    for key in ('bbox_head', ):
        if key in model_cfg:
            model_cfg[key]['num_classes'] = num_classes
    roi = model_cfg.get('roi_head')
    if roi:
        for key in ('bbox_head', 'mask_head'):
            if key in roi:
                roi[key]['num_classes'] = num_classes


def build_detector(config: str, num_classes: int) -> nn.Module:
    """The model of ``config`` with ``num_classes``, without loading any
    pretrained weights."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist.')
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model
    model_cfg.backbone.init_cfg = None
    _set_num_classes(model_cfg, num_classes)
    return MODELS.build(model_cfg)


def _mmdet2_meta(checkpoint: Mapping, what: str) -> Tuple[Mapping, str, list]:
    """``(meta, mmdet_version, CLASSES)`` of an mmdetection 2.x checkpoint,
    or a ``ValueError`` naming ``what`` is not one."""
    meta = checkpoint.get('meta')
    if not isinstance(checkpoint.get('state_dict'), Mapping) or \
            not isinstance(meta, Mapping):
        raise ValueError(
            f'{what} is not an mmdetection 2.x checkpoint: expected '
            f'"state_dict" and "meta", found {abbreviate(checkpoint)}.')
    version = str(meta.get('mmdet_version', ''))
    if not version.startswith('2.'):
        if version:
            raise ValueError(
                f'{what} was written by mmdetection {version}; this converter '
                'reads 2.x files only (3.x files load as they are).')
        raise ValueError(f'{what} has no meta.mmdet_version; this converter '
                         'reads files written by mmdetection 2.x.')
    classes = meta.get('CLASSES')
    if not isinstance(classes, (list, tuple)) or not classes or not all(
            isinstance(c, str) for c in classes):
        raise ValueError(f'{what} has no class names in meta.CLASSES; '
                         'mmdetection 2.x writes them there.')
    if len(classes) > MAX_CLASSES or any(
            len(c) > MAX_CLASS_NAME for c in classes):
        raise ValueError(
            f'{what} names {len(classes)} classes in meta.CLASSES, the '
            f'longest of {max(map(len, classes))} characters; a detector '
            f'config holds at most {MAX_CLASSES} names of at most '
            f'{MAX_CLASS_NAME} characters, so nothing was built.')
    return meta, version, classes


def mmdet2_to_mmdet3(src: str,
                     dst: str,
                     config: Optional[str] = None,
                     configs_dir: Optional[str] = None,
                     file_format: Optional[str] = None) -> Dict[str, Any]:
    """Convert an mmdetection 2.x detector checkpoint to MMDetection 3.x.

    Args:
        src: The 2.x ``.pth`` (``state_dict`` + ``meta`` with
            ``mmdet_version`` 2.x and ``CLASSES``).
        dst: Output ``.pth`` (or ``.safetensors``): ``state_dict`` with
            exactly the keys of the
            3.x model, ``meta`` with ``dataset_meta={'classes': ...}``;
            the optimizer state is dropped.
        config: The 3.x config to check the keys against.
        configs_dir: Without ``config``: the ``configs/`` folder of an
            rla_mmdet clone, where the zoo config of the detector and
            backbone found in the file is taken from (the installed
            package holds no configs).
        file_format: ``'pth'`` or ``'safetensors'``; by default the one
            ``dst``'s extension names (see :func:`output_format`).

    Returns:
        The ``meta`` written to ``dst``.
    """
    what = repr(src)
    file_format = output_format(dst, file_format)
    if config is None and configs_dir is None:
        raise ValueError(
            'mmdet2_to_mmdet3 needs the 3.x config to check the keys '
            'against: pass config=PATH, or configs_dir= the configs/ folder '
            'of an rla_mmdet clone to use the matching zoo config.')
    checkpoint = load_checkpoint_file(src)
    meta, version, classes = _mmdet2_meta(checkpoint, what)
    state_dict = get_state_dict(checkpoint, src)
    _check_file_tensors(state_dict, src)
    keys = list(state_dict)
    family = _detector_family(keys, what)
    backbone_cfg = infer_backbone(state_dict, 'backbone.', src)
    if config is None:
        config = _zoo_config(family, backbone_cfg, what, configs_dir)
    model = build_detector(config, len(classes))
    backbone = model.backbone
    if not isinstance(backbone, RLAResNet):
        raise ValueError(f'the backbone of {config!r} is '
                         f'{type(backbone).__name__}, not an RLA backbone.')
    ignored = detector_unbuilt(model)
    if configs_dir is not None:
        # Under the clone's configs/: recorded as configs/<family>/<file>.
        configs_dir = osp.abspath(configs_dir)
        config_path = osp.abspath(config)
        if config_path.startswith(configs_dir + os.sep):
            config = osp.join(
                osp.basename(configs_dir),
                osp.relpath(config_path, configs_dir))
    weights, dropped = fit_state_dict(
        state_dict, model, ignored, what,
        f'the {type(model).__name__} of {config!r}',
        lambda missing, unexpected: _NOT_UNDERSTOOD)
    new_meta = dict(
        dataset_meta=dict(classes=tuple(classes)),
        source=osp.basename(src),
        source_sha256=sha256sum(src),
        source_mmdet_version=version,
        epoch=meta.get('epoch'),
        iter=meta.get('iter'),
        config=config,
        source_config=meta.get('config'),
        dropped=_prefixes(dropped),
        converter='rla_mmdet.converters.mmdet2_to_mmdet3',
        converter_version=CONVERTER_VERSION,
        rla_mmdet_version=__version__)
    _save(dict(state_dict=weights, meta=new_meta), src, dst, file_format)
    return new_meta


# ------------------------------------------------------------------ publish
def publish_checkpoint(src: str,
                       dst: str,
                       save_keys: Sequence[str] = _SAFETENSORS_KEYS,
                       file_format: Optional[str] = None
                       ) -> Tuple[str, str, List[str]]:
    """Write the file to publish of a checkpoint, as MMDetection's
    ``publish_model.py`` does.

    Only ``save_keys`` of ``src`` are kept (by default ``meta`` and
    ``state_dict``: the optimizer, parameter schedulers and message hub of
    a training checkpoint are dropped). The file is written as ``dst``'s
    stem (``dst`` less a ``.pth`` / ``.safetensors`` extension) +
    ``-<first 8 hex digits of its sha256>`` + the format's extension, so
    its URL carries the hash that :func:`rla_mmdet.checkpoint.
    load_checkpoint_file` checks a download against.

    Args:
        src: The checkpoint (a path or URL; read by the checked loader).
        dst: The output name; its folder is created if needed.
        save_keys: The keys of ``src`` to keep; ``state_dict`` must be
            among them.
        file_format: ``'pth'`` or ``'safetensors'``; by default the one
            ``dst``'s extension names.

    Returns:
        The path written, its full sha256 and the keys dropped.
    """
    if file_format is None:
        file_format = output_format(dst)
    _check_format_name(file_format)
    if 'state_dict' not in save_keys:
        raise ValueError('save_keys must include state_dict (the weights), '
                         f'got {abbreviate(save_keys, 5)}.')
    checkpoint = load_checkpoint_file(src)
    if not isinstance(checkpoint.get('state_dict'), Mapping):
        raise ValueError(
            f'{src!r} has no "state_dict" (its keys are '
            f'{abbreviate(checkpoint)}); publish a checkpoint written by '
            'MMEngine or by the converters.')
    kept = {k: checkpoint[k] for k in save_keys if k in checkpoint}
    dropped = [k for k in checkpoint if k not in kept]
    data = checkpoint_bytes(kept, file_format)
    digest = hashlib.sha256(data).hexdigest()
    stem = str(dst)
    for extension in ('.pth', SUFFIX):
        if stem.endswith(extension):
            stem = stem[:-len(extension)]
    extension = SUFFIX if file_format == 'safetensors' else '.pth'
    path = f'{stem}-{digest[:8]}{extension}'
    _check_output(src, path)
    _write(data, path)
    return path, digest, dropped
