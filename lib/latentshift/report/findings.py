"""What each step found, in words built from its numbers: the Findings box and the closing text.

Every notebook ends with a :class:`Findings` made by the function of its step
(:func:`data_findings` … :func:`loadings_findings`). It holds the step's 3–5 headline results,
each beside its control or baseline (:attr:`Findings.items`), the notes a reader must see
(:attr:`Findings.notes`) and the closing "what this shows" paragraph (:attr:`Findings.closing`).
Nothing is typed in by hand: every number comes from the step's results. The HTML report shows
the box at the top of the page (:mod:`latentshift.report.pages`); in JupyterLab it closes the notebook.
The run's own answer, on the index page, is
:func:`latentshift.report.index_page.run_findings`.

The thresholds the texts use to choose their words are named here, once.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: A median library size of the copies within this share of the normal cells' is "hardly
#: different": depth alone would not give the conditions away.
DEPTH_SHIFT_NOTABLE = 0.1
#: Leiden-vs-cell-type ARI above which the latent "keeps cell identity".
CELL_IDENTITY_ARI = 0.3
#: Projected-loading AUROC at or above which a gene set counts as recovered.
RECOVERED_AUROC = 0.8
#: A single factor recovering this much less than the projection: the shift spreads over factors.
SINGLE_FACTOR_GAP = 0.1
#: Expression-matched recovery this much below the projected one: part of the score follows
#: expression level rather than the shift.
MATCHED_GAP = 0.05

SIMULATED_NOTE = (
    "Simulated data: these cells come from the built-in simulated M1-like data set, not from "
    "real nuclei. The numbers show what the method does, not biology."
)


@dataclass
class Findings:
    """A step's headline results, in words.

    Attributes
    ----------
    step
        The notebook, e.g. ``"05_classifier"``.
    headline
        One sentence: the answer of the step.
    items
        The 3–5 results, each beside its control or baseline (Markdown).
    notes
        Warnings a reader must see (Markdown), shown as styled notes.
    closing
        The closing "what this shows" paragraph(s) (Markdown).
    simulated
        Whether the numbers come from simulated data (the box then says so).
    """

    step: str
    headline: str
    items: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    closing: str = ""
    simulated: bool = False

    def to_markdown(self) -> str:
        """The box as Markdown (headline, bullets, notes)."""
        lines = [f"**{self.headline}**", ""] + [f"- {item}" for item in self.items]
        lines += [f"> **Note.** {note}" for note in self.notes]
        if self.simulated:
            lines.append(f"> {SIMULATED_NOTE}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return findings_html(self)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _inline(text: str) -> str:
    """Minimal Markdown → HTML for one line: escape, then ``**bold**`` and ```code```."""
    import re

    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def findings_html(f: Findings) -> str:
    """The Findings box as HTML (``<section id="findings" class="findings">``)."""
    items = "".join(f"<li>{_inline(i)}</li>" for i in f.items)
    notes = "".join(f'<p class="ls-note">{_inline(n)}</p>' for n in f.notes)
    sim = f'<p class="ls-simulated">{_inline(SIMULATED_NOTE)}</p>' if f.simulated else ""
    return (
        f'<section id="findings" class="findings" data-step="{html.escape(f.step)}">'
        f'<h2>Findings</h2><p class="ls-headline">{_inline(f.headline)}</p>'
        f"<ul>{items}</ul>{notes}{sim}</section>"
    )


def pct(x: float | None, digits: int = 1) -> str:
    """``0.6017`` → ``"60.2%"`` (``"n/a"`` for None)."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def interval(value: float | None, low: float | None, high: float | None) -> str:
    """A proportion with its interval: ``"60.2% [58.1%, 62.5%]"``."""
    return f"{pct(value)} [{pct(low)}, {pct(high)}]"


# --- 01_data -------------------------------------------------------------------------------


