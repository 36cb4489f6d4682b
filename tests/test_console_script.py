"""The installed ``jaxdiv`` console script runs the README's commands from the repo root.

Unlike ``python -m jaxdiv``, the script has no current directory on ``sys.path``, so a config
that does ``from configs import ...`` loads only because the CLI puts the config's import
root on it. ``--only_check_args`` (absl) stops after the flags, the config file included,
are parsed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from jaxdiv import cli
from tests.support import ROOT

SCRIPT = Path(sys.executable).parent / "jaxdiv"
pytestmark = pytest.mark.skipif(not SCRIPT.is_file(), reason=f"no console script at {SCRIPT}")


def readme_commands() -> list[list[str]]:
    """Every ``python -m jaxdiv VERB ...`` of README.md, as the script's arguments."""
    verbs = "|".join(re.escape(v) for v in cli.VERBS)
    text = (ROOT / "README.md").read_text()
    commands = []
    for match in re.finditer(rf"python -m jaxdiv ((?:{verbs})\b[^`&\n\\#]*)", text):
        args = shlex.split(match.group(1))
        if args not in commands and not any("..." in a for a in args):
            commands.append(args)
    return commands


def script(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_readme_has_the_commands_checked_here():
    verbs = {args[0] for args in readme_commands()}
    assert {"study", "train", "predict"} <= verbs
    configs = {a for args in readme_commands() for a in args if a.startswith("--config=")}
    assert "--config=configs/quickstart.py" in configs


@pytest.mark.parametrize("args", readme_commands(), ids=" ".join)
def test_script_parses_every_readme_command(args):
    proc = script(*args, "--only_check_args")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_script_loads_configs_that_import_the_configs_package(tmp_path):
    # quickstart.py and cifar10_simclr.py do `from configs import ...`; an unknown key is
    # reported only once the file loaded
    for config in ("configs/quickstart.py", "configs/cifar10_simclr.py:quick"):
        proc = script("study", f"--config={config}", "--config.no_such_key=1", "--only_check_args")
        assert proc.returncode == 2 and "the config has no key" in proc.stderr, proc.stderr
        assert "No module named" not in proc.stderr
    # from another directory, by absolute path
    proc = script(
        "study",
        f"--config={ROOT / 'configs' / 'quickstart.py'}",
        f"--workdir={tmp_path}",
        "--only_check_args",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_script_help():
    proc = script("--help")
    assert proc.returncode == 0 and "verbs:" in proc.stdout
    proc = script("study", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("jaxdiv study: ")
