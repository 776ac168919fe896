"""Helpers shared by several test modules."""
import importlib.util
import os
import os.path as osp
import shutil
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from rla_mmdet import RLAResNet

#: The repository's root, where the tools run from.
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def copy_tracked_files(dst) -> None:
    """Copy the files git tracks in the clone into the folder ``dst``, so
    that a build of the package writes nothing into the clone."""
    listed = subprocess.run(['git', '-C', ROOT, 'ls-files', '-z'],
                            capture_output=True, check=True).stdout
    for rel in listed.decode().split('\0'):
        if rel and osp.isfile(osp.join(ROOT, rel)):
            target = osp.join(str(dst), rel)
            os.makedirs(osp.dirname(target), exist_ok=True)
            shutil.copyfile(osp.join(ROOT, rel), target)


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


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every norm layer non-trivial statistics and affine weights.

    Weights stay small so activations remain O(1) through deep networks.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (_BatchNorm, nn.GroupNorm)):
            m.weight.data = torch.rand(m.weight.shape, generator=g) * .2 + .1
            m.bias.data = torch.rand(m.bias.shape, generator=g) * .2 - .1
        if isinstance(m, _BatchNorm):
            m.running_mean.data = torch.rand(m.running_mean.shape,
                                             generator=g) - .5
            m.running_var.data = torch.rand(m.running_var.shape,
                                            generator=g) + .5
    return model


def build(depth=18, cls=RLAResNet, **kwargs):
    """``cls(depth=depth, **kwargs)`` with the same initial weights every
    time (seed 0, ``init_weights()`` called)."""
    torch.manual_seed(0)
    model = cls(depth=depth, **kwargs)
    model.init_weights()
    return model


class LocalServer:
    """Serves the files of ``root`` on 127.0.0.1 (a folder: its
    ``index.html``); ``stall/<name>`` answers
    nothing, ``cut/<name>`` announces more bytes than it sends,
    ``slow/<name>`` waits a second before sending, ``drip/<name>`` sends one
    byte every ``drip_s`` seconds and ``nolength/<name>`` sends no
    ``Content-Length`` (the body ends when the connection closes). Counts
    the GETs."""

    def __init__(self, root):
        self.root = root
        self.gets = Counter()
        self.drip_s = 0.1
        server = self

        class Handler(BaseHTTPRequestHandler):

            def log_message(self, *args):
                pass

            def do_GET(self):
                kind, _, name = self.path.lstrip('/').partition('/')
                server.gets[self.path] += 1
                if kind == 'stall':
                    time.sleep(3)
                    return
                path = osp.join(server.root, name)
                if osp.isdir(path):  # a folder answers with its index.html
                    path = osp.join(path, 'index.html')
                if kind not in ('files', 'cut', 'slow', 'drip',
                                'nolength') or not osp.isfile(path):
                    self.send_error(404)
                    return
                data = open(path, 'rb').read()
                if kind == 'slow':
                    time.sleep(1)
                self.send_response(200)
                if kind != 'nolength':
                    self.send_header('Content-Length',
                                     str(len(data) + (100 if kind == 'cut'
                                                      else 0)))
                self.end_headers()
                if kind != 'drip':
                    self.wfile.write(data)
                    return
                try:
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        time.sleep(server.drip_s)
                except OSError:  # the client gave up
                    pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, name, kind='files'):
        return f'http://127.0.0.1:{self.httpd.server_port}/{kind}/{name}'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
