"""Helpers shared by several test modules."""
import importlib.util
import os.path as osp

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(relpath: str):
    """Import a script under ``tools/`` by its path, e.g.
    ``load_tool('analysis/benchmark.py')`` (the tools are not a package)."""
    path = osp.join(ROOT, 'tools', relpath)
    name = 'tool_' + osp.splitext(relpath)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_same_grads(model: torch.nn.Module, ref: torch.nn.Module,
                      rtol: float, atol: float) -> None:
    """Parameter by parameter, in order: both or neither have a gradient,
    and the gradients are close."""
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=rtol, atol=atol,
                                       msg=name)
