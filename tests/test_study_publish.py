"""A study run's analysis, representation and report are published together or not at all;
leftovers of dead writers are removed, live writers' folders kept; one study per workdir."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.stages.publish import OUTPUTS, Publication, clean_leftovers, study_lock


def _old_outputs(workdir):
    for name in OUTPUTS:
        (workdir / name).mkdir(parents=True)
        (workdir / name / "run.txt").write_text("old")


def _contents(workdir):
    return {
        name: (workdir / name / "run.txt").read_text()
        for name in OUTPUTS
        if (workdir / name / "run.txt").exists()
    }


def _hidden(workdir):
    return sorted(p.name for p in workdir.iterdir() if p.name.startswith("."))


def test_commit_publishes_every_output_and_removes_the_ones_not_made(tmp_path):
    _old_outputs(tmp_path)
    with Publication(tmp_path) as pub:
        for name in ("analysis", "report"):
            pub.path(name).mkdir()
            (pub.path(name) / "run.txt").write_text("new")
        assert pub.commit() == ["analysis", "report"]
    assert _contents(tmp_path) == {"analysis": "new", "report": "new"}
    assert _hidden(tmp_path) == []


def test_a_failure_before_commit_leaves_the_previous_outputs(tmp_path):
    _old_outputs(tmp_path)
    with pytest.raises(RuntimeError), Publication(tmp_path) as pub:
        pub.path("analysis").mkdir()
        (pub.path("analysis") / "run.txt").write_text("new")
        raise RuntimeError("representation failed")
    assert _contents(tmp_path) == {name: "old" for name in OUTPUTS}
    assert _hidden(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _marker(folder, pid):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "writer.json").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))


def test_a_publication_killed_after_its_manifest_is_finished_by_the_next_run(tmp_path):
    _old_outputs(tmp_path)
    staging = tmp_path / ".publish.tmp-dead"
    _marker(staging, _dead_pid())
    for name in ("analysis", "representation"):  # report was already renamed into place
        (staging / name).mkdir()
        (staging / name / "run.txt").write_text("new")
    (tmp_path / "report" / "run.txt").write_text("new")
    manifest = {"publish": ["analysis", "representation", "report"], "remove": []}
    (staging / "publish.json").write_text(json.dumps(manifest))
    lines: list[str] = []
    clean_leftovers(tmp_path, lines.append)
    assert _contents(tmp_path) == {name: "new" for name in OUTPUTS}
    assert _hidden(tmp_path) == [] and len(lines) == 1


def test_leftovers_are_removed_only_when_their_writer_is_gone(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _dead_pid()
        for name in (".analysis.tmp-a", ".report-b", ".representation.tmp-c", ".analysis.old-d"):
            (tmp_path / name).mkdir()
        _marker(tmp_path / ".report.tmp-dead", dead)
        _marker(tmp_path / ".publish.tmp-dead", dead)  # no manifest: never published
        _marker(tmp_path / ".analysis.tmp-live", live.pid)
        _marker(tmp_path / ".publish.tmp-live", live.pid)
        (tmp_path / "analysis").mkdir()
        clean_leftovers(tmp_path, lambda _line: None)
        assert _hidden(tmp_path) == [".analysis.tmp-live", ".publish.tmp-live"]
        assert (tmp_path / "analysis").is_dir()
    finally:
        live.kill()
        live.wait()


def test_one_study_at_a_time_per_workdir(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; from jaxdiv.stages.publish import study_lock\n"
        "with study_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(JaxdivError, match="another `jaxdiv study` .*is running on"):
            with study_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    deadline = time.time() + 10
    while True:  # the kernel releases a killed holder's lock
        try:
            with study_lock(tmp_path):
                break
        except JaxdivError:
            assert time.time() < deadline
            time.sleep(0.1)
