"""Run the attacks of issue 27 (items 1-12) against a package tree and
print what each did: loaded, refused (the exception), crashed (the
signal), timed out, ran code, or wrote a file outside the cache.

Not a test module: a script, for the figures of before and after::

    python tests/attack_report.py --tree DIR [--cases NAME ...] [--json OUT]

Each attack runs in a fresh interpreter (``PYTHONPATH=DIR``, its own
temporary working folder and ``TORCH_HOME``) whose address space is capped
at its size after its imports plus 2 GiB, under a wall-clock bound counted
from the end of its imports. The files are written here, with
:mod:`pickle_attacks`, by the interpreter that runs this script: run it
with the stack's own Python.
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional

import torch

import pickle_attacks as attacks
from helpers import LocalServer

#: Memory a child may take above what its imports took.
HEADROOM = 2 << 30
#: Seconds an attack may take after the child's imports.
BOUND_S = 30.0
#: Seconds the child's imports may take (the CPU may be shared).
IMPORT_S = 240.0

#: Runs first in every child: cap the address space after the imports of
#: the case (``SETUP``), then say READY and run the case (``ATTACK``).
_CHILD = '''
import json, os, resource, sys, time
import torch
A = json.loads(sys.argv[1])
{setup}
with open('/proc/self/status') as f:
    _size = next(int(l.split()[1]) * 1024 for l in f
                 if l.startswith('VmSize:'))
resource.setrlimit(resource.RLIMIT_AS, (_size + {headroom},) * 2)
_REFUSALS = ('UnsafeCheckpointError', 'ValueError', 'TypeError',
             'FileNotFoundError', 'DownloadError', 'ConnectionError')

def say(outcome, note='', seconds=None):
    print('RESULT ' + json.dumps([outcome, str(note)[:600], seconds]),
          flush=True)

def describe(value):
    if isinstance(value, dict) and 'x' in value:
        value = value['x']
    elif isinstance(value, dict) and 'state_dict' in value:
        value = value['state_dict']
    if isinstance(value, torch.Tensor):
        try:
            stored = value.untyped_storage().nbytes()
        except Exception:
            stored = value.storage().nbytes()
        head = ''
        if value.device.type == 'cpu' and value.numel() <= 1 << 20:
            head = ' values ' + repr(value.flatten()[:6].tolist())
        return (f'tensor {{tuple(value.shape)}} {{value.dtype}} on '
                f'{{value.device}}, storage {{stored}} B{{head}}')
    if isinstance(value, (list, tuple, dict)):  # never its whole repr
        items = list(value)[:4]
        if isinstance(value, dict):
            items = [value[k] for k in items]
        inner = ', '.join(type(v).__name__ + ('' if isinstance(
            v, (list, tuple, dict)) else ' ' + repr(v)[:60]) for v in items)
        return f'{{type(value).__name__}} of {{len(value)}}: [{{inner}}]'
    return type(value).__name__ + ': ' + repr(value)[:120]

def attempt(call, note=describe):
    start = time.perf_counter()
    try:
        value = call()
    except MemoryError:
        say('MemoryError', '', time.perf_counter() - start)
        return None
    except Exception as exc:
        kind = type(exc).__name__
        verb = 'refused' if kind in _REFUSALS else 'raised'
        message = ' '.join(str(exc)[:600].replace(os.getcwd(), '.').split())
        say(f'{{verb}}: {{kind}}', f'({{len(str(exc))}} ch) {{message}}',
            time.perf_counter() - start)
        return None
    seconds = time.perf_counter() - start
    say('loaded', note(value), seconds)
    return value

print('READY', flush=True)
{attack}
'''

_LOAD = 'from rla_mmdet.checkpoint import load_checkpoint_file as load'


class Case:
    """One attack: ``prepare(work)`` writes its files into the folder
    ``work`` and returns the child's arguments (JSON); ``check(work,
    outcome, note)`` may turn the outcome into what it did outside the
    child (a marker created, a file outside the cache)."""

    def __init__(self, item: int, name: str, attack: str, setup: str,
                 prepare: Callable[[str], dict], check: Optional[Callable]
                 = None, bound: float = BOUND_S, env: Optional[dict] = None,
                 before: Optional[Callable] = None) -> None:
        self.item, self.name, self.attack = item, name, attack
        self.setup, self.prepare, self.check = setup, prepare, check
        self.bound, self.env, self.before = bound, env or {}, before
        self.descr, self.attack_code = name, ''
        self.servers: List[LocalServer] = []
        self.extra: List[subprocess.Popen] = []


def _child_env(tree: str, work: str, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'TORCH_HOME', 'RLA_MMDET_MAX_DOWNLOAD_BYTES')}
    env.update(PYTHONPATH=tree, TORCH_HOME=osp.join(work, 'torch_home'),
               PYTHONDONTWRITEBYTECODE='1', OMP_NUM_THREADS='1')
    env.update(extra)
    return env


def start_child(tree: str, work: str, case: Case, args: dict):
    code = _CHILD.format(setup=case.setup, attack=case.attack_code,
                         headroom=HEADROOM)
    out = open(osp.join(work, f'{case.name}.out'), 'w+')
    proc = subprocess.Popen(
        [sys.executable, '-c', code, json.dumps(args)], stdout=out,
        stderr=subprocess.STDOUT, cwd=work,
        env=_child_env(tree, work, case.env), start_new_session=True)
    return proc, out


def wait_child(proc, out, bound: float,
               until: Optional[Callable[[], bool]] = None) -> dict:
    """Wait for ``proc``: its imports up to :data:`IMPORT_S`, then
    ``bound`` seconds (or until ``until()``: then it is killed)."""
    start = time.perf_counter()
    ready = None
    status = rusage = None
    how = ''
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.perf_counter()
        if ready is None:
            out.seek(0)
            if 'READY\n' in out.read():
                ready = now
        if until is not None and ready is not None and until():
            how = 'killed by harness (SIGKILL)'
        elif ready is None and now - start > IMPORT_S:
            how = f'imports took over {IMPORT_S:g} s'
        elif ready is not None and now - ready > bound:
            how = f'timed out ({bound:g} s)'
        if how:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    proc.returncode = status
    out.seek(0)
    text = out.read()
    out.close()
    result = dict(wall=time.perf_counter() - (ready or start),
                  rss_mib=rusage.ru_maxrss / 1024, text=text)
    results = [json.loads(line[7:]) for line in text.splitlines()
               if line.startswith('RESULT ')]
    if how:
        result.update(outcome=how, note='')
    elif os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        result.update(outcome=f'crashed: {sig}', note='')
    elif results:
        outcome, note, seconds = results[-1]
        result.update(outcome=outcome, note=note, seconds=seconds)
        if len(results) > 1:
            result['all'] = results
    else:
        tail = [line for line in text.splitlines() if line.strip()][-1:]
        result.update(outcome=f'exited {os.WEXITSTATUS(status)}',
                      note=' '.join(tail)[:200])
    if 'seconds' not in result:
        result['seconds'] = result['wall']
    return result


def run_case(tree: str, case: Case, keep: bool = False) -> dict:
    work = tempfile.mkdtemp(prefix=f'attack-{case.name}-')
    try:
        args = case.prepare(work)
        args.setdefault('tree', tree)
        if case.before is not None:
            case.before(tree, work, args)
        proc, out = start_child(tree, work, case, args)
        result = wait_child(proc, out, case.bound)
        if case.check is not None:
            case.check(work, args, result)
        return result
    finally:
        for server in case.servers:
            server.close()
        case.servers = []
        for proc in case.extra:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        case.extra = []
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------- the cases
def _file_case(item: int, name: str, write: Callable[[str], None],
               call: str = 'load(A["path"])', setup: str = _LOAD,
               **kwargs) -> Case:
    def prepare(work):
        path = osp.join(work, f'{name}.pth')
        write(path)
        return dict(path=path, size=osp.getsize(path))

    case = Case(item, name, '', setup, prepare, **kwargs)
    case.attack_code = f'attempt(lambda: {call})'
    return case


def _cache(work: str) -> str:
    return osp.join(work, 'torch_home', 'hub', 'checkpoints')


def _files_under(folder: str) -> List[str]:
    return sorted(osp.join(d, f) for d, _, fs in os.walk(folder) for f in fs)


def _serve(work: str) -> LocalServer:
    """A server of a new folder in ``work``, closed after the case."""
    case = _current.case
    root = osp.join(work, f'served{len(case.servers)}')
    os.makedirs(root)
    server = LocalServer(root)
    case.servers.append(server)
    return server


def _save_w(path: str, value: float, numel: int = 2) -> None:
    torch.save({'state_dict': {'w': torch.full((numel, ), float(value))}}, path)


def item1_cases() -> List[Case]:
    cases = []
    for name, target in (('url_dotdot', '..%2F..%2F..%2Fescape.pth'),
                         ('url_absolute', None)):
        def prepare(work, target=target):
            server = _serve(work)
            outside = osp.join(work, 'abs', 'x.pth')
            os.makedirs(osp.dirname(outside))
            served = target or urllib.parse.quote(outside, safe='')
            attacks.write_ascii_checkpoint_with_import(
                osp.join(server.root, served), 'import sys')
            return dict(url=server.url(served),
                        outside=[osp.join(work, 'escape.pth'), outside])

        def check(work, args, result):
            made = [p for p in args['outside'] if osp.exists(p)]
            cached = [osp.relpath(p, _cache(work))
                      for p in _files_under(_cache(work))
                      if not p.endswith(('.lock', '.holder'))]
            if made:
                result['note'] = (f'created {", ".join(made)}; '
                                  + result['note'])
                result['outcome'] = 'file written outside the cache'
            else:
                result['note'] = (f'nothing outside the cache; cached as '
                                  f'{cached}; ' + result['note'])

        case = Case(1, name, '', _LOAD, prepare, check)
        case.attack_code = 'attempt(lambda: load(A["url"]))'
        case.descr = ('served %2F..%2F name' if target else
                      'served %2F<abs path> name')
        cases.append(case)
    return cases


def item2_case() -> Case:
    def prepare(work):
        a, b = _serve(work), _serve(work)
        _save_w(osp.join(a.root, 'x.pth'), 1)
        _save_w(osp.join(b.root, 'x.pth'), 2)
        return dict(a=a.url('x.pth'), b=b.url('x.pth'))

    def check(work, args, result):
        b = _current.case.servers[1]
        asked = sum(b.gets.values())
        result['note'] = (f'second host asked {asked} times; ' +
                          result['note'])
        if not asked:
            result['note'] = "second host's file not requested; " + \
                result['note']

    case = Case(2, 'two_hosts', '', _LOAD, prepare, check)
    case.descr = 'x.pth on host:port A, then on B'
    case.attack_code = ('load(A["a"])\n'
                        'attempt(lambda: load(A["b"]), _w_note)')
    case.setup = _LOAD + '\n' + _W_NOTE
    return case


_W_NOTE = '''
def _w_note(value):
    return 'loaded w=%g' % value['state_dict']['w'][0].item()
'''


def _cache_bytes(work: str) -> str:
    files = [p for p in _files_under(_cache(work))
             if not p.endswith(('.lock', '.holder'))]
    partial = [p for p in files if p.endswith('.partial')]
    return (f'cache holds {sum(osp.getsize(p) for p in files)} B in '
            f'{len(files)} file(s), {len(partial)} partial')


def item3_cases() -> List[Case]:
    cap = 1 << 20

    def nolength_prepare(work):
        server = _serve(work)
        _save_w(osp.join(server.root, 'big.pth'), 1, numel=2 << 20)  # 8 MiB of float32
        return dict(url=server.url('big.pth', 'nolength'))

    def cache_check(work, args, result):
        result['note'] = _cache_bytes(work) + '; ' + result['note']

    nolength = Case(3, 'no_length_over_cap', '', _LOAD, nolength_prepare,
                    cache_check,
                    env={'RLA_MMDET_MAX_DOWNLOAD_BYTES': str(cap)})
    nolength.attack_code = 'attempt(lambda: load(A["url"]))'
    nolength.descr = '8 MiB, no Content-Length, cap 1 MiB (env)'

    def drip_prepare(work, name='drip'):
        server = _serve(work)
        server.drip_s = 2.0
        _save_w(osp.join(server.root, 'x.pth'), 1)
        _save_w(osp.join(server.root, 'y.pth'), 2)
        return dict(url=server.url('x.pth', 'drip'),
                    other=server.url('y.pth'))

    drip = Case(3, 'drip', '', _LOAD, drip_prepare, cache_check, bound=75)
    drip.attack_code = 'attempt(lambda: load(A["url"]))'
    drip.descr = '1 B / 2 s, default limits, bound 75 s'

    def hold(tree, work, args):
        """Another process downloads the drip URL and holds its lock."""
        case = _current.case
        holder = Case(3, 'holder', '', _LOAD, None)
        holder.attack_code = 'load(A["url"])'
        proc, out = start_child(tree, work, holder, args)
        case.extra = [proc]
        start = time.perf_counter()
        while time.perf_counter() - start < IMPORT_S:
            if any(p.endswith('.partial') and osp.getsize(p)
                   for p in _files_under(_cache(work))):
                return
            time.sleep(0.2)

    held = Case(3, 'held_lock', '', _LOAD,
                lambda work: drip_prepare(work, 'held_lock'),
                bound=40, before=hold)
    held.attack_code = ('attempt(lambda: load(A["other"]), '
                        'lambda v: "B waited no longer than its load")')
    held.descr = 'load URL B while URL A drips'

    def kill_first(tree, work, args):
        case = _current.case
        first = Case(3, 'first', '', _LOAD, None)
        first.attack_code = 'load(A["url"])'
        proc, out = start_child(tree, work, first, args)

        def grown():
            return any(p.endswith('.partial') and osp.getsize(p) > 2
                       for p in _files_under(_cache(work)))

        wait_child(proc, out, 60, until=grown)
        args['left'] = _cache_bytes(work)
        case.servers[0].drip_s = 0

    def killed_check(work, args, result):
        result['note'] = (f'after SIGKILL: {args["left"]}; after the next '
                          f'load: {_cache_bytes(work)}; ' + result['note'])

    killed = Case(3, 'killed_download', '', _LOAD,
                  lambda work: drip_prepare(work, 'killed_download'),
                  killed_check, before=kill_first)
    killed.attack_code = 'attempt(lambda: load(A["url"]))'
    killed.descr = 'SIGKILL mid-download, then load again'
    return [nolength, drip, held, killed]


def _storage(**pid) -> Callable[[str], None]:
    return lambda p: attacks.write_storage_zip(p, attacks.storage_id(**pid))


def file_cases() -> List[Case]:
    numpy_setup = _LOAD + '\nimport numpy'
    w = attacks
    spec = [
        (4, 'over_claim_16', '16 floats over an 8-byte record',
         lambda p: w.write_storage_over_claim(p, 16), {}),
        (4, 'over_claim_16m', '16M floats over 8 bytes',
         w.write_storage_over_claim_16m, {}),
        (4, 'over_claim_big', '16M floats, byteorder big',
         w.write_storage_over_claim_big_endian, {}),
        (5, 'legacy_unfilled', 'legacy storage not in the key list',
         w.write_legacy_unlisted_storage, {}),
        (6, 'shared_dag', '61-level list/tuple DAG (value)',
         w.write_shared_dag, {}),
        (6, 'shared_dag_size', 'the DAG handed to torch.Size',
         lambda p: w.write_shared_dag(p, use='torch.Size'), {}),
        (6, 'stride0_2e28', 'stride-0 float16 (2**28,)',
         lambda p: w.write_repeated_view(p, (2**28, )), {}),
        (6, 'stride0_2x30', 'stride-0 float16 (2,)*30',
         lambda p: w.write_repeated_view(p, (2, ) * 30), {}),
        (7, 'deflated', 'deflated 512 MiB record',
         lambda p: w.write_deflated_record(p, 512 << 20), {}),
        (9, 'complex_10e400', 'complex(10**400)', w.write_huge_complex, {}),
        (9, 'huge_frame', 'FRAME of 2**63-1 bytes', w.write_huge_frame, {}),
        (9, 'text_pid', 'text persistent id', w.write_text_persistent_id,
         {}),
        (9, 'legacy_unknown_key', 'legacy key list names an unknown key',
         lambda p: w.write_legacy(p, w.storage_id(view=True), ['0', '1'],
                                  [(2, b'\0' * 8)] * 2), {}),
        (9, 'location_hpu', "location 'hpu'", _storage(location='hpu'), {}),
        (10, 'class_value', 'torch.UntypedStorage as a value',
         lambda p: w.write_global_as_value(p, 'torch', 'UntypedStorage'),
         {}),
        (10, 'constructor_value', '_rebuild_tensor_v2 as a value',
         lambda p: w.write_global_as_value(p, 'torch._utils',
                                           '_rebuild_tensor_v2'), {}),
        (10, 'os_floatstorage', 'os.FloatStorage storage type',
         _storage(kind=('os', 'FloatStorage')), {}),
        (10, 'legacy_module_id', "legacy ('module', torch.Tensor) id",
         w.write_legacy_module_id, {}),
        (10, 'numpy_U2', "numpy 'U2', restricted=False",
         lambda p: w.write_numpy_dtype(p, 'U2'),
         dict(call='load(A["path"], restricted=False)', setup=numpy_setup)),
        (10, 'numpy_M8', "numpy 'M8[s]', restricted=False",
         lambda p: w.write_numpy_dtype(p, 'M8[s]'),
         dict(call='load(A["path"], restricted=False)', setup=numpy_setup)),
        (10, 'location_meta', "location 'meta', map_location=None",
         _storage(location='meta'),
         dict(call='load(A["path"], map_location=None)')),
    ]
    cases = []
    for item, name, descr, write, kwargs in spec:
        case = _file_case(item, name, write, **kwargs)
        case.descr = descr
        cases.append(case)
    return cases


_OPENS = _LOAD + '''
import sys
_opens = []
def _hook(event, args):
    if event == 'open' and args and isinstance(args[0], (str, bytes)) \\
            and os.path.abspath(os.fsdecode(args[0])) == A['path']:
        _opens.append(1)
        if len(_opens) == 2:  # the bytes change after the first read
            os.replace(A['other'], A['path'])
sys.addaudithook(_hook)
'''


def item8_case() -> Case:
    def prepare(work):
        path, other = osp.join(work, 'w.pth'), osp.join(work, 'other.pth')
        _save_w(path, 1)
        _save_w(other, 2)
        with open(path, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        return dict(path=path, other=other, sha256=digest)

    case = Case(8, 'one_read', '', _OPENS + _W_NOTE, prepare)
    case.attack_code = (
        'attempt(lambda: load(A["path"], sha256=A["sha256"]), '
        'lambda v: _w_note(v) + " (hashed file: w=1), opens of the path: "'
        ' + str(len(_opens)))')
    case.descr = 'sha256 given; file replaced at the 2nd open'
    return case


_CONVERT = '''
from rla_mmdet import converters
import mmdet.models
'''


def item11_cases() -> List[Case]:
    def check(work, args, result):
        made = osp.exists(args['dst'])
        result['note'] = f'output written: {made}; ' + result['note']

    def prepare(write, name):
        def go(work):
            src, dst = osp.join(work, name), osp.join(work, 'out.pth')
            write(src)
            return dict(src=src, dst=dst, size=osp.getsize(src))
        return go

    wide = Case(11, 'conv_wide_hidden', '', _CONVERT,
                prepare(attacks.write_wide_hidden_state, 'wide.pth.tar'),
                check)
    wide.attack_code = ('attempt(lambda: converters.imagenet_to_mmdet('
                        'A["src"], A["dst"]), lambda v: "converted")')
    wide.descr = 'imagenet_to_mmdet, 100000 hidden channels'
    many = Case(11, 'conv_many_classes', '', _CONVERT,
                prepare(attacks.write_many_classes, 'many.pth'), check)
    many.attack_code = (
        'attempt(lambda: converters.mmdet2_to_mmdet3(A["src"], A["dst"], '
        'config=os.path.join(A["tree"], "configs/faster_rcnn/'
        'faster-rcnn_rla-r50_fpn_1x_coco.py")), lambda v: "converted")')
    many.descr = 'mmdet2_to_mmdet3 --config, 50000 classes'
    dense = Case(11, 'conv_many_dense', '', _CONVERT,
                 prepare(attacks.write_many_classes_dense, 'dense.pth'),
                 check)
    dense.attack_code = many.attack_code
    dense.descr = 'the same, no stride-0 view in the file'
    return [wide, many, dense]


_INFER = '''
from mmdet.apis import init_detector
CONFIG = os.path.join(A['tree'], 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py')
'''


def item12_cases() -> List[Case]:
    cases = []
    for how in ('path', 'url'):
        def prepare(work, how=how):
            marker = osp.join(work, 'MARKER')
            path = osp.join(work, 'evil.pth')
            attacks.write_reduce_payload(path, marker)
            args = dict(path=path, marker=marker)
            if how == 'url':
                server = _serve(work)
                shutil.copy(path, osp.join(server.root, 'evil.pth'))
                args['path'] = server.url('evil.pth')
            return args

        def check(work, args, result):
            if osp.exists(args['marker']):
                result['note'] = 'marker created; ' + result['note']
                result['outcome'] = 'code ran'
            else:
                result['note'] = 'no marker; ' + result['note']

        case = Case(12, f'init_detector_{how}', '', _INFER, prepare, check,
                    bound=120)
        case.attack_code = ('attempt(lambda: init_detector(CONFIG, '
                            'A["path"], device="cpu"), '
                            'lambda v: type(v).__name__)')
        case.descr = f'__reduce__ payload by {how}'
        cases.append(case)
    return cases


def all_cases() -> List[Case]:
    cases = (item1_cases() + [item2_case()] + item3_cases() + file_cases()
             + [item8_case()] + item11_cases() + item12_cases())
    cases.sort(key=lambda c: c.item)
    return cases


#: ``.case``: the case this thread runs (its prepare and check functions
#: add servers and processes to it).
_current = threading.local()


#: What the merged table takes from a note: (pattern, how to say it).
_FACTS = [
    (r'second host asked (\d+) times', r'B asked \1x'),
    (r'loaded (w=\d).*opens of the path: (\d+)', r'\1, \2 opens'),
    (r'after the next load: .* (\d+) partial', r'\1 partial left'),
    (r'^cache holds ([1-9]\d*) B', r'kept \1 B'),
    (r'on meta, storage', 'meta tensor'),
    (r'^(_StorageMeta|function|type):', r'a \1'),
    (r'storage 64 B values', 'heap values'),
    (r'storage 8 B values \[(?!0\.0, 0\.0)', 'uninit values'),
]


def _short(row: dict) -> str:
    """An outcome in a few words, for the merged table."""
    outcome = row['outcome'].replace('refused: ', '').replace(
        'UnsafeCheckpointError', 'Unsafe').replace(
            'file written outside the cache', 'WROTE OUTSIDE')
    if outcome.startswith('timed out'):
        outcome = f'timed out {row["seconds"]:.0f}s'
    else:
        outcome += f' {row["seconds"]:.1f}s'
    for pattern, say in _FACTS:
        found = re.search(pattern, row['note'])
        if found:
            outcome += ' (' + found.expand(say) + ')'
    return f'{outcome} {row["rss_mib"]}M'


def merge(files: dict) -> None:
    """Print ``item | attack | outcome per LABEL`` from ``{LABEL: json
    file}`` (markdown)."""
    tables = {}
    for label, path in files.items():
        with open(path) as f:
            tables[label] = {r['case']: r for r in json.load(f)['rows']}
    order = []
    for table in reversed(list(tables.values())):  # the newest names
        order += [r for r in table.values()
                  if r['case'] not in [o['case'] for o in order]]
    print('| item | attack | ' + ' | '.join(tables) + ' |')
    print('|---' * (len(tables) + 2) + '|')
    for row in sorted(order, key=lambda r: r['item']):
        cells = [_short(t[row['case']]) if row['case'] in t else '-'
                 for t in tables.values()]
        print(f'| {row["item"]} | {row["attack"]} | ' + ' | '.join(cells)
              + ' |')


def _line(row: dict) -> str:
    return (f'{row["item"]:>4} | {row["case"]:<20} | {row["attack"]:<42} '
            f'| {row["outcome"]:<32} | {row["seconds"]:>6.2f} | '
            f'{row["rss_mib"]:>8} | {row["note"][:400]}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tree', help='the package tree to attack (its root)')
    parser.add_argument(
        '--merge', nargs='+', metavar='LABEL=JSON',
        help='instead of attacking: one table of the --json outputs given')
    parser.add_argument('--cases', nargs='*',
                        help='case names or item numbers (default: all)')
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument('--keep', action='store_true',
                        help='keep the work folders')
    parser.add_argument('--jobs', type=int, default=1,
                        help='cases run at the same time (default 1)')
    args = parser.parse_args(argv)
    if args.merge:
        merge(dict(m.split('=', 1) for m in args.merge))
        return 0
    if not args.tree:
        parser.error('--tree is required')
    tree = osp.abspath(args.tree)
    cases = all_cases()
    if args.cases:
        cases = [c for c in cases
                 if c.name in args.cases or str(c.item) in args.cases]
    probe = subprocess.run(
        [sys.executable, '-c', 'import rla_mmdet, torch, sys; '
         'print(rla_mmdet.__file__, torch.__version__, sys.version.split()[0])'],
        env=_child_env(tree, tempfile.gettempdir(), {}),
        cwd=tempfile.gettempdir(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    head = f'# tree {tree}; child: {probe.stdout.strip()[-200:]}'
    print(head)
    print(f'# {sys.executable}; bound {BOUND_S:g} s after imports unless '
          f'noted; RLIMIT_AS = size after imports + {HEADROOM >> 20} MiB')
    print(f'{"item":>4} | {"case":<20} | {"attack":<42} | {"outcome":<32} '
          f'| {"s":>6} | {"peak MiB":>8} | note')
    def one(case: Case) -> dict:
        _current.case = case
        try:
            result = run_case(tree, case, args.keep)
        except Exception as exc:  # the harness itself: say so, go on
            result = dict(outcome=f'harness error: {type(exc).__name__}',
                          note=str(exc)[:200], seconds=0, rss_mib=0)
        row = dict(item=case.item, case=case.name, attack=case.descr,
                   outcome=result['outcome'],
                   seconds=round(result['seconds'] or 0, 2),
                   rss_mib=round(result['rss_mib']),
                   note=' '.join(result['note'].split()))
        print(_line(row), flush=True)
        return row

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        rows = list(pool.map(one, cases))
    if args.jobs > 1:  # the rows again, in order
        print('# in order:')
        for row in rows:
            print(_line(row))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(head=head, rows=rows), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
