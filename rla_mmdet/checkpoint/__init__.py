"""Checkpoints: reading files safely, and fitting them to a backbone.

- :mod:`.loading` reads a checkpoint without running code from it
  (:func:`load_checkpoint_file`; the threat model is in its docstring);
- :mod:`.remote` downloads the ones named by URL or MMEngine prefix;
- :mod:`.allow_list` is what a checkpoint's pickle may build;
- :mod:`.adaptation` fits a checkpoint's tensors to an RLA backbone
  (:class:`CheckpointAdapterMixin`, :func:`fit_state_dict`,
  :func:`load_backbone_weights`).
"""
from .adaptation import (CheckpointAdapterMixin, detector_unbuilt,
                         fit_state_dict, get_state_dict, load_backbone_weights,
                         load_pretrained_init_cfg, split_unbuilt)
from .allow_list import ALLOWED, TORCH_SAFE_GLOBALS, RestrictedUnpickler
from .loading import (WEIGHTS_ONLY_ENFORCES_ALLOW_LIST, UnsafeCheckpointError,
                      abbreviate, load_checkpoint_file,
                      load_from_local_weights_only, load_from_remote)
from .remote import SAFE_PREFIXES, DownloadError, is_remote

__all__ = [
    'UnsafeCheckpointError', 'ALLOWED', 'TORCH_SAFE_GLOBALS',
    'WEIGHTS_ONLY_ENFORCES_ALLOW_LIST', 'load_checkpoint_file',
    'load_from_local_weights_only', 'load_from_remote', 'SAFE_PREFIXES',
    'DownloadError', 'is_remote', 'get_state_dict', 'load_backbone_weights',
    'load_pretrained_init_cfg', 'split_unbuilt', 'RestrictedUnpickler',
    'CheckpointAdapterMixin', 'fit_state_dict', 'detector_unbuilt',
    'abbreviate'
]
