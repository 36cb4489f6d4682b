"""jaxdiv's XLA:CPU default (convolutions off YNNPACK) is added at import, never forced."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jaxdiv import xla_defaults
from tests.support import ROOT

PROBE = (
    "import json, os, jaxdiv, jax.numpy as jnp; jnp.ones(2).sum(); "
    "print(json.dumps(os.environ.get('XLA_FLAGS')))"
)


def _flags_after_import(**env) -> str | None:
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXDIV_XLA_DEFAULTS")}
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=full,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(
    xla_defaults._jaxlib_version() not in xla_defaults.CHECKED_JAXLIB,
    reason="the flag is only added on jaxlib versions where it was checked",
)
def test_flag_added_at_import_and_a_computation_runs():
    assert _flags_after_import() == xla_defaults.CPU_FLAGS
    kept = "--xla_force_host_platform_device_count=2"
    assert _flags_after_import(XLA_FLAGS=kept) == f"{kept} {xla_defaults.CPU_FLAGS}"


def test_user_setting_and_opt_out_are_respected():
    own = "--xla_cpu_experimental_ynn_fusion_type="
    assert _flags_after_import(XLA_FLAGS=own) == own
    assert _flags_after_import(JAXDIV_XLA_DEFAULTS="0") is None


def test_unknown_jaxlib_gets_no_flag(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(xla_defaults, "_jaxlib_version", lambda: (9, 99))
    assert xla_defaults.apply() is False
    assert "XLA_FLAGS" not in os.environ
