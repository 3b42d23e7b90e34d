"""The study page: ``reports/<profile>/<study>.html`` in the report's look (Findings first,
the figure, the table of points, provenance). Its numbers come from ``study.csv``
(:func:`latentshift.run.study.collect`)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from latentshift.data import artifacts

#: Columns of the page's table: (column of study.csv, header).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pca_accuracy", "PCA network"),
    ("disease_genes_accuracy", "disease genes (logreg)"),
    ("permutation_accuracy", "label permutation"),
    ("null_accuracy", "null run"),
    ("epochs", "epochs"),
    ("n_genes_used", "genes"),
)


def markdown_from_rows(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: the header, its rule, one line per row.

    Parameters
    ----------
    head
        The column names.
    rows
        The rows, each a list of cells already formatted as text.
    """
    lines = [head, *rows]
    out = ["| " + " | ".join(cells) + " |" for cells in lines]
    out.insert(1, "|" + " --- |" * len(head))
    return "\n".join(out)


def markdown_table(table: pd.DataFrame) -> str:
    """A study's ``study.csv`` as the Markdown table the README quotes (one row per point that
    ran; a point's null control and its oracle status named in the row)."""
    from latentshift.report.findings import pct

    def num(v: Any, digits: int = 3) -> str:
        return "–" if v is None or pd.isna(v) else f"{float(v):.{digits}f}"

    sets = [c[: -len("_genes_in_model")] for c in table.columns if c.endswith("_genes_in_model")]
    donors = "donor_accuracy" in table and table["donor_accuracy"].notna().any()
    head = [
        "point",
        "network on the latent [95% CI]",
        *(["per donor [95% CI]", "donor permutation, per donor"] if donors else []),
        "label permutation",
        "null run",
        "PCA network",
        "logreg on the latent",
        "logreg on the disease genes",
        *[f"{s} genes in model" for s in sets],
        *[f"{s} recovery" for s in sets],
        "epochs",
        "wall time",
    ]
    rows = []
    for _, r in table.dropna(subset=["accuracy"]).iterrows():
        name = f"`{r['point']}`" + (" (ORACLE)" if str(r.get("oracle")).lower() == "true" else "")
        cells = [
            name,
            f"{pct(r['accuracy'])} [{pct(r['accuracy_low'])}, {pct(r['accuracy_high'])}]",
            *(
                [
                    f"{pct(r['donor_accuracy'])} [{pct(r['donor_accuracy_low'])}, "
                    f"{pct(r['donor_accuracy_high'])}]",
                    pct(r["permutation_donor_accuracy"]),
                ]
                if donors
                else []
            ),
            pct(r["permutation_accuracy"]),
            "–" if pd.isna(r.get("null_accuracy")) else pct(r["null_accuracy"]),
            pct(r["pca_accuracy"]),
            pct(r["logreg_latent_accuracy"]),
            pct(r["disease_genes_accuracy"]),
            *[num(r.get(f"{s}_genes_in_model"), 0) for s in sets],
            *[num(r.get(f"{s}_recovery")) for s in sets],
            num(r["epochs"], 0),
            "–" if pd.isna(r["wall_seconds"]) else f"{r['wall_seconds'] / 60:.1f} min",
        ]
        rows.append(cells)
    return markdown_from_rows(head, rows)


def transfer_table(table: pd.DataFrame) -> str:
    """The synthetic-versus-real call rates of a case–control study as a Markdown table.

    One row per point that ran the transfer test, disease condition and representation: the
    share of held-out nuclei the synthetic-shift classifier calls disease, for disease and
    control nuclei, in the cell types the entry targets and in the others (columns
    ``<condition>_transfer_<rep>_<where>_<side>`` of ``study.csv``).
    """
    from latentshift.report.findings import pct

    marker = "_transfer_"
    conditions = sorted(
        {c.split(marker)[0] for c in table.columns if marker in c and c.endswith("_disease")}
    )
    head = [
        "point",
        "condition",
        "representation",
        "targeted types: disease nuclei",
        "targeted types: control nuclei",
        "other types: disease nuclei",
        "other types: control nuclei",
    ]
    rows = []
    names = {"ldvae": "LDVAE latent", "pca": "PCA baseline"}
    for _, r in table.iterrows():
        for cond in conditions:
            for rep, name in names.items():
                key = f"{cond}{marker}{rep}_"
                if pd.isna(r.get(key + "targeted_disease", float("nan"))):
                    continue
                cells = [f"`{r['point']}`", cond, name] + [
                    "–" if pd.isna(r.get(key + k)) else pct(r[key + k])
                    for k in (
                        "targeted_disease",
                        "targeted_control",
                        "untargeted_disease",
                        "untargeted_control",
                    )
                ]
                rows.append(cells)
    return markdown_from_rows(head, rows)


