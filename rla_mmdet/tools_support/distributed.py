"""The distributed set-up of ``tools/``, which also runs without GPUs.

Importing this module registers :class:`AnyDeviceDistributedDataParallel`
in MMEngine's ``MODEL_WRAPPERS``; ``import rla_mmdet`` does not import it.
"""
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class AnyDeviceDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps CPU models.

    MMEngine's Runner always passes ``device_ids=[LOCAL_RANK]``, which
    PyTorch refuses for a model on the CPU; this wrapper drops it there, so
    ``tools/dist_train.sh`` runs N CPU processes with the gloo backend.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        params = list(module.parameters())
        if params and params[0].device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Let ``--launcher pytorch`` run without GPUs.

    On a machine without CUDA the process group is created here with the
    gloo backend (MMEngine would ask for NCCL and call
    ``torch.cuda.set_device``) and the model is wrapped by
    :class:`AnyDeviceDistributedDataParallel`.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(
            f'--launcher {launcher} needs GPUs (MMEngine sets the CUDA device '
            'of each process); on a machine without GPUs use '
            'tools/dist_train.sh / dist_test.sh (--launcher pytorch), which '
            'run CPU processes with the gloo backend.')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='AnyDeviceDistributedDataParallel')


def teardown_distributed() -> None:
    """End a distributed run cleanly once every rank is done.

    Without this the gloo process group is torn down by the interpreter's
    exit, where a rank that exits while its peer still talks to it can abort
    ("terminate called without an active exception") and turn a finished run
    into a failed job. A barrier first, so no rank leaves early.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
