"""The study's HTML report from a synthetic study workdir: its HTML, figures and Chromium load."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from jaxdiv.analysis.specialisation import angle_histograms, class_wins, confidence_angles
from jaxdiv.errors import JaxdivError
from jaxdiv.report import figures
from jaxdiv.report.html import (
    base_pair_rows,
    base_specialisation,
    class_names_for,
    load_inputs,
    representative_pairs,
    weaker_partners,
    write_report,
)
from jaxdiv.stages.analyze import run_analyze
from jaxdiv.store.store import Store

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
C, M = 10, 500
# name, category, method, architecture, shared-noise weight (lower: more divergent), signal
MEMBERS = (
    ("base", "Base", "supervised", "resnet", 1.0, 2.2),
    ("reinit-seed1", "Reinit", "supervised", "resnet", 0.85, 2.1),
    ("hparams-lr0.05", "Hyperparameters", "supervised", "resnet", 0.6, 2.0),
    ("arch-cnn", "Architecture", "supervised", "cnn", 0.4, 1.9),
    ("framework-simclr", "Framework", "simclr", "resnet", 0.2, 1.8),
    ("dataset-half", "Dataset", "supervised", "resnet", 0.0, 1.6),
)


def _synthetic_logits(rng, labels, shared, weight, signal, scale):
    """Logits whose noise mixes a noise shared by all members (weight) with its own."""
    own = rng.normal(size=shared.shape)
    noise = np.sqrt(weight) * shared + np.sqrt(1.0 - weight) * own
    return (scale * (signal * np.eye(C)[labels] + noise)).astype(np.float32)


def build_study(root: Path, *, failures: dict | None = None) -> Path:
    """A finished study workdir: population.json, a store (validation + test) and analysis."""
    rng = np.random.default_rng(0)
    store = Store(root / "store", population="synthetic")
    splits = {}
    for split in ("validation", "test"):
        labels = rng.integers(0, C, M)
        store.write_split(split, labels, np.array([f"{split}-{i}" for i in range(M)]))
        splits[split] = (labels, rng.normal(size=(M, C)))
    for k, (name, cat, method, arch, weight, signal) in enumerate(MEMBERS):
        store.write_member_info(
            name,
            {
                "category": cat,
                "base": "base",
                "method": method,
                "architecture": arch,
                "config": {"data": {"dataset": "cifar10"}},
                "metrics": {},
            },
        )
        for split, (labels, shared) in splits.items():
            scale = 1.0 + 0.3 * k  # over/under-confident members: temperatures differ
            store.write_member(
                name, split, _synthetic_logits(rng, labels, shared, weight, signal, scale)
            )
    population = {
        "name": "synthetic",
        "members": [
            {
                "name": n,
                "category": cat,
                "method": method,
                "architecture": arch,
                "dataset": "cifar10",
                "train_split": "train",
                "differences": [],
            }
            for n, cat, method, arch, _, _ in MEMBERS
        ],
    }
    (root / "population.json").write_text(json.dumps(population))
    if failures is not None:
        (root / "failures.json").write_text(json.dumps(failures))
    run_analyze(root / "store", "test", "validation", root / "analysis")
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = build_study(
        tmp_path_factory.mktemp("study"),
        failures={"broken-member": {"error": "diverged <nan>", "traceback": ""}},
    )
    write_report(root)
    return root


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.headings: list[str] = []
        self._in_heading = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_heading = tag in ("h2", "h3")

    def handle_data(self, data):
        self.text.append(data)
        if self._in_heading:
            self.headings.append(data.strip())
            self._in_heading = False


def _parse(page: Path) -> _Page:
    p = _Page()
    p.feed(page.read_text())
    return p


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ---------------------------------------------------------------------------- structure
def test_page_has_every_section_and_every_image_is_a_png(study):
    page = study / "report" / "index.html"
    parsed = _parse(page)
    for heading in (
        "Members",
        "Failed members",
        "Error inconsistency by category",
        "Ensemble gain against error inconsistency",
        "Conversion rate by category",
        "Confidence angles",
        "Per-class wins",
        "Weaker models improve stronger ones",
        "Greedy forward selection",
        "All pairs",
    ):
        assert heading in parsed.headings, f"missing section {heading!r}"
    expected = {
        "error_inconsistency_by_category.png",
        "gain_vs_inconsistency.png",
        "conversion_rate_by_category.png",
        "theta_histograms.png",
        "class_wins.png",
        "greedy_selection.png",
        "matrix_error_inconsistency.png",
        "matrix_error_consistency_kappa.png",
        "matrix_ensemble_accuracy.png",
        "matrix_relative_ensemble_gain.png",
        "matrix_disagreement.png",
    }
    assert expected <= set(parsed.images)
    for src in parsed.images:
        assert "/" not in src, "images must lie beside the page"
        w, h = _png_size(page.parent / src)
        assert w > 100 and h > 100
    # everything in the report folder is referenced: no stale figures, no temp folders left
    assert {p.name for p in page.parent.iterdir()} == set(parsed.images) | {"index.html"}
    assert not list(study.glob(".report-*"))
    text = " ".join(parsed.text)
    for name, *_ in MEMBERS:
        assert name in text
    assert "broken-member" in text and "diverged <nan>" in text  # escaped, listed
    assert "<style>" in page.read_text() and "<link" not in page.read_text()


def test_member_table_matches_members_csv(study):
    import pandas as pd

    table = pd.read_csv(study / "analysis" / "members.csv")
    html = (study / "report" / "index.html").read_text()
    first_table = html[html.index("<table>") : html.index("</table>")]
    for _, row in table.iterrows():
        assert f"{row['accuracy']:.4f}" in first_table
        assert f"{row['temperature']:.4f}" in first_table


def test_base_pairs_and_representatives(study):
    s = load_inputs(study)
    assert s.base == "base" and s.split == "test" and s.calibration_split == "validation"
    assert s.class_names[0] == "airplane" and s.class_names[-1] == "truck"
    rows = base_pair_rows(s)
    assert sorted(rows["other"]) == sorted(n for n, *_ in MEMBERS[1:])
    ei = np.load(study / "analysis" / "error_inconsistency.npy")
    for _, r in rows.iterrows():
        i, j = s.names.index("base"), s.names.index(r["other"])
        assert r["error_inconsistency"] == pytest.approx(ei[i, j], abs=1e-6)
    # the synthetic members diverge more and more from the base, category by category
    by_cat = rows.set_index("category")["error_inconsistency"]
    assert by_cat["Reinit"] < by_cat["Framework"] < by_cat["Dataset"]
    # one member per category; with one member each, that member
    chosen = dict(representative_pairs(s))
    assert {c: s.names[i] for c, i in chosen.items()} == {cat: n for n, cat, *_ in MEMBERS[1:]}


def test_representative_is_closest_in_accuracy(study):
    s = load_inputs(study)
    s.categories = ["Base", "Reinit", "Reinit", "Reinit", "Framework", "Framework"]
    s.names = [n for n, *_ in MEMBERS]
    acc = s.accuracy()
    chosen = dict(representative_pairs(s))
    reinit = [1, 2, 3]
    assert chosen["Reinit"] == min(reinit, key=lambda i: abs(acc[i] - acc[0]))
    assert set(chosen) == {"Reinit", "Framework"}


def test_specialisation_from_the_analysis_matches_the_kernels(study, tmp_path):
    """The report draws the analysis's base-pair arrays: the numbers the kernels give from
    the store with the analysis's temperatures; without the arrays it says to re-analyse."""
    s = load_inputs(study)
    others = [s.names.index(n) for n, *_ in MEMBERS[1:]]
    hist, wins = base_specialisation(s, others)
    assert hist.shape == (5, 4, 18) and wins.shape == (5, 2, C)
    store = Store(study / "store")
    logits, labels = store.logits(s.split, s.names), store.labels(s.split)
    pairs = np.array([[s.base_index, i] for i in others], np.int32)
    angles = confidence_angles(logits, labels, pairs, temperatures=s.temperatures())
    hist2 = angle_histograms(angles["theta"], angles["outcome"])
    wins2 = class_wins(logits, labels, pairs=pairs)
    np.testing.assert_array_equal(hist, hist2)
    np.testing.assert_array_equal(wins, wins2)
    copy = tmp_path / "study"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("report"))
    for f in ("base_angle_histograms.npy", "base_class_wins.npy"):
        (copy / "analysis" / f).unlink()
    with pytest.raises(JaxdivError, match="re-run the analysis"):
        base_specialisation(load_inputs(copy), others)
    # per class, the two members' wins add up to the class's error-inconsistent examples
    correct = logits.argmax(-1) == labels
    for k, j in enumerate(others):
        xor = correct[s.base_index] != correct[j]
        np.testing.assert_array_equal(wins[k].sum(0), np.bincount(labels[xor], minlength=C))


