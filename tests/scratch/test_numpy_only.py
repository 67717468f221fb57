"""practicum.scratch is NumPy only: no scratch module imports torch (the twins do)."""

import ast
import subprocess
import sys
from pathlib import Path

import practicum.scratch

SCRATCH = Path(practicum.scratch.__file__).parent


def test_no_scratch_module_imports_torch():
    for path in SCRATCH.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "torch" for n in names), f"{path.name} imports torch"


def test_scratch_runs_without_torch_loaded():
    # load practicum.scratch without the practicum package's __init__ (which brings torch)
    code = f"""
import importlib.util, sys, types
pkg = types.ModuleType("practicum"); pkg.__path__ = [{str(SCRATCH.parent)!r}]
sys.modules["practicum"] = pkg
import practicum.scratch as s, numpy as np
m = s.MLP([4, 8, 3], seed=0)
s.fit(m, np.random.default_rng(0).standard_normal((16, 4)), np.arange(16) % 3, epochs=1)
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