def data_findings(
    metrics: Mapping[str, Any],
    qc: Mapping[str, int],
    n_required: int,
    n_required_kept: int,
    loading_note: str = "",
) -> Findings:
    """Findings of ``01_data`` from its ``data`` metrics section and the QC numbers.

    Parameters
    ----------
    metrics
        The ``data`` section (:func:`latentshift.data.load.data_metrics`).
    qc
        :func:`latentshift.data.load.qc_filter`'s numbers.
    n_required, n_required_kept
        Disease gene-set genes asked for, and how many are among the genes kept.
    loading_note
        :func:`latentshift.data.load.describe_loading` of the cells.
    """
    counts = metrics["cell_type_counts"]
    largest = max(counts, key=counts.get)
    smallest = min(counts, key=counts.get)
    simulated = bool(metrics["simulated"])
    kind = (
        "**simulated** M1-like cells (not real data)"
        if simulated
        else f"cells from `{metrics['source']}`"
    )
    closing = (
        f"We loaded {metrics['cells_loaded']:,} {kind} with {metrics['genes_loaded']:,} genes. "
        f"QC (at least {qc['min_genes']} genes per cell, genes in at least {qc['min_cells']} "
        f"cells) kept {qc['cells_after']:,} cells and {qc['genes_after']:,} genes; the seeded "
        f"subsample keeps {metrics['n_cells']:,} cells in {len(counts)} cell types. "
        f"A cell has a median of {metrics['median_counts_per_cell']:,.0f} counts and "
        f"{metrics['median_genes_per_cell']:,.0f} detected genes, and "
        f"{100 * metrics['fraction_zeros']:.1f}% of the matrix is zero — the sparsity the "
        f"LDVAE's count likelihood is built for. The most common type is {largest} "
        f"({counts[largest]} cells), the rarest {smallest} ({counts[smallest]} cells). "
        f"{n_required} disease gene-set genes were asked for; {n_required_kept} are among the "
        "genes kept (matched on gene symbols, case-insensitively). These cells are written to "
        f"`cells.h5ad` for `02_perturb`. {loading_note}"
    ).strip()
    items = [
        f"{metrics['n_cells']:,} cells × {metrics['n_genes']:,} genes after QC and "
        f"subsampling (QC kept {qc['cells_after']:,} of {qc['cells_before']:,} cells).",
        f"Median {metrics['median_counts_per_cell']:,.0f} UMIs and "
        f"{metrics['median_genes_per_cell']:,.0f} genes per cell; "
        f"{100 * metrics['fraction_zeros']:.1f}% zeros.",
        f"{len(counts)} cell types, from {largest} ({counts[largest]:,} cells) to {smallest} "
        f"({counts[smallest]:,}).",
        f"{n_required_kept} of {n_required} disease gene-set genes are in the data.",
    ]
    for column, n in (metrics.get("unlabelled") or {}).items():
        if n:
            what = {"cell_type": "a cell type", "donor_id": "a donor"}.get(column, f"'{column}'")
            items.append(f"{n:,} nuclei without {what} were left out.")
            closing += f" {n:,} nuclei without {what} were left out."
    fid = metrics.get("fidelity") or {}
    if fid.get("median_umis_neurons") is not None:
        items.insert(
            2,
            f"Against the published M1 nuclei (Siletti 2023): median UMIs "
            f"{fid['median_umis_neurons']:,.0f} per neuron (published ≈ 23,500) and "
            f"{fid['median_umis_non_neurons']:,.0f} per non-neuron (≈ 5,200) over these "
            f"{metrics['n_genes']:,} genes; neuron fraction {fid['neuron_fraction']:.2f} (0.90).",
        )
    elif fid.get("unclassified_labels"):
        items.append(
            f"No neuron figures: labels name no class ({', '.join(fid['unclassified_labels'][:5])})."
        )
    return Findings(
        "01_data",
        f"{metrics['n_cells']:,} {'simulated ' if simulated else ''}cells in {len(counts)} "
        "cell types, raw integer counts ready for the perturbation.",
        items,
        [],
        closing,
        simulated,
    )


