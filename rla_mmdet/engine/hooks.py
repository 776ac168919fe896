"""Hooks that keep a run reproducible, its checkpoints whole, and stop it
cleanly."""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner.utils import set_random_seed

from .fileio import enable_checkpoint_io, restore_checkpoint_io


@HOOKS.register_module()
class CheckpointIOHook(Hook):
    """Switch on this package's checkpoint IO for the run.

    From ``before_run`` (before the Runner loads ``load_from`` or resumes)
    to ``after_run``, MMEngine writes local files atomically (a run killed
    while saving leaves the previous complete checkpoint, never a truncated
    one) and reads local checkpoints through
    :func:`rla_mmdet.checkpoint.load_checkpoint_file`: only tensors and
    MMEngine's checkpoint types are unpickled, on every supported torch,
    and a missing, corrupt or unsafe file stops the run with one sentence.
    ``after_run`` puts back MMEngine's own backend and loader (a run that
    ends with an exception keeps them switched on). List it in
    ``custom_hooks``; ``import rla_mmdet`` alone changes nothing.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._before = None

    def before_run(self, runner) -> None:
        self._before = enable_checkpoint_io()

    def after_run(self, runner) -> None:
        if self._before is not None:
            restore_checkpoint_io(self._before)
            self._before = None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at the first iteration whose loss is NaN or infinite.

    The run ends with a ``FloatingPointError`` that names the iteration and
    epoch, the loss terms that went bad, and the last checkpoint. The
    checkpoint hook never runs after that iteration, so the last good
    checkpoint is kept as it was (MMDetection's ``CheckInvalidLossHook``
    checks every 50 iterations with a bare ``assert`` instead).

    Args:
        interval: Check every ``interval`` iterations. Default 1.
    """

    priority = 'VERY_HIGH'

    def __init__(self, interval: int = 1) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'interval must be an int >= 1, got {interval!r}')
        self.interval = interval

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        loss = outputs.get('loss')
        if loss is None or bool(torch.isfinite(torch.as_tensor(loss)).all()):
            return
        bad = [
            f'{k}={float(v):.4g}' for k, v in outputs.items()
            if k != 'loss' and torch.as_tensor(v).numel() == 1
            and not math.isfinite(float(v))
        ]
        last = runner.message_hub.get_info('last_ckpt')
        raise FloatingPointError(
            f'loss became {float(loss)} at iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}): {", ".join(bad) or "loss"}; '
            'training stopped. The last good checkpoint is '
            f'{last or "none (none was saved yet)"}; lower the learning rate '
            '(or check the data) and resume from it with --resume.')


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed Python, numpy and torch with ``seed + epoch`` at each epoch.

    The random numbers an epoch draws (augmentations in the main process,
    proposal sampling, dropout) then depend on the epoch alone, not on what
    earlier epochs or validation consumed, so a run resumed from an epoch
    checkpoint continues exactly as the uninterrupted run would have. Data
    loader workers are seeded by MMEngine per epoch when
    ``persistent_workers=False``; persistent workers carry their random state
    across epochs and are not reproducible after a resume.

    Args:
        seed: Base seed; ``None`` takes the runner's seed
            (``randomness=dict(seed=...)``).
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = seed

    def before_train_epoch(self, runner) -> None:
        seed = self.seed if self.seed is not None else runner.seed
        if seed is None:
            raise ValueError('EpochSeedHook needs a seed: set randomness='
                             'dict(seed=...) in the config or seed= on the '
                             'hook.')
        deterministic = runner.cfg.get('randomness', {}).get(
            'deterministic', False)
        set_random_seed(seed + runner.epoch, deterministic=deterministic)
