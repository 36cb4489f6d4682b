"""``jaxdiv report``: the analysis and HTML report of a store filled only by imports, with human
subjects; the group error consistency against a NumPy reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from jaxdiv.analysis.category_bootstrap import example_weights
from jaxdiv.analysis.group_consistency import GROUPS, group_consistency
from jaxdiv.errors import JaxdivError
from jaxdiv.stages.report_store import CONSISTENCY_RESAMPLES, run_report
from jaxdiv.store.importer import add_member
from jaxdiv.store.store import Store
from tests.test_report import _chromium, _images_loaded, _parse

C, M = 4, 240
CLASSES = ["cat", "dog", "car", "ship"]
SPLIT = "test"
ROOT = Path(__file__).resolve().parents[1]


def _ids() -> np.ndarray:
    return np.array([f"img-{i:04d}" for i in range(M)])


def _labels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, C, M)


def _hard(rng, labels, accuracy, shared, abstain=0.0):
    """Decisions right with probability ``accuracy``; wrong ones partly shared (``shared``)."""
    right = rng.random(M) < accuracy
    wrong = np.where(rng.random(M) < 0.5, shared, (labels + rng.integers(1, C, M)) % C)
    pred = np.where(right, labels, np.where(wrong == labels, (labels + 1) % C, wrong))
    return np.where(rng.random(M) < abstain, -1, pred).astype(np.int32)


def _probs(rng, labels, signal):
    z = signal * np.eye(C)[labels] + rng.normal(size=(M, C))
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def build_store(root: Path, *, with_models: bool = True, class_names: bool = True) -> Path:
    """A store made only by ``add_member``: three hard-decision human subjects (one
    abstains sometimes) and, with ``with_models``, a hard model and three probabilistic
    models with categories (the first the base)."""
    rng = np.random.default_rng(0)
    labels, ids = _labels(), _ids()
    shared = (labels + rng.integers(1, C, M)) % C
    store = root / "imported"
    for k, (acc, abstain) in enumerate(((0.7, 0.0), (0.65, 0.1), (0.8, 0.0))):
        add_member(
            store,
            SPLIT,
            f"subject-{k}",
            ids=ids,
            labels=labels,
            num_classes=C,
            predictions=_hard(rng, labels, acc, shared, abstain),
            info={"human": True, "method": "psychophysics"},
        )
    if with_models:
        add_member(
            store,
            SPLIT,
            "zoo-hard",
            ids=ids,
            predictions=_hard(rng, labels, 0.75, shared),
            info={"category": "Architecture", "architecture": "vit"},
        )
        for name, cat, signal in (
            ("resnet-base", "Base", 2.0),
            ("resnet-seed1", "Reinit", 1.9),
            ("simclr", "Framework", 1.6),
        ):
            add_member(
                store,
                SPLIT,
                name,
                ids=ids,
                probabilities=_probs(rng, labels, signal),
                info={"category": cat, "method": "supervised", "architecture": "resnet"},
            )
    if class_names:
        meta = json.loads((store / "store.json").read_text())
        (store / "store.json").write_text(json.dumps({**meta, "class_names": CLASSES}))
    return store


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mixed")
    store = build_store(root)
    page = run_report(store, root / "out", split=SPLIT, bootstrap=200, seed=3, log=_quiet)
    return store, page


# ---------------------------------------------------------------------------- the analysis
def _reference_kappa(ci, cj, w):
    """Cohen's kappa of two correctness vectors under example weights ``w`` (plain NumPy)."""
    n = w.sum()
    pa, pb = (w * ci).sum() / n, (w * cj).sum() / n
    observed = (w * (ci == cj)).sum() / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return np.nan if expected == 1 else (observed - expected) / (1 - expected)


def _reference_groups(correct, human, weights, confidence=0.95):
    """Per resample the mean kappa of each group (a plain loop), then the quantiles."""
    n = len(human)
    weights = np.asarray(weights, np.float64)
    means = np.full((len(weights), 3), np.nan)
    for b, w in enumerate(weights):
        per = {g: [] for g in range(3)}
        for i in range(n):
            for j in range(i + 1, n):
                g = 0 if human[i] and human[j] else 1 if not (human[i] or human[j]) else 2
                per[g].append(_reference_kappa(correct[i], correct[j], w))
        for g, vals in per.items():
            vals = [v for v in vals if np.isfinite(v)]
            means[b, g] = np.mean(vals) if vals else np.nan
    q = (0.5 * (1 - confidence), 0.5 * (1 + confidence))
    out = {}
    for g, name in enumerate(GROUPS):
        rest = means[1:, g][np.isfinite(means[1:, g])]
        lo, hi = np.quantile(rest, q) if rest.size else (np.nan, np.nan)
        out[name] = (means[0, g], lo, hi)
    return out


