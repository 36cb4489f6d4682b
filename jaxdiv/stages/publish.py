"""One study run's analysis, representation and report: published together or not at all.

The study holds ``WORKDIR/.study.lock`` (``jaxdiv.files.file_lock``; the kernel releases it
when the process exits or is killed) for its whole run, so one study at a time writes a
workdir. Its stages write into one staging folder, ``WORKDIR/.publish.tmp-<id>/`` (with a
``writer.json`` marker: pid and host)::

    analysis/  representation/  report/     what this run made
    publish.json                            written last: the folders to publish and to
                                            remove (a stage this run did not make)

``Publication.commit`` writes ``publish.json`` atomically, then renames each folder into
``WORKDIR`` (``jaxdiv.files.publish_folder``) and removes the staging folder. A failure before
``publish.json`` leaves the previous three folders as they were; a run killed after it is
finished by the next run (``clean_leftovers``), so readers end up with one run's three folders.

``clean_leftovers`` (called with the lock held) also removes what dead writers left next to
the three folders: ``.analysis.tmp-*``, ``.representation.tmp-*``, ``.report.tmp-*``,
``.report-*``, ``.<name>.old-*`` and staging folders whose writer is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jaxdiv.errors import JaxdivError
from jaxdiv.files import LockBusy, file_lock, publish_folder, write_json_atomic

OUTPUTS = ("analysis", "representation", "report")
LOCK = ".study.lock"
STAGING_PREFIX = ".publish.tmp-"
WRITER = "writer.json"
MANIFEST = "publish.json"


@contextmanager
def study_lock(workdir: Path) -> Iterator[None]:
    """Hold the study lock of ``workdir``; a one-line refusal when another study holds it."""
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with file_lock(workdir / LOCK):
            yield
    except LockBusy as err:
        raise JaxdivError(
            f"another `jaxdiv study` ({err.holder}) is running on {workdir}; wait for it to "
            "finish (a killed study releases the workdir at once)"
        ) from None


def _writer_alive(folder: Path) -> bool:
    """True when ``folder``'s writer marker names a live process on this host."""
    try:
        marker = json.loads((folder / WRITER).read_text())
        pid, host = int(marker["pid"]), str(marker["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname():
        return True  # cannot tell: leave it
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _finish(staging: Path, workdir: Path) -> None:
    """Publish what ``staging``'s manifest lists and is still there, then remove it."""
    manifest = json.loads((staging / MANIFEST).read_text())
    for name in manifest["publish"]:
        if (staging / name).is_dir():
            publish_folder(staging / name, workdir / name)
    for name in manifest["remove"]:
        if (workdir / name).exists():
            aside = workdir / f".{name}.old-removed"
            shutil.rmtree(aside, ignore_errors=True)
            os.rename(workdir / name, aside)
            shutil.rmtree(aside, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def clean_leftovers(workdir: Path, log=print) -> None:
    """Finish a killed run's publication and remove dead writers' temporary folders.

    Call with the study lock held (``study_lock``): no other study writes here then, so a
    leftover without a live writer marker is dead.
    """
    stagings = sorted(
        workdir.glob(f"{STAGING_PREFIX}*"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for staging in stagings:
        if _writer_alive(staging):
            continue
        if (staging / MANIFEST).is_file():
            log(f"finishing the publication of a killed run ({staging.name})")
            _finish(staging, workdir)
        else:
            shutil.rmtree(staging, ignore_errors=True)
    patterns = [f".{name}.tmp-*" for name in OUTPUTS] + [f".{name}.old-*" for name in OUTPUTS]
    patterns.append(".report-*")
    for pattern in patterns:
        for left in workdir.glob(pattern):
            if left.is_dir() and not left.is_symlink() and not _writer_alive(left):
                shutil.rmtree(left, ignore_errors=True)


class Publication:
    """A staging folder for one run's outputs (module docstring); use as a context manager:
    the folder is removed on leaving unless ``commit`` published it."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.root: Path | None = None

    def __enter__(self) -> Publication:
        self.root = Path(tempfile.mkdtemp(dir=self.workdir, prefix=STAGING_PREFIX))
        write_json_atomic(self.root / WRITER, {"pid": os.getpid(), "host": socket.gethostname()})
        return self

    def path(self, name: str) -> Path:
        """Where the stage ``name`` (one of ``OUTPUTS``) writes its folder in this run."""
        if name not in OUTPUTS:
            raise ValueError(f"unknown output {name!r}")
        return self.root / name

    def commit(self) -> list[str]:
        """Publish every output this run made and remove the others; returns the published."""
        made = [n for n in OUTPUTS if (self.root / n).is_dir()]
        write_json_atomic(
            self.root / MANIFEST,
            {"publish": made, "remove": [n for n in OUTPUTS if n not in made]},
        )
        _finish(self.root, self.workdir)
        return made

    def __exit__(self, *exc) -> None:
        if self.root is not None and self.root.exists() and not (self.root / MANIFEST).exists():
            shutil.rmtree(self.root, ignore_errors=True)
