"""Mesh axes from the config, regex sharding rules, clear errors before compilation, and
member-sharded analysis equal to the unsharded result."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.train.mesh import check_batch, make_mesh, mesh_shape
from tests.support import run_python


# ----------------------------------------------------------------------------- axis sizes
@pytest.mark.parametrize(
    "cfg, devices, expected",
    [
        (None, 8, {"member": 1, "data": 8, "fsdp": 1, "model": 1}),
        ({"data": -1, "fsdp": 2}, 8, {"member": 1, "data": 4, "fsdp": 2, "model": 1}),
        ({"data": 2, "model": -1}, 8, {"member": 1, "data": 2, "fsdp": 1, "model": 4}),
        ({"member": 2, "data": -1}, 8, {"member": 2, "data": 4, "fsdp": 1, "model": 1}),
        ({"data": 2}, 8, {"member": 1, "data": 2, "fsdp": 1, "model": 1}),  # a divisor: 2 of 8
    ],
)
def test_mesh_shape_from_config(cfg, devices, expected):
    assert mesh_shape(cfg, devices) == expected


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"data": 3}, "does not divide the 8 available"),
        ({"data": -1, "fsdp": 3}, "needs a multiple of 3 devices"),
        ({"data": -1, "model": -1}, "only one mesh axis may be -1"),
        ({"data": 0}, "mesh.data must be a positive integer or -1"),
        ({"data": 2.5}, "mesh.data must be a positive integer"),
        ({"dta": 2}, "unknown mesh key"),
    ],
)
def test_mesh_shape_errors(cfg, message):
    with pytest.raises(JaxdivError, match=message):
        mesh_shape(cfg, 8)


def test_one_device_mesh_and_batch_check():
    mesh = make_mesh({"data": -1})
    assert mesh.axis_names == ("member", "data", "fsdp", "model")
    assert mesh.shape["data"] == jax.device_count()
    check_batch(32, mesh)


# -------------------------------------------- rules, errors and training on 4 devices
_RULES_CODE = r"""
import json, jax, jax.numpy as jnp, numpy as np
from jax.sharding import PartitionSpec as P
from jaxdiv.errors import JaxdivError
from jaxdiv.train.mesh import make_mesh, check_batch, state_shardings, sharding_summary, shard_batch
out = {}
state = {"params": {"dense": {"kernel": jax.ShapeDtypeStruct((64, 256), jnp.float32),
                              "bias": jax.ShapeDtypeStruct((256,), jnp.float32)},
                    "conv": {"kernel": jax.ShapeDtypeStruct((3, 3, 6, 5), jnp.float32)}},
         "opt_state": {"trace": {"dense": {
             "kernel": jax.ShapeDtypeStruct((64, 256), jnp.float32)}}},
         "step": jax.ShapeDtypeStruct((), jnp.int32)}
fsdp = make_mesh({"data": 2, "fsdp": 2})
sh = state_shardings(state, fsdp, {"rules": [["kernel$", "fsdp"]], "min_shard_size": 1})
out["fsdp"] = {k: list(v.spec) for k, v in {
    "dense": sh["params"]["dense"]["kernel"], "trace": sh["opt_state"]["trace"]["dense"]["kernel"],
    "bias": sh["params"]["dense"]["bias"], "conv": sh["params"]["conv"]["kernel"],
    "step": sh["step"]}.items()}
out["summary"] = sharding_summary(sh, state)
tp = make_mesh({"data": 2, "model": 2})
sh = state_shardings(state, tp, {"rules": [["params/dense/kernel", [None, "model"]],
                                            ["dense/bias", ["model"]]]})
out["tp"] = [list(sh["params"]["dense"]["kernel"].spec), list(sh["params"]["dense"]["bias"].spec),
             list(sh["opt_state"]["trace"]["dense"]["kernel"].spec)]
