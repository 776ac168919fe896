"""The README and the pages of docs/ agree with the code they describe.

The README is a quick start: its commands are CI's, its introduction names
every class ``import rla_mmdet`` registers, and it stays short. Every path and
link of every page exists. The tables that repeat facts of the code (the
model zoo, the supported versions, the dispatch table, the test files) are
compared with the code.
"""
import glob
import importlib.util
import os.path as osp
import re
import subprocess
import sys

import pytest

from helpers import ROOT
PAGES = ['README.md'] + sorted(
    osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'docs', '*.md')))


def read(page: str) -> str:
    with open(osp.join(ROOT, page), encoding='utf-8') as f:
        return f.read()


def flat(text: str) -> str:
    """``text`` with every run of white space as one space."""
    return ' '.join(text.split())


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole line) up to the next heading of
    the same or a higher level."""
    level = len(heading) - len(heading.lstrip('#'))
    match = re.search(rf'^{re.escape(heading)}\n(.*?)(?=^#{{1,{level}}} |\Z)',
                      text, re.S | re.M)
    assert match, f'no section {heading!r}'
    return match.group(1)


def table_rows(text: str):
    """The cells of each body row of the markdown tables in ``text``."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith('|') or re.match(r'^\|[-| ]+\|$', line):
            continue
        cells = [c.strip() for c in re.split(r'(?<!\\)\|', line)[1:-1]]
        yield cells


@pytest.fixture(scope='module')
def readme():
    return read('README.md')


def test_the_docs_pages_exist():
    names = {osp.basename(p) for p in PAGES[1:]}
    assert {'install.md', 'backbones.md', 'model_zoo.md', 'shapes.md',
            'tools.md', 'performance.md', 'reliability.md',
            'testing.md'} <= names, sorted(names)


def test_the_two_commands_and_ci(readme):
    block = re.search(r'## The two commands.*?```bash\n(.*?)```', readme,
                      re.S)
    assert block, 'README has no "The two commands" code block'
    commands = [line.split('#')[0].strip()
                for line in block.group(1).splitlines() if line.strip()]
    assert commands == ['make main', 'make test']
    with open(osp.join(ROOT, '.ci', 'run')) as f:
        ci = [line.strip() for line in f
              if line.strip() and not line.startswith('#')]
    assert ci[-1] in ('make test', 'exec make test'), ci


def test_the_readme_is_a_quick_start(readme):
    lines = readme.splitlines()
    assert len(lines) <= 300, f'README has {len(lines)} lines; keep it to ' \
        'a quick start of at most 300 and move the rest under docs/'
    first = next((i for i, line in enumerate(lines, 1)
                  if line.startswith('```python')), None)
    assert first is not None and first <= 80, \
        f'the first config snippet starts at line {first}, after line 80'
    snippet = readme.split('```python', 1)[1].split('```', 1)[0]
    assert 'custom_imports' in snippet and "type='RLA" in snippet, snippet


