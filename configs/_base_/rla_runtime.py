# Runtime hooks of the RLA configs (registered by rla_mmdet):
# - CheckpointIOHook switches on rla_mmdet's checkpoint IO for the run:
#   atomic checkpoint writes, and loading (load_from, --resume) that only
#   unpickles tensors and MMEngine's types and names a bad file in one
#   sentence; importing rla_mmdet alone leaves MMEngine's IO as it is;
# - NonFiniteLossHook stops training at the first NaN/inf loss, naming the
#   iteration and keeping the last good checkpoint;
# - EpochSeedHook seeds every epoch with seed + epoch, so that --resume from
#   an epoch checkpoint continues exactly like the uninterrupted run.
custom_hooks = [
    dict(type='CheckpointIOHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='EpochSeedHook'),
]
