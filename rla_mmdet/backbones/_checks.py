"""Argument checks of the RLA backbones, kept out of the architecture.

Every check raises ``TypeError`` or ``ValueError`` with one sentence that names
the argument, the value it got and what is allowed, so that a mistake in a
config file is reported where it was made and never survives ``python -O``.
The backbones call one function each (:func:`check_resnet_args`,
:func:`check_mobilenet_v2_args`) and build from the checked values.
"""
import warnings
from numbers import Integral
from typing import Any, Dict, Optional, Sequence, Tuple


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


# ------------------------------------------------------------------ RLAResNet
#: The keys of each attention type's config at the backbone level.
_ATTENTION_KEYS = dict(se=('reduction', ), eca=('kernel_sizes', ))


def check_attention(attention: Any,
                    se: Any = False,
                    se_reduction: Any = 16,
                    eca_kernel_sizes: Any = None,
                    default: Optional[str] = None,
                    default_eca_kernel_sizes: Sequence[int] = (5, 5, 5, 7),
                    owner: str = 'RLAResNet') -> Optional[Dict[str, Any]]:
    """The attention of an RLA-ResNet's blocks, as one config or ``None``.

    ``attention`` is ``None`` (the default of ``owner``: ``default``),
    ``'se'``, ``'eca'``, ``dict(type='se', reduction=16)`` or
    ``dict(type='eca', kernel_sizes=(5, 5, 5, 7))`` (one odd kernel size per
    stage). The older arguments are aliases: ``se=True`` is ``'se'``,
    ``se_reduction`` its ``reduction``, ``eca_kernel_sizes`` the ECA kernel
    sizes (``'default'`` is accepted as ``None``); a value that contradicts
    ``attention``, or SE and ECA together, is refused.

    Returns:
        ``None`` or a dict with all the keys of its type, such as
        ``dict(type='eca', kernel_sizes=(5, 5, 5, 7))``.
    """
    allowed = ("None, 'se', 'eca', dict(type='se', reduction=16) or "
               "dict(type='eca', kernel_sizes=(5, 5, 5, 7))")
    if attention is None:
        cfg = None
    elif isinstance(attention, str):
        cfg = dict(type=attention)
    elif isinstance(attention, dict):
        cfg = dict(attention)
    else:
        raise TypeError(f'attention must be {allowed}, got {attention!r}.')
    if cfg is not None:
        if cfg.get('type') not in _ATTENTION_KEYS:
            raise ValueError(f'attention must be {allowed}, got '
                             f'{attention!r}.')
        unknown = set(cfg) - {'type', *_ATTENTION_KEYS[cfg['type']]}
        if unknown:
            raise ValueError(
                f'attention of type {cfg["type"]!r} takes the keys '
                f'{_ATTENTION_KEYS[cfg["type"]]}, got {attention!r} with '
                f'{sorted(unknown)}.')
    se = check_bool('se', se)
    se_reduction = check_int('se_reduction', se_reduction, 1)
    if isinstance(eca_kernel_sizes, str) and eca_kernel_sizes == 'default':
        eca_kernel_sizes = None
    if eca_kernel_sizes is not None:
        eca_kernel_sizes = check_int_tuple(
            'eca_kernel_sizes', eca_kernel_sizes, 4, low=1, odd=True)
    if se and eca_kernel_sizes is not None:
        raise ValueError(
            f'se=True and eca_kernel_sizes={eca_kernel_sizes} ask for two '
            'attention modules, and a block has one: pass attention=\'se\' '
            "or attention=dict(type='eca', kernel_sizes=...) alone.")
    alias = 'se' if se else ('eca' if eca_kernel_sizes is not None else None)
    if cfg is None:
        cfg = dict(type=alias or default) if alias or default else None
    elif alias is not None and alias != cfg['type']:
        given = 'se=True' if se else f'eca_kernel_sizes={eca_kernel_sizes}'
        raise ValueError(f'{given} asks for {alias!r} attention, and '
                         f'attention={attention!r} for {cfg["type"]!r}; pass '
                         'attention alone.')
    if default is not None and (cfg is None or cfg['type'] != default):
        raise ValueError(
            f'{owner} has {default!r} attention in every block, got '
            f'attention={attention!r}, se={se}; use RLAResNet for another '
            'attention.')
    if cfg is None:
        if se_reduction != 16:
            raise ValueError(f'se_reduction={se_reduction} applies to SE '
                             "attention; pass attention='se' with it.")
        return None
    if cfg['type'] == 'se':
        reduction = cfg.get('reduction', se_reduction)
        if se_reduction not in (16, reduction):
            raise ValueError(f'se_reduction={se_reduction} contradicts '
                             f'attention={attention!r}; pass one of them.')
        return dict(type='se', reduction=check_int(
            'reduction of attention', reduction, 1))
    if se_reduction != 16:
        raise ValueError(f'se_reduction={se_reduction} applies to SE '
                         f'attention, not to attention={cfg["type"]!r}.')
    sizes = cfg.get('kernel_sizes', eca_kernel_sizes)
    if sizes is None:
        sizes = default_eca_kernel_sizes
    sizes = check_int_tuple('kernel_sizes of attention', sizes, 4, low=1,
                            odd=True)
    if eca_kernel_sizes not in (None, sizes):
        raise ValueError(f'eca_kernel_sizes={eca_kernel_sizes} contradicts '
                         f'attention={attention!r}; pass one of them.')
    return dict(type='eca', kernel_sizes=sizes)


