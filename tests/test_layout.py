"""How the code is laid out, checked on its source: short functions, no
import cycle in the package, the backbones apart from checkpoint IO and the
recurrence in one module, one way for the tools to find it, and each
backbone argument assigned once where a reader looks for it."""
import ast
import glob
import importlib.util
import inspect
import os.path as osp
import runpy
import subprocess
import sys
import textwrap

import pytest

from rla_mmdet import RLAMobileNetV2, RLAResNet
from helpers import ROOT

pytestmark = pytest.mark.core

#: The longest function allowed, in lines from ``def`` to its last line.
LIMITS = {'rla_mmdet': 80, 'tools': 120}
#: ... and for an ``__init__`` of the package (a signature of mmdet's
#: arguments, each assigned beside its check).
INIT_LIMIT = 100


def _sources(folder):
    paths = sorted(glob.glob(osp.join(ROOT, folder, '**', '*.py'),
                             recursive=True))
    assert paths, folder
    for path in paths:
        with open(path, encoding='utf-8') as f:
            yield osp.relpath(path, ROOT), ast.parse(f.read())


def long_functions(folder, limit, init_limit=None):
    """``['path:line name (N lines)', ...]`` of the functions of ``folder``
    longer than ``limit`` lines (``__init__``: ``init_limit``)."""
    found = []
    for rel, tree in _sources(folder):
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            allowed = (init_limit if node.name == '__init__' and init_limit
                       else limit)
            if length > allowed:
                found.append(f'{rel}:{node.lineno} {node.name} '
                             f'({length} lines, at most {allowed})')
    return found


@pytest.mark.parametrize('folder', sorted(LIMITS))
def test_no_function_is_too_long(folder):
    init_limit = INIT_LIMIT if folder == 'rla_mmdet' else None
    assert long_functions(folder, LIMITS[folder], init_limit) == []


# ------------------------------------------------------------------ imports
def import_graph():
    """``{module: modules of rla_mmdet it imports}`` from the source, the
    imports inside functions included (a lazy import closes a cycle just
    the same)."""
    modules = {}
    for rel, tree in _sources('rla_mmdet'):
        parts = rel[:-len('.py')].split(osp.sep)
        is_package = parts[-1] == '__init__'
        modules['.'.join(parts[:-1] if is_package else parts)] = (tree,
                                                                  is_package)
    graph = {}
    for name, (tree, is_package) in modules.items():
        package = name.split('.') if is_package else name.split('.')[:-1]
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (package[:len(package) - node.level + 1]
                        if node.level else [])
                target = '.'.join(base + [node.module] if node.module
                                  else base)
                # `from .pkg import name` reads pkg, and pkg.name if it
                # is a module; `from . import mod, ...` of submodules
                # only reads those (a package's parent is imported before
                # any submodule, as for `import pkg.mod`)
                subs = [f'{target}.{a.name}' for a in node.names]
                targets = (subs if all(s in modules for s in subs)
                           else [target] + subs)
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph):
    """One import cycle ``[a, b, ..., a]`` of ``graph``, or ``None``."""
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 'open':
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_inside_the_package():
    graph = import_graph()
    assert 'rla_mmdet.backbones.rla_resnet' in graph['rla_mmdet.backbones']
    assert find_cycle(graph) is None, ' -> '.join(find_cycle(graph))


def reachable(graph, roots):
    """The modules ``roots`` import, directly or through others."""
    seen, todo = set(), list(roots)
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def checkpoint_modules_of_backbones(graph):
    backbones = [m for m in graph if m.startswith('rla_mmdet.backbones')]
    return sorted(m for m in reachable(graph, backbones)
                  if m.startswith('rla_mmdet.checkpoint'))


def test_the_backbones_import_nothing_of_the_checkpoint_package():
    """The model knows no file: the published layouts are mapped onto the
    backbones by rla_mmdet.checkpoint.adaptation, not by the backbones."""
    graph = import_graph()
    assert 'rla_mmdet.backbones' in reachable(
        graph, ['rla_mmdet.checkpoint.adaptation'])
    assert checkpoint_modules_of_backbones(graph) == []
    # The check sees such an import, even through another module.
    graph['rla_mmdet.layers.rla_ops'].add('rla_mmdet.checkpoint.loading')
    assert 'rla_mmdet.checkpoint.loading' in checkpoint_modules_of_backbones(
        graph)


