from .fileio import (AtomicLocalBackend, checkpoint_io_enabled,
                     enable_checkpoint_io, restore_checkpoint_io)
from .hooks import CheckpointIOHook, EpochSeedHook, NonFiniteLossHook

__all__ = [
    'AtomicLocalBackend', 'enable_checkpoint_io', 'restore_checkpoint_io',
    'checkpoint_io_enabled', 'CheckpointIOHook', 'EpochSeedHook',
    'NonFiniteLossHook'
]
