"""Store names for data splits: the one place a TFDS split string becomes a store name."""

from __future__ import annotations

import re


def store_split_name(split: str) -> str:
    """The store's name for a data split: ``test`` stays, ``test[:256]`` becomes ``test_256``."""
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", split).strip("_")
