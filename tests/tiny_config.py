"""The tiny test config as a config file (for CLI tests).

Command: python -m jaxdiv train --config=tests/tiny_config.py --workdir=/tmp/tiny
Run time: a few seconds on 2 CPU cores. Result: meaningless accuracy; it exercises the code.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import tiny_config  # noqa: E402


def get_config():
    return tiny_config()
