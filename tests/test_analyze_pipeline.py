"""`run_analyze` (the analyze stage) end to end on a small synthetic prediction store."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax
from sklearn.metrics import cohen_kappa_score

from jaxdiv.analysis import statistics as registry
from jaxdiv.analysis.calibration import fit_temperatures
from jaxdiv.analysis.ensembles import greedy_selection, pair_ensembles
from jaxdiv.errors import JaxdivError
from jaxdiv.stages import analyze as analyze_mod
from jaxdiv.stages.analyze import run_analyze
from jaxdiv.store.store import Store

# the symmetric pair statistics of the registry: a pairs.csv column and an .npy matrix each
PAIR_STATISTICS = registry.keys(kind="pair", needs=("predictions", "probabilities"), symmetric=True)

MEMBERS = {  # name -> (category, accuracy boost, logit scale)
    "base": ("Base", 2.0, 1.0),
    "seed1": ("Reinit", 2.0, 1.0),
    "lr": ("Hyperparameters", 1.5, 3.0),
    "vit": ("Architecture", 1.2, 0.5),
    "clip": ("Dataset", 0.8, 2.0),
}
M_TEST, M_VAL, C = 96, 64, 5

REQUIRED = [
    "member_a",
    "member_b",
    "accuracy_a",
    "accuracy_b",
    "error_inconsistency",
    "error_consistency_kappa",
    "disagreement",
    "double_fault",
    "error_correlation",
    "yules_q",
    "symmetric_kl",
    "js_divergence",
    "ensemble_accuracy",
    "relative_ensemble_gain",
    "conversion_rate",
    "dominance_a_given_b",
    "dominance_b_given_a",
]


def _member_logits(rng, labels, boost, scale, shared):
    z = 0.6 * shared + 0.8 * rng.normal(size=shared.shape)
    z[np.arange(len(labels)), labels] += boost
    return (scale * z).astype(np.float32)


def build_store(root, *, members=MEMBERS, splits=(("test", M_TEST), ("validation", M_VAL)), seed=0):
    rng = np.random.default_rng(seed)
    store = Store(root, population="tiny")
    for split, m in splits:
        labels = rng.integers(0, C, m)
        store.write_split(split, labels, np.array([f"{split}-{i}" for i in range(m)]))
        shared = rng.normal(size=(m, C))
        for name, (cat, boost, scale) in members.items():
            info = {"category": cat, "base": "base", "config": None, "metrics": {}}
            store.write_member_info(name, info)
            store.write_member(name, split, _member_logits(rng, labels, boost, scale, shared))
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for every test that computes (compiled kernels are reused across tests)."""
    return build_store(tmp_path_factory.mktemp("analyze") / "store")


@pytest.fixture(scope="module")
def analysed(store):
    out = store.root.parent / "out"
    summary = run_analyze(store.root, "test", "validation", out)
    return store, out, summary


def test_writes_every_table(analysed):
    store, out, summary = analysed
    names = json.loads((out / "members.json").read_text())
    assert names == sorted(MEMBERS) == summary["members"]
    n = len(names)
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == n * (n - 1) // 2
    assert all(col in pairs.columns for col in REQUIRED)
    assert not any(col.endswith("_low") for col in pairs.columns)  # no bootstrap asked
    for key in (*PAIR_STATISTICS, "dominance"):
        mat = np.load(out / f"{key}.npy")
        assert mat.shape == (n, n)
    ei = np.load(out / "error_inconsistency.npy")
    for row in pairs.itertuples():
        a, b = names.index(row.member_a), names.index(row.member_b)
        assert a < b
        assert row.error_inconsistency == pytest.approx(ei[a, b], abs=1e-7)
    assert summary["num_members"] == n and summary["split"] == "test"
    assert summary["calibration_split"] == "validation"
    assert sorted(os.listdir(out.parent)) == ["out", "store"]  # no temporaries left


