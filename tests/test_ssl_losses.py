"""Self-supervised losses against independent NumPy (float64, explicit loops) references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.methods import losses

RTOL = 1e-5


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _np_nt_xent(z1, z2, t):
    z = _unit(np.concatenate([z1, z2]).astype(np.float64))
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        denom = sum(np.exp(z[i] @ z[j] / t) for j in others)
        total += -np.log(np.exp(z[i] @ z[pos] / t) / denom)
    return total / (2 * n)


def _np_supcon(z1, z2, y, t):
    z = _unit(np.concatenate([z1, z2]).astype(np.float64))
    y = np.concatenate([y, y])
    m = len(z)
    total = 0.0
    for i in range(m):
        denom = sum(np.exp(z[i] @ z[a] / t) for a in range(m) if a != i)
        pos = [p for p in range(m) if p != i and y[p] == y[i]]
        total += -np.mean([np.log(np.exp(z[i] @ z[p] / t) / denom) for p in pos])
    return total / m


def _np_barlow(z1, z2, lambd, eps=1e-5):
    def std(z):
        z = z.astype(np.float64)
        return (z - z.mean(0)) / np.sqrt(z.var(0) + eps)

    a, b = std(z1), std(z2)
    n, d = a.shape
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c**2
    return loss


def _np_vicreg(z1, z2, eps=1e-4):
    z1, z2 = z1.astype(np.float64), z2.astype(np.float64)
    d = z1.shape[1]
    inv = np.mean((z1 - z2) ** 2)
    var = 0.5 * sum(np.mean(np.maximum(0, 1 - np.sqrt(z.var(0, ddof=1) + eps))) for z in (z1, z2))
    cov = 0.0
    for z in (z1, z2):
        c = np.cov(z, rowvar=False)
        cov += (np.sum(c**2) - np.sum(np.diag(c) ** 2)) / d
    return inv, var, cov


def _rand(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_nt_xent_matches_numpy(t):
    z1, z2 = _rand(0, 6, 5), _rand(1, 6, 5)
    got = float(losses.nt_xent(jnp.asarray(z1), jnp.asarray(z2), temperature=t))
    np.testing.assert_allclose(got, _np_nt_xent(z1, z2, t), rtol=RTOL)


def test_nt_xent_gradient_matches_finite_differences():
    z1, z2 = _rand(2, 4, 3), _rand(3, 4, 3)
    g1, g2 = jax.grad(losses.nt_xent, argnums=(0, 1))(jnp.asarray(z1), jnp.asarray(z2), 0.5)
    h = 1e-6
    for z, g, which in ((z1, g1, 0), (z2, g2, 1)):
        fd = np.zeros(z.shape)
        for idx in np.ndindex(z.shape):
            zp, zm = z.astype(np.float64), z.astype(np.float64)
            zp[idx] += h
            zm[idx] -= h
            args_p = (zp, z2) if which == 0 else (z1, zp)
            args_m = (zm, z2) if which == 0 else (z1, zm)
            fd[idx] = (_np_nt_xent(*args_p, 0.5) - _np_nt_xent(*args_m, 0.5)) / (2 * h)
        np.testing.assert_allclose(np.asarray(g), fd, atol=2e-5)


def test_nt_xent_known_value_for_orthogonal_images():
    # Orthogonal images, identical views: only the positive has cosine 1.
    z = np.eye(4, dtype=np.float32)
    t = 0.5
    got = float(losses.nt_xent(jnp.asarray(z), jnp.asarray(z), temperature=t))
    # logits: positive 1/t, 6 negatives at 0 -> -log(e^{1/t} / (e^{1/t} + 6)).
    np.testing.assert_allclose(got, np.log1p(6 * np.exp(-1 / t)), rtol=1e-6)


def test_supcon_matches_numpy_and_reduces_to_nt_xent():
    z1, z2 = _rand(4, 6, 5), _rand(5, 6, 5)
    y = np.array([0, 1, 0, 2, 1, 0])
    got = float(losses.supcon(jnp.asarray(z1), jnp.asarray(z2), jnp.asarray(y), 0.2))
    np.testing.assert_allclose(got, _np_supcon(z1, z2, y, 0.2), rtol=RTOL)
    distinct = losses.supcon(jnp.asarray(z1), jnp.asarray(z2), jnp.arange(6), 0.3)
    np.testing.assert_allclose(distinct, losses.nt_xent(z1, z2, 0.3), rtol=RTOL)


def test_byol_loss_matches_numpy_and_stops_target_gradient():
    p1, p2, t1, t2 = (_rand(s, 5, 4) for s in range(6, 10))

    def ref(p, t):
        return np.mean(np.sum((_unit(p.astype(np.float64)) - _unit(t.astype(np.float64))) ** 2, 1))

    got = float(losses.byol_loss(p1, p2, t1, t2))
    np.testing.assert_allclose(got, ref(p1, t2) + ref(p2, t1), rtol=RTOL)
    gt = jax.grad(losses.byol_loss, argnums=(2, 3))(p1, p2, t1, t2)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in gt)
    assert float(jnp.abs(jax.grad(losses.byol_loss)(p1, p2, t1, t2)).max()) > 0
    np.testing.assert_allclose(losses.byol_loss(p1, p2, 3 * p2, 2 * p1), 0.0, atol=1e-6)


def test_simsiam_loss_matches_numpy_and_stops_target_gradient():
    p1, p2, z1, z2 = (_rand(s, 5, 4) for s in range(10, 14))

    def d(p, z):
        return -np.mean(np.sum(_unit(p.astype(np.float64)) * _unit(z.astype(np.float64)), 1))

    got = float(losses.simsiam_loss(p1, p2, z1, z2))
    np.testing.assert_allclose(got, 0.5 * d(p1, z2) + 0.5 * d(p2, z1), rtol=RTOL)
    gz = jax.grad(losses.simsiam_loss, argnums=(2, 3))(p1, p2, z1, z2)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in gz)
    np.testing.assert_allclose(losses.simsiam_loss(p1, p2, p2, p1), -1.0, rtol=1e-6)


def test_barlow_twins_matches_numpy():
    z1, z2 = _rand(14, 8, 4), _rand(15, 8, 4)
    got = float(losses.barlow_twins_loss(jnp.asarray(z1), jnp.asarray(z2), lambd=0.05))
    np.testing.assert_allclose(got, _np_barlow(z1, z2, 0.05), rtol=1e-4)


def test_vicreg_terms_match_numpy():
    z1, z2 = _rand(16, 9, 5) * 0.5, _rand(17, 9, 5) * 2.0
    got = [float(v) for v in losses.vicreg_terms(jnp.asarray(z1), jnp.asarray(z2))]
    ref = _np_vicreg(z1, z2)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    total = float(losses.vicreg_loss(jnp.asarray(z1), jnp.asarray(z2), 2.0, 3.0, 4.0))
    np.testing.assert_allclose(total, 2 * ref[0] + 3 * ref[1] + 4 * ref[2], rtol=1e-5)


def test_ema_update_and_byol_tau():
    target = {"w": np.ones(3, np.float32), "b": [np.zeros(2, np.float32)]}
    online = {"w": np.full(3, 3.0, np.float32), "b": [np.ones(2, np.float32)]}
    new = losses.ema_update(target, online, 0.75)
    np.testing.assert_allclose(new["w"], 1.5)
    np.testing.assert_allclose(new["b"][0], 0.25)
    np.testing.assert_allclose(losses.byol_tau(0, 100), 0.996, rtol=1e-7)
    np.testing.assert_allclose(losses.byol_tau(50, 100), 0.998, rtol=1e-7)
    np.testing.assert_allclose(losses.byol_tau(100, 100), 1.0)
    np.testing.assert_allclose(losses.byol_tau(250, 100), 1.0)
    np.testing.assert_allclose(
        jax.jit(losses.byol_tau, static_argnums=1)(25, 100),
        1 - 0.004 * (np.cos(np.pi / 4) + 1) / 2,
        rtol=1e-7,
    )


def test_bad_shapes_and_tiny_batches_raise():
    with pytest.raises(JaxdivError, match="same shape"):
        losses.nt_xent(jnp.ones((4, 3)), jnp.ones((5, 3)))
    with pytest.raises(JaxdivError, match="at least 2"):
        losses.nt_xent(jnp.ones((1, 3)), jnp.ones((1, 3)))
    with pytest.raises(JaxdivError, match="one label per image"):
        losses.supcon(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.arange(3))
    with pytest.raises(JaxdivError, match="at least 2"):
        losses.vicreg_loss(jnp.ones((1, 3)), jnp.ones((1, 3)))
    with pytest.raises(JaxdivError, match="total steps"):
        losses.byol_tau(0, 0)


# --- global negatives across a 4-device "data" mesh ------------------------------------------

_SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from jaxdiv.methods.losses import nt_xent

    assert jax.device_count() == 4, jax.devices()
    x1, x2, w = (np.asarray(a, np.float32) for a in json.loads(sys.stdin.read()))
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows = NamedSharding(mesh, P("data"))
    rep = NamedSharding(mesh, P())

    def jit_loss(w, x1, x2):
        return nt_xent(x1 @ w, x2 @ w, temperature=0.2)

    out = {}
    args = (jax.device_put(w, rep), jax.device_put(x1, rows), jax.device_put(x2, rows))
    val, grads = jax.jit(jax.value_and_grad(jit_loss, argnums=(0, 1, 2)))(*args)
    assert len(grads[1].sharding.device_set) == 4
    out["jit"] = [float(val)] + [np.asarray(g).tolist() for g in grads]

    def local_loss(w, x1, x2):
        return nt_xent(x1 @ w, x2 @ w, temperature=0.2, axis_name="data")

    def per_device(w, x1, x2):
        return jax.value_and_grad(local_loss, argnums=(0, 1, 2))(w, x1, x2)

    sm = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data"), P("data")),
                       out_specs=(P(), (P(), P("data"), P("data"))))
    val, grads = jax.jit(sm)(*args)
    out["shard_map"] = [float(val)] + [np.asarray(g).tolist() for g in grads]
    print(json.dumps(out))
    """
)


