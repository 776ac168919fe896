from .fileio import AtomicLocalBackend, register_atomic_local_backend
from .hooks import EpochSeedHook, NonFiniteLossHook

__all__ = [
    'AtomicLocalBackend', 'register_atomic_local_backend', 'EpochSeedHook',
    'NonFiniteLossHook'
]
