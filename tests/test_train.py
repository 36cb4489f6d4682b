"""The trainer: metrics, determinism, device-count invariance, kill-and-resume, guards, the
re-run of a finished run, TensorBoard after a resume, stacked members on a streamed split, the
step count a method sees, and the import graph around the loop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.train.loop import build_setup, restore_variables, train, train_members
from jaxdiv.train.metrics import read_metrics
from tests.support import ROOT, run_python, tiny_config
from tests.tiny_mlp_config import tiny_mlp_config

pytestmark = pytest.mark.usefixtures("tfds_dir")


def _params(config, workdir):
    _, variables, step = restore_variables(config, workdir)
    return step, jax.tree_util.tree_leaves(jax.device_get(variables))


def test_train_writes_metrics_tensorboard_checkpoints_and_result(tmp_path):
    config = tiny_config()
    result = train(config, tmp_path, progress=False)
    lines = read_metrics(tmp_path)
    train_lines = [m for m in lines if "train_loss" in m]
    assert [m["step"] for m in train_lines] == [2, 4, 6, 8]
    assert all(m["images_per_sec"] > 0 and 0 <= m["train_accuracy"] <= 1 for m in train_lines)
    events = (tmp_path / "tensorboard").iterdir()
    assert any(p.name.startswith("events.out.tfevents") for p in events)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [4, 8]
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["step"] == 8 and 0 <= saved["val_accuracy"] <= 1
    assert result["val_accuracy"] == saved["val_accuracy"]
    assert json.loads((tmp_path / "config.json").read_text())["model"]["name"] == "resnet"


def test_training_learns_and_is_deterministic_for_a_seed(tmp_path):
    config = tiny_config(num_steps=12)
    train(config, tmp_path / "a", progress=False)
    train(config, tmp_path / "b", progress=False)
    _, a = _params(config, tmp_path / "a")
    _, b = _params(config, tmp_path / "b")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    losses = [m["train_loss"] for m in read_metrics(tmp_path / "a") if "train_loss" in m]
    assert losses[-1] < losses[0]  # it learns
    train(tiny_config(num_steps=12, seed=1), tmp_path / "c", progress=False)
    _, c = _params(config, tmp_path / "c")
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_four_devices_match_one_device():
    """Same global batch on a 1- and a 4-device mesh: same loss, gradients, trajectory."""
    code = """
import json, tempfile, jax, numpy as np
from jaxdiv.data.loader import TrainLoader
from jaxdiv.train.loop import build_setup, init_state, train
from jaxdiv.train.mesh import shard_batch
from jaxdiv.train.metrics import read_metrics
from tests.support import tiny_config
assert jax.device_count() == 4
out, grads = {}, {}
for n in (1, 4):
    c = tiny_config(num_steps=4, log_every_steps=1)
    c.mesh.data = n
    s = build_setup(c)
    st = init_state(s, jax.random.PRNGKey(0))
    batch = shard_batch(TrainLoader(s.train_split, 32, seed=0).batch(0), s.mesh)
    assert len(batch["image"].sharding.device_set) == n
    inputs = s.method.augment(jax.random.PRNGKey(1), batch["image"])
    f = jax.jit(jax.grad(lambda p: s.method.loss(p, st["state"], inputs, batch["label"],
                                                 jax.random.PRNGKey(2), 0)[0]))
    grads[n] = jax.tree_util.tree_leaves(jax.device_get(f(st["params"])))
    d = tempfile.mkdtemp()
    train(c, d, progress=False)
    out[n] = [m["train_loss"] for m in read_metrics(d) if "train_loss" in m]
out["grad_rel_err"] = max(float(np.abs(a - b).max() / np.abs(a).max())
                          for a, b in zip(grads[1], grads[4]))
