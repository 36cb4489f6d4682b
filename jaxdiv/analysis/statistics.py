"""The statistics registry: one entry per statistic, read by everything that names one.

An entry gives the statistic's key (its name everywhere: kernel output, CSV column,
``<key>.npy``, bootstrap interval, heatmap, report), a title, its definition, its range, what
it needs (hard ``predictions``, ``probabilities`` or ``embeddings``), whether it is a
``pair`` or a ``member`` statistic, and the kernel that computes it. The kernels return
exactly the keys the registry lists for them (``tests/test_analysis_statistics.py``), the
analyze stage writes the pair and member statistics in registry order, and the report draws
what the registry marks. Adding a statistic is one kernel plus one entry here.

``needs`` says which members a statistic applies to: ``predictions`` statistics apply to
every member (a probabilistic member's prediction is its argmax; a hard-decision member's is
its decision, ``-1`` when it abstained); ``probabilities`` statistics are not applicable to
hard-decision members (the analyze stage leaves them empty and records why); ``embeddings``
statistics need members with embeddings.

Pure data: no JAX, no I/O (``as_records`` gives JSON-ready dicts for the stages to write).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jaxdiv.errors import JaxdivError, choices_error

NEEDS = ("predictions", "probabilities", "embeddings")
KINDS = ("pair", "member")


@dataclass(frozen=True)
class Heatmap:
    """How the report draws an N x N statistic: a matplotlib colour map and its limits
    (None: from the data); ``centred`` limits are symmetric about 0."""

    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None
    centred: bool = False


@dataclass(frozen=True)
class Statistic:
    """One statistic (module docstring)."""

    key: str
    title: str
    definition: str
    range: tuple[float | None, float | None]  # None: unbounded on that side
    needs: str  # one of NEEDS
    kind: str  # one of KINDS
    kernel: str  # the function of jaxdiv.analysis that returns it under ``key``
    symmetric: bool = True  # pair statistics: S[a, b] == S[b, a]
    bootstrap: bool = False  # bootstrap_pairwise gives intervals for it
    heatmap: Heatmap | None = None  # drawn as an N x N heatmap in the report
    headline: bool = False  # shown in the report's per-category table
    # asymmetric pair statistics: the pairs.csv columns of S[a, b] and S[b, a] (a < b)
    pair_columns: tuple[str, str] | None = None


_PAIR_ERRORS = "pairwise_error_stats"
_DIVERGENCES = "predictive_divergences"
_ENSEMBLES = "pair_ensembles"

REGISTRY: tuple[Statistic, ...] = (
    # ------------------------------------------------------------------ pairs (pairs.csv order)
    Statistic(
        "error_inconsistency",
        "Error inconsistency",
        "fraction of examples exactly one of the two members gets right",
        (0.0, 1.0),
        "predictions",
        "pair",
        _PAIR_ERRORS,
        bootstrap=True,
        heatmap=Heatmap("viridis", 0.0, None),
        headline=True,
    ),
    Statistic(
        "error_consistency_kappa",
        "Error consistency (Cohen's kappa)",
        "Cohen's kappa of the two correctness vectors (Geirhos et al. 2020); NaN when both "
        "members are always right or both always wrong",
        (-1.0, 1.0),
        "predictions",
        "pair",
        _PAIR_ERRORS,
        bootstrap=True,
        heatmap=Heatmap("magma", None, 1.0),
        headline=True,
    ),
    Statistic(
        "disagreement",
        "Disagreement (different predicted class)",
        "fraction of examples the two members predict different classes (an abstention is "
        "a response of its own: two abstentions agree)",
        (0.0, 1.0),
        "predictions",
        "pair",
        _PAIR_ERRORS,
        bootstrap=True,
        heatmap=Heatmap("viridis", 0.0, None),
    ),
    Statistic(
        "double_fault",
        "Double fault",
        "fraction of examples both members get wrong (joint, not conditional)",
        (0.0, 1.0),
        "predictions",
        "pair",
        _PAIR_ERRORS,
        bootstrap=True,
    ),
    Statistic(
        "error_correlation",
        "Error correlation",
        "Pearson correlation (phi) of the two error indicators; NaN when a member is always "
        "right or always wrong",
        (-1.0, 1.0),
        "predictions",
        "pair",
        _PAIR_ERRORS,
        bootstrap=True,
    ),
    Statistic(
        "yules_q",
        "Yule's Q",
        "(p11 p00 - p10 p01) / (p11 p00 + p10 p01) of the correctness table; NaN when the "
        "denominator is 0",
        (-1.0, 1.0),
        "predictions",
        "pair",
        _PAIR_ERRORS,
        bootstrap=True,
    ),
    Statistic(
        "symmetric_kl",
        "Symmetric KL divergence",
        "mean over examples of KL(p_a || p_b) + KL(p_b || p_a) of the temperature-scaled "
        "predictive distributions (nats)",
        (0.0, None),
        "probabilities",
        "pair",
        _DIVERGENCES,
        bootstrap=True,
    ),
    Statistic(
        "js_divergence",
        "Jensen-Shannon divergence",
        "mean over examples of [KL(p_a || m) + KL(p_b || m)] / 2 with m = (p_a + p_b) / 2 (nats)",
        (0.0, 0.6931471805599453),
        "probabilities",
        "pair",
        _DIVERGENCES,
        bootstrap=True,
    ),
    Statistic(
        "ensemble_accuracy",
        "Pair ensemble accuracy (diagonal: the member alone)",
        "accuracy of the argmax of the two members' summed temperature-scaled probabilities; "
        "with a hard-decision member, the expected accuracy of their vote with ties split "
        "evenly (jaxdiv.analysis.ensembles)",
        (0.0, 1.0),
        "predictions",
        "pair",
        _ENSEMBLES,
        bootstrap=True,
        heatmap=Heatmap("viridis"),
        headline=True,
    ),
    Statistic(
        "relative_ensemble_gain",
        "Relative ensemble gain",
        "pair ensemble accuracy minus the mean of the two members' accuracies",
        (-1.0, 1.0),
        "predictions",
        "pair",
        _ENSEMBLES,
        bootstrap=True,
        heatmap=Heatmap("RdBu_r", centred=True),
        headline=True,
    ),
    Statistic(
        "conversion_rate",
        "Conversion rate",
        "among the examples exactly one member gets right, the fraction the pair ensemble "
        "gets right (in expectation for votes); NaN when there are none",
        (0.0, 1.0),
        "predictions",
        "pair",
        _ENSEMBLES,
        bootstrap=True,
        headline=True,
    ),
    Statistic(
        "dominance",
        "Dominance P(a right | b right)",
        "D[a, b] = P(a right | b right) (Mania et al. 2019); NaN where b is never right; in "
        "pairs.csv as dominance_a_given_b and dominance_b_given_a",
        (0.0, 1.0),
        "predictions",
        "pair",
        "dominance",
        symmetric=False,
        pair_columns=("dominance_a_given_b", "dominance_b_given_a"),
    ),
    # ------------------------------------------------------------------ members (members.csv)
    Statistic(
        "accuracy",
        "accuracy",
        "fraction of examples the member's argmax (ties: lowest class) or hard decision gets "
        "right; an abstention is an error",
        (0.0, 1.0),
        "predictions",
        "member",
        "member_outputs",
    ),
    Statistic(
        "nll",
        "NLL",
        "mean negative log-likelihood of the label under softmax(z) (nats)",
        (0.0, None),
        "probabilities",
        "member",
        "calibration_report",
    ),
    Statistic(
        "ece",
        "ECE",
        "expected calibration error of softmax(z), 15 equal-width confidence bins",
        (0.0, 1.0),
        "probabilities",
        "member",
        "calibration_report",
    ),
    Statistic(
        "temperature",
        "temperature",
        "T minimising the NLL of softmax(z / T) on the calibration split (1 without one)",
        (0.0, None),
        "probabilities",
        "member",
        "calibration_report",
    ),
    Statistic(
        "nll_calibrated",
        "NLL (calibrated)",
        "mean negative log-likelihood under softmax(z / T) (nats)",
        (0.0, None),
        "probabilities",
        "member",
        "calibration_report",
    ),
    Statistic(
        "ece_calibrated",
        "ECE (calibrated)",
        "expected calibration error of softmax(z / T), 15 equal-width confidence bins",
        (0.0, 1.0),
        "probabilities",
        "member",
        "calibration_report",
    ),
    # ------------------------------------------------------------------ embeddings
    Statistic(
        "cka",
        "Linear CKA",
        "centred kernel alignment of the two members' embeddings with linear kernels "
        "(unbiased HSIC by default)",
        (None, 1.0),
        "embeddings",
        "pair",
        "linear_cka",
        heatmap=Heatmap("viridis", 0.0, 1.0),
    ),
    Statistic(
        "mixing_gain",
        "Mixing gain",
        "best interior mixing ratio's probe accuracy minus the better end (one member alone)",
        (-1.0, 1.0),
        "embeddings",
        "pair",
        "mix_pairs",
        symmetric=False,
    ),
    Statistic(
        "mix_50_minus_base",
        "50/50 mix minus the base alone",
        "probe accuracy of the 50/50 mix of the pair's embeddings minus the base's 100/0",
        (-1.0, 1.0),
        "embeddings",
        "pair",
        "mix_pairs",
        symmetric=False,
    ),
    Statistic(
        "dims_to_target_variance",
        "Dimensions to the target (ranked by variance)",
        "fewest concatenated-embedding dimensions, ranked by variance, whose probe reaches "
        "the target accuracy; NaN when never reached",
        (1.0, None),
        "embeddings",
        "pair",
        "compress_pairs",
        symmetric=False,
    ),
    Statistic(
        "dims_to_target_covariance",
        "Dimensions to the target (ranked by label covariance)",
        "fewest concatenated-embedding dimensions, ranked by label covariance, whose probe "
        "reaches the target accuracy; NaN when never reached",
        (1.0, None),
        "embeddings",
        "pair",
        "compress_pairs",
        symmetric=False,
    ),
    Statistic(
        "stacked_gain",
        "Stacked generalisation gain",
        "transfer-task probe accuracy of the concatenated pair minus the better member alone",
        (-1.0, 1.0),
        "embeddings",
        "pair",
        "stacked_pairs",
    ),
    Statistic(
        "probe_accuracy",
        "probe accuracy",
        "linear-probe accuracy of the member's full embedding",
        (0.0, 1.0),
        "embeddings",
        "member",
        "evaluate_probes",
    ),
    Statistic(
        "transfer_accuracy",
        "transfer accuracy",
        "linear-probe accuracy of the member's embedding on the transfer task",
        (0.0, 1.0),
        "embeddings",
        "member",
        "stacked_pairs",
    ),
)

_BY_KEY = {s.key: s for s in REGISTRY}


def _check() -> None:
    if len(_BY_KEY) != len(REGISTRY):
        raise AssertionError("two registry entries share a key")
    for s in REGISTRY:
        if s.needs not in NEEDS or s.kind not in KINDS:
            raise AssertionError(f"registry entry {s.key!r}: bad needs/kind")


_check()


def get(key: str) -> Statistic:
    """The entry for ``key``; JaxdivError naming the known keys otherwise."""
    if key not in _BY_KEY:
        raise choices_error("statistic", key, tuple(_BY_KEY))
    return _BY_KEY[key]


def select(
    *,
    kind: str | None = None,
    needs: str | tuple[str, ...] | None = None,
    kernel: str | None = None,
    symmetric: bool | None = None,
    bootstrap: bool | None = None,
) -> tuple[Statistic, ...]:
    """Entries matching every given filter, in registry order."""
    if kind is not None and kind not in KINDS:
        raise choices_error("statistic kind", kind, KINDS)
    wanted = (needs,) if isinstance(needs, str) else needs
    for w in wanted or ():
        if w not in NEEDS:
            raise choices_error("statistic input", w, NEEDS)
    return tuple(
        s
        for s in REGISTRY
        if (kind is None or s.kind == kind)
        and (wanted is None or s.needs in wanted)
        and (kernel is None or s.kernel == kernel)
        and (symmetric is None or s.symmetric == symmetric)
        and (bootstrap is None or s.bootstrap == bootstrap)
    )


def keys(**filters) -> tuple[str, ...]:
    """Keys of ``select(**filters)``, in registry order."""
    return tuple(s.key for s in select(**filters))


def as_records(stats: tuple[Statistic, ...] | None = None) -> list[dict]:
    """JSON-ready dicts of ``stats`` (default all), in order."""
    out = []
    for s in REGISTRY if stats is None else stats:
        record = dataclasses.asdict(s)
        record["range"] = list(s.range)
        out.append(record)
    return out


def check_keys(names, **filters) -> list[str]:
    """``names`` as a list, each a key of ``select(**filters)``; JaxdivError otherwise."""
    allowed = keys(**filters)
    out = list(names)
    if not out:
        raise JaxdivError("no statistic named; name at least one (or pass None for all)")
    for name in out:
        if name not in allowed:
            raise choices_error("statistic", name, allowed)
    return out