def test_only_the_engine_updates_the_hidden_state():
    """The recurrence is in one module: only the RLA engine takes the
    update operator (rla_mmdet.layers.rla_update) outside the layers."""
    users = []
    for rel, tree in _sources('rla_mmdet'):
        if rel.startswith(osp.join('rla_mmdet', 'layers')):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(
                    a.name in ('rla_update', 'rla_ops') for a in node.names):
                users.append(rel)
    assert users == [osp.join('rla_mmdet', 'backbones', 'rla_engine.py')]


def test_the_package_imports_where_fcntl_does_not_exist():
    """As on Windows, where mmdet runs: no module of the package may need
    fcntl to be imported."""
    script = textwrap.dedent("""
        import sys
        sys.modules['fcntl'] = None  # `import fcntl` raises ImportError
        import rla_mmdet
        from rla_mmdet import checkpoint, converters, engine
        from rla_mmdet.backbones import RLAResNet
        RLAResNet(depth=18)
        print('imported')
    """)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['imported']


# -------------------------------------------------------------------- tools
FIND_PACKAGE = osp.join(ROOT, 'tools', '_find_package.py')


def _runs_find_package(node, path):
    """Whether ``node`` is ``runpy.run_path(P)`` with ``P``, read in the
    script at ``path``, naming ``tools/_find_package.py``."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and ast.dump(node.value.func) == ast.dump(ast.parse(
                'runpy.run_path', mode='eval').body)
            and len(node.value.args) == 1):
        return False
    arg = ast.Expression(node.value.args[0])
    target = eval(compile(arg, path, 'eval'), {'osp': osp, '__file__': path})
    return osp.normpath(target) == FIND_PACKAGE


def _path_changes(tree):
    return [n for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr in ('insert', 'append', 'extend')
            and ast.dump(n.func.value) == ast.dump(ast.parse(
                'sys.path', mode='eval').body)]


def test_the_tools_find_the_package_one_way():
    """A script runs tools/_find_package.py before it imports rla_mmdet,
    and only that file changes sys.path."""
    for rel, tree in _sources('tools'):
        path = osp.join(ROOT, rel)
        if path == FIND_PACKAGE:
            assert len(_path_changes(tree)) == 1
            continue
        assert _path_changes(tree) == [], f'{rel} changes sys.path; ' \
            'tools/_find_package.py alone does'
        runs = [i for i, n in enumerate(tree.body)
                if _runs_find_package(n, path)]
        imports = [i for i, n in enumerate(tree.body)
                   if isinstance(n, (ast.Import, ast.ImportFrom)) and any(
                       (getattr(n, 'module', None) or a.name).startswith(
                           'rla_mmdet') for a in n.names)]
        if imports:
            assert len(runs) == 1 and runs[0] < imports[0], \
                f'{rel} imports rla_mmdet without running ' \
                'tools/_find_package.py first'


def test_find_package_adds_the_clone_only_without_an_installed_package(
        monkeypatch):
    monkeypatch.setattr(sys, 'path', list(sys.path))
    before = list(sys.path)
    runpy.run_path(FIND_PACKAGE)  # installed here (or on PYTHONPATH)
    assert sys.path == before
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec',
        lambda name, *args: None if name == 'rla_mmdet' else real(name,
                                                                  *args))
    runpy.run_path(FIND_PACKAGE)
    assert sys.path == [ROOT] + before


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize('cls', [RLAResNet, RLAMobileNetV2])
def test_each_backbone_argument_is_assigned_once_in_init(cls):
    """The signature names an argument and ``__init__`` assigns it to
    ``self.<name>`` (beside its check), as mmdet's ResNet does: no loop of
    ``setattr`` and no second list of the names."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    assigned = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for t in ast.walk(target):
                    if isinstance(t, ast.Attribute) and isinstance(
                            t.value, ast.Name) and t.value.id == 'self':
                        assigned.append(t.attr)
        assert not (isinstance(node, ast.Call)
                    and getattr(node.func, 'id', '') == 'setattr')
    handled_by_base = {'self', 'pretrained', 'init_cfg', 'kwargs'}
    names = [n for n in inspect.signature(cls.__init__).parameters
             if n not in handled_by_base]
    assert names and [n for n in names if assigned.count(n) != 1] == []
    model = cls() if cls is RLAMobileNetV2 else cls(depth=18)
    for name in names:
        assert hasattr(model, name), name
