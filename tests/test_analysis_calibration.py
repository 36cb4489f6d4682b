"""Temperature scaling against a per-member scipy.optimize reference and known answers."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from jaxdiv.analysis.calibration import (
    DEFAULT_BOUNDS,
    calibration_report,
    fit_temperatures,
    scale_logits,
)
from jaxdiv.errors import JaxdivError


def reference_temperature(logits: np.ndarray, labels: np.ndarray, bounds=DEFAULT_BOUNDS):
    """One member's temperature by scipy's bounded scalar minimiser over log T (float64)."""
    z = logits.astype(np.float64)
    rows = np.arange(len(labels))

    def nll(log_t):
        return -log_softmax(z / np.exp(log_t), axis=-1)[rows, labels].mean()

    res = minimize_scalar(nll, bounds=np.log(bounds), method="bounded", options={"xatol": 1e-9})
    return float(np.exp(res.x))


def sample_labels(rng, logits):
    """Labels drawn from softmax(logits): a perfectly calibrated model at T = 1."""
    p = softmax(logits.astype(np.float64), axis=-1)
    return (rng.random((p.shape[0], 1)) > np.cumsum(p, axis=-1)).sum(-1).clip(0, p.shape[1] - 1)


@pytest.fixture(scope="module")
def calibrated_population():
    rng = np.random.default_rng(0)
    m, c = 3000, 6
    z = rng.normal(size=(m, c)) * 2.5
    labels = sample_labels(rng, z)
    scales = np.array([1.0, 4.0, 0.25, 2.0, 0.6])  # T* = scale: over- and under-confident
    return (z[None] * scales[:, None, None]).astype(np.float32), labels, scales


def test_matches_scipy_reference(calibrated_population):
    logits, labels, _ = calibrated_population
    got = fit_temperatures(logits, labels)
    ref = [reference_temperature(logits[i], labels) for i in range(len(logits))]
    np.testing.assert_allclose(got, ref, rtol=1e-3)


def test_over_and_under_confidence_gives_t_above_and_below_one(calibrated_population):
    logits, labels, scales = calibrated_population
    t = fit_temperatures(logits, labels)
    assert abs(t[0] - 1.0) < 0.1  # labels drawn from the model itself
    assert t[1] > 2.0 and t[3] > 1.3  # overconfident logits (scaled up) need T > 1
    assert t[2] < 0.5 and t[4] < 0.8  # underconfident logits need T < 1
    np.testing.assert_allclose(t / scales, t[0], rtol=1e-3)  # T scales with the logits


def test_report_before_and_after(calibrated_population):
    logits, labels, _ = calibrated_population
    t = fit_temperatures(logits, labels)
    rep = calibration_report(logits, labels, t)
    assert set(rep) == {"temperature", "nll_before", "nll_after", "ece_before", "ece_after"}
    assert np.all(rep["nll_after"] <= rep["nll_before"] + 1e-6)
    for i in range(len(logits)):
        p = softmax(logits[i].astype(np.float64) / t[i], axis=-1)
        ref = -np.log(p[np.arange(len(labels)), labels]).mean()
        assert rep["nll_after"][i] == pytest.approx(ref, rel=1e-5)
    assert rep["ece_after"][1] < rep["ece_before"][1]  # the overconfident member improves
    assert rep["ece_after"][2] < rep["ece_before"][2]
    np.testing.assert_allclose(rep["ece_after"], rep["ece_after"][0], atol=0.02)


def test_members_are_fitted_independently(calibrated_population):
    logits, labels, _ = calibrated_population
    together = fit_temperatures(logits[:3], labels)
    alone = [fit_temperatures(logits[i : i + 1], labels)[0] for i in range(3)]
    np.testing.assert_allclose(together, alone, rtol=1e-5)


def test_tiling_does_not_change_the_fit(calibrated_population):
    logits, labels, _ = calibrated_population
    small = fit_temperatures(logits[:2, :500], labels[:500], memory_budget=2 * 6 * 16 * 37)
    whole = fit_temperatures(logits[:2, :500], labels[:500])
    np.testing.assert_allclose(small, whole, rtol=1e-5)


def test_degenerate_members_hit_the_bounds():
    rng = np.random.default_rng(1)
    m, c = 200, 4
    labels = rng.integers(0, c, m)
    always_right = np.zeros((m, c))
    always_right[np.arange(m), labels] = 3.0
    always_wrong = np.zeros((m, c))
    always_wrong[np.arange(m), (labels + 1) % c] = 3.0
    tied = np.zeros((m, c))  # constant logits: temperature has no effect
    logits = np.stack([always_right, always_wrong, tied]).astype(np.float32)
    t = fit_temperatures(logits, labels, bounds=(0.01, 100.0))
    # always right: T -> 0 until the slope underflows (exp(-3 / T) < 1e-38 below T ~ 0.035)
    assert 0.01 <= t[0] < 0.05
    after = calibration_report(logits, labels, t)["nll_after"]
    assert after[0] < 1e-12
    assert t[1] == pytest.approx(100.0, rel=1e-4)  # always wrong: the upper bound
    assert t[1] == pytest.approx(reference_temperature(logits[1], labels, (0.01, 100.0)), rel=1e-3)
    assert t[2] == pytest.approx(1.0)


def test_scale_logits():
    logits = np.ones((2, 3, 4), np.float32)
    np.testing.assert_allclose(scale_logits(logits, [2.0, 0.5])[:, 0, 0], [0.5, 2.0])


def test_bad_input():
    logits = np.zeros((2, 5, 3), np.float32)
    labels = np.zeros(5, int)
    with pytest.raises(JaxdivError, match="bounds"):
        fit_temperatures(logits, labels, bounds=(1.0, 0.5))
    with pytest.raises(JaxdivError, match="no examples"):
        fit_temperatures(logits[:, :0], labels[:0])
    with pytest.raises(JaxdivError, match="NaN or inf"):
        fit_temperatures(np.full((2, 5, 3), np.inf, np.float32), labels)
    with pytest.raises(JaxdivError, match="max_iter"):
        fit_temperatures(logits, labels, max_iter=0)
