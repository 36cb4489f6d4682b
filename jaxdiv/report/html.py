"""The study's static HTML report: ``WORKDIR/report/index.html`` with its PNGs beside it.

Inputs (all written by the stages; the report computes no statistic itself)::

    WORKDIR/population.json   members with category ("Base" for the base), method, architecture
                              and dataset (``jaxdiv.stages.study``)
    WORKDIR/analysis/         ``jaxdiv.stages.analyze.run_analyze``'s folder: members.json,
                              members.csv, pairs.csv, statistics.json, <stat>.npy, summary.json,
                              the base pairs' angle histograms and class wins, and the
                              selection tables weaker_partners.csv, greedy.csv, selection.json
    WORKDIR/representation/   ``jaxdiv.stages.represent.run_represent``'s folder (optional)
    WORKDIR/failures.json     members that failed (optional)

Every number on the page is a value of those tables; the figures are drawn from them
(``jaxdiv.report.figures``, ``jaxdiv.report.representation``). Which statistics get a heatmap
and a column comes from the registry entries the analysis wrote to ``statistics.json``.

The page is built in a hidden temporary folder and published whole
(``jaxdiv.files.staged_folder``), so a failed report never leaves a half page (an older
report stays until the new one is complete). The page is one self-contained file (inline CSS,
a few lines of inline script that mark on ``<body data-images-ok="k/n">`` how many of its
images loaded) with its images beside it.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from jaxdiv.errors import JaxdivError
from jaxdiv.files import staged_folder
from jaxdiv.population.spec import CATEGORIES
from jaxdiv.report import figures, human, shift
from jaxdiv.report.representation import draw_representation

BASE = "Base"
UNCATEGORISED = "Uncategorised"
CLASS_NAMES = {
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
}


# ---------------------------------------------------------------------------- inputs
@dataclass
class StudyInputs:
    """Everything the report reads, loaded once."""

    workdir: Path
    name: str
    names: list[str]  # analysis order (members.json): the order of every matrix
    categories: list[str]  # BASE, one of CATEGORIES or UNCATEGORISED, per name
    base: str | None  # None: the analysis found no base member (no per-category sections)
    members: pd.DataFrame  # members.csv with population.json's columns, indexed by name
    pairs: pd.DataFrame
    summary: dict
    statistics: list[dict]  # registry entries of the analysis's statistics (statistics.json)
    split: str
    calibration_split: str | None
    class_names: list[str]
    failures: dict = field(default_factory=dict)
    analysis: Path | None = None  # the analysis folder (default WORKDIR/analysis)
    representation: Path | None = None  # the representation folder (default WORKDIR/...)
    title: str = ""  # the page title (default "jaxdiv study: <name>")
    absent: dict = field(default_factory=dict)  # section -> why the stage did not make it

    def __post_init__(self) -> None:
        self.analysis = Path(self.analysis or self.workdir / "analysis")
        self.representation = Path(self.representation or self.workdir / "representation")

    @property
    def base_index(self) -> int:
        return self.names.index(self.base)

    def temperatures(self) -> np.ndarray:
        """The analysis's temperatures (fitted on the calibration split), in ``names`` order."""
        return self.members.loc[self.names, "temperature"].to_numpy(np.float64)

    def accuracy(self) -> np.ndarray:
        """Accuracy on the report split, in ``names`` order."""
        return self.members.loc[self.names, "accuracy"].to_numpy(np.float64)

    def matrix(self, stem: str) -> np.ndarray | None:
        """``analysis/<stem>.npy`` (N x N in ``names`` order), or None when absent."""
        path = self.analysis / f"{stem}.npy"
        if not path.exists():
            return None
        m = np.load(path).astype(np.float64)
        if m.shape != (len(self.names),) * 2:
            raise JaxdivError(
                f"{path} has shape {m.shape}, expected {len(self.names)} x "
                f"{len(self.names)} (members.json); re-run the analysis"
            )
        return m

    def table(self, name: str) -> pd.DataFrame:
        """``analysis/<name>`` (a CSV the analysis wrote); JaxdivError when missing."""
        path = self.analysis / name
        if not path.is_file():
            raise JaxdivError(f"{path} is missing; re-run the analysis for this workdir")
        return pd.read_csv(path)

    def display_order(self) -> list[int]:
        """Member indices: the base, then by category (paper order), then by name."""
        rank = {c: k for k, c in enumerate((BASE, *CATEGORIES, UNCATEGORISED))}
        return sorted(
            range(len(self.names)), key=lambda i: (rank[self.categories[i]], self.names[i])
        )


def _read_json(path: Path, what: str):
    if not path.exists():
        raise JaxdivError(
            f"{what} is missing ({path}); run `jaxdiv study` (or `jaxdiv "
            "analyze --out=WORKDIR/analysis`) for this workdir first"
        )
    return json.loads(path.read_text())


def _config_get(cfg, dotted: str):
    """``cfg.a.b`` for a ConfigDict or nested dict; None when any key is missing."""
    node = cfg
    for key in dotted.split("."):
        try:
            node = node[key] if node is not None and key in node else None
        except TypeError:
            return None
    return node


