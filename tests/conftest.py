"""Shared test setup: the prepared CIFAR-10 copy beside the project, a private cache."""

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TFDS_DIR = ROOT.parent / "shared" / "tensorflow_datasets"

os.environ.setdefault("TFDS_DATA_DIR", str(TFDS_DIR))
os.environ.setdefault("JAXDIV_CACHE_DIR", tempfile.mkdtemp(prefix="jaxdiv-test-cache-"))


@pytest.fixture(scope="session")
def tfds_dir() -> Path:
    if not (TFDS_DIR / "cifar10").is_dir():
        pytest.skip(f"CIFAR-10 not prepared at {TFDS_DIR}")
    return TFDS_DIR