def transfer_calls_table(calls: pd.DataFrame) -> str:
    """A run's ``transfer_calls.csv`` (call rates per cell type) as a Markdown table.

    One row per disease condition and cell type, the targeted types first: nuclei on each
    side, and per representation the share of disease and of control nuclei called disease
    with the one-sided donor-level p-value (Benjamini–Hochberg-adjusted in brackets). A sweep's
    calls (:func:`latentshift.run.sweep.collect_calls`) carry a ``level`` column: one block of
    rows per fold change, led by it.
    """
    from latentshift.report.findings import pct

    by_level = "level" in calls
    head = ["fold change f"] * by_level + [
        "condition",
        "cell type",
        "disease / control nuclei (donors)",
        "LDVAE: disease",
        "LDVAE: control",
        "LDVAE: donor p (adjusted)",
        "PCA: disease",
        "PCA: control",
        "PCA: donor p (adjusted)",
    ]
    rows = []
    for _, r in calls.iterrows():
        targeted = str(r["targeted"]).lower() == "true"
        cells = ([f"{float(r['level']):g}"] if by_level else []) + [
            str(r["condition"]),
            f"**{r['cell_type']}** (targeted)" if targeted else str(r["cell_type"]),
            f"{int(r['n_disease'])} / {int(r['n_control'])} "
            f"({int(r['donors_disease'])} / {int(r['donors_control'])})",
        ]
        for rep in ("ldvae", "pca"):
            p, adj = r[f"{rep}_donor_p"], r.get(f"{rep}_donor_p_adj", float("nan"))
            cells += [
                pct(r[f"{rep}_disease"]),
                pct(r[f"{rep}_control"]),
                "–"
                if pd.isna(p)
                else f"{float(p):.3f}" + ("" if pd.isna(adj) else f" ({adj:.3f})"),
            ]
        rows.append(cells)
    return markdown_from_rows(head, rows)


#: The recorded-study tables the README quotes (:mod:`latentshift.record.readme`):
#: ``<!-- study-table results/NAME.csv -->`` (:func:`markdown_table`),
#: ``<!-- transfer-table results/NAME.csv -->`` (:func:`transfer_table`) and
#: ``<!-- calls-table results/NAME.csv -->`` (a run's ``transfer_calls.csv``,
#: :func:`transfer_calls_table`).
TABLES = {"study": markdown_table, "transfer": transfer_table, "calls": transfer_calls_table}


def detected(row: Any) -> bool:
    """A point detects the shift when its interval's lower bound lies above chance, its label
    permutation and (when run) its null's accuracy."""
    refs = [row.get("chance"), row.get("permutation_accuracy"), row.get("null_accuracy")]
    refs = [float(r) for r in refs if r is not None and not pd.isna(r)]
    low = row.get("accuracy_low")
    return bool(refs) and low is not None and not pd.isna(low) and float(low) > max(refs)


def study_findings(table: pd.DataFrame, study: str, simulated: bool) -> Any:
    """The Findings box of a study: which points detect the shift, the best label-blind point
    and, named as such, the oracle points."""
    from latentshift.report.findings import Findings, interval, pct

    ran = table.dropna(subset=["accuracy"])
    if ran.empty:
        return Findings(study, "No point has produced its numbers yet.", [], [], "", simulated)
    oracle = ran["oracle"].astype(str).str.lower() == "true" if "oracle" in ran else False
    blind = ran[~oracle] if isinstance(oracle, pd.Series) else ran
    hits = [r["point"] for _, r in ran.iterrows() if detected(r)]
    items = [
        f"Points that detect the shift (95% interval above chance, label permutation and the "
        f"null run): {', '.join(hits) if hits else 'none'} of {len(ran)}."
    ]
    headline = "No point's network on the LDVAE latent rises above its controls."
    if len(blind):
        best = blind.loc[blind["accuracy"].astype(float).idxmax()]
        headline = (
            f"Best label-blind point: {best['point']}, "
            f"{pct(best['accuracy'])} accuracy ({'above' if detected(best) else 'not above'} "
            "its controls)."
        )
        items.append(
            f"Best label-blind point **{best['point']}**: "
            f"{interval(best['accuracy'], best['accuracy_low'], best['accuracy_high'])}; label "
            f"permutation {pct(best['permutation_accuracy'])}, null run "
            f"{pct(best.get('null_accuracy'))}, PCA network {pct(best['pca_accuracy'])}, "
            f"disease-gene regression {pct(best['disease_genes_accuracy'])}."
        )
    if isinstance(oracle, pd.Series) and oracle.any():
        for _, r in ran[oracle].iterrows():
            items.append(
                f"ORACLE (knows which genes were shifted) **{r['point']}**: "
                f"{interval(r['accuracy'], r['accuracy_low'], r['accuracy_high'])} — not a "
                "result an analyst of a real disease could get."
            )
    return Findings(study, headline, items, [], "", simulated)


