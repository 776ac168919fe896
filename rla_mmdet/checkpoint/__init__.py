"""Checkpoints: reading files safely, and fitting them to a backbone.

- :mod:`.loading` reads a checkpoint without running code from it
  (:func:`load_checkpoint_file`; the threat model is in its docstring);
- :mod:`.remote` downloads the ones named by URL or MMEngine prefix;
- :mod:`.allow_list` is what a checkpoint's pickle may build;
- :mod:`.adaptation` maps the published checkpoints onto the backbones
  (:data:`ADAPTATIONS`, found by type) and fits a checkpoint's tensors to a
  backbone (:func:`fit_state_dict`, :func:`load_backbone_weights`); it is
  the strict loader of the backbones' ``Pretrained`` ``init_cfg``.
"""
from .adaptation import (ADAPTATIONS, Adaptation, adapt_state_dict,
                         adaptation_of, check_state_dict, checkpoint_hint,
                         detector_unbuilt, file_kind_hint, fit_state_dict,
                         get_state_dict, load_backbone_weights,
                         load_pretrained_init_cfg, split_unbuilt,
                         unbuilt_prefixes)
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
    'fit_state_dict', 'detector_unbuilt', 'abbreviate', 'ADAPTATIONS',
    'Adaptation', 'adaptation_of', 'adapt_state_dict', 'check_state_dict',
    'checkpoint_hint', 'file_kind_hint', 'unbuilt_prefixes'
]