def class_names_for(dataset: str | None, num_classes: int) -> list[str]:
    """Readable class names for ``dataset`` when known (CIFAR-10), else class indices."""
    names = CLASS_NAMES.get(str(dataset).lower()) if dataset else None
    if names is not None and len(names) == num_classes:
        return list(names)
    return [str(c) for c in range(num_classes)]


def _key(text: str) -> str:
    return text.lower().replace("-", "").replace("_", "").replace(" ", "")


def _category(raw) -> str:
    """A recorded category as BASE, one of CATEGORIES (case, '-', '_' and spaces ignored) or
    UNCATEGORISED when empty."""
    text = str(raw if isinstance(raw, str) else "").strip()
    if not text:
        return UNCATEGORISED
    known = {_key(c): c for c in (BASE, *CATEGORIES)}
    if _key(text) not in known:
        raise JaxdivError(
            f"unknown category {text!r} in the study's records; valid choices: "
            f"{', '.join(sorted(CATEGORIES))}"
        )
    return known[_key(text)]


def read_record(path: Path) -> dict:
    """The population record at ``path`` with its ``members`` as ``{name: entry}``. A
    missing record is empty, and a hand-written one gives what it has: a bare list is its
    members, entries without a name are skipped, missing keys fall back to the analysis's
    members.csv (category) or stay empty."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raw = {}
    except (OSError, ValueError) as e:
        raise JaxdivError(f"{path} is no readable JSON ({e}); fix or remove it") from None
    if isinstance(raw, list):
        raw = {"members": raw}
    if not isinstance(raw, dict):
        raise JaxdivError(f"{path} holds a {type(raw).__name__}, not a population record")
    entries = raw.get("members")
    entries = entries if isinstance(entries, list) else []
    members = {
        str(m["name"]): m for m in entries if isinstance(m, dict) and m.get("name") is not None
    }
    return {**raw, "members": members}


def load_inputs(
    workdir: str | os.PathLike,
    pop_config=None,
    *,
    analysis: str | os.PathLike | None = None,
    representation: str | os.PathLike | None = None,
    record: str | os.PathLike | None = None,
) -> StudyInputs:
    """Read the population record and the analysis folder, check they agree. ``analysis``,
    ``representation`` and ``record`` default to ``WORKDIR/analysis``,
    ``WORKDIR/representation`` and ``WORKDIR/population.json`` (``read_record``)."""
    workdir = Path(workdir)
    population = read_record(Path(record) if record is not None else workdir / "population.json")
    analysis = Path(analysis) if analysis is not None else workdir / "analysis"
    names = [str(n) for n in _read_json(analysis / "members.json", "the analysis")]
    summary = _read_json(analysis / "summary.json", "the analysis summary")
    for path in (analysis / "members.csv", analysis / "pairs.csv"):
        if not path.exists():
            raise JaxdivError(f"{path} is missing; re-run the analysis for this workdir")
    table = pd.read_csv(analysis / "members.csv").set_index("name")
    if sorted(table.index) != sorted(names):
        raise JaxdivError(
            f"{analysis}/members.csv and members.json name different members; re-run the analysis"
        )
    statistics = _read_json(analysis / "statistics.json", "the analysis's statistics")
    record = population["members"]
    categories = [  # the record's, else the one the analysis read from member.json
        _category(record.get(n, {}).get("category") or table.at[n, "category"]) for n in names
    ]
    for col in ("method", "architecture"):
        table[col] = [str(record.get(n, {}).get(col) or "") for n in table.index]
    table["human"] = [record.get(n, {}).get("human") is True for n in table.index]
    base = summary.get("base")
    if base is not None and base not in names:
        raise JaxdivError(
            f"the analysis's base member {base!r} is not among its members; re-run the analysis"
        )
    if base is not None:
        categories[names.index(base)] = BASE
    calib = summary.get("calibration_split")
    dataset = (
        _config_get(pop_config, "base.data.dataset")
        or record.get(base, {}).get("dataset")
        or population.get("dataset")
    )
    num_classes = int(summary["num_classes"])
    recorded = population.get("class_names")
    if isinstance(recorded, list) and len(recorded) == num_classes:
        class_names = [str(c) for c in recorded]
    else:
        class_names = class_names_for(dataset, num_classes)
    failures_path = workdir / "failures.json"
    failures = json.loads(failures_path.read_text()) if failures_path.exists() else {}
    return StudyInputs(
        workdir=workdir,
        name=str(population.get("name") or workdir.name),
        names=names,
        categories=categories,
        base=base,
        members=table,
        pairs=pd.read_csv(analysis / "pairs.csv"),
        summary=summary,
        statistics=statistics,
        split=str(summary["split"]),
        calibration_split=str(calib) if calib else None,
        class_names=class_names,
        failures=failures or {},
        analysis=analysis,
        representation=Path(representation) if representation is not None else None,
        title=str(population.get("title") or ""),
        absent=population.get("absent") if isinstance(population.get("absent"), dict) else {},
    )


# ---------------------------------------------------------------------------- HTML helpers
def _esc(x) -> str:
    return html.escape(str(x))


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, (float, np.floating)):
        return "" if not np.isfinite(x) else f"{x:.{digits}f}"
    return _esc(x)


def _table(header: Sequence[str], rows: Sequence[Sequence], *, numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are HTML already, columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"num" if i in numeric else "txt"}">{c}</td>' for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    return f'<figure><img src="{_esc(path.name)}" alt="{_esc(alt)}"></figure>'


def _category_cell(cat: str) -> str:
    return f'<span class="cat" style="background:{figures.category_colour(cat)}">{_esc(cat)}</span>'


def absent_section(title: str, reason: str) -> str:
    """A section the report cannot draw: its heading and one sentence saying why."""
    why = f"This section is absent because {_esc(reason)}."
    return f'<h2>{_esc(title)}</h2><p class="absent">{why}</p>'


ALL_HARD = "every member gives hard decisions only, and they need probabilities"


def all_hard(s: StudyInputs) -> bool:
    """True when every analysed member is a hard-decision member (no probabilities)."""
    return set(s.summary.get("hard_members") or []) >= set(s.names)


def categories_absent(s: StudyInputs) -> str | None:
    """Why the sections comparing the base with each category cannot be drawn (None: they
    can)."""
    if s.base is None:
        return (
            "the analysis found no base member to compare the others with (mark one with "
            "category Base in its member.json or a manifest, or pass --base)"
        )
    if not any(c in CATEGORIES for c in s.categories):
        return (
            "no member has a category relative to the base (set one in member.json or with "
            f"--manifest: {', '.join(CATEGORIES)})"
        )
    return None


# ---------------------------------------------------------------------------- members
def _members_section(s: StudyInputs) -> str:
    cols = [
        (st["key"], st["title"])
        for st in s.statistics
        if st["kind"] == "member" and st["key"] in s.members
    ]
    header = ["member", "category", "method", "architecture", *(h for _, h in cols)]
    rows = []
    for i in s.display_order():
        r = s.members.loc[s.names[i]]
        rows.append(
            [
                _esc(s.names[i]) + (" <small>(human subject)</small>" if r["human"] else ""),
                _category_cell(s.categories[i]),
                _esc(r["method"]),
                _esc(r["architecture"]),
                *(_fmt(r[c]) for c, _ in cols),
            ]
        )
    note = (
        f"Metrics on the <code>{_esc(s.split)}</code> split"
        + (
            f"; temperatures fitted on <code>{_esc(s.calibration_split)}</code>"
            if s.calibration_split
            else "; no calibration split (temperature 1)"
        )
        + "."
        + (f" NLL, ECE and temperatures are empty because {ALL_HARD}." if all_hard(s) else "")
    )
    return f"<h2>Members</h2><p>{note}</p>" + _table(header, rows, numeric=range(4, len(header)))


def _failures_section(s: StudyInputs) -> str:
    if not s.failures:
        return ""
    rows = [
        [
            _esc(name),
            "<pre>" + _esc(info.get("error", "") if isinstance(info, dict) else info) + "</pre>",
        ]
        for name, info in sorted(s.failures.items())
    ]
    return (
        "<h2>Failed members</h2><p>These members did not finish and are left out of the "
        "analysis (tracebacks in <code>failures.json</code>).</p>"
        + _table(["member", "error"], rows)
    )


# ---------------------------------------------------------------------------- categories
def base_pair_rows(s: StudyInputs) -> pd.DataFrame:
    """One row per (base, other) pair with a category: ``other``, ``category``, ``accuracy``
    and every pair statistic, as the analysis wrote them (its accuracy band applied)."""
    agg = s.summary.get("categories") or {}
    if agg.get("rows") is None:
        raise JaxdivError(
            f"{s.analysis / 'summary.json'} has no per-category rows; re-run the analysis"
        )
    rows = pd.DataFrame(agg["rows"]).rename(columns={"member": "other"})
    if rows.empty:
        return pd.DataFrame(columns=["other", "category", *_headline(s)])
    return rows.astype({c: np.float64 for c in rows.columns if c not in ("other", "category")})


def _headline(s: StudyInputs) -> list[str]:
    """The pair statistics the registry marks for the per-category table, in its order."""
    return [st["key"] for st in s.statistics if st["kind"] == "pair" and st.get("headline")]


def _by_category(rows: pd.DataFrame, column: str) -> tuple[dict, dict]:
    values, labels = {}, {}
    for c in CATEGORIES:
        mine = rows[rows["category"] == c]
        values[c] = mine[column].to_numpy(np.float64)
        labels[c] = list(mine["other"])
    return values, labels


def category_intervals(s: StudyInputs) -> pd.DataFrame | None:
    """``analysis/category_intervals.csv`` (category, statistic, mean, low, high), or None
    when the analysis ran without bootstrap."""
    path = s.analysis / "category_intervals.csv"
    return pd.read_csv(path) if path.is_file() else None


def _bounds(ci: pd.DataFrame | None, stat: str) -> dict[str, tuple[float, float]]:
    if ci is None:
        return {}
    rows = ci[ci["statistic"] == stat]
    return {r.category: (float(r.low), float(r.high)) for r in rows.itertuples()}


def _interval_text(ci: pd.DataFrame | None, cat: str, stat: str) -> str:
    low, high = _bounds(ci, stat).get(cat, (np.nan, np.nan))
    return f" [{_fmt(low)}, {_fmt(high)}]" if np.isfinite(low) and np.isfinite(high) else ""


def _mean_crosses(ci: pd.DataFrame | None) -> dict:
    if ci is None:
        return {}
    out = {}
    for cat in CATEGORIES:
        got = {}
        for axis, stat in (("x", "error_inconsistency"), ("y", "relative_ensemble_gain")):
            row = ci[(ci["category"] == cat) & (ci["statistic"] == stat)]
            if len(row):
                r = row.iloc[0]
                got[axis] = (float(r["mean"]), float(r["low"]), float(r["high"]))
        if len(got) == 2:
            out[cat] = got
    return out


def _differences_table(s: StudyInputs) -> str:
    """Paired differences of mean EI between categories next to each other in the paper's
    order, from ``analysis/category_differences.csv``."""
    path = s.analysis / "category_differences.csv"
    if not path.is_file():
        return ""
    try:
        d = pd.read_csv(path)
    except pd.errors.EmptyDataError:  # fewer than two categories: no differences, no header
        return ""
    d = d[d["statistic"] == "error_inconsistency"]
    present = [c for c in CATEGORIES if c in set(d["a"]) | set(d["b"])]
    rows = []
    for lower, upper in zip(present, present[1:], strict=False):
        hit = d[(d["a"] == lower) & (d["b"] == upper)]
        if not len(hit):
            continue
        r = hit.iloc[0]  # a - b = lower - upper: negate to read "upper above lower"
        rows.append(
            [
                f"{_category_cell(upper)} &minus; {_category_cell(lower)}",
                _fmt(-float(r["difference"])),
                f"[{_fmt(-float(r['high']))}, {_fmt(-float(r['low']))}]",
                # p_not_above = share of resamples with lower - upper <= 0
                _fmt(float(r["p_not_above"]), 3),
            ]
        )
    if not rows:
        return ""
    return (
        "<p>Is each category's mean error inconsistency above the one before it in the "
        "paper's order? Paired bootstrap differences (the same resamples for both means):</p>"
        + _table(
            ["difference of mean EI", "difference", "95% interval", "share of resamples >= 0"],
            rows,
            numeric=(1, 2, 3),
        )
    )


def _categories_section(s: StudyInputs, out: Path) -> str:
    if categories_absent(s):
        return absent_section("Error inconsistency by category", categories_absent(s))
    rows = base_pair_rows(s)
    agg = s.summary.get("categories") or {}
    band = agg.get("accuracy_band")
    band_note = ""
    if band:
        left = agg.get("outside_band") or []
        band_note = (
            f" Only members with accuracy in [{band[0]}, {band[1]}] are compared"
            + (f" (left out: {_esc(', '.join(left))})" if left else "")
            + "."
        )
    parts = [
        "<h2>Error inconsistency by category</h2>",
        f"<p>Each point pairs the base <b>{_esc(s.base)}</b> with another member; the "
        "black bars are the category means. The paper's ordering is Reinit &lt; "
        f"Hyperparameters &lt; Architecture &lt; Framework &lt; Dataset.{band_note}</p>",
    ]
    ci = category_intervals(s)
    if ci is not None:
        parts.append(
            "<p>Error bars: 95% bootstrap intervals of the category means (examples resampled, "
            "and members where a category has several; "
            "<code>analysis/category_intervals.csv</code>).</p>"
        )
    values, labels = _by_category(rows, "error_inconsistency")
    parts.append(
        _img(
            figures.category_points(
                values,
                out / "error_inconsistency_by_category.png",
                labels=labels,
                intervals=_bounds(ci, "error_inconsistency"),
                ylabel="error inconsistency with the base",
                title="Error inconsistency (fraction where exactly one is right)",
            ),
            "error inconsistency by category",
        )
    )
    stats = [k for k in _headline(s) if k in rows]
    per_cat = agg.get("categories") or {}
    means = []
    for c in CATEGORIES:
        entry = per_cat.get(c) or {"count": 0, "mean": {}}
        means.append(
            [
                _category_cell(c),
                str(entry["count"]),
                *(_fmt(entry["mean"].get(k)) + _interval_text(ci, c, k) for k in stats),
            ]
        )
    parts.append(
        _table(
            ["category", "pairs", *("mean " + k.replace("_", " ") for k in stats)],
            means,
            numeric=range(1, 2 + len(stats)),
        )
    )
    parts.append(_differences_table(s))

    fit = agg.get("fit") or {}
    slope_ci = agg.get("slope_interval") or {}
    slope_text = (
        f" [{_fmt(slope_ci.get('low'))}, {_fmt(slope_ci.get('high'))}]"
        if slope_ci.get("low") is not None and slope_ci.get("high") is not None
        else ""
    )
    parts.append(
        "<h2>Ensemble gain against error inconsistency</h2>"
        f"<p>Least-squares fit over the base pairs: slope {_fmt(fit.get('slope'))}{slope_text}, "
        f"intercept {_fmt(fit.get('intercept'))}, Pearson r = "
        f"{_fmt(fit.get('r'), 3) or 'undefined'} (n = {_esc(fit.get('n'))}).</p>"
    )
    parts.append(
        _img(
            figures.gain_vs_inconsistency(
                rows["error_inconsistency"],
                rows["relative_ensemble_gain"],
                list(rows["category"]),
                fit,
                out / "gain_vs_inconsistency.png",
                category_means=_mean_crosses(ci),
            ),
            "relative ensemble gain vs error inconsistency",
        )
    )

    parts.append(
        "<h2>Conversion rate by category</h2><p>Among the examples exactly one "
        "member of the pair gets right, the fraction the pair ensemble gets right.</p>"
    )
    values, labels = _by_category(rows, "conversion_rate")
    parts.append(
        _img(
            figures.category_points(
                values,
                out / "conversion_rate_by_category.png",
                labels=labels,
                intervals=_bounds(ci, "conversion_rate"),
                ylabel="conversion rate",
                title="Conversion rate of the error-inconsistent examples",
            ),
            "conversion rate by category",
        )
    )
    return "".join(parts)


# ---------------------------------------------------------------------------- specialisation
def representative_pairs(s: StudyInputs) -> list[tuple[str, int]]:
    """One (category, member index) per category present: the member closest in accuracy
    to the base (ties: the first in analysis order)."""
    acc = s.accuracy()
    base_acc = acc[s.base_index]
    chosen = []
    for c in CATEGORIES:
        idx = [i for i, cat in enumerate(s.categories) if cat == c]
        if idx:
            chosen.append((c, min(idx, key=lambda i: abs(acc[i] - base_acc))))
    return chosen


def base_specialisation(s: StudyInputs, others: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Angle histograms [P, 4, bins] and class wins [P, 2, C] of the pairs (base, other) for
    ``others``, from the analysis's arrays."""
    spec = s.summary.get("specialisation") or {}
    hist_path = s.analysis / "base_angle_histograms.npy"
    wins_path = s.analysis / "base_class_wins.npy"
    order = {tuple(p): k for k, p in enumerate(spec.get("pairs") or [])}
    keys = [(s.base, s.names[i]) for i in others]
    missing = [f"{a}|{b}" for a, b in keys if (a, b) not in order]
    if not (hist_path.exists() and wins_path.exists()) or missing:
        raise JaxdivError(
            f"{s.analysis} lacks the base pairs' specialisation arrays"
            + (f" for {', '.join(missing)}" if missing else "")
            + "; re-run the analysis for this workdir"
        )
    rows = [order[k] for k in keys]
    return np.load(hist_path)[rows], np.load(wins_path)[rows]