def test_group_consistency_matches_a_numpy_loop():
    rng = np.random.default_rng(5)
    correct = rng.random((6, 90)) < np.array([0.5, 0.6, 0.7, 0.6, 0.8, 0.55])[:, None]
    correct[3] = correct[4] = True  # two always-right models: their kappa is NaN, left out
    human = np.array([True, True, True, False, False, False])
    weights = example_weights(jax.random.key(7), 60, correct.shape[1])
    got = group_consistency(correct, human, weights)
    ref = _reference_groups(correct, human, weights)
    for name in GROUPS:
        mean, lo, hi = ref[name]
        g = got["groups"][name]
        np.testing.assert_allclose([g["mean"], g["low"], g["high"]], [mean, lo, hi], rtol=1e-12)
    assert got["groups"]["human-human"]["pairs"] == 3
    assert got["groups"]["human-model"]["pairs"] == 9
    # the weights are deterministic from the seed, and row 0 is the data
    again = example_weights(jax.random.key(7), 60, correct.shape[1])
    np.testing.assert_array_equal(np.asarray(weights), np.asarray(again))
    assert np.all(np.asarray(weights)[0] == 1.0)
    np.testing.assert_allclose(np.asarray(weights)[1:].sum(1), correct.shape[1])


def test_group_without_pairs_is_nan_and_bad_input_is_one_line():
    correct = np.random.default_rng(0).random((3, 40)) < 0.6
    weights = example_weights(jax.random.key(0), 10, 40)
    got = group_consistency(correct, [True, False, False], weights)
    assert got["groups"]["human-human"]["pairs"] == 0
    assert np.isnan(got["groups"]["human-human"]["mean"])
    with pytest.raises(JaxdivError, match="human"):
        group_consistency(correct, [True, False], weights)
    with pytest.raises(JaxdivError, match="weights"):
        group_consistency(correct, [True, False, False], weights[:, :10])


def test_human_consistency_csv_matches_the_reference(mixed):
    store, page = mixed
    out = page.parents[1]
    table = pd.read_csv(out / "analysis" / "human_consistency.csv").set_index("group")
    names = json.loads((out / "analysis" / "members.json").read_text())
    s = Store(store)
    labels = s.labels(SPLIT)
    correct = np.stack(
        [
            (
                s.member_predictions(n, SPLIT)
                if s.is_hard(n, SPLIT)
                else s.member_logits(n, SPLIT).argmax(1)
            )
            == labels
            for n in names
        ]
    )
    human = [n.startswith("subject") for n in names]
    weights = example_weights(jax.random.key(3), 200, M)
    ref = _reference_groups(correct, human, weights)
    for name in GROUPS:
        np.testing.assert_allclose(
            table.loc[name, ["mean", "low", "high"]].to_numpy(float), ref[name], rtol=1e-8
        )
    assert table.loc["human-human", "pairs"] == 3 and table.loc["model-model", "pairs"] == 6
    # the point estimates are the analysis's per-pair kappa
    pairs = pd.read_csv(out / "analysis" / "pairs.csv")
    mine = pd.read_csv(out / "analysis" / "human_consistency_pairs.csv")
    merged = mine.merge(pairs, on=["member_a", "member_b"])
    assert len(merged) == len(pairs) == 21
    np.testing.assert_allclose(merged["kappa"], merged["error_consistency_kappa"], rtol=1e-6)


# ---------------------------------------------------------------------------- the page
def test_report_of_an_imported_store_with_subjects(mixed):
    store, page = mixed
    text = page.read_text()
    parsed = _parse(page)
    assert f"<title>jaxdiv report: {store.name}</title>" in text
    assert "jaxdiv study" not in text
    for heading in (
        "Members",
        "Error inconsistency by category",
        "Specialisation",
        "Human subjects and models: error consistency",
        "All pairs",
        "Representations",
    ):
        assert heading in parsed.headings, heading
    assert "subject vs model" in text and "(human subject)" in text
    assert "human_consistency.png" in parsed.images
    assert "and no calibration split was given" in text
    assert "class_wins.png" in parsed.images  # the base pairs' per-class wins
    for png in parsed.images:
        assert (page.parent / png).read_bytes()[:4] == b"\x89PNG"


