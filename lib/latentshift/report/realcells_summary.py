"""The real cells in the docs: tables and sentences made from the recorded runs.

``<!-- realcells-table PAIRED NULL SPLIT SYNTHETIC SYNTHETIC_NULL TRANSFER_SWEEP CALLS -->`` (a
``python -m latentshift readme`` block) renders, from ``results/``:

- every reading on the real labels (:data:`PAIRED`: Kang et al. 2018's two donors before and
  after interferon-β) beside its null and beside the real-donor null (8 control donors dealt
  into two fake groups; with donor and with cell folds) and the synthetic design on the same
  real cells beside its own null (:func:`readings_table`);
- synthetic against real for each fold change f of the transfer sweep (:func:`transfer_table`),
  and per cell type at the best-matching f (:func:`per_type_sentence`, from the sweep's calls);
- the sentences that say what these numbers mean for the premise (:func:`verdict`), each number
  from the records — re-running their commands gives them back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from latentshift.report.findings import interval, pct

#: The real condition of the transfer sweep's columns.
STIMULATED = "IFN-beta stimulated"


def _clf(rec: Mapping[str, Any]) -> Mapping[str, Any]:
    return (rec.get("metrics") or {}).get("classifier") or {}


def _ci(m: Mapping[str, Any], key: str) -> str:
    return interval(m.get(key), m.get(f"{key}_low"), m.get(f"{key}_high"))


def _top(rec: Mapping[str, Any]) -> str:
    rows = [
        r
        for r in (rec.get("metrics") or {}).get("cell_types", {}).get("headline", [])
        if r.get("representation") == "LDVAE"
    ]
    if not rows or rows[0].get("cell_type") is None:
        return "–"
    r = rows[0]
    return f"{r['cell_type']}: {r['auc']:.2f} (null {r['null']:.2f}, 97.5 % {r['null_high']:.2f})"


def _etest(rec: Mapping[str, Any]) -> str:
    rows = (rec.get("metrics") or {}).get("cell_types", {}).get("headline", [])
    r = next((r for r in rows if r.get("representation") == "LDVAE"), None)
    if r is None:
        return "–"
    return f"p = {r['e_pvalue']:.2g} (smallest possible {r['e_min_pvalue']:.2g})"


def _recovery(rec: Mapping[str, Any]) -> str:
    loadings = (rec.get("metrics") or {}).get("loadings") or {}
    parts = [
        f"{v['auroc_ldvae_projected']:.2f} / {v['auroc_pca_projected']:.2f}"
        for v in loadings.values()
        if isinstance(v, Mapping) and "auroc_ldvae_projected" in v
    ]
    return "; ".join(parts) or "–"


def _row(rec: Mapping[str, Any] | None) -> dict[str, str]:
    if rec is None:
        return {}
    c = _clf(rec)
    unit = c.get("unit", "unit")
    return {
        "per cell [95% CI]": _ci(c, "accuracy"),
        "per unit [95% CI]": f"{_ci(c, 'unit_accuracy')} ({c.get('n_units')} {unit}s)",
        "label null per cell (p)": f"{pct(c.get('permutation_accuracy'))} (p = {c.get('permutation_p_value', float('nan')):.2g}, smallest possible {c.get('permutation_min_p_value', float('nan')):.2g})",
        "top cell type by AUC (null)": _top(rec),
        "pooled E-test": _etest(rec),
        "set recovery AUROC, LDVAE / PCA": _recovery(rec),
        "commit": str((rec.get("provenance") or {}).get("git_commit") or "")[:7],
    }


def _fold(rec: Mapping[str, Any] | None) -> str:
    entries = ((rec or {}).get("params") or {}).get("perturbations") or [{}]
    return f"{entries[0].get('fold_change', '?'):g}" if entries[0] else "?"


def readings_table(
    paired: Mapping[str, Any],
    null: Mapping[str, Any] | None,
    split: pd.DataFrame | None,
    synthetic: Mapping[str, Any] | None,
    synthetic_null: Mapping[str, Any] | None,
) -> str:
    """Every reading on the real labels, beside the real-donor null and the synthetic design."""
    from latentshift.report.study_report import markdown_from_rows

    columns = {
        f"real labels ({_clf(paired).get('n_units')} donors, paired)": _row(paired),
        "real-donor null, donor folds": _row(null),
    }
    if split is not None and "point" in split:
        cell = split[split["point"] == "cell_split"]
        if len(cell):
            r = cell.iloc[0]
            columns["real-donor null, cell folds (the leak)"] = {
                "per cell [95% CI]": interval(r["accuracy"], r["accuracy_low"], r["accuracy_high"]),
                "per unit [95% CI]": interval(
                    r.get("donor_accuracy"),
                    r.get("donor_accuracy_low"),
                    r.get("donor_accuracy_high"),
                ),
                "label null per cell (p)": pct(r.get("permutation_accuracy")),
                "commit": str(r.get("git_commit") or "")[:7],
            }
    columns[f"synthetic on real cells (f = {_fold(synthetic)})"] = _row(synthetic)
    columns[f"synthetic null (f = {_fold(synthetic_null)})"] = _row(synthetic_null)
    columns = {k: v for k, v in columns.items() if v}
    names = list(columns)
    keys = list(dict.fromkeys(k for col in columns.values() for k in col))
    rows = [[k, *(columns[n].get(k, "–") for n in names)] for k in keys]
    return markdown_from_rows(["reading", *names], rows)


def _sweep_row(r: pd.Series, rep: str) -> tuple[float, float, float, float, float]:
    base = f"{STIMULATED}_transfer_{rep}_targeted"
    return (
        r.get(f"{base}_disease", np.nan),
        r.get(f"{base}_control", np.nan),
        r.get(f"{STIMULATED}_direction_{rep}_cosine", np.nan),
        r.get(f"{STIMULATED}_direction_{rep}_null_high", np.nan),
        r.get(f"{STIMULATED}_direction_{rep}_length_ratio", np.nan),
    )


def match_score(cosine: float, ratio: float) -> float:
    """How well a synthetic displacement matches the real one: its cosine (direction) times the
    smaller of the length ratio and its inverse (size); 1 is a perfect match."""
    if not np.isfinite(cosine) or not np.isfinite(ratio) or ratio <= 0:
        return float("nan")
    return float(cosine * min(ratio, 1 / ratio))


def best_level(sweep: pd.DataFrame, rep: str = "ldvae") -> float | None:
    """The fold change whose synthetic shift best matches the real one (:func:`match_score`),
    among the levels whose cosine lies above its null's 97.5 %."""
    best, score = None, -np.inf
    for _, r in sweep.iterrows():
        _, _, cos, high, ratio = _sweep_row(r, rep)
        s = match_score(cos, ratio)
        if np.isfinite(s) and cos > high and s > score:
            best, score = float(r["level"]), s
    return best


