"""`run_represent` (the represent stage) on a small synthetic prediction store written through
Store's API, and the report's figures drawn from its tables."""

import json

import numpy as np
import pandas as pd
import pytest

from jaxdiv.analysis.cka import linear_cka
from jaxdiv.analysis.probes import evaluate_probes
from jaxdiv.errors import JaxdivError
from jaxdiv.report.representation import draw_representation
from jaxdiv.stages.represent import TooFewMembers, run_represent
from jaxdiv.store.store import Store

NAMES = ("base", "reinit", "arch", "frame")
CATS = ("base", "Reinit", "Architecture", "Framework")
FAST = {"n_seeds": 2, "keep": (1, 4, 16), "c_grid": (1.0,)}


def _embeddings(rng, y, views):
    latent = 2.0 * np.eye(10)[y]
    return [
        (latent[:, v] @ w + rng.normal(size=(len(y), w.shape[1]))).astype(np.float32)
        for v, w in views
    ]


def _write_store(root, *, embeddings=True, overlap=False):
    rng = np.random.default_rng(0)
    views = [
        (np.arange(0, 6), rng.normal(size=(6, 8))),
        (np.arange(0, 6), rng.normal(size=(6, 8))),
        (np.arange(3, 9), rng.normal(size=(6, 6))),
        (np.arange(4, 10), rng.normal(size=(6, 7))),
    ]
    st = Store(root)
    data = {}
    for split, m, prefix in (("validation", 300, "v"), ("test", 200, "t")):
        y = rng.integers(0, 10, m)
        ids = np.array([f"{prefix}{i}" for i in range(m)])
        if overlap and split == "test":
            ids[0] = "v0"
        st.write_split(split, y, ids)
        data[split] = (y, _embeddings(rng, y, views))
    for i, (name, cat) in enumerate(zip(NAMES, CATS, strict=True)):
        st.write_member_info(name, {"category": cat})
        for split, (y, embs) in data.items():
            has = embeddings or name != "arch"
            st.write_member(name, split, rng.normal(size=(len(y), 10)), embs[i] if has else None)
    return data


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    data = _write_store(root)
    out = tmp_path_factory.mktemp("rep") / "represent"
    summary = run_represent(root, out, transfer="coarse", shots=5, **FAST)
    return root, out, summary, data


def test_writes_every_table_and_figure(result, tmp_path):
    _, out, summary, _ = result
    figures = {p.name for p in draw_representation(out, tmp_path)}
    assert figures == {
        "mixing.png",
        "compression.png",
        "stacked.png",
        "cka.png",
        *(f"category_{k}.png" for k in pd.read_csv(out / "category_pairs.csv").columns[3:]),
    }
    for name in (
        "members.csv",
        "mixing.csv",
        "mixing_seeds.csv",
        "mixing_gain.csv",
        "compression.csv",
        "dims_to_target.csv",
        "stacked.csv",
        "cka.csv",
        "cka.npy",
        "categories.csv",
        "category_pairs.csv",
        "statistics.json",
        "mixing.png",
        "compression.png",
        "stacked.png",
        "cka.png",
        "category_mixing_gain.png",
        "represent.json",
    ):
        path = (tmp_path if name.endswith(".png") else out) / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["base"] == "base" and summary["pairs"] == "base"
    assert json.loads((out / "represent.json").read_text())["members"] == sorted(NAMES)
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temp leftovers
    assert not list(out.glob("*.png"))  # the stage writes tables; the report draws them


def test_tables_agree_with_the_analysis_functions(result):
    _, out, summary, data = result
    names = sorted(NAMES)
    order = [NAMES.index(n) for n in names]
    (ytr, tr), (yev, ev) = data["validation"], data["test"]
    tr, ev = [tr[i] for i in order], [ev[i] for i in order]
    members = pd.read_csv(out / "members.csv")
    assert members["member"].tolist() == names
    single = evaluate_probes(tr, ytr, ev, yev, np.arange(4)[:, None], c_grid=(1.0,))
    np.testing.assert_allclose(members["probe_accuracy"], single.accuracy[:, 0])
    b = names.index("base")
    assert summary["target"] == pytest.approx(single.accuracy[b, 0])
    mixing = pd.read_csv(out / "mixing.csv")
    assert len(mixing) == 3 * 5 and set(mixing["a"]) == {"base"}
    assert set(mixing["category"]) == {"Reinit", "Architecture", "Framework"}
    # ratio 1 with the smaller width as total: the base alone when it is the narrower member
    arch = mixing[(mixing["b"] == "arch") & (mixing["ratio"] == 0.0)]
    assert arch["mean"].iloc[0] == pytest.approx(
        single.accuracy[names.index("arch"), 0], abs=2.5 / len(yev)
    )
    seeds = pd.read_csv(out / "mixing_seeds.csv")
    assert len(seeds) == 3 * 5 * 2
    comp = pd.read_csv(out / "compression.csv")
    assert len(comp) == 3 * 2 * 3 and set(comp["dims"]) == {1, 4, 16}
    need = pd.read_csv(out / "dims_to_target.csv")
    assert len(need) == 3 * 2 and (need["target"] == summary["target"]).all()
    cka = pd.read_csv(out / "cka.csv")
    ref = linear_cka(ev)
    ia, ib = np.triu_indices(4, k=1)
    np.testing.assert_allclose(cka["cka"], ref[ia, ib], atol=1e-9)
    np.testing.assert_allclose(np.load(out / "cka.npy"), ref, atol=1e-9)
    stacked = pd.read_csv(out / "stacked.csv")
    assert len(stacked) == 6
    np.testing.assert_allclose(
        stacked["gain"], stacked["pair"] - np.maximum(stacked["single_a"], stacked["single_b"])
    )
    cats = pd.read_csv(out / "categories.csv")
    row = cats[(cats["category"] == "Reinit") & (cats["statistic"] == "mixing_gain")]
    gain = pd.read_csv(out / "mixing_gain.csv")
    assert row["mean"].iloc[0] == pytest.approx(gain.loc[gain["b"] == "reinit", "gain"].iloc[0])
    assert summary["categories"]["Reinit"]["count"] == 1
    rows = pd.read_csv(out / "category_pairs.csv")
    assert sorted(rows["member"]) == ["arch", "frame", "reinit"]
    reinit = rows.set_index("member").loc["reinit"]
    assert reinit["mixing_gain"] == pytest.approx(row["mean"].iloc[0])
    assert reinit["cka"] == pytest.approx(ref[names.index("base"), names.index("reinit")])


