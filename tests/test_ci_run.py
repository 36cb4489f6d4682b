""".ci/run with stub tools: the install, ruff check, ruff format --check and pytest in that order,
failing on any of them, and on pytest collecting no tests (exit status 5)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

# every stub appends its command line to $CI_LOG and exits with $RC_<name> (default 0)
STUB = """#!/usr/bin/env bash
echo "{name} $*" >> "$CI_LOG"
{body}
exit "${{RC_{var}:-0}}"
"""
VENV = """if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  echo 'export PATH="'"$STUBS"'/venv:$PATH"' > "$3/bin/activate"
fi"""
RUFF = """if [ "$1" = "format" ]; then exit "${RC_RUFF_FORMAT:-0}"; fi"""


def _stub(folder: Path, name: str, body: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(STUB.format(name=name, body=body, var=name.upper()))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def ci(tmp_path):
    """Run a copy of .ci/run in an empty checkout; returns (run, log path)."""
    repo, stubs = tmp_path / "repo", tmp_path / "stubs"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    _stub(stubs / "system", "python3", VENV)
    _stub(stubs / "system", "chromium")
    _stub(stubs / "venv", "pip")
    _stub(stubs / "venv", "ruff", RUFF)
    _stub(stubs / "venv", "python")
    log = tmp_path / "log"

    def run(**rcs: int) -> subprocess.CompletedProcess:
        log.write_text("")
        env = {
            "PATH": f"{stubs / 'system'}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "STUBS": str(stubs),
            "CI_LOG": str(log),
            **{f"RC_{k.upper()}": str(v) for k, v in rcs.items()},
        }
        return subprocess.run(
            ["bash", str(repo / ".ci" / "run")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run, log


def _steps(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_steps_in_order_and_success(ci):
    run, log = ci
    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert _steps(log) == [
        "python3 -m venv .venv",
        "pip install -q -e .[test]",
        "ruff check .",
        "ruff format --check .",
        "python -m pytest -q",
    ]


@pytest.mark.parametrize("step, rc", [("python3", 3), ("pip", 1), ("ruff", 1), ("ruff_format", 1)])
def test_a_failing_step_fails_the_run_before_pytest(ci, step, rc):
    run, log = ci
    proc = run(**{step: rc})
    assert proc.returncode == rc
    assert "python -m pytest -q" not in _steps(log)


def test_pytest_failures_and_no_tests_fail_the_run(ci):
    run, _ = ci
    proc = run(python=1)
    assert proc.returncode == 1 and "pytest failed (exit status 1)" in proc.stderr
    proc = run(python=5)
    assert proc.returncode == 5
    assert "ci: error: pytest collected no tests (exit status 5)" in proc.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = (
        "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' "
        "&& python -m pytest -q"
    )
    assert command in readme
    install, pytest_ = command.rsplit(" && ", 1)
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert f"{install} || exit" in lines and pytest_ + " || status=$?" in lines
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
