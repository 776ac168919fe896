"""Builder for backbone dicts written for the authors' mmdetection 2.x files.

``dict(type='RLA_ResNet', layers=[3, 4, 6, 3], ECA=[5, 5, 5, 7], ...)`` still
builds the same network, an :class:`RLAResNet` or :class:`RLAECANet`, and
warns with the new spelling of the dict. The authors' attention arguments
(``SE=True``, ``ECA=[...]``) are accepted here only; the backbones take
them as their one ``attention`` argument.
"""
import warnings
from typing import Optional, Sequence

from mmdet.registry import MODELS

from .rla_resnet import RLAECANet, RLAResNet

_DEPTH_OF_LAYERS = {
    tuple(blocks): depth
    for depth, (_, blocks) in RLAResNet.arch_settings.items()
    if depth >= 50
}


@MODELS.register_module(name='RLA_ResNet')
def build_legacy_rla_resnet(layers: Sequence[int] = (3, 4, 6, 3),
                            num_classes: Optional[int] = None,
                            rla_channel: int = 32,
                            SE: bool = False,
                            ECA: Optional[Sequence[int]] = None,
                            frozen_stages: int = -1,
                            norm_eval: bool = True,
                            style: str = 'pytorch',
                            zero_init_last_bn: bool = True,
                            groups: int = 1,
                            width_per_group: int = 64,
                            replace_stride_with_dilation: Optional[
                                Sequence[bool]] = None,
                            **kwargs) -> RLAResNet:
    """Build an RLA backbone from the authors' mmdetection 2.x arguments.

    ``num_classes`` belonged to the ImageNet classifier, which the detection
    backbone never built; it is accepted and has no effect. Other mmdet
    ``ResNet`` arguments (``out_indices``, ``norm_cfg``, ``with_cp``...) are
    passed through.
    """
    if 'block' in kwargs:
        raise ValueError("block is chosen by depth in RLAResNet; remove "
                         "'block' from the RLA_ResNet dict.")
    layers = tuple(layers)
    if layers not in _DEPTH_OF_LAYERS:
        raise ValueError(
            f'layers must be one of {sorted(_DEPTH_OF_LAYERS)} (depth '
            f'{sorted(_DEPTH_OF_LAYERS.values())}), got {list(layers)}.')
    if SE and ECA is not None:
        raise ValueError(
            f'SE=True and ECA={list(ECA)} ask for two attention modules, and '
            'a block has one: keep SE or ECA in the RLA_ResNet dict.')
    new = dict(depth=_DEPTH_OF_LAYERS[layers])
    if rla_channel != 32:
        new['rla_channel'] = rla_channel
    if SE:
        new['attention'] = 'se'
    if ECA is not None and tuple(ECA) != RLAECANet.default_eca_kernel_size:
        new['attention'] = dict(type='eca', kernel_size=tuple(ECA))
    if frozen_stages != -1:
        new['frozen_stages'] = frozen_stages
    if norm_eval is not True:
        new['norm_eval'] = norm_eval
    if style != 'pytorch':
        new['style'] = style
    if zero_init_last_bn is not True:
        new['zero_init_residual'] = zero_init_last_bn
    if groups != 1:
        new['groups'] = groups
    if width_per_group != 64:
        new['width_per_group'] = width_per_group
    if replace_stride_with_dilation is not None:
        flags = tuple(replace_stride_with_dilation)
        if len(flags) != 3:
            raise ValueError('replace_stride_with_dilation must have 3 items, '
                             f'got {flags!r}.')
        strides, dilations, dilation = [1], [1], 1
        for flag in flags:
            if flag:
                dilation *= 2
                strides.append(1)
            else:
                strides.append(2)
            dilations.append(dilation)
        new['strides'] = tuple(strides)
        new['dilations'] = tuple(dilations)
    new.update(kwargs)
    cls = RLAECANet if ECA is not None else RLAResNet
    spelled = ', '.join(f'{k}={v!r}' for k, v in new.items())
    warnings.warn(
        "type='RLA_ResNet' (the mmdetection 2.x spelling) is deprecated; "
        f"write dict(type='{cls.__name__}', {spelled}) instead.",
        DeprecationWarning,
        stacklevel=2)
    return cls(**new)
