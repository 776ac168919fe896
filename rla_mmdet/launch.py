"""Former home of the tool support, now :mod:`rla_mmdet.tools_support`.

Scripts written against ``rla_mmdet.launch`` keep working: its public names
are re-exported here from ``tools_support.args``, ``.config``, ``.work_dir``
and ``.distributed``. Importing this module registers
``AnyDeviceDistributedDataParallel`` in MMEngine's ``MODEL_WRAPPERS``, as it
did before; ``import rla_mmdet`` imports neither.
"""
from .tools_support.args import apply_common_args, parse_tool_args
from .tools_support.config import (check_model_config, check_pretrained,
                                   load_config, missing_pretrained,
                                   set_data_root)
from .tools_support.distributed import (AnyDeviceDistributedDataParallel,
                                        setup_distributed,
                                        teardown_distributed)
from .tools_support.work_dir import (auto_resume_fallback, checkpoints_in,
                                     protect_work_dir)

__all__ = [
    'AnyDeviceDistributedDataParallel', 'apply_common_args',
    'auto_resume_fallback', 'check_model_config', 'check_pretrained',
    'checkpoints_in', 'load_config', 'missing_pretrained', 'parse_tool_args',
    'protect_work_dir', 'set_data_root', 'setup_distributed',
    'teardown_distributed'
]
