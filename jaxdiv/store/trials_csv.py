"""Trials CSVs (one row per response of a member to an example) read into hard decisions.

Two layouts, told apart by the header (other columns are ignored):

- model-vs-human's raw data as it is published: ``subj`` (the member: a subject or a
  model), ``imagename`` (the example id), ``object_response`` (the class name answered,
  ``na`` when the subject gave none) and ``category`` (the true class name), next to
  ``session``, ``trial``, ``rt``, ``condition``...;
- a generic trials CSV: ``member``, ``example_id``, ``response``, ``label``.

Responses and labels are class names. The class list (its order is the class index) is
``--classes`` (one name per line, blank lines skipped) or the store's recorded class names
(the importer passes them), else the sorted set of labels found (numerically when every
label is an integer). ``na`` is an abstention (prediction ``-1``)
and cannot be a class name; any other response or label not in the class list is refused
with its file, line and value. The examples are the union of the ids in the files, sorted;
an example a member never answered counts as abstained (``-1``), exactly like ``na``. A
member answering one example twice, or an example given two labels, is refused.

Pure parsing: ``read_trials`` returns arrays and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxdiv.errors import JaxdivError

ABSTAINED = "na"  # a response that is no class: prediction -1
LAYOUTS = {  # layout -> (member, example id, response, label) columns
    "model-vs-human": ("subj", "imagename", "object_response", "category"),
    "trials": ("member", "example_id", "response", "label"),
}


@dataclass
class Trials:
    """Hard decisions of every member over the union of the examples."""

    ids: np.ndarray  # str [M], sorted
    labels: np.ndarray  # int32 [M], indices into class_names
    class_names: list[str]
    members: dict[str, np.ndarray]  # member -> int32 [M]; -1 abstained or never answered
    sources: dict[str, str]  # member -> the file it came from


def read_csv(path: Path):
    """A CSV file as a DataFrame of strings (``na`` and empty cells kept as written)."""
    import pandas as pd

    if not path.exists():
        raise JaxdivError(f"{path}: no such file")
    if path.is_dir():
        raise JaxdivError(f"{path}: is a folder, not a CSV file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except UnicodeDecodeError:
        raise JaxdivError(f"{path}: not a UTF-8 text CSV file") from None
    except pd.errors.EmptyDataError:
        raise JaxdivError(f"{path}: empty file; a CSV needs a header row") from None
    except pd.errors.ParserError as e:
        raise JaxdivError(f"{path}: not a readable CSV ({str(e).strip()})") from None


def layout_of(columns: Sequence[str], path: Path) -> str:
    """Which of ``LAYOUTS`` a header is (module docstring)."""
    have = set(columns)
    found = [name for name, cols in LAYOUTS.items() if set(cols) <= have]
    if len(found) == 1:
        return found[0]
    if found:
        raise JaxdivError(
            f"{path}: the header has the columns of both layouts ({', '.join(found)}); keep one"
        )
    wanted = "; ".join(f"{name}: {', '.join(cols)}" for name, cols in LAYOUTS.items())
    raise JaxdivError(
        f"{path}: not a trials CSV; its header ({', '.join(columns)}) needs the columns of "
        f"one layout ({wanted})"
    )


def read_classes(path: str | Path) -> list[str]:
    """Class names from a text file, one per line (order = class index)."""
    path = Path(path)
    if not path.is_file():
        raise JaxdivError(f"{path}: no such file (--classes: one class name per line)")
    try:
        names = [line.strip() for line in path.read_text().splitlines()]
    except UnicodeDecodeError:
        raise JaxdivError(f"{path}: not a UTF-8 text file of class names") from None
    names = [n for n in names if n]
    if not names:
        raise JaxdivError(f"{path}: no class names (one per line)")
    if ABSTAINED in names:
        raise JaxdivError(f"{path}: {ABSTAINED!r} is the abstention, not a class name")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise JaxdivError(f"{path}: class name(s) given twice: {', '.join(dup)}")
    return names


def _sorted_labels(values: set[str]) -> list[str]:
    if all(v.lstrip("-").isdigit() for v in values):
        return sorted(values, key=int)
    return sorted(values)


def _indices(values: np.ndarray, where, index: dict, what: str) -> np.ndarray:
    """``values`` as class indices (``na`` -> -1 for responses); unknown ones refused,
    ``where(row)`` naming the file and line."""
    allowed = what == "response"
    unknown = np.array([v not in index and not (allowed and v == ABSTAINED) for v in values])
    if unknown.any():
        k = int(np.flatnonzero(unknown)[0])
        shown = ", ".join(list(index)[:5]) + (", ..." if len(index) > 5 else "")
        raise JaxdivError(
            f"{where(k)}: {what} {values[k]!r} is not a class name ({len(index)} classes: "
            f"{shown}); give the class list with --classes=FILE"
            + (f" ({ABSTAINED!r} is an abstention)" if allowed else "")
        )
    return np.array([index.get(v, -1) for v in values], np.int32)


def read_trials(paths: Sequence[str | Path], class_names: Sequence[str] | None = None) -> Trials:
    """Every member of the trials CSVs ``paths`` (module docstring); a member name found in
    two files is refused."""
    tables = []
    for path in map(Path, paths):
        frame = read_csv(path)
        cols = LAYOUTS[layout_of(list(frame.columns), path)]
        table = frame[list(cols)].to_numpy(dtype=object)  # Python str cells
        if not len(table):
            raise JaxdivError(f"{path}: no trials (only a header)")
        lines = np.arange(2, len(table) + 2)  # line 1 is the header
        empty = (table[:, :2] == "") | (table[:, 3:] == "")
        if empty.any():
            k = int(np.flatnonzero(empty.any(axis=1))[0])
            raise JaxdivError(f"{path}, line {lines[k]}: empty member, example id or label")
        tables.append((path, cols, table, lines))
    if class_names is None:  # "na" is never a class: a label "na" is refused below
        class_names = _sorted_labels({v for _, _, t, _ in tables for v in t[:, 3]} - {ABSTAINED})
    class_names = list(class_names)
    index = {n: i for i, n in enumerate(class_names)}
    table = np.concatenate([t for _, _, t, _ in tables])
    lines = np.concatenate([n for _, _, _, n in tables])
    file = np.concatenate([np.full(len(t), i) for i, (_, _, t, _) in enumerate(tables)])

    def where(k: int) -> str:
        return f"{tables[file[k]][0]}, line {lines[k]}"

    label = _indices(table[:, 3], where, index, "label")
    response = _indices(table[:, 2], where, index, "response")
    ids, first, rows = np.unique(table[:, 1], return_index=True, return_inverse=True)
    labels = label[first]
    clash = np.flatnonzero(labels[rows] != label)
    if clash.size:
        k = int(clash[0])
        raise JaxdivError(
            f"{where(k)}: example {table[k, 1]!r} has label {table[k, 3]!r} here but "
            f"{table[first[rows[k]], 3]!r} at {where(first[rows[k]])}"
        )
    members: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    names, member_first, member = np.unique(table[:, 0], return_index=True, return_inverse=True)
    for m in np.argsort(member_first):  # members in the order they first appear
        name, at = str(names[m]), np.flatnonzero(member == m)
        files = np.unique(file[at])
        if len(files) > 1:
            raise JaxdivError(
                f"{tables[files[1]][0]}: {tables[files[1]][1][0]} {name!r} is also in "
                f"{tables[files[0]][0]}; give each member's trials in one file"
            )
        _, once = np.unique(rows[at], return_index=True)
        if len(once) < len(at):
            k = int(at[np.setdiff1d(np.arange(len(at)), once)[0]])
            raise JaxdivError(
                f"{where(k)}: {tables[file[k]][1][0]} {name!r} answers example "
                f"{table[k, 1]!r} a second time; keep one trial per example"
            )
        pred = np.full(len(ids), -1, np.int32)
        pred[rows[at]] = response[at]
        members[name] = pred
        sources[name] = str(tables[file[at[0]]][0])
    return Trials(ids.astype(str), labels, class_names, members, sources)
