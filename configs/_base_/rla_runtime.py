# Runtime hooks of the RLA configs (registered by rla_mmdet):
# - NonFiniteLossHook stops training at the first NaN/inf loss, naming the
#   iteration and keeping the last good checkpoint;
# - EpochSeedHook seeds every epoch with seed + epoch, so that --resume from
#   an epoch checkpoint continues exactly like the uninterrupted run.
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='EpochSeedHook'),
]