def widest_gap_level(sweep: pd.DataFrame, rep: str = "ldvae") -> float | None:
    """The fold change at which the network calls the most more stimulated than control cells
    perturbed (the largest difference of the two call rates)."""
    gaps = {
        float(r["level"]): s - c
        for _, r in sweep.iterrows()
        for s, c, *_ in [_sweep_row(r, rep)]
        if np.isfinite(s - c)
    }
    return max(gaps, key=gaps.get) if gaps else None


def transfer_table(sweep: pd.DataFrame) -> str:
    """Synthetic against real for each fold change of the transfer sweep."""
    from latentshift.report.study_report import markdown_from_rows

    rows = []
    for _, r in sweep.sort_values("level").iterrows():
        cells = [f"{float(r['level']):g}"]
        for rep in ("ldvae", "pca"):
            stim, ctrl, cos, high, ratio = _sweep_row(r, rep)
            direction = (
                f"{cos:.2f} (null {high:.2f}), ×{ratio:.2f}"
                if np.isfinite(cos)
                else f"n/a (no synthetic displacement at f = {float(r['level']):g})"
            )
            cells += [f"{pct(stim)} vs {pct(ctrl)}", direction]
        cells.append(str(r.get("git_commit") or "")[:7])
        rows.append(cells)
    return markdown_from_rows(
        [
            "fold change f",
            "LDVAE: stimulated vs control cells called perturbed",
            "LDVAE: cosine (null 97.5 %), length ratio",
            "PCA: called perturbed",
            "PCA: cosine, length ratio",
            "commit",
        ],
        rows,
    )


