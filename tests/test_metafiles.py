"""model-index.yml and configs/*/metafile.yml (tools/misc/gen_metafiles.py).
"""
import os.path as osp

import yaml
from helpers import ROOT, load_tool


def _generator():
    return load_tool('misc/gen_metafiles.py')


def _load(rel):
    with open(osp.join(ROOT, rel), encoding='utf-8') as f:
        return f.read()


def test_committed_metafiles_are_what_the_generator_writes():
    files = _generator().render()
    assert set(files) == {
        'model-index.yml', 'configs/faster_rcnn/metafile.yml',
        'configs/retinanet/metafile.yml', 'configs/mask_rcnn/metafile.yml',
        'configs/rla_mobilenet_v2/metafile.yml'
    }
    for rel, text in files.items():
        assert _load(rel) == text, f'{rel} is stale: run ' \
            'tools/misc/gen_metafiles.py'
    assert _generator().main(['--check']) == 0


def test_metafiles_list_the_twelve_configs_with_the_paper_results():
    index = yaml.safe_load(_load('model-index.yml'))
    models = {}
    for rel in index['Import']:
        assert osp.isfile(osp.join(ROOT, rel)), rel
        meta = yaml.safe_load(_load(rel))
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections
            models[model['Name']] = model
    # No COCO result is published for RLA-MobileNetV2: no Results, no
    # Weights, only the ImageNet file it starts from.
    mobile = {n: models.pop(n) for n in list(models)
              if 'mobilenetv2' in n}
    assert sorted(mobile) == [
        'retinanet_rla-mobilenetv2_fpn_1x_coco',
        'ssdlite_rla-mobilenetv2_8xb24-600e_coco'
    ]
    for name, model in mobile.items():
        assert osp.isfile(osp.join(ROOT, model['Config'])), model['Config']
        assert 'Results' not in model and 'Weights' not in model
        assert model['Metadata']['Pretrained'] == \
            'dsrla_mobilenetv2_k32_2762.pth.tar'
    assert len(models) == 12
    for name, model in models.items():
        # Every config listed exists and is named after its file.
        assert osp.isfile(osp.join(ROOT, model['Config'])), model['Config']
        assert osp.splitext(osp.basename(model['Config']))[0] == name
        assert model['Weights'].startswith('https://drive.google.com/')
        assert model['Metadata']['Training Data'] == 'COCO'
        assert model['Metadata']['Epochs'] == 12
        # The paper reports box AP only, Mask R-CNN included.
        [result] = model['Results']
        assert result['Task'] == 'Object Detection'
        assert result['Dataset'] == 'COCO'
        assert list(result['Metrics']) == ['box AP']
    # A few numbers of the paper's COCO table.
    ap = {n: m['Results'][0]['Metrics']['box AP'] for n, m in models.items()}
    assert ap['faster-rcnn_rla-r50_fpn_1x_coco'] == 38.8
    assert ap['retinanet_rla-eca-r101_fpn_1x_coco'] == 41.5
    assert ap['mask-rcnn_rla-r101_fpn_1x_coco'] == 41.8


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    gen = _generator()
    for rel, text in gen.render().items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    monkeypatch.setattr(gen, 'ROOT', str(tmp_path))
    assert gen.main(['--check']) == 0
    (tmp_path / 'configs/retinanet/metafile.yml').write_text('Models: []\n')
    assert gen.main(['--check']) == 1
    assert 'configs/retinanet/metafile.yml' in capsys.readouterr().out
    assert gen.main([]) == 0  # rewrites it
    assert gen.main(['--check']) == 0
