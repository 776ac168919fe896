"""Run a script with pure-torch stand-ins for mmcv's compiled detector ops.

Usage: python tools/analysis/torch_ops.py SCRIPT [ARGS ...]
       python tools/analysis/torch_ops.py --check [DEVICE]

Installs the stand-ins as ``mmcv.ops`` (and every ``mmcv.ops.*``
submodule), then runs ``SCRIPT`` as ``__main__`` with ``ARGS``. Meant for a
GPU machine where mmcv's CUDA ops are not built (``pip install mmcv-lite``
gives the rest of mmcv): both detectors of a benchmark then run the same
stand-ins, so their ratio still compares the backbones. Example::

    python tools/analysis/torch_ops.py tools/analysis/benchmark.py \\
        --device cuda --amp --tasks detector_train

What a RetinaNet or Faster R-CNN training step calls is implemented:
``nms``, ``batched_nms``, ``RoIAlign`` / ``roi_align`` (torchvision's
kernels when torchvision imports, else plain torch) and
``sigmoid_focal_loss``. Every other name of ``mmcv.ops`` imports as a
placeholder that raises ``NotImplementedError`` when used.
``--check`` compares torchvision's kernels with the plain-torch forms (which
the tests compare with mmcv's compiled CPU ops) on ``DEVICE`` (default
``cuda``) and exits non-zero on a difference.
"""
import importlib.abc
import importlib.machinery
import os.path as osp
import runpy
import sys
import types
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

try:
    import torchvision.ops as _tv
except ImportError:  # the plain-torch forms below are used instead
    _tv = None

MODULE = 'mmcv.ops'


# ------------------------------------------------------------------- nms
def _greedy_keep(boxes: torch.Tensor, iou_threshold: float,
                 offset: int) -> torch.Tensor:
    """Which boxes (sorted by decreasing score) greedy NMS keeps.

    Box ``j`` is kept when no kept box before it overlaps it by more than
    ``iou_threshold``. That rule has one solution, reached by iterating it
    from "all kept" (after ``t`` rounds the first ``t`` boxes are final), so
    each round is one tensor operation instead of one per box.
    """
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    w = (torch.min(x2[:, None], x2) - torch.max(x1[:, None], x1) +
         offset).clamp(min=0)
    h = (torch.min(y2[:, None], y2) - torch.max(y1[:, None], y1) +
         offset).clamp(min=0)
    inter = w * h
    iou = inter / (areas[:, None] + areas - inter)
    earlier = torch.ones_like(iou, dtype=torch.bool).triu(1)
    suppresses = (iou > iou_threshold) & earlier  # [i, j]: i before j
    keep = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    while True:
        new = ~(suppresses & keep[:, None]).any(0)
        if torch.equal(new, keep):
            return keep
        keep = new


def _nms_indices(boxes: torch.Tensor, scores: torch.Tensor,
                 iou_threshold: float, offset: int) -> torch.Tensor:
    if len(boxes) == 0:
        return boxes.new_zeros(0, dtype=torch.long)
    if _tv is not None and offset == 0:
        return _tv.nms(boxes.float(), scores.float(), iou_threshold)
    order = scores.argsort(descending=True)
    keep = _greedy_keep(boxes[order].float(), iou_threshold, offset)
    return order[keep]


def nms(boxes: torch.Tensor,
        scores: torch.Tensor,
        iou_threshold: float,
        offset: int = 0,
        score_threshold: float = 0,
        max_num: int = -1) -> Tuple[torch.Tensor, torch.Tensor]:
    """``mmcv.ops.nms``: ``(dets, inds)``, ``dets`` = kept boxes with their
    scores as a fifth column, by decreasing score."""
    valid = None
    if score_threshold > 0:
        valid = (scores > score_threshold).nonzero().view(-1)
        boxes, scores = boxes[valid], scores[valid]
    inds = _nms_indices(boxes, scores, float(iou_threshold), int(offset))
    if max_num > 0:
        inds = inds[:max_num]
    dets = torch.cat((boxes[inds], scores[inds].reshape(-1, 1)), dim=1)
    if valid is not None:
        inds = valid[inds]
    return dets, inds