errors = {}
for name, mesh, rules in [
    ("nomatch", fsdp, [["kernel$", "fsdp"], ["blok.*kernel", "fsdp"]]),
    ("rank", tp, [["dense/kernel", ["model"]]]),
    ("axis", tp, [["dense/kernel", [None, "tensor"]]]),
    ("divide", tp, [["conv/kernel", [None, None, None, "model"]]]),
    ("spec", tp, [["kernel", "shard_everything"]]),
    ("regex", tp, [["kernel(", "fsdp"]]),
]:
    try:
        state_shardings(state, mesh, {"rules": rules})
        errors[name] = None
    except JaxdivError as err:
        errors[name] = str(err)
try:
    check_batch(30, fsdp)
except JaxdivError as err:
    errors["batch"] = str(err)
out["errors"] = errors
batch = shard_batch({"x": np.arange(8.0)}, fsdp)
out["batch_spec"] = list(batch["x"].sharding.spec)
out["batch_devices"] = len(batch["x"].sharding.device_set)

# Training: data=2 x fsdp=2 with every kernel sharded equals data=4 replicated (same step).
from jaxdiv.data.loader import TrainLoader
from jaxdiv.train.loop import build_setup, init_state, make_train_step
from tests.tiny_mlp_config import tiny_mlp_config
losses, params = {}, {}
for tag, mesh_cfg in [("dp", {"data": 4}),
                      ("fsdp", {"data": 2, "fsdp": 2, "rules": [["kernel$", "fsdp"]],
                                "min_shard_size": 1})]:
    c = tiny_mlp_config(num_steps=3)
    c.mesh = mesh_cfg
    s = build_setup(c)
    st = init_state(s, jax.random.PRNGKey(0))
    if tag == "fsdp":
        k = st["params"]["Dense_0"]["kernel"]
        out["fsdp_kernel_shards"] = [list(sh.data.shape) for sh in k.addressable_shards][:2]
    step = make_train_step(s)
    loader = TrainLoader(s.train_split, 32, seed=0)
    ls = []
    for i in range(3):
        st, m = step(st, shard_batch(loader.batch(i), s.mesh), jax.random.PRNGKey(1))
        ls.append(float(m["loss"]))
    losses[tag] = ls
    params[tag] = jax.tree_util.tree_leaves(jax.device_get(st["params"]))
out["losses"] = losses
out["param_max_diff"] = max(float(np.abs(a - b).max())
                            for a, b in zip(params["dp"], params["fsdp"]))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def rules_result(tfds_dir):
    proc = run_python(_RULES_CODE, devices=4)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fsdp_rule_shards_the_largest_divisible_dimension(rules_result):
    r = rules_result["fsdp"]
    assert r["dense"] == [None, "fsdp"]  # 256 > 64
    assert r["trace"] == r["dense"]  # the optimiser's copy follows the same rule
    assert r["conv"] == [None, None, "fsdp", None]  # 6 divisible by 2, 5 not
    assert r["bias"] == [] and r["step"] == []  # no rule matched: replicated
    s = rules_result["summary"]
    total = 4 * (64 * 256 * 2 + 256 + 3 * 3 * 6 * 5 + 1)
    assert s["bytes_replicated"] == total
    assert s["bytes_per_device"] == total - 4 * (64 * 256 + 3 * 3 * 3 * 5)


def test_explicit_tensor_parallel_rules(rules_result):
    kernel, bias, trace = rules_result["tp"]
    assert kernel == [None, "model"] and bias == ["model"]
    assert trace == []  # the rule names params/, so the optimiser's copy stays replicated


def test_bad_rules_fail_before_compilation(rules_result):
    e = rules_result["errors"]
    assert "'blok.*kernel' match no leaf" in e["nomatch"]
    assert "has 1 entries but the leaf has 2 dimensions" in e["rank"]
    assert "unknown mesh axis 'tensor'" in e["axis"]
    assert "dimension 5 is not divisible by model = 2" in e["divide"]
    assert "unknown spec 'shard_everything'" in e["spec"]
    assert "bad regex" in e["regex"]
    assert (
        "batch size 30 is not divisible by the mesh's batch axes (data=2 x fsdp=2: 4"
        in (e["batch"])
    )