def test_the_introduction_names_every_registered_class(readme):
    # A fresh interpreter: what `import rla_mmdet` (or custom_imports)
    # registers, not what other tests imported.
    script = (
        'import mmdet.registry, mmengine.registry, rla_mmdet\n'
        'from mmengine.registry import Registry\n'
        'names = set()\n'
        'for mod in (mmdet.registry, mmengine.registry):\n'
        '    for reg in vars(mod).values():\n'
        '        if isinstance(reg, Registry):\n'
        '            names.update(n for n, obj in reg.module_dict.items()\n'
        "                         if getattr(obj, '__module__', '')\n"
        "                         .startswith('rla_mmdet'))\n"
        'print(sorted(names))\n')
    out = subprocess.run([sys.executable, '-c', script], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    registered = eval(out.strip().splitlines()[-1])
    assert {'RLAResNet', 'RLAECANet', 'RLAMobileNetV2',
            'SSDLiteHead'} <= set(registered), registered
    intro = readme.split('\n## ', 1)[0]
    missing = [n for n in registered if f'`{n}`' not in intro]
    assert not missing, f'the README introduction does not name {missing}'


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def _anchors(page: str) -> set:
    return {_slug(h) for h in re.findall(r'^#+ (.*)$', read(page), re.M)}


@pytest.mark.parametrize('page', PAGES)
def test_every_path_and_link_exists(page):
    text = read(page)
    # Paths written from the repository root, in text and code.
    paths = set(re.findall(
        r'(?<![\w/.])((?:tools|configs|scripts|rla_mmdet|requirements|docs|'
        r'tests|\.ci)/[\w./-]*\w)', text))
    missing = [p for p in sorted(paths)
               if not osp.exists(osp.join(ROOT, p))]
    assert not missing, f'{page} names paths that do not exist: {missing}'
    # Links, relative to the page; anchors against the target's headings.
    here = osp.dirname(page)
    broken = []
    prose = re.sub(r'`[^`\n]*`', '', re.sub(r'```.*?```', '', text,
                                             flags=re.S))
    for target in re.findall(r'\]\(([^)\s]+)\)', prose):
        if re.match(r'[a-z]+://', target):
            continue
        path, _, anchor = target.partition('#')
        linked = osp.normpath(osp.join(here, path)) if path else page
        if not osp.exists(osp.join(ROOT, linked)):
            broken.append(target)
        elif anchor and linked.endswith('.md') and \
                anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f'{page} has broken links: {broken}'
    if page == 'README.md':
        assert len(paths) > 20, sorted(paths)


@pytest.mark.parametrize('page', PAGES)
def test_no_placeholder_is_left(page):
    text = read(page)
    assert not re.search(r'\b[A-Z]+(?:_[A-Z]+)*_(SECTION|OUTPUT|TABLE|IMAGE)\b',
                         text)
    # The one placeholder allowed: a measurement still to be taken.
    assert not re.search(r'\b(TODO|TBD|FIXME|XXX)\b', text)


# The result tables are written from rla_mmdet/zoo.py, the one place the
# published numbers live; these tests fail when either side changes alone.
IMAGENET_NAMES = {'rla-r50': 'RLA-ResNet50', 'rla-eca-r50': 'RLA-ECANet50',
                  'rla-r101': 'RLA-ResNet101',
                  'rla-eca-r101': 'RLA-ECANet101'}
MOBILENET_NAMES = {'rla-mobilenetv2': 'dsRLA-MobileNetV2 (k = 32)',
                   'rla-eca-mobilenetv2': 'dsRLA-ECA-MobileNetV2 (k = 32)'}


def test_imagenet_table_rows_come_from_the_zoo():
    from rla_mmdet import zoo
    page = read('docs/model_zoo.md')
    assert set(IMAGENET_NAMES) == set(zoo.IMAGENET)
    for key, p in zoo.IMAGENET.items():
        params, flops, top1, _ = zoo.IMAGENET_RESULTS[key]
        row = (f'| {IMAGENET_NAMES[key]} | `{p.filename}` | {params} | '
               f'{flops} | {top1:.2f} | [link]({p.google_drive}) | '
               f'[link]({p.baidu_drive}) ({p.baidu_code}) |')
        assert row in page, row
    assert set(MOBILENET_NAMES) == set(zoo.IMAGENET_MOBILENET_V2)
    for key, (filename, params, flops, top1, top5) in \
            zoo.IMAGENET_MOBILENET_V2.items():
        row = (f'| {MOBILENET_NAMES[key]} | `{filename}` | {params} | '
               f'{flops} | {top1:.2f} | {top5:.2f} |')
        assert row in page, row


@pytest.mark.parametrize('page,prefix', [('README.md', ''),
                                         ('docs/model_zoo.md', '../')])
def test_coco_table_rows_and_baselines_come_from_the_zoo(page, prefix):
    from rla_mmdet import zoo
    text = read(page)
    for d in zoo.DETECTORS:
        stem = osp.splitext(osp.basename(d.config))[0]
        p = d.published
        row = (f'| [{stem}]({prefix}{d.config}) | {d.box_ap[0]} | '
               f'{d.box_ap[1]} | {d.box_ap[2]} | `{p.filename}` ([Google '
               f'Drive]({p.google_drive}), [Baidu]({p.baidu_drive}) '
               f'{p.baidu_code}) |')
        assert row in text, row
    rows = [r for r in table_rows(text) if r[0].startswith('[')
            and '_coco' in r[0] and r[1][:1].isdigit()]
    assert len(rows) == len(zoo.DETECTORS), rows
    b = zoo.MMDET_BASELINES
    sentence = (
        f"Faster R-CNN {b[('faster_rcnn', 50)]} (R50) / "
        f"{b[('faster_rcnn', 101)]} (R101), RetinaNet "
        f"{b[('retinanet', 50)]} / {b[('retinanet', 101)]}, Mask R-CNN "
        f"{b[('mask_rcnn', 50)]} / {b[('mask_rcnn', 101)]}.")
    assert sentence in flat(text), sentence


def test_mobilenet_v2_config_table_lists_the_zoo_configs():
    from rla_mmdet import zoo
    text = section(read('docs/model_zoo.md'),
                   '## RLA-MobileNetV2 configs (no COCO results published)')
    linked = re.findall(r'^\| \[[^]]+\]\(\.\./([^)]+)\)', text, re.M)
    assert linked == [d.config for d in zoo.MOBILENET_V2_DETECTORS], linked


def _load_file(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_supported_versions_table_is_the_dependencies_module():
    # dependencies.py imports only the standard library; load it alone.
    deps = _load_file('_rla_dependencies',
                      osp.join(ROOT, 'rla_mmdet', 'dependencies.py'))
    text = section(read('docs/install.md'), '### Supported versions')
    table = {r[0]: r[1] for r in table_rows(text)
             if r[0] in deps.SUPPORTED}
    expected = {
        name: f'>= {low}' + (f', < {high}' if high else '')
        for name, (low, high) in deps.SUPPORTED.items()
    }
    assert table == expected
    for name, reason in deps.UPPER_REASONS.items():
        assert reason in flat(text), (name, reason)
    assert f'pip install \'yapf<{deps.YAPF_WITHOUT_VERIFY}\'' in text


def test_tested_environments_table_is_the_bootstrap_script():
    with open(osp.join(ROOT, 'scripts', 'bootstrap.sh')) as f:
        script = f.read()
    stacks = {
        venv: (lock, pythons.split()) for venv, lock, pythons in re.findall(
            r'venv=\$\{RLA_VENV:-\$root/([\w.-]+)\};\s*lock=\$req/'
            r'([\w.-]+);\s*pythons="([\d. ]+)"', script)
    }
    assert len(stacks) == 3, stacks
    assert len(stacks['.venv'][1]) > 1, stacks
    text = section(read('docs/install.md'), '## The tested environments')
    rows = {r[0].strip('`'): r for r in table_rows(text)
            if r[0].strip('`') in stacks and len(r) == 5}
    assert set(rows) == set(stacks)
    for venv, (lock, pythons) in stacks.items():
        assert rows[venv][3] == f'`{lock}`', rows[venv]
        # "Python 3.13, 3.12 or 3.11," in the script's order, newest first
        spelled = ' or '.join(filter(None, [', '.join(pythons[:-1]),
                                            pythons[-1]]))
        assert f'Python {spelled},' in rows[venv][2], rows[venv]


def test_dispatch_table_is_the_code():
    from rla_mmdet.layers.dispatch import DISPATCH
    text = section(read('docs/performance.md'), '## How the forms are chosen')
    keys_of_row = {
        'CPU, training, fp32': [('cpu', True, False)],
        'CPU, inference, fp32': [('cpu', False, False)],
        'CPU, autocast (bf16)': [('cpu', True, True), ('cpu', False, True)],
        'CUDA, all': [('cuda', t, a) for t in (True, False)
                      for a in (True, False)],
        'any other device': [],
    }
    rows = {r[0]: r for r in table_rows(text) if r[0] in keys_of_row}
    assert set(rows) == set(keys_of_row), sorted(rows)
    covered = []
    for label, keys in keys_of_row.items():
        forms = dict(concat_conv=rows[label][1].strip('`'),
                     rla_update=rows[label][2].strip('`'))
        for key in keys:
            assert DISPATCH[key] == forms, (label, key, DISPATCH[key])
        covered += keys
    assert sorted(covered) == sorted(DISPATCH)


def test_the_testing_page_lists_every_test_file():
    text = section(read('docs/testing.md'), '## The test files')
    rows = [r for r in table_rows(text) if r[0] != 'file']
    listed = [r[0].strip('`') for r in rows]
    files = sorted(osp.basename(p)
                   for p in glob.glob(osp.join(ROOT, 'tests', 'test_*.py')))
    assert sorted(listed) == files, \
        f'docs/testing.md lists {sorted(set(listed) - set(files))} that do ' \
        f'not exist and misses {sorted(set(files) - set(listed))}'
    assert len(listed) == len(set(listed)), listed
    for name, core, what in ((r[0].strip('`'), r[1], r[2]) for r in rows):
        assert len(what) > 30, f'{name}: say what it checks'
        source = read(osp.join('tests', name))
        is_core = bool(
            re.search(r'^pytestmark\s*=.*mark\.core', source, re.M))
        assert core == ('yes' if is_core else 'no'), (name, core)