def check_resnet_args(model: Any, depth: Any, rla_channel: Any,
                      in_channels: Any, stem_channels: Any,
                      base_channels: Any, num_stages: Any, strides: Any,
                      dilations: Any, out_indices: Any, style: Any,
                      deep_stem: Any, avg_down: Any, frozen_stages: Any,
                      conv_cfg: Any, norm_cfg: Any, norm_eval: Any, dcn: Any,
                      stage_with_dcn: Any, plugins: Any, with_cp: Any,
                      zero_init_residual: Any, attention: Any, se: Any,
                      se_reduction: Any, eca_kernel_sizes: Any, groups: Any,
                      width_per_group: Any) -> Dict[str, Any]:
    """The arguments of :class:`RLAResNet` ``model``, checked and normalised.

    Returns every argument under its own name (ints as ``int``, sequences as
    tuples, ``stem_channels`` resolved), with ``attention`` resolved by
    :func:`check_attention` (``se``, ``se_reduction`` and
    ``eca_kernel_sizes`` folded into it; ``eca_kernel_sizes`` is returned as
    the ECA kernel sizes in use, or ``None``).
    """
    arch = model.arch_settings
    if not is_int(depth) or depth not in arch:
        raise ValueError(f'depth must be one of {tuple(arch)}, got '
                         f'{depth!r}.')
    num_stages = check_int('num_stages', num_stages, 1, 4)
    base_channels = check_int('base_channels', base_channels, 1)
    if stem_channels is None:
        stem_channels = base_channels
    out_indices = check_indices('out_indices', out_indices, num_stages - 1,
                                ' (stages)')
    if out_indices[-1] != num_stages - 1:
        raise ValueError(
            f'out_indices={out_indices!r} leaves stage(s) after '
            f'{out_indices[-1]} computed for nothing (their parameters '
            'would never get a gradient); set '
            f'num_stages={out_indices[-1] + 1} to drop them.')
    attention = check_attention(
        attention, se, se_reduction, eca_kernel_sizes,
        model.default_attention, model.default_eca_kernel_sizes,
        type(model).__name__)
    if plugins is not None:
        raise ValueError('plugins are not supported by the RLA blocks; '
                         f'set plugins=None (got {plugins!r}).')
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
    return dict(
        depth=int(depth),
        rla_channel=check_int('rla_channel', rla_channel, 1),
        in_channels=check_int('in_channels', in_channels, 1),
        stem_channels=check_int('stem_channels', stem_channels, 1),
        base_channels=base_channels,
        num_stages=num_stages,
        strides=check_int_tuple('strides', strides, num_stages),
        dilations=check_int_tuple('dilations', dilations, num_stages),
        out_indices=out_indices,
        style=check_choice('style', style, ('pytorch', 'caffe')),
        deep_stem=check_bool('deep_stem', deep_stem),
        avg_down=check_bool('avg_down', avg_down),
        frozen_stages=check_int('frozen_stages', frozen_stages, -1,
                                num_stages),
        conv_cfg=conv_cfg,
        norm_cfg=check_cfg('norm_cfg', norm_cfg),
        norm_eval=check_bool('norm_eval', norm_eval),
        dcn=dcn,
        stage_with_dcn=stage_with_dcn,
        with_cp=check_bool('with_cp', with_cp),
        zero_init_residual=check_bool('zero_init_residual',
                                      zero_init_residual),
        attention=attention,
        eca_kernel_sizes=(attention['kernel_sizes'] if attention
                          and attention['type'] == 'eca' else None),
        groups=check_int('groups', groups, 1),
        width_per_group=check_int('width_per_group', width_per_group, 1))


# ------------------------------------------------------------- RLAMobileNetV2
def check_mobilenet_v2_args(model: Any, widen_factor: Any, out_indices: Any,
                            frozen_stages: Any, conv_cfg: Any, norm_cfg: Any,
                            act_cfg: Any, norm_eval: Any, with_cp: Any,
                            rla_channel: Any, eca: Any) -> Dict[str, Any]:
    """The arguments of :class:`RLAMobileNetV2` ``model``, checked and
    normalised, each under its own name."""
    if isinstance(widen_factor, bool) or not isinstance(
            widen_factor, (int, float)):
        raise TypeError(f'widen_factor must be a number > 0, got '
                        f'{widen_factor!r}.')
    if not widen_factor > 0:
        raise ValueError(f'widen_factor must be > 0, got {widen_factor}.')
    head = model.head_index
    if conv_cfg is not None and not isinstance(conv_cfg, dict):
        raise TypeError(f'conv_cfg must be a dict or None, got '
                        f'{conv_cfg!r}.')
    return dict(
        widen_factor=float(widen_factor),
        out_indices=check_indices('out_indices', out_indices, head,
                                  f' (0-6: stages, {head}: the head)'),
        frozen_stages=check_int('frozen_stages', frozen_stages, -1,
                                len(model.arch_settings)),
        conv_cfg=conv_cfg,
        norm_cfg=check_cfg('norm_cfg', norm_cfg),
        act_cfg=check_cfg('act_cfg', act_cfg),
        norm_eval=check_bool('norm_eval', norm_eval),
        with_cp=check_bool('with_cp', with_cp),
        rla_channel=check_int('rla_channel', rla_channel, 1),
        eca=check_bool('eca', eca))
