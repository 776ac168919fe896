"""The backbones export to ONNX (the path mmdeploy takes) and onnxruntime
reproduces their outputs."""
import inspect
import io

import numpy as np
import pytest
import torch

from rla_mmdet import RLAECANet, RLAResNet

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')


def export(model, x):
    """``torch.onnx.export`` with the TorchScript exporter, as mmdeploy
    calls it (``dynamo=False`` where torch has the newer one too)."""
    kwargs = {}
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kwargs['dynamo'] = False
    f = io.BytesIO()
    torch.onnx.export(
        model, (x, ), f, input_names=['input'],
        output_names=[f'out{i}' for i in range(4)], opset_version=17,
        dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}},
        **kwargs)
    return f.getvalue()


@pytest.mark.parametrize('cls,depth', [(RLAResNet, 50), (RLAECANet, 50),
                                       (RLAResNet, 18)])
def test_export_matches_onnxruntime(cls, depth):
    torch.manual_seed(0)
    model = cls(depth=depth, out_indices=(0, 1, 2, 3)).eval()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 96, 128)
    data = export(model, x)
    onnx.checker.check_model(onnx.load_from_string(data))
    session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    # Another batch and size than the traced one: the axes are dynamic.
    for inp in (x, torch.randn(2, 3, 80, 112)):
        with torch.no_grad():
            expected = model(inp)
        got = session.run(None, {'input': inp.numpy()})
        assert len(got) == len(expected) == 4
        for e, g in zip(expected, got):
            assert g.shape == tuple(e.shape)
            err = np.abs(g - e.numpy()).max() / np.abs(e.numpy()).max()
            assert err <= 1e-4, err
