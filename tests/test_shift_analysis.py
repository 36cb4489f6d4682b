"""The analyze stage's shift pass on a synthetic store with two corrupted splits."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from jaxdiv.analysis.calibration import fit_temperatures
from jaxdiv.errors import JaxdivError
from jaxdiv.stages.analyze import run_analyze
from jaxdiv.store.store import Store

MEMBERS = {  # name -> (category, boost on clean data)
    "base": ("Base", 2.0),
    "seed1": ("Reinit", 2.0),
    "seed2": ("Reinit", 1.9),
    "wide": ("Architecture", 1.4),
    "ssl": ("Framework", 1.0),
}
M, C = 120, 4
SUBSET = "test.0-60.snow-2"
SHIFTS = {"test.gaussian_noise-3": ("gaussian_noise", 3, 0.6), "test.fog-5": ("fog", 5, 0.3)}


def _split(store, rng, split, m, factor, source=None, labels=None):
    labels = rng.integers(0, C, m) if labels is None else labels
    store.write_split(split, labels, np.array([f"ex{i}" for i in range(m)]), source)
    shared = rng.normal(size=(m, C))
    for name, (cat, boost) in MEMBERS.items():
        store.write_member_info(name, {"category": cat, "base": "base", "config": None})
        z = 0.5 * shared + rng.normal(size=(m, C))
        z[np.arange(m), labels] += boost * factor
        store.write_member(name, split, z.astype(np.float32))
    return labels


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    store = Store(tmp_path_factory.mktemp("shift") / "store", population="tiny")
    _split(store, rng, "validation", 80, 1.0)
    labels = _split(store, rng, "test", M, 1.0)
    for name, (corruption, severity, factor) in SHIFTS.items():
        source = {
            "dataset": "synthetic",
            "split": f"test:{corruption}:{severity}",
            "source_split": "test",
            "corruption": corruption,
            "severity": severity,
            "seed": 0,
        }
        _split(store, rng, name, M, factor, source)
    # a corrupted copy of the first 60 test examples (a slice of the analysed split)
    source = {"split": "test[:60]:snow:2", "source_split": "test[:60]", "corruption": "snow"}
    _split(store, rng, SUBSET, 60, 0.8, {**source, "severity": 2, "seed": 0}, labels[:60])
    return store


@pytest.fixture(scope="module")
def analysed(store):
    out = store.root.parent / "out"
    summary = run_analyze(
        store.root, "test", "validation", out, bootstrap=30, seed=2, shift_splits="all"
    )
    return out, summary


def test_writes_the_shift_tables(analysed, store):
    out, summary = analysed
    assert summary["shift"]["splits"] == sorted([*SHIFTS, SUBSET])  # "all": the store's order
    for name in ("splits.json", "members.csv", "pairs.csv", "categories.csv", "lines.json"):
        assert (out / "shift" / name).exists()
    meta = json.loads((out / "shift" / "splits.json").read_text())
    got = [(m["corruption"], m["severity"], m["examples"]) for m in meta]
    assert got == [("snow", 2, 60), ("fog", 5, M), ("gaussian_noise", 3, M)]


def test_members_use_the_clean_temperatures(analysed, store):
    out, _ = analysed
    members = pd.read_csv(out / "shift" / "members.csv")
    clean = pd.read_csv(out / "members.csv")
    names = list(MEMBERS)
    temps = fit_temperatures(store.logits("validation", names), store.labels("validation"))
    labels = store.labels("test.fog-5")
    fog = members[members.split == "test.fog-5"].set_index("name")
    for i, name in enumerate(names):
        z = store.member_logits(name, "test.fog-5").astype(np.float64)
        assert fog.loc[name, "accuracy"] == pytest.approx(np.mean(z.argmax(1) == labels))
        p = softmax(z / temps[i], axis=1)
        nll = -np.mean(np.log(p[np.arange(M), labels]))
        assert fog.loc[name, "nll_calibrated"] == pytest.approx(nll, rel=1e-4)
    got = members[members.severity == 0].set_index("name")["accuracy"]
    np.testing.assert_allclose(got[names], clean.set_index("name")["accuracy"][names])
    assert set(members.corruption) == {"none", "gaussian_noise", "fog", "snow"}
    # a slice's clean accuracy is the clean accuracy on the same examples
    snow = members[members.split == SUBSET].set_index("name")
    labels = store.labels("test")[:60]
    for name in names:
        right = store.member_logits(name, "test")[:60].argmax(1) == labels
        assert snow.loc[name, "clean_accuracy"] == pytest.approx(right.mean())


def test_pairs_and_lines(analysed, store):
    out, _ = analysed
    pairs = pd.read_csv(out / "shift" / "pairs.csv")
    noise = pairs[pairs.split == "test.gaussian_noise-3"]
    labels = store.labels("test.gaussian_noise-3")
    pred = {n: store.member_logits(n, "test.gaussian_noise-3").argmax(1) for n in MEMBERS}
    row = noise[(noise.member_a == "base") & (noise.member_b == "wide")].iloc[0]
    right_a, right_b = pred["base"] == labels, pred["wide"] == labels
    assert row.error_inconsistency == pytest.approx(np.mean(right_a != right_b))
    assert row.agreement == pytest.approx(np.mean(pred["base"] == pred["wide"]))
    assert "error_inconsistency_low" in pairs.columns
    lines = json.loads((out / "shift" / "lines.json").read_text())
    acc = pd.read_csv(out / "shift" / "members.csv")
    fog = acc[acc.split == "test.fog-5"]
    from scipy.stats import norm

    x, y = norm.ppf(fog.clean_accuracy), norm.ppf(fog.accuracy)
    slope = np.polyfit(x, y, 1)[0]
    assert lines["test.fog-5"]["accuracy"]["slope"] == pytest.approx(slope, rel=1e-6)


def test_categories_by_severity(analysed):
    out, _ = analysed
    cats = pd.read_csv(out / "shift" / "categories.csv")
    assert set(cats.severity) == {0, 2, 3, 5}
    base_acc = cats[(cats.category == "Base") & (cats.statistic == "accuracy")]
    assert len(base_acc) == 4
    reinit = cats[(cats.category == "Reinit") & (cats.statistic == "error_inconsistency")]
    clean_pairs = pd.read_csv(out / "pairs.csv")
    base_rows = clean_pairs[(clean_pairs.member_a == "base")].set_index("member_b")
    clean_row = reinit[reinit.severity == 0].iloc[0]
    expected = base_rows.loc[["seed1", "seed2"], "error_inconsistency"].mean()
    assert clean_row["mean"] == pytest.approx(expected)
    assert clean_row["low"] <= clean_row["mean"] <= clean_row["high"]
    assert clean_row["count"] == 2
    # the clean split's category intervals and paired differences are written too
    intervals = pd.read_csv(out / "category_intervals.csv")
    assert set(intervals.category) >= {"Base", "Reinit", "Architecture", "Framework"}
    diffs = pd.read_csv(out / "category_differences.csv")
    assert {"a", "b", "statistic", "difference", "low", "high", "p_not_above"} <= set(diffs)


def test_shift_splits_are_checked(store, tmp_path):
    with pytest.raises(JaxdivError, match="not in the store"):
        run_analyze(store.root, "test", None, tmp_path / "a", shift_splits=["test:snow:2"])
    with pytest.raises(JaxdivError, match=r"not a corruption of \(part of\) the analysed split"):
        run_analyze(store.root, "test", None, tmp_path / "b", shift_splits=["validation"])
    summary = run_analyze(store.root, "test", None, tmp_path / "c", shift_splits=["test:fog:5"])
    assert summary["shift"]["splits"] == ["test.fog-5"]


def test_outside_predictions_on_a_corrupted_split_join_the_shift_pass(tmp_path):
    """Members imported on ``test:fog:3`` (e.g. evaluated on the published CIFAR-10-C) land
    in ``test.fog-3`` with the shift recorded, and ``shift_splits="all"`` finds them."""
    from jaxdiv.store.importer import add_member

    rng = np.random.default_rng(3)
    ids = np.array([f"im{i}" for i in range(50)])
    labels = rng.integers(0, C, 50)
    root = tmp_path / "store"
    for split in ("test", "test:fog:3"):
        for name, boost in (("a", 2.0), ("b", 1.0), ("c", 0.5)):
            z = rng.normal(size=(50, C))
            z[np.arange(50), labels] += boost
            add_member(root, split, name, ids=ids, logits=z, labels=labels)
    info = Store(root).split_info("test.fog-3")
    assert (info["corruption"], info["severity"], info["seed"]) == ("fog", 3, None)
    summary = run_analyze(root, "test", None, tmp_path / "out", shift_splits="all")
    assert summary["shift"]["splits"] == ["test.fog-3"]
    # the report for any store has the shift section too (no base: its category part says why)
    from jaxdiv.stages.report_store import run_report

    page = run_report(root, tmp_path / "report", shift_splits="all", log=lambda *_: None)
    html = page.read_text()
    assert "Distribution shift" in html and "shift_on_the_line.png" in html
    assert "absent because" in html
