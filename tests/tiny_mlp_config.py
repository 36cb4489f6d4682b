"""The tiny test config with a one-hidden-layer MLP, the cheapest model to compile: for tests
of the machinery around the model (processes, input pipelines, dry runs).

Command: python -m jaxdiv train --config=tests/tiny_mlp_config.py --workdir=/tmp/tiny_mlp
Run time: a few seconds on 2 CPU cores. Result: meaningless accuracy; it exercises the code.
"""

import sys
from pathlib import Path

import ml_collections

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import tiny_config  # noqa: E402


def tiny_mlp_config(**overrides) -> ml_collections.ConfigDict:
    c = tiny_config(**overrides)
    c.name = "tiny_mlp"
    c.model.name = "mlp"
    c.model.kwargs = ml_collections.ConfigDict({"hidden": (64,)})
    return c


def get_config():
    return tiny_mlp_config()
