"""practicum.scratch is NumPy only: no scratch module imports torch (the twins do), and
importing it (or practicum itself) loads neither torch nor pandas."""

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


def test_scratch_runs_without_torch_or_pandas_loaded():
    """The real package (no stand-in for practicum/__init__): its names load on first use."""
    code = """
import sys
import practicum.scratch as s, numpy as np
m = s.MLP([4, 8, 3], seed=0)
s.fit(m, np.random.default_rng(0).standard_normal((16, 4)), np.arange(16) % 3, epochs=1)
loaded = [name for name in ("torch", "pandas") if name in sys.modules]
assert not loaded, f"{loaded} were imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_import_practicum_loads_no_torch_until_a_name_is_used():
    code = """
import sys
import practicum
assert "torch" not in sys.modules and "pandas" not in sys.modules, "loaded at import"
assert practicum.train.__module__ == "practicum.api" and practicum.api.train is practicum.train
assert practicum.UserError.__module__ == "practicum.errors"
assert "torch" in sys.modules
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