def test_numbers_match_numpy_references(analysed):
    store, out, _ = analysed
    names = json.loads((out / "members.json").read_text())
    logits, labels = store.logits("test", names), store.labels("test")
    members = pd.read_csv(out / "members.csv").set_index("name").loc[names]
    correct = logits.argmax(-1) == labels
    np.testing.assert_allclose(members["accuracy"], correct.mean(1))
    t_ref = fit_temperatures(store.logits("validation", names), store.labels("validation"))
    np.testing.assert_allclose(members["temperature"], t_ref, rtol=1e-6)
    p_cal = softmax(logits.astype(np.float64) / t_ref[:, None, None], axis=-1)
    nll_cal = -np.log(p_cal[:, np.arange(len(labels)), labels]).mean(1)
    np.testing.assert_allclose(members["nll_calibrated"], nll_cal, rtol=1e-4)
    assert list(members["category"]) == [MEMBERS[n][0] for n in names]

    pairs = pd.read_csv(out / "pairs.csv")
    for row in pairs.itertuples():
        a, b = names.index(row.member_a), names.index(row.member_b)
        ca, cb = correct[a], correct[b]
        assert row.accuracy_a == pytest.approx(ca.mean())
        assert row.error_inconsistency == pytest.approx(np.mean(ca ^ cb), abs=1e-6)
        assert row.double_fault == pytest.approx(np.mean(~ca & ~cb), abs=1e-6)
        assert row.error_consistency_kappa == pytest.approx(cohen_kappa_score(ca, cb), abs=1e-5)
        ens = (p_cal[a] + p_cal[b]).argmax(-1) == labels
        assert row.ensemble_accuracy == pytest.approx(ens.mean(), abs=1e-6)
        gain = ens.mean() - (ca.mean() + cb.mean()) / 2
        assert row.relative_ensemble_gain == pytest.approx(gain, abs=1e-6)
        assert row.dominance_a_given_b == pytest.approx(ca[cb].mean())
        assert row.dominance_b_given_a == pytest.approx(cb[ca].mean())


def test_summary_categories_and_fit(analysed):
    _, out, summary = analysed
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    assert summary["base"] == "base"
    cats = summary["categories"]["categories"]
    assert [
        cats[c]["count"]
        for c in ("Reinit", "Hyperparameters", "Architecture", "Framework", "Dataset")
    ] == [1, 1, 1, 0, 1]
    assert cats["Framework"]["mean"]["error_inconsistency"] is None  # NaN -> null
    ei, gain = np.load(out / "error_inconsistency.npy"), np.load(out / "relative_ensemble_gain.npy")
    iu = np.triu_indices(len(ei), k=1)
    slope, intercept = np.polyfit(ei[iu], gain[iu], 1)
    fit = summary["gain_vs_ei_all_pairs"]
    assert fit["slope"] == pytest.approx(slope, rel=1e-6)
    assert fit["intercept"] == pytest.approx(intercept, rel=1e-6, abs=1e-9)
    assert fit["r"] == pytest.approx(np.corrcoef(ei[iu], gain[iu])[0, 1], rel=1e-6)
    b = summary["members"].index("base")
    others = [i for i in range(len(ei)) if i != b]
    base_fit = summary["categories"]["fit"]
    assert base_fit["n"] == 4
    assert base_fit["slope"] == pytest.approx(
        np.polyfit(ei[b, others], gain[b, others], 1)[0], rel=1e-6
    )
    spec = summary["specialisation"]
    hist = np.load(out / "base_angle_histograms.npy")
    wins = np.load(out / "base_class_wins.npy")
    assert len(spec["pairs"]) == hist.shape[0] == wins.shape[0] == 4
    assert (hist.sum(axis=(1, 2)) == M_TEST).all()
    assert np.load(out / "per_class_accuracy.npy").shape == (5, C)