def test_batch_is_split_over_data_and_fsdp(rules_result):
    assert rules_result["batch_spec"] == [["data", "fsdp"]]
    assert rules_result["batch_devices"] == 4


def test_fsdp_training_matches_data_parallel(rules_result):
    dp, fsdp = rules_result["losses"]["dp"], rules_result["losses"]["fsdp"]
    np.testing.assert_allclose(fsdp[0], dp[0], rtol=1e-6)
    np.testing.assert_allclose(fsdp, dp, rtol=1e-4)
    assert rules_result["param_max_diff"] < 1e-4
    # the first kernel [3072, 64] is split over fsdp on its largest dimension (3072 -> 1536)
    assert rules_result["fsdp_kernel_shards"][0] == [1536, 64]


# ------------------------------------------------------------- member-sharded analysis
_MEMBERS_CODE = r"""
import json, jax, jax.numpy as jnp, numpy as np
from jaxdiv.analysis.sharding import member_mesh, pad_members, shard_members
from jaxdiv.errors import JaxdivError
rng = np.random.default_rng(0)
n, m, c = 10, 300, 7
logits = rng.normal(size=(n, m, c)).astype(np.float32)
labels = rng.integers(0, c, m).astype(np.int32)
mesh = member_mesh()
out = {"devices": mesh.size}
try:
    shard_members(logits, mesh)
except JaxdivError as err:
    out["indivisible"] = str(err)
padded, n0 = pad_members(logits, mesh)
sharded = shard_members(padded, mesh)
out["shard_shape"] = list(sharded.addressable_shards[0].data.shape)

@jax.jit
def n11(z, y):
    correct = (jnp.argmax(z, -1) == y[None]).astype(jnp.float32)
    return correct @ correct.T   # both-right counts of every pair: a matrix product

ref = n11(jnp.asarray(logits), jnp.asarray(labels))
got = n11(sharded, jnp.asarray(labels))[:n0, :n0]
c_np = (logits.argmax(-1) == labels[None]).astype(np.float64)
out["matmul_equal_unsharded"] = bool(np.array_equal(np.asarray(got), np.asarray(ref)))
out["matmul_equal_numpy"] = bool(np.array_equal(np.asarray(got), c_np @ c_np.T))
try:
    from jaxdiv.analysis import pairwise
except ImportError:
    out["pairwise"] = None
else:
    pred_s, corr_s = pairwise.member_predictions(sharded, labels)
    pred_u, corr_u = pairwise.member_predictions(logits, labels)
    out["pred_sharding"] = list(pred_s.sharding.spec) if hasattr(pred_s, "sharding") else None
    st_s = pairwise.pairwise_error_stats(corr_s[:n0], pred_s[:n0])
    st_u = pairwise.pairwise_error_stats(corr_u, pred_u)
    out["pairwise"] = {k: bool(np.allclose(np.asarray(st_s[k]), np.asarray(st_u[k]),
                                           rtol=1e-6, atol=1e-7, equal_nan=True)) for k in st_u}
print(json.dumps(out))
"""


def test_member_sharded_pairwise_statistics_equal_unsharded():
    proc = run_python(_MEMBERS_CODE, devices=4)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    assert "10 members do not divide over the 4 devices" in out["indivisible"]
    assert out["shard_shape"] == [3, 300, 7]  # 10 members padded to 12, 3 per device
    assert out["matmul_equal_unsharded"] and out["matmul_equal_numpy"]
    if out["pairwise"] is not None:
        assert out["pairwise"] and all(out["pairwise"].values()), out["pairwise"]
        assert out["pred_sharding"][0] == "member"  # per-member work stayed on its device
