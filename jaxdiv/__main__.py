"""``python -m jaxdiv VERB [flags]``: the same command line as the ``jaxdiv`` console script.

``python -m jaxdiv --help`` lists the verbs, ``python -m jaxdiv VERB --help`` a verb's flags.
"""

from absl import flags

from jaxdiv import cli
from jaxdiv.cli import run

flags.adopt_module_key_flags(cli)

if __name__ == "__main__":
    run()