def test_weaker_partners_select_on_validation_and_report_on_test(study):
    from jaxdiv.analysis.ensembles import subset_ensemble_accuracy

    s = load_inputs(study)
    rows, greedy, sel_split = weaker_partners(s)
    assert sel_split == "validation"
    t = s.temperatures()
    store = Store(study / "store")
    val = store.logits("validation", s.names), store.labels("validation")
    test = store.logits("test", s.names), store.labels("test")
    n = len(s.names)
    pairs = [[i, j] for i in range(n) for j in range(n) if i != j]
    singles = np.asarray(subset_ensemble_accuracy(*val, [[i] for i in range(n)], temperatures=t))
    pair_val = np.asarray(subset_ensemble_accuracy(*val, pairs, temperatures=t))
    pair_test = np.asarray(subset_ensemble_accuracy(*test, pairs, temperatures=t))
    val_pair = {tuple(p): a for p, a in zip(pairs, pair_val, strict=True)}
    test_pair = {tuple(p): a for p, a in zip(pairs, pair_test, strict=True)}
    assert len(rows) == n - 1  # every member but the weakest has a weaker one
    for r in rows:
        i, j = s.names.index(r["strong"]), s.names.index(r["partner"])
        weaker = [k for k in range(n) if singles[k] < singles[i]]
        assert j in weaker
        assert val_pair[(i, j)] == pytest.approx(max(val_pair[(i, k)] for k in weaker))
        assert r["ensemble_accuracy"] == pytest.approx(test_pair[(i, j)], abs=1e-6)
    start = greedy["members"][0]
    assert start == int(np.argmax(singles))
    assert all(singles[k] < singles[start] for k in greedy["members"][1:])
    assert np.all(np.diff(greedy["select_accuracy"]) > 0)


