"""Bad inputs through the command line: each is refused with exit status 2 and one line on
stderr that names the problem and the fix, never a traceback, and nothing is created."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.usefixtures("tfds_dir")

TRAIN = ["train", "--config=tests/tiny_mlp_config.py", "--noprogress"]


def _jaxdiv(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "jaxdiv", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _refused(cases: dict[str, tuple[list[str], str]]) -> None:
    """Run the cases two at a time; each must exit 2 with one stderr line matching."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = dict(zip(cases, pool.map(_jaxdiv, [a for a, _ in cases.values()]), strict=True))
    for name, proc in procs.items():
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr, (name, proc.stderr[-3000:])
        assert len(lines) == 1, (name, lines)
        assert cases[name][1] in lines[0], (name, lines[0])


def test_bad_run_lengths_batch_sizes_learning_rates_and_slices_are_one_line(tmp_path):
    w = lambda name: f"--workdir={tmp_path / name}"  # noqa: E731
    _refused(
        {
            "batch 0": ([*TRAIN, w("a"), "--config.batch_size=0"], "batch_size must be"),
            "batch -4": ([*TRAIN, w("b"), "--config.batch_size=-4"], "batch_size must be"),
            "steps 0": ([*TRAIN, w("c"), "--config.num_steps=0"], "num_steps must be"),
            "steps -5": ([*TRAIN, w("c"), "--config.num_steps=-5"], "num_steps must be"),
            "epochs 0": (
                [*TRAIN, w("d"), "--config.num_steps=-1", "--config.num_epochs=0"],
                "num_epochs must be positive",
            ),
            "lr -0.1": (
                [*TRAIN, w("e"), "--config.optimizer.learning_rate=-0.1"],
                "learning_rate must be",
            ),
            "reversed": (
                [*TRAIN, w("f"), "--config.data.train_split=train[100:50]"],
                "selects no examples",
            ),
            "empty": (
                [*TRAIN, w("g"), "--config.data.eval_split=test[50:50]"],
                "selects no examples",
            ),
            "long bad split": (
                [*TRAIN, w("h"), "--config.data.eval_split=" + "x" * 250],
                "bad split",
            ),
        }
    )
    assert not any(tmp_path.iterdir()), "a refused run creates nothing"


def test_a_workdir_that_is_a_file_and_a_diverged_run_are_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    _refused(
        {
            "file": ([*TRAIN, f"--workdir={tmp_path / 'file'}"], "is a file"),
            "under a file": ([*TRAIN, f"--workdir={tmp_path / 'file' / 'run'}"], "is a file"),
            "predict file": (["predict", f"--workdir={tmp_path / 'file'}"], "is a file"),
            "diverged": (
                [
                    *TRAIN,
                    f"--workdir={tmp_path / 'nan'}",
                    "--config.optimizer.learning_rate=1e8",
                    "--config.num_steps=20",
                    "--config.log_every_steps=1",
                    "--config.checkpoint_every_steps=1",
                ],
                "training diverged",
            ),
        }
    )


def _dataset_copy(root: Path, tfds_dir: Path) -> Path:
    """The metadata of the prepared CIFAR-10 and the first 2 MB of its test records."""
    (src,) = (tfds_dir / "cifar10").iterdir()
    dest = root / "cifar10" / src.name
    dest.mkdir(parents=True)
    for p in src.iterdir():
        if p.suffix in (".json", ".txt"):
            shutil.copyfile(p, dest / p.name)
    record = next(src.glob("cifar10-test.array_record*"))
    with open(record, "rb") as f:
        (dest / record.name).write_bytes(f.read(2_000_000))
    return dest


def test_a_corrupt_dataset_folder_is_one_line(tmp_path, tfds_dir):
    truncated = _dataset_copy(tmp_path / "truncated", tfds_dir)
    broken = _dataset_copy(tmp_path / "broken", tfds_dir)
    info = broken / "dataset_info.json"
    info.write_text(info.read_text()[:300])
    data = ["--config.data.train_split=test[:64]", "--config.data.eval_split="]
    _refused(
        {
            "truncated record": (
                [
                    *TRAIN,
                    f"--workdir={tmp_path / 'a'}",
                    *data,
                    f"--config.data.data_dir={truncated.parents[1]}",
                ],
                "cannot read the records",
            ),
            "missing record": (
                [
                    *TRAIN,
                    f"--workdir={tmp_path / 'b'}",
                    f"--config.data.data_dir={truncated.parents[1]}",
                ],
                "cannot read the records",
            ),
            "broken dataset_info.json": (
                [
                    *TRAIN,
                    f"--workdir={tmp_path / 'c'}",
                    *data,
                    f"--config.data.data_dir={broken.parents[1]}",
                ],
                "is corrupt",
            ),
        }
    )


def test_predict_refuses_a_config_that_does_not_fit_and_a_bad_member_before_writing(tmp_path):
    run = tmp_path / "run"
    proc = _jaxdiv(
        [*TRAIN, f"--workdir={run}", "--config.num_steps=2", "--config.data.eval_split="]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = sorted(p.name for p in run.iterdir())
    _refused(
        {
            "another model": (
                ["predict", f"--workdir={run}", "--config=tests/tiny_config.py"],
                "model.name: 'mlp' -> 'resnet'",
            ),
            "another width": (
                [
                    "predict",
                    f"--workdir={run}",
                    "--config=tests/tiny_mlp_config.py",
                    "--config.model.kwargs.hidden=(32,)",
                ],
                "(3072, 64) in the checkpoint but (3072, 32) in the config",
            ),
            "bad member": (
                ["predict", f"--workdir={run}", "--member=../elsewhere"],
                "invalid member name",
            ),
        }
    )
    assert sorted(p.name for p in run.iterdir()) == before, "nothing is created"
