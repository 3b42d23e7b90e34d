"""The report's index page: the run's answer first, its headline numbers each beside its
control, then the steps and the provenance.

:func:`render_index` writes ``reports/<profile>/index.html`` in the look of the step pages
(:mod:`latentshift.report.pages`): the run's Findings (:func:`run_findings`), thumbnails of the
key figures (:data:`KEY_FIGURES`), the headline numbers (:func:`headline_rows`, each labelled in
words: :func:`baseline_label`), the notebooks with their time and memory, and the provenance.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from latentshift.data import artifacts
from latentshift.report.findings import Findings, findings_html, gene_choice_text, interval, pct
from latentshift.report.pages import figure_thumbnail, nav_html, page

#: The figures the index shows as thumbnails: file stem in ``runs/<profile>/figures`` →
#: (caption, the page that draws it).
KEY_FIGURES: dict[str, tuple[str, str]] = {
    "umap": ("UMAP of the LDVAE latent by cell type and by condition", "04_latent_viz"),
    "confusion": ("Confusion matrix of the classifier", "05_classifier"),
    "accuracy_by_epoch": (
        "When the shift is encoded: accuracy against training epoch",
        "05_classifier",
    ),
    "celltype_auc": ("Which cell types carry the shift (per-cell-type AUC)", "05_classifier"),
    "recovery": ("Gene-set recovery from the loadings", "06_loadings"),
    "dose_response": ("Dose response: accuracy against fold change", "sweep"),
}


# --- the run's Findings ---------------------------------------------------------------------


def _num(x: float | None) -> str:
    """A number with 2 decimals, or "n/a" where there is none (no shift at fold change 1)."""
    return "n/a" if x is None or x != x else f"{x:.2f}"


def run_findings(
    metrics: Mapping[str, Any],
    null_metrics: Mapping[str, Any] | None,
    simulated: bool,
    oracle_metrics: Mapping[str, Any] | None = None,
) -> Findings:
    """The run's answer for the index page, from ``metrics.json`` alone.

    Parameters
    ----------
    metrics
        The run's ``metrics.json``.
    null_metrics
        The null-perturbation run's ``metrics.json`` (profile ``null``), when it exists.
    simulated
        Whether the data are simulated.
    oracle_metrics
        The oracle run's ``metrics.json`` (``report.oracle_profile``), when it exists: named as
        the oracle beside the headline.
    """
    items: list[str] = []
    notes: list[str] = []
    clf = metrics.get("classifier") or {}
    headline = "The run has not produced its numbers yet."
    if clf:
        null_clf = (null_metrics or {}).get("classifier") or {}
        null_text = (
            f", the null-perturbation run {pct(null_clf.get('accuracy'))}" if null_clf else ""
        )
        items.append(
            f"Detection: the classifier on the LDVAE latent reaches **"
            f"{interval(clf.get('accuracy'), clf.get('accuracy_low'), clf.get('accuracy_high'))}"
            f"** accuracy; chance {pct(clf.get('chance_uniform'))}, label null "
            f"{pct(clf.get('permutation_accuracy'))}{null_text}."
        )
        choice = (metrics.get("ldvae") or {}).get("gene_choice")
        if choice:
            items.append(f"LDVAE genes: {gene_choice_text(choice)}.")
        oracle = (oracle_metrics or {}).get("classifier") or {}
        if oracle:
            items.append(
                "Oracle (not the headline): with every disease-set gene forced into the LDVAE's "
                "genes — a choice that knows which genes were shifted — the same network reaches "
                f"{interval(oracle.get('accuracy'), oracle.get('accuracy_low'), oracle.get('accuracy_high'))}."
            )
        base = clf.get("baseline_accuracy", {})
        items.append(
            f"Baselines: the same network on PCA {pct(base.get('mlp_pca'))}; logistic "
            f"regression on the disease-set genes (knows where to look) "
            f"{pct(base.get('logreg_disease_genes'))}."
        )
        headline = (
            f"A network on the LDVAE latent tells the conditions apart with "
            f"{pct(clf.get('accuracy'))} accuracy (chance {pct(clf.get('chance_uniform'))})."
        )
        unit = clf.get("unit", "source cell")
        if clf.get("paired") is False:  # units are cases or controls: each unit's call
            null_unit = (null_clf or {}).get("unit_accuracy")
            items.insert(
                0,
                f"Per {unit} (each held out once, called by its cells' mean probability): **"
                f"{interval(clf['unit_accuracy'], clf['unit_accuracy_low'], clf['unit_accuracy_high'])}"
                f"** of {clf['n_units']} {unit}s; label null (whole {unit}s relabelled) "
                f"{pct(clf['permutation_unit_accuracy'])}"
                + (f", the null run {pct(null_unit)}" if null_unit is not None else "")
                + ".",
            )
            headline = (
                f"Held-out {unit}s are called right {pct(clf['unit_accuracy'])} of the time "
                f"(label null {pct(clf['permutation_unit_accuracy'])}); per cell "
                f"{pct(clf['accuracy'])}."
            )
        if not clf.get("split_grouped", True):
            notes.append(f"The split does not keep each {unit} whole: accuracy is inflated.")
    transfer = metrics.get("transfer") or {}
    for cond, r in (transfer.get("by_condition") or {}).items():
        if "direction" not in transfer:
            continue  # a case-control run's own transfer test: its page says it
        d = transfer["direction"].get(f"{cond} / ldvae") or {}
        items.insert(
            0,
            f"Synthetic against real: trained only on synthetic copies, the network calls "
            f"**{pct(r['ldvae_targeted_disease'])}** of real {cond} cells perturbed against "
            f"{pct(r['ldvae_targeted_control'])} of real control cells (donors never seen); the "
            f"shifts' cosine {_num(d.get('cosine'))} (null 97.5 % {_num(d.get('null_high'))}).",
        )
    for name, m in (metrics.get("loadings") or {}).items():
        if isinstance(m, dict) and "auroc_ldvae_projected" in m:
            items.append(
                f"{name} genes recovered from the loadings: AUROC "
                f"**{m['auroc_ldvae_projected']:.3f}** (PCA {m.get('auroc_pca_projected', 0):.3f}, "
                f"expression alone {m.get('auroc_expression', 0):.3f})."
            )
    for row in (metrics.get("cell_types") or {}).get("headline", []):
        if row.get("representation") == "LDVAE":
            items.append(
                f"{row['condition']} is best detected in **{row['cell_type']}** (AUC "
                f"{row['auc']:.3f}, null {row['null']:.3f}); E-test p {row['e_pvalue']:.2g}."
            )
    emb = metrics.get("embedding") or {}
    if emb:
        items.append(
            f"Cell identity in the latent: Leiden ARI {emb['ldvae']['leiden_ari']:.3f} (PCA "
            f"{emb['pca']['leiden_ari']:.3f})."
        )
    return Findings("index", headline, items, notes, "", simulated)


# --- the index ------------------------------------------------------------------------------


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]], depth: int = 0) -> None:
    if isinstance(value, dict) and depth < 3:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out, depth + 1)
    elif isinstance(value, int | float | str | bool) or value is None:
        out.append((prefix, value))


def question(params: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """The question a run answers, in words made from its params and data (the index's lead).

    Simulated motor-cortex cells or a named file; copies with gene sets shifted (synthetic) or
    the data's own conditions (case–control); and, with ``real_transfer``, real cells of the
    conditions the copies stand for.
    """
    data = params["data"]
    if data["source"] == "simulated":
        cells = "simulated human motor-cortex (M1) cells"
    else:
        cells = f"the cells of {Path(str(data['path'])).name}"
    model = f"Does an interpretable generative model (LDVAE) of {cells}"
    if params.get("design") == "case_control":
        labels = (metrics.get("classifier") or {}).get("labels") or list(
            ((metrics.get("data") or {}).get("case_control") or {}).get("nuclei", {})
        )
        conditions = " and ".join(map(str, labels)) or "their conditions"
        return (
            f"{model} tell {conditions} apart, how well — per cell and per donor, beside the "
            "label null — and which latent factors carry the difference?"
        )
    shifted = "; ".join(
        f"{e['geneset']} {e['direction']} ×{e['fold_change']}" for e in params["perturbations"]
    )
    text = (
        f"{model} see a synthetic shift of gene sets ({shifted}) in copies of them, how well can "
        "it be detected, and which latent factors carry it?"
    )
    real = (params.get("real_transfer") or {}).get("path")
    if real:
        text += (
            f" And does a model of that shift recognise the real cells of {Path(str(real)).name} "
            "in the conditions it stands for?"
        )
    return text


def baseline_label(model: str, metrics: Mapping[str, Any]) -> str:
    """A model of the classifier's baseline table, in words for the headline table.

    The keys of ``classifier.baseline_accuracy`` (``mlp_pca``, ``logreg_disease_genes`` …) name
    the models for the code; a reader gets what each model is: which classifier, on which
    features (:mod:`latentshift.readings.classify`).

    Parameters
    ----------
    model
        A key of ``metrics["classifier"]["baseline_accuracy"]``.
    metrics
        The run's ``metrics.json``: the PCA baseline has as many components as the LDVAE's
        latent has dimensions (``ldvae.n_latent``), and the disease genes are the perturbed ones
        for copies of source cells, the named sets' otherwise.
    """
    clf = metrics.get("classifier") or {}
    n_pca = (metrics.get("ldvae") or {}).get("n_latent") or clf.get("n_features")
    pca = f"{n_pca} PCA components" if n_pca else "PCA components (as many as the latent's)"
    copies = clf.get("unit", "source cell") == "source cell"
    genes = "the genes that were perturbed" if copies else "the genes the named sets hold"
    words = {
        "mlp_ldvae": "the classifier itself: the small network on the LDVAE latent",
        "logreg_ldvae": "baseline: logistic regression on the same LDVAE latent",
        "mlp_pca": f"baseline: the same small network on {pca} of the log-normalised counts",
        "logreg_disease_genes": f"baseline: logistic regression on the log-normalised counts of "
        f"{genes} (it knows where to look)",
        "majority": "baseline: always the training cells' majority class (chance)",
    }
    return words.get(model, f"baseline: {model.replace('_', ' ')}")


def _classifier_rows(
    metrics: Mapping[str, Any],
    null_metrics: Mapping[str, Any] | None,
    oracle_metrics: Mapping[str, Any] | None,
    seed_spread: Mapping[str, Any] | None,
) -> list[tuple[str, str]]:
    """The classifier's rows of :func:`headline_rows`: its accuracy, the seed spread, chance and
    the label null, the per-unit score, the baselines, the split, the null and oracle runs."""
    clf = metrics.get("classifier", {})
    rows: list[tuple[str, str]] = []
    rows.append(
        (
            "classifier accuracy on the LDVAE latent [95% CI]",
            interval(clf.get("accuracy"), clf.get("accuracy_low"), clf.get("accuracy_high")),
        )
    )
    if seed_spread:
        rows.append(
            (
                f"seed-to-seed spread of this accuracy (recorded: {seed_spread['n']} seeds of "
                f"this profile, commit {seed_spread['commit']})",
                f"mean {pct(seed_spread['mean'])}, sd {100 * seed_spread['sd']:.1f} points, range "
                f"{pct(seed_spread['min'])}–{pct(seed_spread['max'])}; one run's 95% interval "
                f"± {100 * seed_spread['half_width']:.1f} points",
            )
        )
    unit = clf.get("unit", "source cell")
    null = (
        f"labels permuted within each {unit}" if clf.get("paired", True) else f"{unit}s relabelled"
    )
    rows.append(
        (
            f"chance (uniform) / label null ({null})",
            f"{pct(clf.get('chance_uniform'))} / {pct(clf.get('permutation_accuracy'))}",
        )
    )
    if clf.get("unit_accuracy") is not None:
        what = (
            f"mean accuracy of each held-out {unit}"
            if clf.get("paired", True)
            else f"held-out {unit}s called right"
        )
        unit_ci = interval(
            clf.get("unit_accuracy"),
            clf.get("unit_accuracy_low"),
            clf.get("unit_accuracy_high"),
        )
        rows.append(
            (
                f"per {unit}: {what} [95% CI] / label null",
                f"{unit_ci} / {pct(clf.get('permutation_unit_accuracy'))}",
            )
        )
    for model, acc in clf.get("baseline_accuracy", {}).items():
        if model != "mlp_ldvae":  # the classifier itself: its accuracy heads the table already
            rows.append((baseline_label(model, metrics), pct(acc)))
    rows.append(
        (
            f"split keeps each {unit} whole; {unit}s on both sides",
            f"{clf.get('split_grouped')}; {clf.get('units_across')}",
        )
    )
    labels = {
        "null-perturbation run (profile null, every fold change 1.0): accuracy "
        "[95% CI]": null_metrics,
        "ORACLE — knows which genes were shifted (every disease-set gene forced into "
        "the LDVAE's genes): accuracy [95% CI]": oracle_metrics,
    }
    for label, other in labels.items():
        other_clf = (other or {}).get("classifier")
        if other_clf:
            rows.append(
                (
                    label,
                    interval(
                        other_clf.get("accuracy"),
                        other_clf.get("accuracy_low"),
                        other_clf.get("accuracy_high"),
                    ),
                )
            )
    return rows


def headline_rows(
    metrics: dict[str, Any],
    null_metrics: dict[str, Any] | None = None,
    oracle_metrics: dict[str, Any] | None = None,
    seed_spread: dict[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """The few numbers a reader looks for first, each beside its control, as (label, value) rows.

    Parameters
    ----------
    metrics
        The run's ``metrics.json``.
    null_metrics
        The ``metrics.json`` of the null-perturbation control run (profile ``null``), when it
        exists: its classifier accuracy is shown beside this run's.
    oracle_metrics
        The ``metrics.json`` of the oracle run (``report.oracle_profile``: the disease-set genes
        forced into the LDVAE), shown as a named row beside the headline.
    seed_spread
        The recorded spread of the headline over seeds (``results/<profile>_seeds.csv``,
        :func:`latentshift.record.results.seed_spread`), shown under the headline.
    """
    rows: list[tuple[str, str]] = []
    data = metrics.get("data", {})
    if data:
        rows.append(("cells × genes after QC", f"{data.get('n_cells')} × {data.get('n_genes')}"))
    for name, m in metrics.get("perturb", {}).get("genesets", {}).items():
        rows.append(
            (
                f"gene set {name}: genes found",
                f"{m.get('n_found')} of {m.get('n_genes')} ({m.get('matched_on', '')})",
            )
        )
    ldvae = metrics.get("ldvae", {})
    if ldvae.get("gene_choice"):
        rows.append(("LDVAE genes", gene_choice_text(ldvae["gene_choice"])))
    if ldvae:
        rows.append(
            (
                "LDVAE held-out negative ELBO per cell",
                f"{ldvae.get('test_elbo', float('nan')):.1f} ({ldvae.get('epochs_run')} epochs)",
            )
        )
    emb = metrics.get("embedding", {})
    if emb:
        ari_l = emb.get("ldvae", {}).get("leiden_ari", float("nan"))
        ari_p = emb.get("pca", {}).get("leiden_ari", float("nan"))
        rows.append(("Leiden vs cell type, ARI (LDVAE / PCA)", f"{ari_l:.3f} / {ari_p:.3f}"))
    if metrics.get("classifier", {}):
        rows += _classifier_rows(metrics, null_metrics, oracle_metrics, seed_spread)
    for name, m in metrics.get("loadings", {}).items():
        if isinstance(m, dict) and "auroc_ldvae_projected" in m:
            rows.append(
                (
                    f"{name}: gene-set recovery AUROC (LDVAE projected / best factor / PCA)",
                    f"{m['auroc_ldvae_projected']:.3f} / "
                    f"{m.get('auroc_ldvae_factor', float('nan')):.3f} ({m.get('best_factor')}) / "
                    f"{m.get('auroc_pca_projected', float('nan')):.3f}",
                )
            )
    for row in metrics.get("cell_types", {}).get("headline", []):
        rows.append(
            (
                f"{row['condition']}: top cell type by AUC ({row['representation']})",
                f"{row['cell_type']} {row['auc']:.3f} (null {row['null']:.3f}); E-test p "
                f"{row['e_pvalue']:.2g} (min {row['e_min_pvalue']:.2g})",
            )
        )
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _step_rows(names: Sequence[str], state: dict[str, Any], folder: Path) -> str:
    """The steps table's rows: each notebook (linked when its page exists), its status, time,
    peak memory and error."""
    rows = []
    for name in names:
        entry = state.get(name, {})
        status = entry.get("status", "not run")
        secs = entry.get("seconds")
        peak = entry.get("peak_rss_bytes")
        exists = (folder / f"{name}.html").exists()
        link = f'<a href="{name}.html">{name}</a>' if exists else name
        mark = {"ok": "✔ ok", "failed": "✘ FAILED", "skipped": "✔ up to date"}.get(status, status)
        error = html.escape(entry.get("error", ""))
        rows.append(
            f"<tr class='{status}'><td>{link}</td><td>{mark}</td>"
            f"<td>{'' if secs is None else f'{secs:.0f} s'}</td>"
            f"<td>{'' if not peak else f'{peak / 1e9:.2f} GB'}</td><td><code>{error}</code></td></tr>"
        )
    return "".join(rows)


def _thumbnails_html(figures: Path | None, folder: Path) -> str:
    """The key figures found in ``figures``, as linked thumbnails (empty when there are none)."""
    thumbs = []
    for stem, (caption, page_name) in KEY_FIGURES.items():
        png = figures / f"{stem}.png" if figures is not None else None
        if png is not None and png.is_file():
            href = f"{page_name}.html" if (folder / f"{page_name}.html").exists() else None
            thumbs.append(figure_thumbnail(png, caption, href))
    return (
        '<h2>Key figures</h2><div class="ls-thumbs">' + "".join(thumbs) + "</div>" if thumbs else ""
    )


def _study_links(folder: Path, names: Sequence[str]) -> str:
    """Links to the study pages beside the index (a page with a folder of the same name)."""
    studies = sorted(
        p.stem
        for p in folder.glob("*.html")
        if p.stem not in {*names, "index", "sweep"} and (folder / p.stem).is_dir()
    )
    study_links = ""
    if studies:
        study_links = (
            "<p>Studies: "
            + ", ".join(f'<a href="{html.escape(s)}.html">{html.escape(s)}</a>' for s in studies)
            + "</p>"
        )
    return study_links


def render_index(
    profile: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    state: dict[str, Any],
    names: Sequence[str],
    target: Path,
    prov: dict[str, Any] | None = None,
    null_metrics: dict[str, Any] | None = None,
    figures: Path | None = None,
    oracle_metrics: dict[str, Any] | None = None,
    seed_spread: dict[str, Any] | None = None,
) -> Path:
    """Write the report's index page: Findings, key figures, headline numbers, the notebooks,
    provenance and params.

    Parameters
    ----------
    profile
        The profile name.
    params
        The resolved params, file paths as written in the profile.
    metrics, state, names
        The run's ``metrics.json``, the runner's state and the notebooks in order.
    target
        ``reports/<profile>/index.html``.
    prov
        The run's provenance.
    null_metrics
        The null-perturbation run's ``metrics.json``, when it exists.
    figures
        ``runs/<profile>/figures``: the PNGs of :data:`KEY_FIGURES` found there are shown.
    oracle_metrics
        The oracle run's ``metrics.json`` (``report.oracle_profile``), when it exists.
    seed_spread
        The recorded seed-to-seed spread of the headline (:func:`headline_rows`).
    """
    simulated = params["data"]["source"] == "simulated"
    rows = _step_rows(names, state, target.parent)
    flat: list[tuple[str, Any]] = []
    _flatten("", {k: v for k, v in metrics.items() if k != "provenance"}, flat)
    metric_rows = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td>{_fmt(v)}</td></tr>" for k, v in flat
    )
    headlines = (
        "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
            for k, v in headline_rows(metrics, null_metrics, oracle_metrics, seed_spread)
        )
        or "<tr><td colspan=2>no numbers yet</td></tr>"
    )
    thumbs_html = _thumbnails_html(figures, target.parent)
    sweep = (
        '<p><a href="sweep.html">Dose-response sweep</a></p>'
        if (target.parent / "sweep.html").exists()
        else ""
    )
    study_links = _study_links(target.parent, names)
    data_line = (
        ""
        if simulated
        else f"<p>Data: <code>{html.escape(artifacts.display_path(params['data']['path']))}</code></p>"
    )
    box = findings_html(run_findings(metrics, null_metrics, simulated, oracle_metrics))
    body = f"""
<h1>latentshift report — profile <code>{html.escape(profile)}</code></h1>
<p>{html.escape(question(params, metrics))}</p>
{data_line}
{box}
{thumbs_html}
<h2>Headline numbers, each beside its control</h2>
<table class="ls-table"><tr><th>what</th><th>value</th></tr>{headlines}</table>
{sweep}{study_links}
<h2>Steps</h2>
<table class="ls-table"><tr><th>notebook</th><th>status</th><th>time</th><th>peak memory</th>
<th>error</th></tr>{rows}</table>
<p>Time: wall time of the notebook; peak memory: the high-water mark of its kernel's resident
memory. Each page opens with its findings; its code is one click away ("Show code").</p>
<details><summary>Every number in <code>metrics.json</code></summary>
<table class="ls-table"><tr><th>metric</th><th>value</th></tr>{metric_rows}</table></details>
<h2>Provenance</h2>
<pre class="ls-pre">{html.escape(yaml.safe_dump(prov or {}, sort_keys=False))}</pre>
<details><summary>Parameters (resolved)</summary>
<pre class="ls-pre">{html.escape(yaml.safe_dump(params, sort_keys=False))}</pre></details>
<p>Generated {_dt.datetime.now().isoformat(timespec="seconds")}.</p>
"""
    linked = [n for n in names if (target.parent / f"{n}.html").exists()]
    nav = nav_html("index", linked + (["sweep"] if sweep else []))
    return artifacts.write_text(page(f"latentshift — {profile}", body, nav), target)
