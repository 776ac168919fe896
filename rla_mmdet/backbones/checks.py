"""The argument checks of the RLA backbones.

Each check takes a value (and the argument's name, for the message) and
returns it normalised, or raises ``TypeError`` / ``ValueError`` with one
sentence that names the argument, the value it got and what is allowed, so
that a mistake in a config file is reported where it was made and never
survives ``python -O``. The backbones call them beside each assignment
(``self.strides = check_int_tuple('strides', strides, num_stages)``).
"""
import warnings
from numbers import Integral
from typing import Any, Optional, Sequence, Tuple


def is_int(value: Any) -> bool:
    """True for Python and numpy integers, False for bools and floats."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int = None) -> int:
    """Return ``value`` as ``int`` if it is an integer in ``[low, high]``."""
    if not is_int(value):
        raise TypeError(f'{name} must be an int, got {value!r} '
                        f'({type(value).__name__}).')
    if value < low or (high is not None and value > high):
        allowed = f'>= {low}' if high is None else f'in [{low}, {high}]'
        raise ValueError(f'{name} must be {allowed}, got {value}.')
    return int(value)


def check_int_tuple(name: str,
                    value: Any,
                    length: int,
                    low: int = 1,
                    odd: bool = False) -> Tuple[int, ...]:
    """Return ``value`` as a tuple of ``length`` ints, each ``>= low``.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check (a list or tuple).
        length: The required number of items.
        low: The smallest allowed item.
        odd: Whether every item must be odd.
    """
    what = f'a sequence of {length} {"odd " if odd else ""}ints >= {low}'
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f'{name} must be {what}, got {value!r}.')
    if len(value) != length:
        raise ValueError(f'{name} must be {what}, got {len(value)} items: '
                         f'{tuple(value)!r}.')
    for item in value:
        if not is_int(item):
            raise TypeError(f'{name} must be {what}, got {tuple(value)!r} '
                            f'with the non-int item {item!r}.')
        if item < low or (odd and item % 2 == 0):
            raise ValueError(f'{name} must be {what}, got {tuple(value)!r}.')
    return tuple(int(item) for item in value)


def check_indices(name: str, value: Any, high: int,
                  note: str = '') -> Tuple[int, ...]:
    """Return ``value`` as a tuple of ints, non-empty and strictly
    increasing, each in ``[0, high]``; ``note`` is added to the error
    message after the range (e.g. what each index means)."""
    what = (f'a non-empty, increasing sequence of ints in [0, {high}]'
            f'{note}')
    if isinstance(value, (str, bytes)) or not isinstance(
            value, Sequence) or not value:
        raise TypeError(f'{name} must be {what}, got {value!r}.')
    for item in value:
        if not is_int(item):
            raise TypeError(f'{name} must be {what}, got {tuple(value)!r} '
                            f'with the non-int item {item!r}.')
        if not 0 <= item <= high:
            raise ValueError(f'{name} must be {what}, got {tuple(value)!r}.')
    value = tuple(int(item) for item in value)
    if list(value) != sorted(set(value)):
        raise ValueError(f'{name} must be {what}, got {value!r}.')
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be True or False, got {value!r}.')
    return value


def check_choice(name: str, value: Any, choices: Sequence) -> Any:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)!r}, '
                         f'got {value!r}.')
    return value


def check_cfg(name: str, value: Any, optional: bool = False) -> Any:
    """Return ``value`` if it is a config dict with a ``type`` key (or
    ``None`` when ``optional``)."""
    if value is None and optional:
        return value
    if not isinstance(value, dict) or 'type' not in value:
        none = ' or None' if optional else ''
        raise TypeError(f'{name} must be a dict with a "type" key{none}, '
                        f"such as dict(type='BN'), got {value!r}.")
    return value


def check_init_cfg(init_cfg: Any, pretrained: Optional[str] = None) -> Any:
    """``init_cfg``, a dict, a list of dicts or ``None``; the deprecated
    ``pretrained`` path becomes a ``Pretrained`` init config (with a
    ``DeprecationWarning``)."""
    if pretrained is not None:
        if init_cfg is not None:
            raise ValueError('pretrained and init_cfg cannot both be set; '
                             'use init_cfg=dict(type="Pretrained", '
                             'checkpoint=...) alone.')
        if not isinstance(pretrained, str):
            raise TypeError(f'pretrained must be a checkpoint path (str), '
                            f'got {pretrained!r}.')
        warnings.warn(
            'pretrained is deprecated, use init_cfg=dict(type='
            f'"Pretrained", checkpoint={pretrained!r}) instead.',
            DeprecationWarning,
            stacklevel=3)
        return dict(type='Pretrained', checkpoint=pretrained)
    if init_cfg is not None and not isinstance(init_cfg, (dict, list)):
        raise TypeError(f'init_cfg must be a dict, a list of dicts or '
                        f'None, got {init_cfg!r}.')
    return init_cfg


# ------------------------------------------------------------- ResNet family
def check_out_stages(out_indices: Any, num_stages: int) -> Tuple[int, ...]:
    """``out_indices`` of an RLA-ResNet: stages ending with the last one
    (``num_stages - 1``), so that no stage is computed for nothing."""
    out_indices = check_indices('out_indices', out_indices, num_stages - 1,
                                ' (stages)')
    if out_indices[-1] != num_stages - 1:
        raise ValueError(
            f'out_indices={out_indices!r} leaves stage(s) after '
            f'{out_indices[-1]} computed for nothing (their parameters '
            'would never get a gradient); set '
            f'num_stages={out_indices[-1] + 1} to drop them.')
    return out_indices


def check_dcn(dcn: Any, conv_cfg: Any, stage_with_dcn: Any,
              num_stages: int) -> Tuple[Any, Tuple[bool, ...]]:
    """``(dcn, stage_with_dcn)``: a config dict or ``None`` that
    ``conv_cfg`` leaves free, and one flag per stage."""
    if dcn is not None:
        if not isinstance(dcn, dict):
            raise TypeError(f'dcn must be a config dict or None, got '
                            f'{dcn!r}.')
        if conv_cfg is not None:
            raise ValueError('dcn and conv_cfg cannot be used together; '
                             'set conv_cfg=None to use dcn.')
    stage_with_dcn = tuple(stage_with_dcn)
    if len(stage_with_dcn) != num_stages:
        raise ValueError(f'stage_with_dcn must have {num_stages} items '
                         f'(num_stages), got {stage_with_dcn!r}.')
    return dcn, stage_with_dcn


#: Where mmdet's Bottleneck runs a plugin.
PLUGIN_POSITIONS = ('after_conv1', 'after_conv2', 'after_conv3')


def check_plugins(plugins: Any, num_stages: int) -> Optional[list]:
    """Return mmdet's ``plugins`` argument as a list of dicts, each with a
    ``cfg`` dict, a ``position`` of :data:`PLUGIN_POSITIONS` and optional
    ``stages`` (``num_stages`` bools), or ``None``."""
    if plugins is None:
        return None
    if not isinstance(plugins, (list, tuple)):
        raise TypeError('plugins must be a list of dict(cfg=..., '
                        f'position=...), got {type(plugins).__name__}.')
    checked = []
    for i, plugin in enumerate(plugins):
        if not (isinstance(plugin, dict)
                and isinstance(plugin.get('cfg'), dict)):
            raise TypeError(f'plugins[{i}] must be a dict with a cfg dict, '
                            "such as dict(cfg=dict(type='ContextBlock', "
                            "ratio=1/16), position='after_conv3').")
        if plugin.get('position') not in PLUGIN_POSITIONS:
            raise ValueError(f'plugins[{i}] needs a position in '
                             f'{PLUGIN_POSITIONS}, got '
                             f'{plugin.get("position")!r}.')
        plugin = dict(plugin)
        stages = plugin.get('stages')
        if stages is not None:
            if not isinstance(stages, (list, tuple)) or len(stages) != \
                    num_stages:
                raise ValueError(f'plugins[{i}] stages must have '
                                 f'{num_stages} items (num_stages), got '
                                 f'{stages!r}.')
            plugin['stages'] = tuple(
                check_bool(f'plugins[{i}] stages', s) for s in stages)
        checked.append(plugin)
    return checked