# --- 02_perturb ----------------------------------------------------------------------------


def _fold_change_text(name: str, entry: Mapping[str, Any], fc: pd.DataFrame) -> str:
    if fc.loc[name, "touched_cells"] == 0:
        return (
            f"{name} (fold change {entry['fold_change']}): no cell touched, copies identical "
            "to the normal cells"
        )
    return (
        f"{name} ({entry['direction']}, {entry['method']}): requested {entry['fold_change']}, "
        f"realised median {fc.loc[name, 'realised_median']:.2f} over {fc.loc[name, 'genes']} "
        f"genes in {fc.loc[name, 'touched_cells']:,} cells"
    )


def perturb_findings(
    metrics: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    fc_summary: pd.DataFrame,
    library_median: pd.Series,
    counts_info: Mapping[str, Any],
    simulated: bool,
) -> Findings:
    """Findings of ``02_perturb``.

    Parameters
    ----------
    metrics
        The ``perturb`` section (:func:`latentshift.perturb.shift_checks.perturb_metrics`).
    entries
        The resolved perturbation entries.
    fc_summary
        :func:`latentshift.perturb.shift_checks.fold_change_summary` (index: entry names).
    library_median
        Median library size per condition (index: conditions, ``normal`` included).
    counts_info
        :func:`latentshift.data.counts.describe_counts` of the perturbed counts.
    simulated
        Whether the cells are simulated.
    """
    sets = metrics["genesets"]
    set_text = "; ".join(
        f"`{m.get('geneset', name)}`: {m['n_found']} of {m['n_genes']} genes found"
        for name, m in sets.items()
    )
    entry_text = "; ".join(_fold_change_text(e["name"], e, fc_summary) for e in entries)
    shift = (library_median / library_median["normal"] - 1).drop("normal")
    worst = shift.abs().idxmax()
    if abs(shift[worst]) < DEPTH_SHIFT_NOTABLE:
        depth_text = (
            f"the copies' median depth is within {100 * abs(shift[worst]):.0f}% of the normal "
            "cells', so depth alone hardly gives the conditions away"
        )
        notes: list[str] = []
    else:
        depth_text = (
            f"{worst} changes the median depth by {100 * shift[worst]:+.0f}%: the perturbed "
            "genes carry a large share of the counts, so depth alone could tell the conditions "
            "apart"
        )
        notes = [f"{worst} changes the median library size by {100 * shift[worst]:+.0f}%."]
    split = metrics["split_counts"]
    n_train = sum(v["train"] for v in split.values())
    n_test = sum(v["test"] for v in split.values())
    grouped = metrics["grouped"]
    n_cells = sum(metrics["n_cells_per_condition"].values())
    n_normal = metrics["n_cells_per_condition"].get("normal", 0)
    counts_text = (
        "integer and sparse"
        if counts_info["integer_sparse"]
        else "NOT integer sparse counts (check the input)"
    )
    kind = "**simulated** cells (not real data)" if simulated else "cells"
    closing = (
        f"From {n_normal:,} {kind} we made {len(entries)} perturbed "
        f"cop{'y' if len(entries) == 1 else 'ies'}, {n_cells:,} cells in all. Gene-set "
        f"match: {set_text}. Requested vs realised fold changes — {entry_text}. The counts "
        f"are {counts_text} ({counts_info['dtype']}, {100 * counts_info['density']:.1f}% "
        "nonzero). Median library sizes per condition: "
        + ", ".join(f"{c} {v:,.0f}" for c, v in library_median.items())
        + f" — {depth_text}. The split puts {n_train:,} cells in train and {n_test:,} in test ("
        + (
            "grouped by source cell: no cell has copies on both sides"
            if grouped
            else "plain, stratified by condition: copies of one cell can sit on both sides"
        )
        + "). `perturbed.h5ad` goes to `03_ldvae`."
    )
    items = [f"Gene sets: {set_text}."]
    items += [_fold_change_text(e["name"], e, fc_summary) + "." for e in entries]
    items.append(
        "Median library size "
        + ", ".join(f"{c} {v:,.0f}" for c, v in library_median.items())
        + f" ({'within' if not notes else 'beyond'} {100 * DEPTH_SHIFT_NOTABLE:.0f}% of normal)."
    )
    items.append(
        f"Split: {n_train:,} train / {n_test:,} test cells, "
        + ("grouped by source cell." if grouped else "**not** grouped by source cell.")
    )
    return Findings(
        "02_perturb",
        f"{len(entries)} disease cop{'y' if len(entries) == 1 else 'ies'} of every cell, "
        f"{n_cells:,} cells in all, with the requested shifts realised in integer counts.",
        items,
        notes,
        closing,
        simulated,
    )


