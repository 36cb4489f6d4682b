"""The base member of a population and the members' categories relative to it.

One lookup serves every stage (``jaxdiv analyze``, ``jaxdiv represent``); the report reads
the base the analysis recorded in ``summary.json``.
"""

from __future__ import annotations

from jaxdiv.analysis.categories import normalise_category
from jaxdiv.errors import JaxdivError
from jaxdiv.population.spec import CATEGORIES

BASE_MARKERS = ("base",)  # a member whose category is "base" (any case) is the base


def is_base_category(category) -> bool:
    """True when a member info's category marks the base (``"Base"``, any case)."""
    return str(category or "").strip().lower() in BASE_MARKERS


def find_base(infos: list[dict], names: list[str], base: str | None = None) -> str | None:
    """The base member: ``base`` if given, else the member whose info says it is the base
    (``"base": true`` or category "base"), else the one every ``"base": "<name>"`` names;
    None when there is none."""
    if base is not None:
        if base not in names:
            raise JaxdivError(
                f"base member {base!r} is not among the analysed members: {', '.join(names)}"
            )
        return base
    flagged = [
        n
        for n, info in zip(names, infos, strict=True)
        if info.get("base") is True or is_base_category(info.get("category"))
    ]
    if len(flagged) > 1:
        raise JaxdivError(
            f"several members are marked as the base ({', '.join(flagged)}); mark one or pass base="
        )
    if flagged:
        return flagged[0]
    named = {info["base"] for info in infos if isinstance(info.get("base"), str)}
    if len(named) > 1:
        raise JaxdivError(f"members name different base members: {', '.join(sorted(named))}")
    if named and next(iter(named)) in names:
        return next(iter(named))
    return None


def relative_category(category) -> str | None:
    """A member info's category as one of ``CATEGORIES``; None for the base or none."""
    if category is None or str(category).strip() == "" or is_base_category(category):
        return None
    return normalise_category(str(category), CATEGORIES)
