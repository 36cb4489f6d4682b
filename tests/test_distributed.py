"""Multi-process runs: how processes find each other, and 2 processes x 2 CPU devices on
127.0.0.1 training exactly like 1 process x 4 devices, with checkpoints one process restores,
and stacked members trained by 2 processes (each member's files written once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxdiv.distributed import Plan, plan
from jaxdiv.errors import JaxdivError
from tests.support import ROOT
from tests.tiny_mlp_config import tiny_mlp_config


# --------------------------------------------------------------------------------- plans
def test_single_process_by_default():
    assert plan(env={}) == Plan("single")
    assert plan(env={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) == Plan("single")
    assert plan(env={"TPU_WORKER_HOSTNAMES": "t1v-0"}) == Plan("single")  # one-host TPU VM
    assert plan(env={"TPU_ACCELERATOR_TYPE": "v4-8", "TPU_WORKER_ID": "0"}) == Plan("single")


def test_explicit_flags_win_over_environment():
    env = {
        "JAXDIV_COORDINATOR_ADDRESS": "10.0.0.1:1",
        "JAXDIV_NUM_PROCESSES": "8",
        "JAXDIV_PROCESS_ID": "5",
        "SLURM_JOB_ID": "1",
        "SLURM_NTASKS": "4",
    }
    assert plan(env=env) == Plan("explicit", "10.0.0.1:1", 8, 5)
    p = plan(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=1, env=env)
    assert p == Plan("explicit", "127.0.0.1:1234", 2, 1) and p.multi_process
    assert "process 1 of 2" in p.describe()
    assert plan(coordinator_address="h:1", num_processes=1, process_id=0, env={}) == Plan("single")
    assert plan(mode="off", env=env) == Plan("single")


@pytest.mark.parametrize(
    "kwargs, env, message",
    [
        (
            {"coordinator_address": "h:1"},
            {},
            "incomplete: got coordinator address but not --num_processes",
        ),
        ({}, {"JAXDIV_NUM_PROCESSES": "2", "JAXDIV_PROCESS_ID": "0"}, "--coordinator_address"),
        (
            {"coordinator_address": "h:1", "num_processes": 2, "process_id": 2},
            {},
            r"process id 2 must lie in \[0, 2\)",
        ),
        (
            {"coordinator_address": "nohostport", "num_processes": 2, "process_id": 0},
            {},
            "must be host:port",
        ),
        (
            {},
            {
                "JAXDIV_COORDINATOR_ADDRESS": "h:1",
                "JAXDIV_NUM_PROCESSES": "two",
                "JAXDIV_PROCESS_ID": "0",
            },
            r"must be an integer, got 'two' \(from \$JAXDIV_NUM",
        ),
        ({"mode": "sometimes"}, {}, "unknown distributed mode"),
        ({}, {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"}, "start the processes with `srun"),
    ],
)
def test_bad_setups_are_refused_with_the_fix(kwargs, env, message):
    with pytest.raises(JaxdivError, match=message):
        plan(env=env, **kwargs)


def test_clusters_are_detected():
    slurm = {
        "SLURM_JOB_ID": "1",
        "SLURM_NTASKS": "4",
        "SLURM_STEP_NODELIST": "n[1-2]",
        "SLURM_PROCID": "3",
    }
    assert plan(env=slurm) == Plan("slurm")
    assert plan(env={"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}) == Plan("tpu")
    assert plan(env={"TPU_ACCELERATOR_TYPE": "v4-32", "TPU_WORKER_ID": "2"}) == Plan("tpu")
    assert plan(env={"OMPI_COMM_WORLD_SIZE": "4"}) == Plan("mpi")


def test_launcher_environment():
    sys.path.insert(0, str(ROOT / "launch"))
    try:
        import local
    finally:
        sys.path.pop(0)
    env = local.process_env(
        {"XLA_FLAGS": "--xla_foo --xla_force_host_platform_device_count=9"},
        1,
        2,
        4321,
        cpu_devices=2,
        gpus=None,
    )
    assert env["JAXDIV_COORDINATOR_ADDRESS"] == "127.0.0.1:4321"
    assert (env["JAXDIV_NUM_PROCESSES"], env["JAXDIV_PROCESS_ID"]) == ("2", "1")
    assert env["XLA_FLAGS"] == "--xla_foo --xla_force_host_platform_device_count=2"
    assert env["JAX_PLATFORMS"] == "cpu"
    gpu = local.process_env({}, 1, 2, 1, cpu_devices=None, gpus=4)
    assert gpu["CUDA_VISIBLE_DEVICES"] == "4,5,6,7" and "JAX_PLATFORMS" not in gpu


# ------------------------------------------------------- 2 processes x 2 devices vs 1 x 4
STEPS = 4


def _train_cmd(workdir) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jaxdiv",
        "train",
        "--config=tests/tiny_mlp_config.py",
        f"--workdir={workdir}",
        f"--config.num_steps={STEPS}",
        "--config.log_every_steps=1",
        "--config.checkpoint_every_steps=2",
        "--noprogress",
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tfds_dir):
    """The same config trained by 2 processes x 2 CPU devices (through launch/local.py) and
    by 1 process x 4 CPU devices."""
    root = tmp_path_factory.mktemp("dist")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JAXDIV_") or k in ("JAXDIV_CACHE_DIR",)
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    two = subprocess.run(
        [
            sys.executable,
            "launch/local.py",
            "--num_processes=2",
            "--cpu_devices_per_process=2",
            "--",
            *_train_cmd(root / "two"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert two.returncode == 0, two.stdout[-4000:] + two.stderr[-2000:]
    one_env = dict(env, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    one = subprocess.run(
        _train_cmd(root / "one"), cwd=ROOT, env=one_env, capture_output=True, text=True, timeout=900
    )
    assert one.returncode == 0, one.stderr[-4000:]
    return root, two.stdout


def _losses(workdir):
    from jaxdiv.train.metrics import read_metrics

    return [m["train_loss"] for m in read_metrics(workdir) if "train_loss" in m]


def test_two_processes_ran_as_one_four_device_job(runs):
    root, output = runs
    # both processes finished and printed the same final result
    finals = [line for line in output.splitlines() if "'step': 4" in line]
    assert {line[:4] for line in finals} == {"[0] ", "[1] "}
    result = json.loads((root / "two" / "result.json").read_text())
    assert result["step"] == STEPS and 0 <= result["val_accuracy"] <= 1


def test_two_processes_match_one_process_four_devices(runs):
    root, _ = runs
    one, two = _losses(root / "one"), _losses(root / "two")
    assert len(one) == len(two) == STEPS
    # same data shards, same initialisation, same first step to float precision ...
    np.testing.assert_allclose(two[0], one[0], rtol=1e-6)
    # ... and the trajectory differs only by the all-reduce's summation order
    np.testing.assert_allclose(two, one, rtol=1e-4)
    res_one = json.loads((root / "one" / "result.json").read_text())
    res_two = json.loads((root / "two" / "result.json").read_text())
    np.testing.assert_allclose(res_two["val_loss"], res_one["val_loss"], rtol=1e-3)


def test_checkpoint_of_two_processes_restores_in_one_process(runs):
    from jaxdiv.train.loop import restore_variables

    root, _ = runs
    config = tiny_mlp_config(num_steps=STEPS, log_every_steps=1, checkpoint_every_steps=2)
    assert sorted(
        int(p.name) for p in (root / "two" / "checkpoints").iterdir() if p.name.isdigit()
    ) == [2, 4]
    _, two, step_two = restore_variables(config, root / "two")  # this process: 1 device
    _, one, step_one = restore_variables(config, root / "one")
    assert step_two == step_one == STEPS
    a = jax.tree_util.tree_leaves(jax.device_get(two))
    b = jax.tree_util.tree_leaves(jax.device_get(one))
    assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b, strict=True))
    diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
    assert diff < 1e-3, diff


# ------------------------------------------------- stacked members on 2 processes x 2 devices
_COHORT_CODE = """
import sys
from pathlib import Path
from jaxdiv.distributed import initialize
initialize()
from jaxdiv.train.loop import train_members
from tests.tiny_mlp_config import tiny_mlp_config
configs = []
for seed in (0, 1):
    c = tiny_mlp_config(num_steps=%d, log_every_steps=1, checkpoint_every_steps=2, seed=seed)
    c.name = f"m{seed}"
    configs.append(c)