def _specialisation_section(s: StudyInputs, out: Path) -> str:
    if categories_absent(s):
        return absent_section("Specialisation", categories_absent(s))
    acc = s.accuracy()
    b = s.base_index
    chosen = representative_pairs(s)
    others = [i for i in s.display_order() if s.categories[i] in CATEGORIES]
    hist, wins = base_specialisation(s, others)
    spec = s.summary["specialisation"]
    # confidence angles need probabilities: pairs with a hard-decision member are left out
    no_angles = {tuple(pair) for pair in spec.get("angles_not_applicable") or []}
    left_out = [s.names[i] for _, i in chosen if (s.base, s.names[i]) in no_angles]
    chosen = [(c, i) for c, i in chosen if (s.base, s.names[i]) not in no_angles]
    hist = hist[[others.index(i) for _, i in chosen]]
    edges = np.asarray(spec["angle_bin_edges"], np.float64)
    titles = [f"{c}: {s.base} ({acc[b]:.3f}) vs {s.names[i]} ({acc[i]:.3f})" for c, i in chosen]
    angles = (
        _img(
            figures.theta_histograms(
                hist, edges, titles, out / "theta_histograms.png", outcomes=spec["outcomes"]
            ),
            "theta histograms",
        )
        if chosen
        else ""
    )
    if all_hard(s):
        angles = f'<p class="absent">The confidence angles are absent because {ALL_HARD}.</p>'
    elif left_out:
        angles += (
            "<p>Not applicable for "
            + ", ".join(_esc(n) for n in ([s.base] if not chosen else []) + left_out)
            + ": confidence angles need probabilities, and hard-decision members give class "
            "decisions only.</p>"
        )
    parts = [
        "<h2>Specialisation</h2><h3>Confidence angles</h3><p>For one pair per category "
        "(the member closest in accuracy to the base), the angle "
        "<code>theta = atan2(conf_base, conf_other)</code> of the two members' "
        "temperature-scaled confidences, by outcome: above 45&deg; the base is the more "
        "confident, below it the other member.</p>",
        angles,
        "<h3>Per-class wins</h3><p>For each class, the share of its error-inconsistent "
        "examples (exactly one of the pair right) that the other member wins against "
        f"the base <b>{_esc(s.base)}</b>: red, the other member wins; blue, the base "
        "wins.</p>",
        _img(
            figures.class_win_map(
                wins,
                [f"{s.names[i]} ({s.categories[i]})" for i in others],
                s.class_names,
                out / "class_wins.png",
            ),
            "per-class win map",
        ),
    ]
    return "".join(parts)


