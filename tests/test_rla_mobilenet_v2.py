"""RLAMobileNetV2 against an independent implementation of the paper's dsRLA
MobileNetV2.

The oracle, :func:`rla_spec.reference_mobilenet_v2_forward`, is the spec's
forward pass written with functional ops on the tensors of the published
state-dict layout (looked up by key), so a wrong module name, a wrong wiring
or a wrong number all fail here.
"""
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmdet.registry import MODELS

from rla_mmdet import RLAMobileNetV2
from rla_mmdet.analysis import RLAMobileNetV2Classifier
from rla_mmdet.checkpoint import adapt_state_dict
from rla_mmdet.layers import select_impl
from rla_spec import K, reference_mobilenet_v2_forward
from helpers import ROOT, load_tool

pytestmark = pytest.mark.core

OUT_CHOICES = [(i, ) for i in range(8)] + [(1, 2, 4, 7), (4, 7), (2, 4, 7),
                                           tuple(range(8)), (0, 3, 5)]


def _randomise(model, seed=0):
    """Random weights and BN statistics, so that no term hides."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith(('running_mean', '.bias')):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif t.dim() == 1:  # BN weight
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=gen) *
                        (2.0 / fan_in)**0.5)
    return model


def _eca(eca):
    """The ``attention`` of the variant with or without ECA."""
    return 'eca' if eca else None


def _full(eca=False, seed=0, **kwargs):
    return _randomise(
        RLAMobileNetV2(out_indices=tuple(range(8)), attention=_eca(eca),
                       **kwargs), seed)


def _params(model):
    return dict(model.state_dict(keep_vars=True))


# ---------------------------------------------------------------- forward
@pytest.mark.parametrize('eca', [False, True], ids=['plain', 'eca'])
@pytest.mark.parametrize('out_indices', OUT_CHOICES, ids=str)
def test_outputs_equal_the_spec(out_indices, eca):
    """The literal forms compute the spec's operations in its order, so
    they equal the float32 oracle to rounding. The forms the device runs
    (on the CPU in eval: the update with its norm folded into one matmul)
    round differently; with these random weights the network amplifies
    float32 rounding to a few 1e-5 of the output, so they are held to the
    float64 oracle: no further from it than twice the float32 oracle is."""
    full = _full(eca)
    model = RLAMobileNetV2(out_indices=out_indices, attention=_eca(eca))
    model.load_state_dict(full.state_dict())  # unbuilt parts dropped
    model.eval()
    img = torch.randn(2, 3, 64, 64)
    params = _params(full)
    with torch.no_grad():
        with select_impl('literal'):
            literal = model(img)
        outs = model(img)
        expected = reference_mobilenet_v2_forward(params, img, out_indices,
                                                  eca)
        exact = reference_mobilenet_v2_forward(
            {k: v.double() for k, v in params.items()}, img.double(),
            out_indices, eca)
    assert len(outs) == len(out_indices) == len(model.out_channels)
    for lit, out, ref, ex, ch in zip(literal, outs, expected, exact,
                                     model.out_channels):
        assert out.shape == ref.shape and out.shape[1] == ch
        scale = ref.abs().max()
        assert scale > 0
        assert (lit - ref).abs().max() <= 1e-5 * scale
        float32_error = (ref.double() - ex).abs().max()
        assert ((out.double() - ex).abs().max() <=
                2 * float32_error + 1e-6 * scale)


@pytest.mark.parametrize('eca', [False, True], ids=['plain', 'eca'])
@pytest.mark.parametrize('out_indices', [(7, ), (1, 2, 4, 7), (3, ), (4, 7)],
                         ids=str)
def test_float64_outputs_and_gradients_equal_the_spec(out_indices, eca):
    torch.manual_seed(0)
    model = RLAMobileNetV2(out_indices=out_indices, attention=_eca(eca))
    _randomise(model, 1)
    model = model.double().train()
    img = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    outs = model(img)
    refs = reference_mobilenet_v2_forward(_params(model), img, out_indices,
                                          eca, training=True)
    weights = [torch.randn_like(o) for o in outs]
    params = [p for p in model.parameters()]
    loss = sum((o * w).sum() for o, w in zip(outs, weights))
    ref_loss = sum((o * w).sum() for o, w in zip(refs, weights))
    grads = torch.autograd.grad(loss, params)
    ref_grads = torch.autograd.grad(ref_loss, params)
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for (name, _), g, r in zip(model.named_parameters(), grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10,
                                   msg=f'gradient of {name}')


def test_hidden_state_follows_the_input_dtype_and_odd_sizes_work():
    model = RLAMobileNetV2(out_indices=(2, 4, 7)).eval().double()
    outs = model(torch.rand(1, 3, 65, 47, dtype=torch.float64))
    assert all(o.dtype == torch.float64 for o in outs)
    # A stride-2 conv rounds up: 65 x 47 -> 33 x 24 -> ... -> 3 x 2.
    assert [tuple(o.shape[2:]) for o in outs] == [(9, 6), (5, 3), (3, 2)]


@pytest.mark.parametrize('out_indices', OUT_CHOICES, ids=str)
def test_every_parameter_gets_a_gradient(out_indices):
    model = RLAMobileNetV2(out_indices=out_indices).train()
    outs = model(torch.rand(2, 3, 32, 32))
    sum(o.sum() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []


def test_unrequested_parts_are_not_built():
    model = RLAMobileNetV2(out_indices=(4, ))
    names = set(model.state_dict())
    assert len(model.stages) == 5
    assert not any(n.startswith(('bn2.', 'conv2.', 'stages.5.')) for n in
                   names)
    # The update after the last block of stage 4 feeds nothing.
    assert len(model.stage_bns[4]) == 2 and len(model.conv_outs) == 5
    model = RLAMobileNetV2(out_indices=(0, ))
    assert not hasattr(model, 'recurrent_dsconvs')
    assert len(model.conv_outs) == 0
    full = RLAMobileNetV2(out_indices=(7, ))
    assert [len(b) for b in full.stage_bns] == [1, 2, 3, 4, 3, 3, 1]


def test_the_recurrent_conv_is_one_module_counted_once():
    model = RLAMobileNetV2()
    convs = list(model.recurrent_dsconvs)
    assert len(convs) == 5 and all(c is convs[0] for c in convs)
    assert model.recurrent_dsconv is convs[0]
    assert convs[0].groups == K and convs[0].weight.shape == (K, 1, 3, 3)
    assert convs[0].bias is None
    keys = [k for k in model.state_dict() if k.startswith('recurrent_')]
    assert keys == [f'recurrent_dsconvs.{i}.weight' for i in range(5)]
    shared = [n for n, _ in model.named_parameters()
              if n.startswith('recurrent_')]
    assert shared == ['recurrent_dsconvs.0.weight']


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize('eca,expected', [(False, 3_624_168),
                                          (True, 3_624_199)])
def test_classification_form_has_the_published_parameter_count(eca,
                                                                expected):
    model = RLAMobileNetV2Classifier(
        RLAMobileNetV2(out_indices=(7, ), attention=_eca(eca)))
    assert sum(p.numel() for p in model.parameters()) == expected
    assert f'{expected / 2**20:.2f}M' == '3.46M'
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 1000)
    # the classifier's name in the published files
    assert set(k for k in model.state_dict() if k.startswith('classifier')) \
        == {'classifier.1.weight', 'classifier.1.bias'}


def test_detection_backbone_parameter_count():
    # mmdet's MobileNetV2 (stages + conv2) has 2,223,872 parameters; RLA
    # adds the hidden-state channels to the depthwise / pointwise / head
    # convs, conv_outs, stage_bns, bn2 and one recurrent conv.
    from mmdet.models.backbones import MobileNetV2
    plain = sum(p.numel() for p in MobileNetV2().parameters())
    rla = sum(p.numel() for p in RLAMobileNetV2().parameters())
    assert plain == 2_223_872
    assert rla == 3_624_168 - 1_281_000


def test_out_channels_and_registry():
    model = MODELS.build(dict(type='RLAMobileNetV2', out_indices=(1, 2, 4,
                                                                 7)))
    assert isinstance(model, RLAMobileNetV2)
    assert model.out_channels == (24, 32, 96, 1280)
    wide = RLAMobileNetV2(widen_factor=1.5, out_indices=(6, 7))
    assert wide.out_channels == (480, 1920)
    outs = wide.eval()(torch.rand(1, 3, 32, 32))
    assert tuple(o.shape[1] for o in outs) == wide.out_channels


# ---------------------------------------------------------------- training
def _requires_grad(module):
    return {p.requires_grad for p in module.parameters()}


def test_frozen_stages_freeze_their_rla_modules():
    model = RLAMobileNetV2(frozen_stages=3, out_indices=(1, 2, 4, 7))
    model.train()
    assert _requires_grad(model.conv1) == {False}
    for j in range(7):
        frozen = j < 3
        for m in (model.stages[j], model.stage_bns[j], model.conv_outs[j]):
            assert _requires_grad(m) == {not frozen}, j
            assert all(not b.training for b in m.modules()) == frozen
    # Shared by later, trainable stages: stays trainable.
    assert _requires_grad(model.recurrent_dsconv) == {True}
    assert _requires_grad(model.conv2) == {True}
    assert model.bn2.training
    model = RLAMobileNetV2(frozen_stages=7).train()
    assert _requires_grad(model.recurrent_dsconv) == {False}
    assert _requires_grad(model.bn2) == {True}
    # Frozen parameters get no gradient; the others do.
    model = RLAMobileNetV2(frozen_stages=2).train()
    sum(o.sum() for o in model(torch.rand(2, 3, 32, 32))).backward()
    assert model.stages[1][0].conv[1].weight.grad is None
    assert model.conv_outs[1].weight.grad is None
    assert model.stages[2][0].conv[1].weight.grad is not None
    assert model.recurrent_dsconv.weight.grad is not None


def test_norm_eval_keeps_every_norm_in_eval_mode():
    model = RLAMobileNetV2(norm_eval=True).train()
    norms = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(norms) > 50 and not any(m.training for m in norms)
    before = model.stage_bns[2][1].running_mean.clone()
    model(torch.rand(2, 3, 32, 32))
    assert torch.equal(before, model.stage_bns[2][1].running_mean)
    model = RLAMobileNetV2(norm_eval=False).train()
    assert all(m.training for m in model.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


@pytest.mark.parametrize('eca', [False, True], ids=['plain', 'eca'])
def test_with_cp_gives_the_same_outputs_and_gradients(eca):
    plain = _randomise(RLAMobileNetV2(attention=_eca(eca)),
                       2).double().train()
    cp = RLAMobileNetV2(attention=_eca(eca), with_cp=True).double()
    cp.load_state_dict(plain.state_dict())
    cp.train()
    img = torch.rand(2, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    grads = []
    for model in (plain, cp):
        outs = model(img)
        loss = sum((o * (i + 1)).sum() for i, o in enumerate(outs))
        grads.append(
            (outs,
             torch.autograd.grad(loss, [img] + list(model.parameters()))))
    (o1, g1), (o2, g2) = grads
    for a, b in zip(o1, o2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert len(g1) == len(g2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------- weights
def published_file(path, eca=False, seed=0, differ=False, extra=None,
                   drop=None):
    """A file in the authors' layout: ``*.pth.tar`` dict, ``module.``
    prefix, classifier ``classifier.1``, five copies of the shared conv."""
    net = RLAMobileNetV2Classifier(_full(eca, seed))
    state = OrderedDict()
    for k, v in net.state_dict().items():
        if k.startswith('backbone.'):
            k = k[len('backbone.'):]
        state['module.' + k] = v.clone()  # separate tensors, as saved
    assert sum(k.startswith('module.recurrent_dsconvs.') for k in state) == 5
    if differ:
        state['module.recurrent_dsconvs.3.weight'] += 1e-3
    for k, v in (extra or {}).items():
        state[k] = v
    if drop:
        del state[drop]
    arch = 'dsrla_mobilenetv2_k32' + ('_eca' if eca else '')
    torch.save(
        dict(epoch=300, arch=arch, state_dict=state, best_acc1=72.38,
             optimizer={}), path)
    return state


def _pretrained(path, **kwargs):
    model = RLAMobileNetV2(
        init_cfg=dict(type='Pretrained', checkpoint=str(path)), **kwargs)
    return model


@pytest.mark.parametrize('eca', [False, True], ids=['plain', 'eca'])
@pytest.mark.parametrize('out_indices', [(1, 2, 4, 7), (4, ), (0, )],
                         ids=str)
def test_published_file_loads_bit_identical(tmp_path, out_indices, eca):
    path = tmp_path / 'dsrla_mobilenetv2_k32_2762.pth.tar'
    state = published_file(path, eca)
    model = _pretrained(path, out_indices=out_indices, attention=_eca(eca))
    model.init_weights()
    own = model.state_dict()
    for k, v in own.items():
        assert torch.equal(v, state['module.' + k]), k
    # every built tensor came from the file
    assert set(own) <= {k[len('module.'):] for k in state}


def test_a_file_whose_copies_differ_is_refused_with_its_name(tmp_path):
    path = tmp_path / 'edited.pth.tar'
    published_file(path, differ=True)
    model = _pretrained(path)
    with pytest.raises(ValueError, match=r'edited\.pth\.tar.*'
                       r'recurrent_dsconvs\.0\.weight and '
                       r'recurrent_dsconvs\.3\.weight'):
        model.init_weights()
    # a plain load_state_dict refuses it too, as does adapt_state_dict
    state = torch.load(path, weights_only=True)['state_dict']
    state = {k[len('module.'):]: v for k, v in state.items()
             if not k.startswith('module.classifier')}
    with pytest.raises(ValueError, match='recurrent_dsconvs.3.weight'):
        RLAMobileNetV2().load_state_dict(state)
    with pytest.raises(ValueError, match='recurrent_dsconvs.3.weight'):
        adapt_state_dict(RLAMobileNetV2(), state)


def test_foreign_and_missing_keys_are_named(tmp_path):
    path = tmp_path / 'foreign.pth.tar'
    published_file(path, extra={'module.head.fc.weight': torch.zeros(2)})
    with pytest.raises(ValueError, match=r'foreign\.pth\.tar.*unexpected '
                       r'keys: head\.fc\.weight'):
        _pretrained(path).init_weights()
    path = tmp_path / 'missing.pth.tar'
    published_file(path, drop='module.stage_bns.2.1.running_var')
    with pytest.raises(ValueError, match=r'missing\.pth\.tar.*missing keys: '
                       r'stage_bns\.2\.1\.running_var'):
        _pretrained(path).init_weights()


def test_eca_mismatch_says_which_file_it_is(tmp_path):
    path = tmp_path / 'dsrla_mobilenetv2_k32_eca_2707.pth.tar'
    published_file(path, eca=True)
    with pytest.raises(ValueError, match="set attention='eca'"):
        _pretrained(path).init_weights()
    path = tmp_path / 'dsrla_mobilenetv2_k32_2762.pth.tar'
    published_file(path, eca=False)
    with pytest.raises(ValueError, match='set attention=None'):
        _pretrained(path, attention='eca').init_weights()


def test_imagenet_converter_handles_the_mobilenet_files(tmp_path):
    from rla_mmdet.converters import imagenet_to_mmdet
    src = tmp_path / 'dsrla_mobilenetv2_k32_eca_2707.pth.tar'
    state = published_file(src, eca=True)
    dst = tmp_path / 'out.pth'
    meta = imagenet_to_mmdet(str(src), str(dst))
    assert meta['backbone'] == dict(type='RLAMobileNetV2', attention='eca')
    assert meta['dropped'] == ['classifier.1']
    written = torch.load(dst, weights_only=True)['state_dict']
    assert not any(k.startswith(('module.', 'classifier')) for k in written)
    model = _pretrained(dst, attention='eca')
    model.init_weights()
    for k, v in model.state_dict().items():
        assert torch.equal(v, state['module.' + k]), k
    plain = tmp_path / 'dsrla_mobilenetv2_k32_2762.pth.tar'
    published_file(plain)
    with pytest.raises(ValueError, match='RLA-MobileNetV2 checkpoint .* '
                       '--eca'):
        imagenet_to_mmdet(str(plain), str(tmp_path / 'x.pth'), eca=True)
    bad = tmp_path / 'differ.pth.tar'
    published_file(bad, differ=True)
    with pytest.raises(ValueError, match='differ.pth.tar'):
        imagenet_to_mmdet(str(bad), str(tmp_path / 'bad.pth'))
    assert not osp.exists(tmp_path / 'bad.pth')


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize('kwargs,error,words', [
    (dict(widen_factor=0), ValueError, ['widen_factor', '> 0', '0']),
    (dict(widen_factor=-1.0), ValueError, ['widen_factor', '-1.0']),
    (dict(widen_factor='1'), TypeError, ['widen_factor', "'1'"]),
    (dict(out_indices=(1, 8)), ValueError, ['out_indices', '(1, 8)',
                                            '[0, 7]']),
    (dict(out_indices=(-1, )), ValueError, ['out_indices', '(-1,)']),
    (dict(out_indices=(4, 2)), ValueError, ['out_indices', 'increasing']),
    (dict(out_indices=()), TypeError, ['out_indices', 'non-empty']),
    (dict(out_indices=7), TypeError, ['out_indices', '7']),
    (dict(frozen_stages=8), ValueError, ['frozen_stages', '[-1, 7]', '8']),
    (dict(frozen_stages=-2), ValueError, ['frozen_stages', '-2']),
    (dict(rla_channel=0), ValueError, ['rla_channel', '>= 1', '0']),
    (dict(rla_channel=2.0), TypeError, ['rla_channel', '2.0']),
    (dict(act_cfg='ReLU6'), TypeError, ['act_cfg', 'dict', "'ReLU6'"]),
    (dict(norm_cfg=None), TypeError, ['norm_cfg', 'None']),
    (dict(eca=1), TypeError, ['eca', '1']),
    (dict(attention=1), TypeError, ['attention', '1']),
    (dict(attention=dict(type='eca', kernel_size=(3, 3, 3, 3))), ValueError,
     ['kernel_size of attention', '7', '(3, 3, 3, 3)']),
    (dict(norm_eval='yes'), TypeError, ['norm_eval', 'yes']),
])
def test_bad_arguments_are_named(kwargs, error, words):
    with pytest.raises(error) as info:
        RLAMobileNetV2(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_classifier_needs_the_head():
    with pytest.raises(ValueError, match='out_indices'):
        RLAMobileNetV2Classifier(RLAMobileNetV2(out_indices=(4, )))
    with pytest.raises(TypeError, match='RLAMobileNetV2'):
        RLAMobileNetV2Classifier(torch.nn.Conv2d(1, 1, 1))


def test_get_flops_counts_the_published_flops(capsys):
    """tools/analysis/get_flops.py --imagenet-classifier: 368,838,016 MACs,
    the paper's "351.8M" (binary M)."""
    tool = load_tool('analysis/get_flops.py')
    result = tool.main([
        osp.join(ROOT, 'configs', 'rla_mobilenet_v2',
                 'ssdlite_rla-mobilenetv2_8xb24-600e_coco.py'),
        '--imagenet-classifier'
    ])
    assert result.params == 3_624_168
    assert result.flops == 368_838_016
    assert '= 351.8M (2^20)' in capsys.readouterr().out