root = Path(sys.argv[1])
results = train_members(configs, [root / c.name for c in configs], progress=False)
print("RESULTS", [round(r["train_loss"], 6) for r in results])
"""


@pytest.fixture(scope="module")
def cohort_run(runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JAXDIV_") or k in ("JAXDIV_CACHE_DIR",)
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [
            sys.executable,
            "launch/local.py",
            "--num_processes=2",
            "--cpu_devices_per_process=2",
            "--",
            sys.executable,
            "-c",
            _COHORT_CODE % STEPS,
            str(root),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return root, proc.stdout


def test_stacked_members_on_two_processes_write_each_members_files_once(cohort_run, runs):
    from jaxdiv.train.metrics import read_metrics

    root, output = cohort_run
    finals = [line for line in output.splitlines() if "RESULTS" in line]
    assert {line[:4] for line in finals} == {"[0] ", "[1] "}
    assert len({line[4:] for line in finals}) == 1  # both processes computed the same
    for name in ("m0", "m1"):
        workdir = root / name
        steps = [m["step"] for m in read_metrics(workdir)]
        assert steps == [1, 2, 3, 4, 4], steps  # 4 train lines and the final eval, once each
        events = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
        assert len(events) == 1  # one writer: the main process
        assert json.loads((workdir / "result.json").read_text())["step"] == STEPS
        assert sorted(
            int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()
        ) == [2, 4]
    # member m0 is the config of the single runs above: the same trajectory
    np.testing.assert_allclose(_losses(root / "m0"), _losses(runs[0] / "one"), rtol=1e-4)
    assert _losses(root / "m0") != _losses(root / "m1")


# --------------------------------------------------------------- cluster launch scripts
def _fake(tmp_path, name: str) -> None:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text('#!/usr/bin/env bash\nfor a in "$@"; do printf "<%s>\\n" "$a"; done\n')
    path.chmod(0o755)


def test_tpu_pod_script_runs_the_command_on_every_worker(tmp_path):
    _fake(tmp_path, "gcloud")
    env = dict(os.environ, GCLOUD=str(tmp_path / "bin" / "gcloud"), PROJECT="proj")
    proc = subprocess.run(
        [
            "bash",
            "launch/tpu_pod.sh",
            "run",
            "my-v4-32",
            "us-central2-b",
            "--",
            "train",
            "--config=configs/imagenet/resnet50.py",
            "--workdir=/mnt/shared/a b",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    args = [line[1:-1] for line in proc.stdout.splitlines()]
    assert args[:5] == ["compute", "tpus", "tpu-vm", "ssh", "my-v4-32"]
    assert {"--zone=us-central2-b", "--project=proj", "--worker=all"} <= set(args)
    command = next(a for a in args if a.startswith("--command="))
    assert (
        "python -m jaxdiv train --config=configs/imagenet/resnet50.py --workdir=/mnt/shared/a\\ b"
    ) in command
    assert "set -o pipefail" in command and "tee -a logs/" in command
    bad = subprocess.run(
        ["bash", "launch/tpu_pod.sh", "run", "t", "z", "train"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2


def test_slurm_script_starts_one_srun_step(tmp_path):
    _fake(tmp_path, "srun")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "activate").write_text("")
    env = dict(
        os.environ,
        SLURM_SUBMIT_DIR=str(tmp_path),
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
    )
    env.pop("TFDS_DATA_DIR", None)
    proc = subprocess.run(
        [
            "bash",
            str(ROOT / "launch" / "slurm.sbatch"),
            "train",
            "--config=c.py",
            "--workdir=/shared/w",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    args = [line[1:-1] for line in proc.stdout.splitlines()]
    assert args == [
        "--kill-on-bad-exit=1",
        "python",
        "-m",
        "jaxdiv",
        "train",
        "--config=c.py",
        "--workdir=/shared/w",
        "--noprogress",
    ]
    assert (tmp_path / "logs").is_dir()