def test_all_hard_store_without_categories_says_why(tmp_path):
    store = build_store(tmp_path, with_models=False, class_names=False)
    page = run_report(store, tmp_path / "out", split=SPLIT, log=_quiet)
    text = page.read_text()
    assert "no base member to compare the others with" in text
    assert text.count("This section is absent because") >= 3  # categories, specialisation, repr.
    assert "NLL, ECE and temperatures are empty because" in text
    # only subjects: one group of pairs
    table = pd.read_csv(page.parents[1] / "analysis" / "human_consistency.csv")
    assert list(table["pairs"]) == [3, 0, 0]
    record = json.loads((page.parents[1] / "analysis" / "record.json").read_text())
    assert record["class_names"] is None  # no names recorded: the report uses 0..C-1
    from jaxdiv.report.html import load_inputs

    out = page.parents[1]
    s = load_inputs(out, analysis=out / "analysis", record=out / "analysis" / "record.json")
    assert s.class_names == ["0", "1", "2", "3"] and s.base is None
    assert CONSISTENCY_RESAMPLES == int(table["resamples"].iloc[0])


def test_class_names_come_from_the_store(mixed):
    from jaxdiv.report.html import load_inputs

    _, page = mixed
    out = page.parents[1]
    s = load_inputs(out, analysis=out / "analysis", record=out / "analysis" / "record.json")
    assert s.class_names == CLASSES
    assert s.title.startswith("jaxdiv report: ")


