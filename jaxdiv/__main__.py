"""jaxdiv: train populations of image models and measure how differently they err.

Usage: python -m jaxdiv <verb> [flags]   (verbs: train, predict, import-predictions, analyze;
run `python -m jaxdiv --help` for the flags of each)
"""

from absl import flags

from jaxdiv import cli
from jaxdiv.cli import __doc__ as _cli_doc
from jaxdiv.cli import run

flags.adopt_module_key_flags(cli)

__doc__ = _cli_doc

if __name__ == "__main__":
    run()
