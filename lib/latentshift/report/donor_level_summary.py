"""The donor-level readings of recorded runs as the tables the docs quote.

- :func:`pseudobulk_markdown` — per cell type, the pseudobulk samples and the GLM's residual
  degrees of freedom, the set test by donor (camera's rank
  test with the set's estimated inter-gene correlation), its BH-adjusted p, the genes at FDR
  0.05 and the uniformity of the gene-level p-values over the genes with counts enough for a
  continuous p (KS p, and the share below 0.05: under 5 % the test is conservative there, over
  5 % anti-conservative) and over every gene, one block of rows per record;
- :func:`composition_markdown` — per cell type, the shares of the reference and the disease
  donors, the logit change and its (adjusted) p (propeller's logit-proportion t test);
- :func:`pseudobulk_sentences`, :func:`composition_sentences` — what the tables say, in
  sentences made from the same records (written under each table).

Both read the ``pseudobulk`` and ``composition`` sections that 05 and 01 write to
``metrics.json`` (:func:`latentshift.readings.pseudobulk.summary_metrics`,
:func:`latentshift.readings.composition.summary_metrics`) as the record keeps them. Used by
:mod:`latentshift.record.readme` for the ``pseudobulk-table`` and ``composition-table`` markers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from latentshift.errors import LatentshiftError
from latentshift.report.study_report import markdown_from_rows


class DonorLevelTableError(LatentshiftError):
    """A record without the donor-level section a docs table quotes."""


def _p(x: Any) -> str:
    """A p-value as the tables show it: three significant digits, '–' when missing."""
    if x is None:
        return "–"
    return f"{x:.2g}" if x < 0.001 else f"{x:.3f}"


def _section(rec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    metrics = rec.get("metrics", {})
    section = metrics.get(name)
    if section is None:
        section = metrics.get("data", {}).get(name)
    if not section:
        raise DonorLevelTableError(
            f"the record of '{rec.get('profile', '?')}' has no '{name}' section: it was recorded "
            "before the donor-level readings or is not a case-control run. Re-run the profile "
            "(make report PARAMS=params/<profile>.yaml) and record it (make results PROFILE=<profile>)."
        )
    return section


def pseudobulk_markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """The pseudobulk set test per record, condition and cell type (targeted types marked ★).

    Parameters
    ----------
    records
        Recorded runs (:func:`latentshift.record.results.load`) of case-control profiles.

    Returns
    -------
    str
        A Markdown table.
    """
    rows: list[list[str]] = []
    for rec in records:
        section = _section(rec, "pseudobulk")
        targets = _targets(rec)
        for cond, types in section.get("by_type", {}).items():
            for ct, r in types.items():
                rows.append(
                    [
                        rec.get("profile", "?"),
                        cond,
                        f"{ct} ★" if ct in targets else ct,
                        _samples(r),
                        _p(r.get("set_pvalue")),
                        _p(r.get("set_pvalue_adj")),
                        f"{r['set_correlation']:.3f}"
                        if r.get("set_correlation") is not None
                        else "–",
                        f"{int(r.get('n_genes_fdr05') or 0)} of {int(r.get('n_genes') or 0)}",
                        _p(r.get("pvalue_uniform_ks"))
                        + (
                            f" ({int(r['n_genes_uniform'])} genes)"
                            if r.get("n_genes_uniform") is not None
                            else ""
                        ),
                        f"{100 * r['share_p05']:.1f}%" if r.get("share_p05") is not None else "–",
                        _p(r.get("pvalue_uniform_ks_all")),
                    ]
                )
        for cond, types in section.get("untested", {}).items():
            for ct, reason in types.items():
                rows.append([rec.get("profile", "?"), cond, ct, "–", "untested", reason, *[""] * 5])
    header = [
        "record",
        "condition",
        "cell type",
        "samples (residual df)",
        "set test p",
        "adjusted p (BH)",
        "set correlation",
        "genes at FDR 0.05",
        "gene p uniform, genes with mean count ≥ 10 (KS p)",
        "those at p < 0.05 (5% when uniform)",
        "gene p uniform, every gene (KS p)",
    ]
    return markdown_from_rows(header, rows)


def _samples(r: Mapping[str, Any]) -> str:
    """``"12 (10)"``: the type's pseudobulk samples and the GLM's residual degrees of freedom
    ('–' in a record made before they were kept)."""
    if r.get("n_samples") is None:
        return "–"
    df = r.get("residual_df")
    return f"{int(r['n_samples'])}" + (f" ({int(df)})" if df is not None else "")


def composition_markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """The composition test per record, condition and cell type.

    Parameters
    ----------
    records
        Recorded runs of case-control profiles (01 tests the composition on every QC'd nucleus).

    Returns
    -------
    str
        A Markdown table.
    """
    rows: list[list[str]] = []
    for rec in records:
        section = _section(rec, "composition")
        for cond, types in section.items():
            for ct, r in types.items():
                rows.append(
                    [
                        rec.get("profile", "?"),
                        cond,
                        ct,
                        f"{100 * r['share_reference']:.2f}%",
                        f"{100 * r['share_condition']:.2f}%",
                        f"{r['logit_change']:+.2f}" if r.get("logit_change") is not None else "–",
                        _p(r.get("pvalue")),
                        _p(r.get("pvalue_adj")),
                    ]
                )
    header = [
        "record",
        "condition",
        "cell type",
        "share, reference donors",
        "share, disease donors",
        "logit change",
        "p",
        "adjusted p (BH)",
    ]
    return markdown_from_rows(header, rows)


def _targets(rec: Mapping[str, Any]) -> set[str]:
    return {
        ct
        for p in rec.get("params", {}).get("perturbations", []) or []
        for ct in (p.get("target_cell_types") or [])
        if float(p.get("fold_change", 1.0)) != 1.0
    }


def _others_clause(adjusted: Mapping[str, Any], after_named: bool) -> str:
    """``"the other N types: none at adjusted p < 0.05 (smallest …, type)"`` ('' for none)."""
    adj = {ct: p for ct, p in adjusted.items() if p is not None}
    if not adj:
        return ""
    low = min(adj, key=adj.__getitem__)
    called = sum(p < 0.05 for p in adj.values())
    return (
        f"{'the other' if after_named else 'the'} {len(adj)} type{'s' * (len(adj) != 1)}: "
        f"{'none' if not called else called} at adjusted p < 0.05 (smallest {_p(adj[low])}, {low})"
    )


def pseudobulk_sentences(records: Sequence[Mapping[str, Any]]) -> str:
    """What the pseudobulk tables say, in sentences made from the records: per record and
    condition, the set test in the targeted types (when the record shifted some) and the
    smallest adjusted p of the others; the uniformity of the gene-level p-values, the types
    with genes at FDR 0.05 and how many types were left untested."""
    out = []
    for rec in records:
        name, targets = rec.get("profile", "?"), _targets(rec)
        section = _section(rec, "pseudobulk")
        for cond, types in section.get("by_type", {}).items():
            untested = len(section.get("untested", {}).get(cond, {}))
            hit = {ct: r for ct, r in types.items() if ct in targets}
            rest = {ct: r for ct, r in types.items() if ct not in targets}
            parts = []
            if hit:
                parts.append(
                    "the set test gives the targeted types "
                    + ", ".join(f"p = {_p(r.get('set_pvalue'))} ({ct})" for ct, r in hit.items())
                )
            others = _others_clause(
                {ct: r.get("set_pvalue_adj") for ct, r in rest.items()}, bool(hit)
            )
            parts += [others] if others else []
            tested = list(types.values())
            uniform = sum((r.get("pvalue_uniform_ks") or 0) > 0.01 for r in tested)
            with_fdr = [ct for ct, r in types.items() if (r.get("n_genes_fdr05") or 0) > 0]
            most = max((int(r.get("n_genes_fdr05") or 0) for r in tested), default=0)
            parts.append(
                f"gene-level p-values uniform (KS p > 0.01, genes with a mean count of 10 or "
                f"more) in {uniform} of {len(tested)} types; genes at FDR 0.05 in "
                f"{len(with_fdr)} of {len(tested)} types"
                + (f" (at most {most} in one)" if with_fdr else "")
                + (
                    f"; {untested} type{'s' * (untested != 1)} untested (too few donors with "
                    "enough nuclei of the type: the table gives each count)"
                    if untested
                    else ""
                )
            )
            out.append(f"**{name}**, {cond}: " + "; ".join(parts) + ".")
    return "\n\n".join(out)


def composition_sentences(records: Sequence[Mapping[str, Any]]) -> str:
    """What the composition tables say: per record and condition, the type a profile makes the
    disease donors lose (``data.simulate_disease_type_loss``) with its shares and p, and the
    smallest adjusted p of the other types."""
    out = []
    for rec in records:
        name = rec.get("profile", "?")
        lost = (rec.get("params", {}).get("data", {}) or {}).get("simulate_disease_type_loss") or {}
        for cond, types in _section(rec, "composition").items():
            parts = []
            for ct, frac in lost.items():
                r = types.get(ct)
                if r is None:
                    continue
                parts.append(
                    f"{ct}, of which each disease donor lost {100 * float(frac):.0f} %, goes from "
                    f"{100 * r['share_reference']:.2f}% to {100 * r['share_condition']:.2f}% of the "
                    f"nuclei (p = {_p(r.get('pvalue'))}, adjusted {_p(r.get('pvalue_adj'))})"
                )
            rest = {ct: r.get("pvalue_adj") for ct, r in types.items() if ct not in lost}
            others = _others_clause(rest, bool(parts))
            parts += [others] if others else []
            out.append(f"**{name}**, {cond}: " + "; ".join(parts) + ".")
    return "\n\n".join(out)