def batched_nms(boxes: torch.Tensor,
                scores: torch.Tensor,
                idxs: torch.Tensor,
                nms_cfg: Optional[dict],
                class_agnostic: bool = False
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``mmcv.ops.batched_nms``: NMS within each class of ``idxs`` (boxes
    of different classes are moved apart so that they never overlap)."""
    if nms_cfg is None:
        inds = scores.argsort(descending=True)
        return torch.cat([boxes[inds], scores[inds][:, None]], -1), inds
    cfg = dict(nms_cfg)
    class_agnostic = cfg.pop('class_agnostic', class_agnostic)
    kind = cfg.pop('type', 'nms')
    if kind != 'nms':
        raise NotImplementedError(
            f'the pure-torch mmcv.ops implements nms_cfg type "nms" only, '
            f'got {kind!r}.')
    cfg.pop('split_thr', None)  # same result without splitting
    max_num = cfg.pop('max_num', -1)
    if boxes.numel() == 0 or class_agnostic:
        moved = boxes
    else:
        moved = boxes + (idxs.to(boxes) * (boxes.max() + 1))[:, None]
    _, keep = nms(moved, scores, **cfg)
    if max_num > 0:
        keep = keep[:max_num]
    return torch.cat([boxes[keep], scores[keep][:, None]], -1), keep


# ------------------------------------------------------------- roi_align
def _bilinear(feature: torch.Tensor, batch: torch.Tensor, y: torch.Tensor,
              x: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``feature[batch]`` at ``(y, x)`` (any shape
    ``S``), with RoIAlign's border rule: 0 outside ``[-1, size]``, clamped
    inside. Returns ``S + (C,)``."""
    _, _, height, width = feature.shape
    outside = (y < -1) | (y > height) | (x < -1) | (x > width)
    y, x = y.clamp(min=0), x.clamp(min=0)
    y0, x0 = y.floor().long(), x.floor().long()
    y_last, x_last = y0 >= height - 1, x0 >= width - 1
    y0 = torch.where(y_last, height - 1, y0)
    x0 = torch.where(x_last, width - 1, x0)
    y = torch.where(y_last, y0.to(y), y)
    x = torch.where(x_last, x0.to(x), x)
    y1 = (y0 + 1).clamp(max=height - 1)
    x1 = (x0 + 1).clamp(max=width - 1)
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    pixels = feature.permute(0, 2, 3, 1)  # N, H, W, C

    def at(yy, xx):
        return pixels[batch, yy, xx]

    value = ((hy * hx)[..., None] * at(y0, x0) +
             (hy * lx)[..., None] * at(y0, x1) +
             (ly * hx)[..., None] * at(y1, x0) +
             (ly * lx)[..., None] * at(y1, x1))
    return value.masked_fill(outside[..., None], 0)


def _roi_align_torch(feature: torch.Tensor, rois: torch.Tensor,
                     output_size: Tuple[int, int], spatial_scale: float,
                     sampling_ratio: int, aligned: bool) -> torch.Tensor:
    ph, pw = output_size
    k = len(rois)
    if k == 0:
        return feature.new_zeros(0, feature.size(1), ph, pw)
    shift = 0.5 if aligned else 0.0
    batch = rois[:, 0].long()
    x1, y1, x2, y2 = (rois[:, 1:] * spatial_scale - shift).unbind(1)
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1), roi_h.clamp(min=1)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        grid_h = torch.full_like(bin_h, sampling_ratio)
        grid_w = torch.full_like(bin_w, sampling_ratio)
    else:
        grid_h, grid_w = bin_h.ceil(), bin_w.ceil()
    gh, gw = int(grid_h.max().item()), int(grid_w.max().item())
    gh, gw = max(gh, 1), max(gw, 1)
    dev, dt = feature.device, feature.dtype
    iy = torch.arange(gh, device=dev, dtype=dt)
    ix = torch.arange(gw, device=dev, dtype=dt)
    py = torch.arange(ph, device=dev, dtype=dt)
    px = torch.arange(pw, device=dev, dtype=dt)
    # sample (bin p, point i) of each roi: shapes K, ph, gh and K, pw, gw
    # (a roi without samples, grid 0, pools to 0: its step is unused)
    step_h = bin_h / grid_h.clamp(min=1)
    step_w = bin_w / grid_w.clamp(min=1)
    ys = (y1[:, None, None] + py[None, :, None] * bin_h[:, None, None] +
          (iy[None, None, :] + 0.5) * step_h[:, None, None])
    xs = (x1[:, None, None] + px[None, :, None] * bin_w[:, None, None] +
          (ix[None, None, :] + 0.5) * step_w[:, None, None])
    valid_y = iy[None, :] < grid_h[:, None]  # K, gh
    valid_x = ix[None, :] < grid_w[:, None]  # K, gw
    shape = (k, ph, gh, pw, gw)
    y = ys[:, :, :, None, None].expand(shape)
    x = xs[:, None, None, :, :].expand(shape)
    values = _bilinear(feature, batch[:, None, None, None, None].expand(shape),
                       y, x)  # K, ph, gh, pw, gw, C
    weight = (valid_y[:, None, :, None, None] &
              valid_x[:, None, None, None, :]).to(dt)[..., None]
    count = (grid_h * grid_w).clamp(min=1).view(k, 1, 1)
    pooled = (values * weight).sum((2, 4)) / count[..., None]
    return pooled.permute(0, 3, 1, 2).contiguous()  # K, C, ph, pw


