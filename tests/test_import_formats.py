"""Import formats: an .npz member holds ids and exactly one of logits, probabilities or
predictions (-1 = abstained), optionally embeddings; the store keeps what was given and
member.json records it; ``add_member`` adds a member from arrays through the same checks;
a refused batch writes nothing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.store import Store, add_member, import_predictions

IDS = np.array([f"img{i}" for i in range(6)])
LABELS = np.array([0, 1, 2, 0, 1, 2])


def _snapshot(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            out[os.path.join(dirpath, f)] = open(os.path.join(dirpath, f), "rb").read()
    return out


@pytest.fixture
def files(tmp_path):
    np.savez(tmp_path / "labels.npz", ids=IDS, labels=LABELS)
    return tmp_path


def _import(files, *names):
    return import_predictions(
        files / "store", "test", files / "labels.npz", [files / f"{n}.npz" for n in names]
    )


def test_each_format_is_stored_as_given(files):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 3))
    probs = np.array([[1, 0, 0], [0.2, 0.8, 0], [0.1, 0.1, 0.8]] * 2, np.float64)
    pred = np.array([0, 1, -1, 2, 1, 0])
    emb = rng.normal(size=(6, 5))
    perm = np.array([5, 3, 1, 0, 2, 4])  # ids are matched, not assumed in order
    np.savez(files / "soft.npz", ids=IDS[perm], logits=logits[perm], embeddings=emb[perm])
    np.savez(files / "prob.npz", ids=IDS, probabilities=probs)
    np.savez(files / "hard.npz", ids=IDS[perm], predictions=pred[perm])
    assert _import(files, "soft", "prob", "hard") == ["soft", "prob", "hard"]
    s = Store(files / "store")
    np.testing.assert_allclose(s.member_logits("soft", "test"), logits, rtol=1e-6)
    np.testing.assert_allclose(s.embeddings("soft", "test"), emb, rtol=1e-6)
    stored = s.member_logits("prob", "test")
    assert stored.dtype == np.float32 and np.isfinite(stored).all()
    assert stored[0, 1] == np.float32(np.log(np.finfo(np.float32).tiny))  # a zero probability
    soft = np.exp(stored - stored.max(1, keepdims=True))
    np.testing.assert_allclose(soft / soft.sum(1, keepdims=True), probs, atol=1e-6)
    got = s.member_predictions("hard", "test")
    assert got.dtype == np.int32 and got.tolist() == pred.tolist()
    assert not (s.root / "members" / "hard" / "test" / "logits.npy").exists()
    for name, output in (("soft", "logits"), ("prob", "probabilities"), ("hard", "predictions")):
        assert s.member_info(name)["output"] == output
        assert s.member_output(name, "test") == output
        done = json.loads((s.root / "members" / name / "test" / "done.json").read_text())
        assert done["output"] == output and done["classes"] == 3
    with pytest.raises(JaxdivError, match="gives hard predictions only"):
        s.member_logits("hard", "test")
    with pytest.raises(JaxdivError, match="hard predictions only"):
        s.logits("test")


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"logits": np.zeros((6, 3)), "predictions": np.zeros(6, int)}, "exactly one of"),
        ({}, "exactly one of logits, probabilities or predictions; found none"),
        ({"probabilities": np.full((6, 3), 0.3)}, "do not sum to 1"),
        ({"probabilities": np.tile([1.2, -0.2, 0.0], (6, 1))}, "negative probabilities"),
        ({"predictions": np.zeros(6, np.float32)}, "predictions must be int"),
        ({"predictions": np.array([0, 1, 2, 3, 0, 1])}, "prediction 3 out of range"),
        ({"predictions": np.array([0, 1, 2, -2, 0, 1])}, r"must be >= -1"),
        ({"logits": np.zeros((6, 3)), "embeddings": np.zeros((5, 2))}, "rows of embeddings"),
        ({"logits": np.zeros((6, 3)), "embeddings": np.full((6, 2), 1e300)}, "inf embeddings"),
    ],
)
def test_a_bad_member_file_refuses_the_whole_batch(files, arrays, message):
    np.savez(files / "good.npz", ids=IDS, logits=np.zeros((6, 3)))
    _import(files, "good")
    before = _snapshot(files / "store")
    np.savez(files / "ok.npz", ids=IDS, predictions=LABELS)
    np.savez(files / "bad.npz", ids=IDS, **arrays)
    with pytest.raises(JaxdivError, match=message) as err:
        _import(files, "ok", "bad")
    assert "\n" not in str(err.value)
    assert _snapshot(files / "store") == before


def test_add_member_from_arrays(tmp_path):
    store = tmp_path / "store"
    with pytest.raises(JaxdivError, match="pass labels"):
        add_member(store, "test", "a", ids=IDS, predictions=LABELS)
    assert not store.exists()
    add_member(store, "test", "a", ids=IDS, predictions=LABELS, labels=LABELS, num_classes=5)
    s = Store(store)
    assert s.member_classes("a", "test") == 5 and s.member_info("a")["output"] == "predictions"
    before = _snapshot(store)
    with pytest.raises(JaxdivError, match="do not sum to 1"):
        add_member(store, "test", "b", ids=IDS, probabilities=np.full((6, 5), 0.1))
    with pytest.raises(JaxdivError, match="4 classes but member 'a' in the store has 5"):
        add_member(store, "test", "b", ids=IDS, logits=np.zeros((6, 4)))
    with pytest.raises(JaxdivError, match="labels disagree"):
        add_member(store, "test", "b", ids=IDS, predictions=LABELS, labels=LABELS[::-1])
    with pytest.raises(JaxdivError, match="already has predictions"):
        add_member(store, "test", "a", ids=IDS, predictions=LABELS)
    assert _snapshot(store) == before
    probs = np.full((6, 5), 0.2)
    info = {"category": "Architecture", "method": "published"}
    assert add_member(store, "test", "b", ids=IDS[::-1], probabilities=probs, info=info) == "b"
    assert s.member_info("b")["category"] == "Architecture"
    assert s.member_info("b")["source"] == "imported"
    np.testing.assert_allclose(s.member_logits("b", "test"), np.log(0.2), rtol=1e-6)
    # a member keeps one kind of output across its splits
    with pytest.raises(JaxdivError, match="holds predictions in its other splits"):
        add_member(store, "val", "a", ids=IDS, logits=np.zeros((6, 5)), labels=LABELS)
    assert s.splits() == ["test"]  # refused before anything was written