def labelled_design_findings(metrics: Mapping[str, Any], simulated: bool) -> Findings:
    """Findings of ``02_perturb`` under ``design: case_control``: the conditions are the data's
    own labels, the donor the unit.

    Parameters
    ----------
    metrics
        :func:`latentshift.perturb.case_control.perturb_metrics`.
    simulated
        Whether the nuclei are simulated.
    """
    donors = metrics["n_donors_per_condition"]
    nuclei = metrics["n_cells_per_condition"]
    control = metrics["control"]
    paired = bool(metrics.get("paired"))
    conds = [control, *sorted(c for c in donors if c != control)]
    per = "; ".join(f"{c}: {donors[c]} donors, {nuclei[c]:,} nuclei" for c in conds)
    n_donors = max(donors.values()) if paired else sum(donors.values())
    pairing = (
        f"paired: each of the {n_donors} donors is sampled in every condition, so the conditions "
        "are compared within donors"
        if paired
        else "unpaired: each donor is a case or a control"
    )
    unit = metrics["split"]
    across = metrics["donors_across_folds"]
    split_text = (
        f"{metrics['n_folds']} leave-donors-out folds: every nucleus is scored once, by models "
        f"that never saw its donor ({across} donors on both sides of a fold)"
        if unit == "donor"
        else f"{metrics['n_folds']} cell-level folds: {across} donors have nuclei on both sides"
    )
    items = [
        f"Conditions from obs `{metrics['condition_column']}` (control `{control}`): {per} "
        f"({pairing}).",
        f"No copies are made: {split_text}.",
    ]
    if metrics.get("named_sets"):
        items.append(
            "Named gene sets for the gene-set baseline and the recovery: "
            + "; ".join(f"{c}: {n} genes" for c, n in metrics["named_sets"].items())
            + "."
        )
    fake = metrics.get("fake_groups") or {}
    if fake:
        items.append(
            "The null: no condition. The donors were dealt at random into two fake groups ("
            + "; ".join(f"{g}: {', '.join(map(str, d))}" for g, d in fake.items())
            + "), so every reading should find nothing beyond its own null."
        )
    sim = metrics.get("simulated_disease_donors") or {}
    if sim:
        fcs = sorted(float(v["fold_change"]) for v in sim.values())
        items.append(
            f"The known answer (simulated): {len(sim)} disease donors carry the shift, fold "
            f"changes {fcs[0]:.2f}–{fcs[-1]:.2f} across donors."
        )
    notes = []
    if unit != "donor":
        notes.append(
            "This run splits nuclei, not donors (`case_control.split: cell`): a donor's nuclei "
            "sit on both sides, so a classifier can recognise donors instead of the disease. "
            "It exists to measure that leak; read the donor split's numbers."
        )
    return Findings(
        step="02_perturb",
        headline=(
            f"{n_donors} donors in {len(conds)} conditions ({'paired' if paired else 'unpaired'}), "
            + ("kept apart by donor" if unit == "donor" else "split by nucleus (the leak)")
        ),
        items=items,
        notes=notes,
        closing=(
            f"The conditions are the data's own ({per}; {pairing}). "
            f"{split_text[0].upper()}{split_text[1:]}."
        ),
        simulated=simulated,
    )


