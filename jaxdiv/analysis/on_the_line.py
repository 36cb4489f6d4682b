"""Accuracy and agreement on the line: clean against shifted, in probit space.

Miller et al. (ICML 2021, "Accuracy on the line") found that models' accuracies on a shifted
split are close to a linear function of their clean accuracies once both are probit-scaled
(``Phi^-1``, the standard normal quantile); Baek et al. (NeurIPS 2022, "Agreement on the
line") found the same for pairs' agreement (1 - disagreement), with nearly the same line.
``probit_line`` fits ``probit(y) = slope * probit(x) + intercept`` by least squares
(``jaxdiv.analysis.categories.fit_line``) after clipping values to ``[EPS, 1 - EPS]`` so that
0 and 1 stay finite.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from jaxdiv.analysis.categories import fit_line

EPS = 1e-4


def probit(p) -> np.ndarray:
    """``Phi^-1(clip(p, EPS, 1 - EPS))``, float64 (NaN stays NaN)."""
    return norm.ppf(np.clip(np.asarray(p, np.float64), EPS, 1.0 - EPS))


def probit_line(x, y) -> dict[str, float]:
    """``fit_line`` of ``probit(y)`` on ``probit(x)`` (``slope``, ``intercept``, ``r``,
    ``n``), in probit units."""
    return fit_line(probit(x), probit(y))
