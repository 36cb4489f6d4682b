"""The ImageNet configs: published parameter counts, every member builds without data, and the
compile-only dry run (abstract inputs, simulated 8-device mesh) with its cost report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.imagenet import population
from jaxdiv.errors import JaxdivError
from jaxdiv.models import build_model
from tests.support import ROOT, run_python


def _param_count(name: str, size: int = 224) -> int:
    model = build_model(name, 1000)
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables["params"]))


@pytest.mark.parametrize(
    "name, published, rtol",
    [
        ("resnet50", 25_557_032, 0.0),  # torchvision resnet50 (He et al.: 25.6M)
        ("densenet121", 7_978_856, 0.0),  # torchvision densenet121 (Huang et al.: 8.0M)
        ("vit_s16", 22_050_664, 0.001),  # timm vit_small_patch16_224 (22.1M, with a class token;
        # ours pools the tokens: 768 parameters fewer)
        ("mixer_s16", 18_500_000, 0.01),  # Tolstikhin et al. 2021, Table 1: 18.5M
    ],
)
def test_parameter_counts_match_published(name, published, rtol):
    count = _param_count(name)
    assert abs(count - published) <= rtol * published, count


def test_every_member_builds_without_data():
    from jaxdiv.train.dry_run import parameter_count
    from jaxdiv.train.loop import build_setup

    names = [m for m, _, _ in population.MEMBERS]
    assert len(names) == len(set(names)) == 16
    counts = {}
    for name in names:
        config = population.member_config(name)
        setup = build_setup(config, load_train=False)  # no dataset on this machine
        assert setup.num_classes == 1000
        assert setup.train_split.images.shape[1:] == (224, 224, 3)
        assert setup.steps_per_epoch == len(setup.train_split) // 1024
        counts[config.model.name] = counts.get(config.model.name) or parameter_count(config)
    assert counts["resnet50"] == 25_557_032  # supervised: backbone + 1000-way head


def test_population_categories():
    from jaxdiv.population.spec import expand_population

    members = {m.name: m for m in expand_population(population.get_config())}
    declared = {name: cat for name, cat, _ in population.MEMBERS}
    assert {n: m.category for n, m in members.items()} == declared
    assert members["seed1"].differences == ("seed",)
    assert members["half_a"].config.data.train_split == "train[:49.5%]"
    assert members["vit_s16"].config.optimizer.name == "adamw"


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    return subprocess.run(
        [sys.executable, "-m", "jaxdiv", "train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_dry_run_compiles_resnet50_for_8_devices(tmp_path):
    proc = _cli("--config=configs/imagenet/resnet50.py", "--dry_run", f"--workdir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dry run of resnet50_ra" in proc.stdout and "data=8" in proc.stdout
    r = json.loads((tmp_path / "dry_run.json").read_text())
    assert r["devices"] == 8 and r["platform"] == "cpu" and r["global_batch"] == 1024
    assert r["parameters"] == 25_557_032
    # forward ~4.1 GMAC = 8.2 GFLOP per 224x224 image; a train step costs about 3 forwards
    assert 22e9 < r["flops_per_example"] < 26e9
    assert r["flops_per_step"] == pytest.approx(r["flops_per_example"] * 1024)
    assert r["steps"] == 90 * 1238 and r["steps_per_epoch"] == 1238
    # parameters, batch stats and momentum, float32, replicated on each device
    assert 25_557_032 * 2 * 4 < r["state_bytes_per_device"] < 25_557_032 * 2 * 4 * 1.01
    assert not (tmp_path / "checkpoints").exists()  # nothing trained, nothing read


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "--config.mesh.data=3",
            "mesh data=3 needs a multiple of 3 devices, which does not divide the 8 available",
        ),
        (
            "--config.batch_size=1020",
            "batch size 1020 is not divisible by the mesh's batch axes "
            r"\(data=8: 8 devices\)",
        ),
        ("--config.mesh.fsdp=3", "needs a multiple of 3 devices"),
    ],
)
def test_cli_dry_run_refuses_bad_meshes_before_compiling(override, message):
    proc = _cli("--config=configs/imagenet/resnet50.py", "--dry_run", override, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert re.search(message, proc.stderr), proc.stderr[-2000:]


def test_sharding_rule_matching_nothing_is_refused():
    from jaxdiv.train.loop import build_setup, state_shardings

    config = population.member_config("base")
    config.mesh.rules = [("kernel$", "fsdp"), ("no_such_layer/kernel", "fsdp")]
    setup = build_setup(config, load_train=False)
    with pytest.raises(JaxdivError, match="'no_such_layer/kernel' match no leaf"):
        state_shardings(setup)


_MEMBERS_CODE = r"""
import json
from jaxdiv.train.dry_run import dry_run
from tests.tiny_mlp_config import tiny_mlp_config
out = {}
for tag, mesh, k in [("one", {"data": 8}, 1), ("cohort", {"member": 4, "data": 2}, 4)]:
    c = tiny_mlp_config(batch_size=64)
    c.mesh = mesh
    r = dry_run(c, members=k)
    out[tag] = {key: r[key] for key in ("flops_per_example", "flops_per_step_per_device",
                                        "mesh", "members", "parameters")}