def test_uncalibrated_ensembles_average_softmax(store, tmp_path):
    summary = run_analyze(store.root, "test", None, tmp_path / "out")
    assert summary["calibration_split"] is None
    names = summary["members"]
    logits, labels = store.logits("test", names), store.labels("test")
    p = softmax(logits.astype(np.float64), axis=-1)
    ens = np.load(tmp_path / "out" / "ensemble_accuracy.npy")
    members = pd.read_csv(tmp_path / "out" / "members.csv")
    assert (members["temperature"] == 1.0).all()
    np.testing.assert_allclose(members["nll"], members["nll_calibrated"])
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            ref = ((p[a] + p[b]).argmax(-1) == labels).mean()
            assert ens[a, b] == pytest.approx(ref, abs=1e-6)


def test_bootstrap_columns(store, tmp_path):
    run_analyze(store.root, "test", None, tmp_path / "out", bootstrap=50, seed=1)
    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv")
    for key in ("error_inconsistency", "ensemble_accuracy", "relative_ensemble_gain"):
        low, high = pairs[f"{key}_low"], pairs[f"{key}_high"]
        assert (low <= high + 1e-9).all()
        inside = (low - 1e-6 <= pairs[key]) & (pairs[key] <= high + 1e-6)
        assert inside.mean() >= 0.8
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["bootstrap"] == {"resamples": 50, "seed": 1, "confidence": 0.95}
    assert all(f"{key}_low" in pairs.columns for key in PAIR_STATISTICS)


def test_clear_errors(tmp_path):
    with pytest.raises(JaxdivError, match="no prediction store"):
        run_analyze(tmp_path / "nowhere", "test", None, tmp_path / "out")
    store = build_store(tmp_path / "store", splits=(("test", 40), ("validation", 30)))
    with pytest.raises(JaxdivError, match="'train' is not in the store.*test, validation"):
        run_analyze(tmp_path / "store", "train", None, tmp_path / "out")
    with pytest.raises(JaxdivError, match="calibration split 'holdout' is not in the store"):
        run_analyze(tmp_path / "store", "test", "holdout", tmp_path / "out")
    labels = store.labels("test")
    store.write_split("extra", labels, store.ids("test"))
    store.write_member("base", "extra", np.zeros((len(labels), C), np.float32))
    with pytest.raises(JaxdivError, match="at least 2 members.*has 1 \\(base\\)"):
        run_analyze(tmp_path / "store", "extra", None, tmp_path / "out")
    store.write_member("seed1", "extra", np.zeros((len(labels), C), np.float32))
    with pytest.raises(JaxdivError, match="same members.*missing from 'extra': clip, lr, vit"):
        run_analyze(tmp_path / "store", "test", "extra", tmp_path / "out")
    with pytest.raises(JaxdivError, match="bootstrap"):
        run_analyze(tmp_path / "store", "test", None, tmp_path / "out", bootstrap=-1)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(JaxdivError, match="non-empty directory"):
        run_analyze(tmp_path / "store", "test", None, busy)
    assert not (tmp_path / "out").exists()  # nothing written by any failed run


