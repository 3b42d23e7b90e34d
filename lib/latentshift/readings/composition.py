"""Cell-type composition by donor: does a condition change the share of a cell type?

In ALS motor cortex the vulnerable layer-5 extratelencephalic neurons are lost (Pineda et al.
2024, *Cell*), which shifts every per-type average; a composition test says so directly. The
donor is the unit: each donor's cell-type proportions are one sample (:func:`proportions`).

The test (:func:`composition_test`), and why this one: it is propeller's (Phipson et al. 2022,
*Bioinformatics* 38:4720) — each donor's proportion of a type, logit-transformed (a
pseudocount of 0.5 nuclei keeps absent types finite), tested between the conditions' donors
(Welch's t; a paired t on each donor's difference when every donor holds both conditions),
Benjamini–Hochberg over the types. Proportions are closed — they sum to 1, so one type's loss
raises every other's share. The logit is a log-ratio, the type against all the others
(``log(n_type / n_rest)``), so the scale of each donor's sampling drops out, and the loss of a
type moves another type's logit only by the lost share of that type's rest: halving a type of
1 % of nuclei moves the others' logits by about 0.005, where a centred log-ratio (CLR)
would move each of K types by ``log(2) / K`` whatever the lost type's size (0.05 for 14
types) — the logit is the log-ratio whose closure artifact is smallest for the rare types a
disease loses (measured: tests/test_donor_level.py). scCODA (Büttner et al. 2021) would model
the composition jointly against a reference type but needs jax/numpyro, which this project does
not install.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.errors import DataError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: Cells added to every (donor, type) count before the log-ratio (absent types stay finite).
PSEUDOCOUNT = 0.5


def proportions(
    obs: pd.DataFrame,
    unit_key: str = "donor_id",
    cell_type_key: str = "cell_type",
    condition_key: str = "condition",
) -> pd.DataFrame:
    """Cells per unit (donor, or donor and condition when paired) and cell type.

    Returns
    -------
    pandas.DataFrame
        One row per (unit, condition): ``unit``, ``condition``, then one count column per cell
        type (in the column's order).
    """
    counts = pd.crosstab(
        [obs[unit_key].astype(str), obs[condition_key].astype(str)],
        obs[cell_type_key].astype(str),
    )
    counts.index.names = ["unit", "condition"]
    return counts.reset_index()


def logit(counts: pd.DataFrame) -> pd.DataFrame:
    """Each type's log-ratio to the rest of its row: ``log((n + 0.5) / (N - n + 0.5))``
    (pseudocount :data:`PSEUDOCOUNT`), the logit of its proportion."""
    n = counts.to_numpy(dtype=np.float64)
    rest = n.sum(axis=1, keepdims=True) - n
    return pd.DataFrame(
        np.log((n + PSEUDOCOUNT) / (rest + PSEUDOCOUNT)), index=counts.index, columns=counts.columns
    )


def composition_test(
    table: pd.DataFrame, reference: str, condition: str, paired: bool = False
) -> pd.DataFrame:
    """Per cell type: does ``condition`` change its share against ``reference``?

    Parameters
    ----------
    table
        :func:`proportions`.
    reference, condition
        The two conditions compared.
    paired
        Every unit holds both conditions: a paired t on each unit's logit difference.

    Returns
    -------
    pandas.DataFrame
        One row per cell type: ``share_reference`` and ``share_condition`` (mean proportion
        over units), ``logit_change`` (mean logit difference), ``statistic``, ``pvalue``,
        ``pvalue_adj`` (BH over types), ``n_reference``, ``n_condition`` (units).

    Raises
    ------
    DataError
        Fewer than 2 units of a condition.
    """
    from scipy import stats

    types = [c for c in table.columns if c not in ("unit", "condition")]
    counts = table[types]
    share = counts.div(counts.sum(axis=1), axis=0)
    logratio = logit(counts)
    ref = (table["condition"] == reference).to_numpy()
    cond = (table["condition"] == condition).to_numpy()
    if ref.sum() < 2 or cond.sum() < 2:
        raise DataError(
            f"a composition test needs 2 units per condition; '{reference}' has {int(ref.sum())}, "
            f"'{condition}' {int(cond.sum())}."
        )
    rows = []
    for t in types:
        a, b = logratio.loc[cond, t].to_numpy(), logratio.loc[ref, t].to_numpy()
        if paired:
            units_a = table.loc[cond, "unit"].to_numpy()
            units_b = pd.Series(b, index=table.loc[ref, "unit"].to_numpy())
            diff = a - units_b.reindex(units_a).to_numpy()
            diff = diff[np.isfinite(diff)]
            res = stats.ttest_1samp(diff, 0.0) if diff.size >= 2 else None
            change = float(diff.mean()) if diff.size else np.nan
        else:
            res = stats.ttest_ind(a, b, equal_var=False)
            change = float(a.mean() - b.mean())
        rows.append(
            {
                "cell_type": t,
                "share_reference": float(share.loc[ref, t].mean()),
                "share_condition": float(share.loc[cond, t].mean()),
                "logit_change": change,
                "statistic": float(res.statistic) if res is not None else np.nan,
                "pvalue": float(res.pvalue)
                if res is not None and np.isfinite(res.pvalue)
                else np.nan,
                "n_reference": int(ref.sum()),
                "n_condition": int(cond.sum()),
            }
        )
    out = pd.DataFrame(rows)
    ok = out["pvalue"].notna()
    out["pvalue_adj"] = np.nan
    if ok.any():
        from scipy.stats import false_discovery_control

        out.loc[ok, "pvalue_adj"] = false_discovery_control(out.loc[ok, "pvalue"].to_numpy())
    return out.sort_values("pvalue", na_position="last").reset_index(drop=True)


def composition_by_condition(
    adata: AnnData, units: Any, cell_type_key: str = "cell_type"
) -> dict[str, pd.DataFrame]:
    """:func:`composition_test` of every condition against the reference, with the design's
    units (donors) and pairing (:class:`latentshift.design.units.Units`)."""
    table = proportions(_frame(units, adata.obs[cell_type_key]), "unit", "cell_type", "condition")
    return {c: composition_test(table, units.reference, c, units.paired) for c in units.labels[1:]}


def _frame(units: Any, cell_type: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unit": units.unit,
            "condition": units.condition,
            "cell_type": cell_type.astype(str).to_numpy(),
        }
    )


def by_donor(
    obs: pd.DataFrame,
    condition_column: str = "disease",
    control: str = "normal",
    paired: bool | str = "auto",
    donor_column: str = "donor_id",
    cell_type_key: str = "cell_type",
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The donors' composition and its test, from a case–control table of nuclei.

    Parameters
    ----------
    obs
        One row per nucleus: the condition, donor and cell-type columns.
    condition_column, control, paired, donor_column
        The design (``case_control`` params; :func:`latentshift.perturb.case_control.conditions_from_obs`).
    cell_type_key
        The cell-type column.

    Returns
    -------
    table : pandas.DataFrame
        :func:`proportions` per donor (and condition).
    tests : dict
        Condition → :func:`composition_test` against the control.
    """
    from latentshift.design.units import units_of
    from latentshift.perturb import case_control as cc

    condition = cc.conditions_from_obs(obs, condition_column, control, donor_column, paired)
    frame = pd.DataFrame(
        {"donor": obs[donor_column].astype(str).to_numpy(), "condition": condition}
    )
    units = units_of(frame, "donor", paired=paired)
    table = proportions(_frame(units, obs[cell_type_key]), "unit", "cell_type", "condition")
    tests = {c: composition_test(table, units.reference, c, units.paired) for c in units.labels[1:]}
    return table, tests


def lose_cells(
    adata: AnnData,
    losses: dict[str, float],
    seed: int = 0,
    eligible: np.ndarray | None = None,
    donor_key: str = "donor_id",
    cell_type_key: str = "cell_type",
) -> AnnData:
    """The simulator's composition shift: disease nuclei lose a share of some cell types.

    Parameters
    ----------
    adata
        Cells with ``obs[donor_key]`` and ``obs[cell_type_key]``.
    losses
        Cell type → the share of its nuclei lost, per donor (0.5: half of each donor's).
    seed
        Seed of which nuclei go.
    eligible
        Boolean per cell: the nuclei that can be lost (default: the disease nuclei, those whose
        ``obs["disease"]`` is not the simulator's control value).
    donor_key, cell_type_key
        The obs columns of the donor and the cell type.
    """
    from latentshift.data.counts import subset

    types = set(adata.obs[cell_type_key].astype(str))
    unknown = sorted(set(losses) - types)
    if unknown:
        raise DataError(
            f"data.simulate_disease_type_loss names cell type(s) {', '.join(unknown)} the data do "
            f"not hold; their types: {', '.join(sorted(types))}."
        )
    rng = np.random.default_rng([seed, 61])
    keep = np.ones(adata.n_obs, dtype=bool)
    donor = adata.obs[donor_key].astype(str).to_numpy()
    ct = adata.obs[cell_type_key].astype(str).to_numpy()
    if eligible is None:
        from latentshift.perturb.case_control import CONTROL

        eligible = (adata.obs["disease"].astype(str) != CONTROL[0]).to_numpy()
    eligible = np.asarray(eligible, dtype=bool)
    for t, share in losses.items():
        for d in sorted(set(donor[eligible])):
            rows = np.flatnonzero((donor == d) & (ct == t) & eligible)
            gone = rng.choice(rows, int(round(share * rows.size)), replace=False)
            keep[gone] = False
    log.info("composition shift: %d nuclei lost (%s)", int((~keep).sum()), losses)
    out = subset(adata, rows=keep)
    out.uns["case_control"] = {**dict(out.uns.get("case_control", {})), "type_loss": dict(losses)}
    return out


def summary_metrics(tests: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The ``composition`` section of ``metrics.json``: per condition and cell type, the shares,
    the logit change and its (adjusted) p-value."""
    out: dict[str, Any] = {}
    for cond, table in tests.items():
        out[cond] = {
            str(r["cell_type"]): {
                k: (None if not np.isfinite(float(r[k])) else float(r[k]))
                for k in (
                    "share_reference",
                    "share_condition",
                    "logit_change",
                    "pvalue",
                    "pvalue_adj",
                )
            }
            for r in table.to_dict("records")
        }
    return out
