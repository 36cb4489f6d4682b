"""jaxdiv's XLA:CPU default (convolutions off YNNPACK) is added at import when the installed
XLA accepts it (probed once per jaxlib version), never forced."""

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


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache dir; XLA_FLAGS and the opt-out unset."""
    monkeypatch.setenv("JAXDIV_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("JAXDIV_XLA_DEFAULTS", raising=False)
    return tmp_path


def _no_subprocess(*args, **kwargs):
    raise AssertionError("probed although the answer was cached")


@pytest.mark.skipif(
    not xla_defaults.accepted(), reason="the installed jaxlib's XLA does not accept the flag"
)
def test_flag_added_at_import_and_a_computation_runs():
    assert _flags_after_import() == xla_defaults.CPU_FLAGS
    kept = "--xla_force_host_platform_device_count=2"
    assert _flags_after_import(XLA_FLAGS=kept) == f"{kept} {xla_defaults.CPU_FLAGS}"


def test_user_setting_and_opt_out_are_respected():
    own = "--xla_cpu_experimental_ynn_fusion_type="
    assert _flags_after_import(XLA_FLAGS=own) == own
    assert _flags_after_import(JAXDIV_XLA_DEFAULTS="0") is None


def test_probe_tells_known_from_unknown_flags():
    # a flag every XLA has, and one no XLA has (XLA aborts on it: the probe reads the abort)
    assert xla_defaults.probe("--xla_force_host_platform_device_count=2") is True
    assert xla_defaults.probe("--xla_jaxdiv_no_such_flag=1") is False


def test_probe_answer_is_cached_per_jaxlib_version(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(xla_defaults, "probe", lambda f: calls.append(f) or True)
    monkeypatch.setattr(xla_defaults, "jaxlib_version", lambda: "9.99.0")
    assert xla_defaults.accepted() is True
    assert json.loads((cache / "xla_flags" / "jaxlib-9.99.0.json").read_text()) == {
        xla_defaults.CPU_FLAGS: True
    }
    monkeypatch.setattr(xla_defaults, "probe", _no_subprocess)
    assert xla_defaults.accepted() is True
    assert calls == [xla_defaults.CPU_FLAGS]
    # another jaxlib version is probed afresh
    monkeypatch.setattr(xla_defaults, "probe", lambda f: calls.append(f) or False)
    monkeypatch.setattr(xla_defaults, "jaxlib_version", lambda: "9.100.0")
    assert xla_defaults.accepted() is False
    assert len(calls) == 2


def test_jaxlib_that_rejects_the_flag_gets_no_flag(cache, monkeypatch):
    monkeypatch.setattr(xla_defaults, "jaxlib_version", lambda: "9.99.0")
    path = xla_defaults.cache_file("9.99.0")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({xla_defaults.CPU_FLAGS: False}))
    monkeypatch.setattr(xla_defaults, "probe", _no_subprocess)
    assert xla_defaults.apply() is False
    assert "XLA_FLAGS" not in os.environ


def test_inconclusive_probe_adds_nothing_and_is_not_cached(cache, monkeypatch):
    monkeypatch.setattr(xla_defaults, "jaxlib_version", lambda: "9.99.0")
    monkeypatch.setattr(xla_defaults, "probe", lambda f: None)
    assert xla_defaults.apply() is False
    assert "XLA_FLAGS" not in os.environ
    assert not xla_defaults.cache_file("9.99.0").exists()


def test_no_jaxlib_gets_no_flag(cache, monkeypatch):
    monkeypatch.setattr(xla_defaults, "jaxlib_version", lambda: None)
    monkeypatch.setattr(xla_defaults, "probe", _no_subprocess)
    assert xla_defaults.apply() is False
    assert "XLA_FLAGS" not in os.environ


def test_probe_timeout_is_inconclusive(monkeypatch):
    def timeout(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], xla_defaults.PROBE_TIMEOUT_S)

    monkeypatch.setattr(xla_defaults.subprocess, "run", timeout)
    assert xla_defaults.probe(xla_defaults.CPU_FLAGS) is None
