"""The README's commands and paths exist, and CI runs its test command."""
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def readme():
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        return f.read()


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


def test_every_path_the_readme_names_exists(readme):
    paths = set(re.findall(
        r'(?<![\w/.])((?:tools|configs|scripts|rla_mmdet|requirements|docs)'
        r'/[\w./-]*\w)', readme))
    assert len(paths) > 20, sorted(paths)
    missing = [p for p in sorted(paths)
               if not osp.exists(osp.join(ROOT, p))]
    assert not missing, f'README names paths that do not exist: {missing}'


def test_no_placeholder_is_left(readme):
    assert not re.search(r'\b[A-Z]+(?:_[A-Z]+)*_(SECTION|OUTPUT|TABLE|IMAGE)\b',
                         readme)
