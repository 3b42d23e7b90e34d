"""The README's and docs' numbers, written from the recorded results (``python -m latentshift readme``).

Every table the README and the pages of ``docs/`` quote from a run sits between two marker
comments, and every number quoted in their prose between two more; ``python -m latentshift
readme`` rewrites them from the records in ``results/`` (:mod:`latentshift.record.results`,
recorded study tables) in every file (:func:`sync_docs`; one file: :func:`sync`), ``--check``
only says which are stale, and a test fails when a file and ``results/`` disagree.

Tables (the opening marker, the table, ``<!-- /KIND-table -->``):

- ``<!-- results-table demo demo_oracle null -->`` — recorded runs side by side
  (:func:`results_table`);
- ``<!-- timings-table demo null -->`` — their wall time and peak memory per notebook;
- ``<!-- spread-table results/demo_seeds.csv results/demo_threads1.csv demo -->`` — the
  headline across seeds and thread counts beside one run's interval (:func:`spread_table`);
- ``<!-- sweep-table results/demo_sweep.csv -->`` — a recorded dose-response sweep;
- ``<!-- study-table results/X.csv -->``, ``transfer-table``, ``calls-table`` — recorded
  studies (:mod:`latentshift.report.study_report`);
- ``<!-- fidelity-table 2000 28000 -->`` — the simulator against the published M1 figures,
  measured afresh (``simulate_m1(2000, 28000, seed=0)``: deterministic, a few seconds);
- ``<!-- power-table results/case_control_power.csv -->`` — a recorded power study
  (:func:`latentshift.readings.power.power_markdown`);
- ``<!-- calibration-table results/case_control_power_calibration.csv -->`` — the recorded
  calibration of the pseudobulk gene-level p-values by donors per arm
  (:func:`latentshift.readings.gene_calibration.calibration_markdown`);
- ``<!-- pseudobulk-table case_control_sim_split_donor_split -->``, ``composition-table`` —
  recorded case-control runs' donor-level readings
  (:mod:`latentshift.report.donor_level_summary`);
- ``<!-- realcells-table PAIRED NULL SPLIT SYNTHETIC SYNTHETIC_NULL TRANSFER_SWEEP CALLS -->`` — the
  real cells' readings, synthetic against real, and the sentences made from them
  (:mod:`latentshift.report.realcells_summary`).

A number in prose: ``<!-- value SOURCE KEY FORMAT -->38.7%<!-- /value -->``. ``SOURCE`` is a
record's name (``demo`` → ``results/demo.json``, ``KEY`` a dotted path such as
``metrics.classifier.accuracy``), a recorded table's row (``results/X.csv:point=hvg1000``,
``KEY`` a column; quote a name with spaces: ``"Huntington disease_recovery"``) or a seed spread (``spread:results/demo_seeds.csv``, ``KEY`` one of
:func:`latentshift.record.results.seed_spread`'s). A recorded benchmark is quoted by its path
(``results/bench/ondisk.json``, ``KEY`` a dotted path of the JSON ``make bench`` wrote).
``FORMAT`` is one of :data:`FORMATS`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from latentshift.data import artifacts
from latentshift.errors import LatentshiftError
from latentshift.record import results
from latentshift.report import donor_level_summary, realcells_summary, study_report
from latentshift.report.findings import pct

#: A generated table: its kind, its arguments, its body and the closing marker.
BLOCK = re.compile(
    r"(<!-- (?P<kind>[a-z]+)-table (?P<args>[^>]*?) -->\n)(?P<body>.*?)(<!-- /(?P=kind)-table -->)",
    re.DOTALL,
)
#: A generated number in prose.
VALUE = re.compile(r"(<!-- value (?P<args>[^>]*?) -->)(?P<body>[^<\n]*)(<!-- /value -->)")


def _num(x: Any, digits: int) -> str:
    return "–" if x is None or pd.isna(x) else f"{float(x):.{digits}f}"


def smallest_adjusted_p(etest: Any) -> float | None:
    """The smallest Benjamini–Hochberg-adjusted p of an E-test section (every ``pvalue_adj``
    under it: conditions × cell types, pooled included)."""
    found: list[float] = []

    def walk(v: Any) -> None:
        if isinstance(v, Mapping):
            for k, x in v.items():
                if k == "pvalue_adj" and x is not None:
                    found.append(float(x))
                else:
                    walk(x)

    walk(etest)
    return min(found) if found else None


#: How a quoted number is written (``min_padj``: the smallest adjusted p of an E-test section).
FORMATS: dict[str, Callable[[Any], str]] = {
    "pct": lambda x: "–" if x is None or pd.isna(x) else pct(float(x)),
    "pct2": lambda x: "–" if x is None or pd.isna(x) else pct(float(x), 2),
    "points": lambda x: _num(None if x is None else 100 * float(x), 1),
    "f3": lambda x: _num(x, 3),
    "p": lambda x: (
        "–" if x is None or pd.isna(x) else f"{float(x):.2g}" if x < 0.001 else f"{x:.3f}"
    ),
    "f2": lambda x: _num(x, 2),
    "f1": lambda x: _num(x, 1),
    "int": lambda x: "–" if x is None or pd.isna(x) else f"{int(round(float(x))):,}",
    "min": lambda x: "–" if x is None or pd.isna(x) else f"{float(x):.1f} min",
    "sec_min": lambda x: "–" if x is None or pd.isna(x) else f"{float(x) / 60:.1f} min",
    "commit": lambda x: str(x or "unknown")[:7],
    "min_padj": lambda x: _num(smallest_adjusted_p(x), 3),
    "met": lambda x: "–" if x is None else ("met" if bool(x) else "not met"),
    "text": str,
}


class ReadmeError(LatentshiftError):
    """A README marker names a record, key or format that does not exist."""


# --- tables of recorded runs ------------------------------------------------------------------


def _is_null(rec: Mapping[str, Any]) -> bool:
    entries = (rec.get("metrics", {}).get("perturb") or {}).get("entries") or {}
    return bool(entries) and all(float(e.get("fold_change", 0)) == 1.0 for e in entries.values())


def _header(rec: Mapping[str, Any]) -> str:
    name = f"`{rec['profile']}`"
    choice = (rec["metrics"].get("ldvae") or {}).get("gene_choice") or {}
    if choice.get("oracle"):
        return name + " (ORACLE: knows which genes were shifted)"
    if _is_null(rec):
        return name + " (null control: every fold change 1.0)"
    return name + (" (label-blind)" if choice else "")


def _commit(rec: Mapping[str, Any]) -> str:
    prov = rec.get("provenance") or {}
    text = FORMATS["commit"](prov.get("git_commit"))
    return text + (" (uncommitted changes)" if prov.get("git_dirty") else "")


def _epoch_range(clf: Mapping[str, Any]) -> str:
    curve = [e["accuracy"] for e in clf.get("accuracy_by_epoch") or [] if "accuracy" in e]
    if not curve:
        return "–"
    epochs = [e["epoch"] for e in clf["accuracy_by_epoch"]]
    return f"{pct(min(curve))}–{pct(max(curve))} (epochs {epochs[0]}–{epochs[-1]})"


def _top_auc(cell_types: Mapping[str, Any]) -> str:
    """Per condition, the cell type with the largest mean AUC on the LDVAE latent
    (``cell_types.auc.LDVAE.<condition>.<cell type>.auc_mean``)."""
    out = []
    for cond, types in sorted(((cell_types.get("auc") or {}).get("LDVAE") or {}).items()):
        scored = [
            (v["auc_mean"], t)
            for t, v in (types or {}).items()
            if v and v.get("auc_mean") is not None
        ]
        if scored:
            auc, name = max(scored)
            out.append(f"{cond}: {name} {auc:.3f}")
    return "; ".join(out) or "–"


def _machine(rec: Mapping[str, Any]) -> str:
    info = (rec.get("provenance") or {}).get("machine")
    if not info:
        return "not recorded"
    from latentshift.report.pages import machine_text

    return machine_text(info)


def results_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Recorded runs side by side: the headline with its interval and its controls, the
    baselines, what the LDVAE read and recovered, and where and when each run was made."""

    def row(label: str, get: Callable[[Mapping[str, Any]], str]) -> list[str]:
        return [label, *(get(r) for r in records)]

    def m(rec: Mapping[str, Any], section: str) -> Mapping[str, Any]:
        return rec["metrics"].get(section) or {}

    def base(key: str) -> Callable[[Mapping[str, Any]], str]:
        return lambda r: FORMATS["pct"](m(r, "classifier").get("baseline_accuracy", {}).get(key))

    def sets(r: Mapping[str, Any]) -> Mapping[str, Any]:
        return (m(r, "ldvae").get("gene_choice") or {}).get("set_genes") or {}

    def recovery(r: Mapping[str, Any]) -> str:
        load = m(r, "loadings")
        names = [
            k for k, v in load.items() if isinstance(v, Mapping) and "auroc_ldvae_projected" in v
        ]
        return " / ".join(f"{k} {load[k]['auroc_ldvae_projected']:.3f}" for k in names) or "–"

    def etest(r: Mapping[str, Any]) -> str:
        ct = m(r, "cell_types")
        p = smallest_adjusted_p((ct.get("etest") or {}).get("LDVAE"))
        floor = ct.get("e_min_pvalue")
        return (
            "–"
            if p is None
            else f"{p:.4f}" + ("" if floor is None else f" (smallest possible {floor:.4f})")
        )

    def ari(r: Mapping[str, Any]) -> str:
        emb = m(r, "embedding")
        return " / ".join(_num((emb.get(k) or {}).get("leiden_ari"), 3) for k in ("ldvae", "pca"))

    def epochs(r: Mapping[str, Any]) -> str:
        ld = m(r, "ldvae")
        how = "early stopping" if ld.get("early_stopped") else "the ceiling"
        return f"{ld.get('epochs_run')} ({how}; ceiling {ld.get('max_epochs')})"

    def peak(r: Mapping[str, Any]) -> str:
        nbs = (r.get("timings") or {}).get("notebooks") or {}
        return f"{max((v.get('peak_memory_gb') or 0 for v in nbs.values()), default=0):.1f} GB"

    def clf_interval(r: Mapping[str, Any]) -> str:
        c = m(r, "classifier")
        return f"{pct(c.get('accuracy'))} [{pct(c.get('accuracy_low'))}, {pct(c.get('accuracy_high'))}]"

    rows = [
        row("network on the LDVAE latent [95% CI]", clf_interval),
        row(
            "label permutation",
            lambda r: FORMATS["pct"](m(r, "classifier").get("permutation_accuracy")),
        ),
        row("chance (uniform)", lambda r: FORMATS["pct"](m(r, "classifier").get("chance_uniform"))),
        row("same network on PCA", base("mlp_pca")),
        row("logistic regression on the latent", base("logreg_ldvae")),
        row("logistic regression on the disease genes", base("logreg_disease_genes")),
        row(
            "network on the latent kept during training", lambda r: _epoch_range(m(r, "classifier"))
        ),
        row(
            "disease-set genes in the model (of those shifted)",
            lambda r: (
                " / ".join(f"{k} {v['in_model']} of {v['shifted']}" for k, v in sets(r).items())
                or "–"
            ),
        ),
        row("genes the LDVAE reads", lambda r: FORMATS["int"](m(r, "ldvae").get("n_genes_used"))),
        row("recovery of the sets from the loadings (AUROC)", recovery),
        row("top cell type by AUC on the latent", lambda r: _top_auc(m(r, "cell_types"))),
        row("E-test on the latent: smallest adjusted p (conditions × cell types)", etest),
        row("Leiden vs cell types (ARI), LDVAE / PCA", ari),
        row("LDVAE stopped at epoch", epochs),
        row(
            "wall time end to end",
            lambda r: FORMATS["min"]((r.get("timings") or {}).get("wall_minutes")),
        ),
        row("peak memory (largest notebook)", peak),
        row("commit", _commit),
        row("finished", lambda r: str((r.get("provenance") or {}).get("finished") or "–")),
        row("machine", _machine),
    ]
    return study_report.markdown_from_rows(["measure", *(_header(r) for r in records)], rows)


