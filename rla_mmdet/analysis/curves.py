"""Training curves from MMEngine's ``vis_data/scalars.json`` logs (one JSON
object per line), for ``tools/analysis/plot_curves.py``."""
import glob
import json
import os.path as osp
from typing import Any, Dict, List, NamedTuple, Sequence

__all__ = ['Curve', 'find_scalar_logs', 'load_curves']


class Curve(NamedTuple):
    """One logged quantity over the training iterations."""
    key: str  # as written in the log, e.g. 'coco/bbox_mAP'
    x: List[int]  # training iteration
    y: List[float]


def find_scalar_logs(path: str) -> List[str]:
    """The scalar log files of a work dir, a run dir or a JSON file.

    A work dir of ``tools/train.py`` holds one timestamped folder per run,
    each with ``vis_data/scalars.json``; they are returned in time order
    (a resumed run comes after the run it continues).
    """
    if osp.isfile(path):
        if not path.endswith('.json'):
            raise ValueError(f'{path!r} is not a JSON log; pass a work dir or '
                             'a vis_data/scalars.json file.')
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path!r} does not exist; pass a work dir of '
                                'tools/train.py or a scalars.json file.')
    for pattern in ('scalars.json', 'vis_data/scalars.json',
                    '*/vis_data/scalars.json'):
        found = sorted(glob.glob(osp.join(glob.escape(path), pattern)))
        if found:
            return found
    raise FileNotFoundError(
        f'no training log found in {path!r}: expected '
        '<timestamp>/vis_data/scalars.json (written by MMEngine\'s '
        'LocalVisBackend during tools/train.py).')


def _read_records(path: str) -> List[Dict[str, Any]]:
    records = []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f'{path!r} line {n} is not JSON ({exc.msg}); '
                                 'expected one JSON object per line, as '
                                 'MMEngine writes scalars.json.') from None
            if not isinstance(record, dict) or 'step' not in record:
                raise ValueError(f'{path!r} line {n} is not an MMEngine '
                                 'scalar record (a JSON object with a '
                                 '"step").')
            records.append(record)
    return records


def _file_curves(path: str) -> Dict[str, Curve]:
    """Every numeric key of one log file against the training iteration.

    Training records carry ``iter``. Validation records carry only ``step``:
    the iteration in an iteration-based run, the epoch in an epoch-based one
    (MMEngine's ``log_metric_by_epoch``), where they are placed at the last
    training iteration logged before them, i.e. the end of that epoch (exact
    when the epoch ends on a logged iteration, as it does when an epoch is
    shorter than the logging interval or a multiple of it).
    """
    records = _read_records(path)
    epoch_based = any('epoch' in r for r in records if 'iter' in r)
    curves: Dict[str, Curve] = {}
    last_iter = None
    for r in records:
        if 'iter' in r:
            x = last_iter = int(r['iter'])
        elif not epoch_based:
            x = int(r['step'])
        elif last_iter is None:
            raise ValueError(
                f'{path!r} has validation results of epoch {r["step"]} '
                'before any training record, so they cannot be placed on '
                'the iteration axis.')
        else:
            x = last_iter
        for key, value in r.items():
            if key in ('step', 'iter', 'epoch') or isinstance(
                    value, bool) or not isinstance(value, (int, float)):
                continue
            curve = curves.setdefault(key, Curve(key, [], []))
            curve.x.append(x)
            curve.y.append(float(value))
    return curves


def _matches(log_key: str, key: str) -> bool:
    return log_key == key or log_key.endswith('/' + key)


def load_curves(path: str, keys: Sequence[str]) -> Dict[str, List[Curve]]:
    """The curves of ``keys`` in the logs of ``path``.

    Args:
        path: A work dir (all its runs), a run dir or a JSON log.
        keys: Keys to read; ``'bbox_mAP'`` also matches ``'coco/bbox_mAP'``
            (a metric prefixed with its evaluator's name).

    Returns:
        For each key, the matching curves. The runs of a work dir are joined
        in time order; where a later run logged the same iterations again (a
        resumed or restarted run), its values replace the earlier ones.

    Raises:
        FileNotFoundError: No log under ``path``.
        ValueError: A key is in none of the logs; the message lists those
            that are.
    """
    files = find_scalar_logs(path)
    merged: Dict[str, Curve] = {}
    for f in files:
        for key, curve in _file_curves(f).items():
            old = merged.get(key)
            if old is None:
                merged[key] = curve
                continue
            start = curve.x[0]
            keep = [i for i, x in enumerate(old.x) if x < start]
            merged[key] = Curve(key, [old.x[i] for i in keep] + curve.x,
                                [old.y[i] for i in keep] + curve.y)
    result = {}
    for key in keys:
        found = [c for k, c in merged.items() if _matches(k, key)]
        if not found:
            raise ValueError(
                f'{key!r} is not in the log of {path!r} '
                f'({", ".join(files)}); its keys are: '
                f'{", ".join(sorted(merged)) or "none"}.')
        result[key] = found
    return result