def per_type_sentence(calls: pd.DataFrame, level: float) -> str:
    """The call rates per cell type at one fold change of a sweep's calls
    (:func:`latentshift.run.sweep.collect_calls`), LDVAE beside PCA: the range over the types of
    stimulated and of control cells called perturbed, and the types at the ends."""
    at = calls[calls["level"].astype(float) == float(level)]
    if at.empty:
        return ""
    parts = []
    for rep, name in (("ldvae", "the LDVAE network"), ("pca", "the PCA network")):
        stim = at.set_index("cell_type")[f"{rep}_disease"].astype(float)
        ctrl = at.set_index("cell_type")[f"{rep}_control"].astype(float)
        gap = stim - ctrl
        parts.append(
            f"{name} calls {pct(stim.min())}–{pct(stim.max())} of the stimulated cells perturbed "
            f"against {pct(ctrl.min())}–{pct(ctrl.max())} of the control cells (widest gap "
            f"{gap.idxmax()}, {pct(stim[gap.idxmax()])} vs {pct(ctrl[gap.idxmax()])}; narrowest "
            f"{gap.idxmin()}, {pct(stim[gap.idxmin()])} vs {pct(ctrl[gap.idxmin()])})"
        )
    return f"Per cell type at f = {float(level):g} ({len(at)} types): " + "; ".join(parts) + "."