print(json.dumps(out))
"""
    proc = run_python(code, devices=4)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["1"]) == 4
    assert out["grad_rel_err"] < 1e-4
    np.testing.assert_allclose(out["4"][0], out["1"][0], rtol=1e-6)
    # later steps differ only by float reassociation, amplified by lr 0.1 and momentum
    np.testing.assert_allclose(out["4"], out["1"], rtol=1e-3)


def _train_cmd(workdir, steps):
    return [
        sys.executable,
        "-m",
        "jaxdiv",
        "train",
        "--config=tests/tiny_config.py",
        f"--workdir={workdir}",
        f"--config.num_steps={steps}",
        "--noprogress",
        "--config.checkpoint_every_steps=5",
        "--config.log_every_steps=3",  # checkpoints inside log intervals
    ]


def test_sigkill_mid_run_then_resume_matches_uninterrupted_run(tmp_path):
    steps = 60
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cmd(killed, steps),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 300
    ckpt_dir = killed / "checkpoints"
    while time.time() < deadline:
        done = [int(p.name) for p in ckpt_dir.glob("[0-9]*") if p.name.isdigit()]
        if done and max(done) >= 10:
            break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists(), "the run finished before it could be killed"
    subprocess.run(_train_cmd(killed, steps), cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run(
        _train_cmd(tmp_path / "clean", steps), cwd=ROOT, env=env, check=True, capture_output=True
    )
    config = tiny_config(num_steps=steps, checkpoint_every_steps=5)
    step_a, a = _params(config, killed)
    step_b, b = _params(config, tmp_path / "clean")
    assert step_a == step_b == steps
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)
    logged = [m["step"] for m in read_metrics(killed) if "train_loss" in m]
    assert logged == sorted(set(logged)), "resumed run must not log a step twice"
    # the line of the interval the run resumed inside averages the same steps
    timing = ("time", "images_per_sec")
    resumed = [{k: v for k, v in m.items() if k not in timing} for m in read_metrics(killed)]
    clean = [
        {k: v for k, v in m.items() if k not in timing} for m in read_metrics(tmp_path / "clean")
    ]
    assert [m["step"] for m in resumed] == [m["step"] for m in clean]
    for r, c in zip(resumed, clean, strict=True):
        assert r.keys() == c.keys() and all(r[k] == pytest.approx(c[k], rel=1e-5) for k in r), (
            r,
            c,
        )


def test_workdir_of_another_config_is_refused_and_force_keeps_the_old_run(tmp_path):
    train(tiny_config(num_steps=4), tmp_path, progress=False)
    with pytest.raises(JaxdivError, match="different config.*optimizer.learning_rate"):
        train(
            tiny_config(num_steps=4, **{"optimizer.learning_rate": 0.3}), tmp_path, progress=False
        )
    train(
        tiny_config(num_steps=4, **{"optimizer.learning_rate": 0.3}),
        tmp_path,
        progress=False,
        force=True,
    )
    old = list((tmp_path / "superseded").iterdir())
    assert len(old) == 1 and (old[0] / "checkpoints").is_dir() and (old[0] / "result.json").exists()
    assert json.loads((tmp_path / "config.json").read_text())["optimizer"]["learning_rate"] == 0.3


def test_rerunning_a_finished_run_keeps_its_result_and_logs_nothing_twice(tmp_path):
    config = tiny_mlp_config(num_steps=4)
    first = train(config, tmp_path, progress=False)
    assert {"train_loss", "train_accuracy", "val_loss"} <= set(first)
    saved = (tmp_path / "result.json").read_text()
    lines = (tmp_path / "metrics.jsonl").read_text()
    again = train(config, tmp_path, progress=False)
    assert (tmp_path / "result.json").read_text() == saved
    assert again == first == json.loads(saved)
    assert (tmp_path / "metrics.jsonl").read_text() == lines


def _events(logdir) -> list:
    """Every event of a TensorBoard log directory, file by file in the order written."""
    from tensorboardX.proto.event_pb2 import Event

    files = []
    for path in logdir.glob("events.out.tfevents.*"):
        data, pos, events = path.read_bytes(), 0, []
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            events.append(Event.FromString(data[pos + 12 : pos + 12 + length]))
            pos += 12 + length + 4
        files.append(events)
    files.sort(key=lambda events: events[0].wall_time)
    return [e for events in files for e in events]


def _scalars_as_tensorboard_shows_them(events) -> list[tuple[str, int]]:
    """(tag, step) of every scalar, applying TensorBoard's purge: a session START event at
    step P hides the earlier events of steps >= P."""
    from tensorboardX.proto.event_pb2 import SessionLog

    shown: list[tuple[str, int]] = []
    for e in events:
        if e.HasField("session_log") and e.session_log.status == SessionLog.START:
            shown = [(tag, step) for tag, step in shown if step < e.step]
        for value in e.summary.value:
            shown.append((value.tag, e.step))
    return shown


def test_tensorboard_after_a_resume_has_no_duplicate_steps(tmp_path):
    config = tiny_mlp_config(num_steps=8, log_every_steps=2, checkpoint_every_steps=4)
    config.data.eval_split = ""
    train(config, tmp_path, progress=False)
    # as if killed after logging step 8 but before its checkpoint was saved
    shutil.rmtree(tmp_path / "checkpoints" / "8")
    (tmp_path / "result.json").unlink()
    time.sleep(1.1)  # a new event file name (tensorboardX names files by the second)
    train(config, tmp_path, progress=False)
    events = _events(tmp_path / "tensorboard")
    raw = [(v.tag, e.step) for e in events for v in e.summary.value if v.tag == "train_loss"]
    assert sorted(step for _, step in raw) == [2, 4, 6, 6, 8, 8]  # both runs' events are kept
    shown = _scalars_as_tensorboard_shows_them(events)
    assert len(shown) == len(set(shown)), "a step logged twice is shown twice"
    assert sorted(step for tag, step in shown if tag == "train_loss") == [2, 4, 6, 8]
    assert [m["step"] for m in read_metrics(tmp_path)] == [2, 4, 6, 8]


def _streamed(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    config.data.streaming = True
    config.data.train_crop = "resize"
    config.data.num_threads = 2
    config.data.center_fraction = 1.0
    config.data.eval_split = "test[:64]"
    config.eval_batch_size = 32
    return config


def test_stacked_members_on_a_streamed_split_equal_single_runs(tmp_path):
    configs = [_streamed(tiny_mlp_config(num_steps=4, seed=s)) for s in (0, 1)]
    for c in configs:
        c.name = f"s{c.seed}"
    stacked = train_members(configs, [tmp_path / "stack" / c.name for c in configs], progress=False)
    for config, result in zip(configs, stacked, strict=True):
        alone = train(config, tmp_path / "alone" / config.name, progress=False)
        np.testing.assert_allclose(result["train_loss"], alone["train_loss"], rtol=1e-5)
        np.testing.assert_allclose(result["val_loss"], alone["val_loss"], rtol=1e-5)
        _, a, step_a = restore_variables(config, tmp_path / "stack" / config.name)
        _, b, step_b = restore_variables(config, tmp_path / "alone" / config.name)
        assert step_a == step_b == 4
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    assert stacked[0]["train_loss"] != stacked[1]["train_loss"]  # two different members


def test_a_method_schedule_uses_the_trainers_step_count():
    config = tiny_config(num_steps=-1, num_epochs=2.5)
    config.method = ml_collections.ConfigDict(
        {
            "name": "byol",
            "projector": {"hidden": [16], "out": 8},
            "predictor": {"hidden": [8], "out": 8},
        }
    )
    config.data.views = ml_collections.ConfigDict({"crop_scale": [0.3, 1.0]})
    setup = build_setup(config, load_train=False)
    assert setup.steps_per_epoch == 512 // 32
    assert setup.total_steps == 40 == setup.method.total_steps


def test_the_loop_and_the_population_room_import_without_cycles():
    code = (
        "import sys\n"
        "import jaxdiv.train.finetune, jaxdiv.population.spec\n"
        "assert 'jaxdiv.train.loop' not in sys.modules, 'finetune or spec imports the loop'\n"
        "import jaxdiv.train.loop\n"
        "print('ok')\n"
    )
    assert run_python(code).stdout.strip().endswith("ok")
