"""Trials CSVs (model-vs-human's raw data and the generic layout) and members manifests
imported as hard-decision members: abstentions (``na`` and never answered) are -1, class
names from --classes or the sorted labels (recorded in store.json), manifest fields and the
human flag in member.json, and every refusal is one line that writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.store import Store, import_predictions
from jaxdiv.store.trials_csv import read_trials
from tests.support import ROOT, snapshot

# model-vs-human's raw data: subj answers imagename with object_response; category is true
MVH = """\
subj,session,time,trial,rt,object_response,category,condition,imagename
subject-01,1,t,1,512,dog,dog,0,img_b.png
subject-01,1,t,2,498,cat,cat,0,img_a.png
subject-01,1,t,3,700,na,bird,0,img_c.png
subject-01,1,t,4,650,cat,dog,0,img_d.png
subject-02,1,t,1,480,bird,bird,0,img_c.png
subject-02,1,t,2,470,dog,cat,0,img_a.png
subject-02,1,t,3,455,dog,dog,0,img_b.png
"""
IDS = ["img_a.png", "img_b.png", "img_c.png", "img_d.png"]  # sorted union of image names
SORTED = ["bird", "cat", "dog"]  # the sorted set of labels


def _write(path, text):
    path.write_text(text)
    return path


def _expected(rows, ids, names):
    """NumPy reference: {member: predictions over ids}; -1 for na and never answered."""
    out = {}
    for member, example, response in rows:
        pred = out.setdefault(member, np.full(len(ids), -1))
        pred[ids.index(example)] = -1 if response == "na" else names.index(response)
    return out


def _mvh_rows():
    lines = [line.split(",") for line in MVH.splitlines()[1:]]
    return [(c[0], c[8], c[5]) for c in lines]


def test_model_vs_human_raw_data_as_it_is(tmp_path):
    csv = _write(tmp_path / "raw.csv", MVH)
    names = import_predictions(tmp_path / "store", "test", None, [csv])
    assert names == ["subject-01", "subject-02"]
    s = Store(tmp_path / "store")
    assert s.ids("test").tolist() == IDS
    assert s.labels("test").tolist() == [SORTED.index(c) for c in ("cat", "dog", "bird", "dog")]
    assert s.class_names() == SORTED
    want = _expected(_mvh_rows(), IDS, SORTED)
    for name in names:
        assert s.is_hard(name, "test") and s.member_classes(name, "test") == 3
        np.testing.assert_array_equal(s.member_predictions(name, "test"), want[name])
        info = s.member_info(name)
        assert info["human"] is False and info["output"] == "predictions"
    # subject-02 never saw img_d: abstained, like subject-01's na on img_c
    assert s.member_predictions("subject-02", "test")[3] == -1
    assert s.member_predictions("subject-01", "test")[2] == -1


def test_generic_layout_with_class_order_from_file(tmp_path):
    csv = _write(
        tmp_path / "trials.csv",
        "member,example_id,response,label\n"
        "m1,x1,cat,cat\nm1,x2,na,dog\nm1,x3,ant,dog\nm2,x3,dog,dog\n",
    )
    classes = _write(tmp_path / "classes.txt", "dog\ncat\n\nant\n")  # blank lines skipped
    import_predictions(tmp_path / "store", "test", None, [csv], classes=classes)
    s = Store(tmp_path / "store")
    order = ["dog", "cat", "ant"]
    assert s.class_names() == order
    assert s.labels("test").tolist() == [1, 0, 0]
    rows = [("m1", "x1", "cat"), ("m1", "x2", "na"), ("m1", "x3", "ant"), ("m2", "x3", "dog")]
    want = _expected(rows, ["x1", "x2", "x3"], order)
    for m in ("m1", "m2"):
        np.testing.assert_array_equal(s.member_predictions(m, "test"), want[m])


def test_integer_labels_sort_numerically(tmp_path):
    csv = _write(
        tmp_path / "t.csv",
        "member,example_id,response,label\n" + "".join(f"a,e{k},{k},{k}\n" for k in (2, 10, 1)),
    )
    t = read_trials([csv])
    assert t.class_names == ["1", "2", "10"]
    np.testing.assert_array_equal(t.members["a"], t.labels)


@pytest.mark.parametrize(
    "text, message",
    [
        ("member,example_id,response,label\na,x,dgo,dog\n", "line 2: response 'dgo' is not"),
        ("member,example_id,response,label\na,x,dog,dog\na,y,cat,na\n", "label 'na' is not"),
        ("member,example_id,response,label\na,x,dog,dog\na,x,na,dog\n", "line 3: .*second time"),
        ("member,example_id,response,label\na,x,dog,dog\nb,x,dog,cat\n", "has label 'cat' here"),
        ("subject,image,answer\ns,x,dog\n", "not a trials CSV"),
        ("member,example_id,response,label\n", "no trials"),
        ("member,example_id,response,label\n,x,dog,dog\n", "line 2: empty member"),
    ],
)
def test_bad_trials_are_one_line_and_write_nothing(tmp_path, text, message):
    csv = _write(tmp_path / "bad.csv", text)
    with pytest.raises(JaxdivError, match=message) as err:
        import_predictions(tmp_path / "store", "test", None, [csv])
    assert str(csv) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "store").exists()


def test_a_label_outside_the_classes_file_is_refused(tmp_path):
    csv = _write(tmp_path / "raw.csv", MVH)
    classes = _write(tmp_path / "classes.txt", "bird\ncat\n")  # no dog
    with pytest.raises(JaxdivError, match=r"raw.csv, line 2: label 'dog' is not a class name"):
        import_predictions(tmp_path / "store", "test", None, [csv], classes=classes)
    assert not (tmp_path / "store").exists()


MANIFEST = """\
member,name,category,method,architecture,human,lab,age
subject-01,alice,human,,,true,Tübingen,24
subject-02,bob,human,,,1,Tübingen,31
"""


def test_manifest_lands_in_member_json(tmp_path):
    csv = _write(tmp_path / "raw.csv", MVH)
    manifest = _write(tmp_path / "members.csv", MANIFEST)
    names = import_predictions(tmp_path / "store", "test", None, [csv], manifest=manifest)
    assert names == ["alice", "bob"]
    s = Store(tmp_path / "store")
    info = s.member_info("alice")
    assert info["category"] == "human" and info["human"] is True
    assert info["metadata"] == {"lab": "Tübingen", "age": "24"}
    assert "method" not in info and "architecture" not in info  # empty cells: not given
    want = _expected(_mvh_rows(), IDS, SORTED)
    np.testing.assert_array_equal(s.member_predictions("bob", "test"), want["subject-02"])

    # .npz members: rows by file stem; --human is the default the manifest's cells override
    rng = np.random.default_rng(0)
    labels = s.labels("test")
    np.savez(tmp_path / "r18.npz", ids=np.array(IDS), logits=rng.normal(size=(4, 3)))
    np.savez(tmp_path / "vit.npz", ids=np.array(IDS), predictions=labels)
    _write(
        tmp_path / "models.csv",
        "file,name,category,method,architecture,human,zoo\n"
        "r18.npz,resnet18,architecture,supervised,resnet,,timm\n"
        "vit,vit_b16,dataset,,vit,false,hf\n",
    )
    names = import_predictions(
        tmp_path / "store",
        "test",
        None,  # the split exists: its ids and labels are the stored ones
        [tmp_path / "r18.npz", tmp_path / "vit.npz"],
        manifest=tmp_path / "models.csv",
        human=True,
    )
    assert names == ["resnet18", "vit_b16"]
    r18, vit = s.member_info("resnet18"), s.member_info("vit_b16")
    assert (r18["category"], r18["method"], r18["architecture"]) == (
        "architecture",
        "supervised",
        "resnet",
    )
    assert r18["human"] is True and vit["human"] is False
    assert r18["metadata"] == {"zoo": "timm"} and vit["metadata"] == {"zoo": "hf"}
    assert s.is_hard("vit_b16", "test") and not s.is_hard("resnet18", "test")


@pytest.mark.parametrize(
    "manifest, message",
    [
        ("member,name\nsubject-01,alice\n", r"no row for 1 input\(s\) \(subject-02\)"),
        (
            "member,name\nsubject-01,a\nsubject-02,b\nsubject-03,c\n",
            "row\\(s\\) for subject-03, which this import does not give",
        ),
        ("member,name\nsubject-01,a\nsubject-01,b\n", "has a row already"),
        ("member,name\nsubject-01,a\nsubject-02,a\n", "given twice"),
        ("name,category\na,b\n", "exactly one of the columns file or member"),
        ("member,human\nsubject-01,maybe\nsubject-02,0\n", "human 'maybe' must be true"),
    ],
)
def test_manifest_mismatch_is_refused_and_writes_nothing(tmp_path, manifest, message):
    csv = _write(tmp_path / "raw.csv", MVH)
    path = _write(tmp_path / "members.csv", manifest)
    with pytest.raises(JaxdivError, match=message) as err:
        import_predictions(tmp_path / "store", "test", None, [csv], manifest=path)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "store").exists()


def test_existing_split_and_class_names_must_agree(tmp_path):
    store = tmp_path / "store"
    csv = _write(tmp_path / "raw.csv", MVH)
    import_predictions(store, "test", None, [csv])
    before = snapshot(store)
    # same examples, another member: joins the split
    other = _write(
        tmp_path / "more.csv",
        "member,example_id,response,label\n"
        + "".join(
            f"m,{i},dog,{c}\n" for i, c in zip(IDS, ("cat", "dog", "bird", "dog"), strict=True)
        ),
    )
    # other labels for the same examples: refused, nothing written
    wrong = _write(tmp_path / "wrong.csv", other.read_text().replace(",cat\n", ",dog\n"))
    with pytest.raises(JaxdivError, match="labels disagree"):
        import_predictions(store, "test", None, [wrong])
    # other class names than the recorded ones: refused
    classes = _write(tmp_path / "classes.txt", "dog\ncat\nbird\n")
    with pytest.raises(JaxdivError, match="records 3 class names"):
        import_predictions(store, "test", None, [other], classes=classes)
    assert snapshot(store) == before
    import_predictions(store, "test", None, [other])
    np.testing.assert_array_equal(Store(store).member_predictions("m", "test"), [2, 2, 2, 2])


def test_npz_import_records_classes(tmp_path):
    np.savez(tmp_path / "labels.npz", ids=np.array(IDS), labels=np.array([0, 1, 2, 1]))
    np.savez(tmp_path / "a.npz", ids=np.array(IDS), predictions=np.array([0, 1, -1, 2]))
    np.savez(tmp_path / "b.npz", ids=np.array(IDS), predictions=np.array([0, 0, 0, 0]))
    two = _write(tmp_path / "two.txt", "x\ny\n")
    with pytest.raises(JaxdivError, match="label 2 out of range for 2 classes"):
        import_predictions(
            tmp_path / "s", "test", tmp_path / "labels.npz", [tmp_path / "a.npz"], classes=two
        )
    assert not (tmp_path / "s").exists()
    three = _write(tmp_path / "three.txt", "x\ny\nz\n")
    import_predictions(
        tmp_path / "s", "test", tmp_path / "labels.npz", [tmp_path / "a.npz"], classes=three
    )
    s = Store(tmp_path / "s")
    assert s.class_names() == ["x", "y", "z"] and s.member_info("a")["human"] is False
    assert s.record_class_names(["x", "y", "z"]) is False  # already recorded
    with pytest.raises(JaxdivError, match="differ from the 3 given"):
        s.record_class_names(["z", "y", "x"])
    # a CSV and .npz files go in separate imports
    with pytest.raises(JaxdivError, match="separate imports"):
        import_predictions(tmp_path / "s", "test", None, [tmp_path / "b.npz", tmp_path / "t.csv"])


def test_cli_imports_a_csv_with_manifest(tmp_path):
    csv = _write(tmp_path / "raw.csv", MVH)
    manifest = _write(tmp_path / "members.csv", MANIFEST)
    store = tmp_path / "store"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxdiv",
            "import-predictions",
            f"--store={store}",
            "--split=test",
            f"--manifest={manifest}",
            str(csv),
        ],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "imported 2 member(s)" in proc.stdout and "alice, bob" in proc.stdout
    s = Store(store)
    assert s.member_info("alice")["human"] is True and s.class_names() == SORTED