def timings_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Wall time and peak memory of every notebook of recorded runs, one row per run, with the
    commit it ran and the day it finished."""
    notebooks = sorted(
        {nb for r in records for nb in ((r.get("timings") or {}).get("notebooks") or {})}
    )
    head = [
        "profile",
        "end to end",
        *[f"{nb[:2]}: min / peak GB" for nb in notebooks],
        "commit",
        "date",
    ]
    rows = []
    for r in records:
        t = r.get("timings") or {}
        cells = [f"`{r['profile']}`", FORMATS["min"](t.get("wall_minutes"))]
        for nb in notebooks:
            v = (t.get("notebooks") or {}).get(nb) or {}
            sec = v.get("seconds")
            cells.append(
                "–" if sec is None else f"{sec / 60:.1f} / {v.get('peak_memory_gb', 0):.1f}"
            )
        finished = str((r.get("provenance") or {}).get("finished") or "")
        rows.append([*cells, _commit(r), finished[:10] or "–"])
    return study_report.markdown_from_rows(head, rows)


# --- spread and sweep -------------------------------------------------------------------------


def spread_table(
    seeds: pd.DataFrame, threads: pd.DataFrame | None, record: Mapping[str, Any] | None
) -> str:
    """The headline across seeds (and thread counts) beside one run's interval.

    One row per run: its seed, torch threads, network accuracy on the latent with its 95%
    interval, label permutation, PCA network and epochs; then the spread over the seeds
    (:func:`latentshift.record.results.seed_spread`) and, when ``record`` is given, whether the
    recorded run's headline is reproduced by the study's run with the same seed and threads.
    """
    frames = [seeds] + ([threads] if threads is not None else [])
    head = [
        "run",
        "seed",
        "torch threads",
        "network on the latent [95% CI]",
        "label permutation",
        "PCA network",
        "epochs",
        "commit",
    ]
    rows = []
    for frame in frames:
        for _, r in frame.dropna(subset=["accuracy"]).iterrows():
            rows.append(
                [
                    f"`{r['point']}`",
                    FORMATS["int"](r.get("seed")),
                    FORMATS["int"](r.get("torch_threads")),
                    f"{pct(r['accuracy'])} [{pct(r['accuracy_low'])}, {pct(r['accuracy_high'])}]",
                    FORMATS["pct"](r["permutation_accuracy"]),
                    FORMATS["pct"](r["pca_accuracy"]),
                    FORMATS["int"](r["epochs"]),
                    FORMATS["commit"](r.get("git_commit")),
                ]
            )
    s = results.seed_spread(seeds)
    summary = (
        f"**spread over {s['n']} seeds**: mean {pct(s['mean'])}, sd {FORMATS['points'](s['sd'])} points, "
        f"range {pct(s['min'])}–{pct(s['max'])}; one run's 95% interval: ± {FORMATS['points'](s['half_width'])} points"
    )
    rows.append([summary, "", "", "", "", "", "", ""])
    if threads is not None:
        pairs = results.thread_pairs(seeds, threads)
        for seed, (a, b, ta, tb) in pairs.items():
            rows.append(
                [
                    f"seed {seed}: {tb} vs {ta} threads",
                    "",
                    "",
                    f"{pct(b)} vs {pct(a)}"
                    + (" (identical)" if a == b else f" ({FORMATS['points'](b - a)} points)"),
                    "",
                    "",
                    "",
                    "",
                ]
            )
    if record is not None:
        same = results.reproduces(record, seeds)
        rows.append(
            [
                f"recorded `{record['profile']}` run (seed {record['params'].get('seed')})",
                "",
                "",
                pct(record["metrics"]["classifier"]["accuracy"])
                + (
                    " — the study's run with the same seed and threads gives the same number"
                    if same
                    else " — differs from the study's run with the same seed"
                ),
                "",
                "",
                "",
                _commit(record),
            ]
        )
    return study_report.markdown_from_rows(head, rows)


def fidelity_table(n_cells: int, n_genes: int) -> str:
    """The 01 fidelity table of ``simulate_m1(n_cells, n_genes, seed=0)``: simulated beside
    published, with the source of each published figure."""
    from latentshift.data import fidelity, simulate

    cells = simulate.simulate_m1(n_cells, n_genes, seed=0)
    table = fidelity.fidelity_table(fidelity.fidelity_metrics(cells), cells.n_vars)

    def show(x: Any) -> str:
        if x is None or pd.isna(x):
            return "–"
        x = float(x)
        return f"{x:,.0f}" if x >= 100 else f"{x:.3f}"

    rows = [
        [measure, show(r["this data"]), show(r["published"]), str(r["source"])]
        for measure, r in table.iterrows()
    ]
    return study_report.markdown_from_rows(["measure", "simulated", "published", "source"], rows)


def sweep_table(table: pd.DataFrame) -> str:
    """A recorded dose-response sweep: one column per fold-change level."""
    levels = [f"{float(v):g}" for v in table["level"]]

    def line(label: str, col: str, ci: str | None = None) -> list[str]:
        out = [label]
        for _, r in table.iterrows():
            text = FORMATS["pct"](r[col])
            if ci and not pd.isna(r.get(f"{ci}_low")):
                text += f" [{pct(r[f'{ci}_low'])}, {pct(r[f'{ci}_high'])}]"
            out.append(text)
        return out

    rows = [
        line("network on the LDVAE latent [95% CI]", "ldvae_accuracy", "ldvae"),
        line("same network on PCA [95% CI]", "pca_accuracy", "pca"),
        line("logistic regression on the disease genes", "disease_genes_accuracy"),
        line("label permutation", "permutation_accuracy"),
    ]
    for prefix, label in (("ldvae", "LDVAE latent"), ("pca", "PCA")):
        rows.append(
            [f"{label}: 95% interval above chance"]
            + ["yes" if r[f"{prefix}_low"] > r["chance"] else "no" for _, r in table.iterrows()]
        )
    if "git_commit" in table:
        rows.append(["commit", *(FORMATS["commit"](c) for c in table["git_commit"])])
    return study_report.markdown_from_rows(["fold-change level", *levels], rows)


# --- the README -------------------------------------------------------------------------------


def _csv(root: Path, name: str) -> pd.DataFrame:
    path = root / name
    if not path.is_file():
        raise ReadmeError(
            f"the README quotes the recorded table {name}, which does not exist. Record it (python -m "
            "latentshift results <its run folder>) or remove the table's markers."
        )
    return pd.read_csv(path)


def render_table(kind: str, args: Sequence[str], root: Path) -> str:
    """The body of one generated table (without its markers)."""
    if kind in study_report.TABLES:
        return study_report.TABLES[kind](_csv(root, args[0]))
    if kind == "results":
        return results_table([results.load(a, root) for a in args])
    if kind == "timings":
        return timings_table([results.load(a, root) for a in args])
    if kind == "spread":
        csvs = [a for a in args if a.endswith(".csv")]
        names = [a for a in args if not a.endswith(".csv")]
        return spread_table(
            _csv(root, csvs[0]),
            _csv(root, csvs[1]) if len(csvs) > 1 else None,
            results.load(names[0], root) if names else None,
        )
    if kind == "sweep":
        return sweep_table(_csv(root, args[0]))
    if kind == "fidelity":
        return fidelity_table(int(args[0]), int(args[1]))
    if kind == "power":
        from latentshift.readings.power import power_markdown

        return power_markdown(_csv(root, args[0]))
    if kind == "calibration":
        from latentshift.readings.gene_calibration import calibration_markdown

        return calibration_markdown(_csv(root, args[0]))
    if kind == "pseudobulk":
        recs = [results.load(a, root) for a in args]
        return (
            donor_level_summary.pseudobulk_markdown(recs)
            + "\n\n"
            + donor_level_summary.pseudobulk_sentences(recs)
        )
    if kind == "composition":
        recs = [results.load(a, root) for a in args]
        return (
            donor_level_summary.composition_markdown(recs)
            + "\n\n"
            + donor_level_summary.composition_sentences(recs)
        )
    if kind == "realcells":
        return realcells_summary.render(
            args, lambda name: results.load(name, root), lambda name: _csv(root, name)
        )
    raise ReadmeError(
        f"the README has a '{kind}-table' marker; known kinds: results, timings, spread, sweep, fidelity, realcells, power, calibration, pseudobulk, composition, {', '.join(study_report.TABLES)}."
    )


def render_value(args: Sequence[str], root: Path) -> str:
    """One quoted number: ``SOURCE KEY [FORMAT]`` (see the module docstring)."""
    if len(args) not in (2, 3):
        raise ReadmeError(f"a value marker needs 'SOURCE KEY [FORMAT]', got {' '.join(args)!r}.")
    source, key, fmt = args[0], args[1], args[2] if len(args) == 3 else "text"
    if fmt not in FORMATS:
        raise ReadmeError(
            f"unknown value format {fmt!r} in the README; use one of {', '.join(FORMATS)}."
        )
    if source.startswith("spread:"):
        spread = results.seed_spread(_csv(root, source.removeprefix("spread:")))
        if key not in spread:
            raise ReadmeError(f"a seed spread has no '{key}'; it has {', '.join(spread)}.")
        value: Any = spread[key]
    elif ":" in source and ".csv" in source:
        name, _, where = source.partition(":")
        column, _, wanted = where.partition("=")
        table = _csv(root, name)
        hit = table[table[column].astype(str) == wanted] if column in table else table.iloc[:0]
        if len(hit) != 1 or key not in table:
            raise ReadmeError(
                f"the README quotes {source} {key}: no single row {where!r} with column {key!r} in {name}."
            )
        value = hit.iloc[0][key]
    elif source.endswith(".json"):  # a recorded benchmark (results/bench/<name>.json)
        path = Path(root) / source
        if not path.is_file():
            raise ReadmeError(
                f"the README quotes {source}, which does not exist: run the benchmark "
                f"(make bench ARGS=...) and copy its reports/bench/ JSON to {source}."
            )
        value = results.lookup(json.loads(path.read_text()), key)
    else:
        value = results.lookup(results.load(source, root), key)
    return FORMATS[fmt](value)


def sync(readme: Path, root: Path, check: bool = False) -> list[str]:
    """Regenerate every table and quoted number of the README from the records.

    Parameters
    ----------
    readme
        The README file.
    root
        The project root (the paths in the markers are relative to it).
    check
        Only compare: the file is left as it is.

    Returns
    -------
    list of str
        The markers whose text was out of date (rewritten unless ``check``).
    """
    text = readme.read_text()
    stale: list[str] = []

    def fill_table(m: re.Match) -> str:
        body = render_table(m["kind"], shlex.split(m["args"]), root) + "\n"
        if body != m["body"]:
            stale.append(f"{m['kind']}-table {m['args']}")
        return m.group(1) + body + m.group(5)

    def fill_value(m: re.Match) -> str:
        body = render_value(shlex.split(m["args"]), root)
        if body != m["body"]:
            stale.append(f"value {m['args']} ({m['body']!r} → {body!r})")
        return m.group(1) + body + m.group(4)

    new = VALUE.sub(fill_value, BLOCK.sub(fill_table, text))
    if stale and not check:
        artifacts.write_text(new, readme)
    return stale


def sync_docs(root: Path, check: bool = False) -> list[str]:
    """Regenerate the tables and quoted numbers of the README and of every page in ``docs/``.

    Runs :func:`sync` over ``README.md`` and then over every ``docs/*.md`` in sorted order.

    Parameters
    ----------
    root
        The project root: it holds ``README.md`` and ``docs/``, and the paths in the markers
        are relative to it.
    check
        Only compare: every file is left as it is.

    Returns
    -------
    list of str
        The markers whose text was out of date (rewritten unless ``check``), each prefixed with
        its file's path relative to ``root``, e.g. ``"docs/results.md: results-table demo null"``.
    """
    root = Path(root)
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    stale: list[str] = []
    for path in files:
        if path.is_file():
            name = path.relative_to(root).as_posix()
            stale += [f"{name}: {entry}" for entry in sync(path, root, check=check)]
    return stale
