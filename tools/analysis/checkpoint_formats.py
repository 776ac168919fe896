"""Load time and peak memory of one detector's weights as ``.pth`` and as
``.safetensors``, read by this package's checked loader.

Example:
    python tools/analysis/checkpoint_formats.py \
        configs/mask_rcnn/mask-rcnn_rla-r101_fpn_1x_coco.py --runs 7

Builds the config's model (random initialisation, no pretrained weights),
writes its ``state_dict`` and ``meta`` both ways into a temporary folder
(or ``--keep DIR``), then loads the two files alternately in this process
with :func:`rla_mmdet.checkpoint.load_checkpoint_file`, ``--runs`` times
each. Peak memory is the growth of the process's resident set over a load
(Linux's ``VmHWM``, reset before each load through ``/proc/self/clear_refs``,
after glibc's ``malloc_trim`` gave back what the previous load freed), so
it counts torch's tensors, which ``tracemalloc`` does not see. Prints
min / median of each and the file sizes.
"""
import argparse
import ctypes
import gc
import os
import os.path as osp
import runpy
import statistics
import tempfile
import time
from typing import Dict, List, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

runpy.run_path(
    osp.join(osp.dirname(osp.abspath(__file__)), '..', '_find_package.py'))

from rla_mmdet.checkpoint import load_checkpoint_file  # noqa: E402
from rla_mmdet.converters import build_detector, checkpoint_bytes  # noqa


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}')


def _release_free_memory() -> None:
    """Give the memory freed by the last load back to the system (glibc
    keeps freed blocks for reuse, and a load that reuses them would show
    no growth)."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as it is
        pass


def _measure(path: str) -> Tuple[float, float]:
    """Seconds and peak resident growth (MiB) of one load of ``path``."""
    _release_free_memory()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM to the current resident set
    before = _status_kib('VmRSS')
    start = time.perf_counter()
    checkpoint = load_checkpoint_file(path)
    seconds = time.perf_counter() - start
    peak = _status_kib('VmHWM') - before
    assert checkpoint['state_dict']
    del checkpoint
    return seconds, peak / 1024


def write_files(config: str, folder: str) -> Dict[str, str]:
    """The model of ``config`` saved as ``weights.pth`` and
    ``weights.safetensors`` in ``folder``."""
    model = build_detector(config, num_classes=80)
    checkpoint = dict(state_dict=model.state_dict(),
                      meta=dict(config=osp.basename(config)))
    paths = {}
    for fmt, name in (('pth', 'weights.pth'),
                      ('safetensors', 'weights.safetensors')):
        paths[fmt] = osp.join(folder, name)
        with open(paths[fmt], 'wb') as f:
            f.write(checkpoint_bytes(checkpoint, fmt))
    return paths


def run(paths: Dict[str, str], runs: int) -> Dict[str, List[Tuple]]:
    results: Dict[str, List[Tuple]] = {fmt: [] for fmt in paths}
    for i in range(runs):
        order = list(paths) if i % 2 == 0 else list(paths)[::-1]
        for fmt in order:
            results[fmt].append(_measure(paths[fmt]))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='detector config')
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--keep', help='write the files here and keep them')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        paths = write_files(args.config, folder)
        results = run(paths, args.runs)
        print(f'{args.config}: {args.runs} loads of each, alternating')
        print(f'{"format":12} {"MiB":>8} {"time min":>9} {"median":>8} '
              f'{"peak MiB min":>13} {"median":>8}')
        for fmt, rows in results.items():
            times, peaks = zip(*rows)
            size = os.path.getsize(paths[fmt]) / 2**20
            print(f'{fmt:12} {size:8.1f} {min(times):8.3f}s '
                  f'{statistics.median(times):7.3f}s {min(peaks):13.1f} '
                  f'{statistics.median(peaks):8.1f}')
    return results


if __name__ == '__main__':
    main()
