"""User-facing errors: one line naming the problem and the fix, never a deep traceback."""


class JaxdivError(Exception):
    """Bad input or state the user can fix. The CLI prints ``str(err)`` alone and exits 2."""


def choices_error(kind: str, name: str, valid) -> JaxdivError:
    """``unknown model 'resnt20'; valid choices: cnn, mlp, resnet20, ...``."""
    return JaxdivError(f"unknown {kind} {name!r}; valid choices: {', '.join(sorted(valid))}")