def roi_align(input: torch.Tensor,
              rois: torch.Tensor,
              output_size,
              spatial_scale: float = 1.0,
              sampling_ratio: int = 0,
              pool_mode: str = 'avg',
              aligned: bool = True) -> torch.Tensor:
    """``mmcv.ops.roi_align`` (average pooling; ``rois`` are rows of
    ``(batch index, x1, y1, x2, y2)``)."""
    if pool_mode != 'avg':
        raise NotImplementedError(
            'the pure-torch mmcv.ops implements roi_align pool_mode="avg" '
            f'only, got {pool_mode!r}.')
    output_size = _pair(output_size)
    if _tv is not None:
        return _tv.roi_align(input, rois.to(input.dtype), output_size,
                             spatial_scale, sampling_ratio, aligned)
    return _roi_align_torch(input, rois.to(input.dtype), output_size,
                            float(spatial_scale), int(sampling_ratio),
                            aligned)


class RoIAlign(nn.Module):
    """``mmcv.ops.RoIAlign``."""

    def __init__(self,
                 output_size,
                 spatial_scale: float = 1.0,
                 sampling_ratio: int = 0,
                 pool_mode: str = 'avg',
                 aligned: bool = True,
                 use_torchvision: bool = False) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.pool_mode = pool_mode
        self.aligned = aligned

    def forward(self, input: torch.Tensor, rois: torch.Tensor):
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.pool_mode, self.aligned)


# ------------------------------------------------------------ focal loss
def sigmoid_focal_loss(input: torch.Tensor,
                       target: torch.Tensor,
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight: Optional[torch.Tensor] = None,
                       reduction: str = 'mean') -> torch.Tensor:
    """``mmcv.ops.sigmoid_focal_loss``: ``input`` (N, C) logits, ``target``
    (N,) labels in ``[0, C]`` (``C``: background); ``weight`` (C,) per
    class of the target."""
    num_classes = input.size(1)
    positive = F.one_hot(target, num_classes + 1)[:, :num_classes].bool()
    p = input.sigmoid()
    loss = torch.where(
        positive, alpha * (1 - p).pow(gamma) * F.softplus(-input),
        (1 - alpha) * p.pow(gamma) * F.softplus(input))
    if weight is not None:
        loss = loss * weight[target.clamp(max=num_classes - 1)][:, None]
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


