"""import-predictions is all-or-nothing (files checked as stored before anything is written,
undone on a failed write), refuses symbolic-link member folders and non-.npz files in one
line, and corrupt store files are one line naming the member and the file."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.store import Store, import_predictions

IDS = np.array([f"img{i}" for i in range(8)])


def _snapshot(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = open(p, "rb").read()
    return out


@pytest.fixture
def files(tmp_path):
    np.savez(tmp_path / "labels.npz", ids=IDS, labels=np.arange(8) % 4)
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        np.savez(tmp_path / f"{name}.npz", ids=IDS, logits=rng.normal(size=(8, 4)))
    return tmp_path


def _import(files, *names, store="store"):
    return import_predictions(
        files / store, "test", files / "labels.npz", [files / f"{n}.npz" for n in names]
    )


@pytest.mark.parametrize("store_exists", [False, True])
def test_float64_beyond_float32_writes_nothing_and_the_corrected_batch_imports(files, store_exists):
    if store_exists:
        _import(files, "a")
    before = _snapshot(files / "store")
    big = np.full((8, 4), 1.0)
    big[3, 2] = 1e39  # finite in float64, inf in float32
    np.savez(files / "b.npz", ids=IDS, logits=big)
    with pytest.raises(JaxdivError, match=r"b.npz: 1 example.s. with NaN or inf .*float32"):
        _import(files, "c", "b")
    assert _snapshot(files / "store") == before
    assert not (files / "store").exists() or Store(files / "store").members("test") == (
        ["a"] if store_exists else []
    )
    big[3, 2] = 1e30
    np.savez(files / "b.npz", ids=IDS, logits=big)
    assert _import(files, "c", "b") == ["c", "b"]
    s = Store(files / "store")
    assert s.member_logits("b", "test").dtype == np.float32
    assert s.member_logits("b", "test")[3, 2] == np.float32(1e30)
    assert s.members("test") == sorted(["b", "c"] + (["a"] if store_exists else []))


def test_a_failed_write_undoes_the_members_already_written(files, monkeypatch):
    _import(files, "a")
    before = _snapshot(files / "store")
    write = Store.write_member

    def failing(self, name, *args, **kw):
        if name == "c":
            raise OSError(28, "No space left on device")
        return write(self, name, *args, **kw)

    monkeypatch.setattr(Store, "write_member", failing)
    with pytest.raises(OSError, match="No space"):
        _import(files, "b", "c")
    s = Store(files / "store")
    assert s.members("test") == ["a"]
    assert not (s.root / "members" / "b" / "test").exists()
    assert s.all_members() == ["a"]
    assert [k for k in _snapshot(s.root) if k not in before and "/." not in k] == []
    monkeypatch.setattr(Store, "write_member", write)
    assert _import(files, "b", "c") == ["b", "c"]


def test_a_member_being_written_elsewhere_refuses_the_whole_batch(files):
    _import(files, "a")
    s = Store(files / "store")
    held, release = threading.Event(), threading.Event()

    def writer():
        with s.lock_member_split("c", "test"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    try:
        held.wait(30)
        with pytest.raises(JaxdivError, match=r"member 'c' split 'test' .* being written by"):
            _import(files, "b", "c")
    finally:
        release.set()
        t.join()
    assert s.members("test") == ["a"] and s.all_members() == ["a"]
    assert _import(files, "b", "c") == ["b", "c"]


def test_a_symlinked_member_folder_is_refused(files, tmp_path_factory):
    _import(files, "a")
    outside = tmp_path_factory.mktemp("outside")
    s = Store(files / "store")
    (s.root / "members" / "b").symlink_to(outside, target_is_directory=True)
    with pytest.raises(JaxdivError, match=r"members/b is a symbolic link"):
        _import(files, "b")
    with pytest.raises(JaxdivError, match="symbolic link"):
        s.write_member("b", "test", np.zeros((8, 4)))
    assert list(outside.iterdir()) == []
    # the whole members folder as a link
    other = files / "store2"
    _import(files, "a", store="store2")
    os.rename(other / "members", outside / "members")
    (other / "members").symlink_to(outside / "members", target_is_directory=True)
    with pytest.raises(JaxdivError, match=r"store2/members is a symbolic link"):
        _import(files, "c", store="store2")
    assert sorted(p.name for p in (outside / "members").iterdir()) == ["a"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"id,logit\nimg0,0.1\n", r"not an .npz archive; save it with np.savez"),
        (b"", "not an .npz archive"),
        (None, r"a single .npy array, not an .npz archive"),
        ("objects", "holds object arrays"),
        ("truncated", "corrupt .npz archive"),
    ],
)
def test_files_that_are_not_npz_archives_are_named_so(files, content, message):
    path = files / "b.npz"
    if content is None:
        with open(path, "wb") as f:
            np.save(f, np.zeros((8, 4)))
    elif content == "objects":
        np.savez(path, ids=IDS.astype(object), logits=np.zeros((8, 4)))
    elif content == "truncated":
        path.write_bytes((files / "a.npz").read_bytes()[:300])
    else:
        path.write_bytes(content)
    with pytest.raises(JaxdivError, match=message) as err:
        _import(files, "b")
    assert "\n" not in str(err.value)
    if content is not None and content not in ("objects",):
        assert "pickle" not in str(err.value)
    assert not (files / "store").exists()


def test_corrupt_store_files_name_the_member_and_the_file(files):
    _import(files, "a", "b")
    s = Store(files / "store")
    logits = s.root / "members" / "b" / "test" / "logits.npy"
    logits.write_bytes(logits.read_bytes()[:100])
    for read in (lambda: s.member_logits("b", "test"), lambda: s.logits("test")):
        with pytest.raises(JaxdivError, match=f"member 'b': cannot read {logits} .*corrupt"):
            read()
    logits.write_text("not an array")
    with pytest.raises(JaxdivError, match="member 'b': cannot read .*logits.npy"):
        s.member_logits("b", "test")
    info = s.root / "members" / "a" / "member.json"
    info.write_text(info.read_text()[:10])
    for read in (lambda: s.member_info("a"), s.member_table):
        with pytest.raises(JaxdivError, match=f"member 'a': cannot read {info} .*corrupt"):
            read()
    info.write_text("[1, 2]")
    with pytest.raises(JaxdivError, match="member 'a': .*member.json does not hold a JSON object"):
        s.member_info("a")
    s.write_member("c", "test", np.zeros((8, 4)), np.ones((8, 3)))
    emb = s.root / "members" / "c" / "test" / "embeddings.npy"
    emb.write_bytes(emb.read_bytes()[:-8])
    with pytest.raises(JaxdivError, match="member 'c': cannot read .*embeddings.npy"):
        s.embeddings("c", "test")
    np.testing.assert_array_equal(s.member_logits("c", "test"), np.zeros((8, 4)))


def test_members_with_different_classes_are_named_when_stacked(files):
    _import(files, "a")
    s = Store(files / "store")
    s.write_member("wide", "test", np.zeros((8, 6)))
    with pytest.raises(JaxdivError, match="member 'wide' has 6 classes .* 'a' has 4"):
        s.logits("test")


def test_overflowing_embeddings_are_refused_by_write_member(files):
    _import(files, "a")
    s = Store(files / "store")
    with pytest.raises(JaxdivError, match=r"NaN or inf embeddings .*float32"):
        s.write_member("e", "test", np.zeros((8, 4)), np.full((8, 2), 1e300))
    assert s.members("test") == ["a"]