# ---------------------------------------------------------------------------- selection
def weaker_partners(s: StudyInputs) -> tuple[list[dict], dict, str]:
    """The analysis's selection tables: for each member, the best first partner among members
    weaker than it (``weaker_partners.csv``), and the greedy forward selection from the
    strongest member using only weaker members (``greedy.csv``).

    Returns ``(rows, greedy, select_split)``: rows as dicts with the members' categories,
    greedy as ``{"members": [indices], "select_accuracy": [...], "report_accuracy": [...]}``
    and the split the choices were made on (``selection.json``).
    """
    selection = _read_json(s.analysis / "selection.json", "the analysis's selection record")
    cat = dict(zip(s.names, s.categories, strict=True))
    rows = []
    for r in s.table("weaker_partners.csv").to_dict("records"):
        r = {k: (str(v) if k in ("strong", "partner") else float(v)) for k, v in r.items()}
        rows.append(
            {**r, "strong_category": cat[r["strong"]], "partner_category": cat[r["partner"]]}
        )
    steps = s.table("greedy.csv")
    greedy = {
        "members": [s.names.index(str(n)) for n in steps["member"]],
        **{
            col: steps[col].astype(float).tolist()
            for col in steps.columns
            if col not in ("size", "member")
        },
    }
    return rows, greedy, str(selection["select_split"])