def test_failed_write_leaves_previous_output(store, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_analyze(store.root, "test", None, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    real_save = np.save
    calls = {"n": 0}

    def flaky_save(path, arr, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_save(path, arr, *a, **k)

    monkeypatch.setattr(analyze_mod.np, "save", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        run_analyze(store.root, "test", None, out)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert os.listdir(tmp_path) == ["out"]  # the temporary folder is gone
    # a successful re-run (calibrated now) replaces the earlier analysis
    run_analyze(store.root, "test", "validation", out)
    assert os.listdir(tmp_path) == ["out"]
    assert json.loads((out / "summary.json").read_text())["calibration_split"] == "validation"


def test_base_override_band_and_no_base(store, tmp_path):
    summary = run_analyze(
        store.root, "test", None, tmp_path / "a", base="vit", accuracy_band=(0.0, 0.999)
    )
    assert summary["base"] == "vit"
    agg = summary["categories"]
    # the old base ("Base") has no category relative to vit and is left out
    assert agg["uncategorised"] == ["base"]
    assert agg["accuracy_band"] == [0.0, 0.999]
    assert [r["member"] for r in agg["rows"]] == ["clip", "lr", "seed1"]
    with pytest.raises(JaxdivError, match="base member 'nope' is not among"):
        run_analyze(store.root, "test", None, tmp_path / "b", base="nope")
    plain = build_store(
        tmp_path / "plain",
        members={k: ("", *v[1:]) for k, v in MEMBERS.items()},
        splits=(("test", M_TEST),),
    )
    for name in MEMBERS:  # no base named anywhere
        plain.write_member_info(name, {"config": None, "metrics": {}})
    summary = run_analyze(plain.root, "test", None, tmp_path / "c")
    assert summary["base"] is None and summary["categories"] is None
    assert "no base member" in summary["categories_note"]
    assert not (tmp_path / "c" / "base_angle_histograms.npy").exists()


def test_registry_names_every_column_and_matrix(analysed):
    _, out, summary = analysed
    pairs = pd.read_csv(out / "pairs.csv")
    stats = [
        c for c in pairs.columns if c not in ("member_a", "member_b", "accuracy_a", "accuracy_b")
    ]
    assert stats == [*PAIR_STATISTICS, "dominance_a_given_b", "dominance_b_given_a"]
    assert summary["statistics"] == [*PAIR_STATISTICS, "dominance"]
    members = pd.read_csv(out / "members.csv")
    member_keys = registry.keys(kind="member", needs=("predictions", "probabilities"))
    assert list(members.columns) == ["name", *member_keys, "category"]
    records = json.loads((out / "statistics.json").read_text())
    assert [r["key"] for r in records] == [*PAIR_STATISTICS, "dominance", *member_keys]
    assert records[0] == registry.as_records((registry.get("error_inconsistency"),))[0]


def test_selection_tables_choose_on_calibration_and_report_on_test(analysed):
    store, out, _ = analysed
    names = json.loads((out / "members.json").read_text())
    t = pd.read_csv(out / "members.csv").set_index("name").loc[names, "temperature"].to_numpy()
    val = store.logits("validation", names), store.labels("validation")
    test = store.logits("test", names), store.labels("test")
    sel = np.asarray(pair_ensembles(*val, temperatures=t)["ensemble_accuracy"], np.float64)
    rep = np.load(out / "ensemble_accuracy.npy")
    sel_acc, rep_acc = np.diag(sel), pd.read_csv(out / "members.csv")["accuracy"].to_numpy()
    assert json.loads((out / "selection.json").read_text())["select_split"] == "validation"
    partners = pd.read_csv(out / "weaker_partners.csv")
    assert list(partners["strong_accuracy"]) == sorted(partners["strong_accuracy"], reverse=True)
    for r in partners.itertuples():
        i, j = names.index(r.strong), names.index(r.partner)
        weaker = np.flatnonzero(sel_acc < sel_acc[i])
        assert j == weaker[np.argmax(sel[i, weaker])]
        assert r.ensemble_accuracy == pytest.approx(rep[i, j], abs=1e-6)
        assert r.gain_over_strong == pytest.approx(rep[i, j] - rep_acc[i], abs=1e-6)
    greedy = pd.read_csv(out / "greedy.csv")
    start = int(np.argmax(sel_acc))
    ref = greedy_selection(
        *val,
        *test,
        start=start,
        candidates=np.flatnonzero(sel_acc < sel_acc[start]),
        temperatures=t,
    )
    assert list(greedy["member"]) == [names[k] for k in ref["members"]]
    np.testing.assert_allclose(greedy["report_accuracy"], ref["report_accuracy"], atol=1e-6)
    assert list(greedy["size"]) == list(range(1, len(ref["members"]) + 1))
