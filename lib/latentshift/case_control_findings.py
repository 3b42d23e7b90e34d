"""The Findings boxes of the case–control design (02 and 05), in words built from the numbers.

The synthetic design's boxes live in :mod:`latentshift.findings`; these say the same kind of
thing with the donor as the unit: how many donors each condition has, that no donor crosses a
fold, and every accuracy beside its donor-permutation control.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from latentshift.findings import Findings, interval, pct


def design_findings(metrics: Mapping[str, Any], simulated: bool) -> Findings:
    """Findings of ``02_perturb`` under ``design: case_control``.

    Parameters
    ----------
    metrics
        :func:`latentshift.case_control.perturb_metrics`.
    simulated
        Whether the nuclei are simulated.
    """
    donors = metrics["n_donors_per_condition"]
    nuclei = metrics["n_cells_per_condition"]
    control = metrics["control"]
    conds = [control, *sorted(c for c in donors if c != control)]
    per = "; ".join(f"{c}: {donors[c]} donors, {nuclei[c]:,} nuclei" for c in conds)
    unit = metrics["split"]
    across = metrics["donors_across_folds"]
    split_text = (
        f"{metrics['n_folds']} leave-donors-out folds: every nucleus is scored once, by models "
        f"that never saw its donor ({across} donors on both sides of a fold)"
        if unit == "donor"
        else f"{metrics['n_folds']} cell-level folds: {across} donors have nuclei on both sides"
    )
    items = [
        f"Conditions from obs `{metrics['condition_column']}` (control `{control}`): {per}.",
        f"No copies are made: {split_text}.",
    ]
    if metrics.get("named_sets"):
        items.append(
            "Named gene sets for the gene-set baseline and the recovery: "
            + "; ".join(f"{c}: {n} genes" for c, n in metrics["named_sets"].items())
            + "."
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
            f"{sum(donors.values())} donors in {len(conds)} conditions, kept apart by donor"
            if unit == "donor"
            else f"{sum(donors.values())} donors in {len(conds)} conditions, split by nucleus (the leak)"
        ),
        items=items,
        notes=notes,
        closing=(
            f"The conditions are the data's own ({per}). {split_text[0].upper()}{split_text[1:]}."
        ),
        simulated=simulated,
    )


def donor_classifier_findings(
    metrics: Mapping[str, Any],
    table: pd.DataFrame,
    simulated: bool,
    headline_cell_types: pd.DataFrame | None = None,
    transfer: Mapping[str, Any] | None = None,
) -> Findings:
    """Findings of ``05_classifier`` under ``design: case_control``.

    Parameters
    ----------
    metrics
        :func:`latentshift.donor_eval.summary_metrics`.
    table
        :attr:`latentshift.donor_eval.DonorClassification.table`.
    simulated
        Whether the nuclei are simulated.
    headline_cell_types
        :attr:`latentshift.celltype_shift.CellTypeShiftResult.headline` (by-donor analysis).
    transfer
        :attr:`latentshift.transfer.TransferResult.summary` (synthetic versus real), if run.
    """
    m = metrics
    donor = interval(m["donor_accuracy"], m["donor_accuracy_low"], m["donor_accuracy_high"])
    nucleus = interval(m["accuracy"], m["accuracy_low"], m["accuracy_high"])
    perm_donor = interval(
        m["permutation_donor_accuracy"],
        m["permutation_donor_accuracy_low"],
        m["permutation_donor_accuracy_high"],
    )
    perm = interval(
        m["permutation_accuracy"], m["permutation_accuracy_low"], m["permutation_accuracy_high"]
    )
    above = m["donor_accuracy_low"] > m["permutation_donor_accuracy_high"]
    items = [
        f"Per donor (a held-out donor is called by its nuclei's mean probability): **{donor}** of "
        f"{m['n_donors']} donors, against {perm_donor} with the conditions dealt anew among the "
        f"donors (p = {m['permutation_donor_p_value']:.2g}).",
        f"Per nucleus: {nucleus}, against {perm} under the same donor permutation; chance "
        f"{pct(m['chance_uniform'])}.",
    ]
    base = table["accuracy"]
    if "mlp_pca" in base:
        items.append(
            f"Baselines on the same folds: the same network on PCA {pct(base['mlp_pca'])} "
            f"(per donor {pct(table.loc['mlp_pca', 'donor_accuracy'])}); logistic regression on "
            f"the latent {pct(base.get('logreg_ldvae'))}"
            + (
                f"; on the named sets' genes {pct(base['logreg_disease_genes'])} (it is told "
                "where to look)"
                if "logreg_disease_genes" in base
                else ""
            )
            + "."
        )
    if headline_cell_types is not None and len(headline_cell_types):
        rows = headline_cell_types[headline_cell_types["representation"] == "LDVAE"]
        for r in rows.itertuples():
            items.append(
                f"{r.condition}: top cell type {r.cell_type} (AUC {r.auc:.2f}, donor-permutation "
                f"null {r.null:.2f}); E-test by donor relabelling p = {r.e_pvalue:.2g} "
                f"(smallest possible {r.e_min_pvalue:.2g})."
            )
    if transfer:
        items.extend(transfer_items(transfer))
    notes = []
    if m["split"]["unit"] != "donor":
        notes.append(
            "Cell-level folds: donors sit on both sides, so these accuracies include recognising "
            "donors. They measure the leak; they are not a result."
        )
    headline = (
        f"The latent tells disease from control donors: {donor} per donor"
        if above
        else f"No donor-level signal beyond the permutation control: {donor} per donor"
    )
    return Findings(
        step="05_classifier",
        headline=headline,
        items=items,
        notes=notes,
        closing=" ".join(items),
        simulated=simulated,
    )


def transfer_items(summary: Mapping[str, Any]) -> list[str]:
    """Findings lines of the synthetic-versus-real test (:func:`latentshift.transfer.synthetic_transfer`).

    Parameters
    ----------
    summary
        :attr:`latentshift.transfer.TransferResult.summary`.
    """
    items = []
    val = summary["synthetic_validation_accuracy"]
    for disease, r in summary["by_condition"].items():
        targets = summary["targets"].get(disease)
        where = (
            f"in the types its entry targets ({', '.join(targets)})" if targets else "in every type"
        )
        items.append(
            f"Synthetic versus real, {disease}: a network trained on synthetic copies of "
            f"{summary['n_training_control_donors']} control donors (its own validation accuracy "
            f"{pct(val['ldvae'])} on the LDVAE latent) calls **{pct(r['ldvae_targeted_disease'])}** "
            f"of real disease nuclei {where} disease, against {pct(r['ldvae_targeted_control'])} "
            f"of the held-out control nuclei there; PCA {pct(r['pca_targeted_disease'])} against "
            f"{pct(r['pca_targeted_control'])}."
            + (
                f" In the other types: {pct(r['ldvae_untargeted_disease'])} against "
                f"{pct(r['ldvae_untargeted_control'])} (PCA {pct(r['pca_untargeted_disease'])} "
                f"against {pct(r['pca_untargeted_control'])})."
                if targets
                else ""
            )
        )
    return items


def with_donor_headline(box: Findings, metrics: Mapping[str, Any], null_metrics: Any) -> Findings:
    """The index page's box of a case–control run: :func:`latentshift.findings.run_findings`
    with the per-donor result as headline and first item (a synthetic run's box is returned
    as it is).

    Parameters
    ----------
    box
        :func:`latentshift.findings.run_findings` of the run.
    metrics
        The run's ``metrics.json``.
    null_metrics
        The null run's ``metrics.json``, or ``None``.
    """
    clf = metrics.get("classifier") or {}
    if clf.get("design") != "case_control":
        return box
    null_clf = (null_metrics or {}).get("classifier") or {}
    donor = interval(clf["donor_accuracy"], clf["donor_accuracy_low"], clf["donor_accuracy_high"])
    null_text = (
        f", the null run {pct(null_clf.get('donor_accuracy'))}"
        if null_clf.get("donor_accuracy") is not None
        else ""
    )
    item = (
        f"Per donor (each held out once, called by its nuclei's mean probability): **{donor}** of "
        f"{clf['n_donors']} donors; conditions dealt anew among the donors "
        f"{pct(clf['permutation_donor_accuracy'])}{null_text}."
    )
    headline = (
        f"Held-out donors are called right {pct(clf['donor_accuracy'])} of the time "
        f"(donor permutation {pct(clf['permutation_donor_accuracy'])}); per nucleus "
        f"{pct(clf['accuracy'])}."
    )
    return Findings(box.step, headline, [item, *box.items], box.notes, box.closing, box.simulated)
