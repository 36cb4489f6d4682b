"""Per-member accuracy, NLL and ECE against NumPy / scikit-learn references."""

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import log_loss

from jaxdiv.analysis.members import member_metrics, member_outputs
from jaxdiv.analysis.tiling import tile_size
from jaxdiv.errors import JaxdivError


def numpy_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Reference ECE: bins (lo, hi] of width 1/n_bins over the max probability."""
    conf = probs.max(-1)
    correct = probs.argmax(-1) == labels
    ece = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return ece


def random_population(n=4, m=300, c=7, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, m)
    logits = rng.normal(size=(n, m, c)) * rng.uniform(0.5, 4, size=(n, 1, 1))
    logits[:, np.arange(m), labels] += rng.uniform(0, 3, size=(n, 1))
    return logits.astype(np.float32), labels


def test_random_members_match_numpy_and_sklearn():
    logits, labels = random_population()
    got = member_metrics(logits, labels)
    for i in range(logits.shape[0]):
        p = softmax(logits[i].astype(np.float64), axis=-1)
        assert got["accuracy"][i] == pytest.approx(np.mean(p.argmax(-1) == labels), abs=1e-12)
        ref_nll = log_loss(labels, p, labels=np.arange(logits.shape[2]))
        assert got["nll"][i] == pytest.approx(ref_nll, rel=1e-5)
        assert got["ece"][i] == pytest.approx(numpy_ece(p, labels), abs=1e-5)


def test_temperatures_equal_scaled_logits_and_other_bin_counts():
    logits, labels = random_population(seed=1)
    t = np.array([0.5, 1.0, 2.0, 3.0])
    a = member_metrics(logits, labels, temperatures=t, n_bins=10)
    b = member_metrics(logits / t[:, None, None], labels, n_bins=10)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a["accuracy"], member_metrics(logits, labels)["accuracy"])
    p = softmax(logits[2].astype(np.float64) / 2.0, axis=-1)
    assert a["ece"][2] == pytest.approx(numpy_ece(p, labels, n_bins=10), abs=1e-5)


def test_tiling_does_not_change_results():
    logits, labels = random_population(m=103, seed=2)
    whole = member_metrics(logits, labels)
    # 4 members x 7 classes x 4 copies x 4 bytes = 448 bytes per example -> tiles of 10
    assert tile_size(103, 448, 4480) == 10
    tiled = member_metrics(logits, labels, memory_budget=4480)
    for key in whole:
        np.testing.assert_allclose(tiled[key], whole[key], rtol=1e-5, atol=1e-7)
    out_whole = member_outputs(logits, labels)
    out_tiled = member_outputs(logits, labels, memory_budget=4480)
    for key in out_whole:
        np.testing.assert_allclose(out_tiled[key], out_whole[key], rtol=1e-6)


def test_identical_members_and_always_wrong_member():
    logits, labels = random_population(n=1, seed=3)
    wrong = np.zeros_like(logits[0])
    wrong[np.arange(len(labels)), (labels + 1) % logits.shape[2]] = 5.0
    pop = np.stack([logits[0], logits[0], wrong])
    got = member_metrics(pop, labels)
    for key in got:
        assert got[key][0] == got[key][1]
    assert got["accuracy"][2] == 0.0
    conf = softmax(wrong.astype(np.float64), axis=-1).max(-1)
    assert got["ece"][2] == pytest.approx(conf.mean(), rel=1e-5)  # accuracy 0 in every bin
    assert got["nll"][2] == pytest.approx(
        log_loss(labels, softmax(wrong, -1), labels=np.arange(7)), rel=1e-5
    )


def test_perfectly_calibrated_data_has_zero_ece():
    # two classes; in each group every confidence is q and exactly a fraction q is right
    groups = [(0.6, 5, 3), (0.75, 4, 3), (0.9, 10, 9), (0.5, 2, 1)]
    logits, labels = [], []
    for q, count, right in groups:
        for k in range(count):
            logits.append([np.log(q), np.log(1 - q)])
            labels.append(0 if k < right else 1)
    logits = np.array(logits, np.float32)[None]
    got = member_metrics(logits, np.array(labels))
    assert got["ece"][0] == pytest.approx(0.0, abs=1e-6)


def test_sampled_calibrated_data_has_small_ece():
    rng = np.random.default_rng(4)
    m, c = 20000, 5
    logits = rng.normal(size=(m, c)) * 2
    p = softmax(logits, axis=-1)
    labels = (rng.random((m, 1)) > np.cumsum(p, axis=-1)).sum(-1)  # y ~ p
    got = member_metrics(logits[None].astype(np.float32), labels)
    assert got["ece"][0] < 0.02
    assert got["ece"][0] == pytest.approx(numpy_ece(p, labels), abs=1e-5)


def test_ties_go_to_the_lowest_class():
    labels = np.array([0, 1, 2, 0, 2])
    logits = np.zeros((2, 5, 3), np.float32)  # member 0: all classes tied
    logits[1, :, 1:] = 1.0  # member 1: classes 1 and 2 tied -> predicts 1
    out = member_outputs(logits, labels)
    np.testing.assert_array_equal(out["pred"], [[0] * 5, [1] * 5])
    np.testing.assert_array_equal(out["correct"][0], labels == 0)
    got = member_metrics(logits, labels)
    np.testing.assert_allclose(got["accuracy"], [0.4, 0.2])
    assert got["nll"][0] == pytest.approx(np.log(3), rel=1e-6)
    np.testing.assert_allclose(out["conf"][0], 1 / 3, rtol=1e-6)


def test_member_outputs_match_numpy():
    logits, labels = random_population(seed=5)
    t = np.array([1.0, 2.0, 0.5, 1.5])
    out = member_outputs(logits, labels, temperatures=t)
    p = softmax(logits.astype(np.float64) / t[:, None, None], axis=-1)
    np.testing.assert_array_equal(out["pred"], p.argmax(-1))
    np.testing.assert_array_equal(out["correct"], p.argmax(-1) == labels)
    np.testing.assert_allclose(out["conf"], p.max(-1), rtol=1e-5)


def test_half_precision_logits_are_accepted():
    logits, labels = random_population(seed=6)
    half = member_metrics(logits.astype(np.float16), labels)
    full = member_metrics(logits.astype(np.float16).astype(np.float32), labels)
    for key in half:
        np.testing.assert_allclose(half[key], full[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda lg, lb: (np.where(np.arange(7) == 3, np.nan, lg), lb), "NaN or inf"),
        (lambda lg, lb: (lg, lb + 7), "labels must lie"),
        (lambda lg, lb: (lg[0], lb), "shape"),
        (lambda lg, lb: (lg, lb[:-1]), "labels must have shape"),
    ],
)
def test_bad_input_raises_clear_errors(mutate, match):
    logits, labels = random_population()
    lg, lb = mutate(logits, labels)
    with pytest.raises(JaxdivError, match=match):
        member_metrics(lg, lb)


def test_bad_options_raise():
    logits, labels = random_population()
    with pytest.raises(JaxdivError, match="temperatures must have shape"):
        member_metrics(logits, labels, temperatures=[1.0, 2.0])
    with pytest.raises(JaxdivError, match="finite and positive"):
        member_metrics(logits, labels, temperatures=[1.0, 0.0, 1.0, 1.0])
    with pytest.raises(JaxdivError, match="n_bins"):
        member_metrics(logits, labels, n_bins=0)
    with pytest.raises(JaxdivError, match="memory_budget"):
        member_metrics(logits, labels, memory_budget=0)