def test_all_pairs_without_transfer_and_rerun_replaces(result, tmp_path):
    root, _, _, _ = result
    out = tmp_path / "rep"
    s1 = run_represent(root, out, members=["reinit", "arch", "frame"], transfer="none", **FAST)
    assert s1["base"] is None and s1["pairs"] == "all" and s1["categories"] is None
    assert len(pd.read_csv(out / "mixing_gain.csv")) == 3
    assert not (out / "stacked.csv").exists()
    unbiased = np.load(out / "cka.npy")
    s2 = run_represent(
        root,
        out,
        members=["reinit", "arch", "frame"],
        transfer="none",
        pairs="all",
        cka_estimator="biased",
        **FAST,
    )
    assert s2["members"] == ["reinit", "arch", "frame"] and s2["cka"]["estimator"] == "biased"
    biased = np.load(out / "cka.npy")
    assert biased.shape == (3, 3) and not np.allclose(biased, unbiased)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_bad_input_raises_clear_errors(tmp_path):
    root = tmp_path / "store"
    _write_store(root, embeddings=False)
    with pytest.raises(JaxdivError, match="member\\(s\\) arch have no embeddings"):
        run_represent(root, tmp_path / "o1", members=list(NAMES))
    with pytest.raises(JaxdivError, match="mixing ratio 1.2 is outside"):
        run_represent(root, tmp_path / "o1", ratios=(1.0, 1.2))
    with pytest.raises(JaxdivError, match="split 'train' is not in the store"):
        run_represent(root, tmp_path / "o1", train_split="train")
    with pytest.raises(JaxdivError, match="unknown transfer task"):
        run_represent(root, tmp_path / "o1", transfer="imagenet")
    with pytest.raises(JaxdivError, match="no finished predictions"):
        run_represent(root, tmp_path / "o1", members=["base", "ghost"])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(JaxdivError, match="non-empty directory"):
        run_represent(root, foreign)
    other = tmp_path / "overlap"
    _write_store(other, overlap=True)
    with pytest.raises(JaxdivError, match="share 1 example ids"):
        run_represent(other, tmp_path / "o2")
    with pytest.raises(JaxdivError, match="no prediction store"):
        run_represent(tmp_path / "nowhere", tmp_path / "o3")


def test_cli_verb_reports_errors_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxdiv",
            "represent",
            f"--store={tmp_path / 'none'}",
            f"--out={tmp_path / 'out'}",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "jaxdiv represent: error: no prediction store" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_members_without_embeddings_are_left_out_with_one_line(tmp_path):
    root = tmp_path / "store"
    _write_store(root, embeddings=False)
    lines: list[str] = []
    summary = run_represent(root, tmp_path / "out", log=lines.append, transfer="none", **FAST)
    left_out = [line for line in lines if "without embeddings" in line]
    assert left_out == [
        "representation: leaving out 1 member(s) without embeddings (arch); 3 remain"
    ]
    assert summary["members"] == ["base", "frame", "reinit"]
    assert "arch" in summary["skipped"]
    assert "arch" not in set(pd.read_csv(tmp_path / "out" / "members.csv")["member"])


def test_fewer_than_two_members_with_embeddings_is_too_few(tmp_path):
    root = tmp_path / "store"
    _write_store(root)
    for name in ("reinit", "arch", "frame"):
        for split in ("validation", "test"):
            (root / "members" / name / split / "embeddings.npy").unlink()
    with pytest.raises(TooFewMembers, match="at least 2 members with embeddings"):
        run_represent(root, tmp_path / "out", **FAST)
    assert not (tmp_path / "out").exists()