def test_without_a_calibration_split_selection_uses_the_report_split(study, tmp_path):
    copy = tmp_path / "study"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("report"))
    run_analyze(copy / "store", "test", None, copy / "analysis")
    s = load_inputs(copy)
    assert s.calibration_split is None
    rows, greedy, sel_split = weaker_partners(s)
    assert sel_split == "test"
    ens = np.load(copy / "analysis" / "ensemble_accuracy.npy")
    acc = s.accuracy()
    for r in rows:
        i, j = s.names.index(r["strong"]), s.names.index(r["partner"])
        weaker = np.flatnonzero(acc < acc[i])
        assert ens[i, j] == pytest.approx(ens[i, weaker].max())
        assert r["ensemble_accuracy"] == pytest.approx(ens[i, j])
    assert greedy["select_accuracy"] == greedy["report_accuracy"]
    assert greedy["members"][0] == int(np.argmax(acc))


def test_selection_numbers_on_the_page_are_the_analysis_tables(study):
    import pandas as pd

    html = (study / "report" / "index.html").read_text()
    section = html[html.index("Weaker models improve") : html.index("All pairs")]
    partners = pd.read_csv(study / "analysis" / "weaker_partners.csv")
    for r in partners.itertuples():
        assert f"{r.ensemble_accuracy:.4f}" in section and f"{r.gain_over_strong:+.4f}" in section
    for r in pd.read_csv(study / "analysis" / "greedy.csv").itertuples():
        assert f"{r.select_accuracy:.4f}" in section and f"{r.report_accuracy:.4f}" in section


def test_report_replaces_an_old_one_and_a_failed_build_keeps_it(study, monkeypatch):
    report = study / "report"
    (report / "stale.png").write_bytes(PNG_MAGIC)
    write_report(study)
    assert not (report / "stale.png").exists()
    before = {p.name: p.read_bytes() for p in report.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(figures, "greedy_curve", boom)
    with pytest.raises(RuntimeError, match="figure failed"):
        write_report(study)
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before
    assert not list(study.glob(".report-*"))


def test_missing_analysis_is_a_clear_error(tmp_path):
    (tmp_path / "population.json").write_text(json.dumps({"name": "x", "members": []}))
    with pytest.raises(JaxdivError, match="run `jaxdiv study`"):
        write_report(tmp_path)
    assert not (tmp_path / "report").exists()


def test_the_population_config_names_the_dataset(study):
    import ml_collections

    pop = ml_collections.ConfigDict({"base": {"data": {"dataset": "svhn_cropped"}}})
    assert load_inputs(study, pop).class_names == [str(c) for c in range(C)]
    assert load_inputs(study).class_names[1] == "automobile"  # from population.json's base


def test_class_names_fall_back_to_indices():
    assert class_names_for("cifar10", 10)[:2] == ["airplane", "automobile"]
    assert class_names_for("CIFAR10", 10)[-1] == "truck"
    assert class_names_for("cifar100", 100)[:3] == ["0", "1", "2"]
    assert class_names_for(None, 3) == ["0", "1", "2"]


# ---------------------------------------------------------------------------- Chromium
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _images_loaded(page: Path, profile: Path) -> tuple[int, int]:
    """Open ``page`` in headless Chromium; (images loaded, images) as its script counted."""
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    match = re.search(r'<body[^>]*data-images-ok="(\d+)/(\d+)"', out.stdout)
    assert match, "the page's load script did not run:\n" + out.stdout[:500]
    return int(match.group(1)), int(match.group(2))


def test_page_loads_in_headless_chromium_with_every_image(study, tmp_path):
    page = study / "report" / "index.html"
    ok, total = _images_loaded(page, tmp_path / "profile")
    assert total == len(_parse(page).images) and total >= 11
    assert ok == total, f"only {ok} of {total} images loaded"
    # the check sees a broken image: an empty PNG in a copy of the report
    copy = tmp_path / "copy"
    shutil.copytree(page.parent, copy)
    (copy / "class_wins.png").write_bytes(b"")
    assert _images_loaded(copy / "index.html", tmp_path / "profile2") == (total - 1, total)