def _with_interval(row: dict, key: str, text: str) -> str:
    """``text`` followed by ``row``'s ``[<key>_low, <key>_high]`` when the analysis wrote
    them (it was run with bootstrap resamples)."""
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return text
    return f"{text} [{_fmt(low)}, {_fmt(high)}]"


def _selection_section(s: StudyInputs, out: Path) -> str:
    rows, greedy, sel_split = weaker_partners(s)
    where = (
        f"chosen on <code>{_esc(sel_split)}</code>, reported on <code>{_esc(s.split)}</code>"
        if sel_split != s.split
        else f"chosen and reported on <code>{_esc(s.split)}</code>: there is no calibration "
        "split, so selection and report share one split and the gains are optimistic"
    )
    parts = [
        "<h2>Weaker models improve stronger ones</h2>",
        "<p>For each member, the best first partner among the members weaker than it "
        f"({where}); ensembles average temperature-scaled probabilities.</p>",
    ]
    table = [
        [
            _esc(r["strong"]),
            _category_cell(r["strong_category"]),
            _fmt(r["strong_accuracy"]),
            _esc(r["partner"]),
            _category_cell(r["partner_category"]),
            _fmt(r["partner_accuracy"]),
            _with_interval(r, "ensemble_accuracy", _fmt(r["ensemble_accuracy"])),
            _with_interval(r, "gain_over_strong", f"{r['gain_over_strong']:+.4f}"),
        ]
        for r in rows
    ]
    parts.append(
        _table(
            [
                "strong member",
                "category",
                "accuracy",
                "best weaker partner",
                "category",
                "accuracy",
                "pair ensemble acc.",
                "gain over strong",
            ],
            table,
            numeric=(2, 5, 6, 7),
        )
    )
    names = [s.names[k] for k in greedy["members"]]
    curve = {
        "label": f"from {names[0]}",
        "members": names,
        "select": greedy["select_accuracy"],
        "report": greedy["report_accuracy"],
        "report_low": greedy.get("report_accuracy_low"),
        "report_high": greedy.get("report_accuracy_high"),
    }
    parts.append(
        f"<h3>Greedy forward selection</h3><p>Starting from the strongest member "
        f"<b>{_esc(names[0])}</b>, repeatedly add the weaker member that most raises "
        f"the ensemble's <code>{_esc(sel_split)}</code> accuracy, while it rises.</p>"
    )
    parts.append(
        _img(
            figures.greedy_curve(
                [curve], out / "greedy_selection.png", select_split=sel_split, report_split=s.split
            ),
            "greedy selection curve",
        )
    )
    by_step = [{k: v[i] for k, v in greedy.items()} for i in range(len(names))]
    has_gain = "gain_over_previous" in greedy
    steps = [
        [
            str(k + 1),
            _esc(n),
            _category_cell(s.categories[greedy["members"][k]]),
            _fmt(r["select_accuracy"]),
            _with_interval(r, "report_accuracy", _fmt(r["report_accuracy"])),
            *(
                [
                    ""
                    if k == 0
                    else _with_interval(r, "gain_over_previous", f"{r['gain_over_previous']:+.4f}")
                ]
                if has_gain
                else []
            ),
        ]
        for k, (n, r) in enumerate(zip(names, by_step, strict=True))
    ]
    header = ["size", "added member", "category", f"{sel_split} acc.", f"{s.split} acc."]
    parts.append(
        _table(
            header + (["gain of the step"] if has_gain else []),
            steps,
            numeric=(0, 3, 4, 5) if has_gain else (0, 3, 4),
        )
    )
    if any(k.endswith("_low") for k in greedy) or any("gain_over_strong_low" in r for r in rows):
        parts.append(
            f"<p>Brackets: 95% bootstrap intervals over resamples of the "
            f"<code>{_esc(s.split)}</code> examples with the choices held fixed; gains are "
            "paired (both accuracies on the same resampled examples).</p>"
        )
    return "".join(parts)


