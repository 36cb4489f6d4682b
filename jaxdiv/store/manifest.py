"""A members manifest (``--manifest=members.csv``): the names, categories and other facts of
imported members, set at import.

Columns: exactly one of ``file`` and ``member`` (which input a row describes: an ``.npz``
file, matched by its stem, or a member of a trials CSV, matched by its ``subj`` /
``member`` value), and optionally ``name`` (the member's name in the store; default the
file stem or member), ``category``, ``method``, ``architecture`` and ``human``
(``true``/``false``/``1``/``0``; default the import's ``--human``). Any other column is kept,
as written, in the member's ``metadata``. An empty cell of a named column means "not given".

Missing rows are an error only when a manifest is given: then every input needs exactly one
row and every row an input, so a row naming no input, an input without a row, or two rows
for one input is refused in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jaxdiv.errors import JaxdivError
from jaxdiv.store.trials_csv import read_csv

KEYS = ("file", "member")  # the column saying which input a row describes
FIELDS = ("category", "method", "architecture")  # kept in member.json when given
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _human(value: str, where: str) -> bool | None:
    v = value.strip().lower()
    if not v:
        return None
    if v in _TRUE or v in _FALSE:
        return v in _TRUE
    raise JaxdivError(f"{where}: human {value!r} must be true, false, 1 or 0")


def read_manifest(path: str | Path) -> dict[str, dict]:
    """``{input: row}`` of a manifest; a row is ``{"name", "human", "metadata", FIELDS...}``
    with the cells given (``human`` None when empty)."""
    path = Path(path)
    frame = read_csv(path)
    columns = list(frame.columns)
    keys = [k for k in KEYS if k in columns]
    if len(keys) != 1:
        raise JaxdivError(
            f"{path}: a manifest needs exactly one of the columns file or member (which input "
            f"a row describes); its header is {', '.join(columns)}"
        )
    key = keys[0]
    extra = [c for c in columns if c not in (key, "name", "human", *FIELDS)]
    rows: dict[str, dict] = {}
    for line, cells in enumerate(frame.to_dict("records"), start=2):
        where = f"{path}, line {line}"
        given = cells[key].strip()
        if not given:
            raise JaxdivError(f"{where}: empty {key}")
        which = Path(given).stem if key == "file" else given
        if which in rows:
            raise JaxdivError(f"{where}: {key} {which!r} has a row already; keep one per input")
        row = {f: cells[f].strip() for f in ("name", *FIELDS) if cells.get(f, "").strip()}
        row["human"] = _human(cells.get("human", ""), where)
        row["metadata"] = {c: cells[c] for c in extra}
        rows[which] = row
    return rows


def member_infos(
    inputs: Sequence[str], manifest: str | Path | None, human: bool
) -> dict[str, tuple[str, dict]]:
    """``{input: (store name, member.json info)}`` for the inputs (file stems or CSV
    members) of one import; info holds ``human`` (bool) and, from the manifest, the
    ``FIELDS`` given and ``metadata``."""
    if manifest is None:
        return {k: (k, {"human": bool(human)}) for k in inputs}
    rows = read_manifest(manifest)
    missing = [k for k in inputs if k not in rows]
    if missing:
        raise JaxdivError(
            f"{manifest}: no row for {len(missing)} input(s) ({', '.join(missing[:5])}); "
            "give every imported file or member a row"
        )
    unknown = [k for k in rows if k not in inputs]
    if unknown:
        raise JaxdivError(
            f"{manifest}: row(s) for {', '.join(unknown[:5])}, which this import does not "
            f"give (inputs: {', '.join(list(inputs)[:5])}{', ...' if len(inputs) > 5 else ''})"
        )
    out = {}
    for k in inputs:
        row = rows[k]
        info = {f: row[f] for f in FIELDS if f in row}
        info["human"] = bool(human) if row["human"] is None else row["human"]
        info["metadata"] = row["metadata"]
        out[k] = (row.get("name", k), info)
    return out