def test_manifest_sets_categories_without_touching_the_store(tmp_path):
    store = build_store(tmp_path, with_models=False)
    before = {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    manifest = tmp_path / "members.csv"
    manifest.write_text(
        "member,category,method,human,lab\n"
        "subject-0,Base,observer,false,A\n"
        "subject-1,Reinit,observer,,B\n"
        "subject-2,Dataset,observer,,C\n"
    )
    page = run_report(store, tmp_path / "out", split=SPLIT, manifest=manifest, log=_quiet)
    after = {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    assert before == after
    text = page.read_text()
    assert "Error inconsistency by category" in _parse(page).headings
    assert "no base member" not in text
    assert "The confidence angles are absent because every member gives hard decisions" in text
    record = json.loads((page.parents[1] / "analysis" / "record.json").read_text())
    by_name = {m["name"]: m for m in record["members"]}
    assert by_name["subject-0"]["human"] is False and by_name["subject-1"]["human"] is True
    assert by_name["subject-2"]["metadata"] == {"lab": "C"}
    assert not (page.parents[1] / ".publish.tmp").exists()
    assert not list(page.parents[1].glob(".publish.tmp-*"))
    bad = tmp_path / "bad.csv"
    bad.write_text("member,category\nnobody,Reinit\n")
    with pytest.raises(JaxdivError, match="nobody"):
        run_report(store, tmp_path / "out", split=SPLIT, manifest=bad, log=_quiet)
    assert page.read_text() == text  # the earlier report stays


def test_hand_written_or_missing_population_record_does_not_crash(mixed, tmp_path):
    from jaxdiv.report.html import write_report

    _, page = mixed
    analysis = page.parents[1] / "analysis"
    (tmp_path / "population.json").write_text(json.dumps([{"name": "resnet-base"}, {"x": 1}]))
    made = write_report(tmp_path, analysis=analysis, out=tmp_path / "report")
    assert "<title>jaxdiv study: " in made.read_text()
    (tmp_path / "population.json").unlink()
    assert write_report(tmp_path, analysis=analysis, out=tmp_path / "report2").is_file()


def test_out_holding_other_files_is_refused(tmp_path):
    store = build_store(tmp_path, with_models=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(JaxdivError, match="no report's"):
        run_report(store, tmp_path / "busy", log=_quiet)
    with pytest.raises(JaxdivError, match="inside the store"):
        run_report(store, store / "report", log=_quiet)


def test_report_verb_in_a_subprocess(tmp_path):
    store = build_store(tmp_path)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxdiv",
            "report",
            f"--store={store}",
            f"--out={tmp_path / 'out'}",
            "--split=test",
            "--base=resnet-seed1",
            "--noprogress",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    page = tmp_path / "out" / "report" / "index.html"
    assert str(page) in out.stdout
    summary = json.loads((tmp_path / "out" / "analysis" / "summary.json").read_text())
    assert summary["base"] == "resnet-seed1" and summary["calibration_split"] is None
    assert "Human subjects and models: error consistency" in _parse(page).headings


def test_report_loads_in_headless_chromium(mixed, tmp_path):
    _, page = mixed
    ok, total = _images_loaded(page, tmp_path / "profile")
    assert total == len(_parse(page).images) and ok == total


def test_csv_import_with_a_manifest_end_to_end(tmp_path):
    """model-vs-human's raw-data CSV and a manifest through import-predictions, then the
    report (in Chromium when it is installed)."""
    from jaxdiv.store.importer import import_predictions

    rng = np.random.default_rng(2)
    labels = rng.integers(0, C, 60)
    shared = (labels + rng.integers(1, C, 60)) % C
    rows = ["subj,session,imagename,object_response,category"]
    subjects = {"s1": 0.7, "s2": 0.6, "alexnet": 0.8, "vgg": 0.75}
    for subj, acc in subjects.items():
        right = rng.random(60) < acc
        wrong = np.where(rng.random(60) < 0.6, shared, (labels + 2) % C)
        for i in range(60):
            answer = CLASSES[labels[i]] if right[i] else CLASSES[wrong[i]]
            if subj == "s2" and i % 13 == 0:
                answer = "na"
            rows.append(f"{subj},1,im{i:03d}.png,{answer},{CLASSES[labels[i]]}")
    trials = tmp_path / "raw-data.csv"
    trials.write_text("\n".join(rows) + "\n")
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(CLASSES) + "\n")
    manifest = tmp_path / "members.csv"
    manifest.write_text(
        "member,name,category,human\n"
        "s1,subject-1,,true\ns2,subject-2,,true\n"
        "alexnet,alexnet,Base,false\nvgg,vgg,Architecture,false\n"
    )
    store = tmp_path / "mvh"
    import_predictions(store, SPLIT, None, [trials], classes=classes, manifest=manifest)
    page = run_report(store, tmp_path / "out", split=SPLIT, bootstrap=50, log=_quiet)
    parsed = _parse(page)
    assert "Human subjects and models: error consistency" in parsed.headings
    assert "Error inconsistency by category" in parsed.headings  # vgg against the base
    table = pd.read_csv(page.parents[1] / "analysis" / "human_consistency.csv")
    assert list(table["pairs"]) == [1, 1, 4]
    from jaxdiv.report.html import load_inputs

    out = page.parents[1]
    s = load_inputs(out, analysis=out / "analysis", record=out / "analysis" / "record.json")
    assert s.class_names == CLASSES and s.base == "alexnet"
    if _chromium() is not None:  # test_report_loads_in_headless_chromium says when it skips
        ok, total = _images_loaded(page, tmp_path / "profile")
        assert total == len(parsed.images) and ok == total


def test_embeddings_and_a_calibration_split_give_the_representation_section(tmp_path):
    rng = np.random.default_rng(4)
    store = tmp_path / "zoo"
    for split in ("validation", "test"):
        labels = rng.integers(0, C, M)
        ids = np.array([f"{split}-{i}" for i in range(M)])
        for name, cat, signal in (("a", "Base", 2.0), ("b", "Reinit", 1.8), ("c", "Dataset", 1.5)):
            emb = np.eye(C)[labels] * signal + rng.normal(size=(M, C))
            add_member(
                store,
                split,
                name,
                ids=ids,
                labels=labels,
                logits=emb @ np.eye(C) + 0.1 * rng.normal(size=(M, C)),
                embeddings=np.concatenate([emb, rng.normal(size=(M, 2))], axis=1),
                info={"category": cat},
            )
        add_member(
            store,
            split,
            "observer",
            ids=ids,
            predictions=np.where(rng.random(M) < 0.7, labels, (labels + 1) % C),
            info={"human": True},
        )
    page = run_report(store, tmp_path / "out", calibration_split="validation", log=_quiet)
    parsed = _parse(page)
    assert "Representations" in parsed.headings
    assert "This section is absent because" not in page.read_text()
    assert (page.parents[1] / "representation" / "represent.json").is_file()
    assert any(p.startswith("representation_") for p in parsed.images)
    summary = json.loads((page.parents[1] / "analysis" / "summary.json").read_text())
    assert summary["calibration_split"] == "validation"