def verdict(
    paired: Mapping[str, Any],
    null: Mapping[str, Any] | None,
    split: pd.DataFrame | None,
    transfer: pd.DataFrame | None,
    synthetic: Mapping[str, Any] | None = None,
    synthetic_null: Mapping[str, Any] | None = None,
    calls: pd.DataFrame | None = None,
) -> str:
    """What the real cells say about the premise, in sentences made from the numbers."""
    c = _clf(paired)
    out = [
        f"**Real labels.** On real PBMCs before and after interferon-β (2 donors, paired), the "
        f"network on the LDVAE latent tells the conditions apart for {_ci(c, 'accuracy')} of the "
        f"cells it never trained on, against {pct(c.get('permutation_accuracy'))} under the "
        f"within-donor label null; with {c.get('n_units')} donors the null has "
        f"{c.get('n_relabellings', float('nan')):,.0f} relabellings, so its p cannot fall below "
        f"{c.get('permutation_min_p_value', float('nan')):.2g}: the result describes these "
        "donors' cells, not donors in general."
    ]
    if null is not None:
        n = _clf(null)
        covers = n.get("accuracy_low", 1) <= 0.5 <= n.get("accuracy_high", 0)
        text = (
            f"**Real-donor null.** With the 8 control donors dealt into two fake groups, the same "
            f"network reaches {_ci(n, 'accuracy')} with donor folds"
            + (" — its interval covers chance" if covers else " — its interval misses chance")
        )
        if split is not None and "point" in split:
            cell = split[split["point"] == "cell_split"]
            if len(cell):
                r = cell.iloc[0]
                text += (
                    f"; with cell folds, which put every donor on both sides, "
                    f"{interval(r['accuracy'], r['accuracy_low'], r['accuracy_high'])}: the donor leak "
                    "on real donors"
                )
        out.append(text + ".")
    if synthetic is not None:
        s, s0 = _clf(synthetic), _clf(synthetic_null or {})
        out.append(
            f"**Synthetic on real cells.** Copies of the real control cells with the interferon set "
            f"shifted up {_fold(synthetic)}× are told from their originals at {_ci(s, 'accuracy')} (label null "
            f"{pct(s.get('permutation_accuracy'))}"
            + (f"; the fold-change-1 null run {pct(s0.get('accuracy'))}" if s0 else "")
            + ")."
        )
    if transfer is not None and len(transfer):
        f = best_level(transfer)
        if f is None:
            out.append(
                "**Synthetic against real.** At no fold change of the sweep does the synthetic "
                "displacement point the way the real one does beyond its null: the synthetic "
                "shift does not stand for this real one in the latent."
            )
        else:
            r = transfer[transfer["level"].astype(float) == f].iloc[0]
            stim, ctrl, cos, high, ratio = _sweep_row(r, "ldvae")
            gap = stim - ctrl
            out.append(
                f"**Synthetic against real.** Trained only on copies of 6 other donors' control "
                f"cells, the network calls {pct(stim)} of the held-out donors' stimulated cells "
                f"perturbed against {pct(ctrl)} of their control cells at the best-matching fold "
                f"change f = {f:g}, where the synthetic displacement's cosine with the real one is "
                f"{cos:.2f} (null 97.5 % {high:.2f}) and its length {ratio:.2f}× the real one's. "
                + (
                    "The premise holds here: a model of the synthetic shift recognises the real "
                    "response, in the direction the real cells move."
                    if gap > 0.3 and cos > high
                    else "The premise holds only in part here: the direction matches, but the "
                    "calls separate stimulated from control cells weakly."
                    if cos > high
                    else "The premise does not hold here."
                )
                + _widest_clause(transfer, f)
                + (f" {per_type_sentence(calls, f)}" if calls is not None and len(calls) else "")
            )
    return "\n\n".join(out)


def _widest_clause(sweep: pd.DataFrame, best: float) -> str:
    """A sentence on the fold change that separates the conditions best, where it is not the
    best-matching one."""
    w = widest_gap_level(sweep)
    if w is None or w == best:
        return ""
    r = sweep[sweep["level"].astype(float) == w].iloc[0]
    stim, ctrl, cos, high, ratio = _sweep_row(r, "ldvae")
    said = (
        f" The calls separate the conditions most at f = {w:g}: {pct(stim)} of the stimulated "
        f"cells against {pct(ctrl)} of the control cells"
    )
    if np.isfinite(cos) and cos > high and ratio < 1:
        return (
            said + f" (cosine {cos:.2f}, length {ratio:.2f}×), a synthetic shift shorter than "
            "the real one but pointing its way."
        )
    return said + "."


def render(args: Sequence[str], load: Any, csv: Any) -> str:
    """The block: ``PAIRED NULL SPLIT SYNTHETIC SYNTHETIC_NULL TRANSFER_SWEEP [CALLS]`` (record
    names, ``.csv`` paths for the study and sweep tables and the sweep's calls per cell type;
    ``-`` for one not recorded)."""
    names = list(args) + ["-"] * (7 - len(args))

    def rec(name: str) -> Any:
        return None if name == "-" else load(name)

    def table(name: str) -> Any:
        return None if name == "-" else csv(name)

    paired, null, split = rec(names[0]), rec(names[1]), table(names[2])
    synthetic, synthetic_null, sweep = rec(names[3]), rec(names[4]), table(names[5])
    calls = table(names[6])
    parts = [readings_table(paired, null, split, synthetic, synthetic_null)]
    if sweep is not None:
        parts.append(transfer_table(sweep))
    parts.append(verdict(paired, null, split, sweep, synthetic, synthetic_null, calls))
    return "\n\n".join(parts) + "\n"