print(json.dumps(out))
"""


def test_dry_run_of_a_cohort_splits_members_over_the_member_axis(tfds_dir):
    proc = run_python(_MEMBERS_CODE, devices=8)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    one, cohort = out["one"], out["cohort"]
    assert cohort["members"] == 4 and "member=4 x data=2" in cohort["mesh"]
    assert cohort["parameters"] == one["parameters"]
    # each device computes its own member only (a member axis that replicated the work would
    # cost 4 x more per device): about the work per example of one model, split over 8
    work = 4 * 64 * one["flops_per_example"]
    assert cohort["flops_per_step_per_device"] == pytest.approx(work / 8, rel=0.25)
    assert cohort["flops_per_step_per_device"] < 0.5 * work / 2


def test_dry_run_inputs_are_what_the_loop_feeds_its_step(tfds_dir):
    """The dry run lowers ``make_train_step`` on ``abstract_step_inputs``: the same shapes,
    dtypes and shardings as the state and batches the loop builds, for 1 and 2 members."""
    from jaxdiv.train.loop import (
        MemberBatches,
        abstract_step_inputs,
        build_setup,
        init_state,
        make_train_step,
    )
    from tests.tiny_mlp_config import tiny_mlp_config

    def spec(tree):
        return [(x.shape, x.dtype, x.sharding) for x in jax.tree_util.tree_leaves(tree)]

    setup = build_setup(tiny_mlp_config())
    for k in (1, 2):
        state, batch, key = abstract_step_inputs(setup, k)
        keys = jax.random.split(jax.random.PRNGKey(0), k)
        real_state = init_state(setup, keys[0] if k == 1 else keys, members=k)
        real_batch = MemberBatches(setup, list(range(k)))(0)
        assert spec(real_state) == spec(state)
        assert spec(real_batch) == spec(batch)
        assert key.shape == ((2,) if k == 1 else (k, 2))
        compiled = make_train_step(setup, k).lower(state, batch, key).compile()
        _, metrics = compiled(
            real_state, real_batch, jax.device_put(keys[0] if k == 1 else keys, key.sharding)
        )
        assert np.shape(metrics["loss"]) == (() if k == 1 else (k,))


# ----------------------------------------------------------------- the whole population
DISTINCT = ["vit_s16", "mixer_s16", "densenet121", "simclr_resnet50", "byol_resnet50"]
GFLOP_PER_EXAMPLE = {  # 3 x (2 x published forward GMACs), 224x224
    "vit_s16": (26, 30),
    "mixer_s16": (20, 25),
    "densenet121": (16, 18.5),
    "simclr_resnet50": (44, 56),
    "byol_resnet50": (60, 80),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", DISTINCT)
def test_every_architecture_and_method_compiles(name, tmp_path):
    config = population.member_config(name)
    family = {
        "vit_s16": "vit_s16",
        "mixer_s16": "mixer_s16",
        "densenet121": "densenet121",
        "simclr_resnet50": "simclr_resnet50",
        "byol_resnet50": "byol_resnet50",
    }[name]
    proc = _cli(
        f"--config=configs/imagenet/{family}.py", "--dry_run", f"--workdir={tmp_path}", timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "dry_run.json").read_text())
    assert r["method"] == config.method.name and r["devices"] == 8
    lo, hi = GFLOP_PER_EXAMPLE[name]
    assert lo * 1e9 < r["flops_per_example"] < hi * 1e9, r["flops_per_example"]


@pytest.mark.slow
def test_fsdp_variant_shards_the_vit_state(tmp_path):
    proc = _cli(
        "--config=configs/imagenet/vit_s16.py:fsdp",
        "--dry_run",
        f"--workdir={tmp_path}",
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "dry_run.json").read_text())
    assert "data=4 x fsdp=2" in r["mesh"]
    assert r["state_bytes_per_device"] < 0.55 * r["state_bytes_total"]
