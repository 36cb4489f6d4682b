"""The statistics registry against the kernels, and the one-home rules of the analysis room."""

import ast
from pathlib import Path

import numpy as np
import pytest

from jaxdiv.analysis import bootstrap, categories, ensembles, members, pairwise, tiling
from jaxdiv.analysis import statistics as registry
from jaxdiv.analysis.selection import best_weaker_partners
from jaxdiv.errors import JaxdivError

ROOT = Path(__file__).resolve().parents[1] / "jaxdiv"


@pytest.fixture(scope="module")
def population():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 64)
    logits = rng.normal(size=(4, 64, 5)).astype(np.float32)
    logits[:, np.arange(64), labels] += 1.5
    return logits, labels


def test_kernels_return_exactly_the_registry_keys(population):
    z, y = population
    pred, correct = pairwise.member_predictions(z, y)
    outputs = {
        "pairwise_error_stats": pairwise.pairwise_error_stats(correct, pred),
        "predictive_divergences": pairwise.predictive_divergences(z),
        "pair_ensembles": ensembles.pair_ensembles(z, y),
    }
    for kernel, out in outputs.items():
        assert set(out) == set(registry.keys(kernel=kernel)), kernel
    table = ensembles.pairwise_table(z, y)
    assert set(table) == {"accuracy", *(k for o in outputs.values() for k in o)}
    assert bootstrap.STATISTICS == registry.keys(bootstrap=True)


def test_registry_entries_are_consistent():
    keys = [s.key for s in registry.REGISTRY]
    assert len(keys) == len(set(keys))
    assert "js_divergence" in keys and "js" not in keys  # one name everywhere
    for s in registry.REGISTRY:
        assert s.needs in registry.NEEDS and s.kind in registry.KINDS
        lo, hi = s.range
        assert lo is None or hi is None or lo < hi
        if s.heatmap is not None:
            assert s.kind == "pair", s.key
        if s.kind == "pair" and not s.symmetric and s.needs != "embeddings":
            assert s.pair_columns and len(set(s.pair_columns)) == 2, s.key
        if s.bootstrap:
            assert s.kind == "pair" and s.symmetric, s.key
    records = registry.as_records()
    assert [r["key"] for r in records] == keys and isinstance(records[0]["range"], list)
    assert registry.get("dominance").symmetric is False
    with pytest.raises(JaxdivError, match="unknown statistic 'js'"):
        registry.get("js")
    with pytest.raises(JaxdivError, match="unknown statistic kind"):
        registry.select(kind="triple")
    with pytest.raises(JaxdivError, match="unknown statistic 'dominance'"):
        registry.check_keys(["dominance"], bootstrap=True)


def test_one_home_for_names_tiling_and_categories():
    for module, name in (
        (pairwise, "ERROR_STATISTICS"),
        (pairwise, "DIVERGENCES"),
        (ensembles, "ENSEMBLE_STATISTICS"),
        (categories, "CATEGORIES"),
        (pairwise, "DEFAULT_MEMORY_BUDGET_BYTES"),
        (members, "CPU_TILE_BYTES"),
    ):
        assert not hasattr(module, name), f"{module.__name__}.{name} is back"
    for module in (pairwise, ensembles, bootstrap, members):
        for name in ("example_tile", "check_budget", "tile_size", "DEFAULT_MEMORY_BUDGET"):
            if hasattr(module, name):
                assert getattr(module, name) is getattr(tiling, name), (module, name)


def _jaxdiv_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxdiv"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("jaxdiv")}
    return out


def test_rooms_import_only_what_the_data_flow_allows():
    for path in sorted((ROOT / "analysis").glob("*.py")):
        bad = {m for m in _jaxdiv_imports(path) if m != "jaxdiv.errors"}
        bad = {m for m in bad if not m.startswith("jaxdiv.analysis")}
        assert not bad, f"{path.name} imports {bad}"
    for path in sorted((ROOT / "report").glob("*.py")):
        bad = {m for m in _jaxdiv_imports(path) if m.startswith("jaxdiv.analysis")}
        assert not bad, f"report/{path.name} imports {bad}"


def test_best_weaker_partners():
    sel_acc = np.array([0.5, 0.7, 0.6, 0.6])
    rep_acc = np.array([0.52, 0.69, 0.58, 0.61])
    sel = np.array(
        [
            [0.5, 0.72, 0.6, 0.6],
            [0.72, 0.7, 0.74, 0.74],  # a tie between 2 and 3: the first wins
            [0.6, 0.74, 0.6, 0.65],
            [0.6, 0.74, 0.65, 0.6],
        ]
    )
    rep = sel - 0.01
    got = best_weaker_partners(sel, rep, sel_acc, rep_acc)
    # rows by report accuracy: 1 (0.69), 3 (0.61), 2 (0.58); 0 is the weakest
    assert got["strong"].tolist() == [1, 3, 2] and got["partner"].tolist() == [2, 0, 0]
    np.testing.assert_allclose(got["ensemble_accuracy"], [0.73, 0.59, 0.59])
    np.testing.assert_allclose(got["gain_over_strong"], [0.73 - 0.69, 0.59 - 0.61, 0.59 - 0.58])
    np.testing.assert_allclose(got["select_ensemble_accuracy"], [0.74, 0.6, 0.6])
    with pytest.raises(JaxdivError, match=r"\[4, 4\]"):
        best_weaker_partners(sel[:3], rep, sel_acc, rep_acc)
