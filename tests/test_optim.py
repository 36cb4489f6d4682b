"""Optimiser construction: per-module learning-rate multipliers."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.train.optim import build_optimizer


def _cfg(name: str, **extra) -> ml_collections.ConfigDict:
    c = {"name": name, "learning_rate": 0.1, "weight_decay": 0.0, "schedule": "constant"}
    return ml_collections.ConfigDict({**c, **extra})


def _params():
    return {
        "backbone": {"kernel": jnp.ones((3, 2))},
        "pred": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))},
    }


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_multiplier_scales_only_that_module(name):
    params = _params()
    grads = {
        "backbone": {"kernel": jnp.full((3, 2), 0.5)},
        "pred": {"kernel": jnp.full((2, 2), 0.5), "bias": jnp.full((2,), -0.25)},
    }
    plain = build_optimizer(_cfg(name), 10, 5)
    scaled = build_optimizer(_cfg(name, lr_multipliers={"pred": 10.0}), 10, 5)
    u_plain, _ = plain.update(grads, plain.init(params), params)
    u_scaled, _ = scaled.update(grads, scaled.init(params), params)
    np.testing.assert_allclose(u_scaled["backbone"]["kernel"], u_plain["backbone"]["kernel"])
    for key in ("kernel", "bias"):
        np.testing.assert_allclose(u_scaled["pred"][key], 10.0 * u_plain["pred"][key], rtol=1e-6)
    # the same as optax's update at ten times the learning rate for those parameters
    if name == "adamw":
        ref = optax.adamw(1.0, weight_decay=0.0)
        u_ref, _ = ref.update(grads, ref.init(params), params)
        np.testing.assert_allclose(u_scaled["pred"]["kernel"], u_ref["pred"]["kernel"], rtol=1e-6)


def test_unknown_module_is_one_clear_error():
    params = _params()
    tx = build_optimizer(_cfg("sgd", lr_multipliers={"predictor": 10.0}), 10, 5)
    with pytest.raises(JaxdivError, match="module 'predictor'.*backbone, pred"):
        tx.init(params)


def test_bad_factor_is_refused():
    with pytest.raises(JaxdivError, match="positive number"):
        build_optimizer(_cfg("sgd", lr_multipliers={"pred": 0}), 10, 5)
