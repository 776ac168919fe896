"""Work-dir guards of ``tools/train.py``: a new run never overwrites another
run's checkpoints, and ``--resume`` survives a cut ``last_checkpoint``."""
import glob
import logging
import os.path as osp
from typing import List, Optional

from mmengine.logging import print_log


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