# ---------------------------------------------------------------------------- matrices
def _matrices_section(s: StudyInputs, out: Path) -> str:
    order = s.display_order()
    names = [s.names[i] for i in order]
    cats = [s.categories[i] for i in order]
    parts = [
        "<h2>All pairs</h2><p>Statistics of every pair on the "
        f"<code>{_esc(s.split)}</code> split (tick labels coloured by category).</p>"
        + ('<div class="grid">' if len(names) <= 12 else "<div>")
    ]
    for st in s.statistics:
        stem, title, heat = st["key"], st["title"], st.get("heatmap")
        m = s.matrix(stem) if heat else None
        if m is None:
            continue
        m = m[np.ix_(order, order)]
        cmap = heat["cmap"]
        if heat["centred"]:
            finite = np.abs(m[np.isfinite(m)])
            top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
            vmin, vmax = -top, top
        else:
            vmin, vmax = heat["vmin"], heat["vmax"]
        parts.append(
            _img(
                figures.matrix_heatmap(
                    m,
                    names,
                    out / f"matrix_{stem}.png",
                    title=title,
                    cmap=cmap,
                    vmin=vmin,
                    vmax=vmax,
                    categories=cats,
                ),
                title,
            )
        )
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------------------- page
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em}th{background:#f3f3f3}td.num{text-align:right;
font-variant-numeric:tabular-nums}figure{margin:1em 0}img{max-width:100%;height:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1em}
.cat{color:#fff;border-radius:3px;padding:0 .4em;font-size:.85em}
code{background:#f3f3f3;padding:0 .2em}pre{margin:0;white-space:pre-wrap;font-size:.85em}
.meta{color:#666}
"""
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-ok', ok + '/' + imgs.length);
});
"""


# representation figures shown, with their captions (drawn by jaxdiv.report.representation)
_REPRESENTATION_FIGURES = {
    "mixing.png": (
        "Random-subset mixing",
        "Linear-probe accuracy on random subsets of two members' embeddings mixed at fixed total "
        "dimension (100/0 ... 0/100); an interior peak means the features overlap without one "
        "containing the other.",
    ),
    "compression.png": (
        "Compression",
        "Probe accuracy against the number of concatenated-embedding dimensions kept, ranked by "
        "variance or by the label-covariance criterion.",
    ),
    "stacked.png": (
        "Stacked generalisation",
        "A probe on the concatenated embeddings of a pair against each member alone, on a task "
        "the members were not trained for.",
    ),
    "cka.png": ("Linear CKA", "Similarity of every pair of members' embeddings (unbiased CKA)."),
}


def _representation_section(s: StudyInputs, out: Path) -> str:
    """Figures drawn from ``WORKDIR/representation`` (``jaxdiv represent``), when it has run."""
    src = s.representation
    if not (src / "represent.json").is_file():
        reason = s.absent.get("representation")
        return absent_section("Representations", reason) if reason else ""
    drawn = {p.name: p for p in draw_representation(src, out)}
    parts = ["<h2>Representations</h2><p>Tables: <code>representation/*.csv</code>.</p>"]
    for name, path in drawn.items():
        final = path.rename(out / f"representation_{name}")
        title, text = _REPRESENTATION_FIGURES.get(
            name, ("By category", "The statistic of every (base, other) pair, by category.")
        )
        parts.append(f"<h3>{_esc(title)}</h3><p>{_esc(text)}</p>" + _img(final, title))
    return "".join(parts)


def _human_section(s: StudyInputs, out: Path) -> str:
    """Error consistency between human subjects and models, from the tables ``jaxdiv report``
    wrote (``jaxdiv.report.human``); nothing when the store holds no human subject."""
    tables = human.read_tables(s.analysis)
    if tables is None:
        return ""
    groups, pairs = tables
    level = _fmt(float(groups["confidence"].iloc[0]) * 100, 0) if len(groups) else ""
    rows = [
        [
            _esc(human.GROUP_LABELS.get(r.group, r.group)),
            str(int(r.pairs)),
            _fmt(float(r.mean)) if r.pairs else "no pairs",
            _fmt(float(r.low)),
            _fmt(float(r.high)),
            str(int(r.resamples)),
        ]
        for r in groups.itertuples()
    ]
    return (
        "<h2>Human subjects and models: error consistency</h2><p>Cohen's kappa of the "
        "correctness of every pair (model-vs-human's error consistency; an abstention is an "
        "error), averaged over the pairs of subjects, of models, and of a subject and a model; "
        f"{level}% bootstrap intervals over resampled examples (the group means computed per "
        f"resample) on <code>{_esc(s.split)}</code>. Table: "
        f"<code>analysis/{human.GROUPS_FILE}</code>.</p>"
        + _img(
            human.group_consistency_figure(groups, pairs, out / "human_consistency.png"),
            "error consistency of subjects and models",
        )
        + _table(
            ["pairs of", "pairs", "mean kappa", "low", "high", "resamples"],
            rows,
            numeric=(1, 2, 3, 4, 5),
        )
    )


def _shift_section(s: StudyInputs, out: Path) -> str:
    """Every statistic on the clean and the corrupted splits by category, and accuracy and
    agreement on the line, from ``analysis/shift/`` (``jaxdiv.report.shift``); nothing when
    the analysis had no shift splits."""
    t = shift.load_shift(s.analysis)
    if t is None:
        return ""
    title = "Distribution shift"
    parts = [
        f"<h2>{title}</h2><p>Every member predicted on corrupted copies of "
        f"<code>{_esc(s.split)}</code> (CIFAR-10-C corruptions generated on device; "
        f"<code>{_esc(', '.join(x['split'] for x in t.splits))}</code>), analysed with the "
        "temperatures fitted on the clean calibration split. Tables: "
        "<code>analysis/shift/</code>.</p>"
    ]
    if t.categories is None or categories_absent(s):
        parts.append(
            f'<p class="absent">The by-category figures are absent because '
            f"{_esc(categories_absent(s) or 'the analysis found no base member')}.</p>"
        )
    else:
        parts.append(
            "<p>Means over each category's pairs with the base (accuracy: over its members), "
            "with 95% bootstrap intervals (examples resampled, and members where a category "
            "has several). Does methodology diversity help more under shift? Compare the "
            "categories' ensemble gain and conversion from the clean split to the shifted "
            "ones.</p>"
        )
        parts.append(_img(shift.conditions_figure(t, out / "shift_conditions.png"), title))
        by_severity = shift.severity_figure(t, out / "shift_severity.png")
        if by_severity is not None:
            parts.append(_img(by_severity, "statistics against severity"))
        for stat in ("accuracy", "error_inconsistency", "relative_ensemble_gain"):
            header, rows = shift.category_table(t, stat)
            parts.append(f"<h3>{_esc(shift.STATISTICS[stat])}</h3>")
            parts.append(
                _table(
                    header,
                    [[_category_cell(r[0]), *r[1:]] for r in rows],
                    numeric=range(1, len(header)),
                )
            )
    parts.append(
        "<h3>Accuracy and agreement on the line</h3><p>Shifted against clean accuracy (one "
        "point per member) and agreement, 1 - disagreement (one point per pair), on probit "
        "axes, with each shifted split's least-squares line in probit space (Miller et al. "
        "2021; Baek et al. 2022).</p>"
    )
    parts.append(_img(shift.on_the_line_figure(t, out / "shift_on_the_line.png"), "on the line"))
    parts.append(
        _table(
            ["shift", "accuracy slope", "intercept", "r", "agreement slope", "intercept", "r"],
            [[_esc(r[0]), *(_fmt(v, 3) for v in r[1:])] for r in shift.line_rows(t)],
            numeric=range(1, 7),
        )
    )
    return "".join(parts)


def render_page(s: StudyInputs, sections: Sequence[str]) -> str:
    counts = ", ".join(
        f"{s.categories.count(c)} {c}"
        for c in (*CATEGORIES, UNCATEGORISED)
        if s.categories.count(c)
    )
    base = f"base <b>{_esc(s.base)}</b>" if s.base is not None else "no base member"
    humans = int(s.members["human"].sum()) if "human" in s.members else 0
    counts += f", {humans} human subject(s)" if humans else ""
    meta = (
        f"{len(s.names)} members analysed ({base}; {counts}); "
        f"reported on <code>{_esc(s.split)}</code>"
        + (
            f", calibrated and selected on <code>{_esc(s.calibration_split)}</code>"
            if s.calibration_split
            else ", no calibration split"
        )
        + "."
    )
    title = _esc(s.title or f"jaxdiv study: {s.name}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f'<h1>{title}</h1><p class="meta">{meta}</p>'
        + "".join(sections)
        + f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_report(
    workdir: str | os.PathLike,
    pop_config=None,
    *,
    analysis: str | os.PathLike | None = None,
    representation: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    record: str | os.PathLike | None = None,
) -> Path:
    """Write ``WORKDIR/report/index.html`` and its figures; returns the page's path.

    ``pop_config`` (the population ConfigDict, optional) names the dataset (for class names;
    otherwise population.json's base member does). ``analysis``, ``representation`` and
    ``out`` replace ``WORKDIR/analysis``, ``WORKDIR/representation`` and ``WORKDIR/report``
    (the study writes all three into one staging folder and publishes them together);
    ``record`` replaces ``WORKDIR/population.json`` (``jaxdiv report`` writes its record of a
    store into its analysis folder).
    """
    s = load_inputs(
        workdir, pop_config, analysis=analysis, representation=representation, record=record
    )
    final = Path(out) if out is not None else s.workdir / "report"
    with staged_folder(final) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a report is for reading
        sections = [
            _members_section(s),
            _failures_section(s),
            _categories_section(s, tmp),
            _specialisation_section(s, tmp),
            _selection_section(s, tmp),
            _matrices_section(s, tmp),
            _representation_section(s, tmp),
            _human_section(s, tmp),
            _shift_section(s, tmp),
        ]
        (tmp / "index.html").write_text(render_page(s, sections), encoding="utf-8")
    return final / "index.html"