def test_nt_xent_global_batch_on_4_devices_equals_single_device():
    rng = np.random.default_rng(18)
    x1, x2 = rng.normal(size=(12, 6)), rng.normal(size=(12, 6))
    w = rng.normal(size=(6, 5))
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED_SCRIPT],
        input=json.dumps([x1.tolist(), x2.tolist(), w.tolist()]),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])

    x1, x2, w = (a.astype(np.float32) for a in (x1, x2, w))

    def loss(w, x1, x2):
        return losses.nt_xent(x1 @ w, x2 @ w, temperature=0.2)

    val, grads = jax.value_and_grad(loss, argnums=(0, 1, 2))(w, x1, x2)
    # The global loss also equals the NumPy reference over all 12 images, so every device
    # really saw all 22 negatives per anchor rather than only its own 2 (local) images.
    np.testing.assert_allclose(float(val), _np_nt_xent(x1 @ w, x2 @ w, 0.2), rtol=1e-5)
    for mode in ("jit", "shard_map"):
        got_val, *got_grads = results[mode]
        np.testing.assert_allclose(got_val, float(val), rtol=1e-5, err_msg=mode)
        for got, ref in zip(got_grads, grads, strict=True):
            np.testing.assert_allclose(
                np.asarray(got), np.asarray(ref), rtol=1e-4, atol=1e-6, err_msg=mode
            )