# ------------------------------------------------------- the module itself
IMPLEMENTED = ('nms', 'batched_nms', 'roi_align', 'RoIAlign',
               'sigmoid_focal_loss')


def _placeholder(name: str) -> type:

    def unavailable(*args, **kwargs):
        raise NotImplementedError(
            f'mmcv.ops.{name} has no pure-torch stand-in '
            f'(tools/analysis/torch_ops.py implements {", ".join(IMPLEMENTED)})'
            '; build mmcv with its ops to use it.')

    return type(name, (nn.Module, ), {'__init__': unavailable,
                                       '__module__': MODULE})


def _make_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so that submodules import
    for attr in IMPLEMENTED:
        setattr(module, attr, globals()[attr])

    def __getattr__(attr):
        if attr.startswith('__'):
            raise AttributeError(attr)
        value = _placeholder(attr)
        setattr(module, attr, value)
        return value

    module.__getattr__ = __getattr__
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every ``mmcv.ops.*`` import with a stand-in module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(MODULE + '.'):
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return _make_module(spec.name)

    def exec_module(self, module):
        pass


def install() -> types.ModuleType:
    """Make ``import mmcv.ops`` (and its submodules) give the stand-ins.
    Call it before anything imports ``mmcv.ops``."""
    loaded = [m for m in sys.modules if m == MODULE or
              m.startswith(MODULE + '.')]
    if loaded and not getattr(sys.modules[MODULE], '_torch_stand_in', False):
        raise RuntimeError(
            'mmcv.ops was imported before the pure-torch stand-ins were '
            'installed; call install() first.')
    import mmcv
    module = sys.modules.get(MODULE) or _make_module(MODULE)
    module._torch_stand_in = True
    sys.modules[MODULE] = module
    mmcv.ops = module
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    return module


def check(device: str = 'cuda') -> bool:
    """torchvision's nms and roi_align against the plain-torch forms on
    ``device``; prints one line each and returns whether both agree."""
    if _tv is None:
        print('check: torchvision does not import; nothing to compare')
        return False
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2000, 2, generator=g) * 800
    boxes = torch.cat([xy, xy + torch.rand(2000, 2, generator=g) * 200 + 1],
                      1).to(device)
    scores = torch.rand(2000, generator=g).to(device)
    order = scores.argsort(descending=True)
    plain = order[_greedy_keep(boxes[order], 0.7, 0)]
    same_nms = torch.equal(_tv.nms(boxes, scores, 0.7), plain)
    print(f'check: nms of 2000 boxes, torchvision == plain torch: '
          f'{same_nms}')
    feature = torch.rand(2, 16, 50, 60, generator=g).to(device)
    rois = torch.cat([torch.randint(0, 2, (300, 1), generator=g).float(),
                      (boxes[:300] / 4).cpu()], 1).to(device)
    errors = []
    for aligned in (True, False):
        for ratio in (0, 2):
            a = _tv.roi_align(feature, rois, (7, 7), 0.25, ratio, aligned)
            b = _roi_align_torch(feature, rois, (7, 7), 0.25, ratio, aligned)
            errors.append(float((a - b).abs().max()))
    same_roi = max(errors) <= 1e-4
    print(f'check: roi_align, largest difference {max(errors):.2e} '
          f'(aligned / not, sampling ratio 0 / 2): {same_roi}')
    return same_nms and same_roi


def main(argv: Sequence[str] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(__doc__)
        sys.exit(0 if argv else 2)
    if argv[0] == '--check':
        sys.exit(0 if check(*argv[1:2]) else 1)
    script = argv[0]
    if not osp.isfile(script):
        raise FileNotFoundError(
            f'SCRIPT {script!r} is not a file; give the path of the script '
            'to run, e.g. tools/analysis/benchmark.py.')
    install()
    print(f'mmcv.ops: pure-torch stand-ins (torchvision kernels: '
          f'{"yes" if _tv is not None else "no"})', file=sys.stderr)
    sys.argv = [script] + argv[1:]
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