# --- 03_ldvae ------------------------------------------------------------------------------


def ldvae_findings(
    metrics: Mapping[str, Any],
    curves_note: str,
    train_seconds: float,
    n_cells: int,
    simulated: bool,
) -> Findings:
    """Findings of ``03_ldvae`` from its ``ldvae`` metrics section.

    Parameters
    ----------
    metrics
        :func:`latentshift.model.ldvae.ldvae_metrics`.
    curves_note
        :func:`latentshift.model.ldvae.describe_curves`.
    train_seconds
        Wall time of training.
    n_cells
        Cells whose latent was computed.
    simulated
        Whether the cells are simulated.
    """
    m = metrics
    closing = (
        f"The LDVAE ({m['n_latent']} latent dimensions, {m['n_genes_used']} genes) trained on "
        f"{m['n_train_cells']} cells, with {m['n_validation_cells']} training-split cells held "
        f"out for validation, for {m['epochs_run']} of {m['max_epochs']} epochs "
        f"({'stopped early' if m['early_stopped'] else 'no early stop'}; {train_seconds:.0f} s "
        f"of training). {curves_note}\n\nOn the {m['n_test_cells']} test cells, never seen in "
        f"training, the negative ELBO is {m['test_elbo']:.1f} per cell and the reconstruction "
        f"error {m['test_reconstruction_error']:.1f} (final validation loss: "
        f"{m['final_elbo_validation']:.1f}). A test value close to the validation value means "
        f"the model generalises to cells it has not seen; the latent of all {n_cells} cells is "
        "in `latent.h5ad` for the next notebooks."
    )
    batch = (
        f" The decoder has a coefficient per gene for each value of obs['{m['batch_key']}'] "
        "(scvi-tools' batch covariate), so the latent need not carry those differences."
        if m.get("batch_key")
        else ""
    ) + (
        " The library size is each cell's observed total count."
        if m.get("use_observed_lib_size")
        else ""
    )
    items = [
        f"{m['n_latent']} latent dimensions over {m['n_genes_used']:,} genes, trained on "
        f"{m['n_train_cells']:,} cells ({m['n_validation_cells']:,} held out for validation)."
        + batch,
        f"{m['epochs_run']} of {m['max_epochs']} epochs: "
        + (
            "stopped by early stopping on the validation ELBO."
            if m["early_stopped"]
            else "**ran to the epoch ceiling** (no early stop)."
        ),
        f"Held-out negative ELBO {m['test_elbo']:.1f} per test cell, beside the final "
        f"validation value {m['final_elbo_validation']:.1f} (close: no overfitting to the "
        "training cells).",
    ]
    if m.get("gene_choice"):
        items.insert(1, f"Genes: {gene_choice_text(m['gene_choice'])}.")
    notes = [] if m["early_stopped"] else [curves_note]
    if m.get("unsettled_validation_epochs"):
        notes.append(
            f"The validation loss was not finite in epoch(s) {m['unsettled_validation_epochs']} "
            "only: scvi-tools validates in eval mode, whose batch-norm statistics lag during the "
            "first steps. It was finite from then on, so training went on."
        )
    return Findings(
        "03_ldvae",
        f"An LDVAE with {m['n_latent']} factors fits the cells; its latent is computed for all "
        f"{n_cells:,} cells.",
        items,
        notes,
        closing,
        simulated,
    )


# --- 04_latent_viz -------------------------------------------------------------------------


