"""Checked checkpoint loading for the whole process, asked for by a config.

MMDetection's inference API (``mmdet.apis.init_detector`` and
``DetInferencer``) builds the model of a config and loads the checkpoint
with MMEngine's ``load_checkpoint``. No hook runs there, so
``CheckpointIOHook`` never switches anything on, and MMEngine's own
loaders unpickle whatever a URL serves (``weights_only=False`` on every
torch) and, on torch < 2.6, whatever a local file holds.

Importing this module makes MMEngine load every checkpoint of the process
through :func:`rla_mmdet.checkpoint.load_checkpoint_file`: the loader of
local paths and of every prefix MMEngine has a loader for at that moment
(``http(s)://``, ``torchvision://``, ``open-mmlab://``, ``s3://``...;
schemes the checked loader cannot check are refused). It is named in the
``custom_imports`` of this repository's configs, so a config path given
to ``init_detector``, ``DetInferencer``, ``Runner.from_cfg`` or a tool
switches it on when the config is read::

    custom_imports = dict(imports=['rla_mmdet', 'rla_mmdet.checked_loading'],
                          allow_failed_imports=False)

The switch is for the process, not for one model: every checkpoint MMEngine
loads afterwards, for any model, goes through the checked loader (the
allow-list of ``rla_mmdet/checkpoint/allow_list.py``), and a file it
refuses raises ``UnsafeCheckpointError``. Loading only gets stricter.
Nothing else changes: MMEngine's file backends stay as they are (atomic
saving belongs to a training run and is switched on by
``CheckpointIOHook``, whose ``after_run`` keeps this switch), and
``import rla_mmdet`` alone does not import this module.

:func:`disable` puts back the loaders that were in place before (call it
outside a run); :func:`enable` switches them again; :func:`enabled` says
whether every loader is the checked one.
"""
from .engine.fileio import checked_loaders_enabled as enabled
from .engine.fileio import disable_checked_loading as disable
from .engine.fileio import enable_checked_loading as enable

__all__ = ['enable', 'disable', 'enabled']

enable()
