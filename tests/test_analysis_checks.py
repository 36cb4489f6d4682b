"""The population check: finiteness found on device or host, memoised only for immutable arrays."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiv.analysis import checks
from jaxdiv.errors import JaxdivError


def _population(n=3, m=20, c=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, m, c)).astype(np.float32), rng.integers(0, c, m).astype(np.int32)


def test_device_array_nan_named_and_memoised():
    logits, labels = _population()
    logits[2, 4, 1] = np.inf
    dev = jnp.asarray(logits)
    with pytest.raises(JaxdivError, match=r"member\(s\) c;"):
        checks.check_population(dev, labels, names=["a", "b", "c"])
    assert id(dev) in checks._FINITE
    np.testing.assert_array_equal(checks.member_finiteness(dev), [True, True, False])
    key = id(dev)
    del dev
    assert key not in checks._FINITE  # the memo dies with the array


def test_writeable_numpy_array_is_rechecked_after_mutation():
    logits, labels = _population()
    checks.check_population(logits, labels)
    logits[0, 0, 0] = np.nan  # in-place change after a passing check is still caught
    with pytest.raises(JaxdivError, match=r"member\(s\) 0;"):
        checks.check_population(logits, labels)


def test_read_only_numpy_array_is_memoised():
    logits, labels = _population()
    logits.flags.writeable = False
    checks.check_population(logits, labels)
    assert id(logits) in checks._FINITE
    np.testing.assert_array_equal(checks.member_finiteness(logits), [True, True, True])
