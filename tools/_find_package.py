"""Make ``import rla_mmdet`` work in the scripts of ``tools/``.

Each tool runs this file (``runpy.run_path``) before it imports the
package. An installed ``rla_mmdet`` (regular or editable) is used as it is;
without one, the clone this file is in goes first on ``sys.path``, so that
``python tools/...`` works from a clone that was never installed. It is a
file beside the tools, not a module of the package, because it runs before
the package can be imported.
"""
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('rla_mmdet') is None:
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