def render_study(
    table: pd.DataFrame,
    profile: str,
    study: str,
    simulated: bool,
    target: Path,
    status: Mapping[str, int],
    prov: Mapping[str, Any] | None = None,
    figure: Path | None = None,
) -> Path:
    """Write the study page (and its figure to ``figure``)."""
    from latentshift.figures import classifier_plots
    from latentshift.report import pages as report
    from latentshift.report.findings import SIMULATED_NOTE, findings_html, pct

    label = " (simulated data)" if simulated else ""
    chance = float(table["chance"].dropna().median()) if table["chance"].notna().any() else 1 / 3
    fig = classifier_plots.study_points(
        table, chance, title=f"study {study}, profile {profile}{label}"
    )
    src = report.embedded_figure(fig, figure)

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "–"
        return pct(v) if isinstance(v, float) and v <= 1 else html.escape(str(v))

    genes_cols = [c for c in table.columns if c.endswith("_genes_in_model")]
    rec_cols = [c for c in table.columns if c.endswith("_recovery")]
    head = (
        "<tr><th>point</th><th>network on the LDVAE latent [95%]</th>"
        + "".join(f"<th>{html.escape(h)}</th>" for _, h in TABLE_COLUMNS)
        + "".join(f"<th>{html.escape(c.split('_')[0])} genes in model</th>" for c in genes_cols)
        + "".join(f"<th>{html.escape(c.split('_')[0])} recovery AUROC</th>" for c in rec_cols)
        + "<th>wall time</th><th>peak memory</th><th>run</th></tr>"
    )
    rows = []
    for _, r in table.iterrows():
        name = str(r["point"])
        ok = status.get(name, 0) == 0 and status.get(name + "__null", 0) == 0
        oracle = " (ORACLE)" if str(r.get("oracle")).lower() == "true" else ""
        link = (
            f'<a href="{html.escape(study)}/{html.escape(name)}/index.html">{html.escape(name)}</a>'
        )
        acc = (
            "–"
            if pd.isna(r["accuracy"])
            else f"{pct(r['accuracy'])} [{pct(r['accuracy_low'])}, {pct(r['accuracy_high'])}]"
        )
        cells = [f"{link}{oracle}", acc]
        for c, _ in TABLE_COLUMNS:
            v = r[c]
            cells.append(cell(int(v) if c in ("epochs", "n_genes_used") and not pd.isna(v) else v))
        cells += [cell(None if pd.isna(r[c]) else int(r[c])) for c in genes_cols]
        cells += ["–" if pd.isna(r[c]) else f"{r[c]:.3f}" for c in rec_cols]
        wall, peak = r["wall_seconds"], r["peak_memory_gb"]
        cells.append("–" if pd.isna(wall) else f"{wall / 60:.1f} min")
        cells.append("–" if pd.isna(peak) else f"{peak:.1f} GB")
        cells.append("ok" if ok else "FAILED")
        row_class = "ok" if ok else "failed"
        rows.append(f"<tr class='{row_class}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    changes = (prov or {}).get("points", {})
    design = "".join(
        f"<li><code>{html.escape(n)}</code>: {html.escape(', '.join(f'{k} = {v}' for k, v in c.items()) or 'the profile as it is')}</li>"
        for n, c in changes.items()
    )
    body = f"""
<h1>Study <code>{html.escape(study)}</code> — profile <code>{html.escape(profile)}</code></h1>
{findings_html(study_findings(table, study, simulated))}
<p>Each point is the profile with the keys below changed; notebooks 02–06 run once per point
from the same cells (01_data once){", and once more with every fold change 1.0 (the point's null)" if (prov or {}).get("nulls") else ""}.
Accuracy is the test accuracy of the network on the LDVAE latent with its 95% bootstrap interval;
a point detects the shift when that interval lies above chance, the label permutation and its
null run. A point marked ORACLE forced the disease-set genes into the model: it knows where
the shift is.</p>
<img alt="accuracy per study point" src="{src}">
<table class="ls-table ls-wide">{head}{"".join(rows)}</table>
<h2>Points</h2><ul>{design}</ul>
{f'<p class="ls-simulated">{html.escape(SIMULATED_NOTE)}</p>' if simulated else ""}
<h2>Provenance</h2>
<pre class="ls-pre">{html.escape(yaml.safe_dump(dict(prov or {}), sort_keys=False))}</pre>
"""
    nav = report.nav_html(study, [])
    return artifacts.write_text(
        report.page(f"latentshift — {study} — {profile}", body, nav), target
    )
