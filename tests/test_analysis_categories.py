"""Base-vs-other aggregation by category and the gain-vs-EI fit, against NumPy / SciPy."""

import math

import numpy as np
import pytest
from scipy.stats import pearsonr

from jaxdiv.analysis.categories import (
    base_pairs,
    category_aggregates,
    fit_gain_vs_inconsistency,
    fit_line,
    normalise_category,
)
from jaxdiv.errors import JaxdivError
from jaxdiv.population.spec import CATEGORIES


def test_categories_in_order_of_divergence():
    assert CATEGORIES == ("Reinit", "Hyperparameters", "Architecture", "Framework", "Dataset")
    assert normalise_category("hyper-parameters", CATEGORIES) == "Hyperparameters"
    assert normalise_category("DATASET", CATEGORIES) == "Dataset"
    with pytest.raises(JaxdivError, match="unknown category 'Objective'.*Reinit"):
        normalise_category("Objective", CATEGORIES)


def test_fit_matches_polyfit_and_pearsonr():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.3, 40)
    y = 0.4 * x - 0.01 + rng.normal(0, 0.01, 40)
    got = fit_gain_vs_inconsistency(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert got["slope"] == pytest.approx(slope, rel=1e-10)
    assert got["intercept"] == pytest.approx(intercept, rel=1e-8, abs=1e-12)
    assert got["r"] == pytest.approx(pearsonr(x, y)[0], rel=1e-10)
    assert got["n"] == 40


def test_fit_degenerate_rules():
    nan_fit = fit_line([0.1], [0.2])
    assert nan_fit["n"] == 1 and all(math.isnan(nan_fit[k]) for k in ("slope", "intercept", "r"))
    flat_x = fit_line([0.1, 0.1, 0.1], [0.0, 1.0, 2.0])
    assert all(math.isnan(flat_x[k]) for k in ("slope", "intercept", "r"))
    flat_y = fit_line([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    assert flat_y["slope"] == 0 and flat_y["intercept"] == 0.5 and math.isnan(flat_y["r"])
    two = fit_line([0.0, 1.0], [1.0, 3.0])
    assert (two["slope"], two["intercept"], two["r"]) == (2.0, 1.0, 1.0)
    dropped = fit_line([0.0, 1.0, np.nan, 2.0], [1.0, 3.0, 4.0, np.inf])
    assert dropped["n"] == 2 and dropped["slope"] == 2.0
    with pytest.raises(JaxdivError, match="same length"):
        fit_line([1, 2], [1, 2, 3])


@pytest.fixture
def population():
    names = ["base", "seed1", "seed2", "lr", "vit", "simclr", "clip", "odd"]
    cats = [
        None,
        "Reinit",
        "Reinit",
        "Hyperparameters",
        "Architecture",
        "Framework",
        "Dataset",
        None,
    ]
    acc = np.array([0.76, 0.75, 0.77, 0.74, 0.80, 0.72, 0.60, 0.76])
    rng = np.random.default_rng(1)
    n = len(names)
    ei = rng.uniform(0.05, 0.3, (n, n))
    ei = (ei + ei.T) / 2
    np.fill_diagonal(ei, 0)
    gain = 0.3 * ei
    dom = rng.uniform(0.5, 1.0, (n, n))  # asymmetric
    return (
        names,
        cats,
        acc,
        {"error_inconsistency": ei, "relative_ensemble_gain": gain, "dominance": dom},
    )


def test_aggregates_match_numpy(population):
    names, cats, acc, stats = population
    out = category_aggregates(names, cats, "base", acc, stats, order=CATEGORIES)
    assert out["base"] == "base" and out["base_accuracy"] == 0.76
    assert list(out["categories"]) == list(CATEGORIES)
    assert out["uncategorised"] == ["odd"]
    reinit = out["categories"]["Reinit"]
    assert reinit["count"] == 2 and reinit["members"] == ["seed1", "seed2"]
    ei_row = stats["error_inconsistency"][0, [1, 2]]
    assert reinit["mean"]["error_inconsistency"] == pytest.approx(ei_row.mean())
    assert reinit["std"]["error_inconsistency"] == pytest.approx(np.std(ei_row, ddof=1))
    hyper = out["categories"]["Hyperparameters"]
    assert hyper["count"] == 1 and math.isnan(hyper["std"]["dominance"])
    # asymmetric statistics are read from the base's row: stat[base, other]
    assert hyper["mean"]["dominance"] == stats["dominance"][0, 3]
    rows = {r["member"]: r for r in out["rows"]}
    assert rows["clip"]["category"] == "Dataset" and rows["clip"]["accuracy"] == 0.60
    fit = out["fit"]
    assert fit["x"] == "error_inconsistency" and fit["n"] == 6
    assert fit["slope"] == pytest.approx(0.3) and fit["r"] == pytest.approx(1.0)


def test_accuracy_band_and_base_by_index(population):
    names, cats, acc, stats = population
    out = category_aggregates(
        names, cats, 0, acc, stats, accuracy_band=(0.74, 0.78), order=CATEGORIES
    )
    assert out["accuracy_band"] == [0.74, 0.78]
    assert sorted(out["outside_band"]) == ["clip", "simclr", "vit"]
    assert [r["member"] for r in out["rows"]] == ["seed1", "seed2", "lr"]
    for cat in ("Architecture", "Framework", "Dataset"):
        assert out["categories"][cat]["count"] == 0
        assert math.isnan(out["categories"][cat]["mean"]["error_inconsistency"])
    other_base = base_pairs(names, cats, "vit", acc, stats, order=CATEGORIES)
    assert other_base["base"] == "vit"
    assert [r["member"] for r in other_base["rows"]] == ["seed1", "seed2", "lr", "simclr", "clip"]
    assert other_base["uncategorised"] == ["base", "odd"]  # no category relative to "vit"


def test_bad_input(population):
    names, cats, acc, stats = population
    with pytest.raises(JaxdivError, match="unknown base member 'nope'"):
        category_aggregates(names, cats, "nope", acc, stats, order=CATEGORIES)
    with pytest.raises(JaxdivError, match="out of range"):
        category_aggregates(names, cats, 8, acc, stats, order=CATEGORIES)
    with pytest.raises(JaxdivError, match=r"\[8, 8\] matrix"):
        category_aggregates(names, cats, 0, acc, {"x": np.zeros((3, 3))}, order=CATEGORIES)
    with pytest.raises(JaxdivError, match="one entry per member"):
        category_aggregates(names, cats[:-1], 0, acc, stats, order=CATEGORIES)
    with pytest.raises(JaxdivError, match="low <= high"):
        category_aggregates(names, cats, 0, acc, stats, accuracy_band=(0.8, 0.7), order=CATEGORIES)
    bad = list(cats)
    bad[1] = "Seed"
    with pytest.raises(JaxdivError, match="unknown category"):
        category_aggregates(names, bad, 0, acc, stats, order=CATEGORIES)
