"""OpenMP threads sleep while they wait (practicum.threads), set before torch loads its runtime."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import os, practicum, torch; print(os.environ.get('OMP_WAIT_POLICY'))"


def _run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def test_importing_practicum_sets_the_passive_wait_policy():
    assert _run(SHOW) == "PASSIVE"


@pytest.mark.parametrize("policy", ["ACTIVE", ""])
def test_a_policy_the_user_set_is_kept(policy):
    assert _run(SHOW, OMP_WAIT_POLICY=policy) == policy


def test_the_policy_is_set_before_torch_is_imported():
    """libgomp reads OMP_WAIT_POLICY once, when it loads with torch: later would be too late."""
    code = ("import builtins, os\n"
            "seen = []\n"
            "real = builtins.__import__\n"
            "def spy(name, *a, **k):\n"
            "    if name == 'torch' and not seen:\n"
            "        seen.append(os.environ.get('OMP_WAIT_POLICY'))\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = spy\n"
            "import practicum.cli\n"
            "import torch  # whoever loads it first: the package set the policy before\n"
            "print(seen[0])")
    assert _run(code) == "PASSIVE"
