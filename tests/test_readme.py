"""The README's commands and paths exist, and CI runs its test command."""
import os.path as osp
import re

import pytest

from helpers import ROOT


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


# The README's result tables are written from rla_mmdet/zoo.py, the one place
# the published numbers live; these tests fail when either side changes alone.
IMAGENET_NAMES = {'rla-r50': 'RLA-ResNet50', 'rla-eca-r50': 'RLA-ECANet50',
                  'rla-r101': 'RLA-ResNet101',
                  'rla-eca-r101': 'RLA-ECANet101'}


def test_imagenet_table_rows_come_from_the_zoo(readme):
    from rla_mmdet import zoo
    assert set(IMAGENET_NAMES) == set(zoo.IMAGENET)
    for key, p in zoo.IMAGENET.items():
        params, flops, top1, _ = zoo.IMAGENET_RESULTS[key]
        row = (f'| {IMAGENET_NAMES[key]} | `{p.filename}` | {params} | '
               f'{flops} | {top1:.2f} | [link]({p.google_drive}) | '
               f'[link]({p.baidu_drive}) ({p.baidu_code}) |')
        assert row in readme, row


def test_coco_table_rows_and_baselines_come_from_the_zoo(readme):
    from rla_mmdet import zoo
    for d in zoo.DETECTORS:
        stem = osp.splitext(osp.basename(d.config))[0]
        p = d.published
        row = (f'| [{stem}]({d.config}) | {d.box_ap[0]} | {d.box_ap[1]} | '
               f'{d.box_ap[2]} | `{p.filename}` ([Google Drive]'
               f'({p.google_drive}), [Baidu]({p.baidu_drive}) '
               f'{p.baidu_code}) |')
        assert row in readme, row
    b = zoo.MMDET_BASELINES
    sentence = (
        f"Faster R-CNN {b[('faster_rcnn', 50)]} (R50) / "
        f"{b[('faster_rcnn', 101)]} (R101),\nRetinaNet "
        f"{b[('retinanet', 50)]} / {b[('retinanet', 101)]}, Mask R-CNN "
        f"{b[('mask_rcnn', 50)]} / {b[('mask_rcnn', 101)]}.")
    assert sentence in readme, sentence
