"""Store names for data splits, and the identity of a split's data.

Store split names (``store_split_name``) cannot collide: two split strings that can select
different examples always get different names.

- A plain split name (letters, digits, ``_`` and ``-``: ``test``, ``validation``,
  ``train_minus_val``) stays as it is.
- A slice, or a union of slices joined by ``+``, is written part by part as
  ``NAME.START-STOP``: the start defaults to ``0``, an open end is ``end``, a percentage
  ends in ``pct`` and a negative index starts with ``m``. ``test[:50]`` -> ``test.0-50``,
  ``test[50:]`` -> ``test.50-end``, ``test[:50%]`` -> ``test.0-50pct``, ``test[-100:]`` ->
  ``test.m100-end``, ``train[:10]+test[:10]`` -> ``train.0-10+test.0-10``.
- Anything else (rounding options such as ``(pct1_dropremainder)``, spaces, names over
  100 characters) becomes a readable prefix plus ``.h`` and the first 12 hex digits of the
  sha256 of the exact split string: ``test[:50%](pct1_dropremainder)`` ->
  ``test_50_pct1_dropremainder.h<12 hex digits>``.

- A corrupted split ``<split>:<corruption>:<severity>`` (``jaxdiv.data.shift``) is the clean
  split's name, ``.``, the corruption and ``-severity``: ``test:gaussian_noise:3`` ->
  ``test.gaussian_noise-3``, ``test[:1000]:fog:5`` -> ``test.0-1000.fog-5``. The part after
  its last ``.`` starts with a corruption name (a letter other than ``h``, never ``m``
  followed by a digit), so it meets neither a slice part nor a hash.

Plain names contain neither ``.`` nor ``+``; every other name does, and the part after a
``.`` starts with a digit or ``m`` for a slice, and with ``h`` for a hashed name, so the
three forms never meet. Spellings of the same examples may get different names
(``test[:5000]`` and ``test[:50%]``); different examples never share one.

A split's identity (``split.json`` in the store) is its source, as ``split_source`` in the
data room reports it (dataset, version, split string, resolved ``[name, start, stop]``
ranges), its count and ``fingerprint(ids, labels)``: ``sha256:`` and the hex sha256 of the
ids as a compact JSON array of strings (json.dumps, ASCII), a NUL byte, then the labels as
little-endian int32.
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np

from jaxdiv.data.shift import parse_shift

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_PART = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(?:\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")
_MAX_NAME = 100
_JSON = {"separators": (",", ":")}


def _bound(text: str | None, default: str) -> str:
    if not text:
        return default
    pct = text.endswith("%")
    value = int(text.rstrip("%"))
    return f"{'m' if value < 0 else ''}{abs(value)}{'pct' if pct else ''}"


def _encode_part(part: str) -> str | None:
    m = _PART.match(part)
    if m is None:
        return None
    if "[" not in part:
        return m["name"]
    return f"{m['name']}.{_bound(m['start'], '0')}-{_bound(m['stop'], 'end')}"


def store_split_name(split: str) -> str:
    """The store's name for a data split (the rule is in the module docstring)."""
    shift = parse_shift(split)
    if shift is not None:
        return f"{store_split_name(shift.source)}.{shift.corruption}-{shift.severity}"
    if _PLAIN.match(split) and len(split) <= _MAX_NAME:
        return split
    parts = [_encode_part(p) for p in split.split("+")]
    if all(parts):
        name = "+".join(parts)
        if len(name) <= _MAX_NAME:
            return name
    readable = re.sub(r"[^A-Za-z0-9]+", "_", split).strip("_")[:40] or "split"
    digest = hashlib.sha256(split.encode()).hexdigest()[:12]
    return f"{readable}.h{digest}"


def fingerprint(ids: np.ndarray, labels: np.ndarray) -> str:
    """``sha256:<hex>`` of a split's example ids and labels (exact; order matters)."""
    h = hashlib.sha256()
    h.update(json.dumps([str(i) for i in np.asarray(ids).tolist()], **_JSON).encode())
    h.update(b"\0")
    h.update(np.ascontiguousarray(np.asarray(labels), dtype="<i4").tobytes())
    return "sha256:" + h.hexdigest()


def describe(info: dict) -> str:
    """A split's identity in a few words: ``cifar10 3.0.2 'test[:50]' = test[0:50] (50
    examples, sha256:1a2b3c4d)``; a split recorded without its source says so."""
    fp = str(info.get("fingerprint") or "unknown")[:15]
    count = info.get("count")
    tail = f"({count} examples, {fp})"
    if not info.get("dataset"):
        return f"labels and ids of unknown source {tail}"
    ranges = "+".join(f"{n}[{lo}:{hi}]" for n, lo, hi in info.get("range") or [])
    return f"{info['dataset']} {info.get('version', '?')} {info.get('split')!r} = {ranges} {tail}"