def embedding_findings(metrics: Mapping[str, Any], simulated: bool) -> Findings:
    """Findings of ``04_latent_viz`` from its ``embedding`` metrics section (``ldvae``, ``pca``)."""
    m, p = metrics["ldvae"], metrics["pca"]
    keeps = m["leiden_ari"] > CELL_IDENTITY_ARI
    closing = (
        f"Leiden on the LDVAE latent finds {m['n_clusters']} clusters whose agreement with cell "
        f"types is ARI {m['leiden_ari']:.2f} (NMI {m['leiden_nmi']:.2f}); on the PCA baseline "
        f"of the same size, ARI {p['leiden_ari']:.2f} (NMI {p['leiden_nmi']:.2f}) with "
        f"{p['n_clusters']} clusters. "
        + (
            "The latent keeps cell identity."
            if keeps
            else "The latent keeps cell identity only weakly."
        )
        + "\n\nWithin cell types, disease copies vs normal cells have a mean silhouette of "
        f"{m['mean_condition_silhouette']:.2f} in the LDVAE latent and "
        f"{p['mean_condition_silhouette']:.2f} in PCA; a copy sits on average "
        f"{m['mean_copy_distance_ratio']:.2f}× the neighbour distance from its own normal cell "
        f"in the LDVAE latent ({p['mean_copy_distance_ratio']:.2f}× in PCA). Higher values mean "
        "the embedding separates the simulated disease shift from cell-to-cell variation more "
        "clearly."
    )
    wl, wp = m.get("leiden_ari_within_donor"), p.get("leiden_ari_within_donor")
    by_donor = wl is not None and wp is not None
    items = [
        f"Leiden clusters vs cell types: ARI **{m['leiden_ari']:.3f}** on the LDVAE latent "
        f"({m['n_clusters']} clusters) vs {p['leiden_ari']:.3f} on PCA ({p['n_clusters']})."
        + (
            f" Compared within each donor (a cluster per donor is then no error): "
            f"{wl:.3f} vs {wp:.3f}."
            if by_donor
            else ""
        ),
        f"Copies vs normal cells within cell types: silhouette {m['mean_condition_silhouette']:.2f}"
        f" (LDVAE) vs {p['mean_condition_silhouette']:.2f} (PCA).",
        f"A copy sits {m['mean_copy_distance_ratio']:.2f}× the neighbour distance from its own "
        f"normal cell (LDVAE) vs {p['mean_copy_distance_ratio']:.2f}× (PCA).",
    ]
    notes = (
        []
        if keeps
        else [
            f"Leiden ARI {m['leiden_ari']:.2f} is at most {CELL_IDENTITY_ARI}: the latent keeps cell "
            "identity only weakly."
        ]
    )
    if by_donor and m["leiden_ari"] >= p["leiden_ari"] and wp > wl:
        notes.append(
            f"Read the ARI with the within-donor values: the LDVAE's lead ({m['leiden_ari']:.2f} "
            f"vs {p['leiden_ari']:.2f}) comes from PCA splitting cell types by donor; within a "
            f"donor PCA's clusters match the cell types more closely ({wp:.2f} vs {wl:.2f})."
        )
    return Findings(
        "04_latent_viz",
        "The LDVAE latent "
        + ("keeps cell identity" if keeps else "keeps cell identity only weakly")
        + f" (ARI {m['leiden_ari']:.2f}, PCA {p['leiden_ari']:.2f}).",
        items,
        notes,
        closing,
        simulated,
    )


# --- the gene choice (03_ldvae and the index page) -----------------------------------------


def gene_choice_text(choice: Mapping[str, Any]) -> str:
    """What the LDVAE's gene choice was, in words: how many genes, chosen how, how many genes of
    each shifted set it kept, and whether it was an oracle (``metrics["ldvae"]["gene_choice"]``)."""
    sets = ", ".join(
        f"{c} {v['in_model']} of {v['shifted']}" for c, v in choice.get("set_genes", {}).items()
    )
    kept = f"; shifted genes in the model: {sets}" if sets else ""
    if choice.get("n_top_genes") is None:
        return f"every gene ({choice.get('n_genes_used')}){kept}"
    how = f"{choice['n_top_genes']} HVGs ranked on {choice.get('hvg_cells')} training cells"
    if choice.get("keep_perturbed_genes"):
        return (
            f"{choice.get('n_genes_used')} genes: {how} + every disease-set gene — an ORACLE (it "
            f"knows which genes were shifted){kept}"
        )
    return f"{how}, label-blind{kept}"
