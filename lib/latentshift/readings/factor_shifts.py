"""How each condition shifts each latent factor, with the design's unit counted once.

06 asks which factors carry a condition: the shift of every factor, its interval and effect
size, factors ranked by ``|effect|`` (:func:`factor_shifts`). The unit and the pairing come
from :mod:`latentshift.design.units`:

- **paired** (a cell and its copies; a donor before and after a stimulation): per unit, the
  mean latent of its condition cells minus the mean of its reference cells
  (:func:`paired_differences` — for copies, a copy minus its own source cell); the shift is the
  mean of those differences, effect size = mean / sd of the differences, ``cohens_d`` = mean /
  sd of the reference cells;
- **unpaired** (a donor is a case or a control): each unit's mean latent counts once; the shift
  is the mean of the condition's unit means minus the reference's, interval from the units
  (Welch), effect size = shift / pooled sd of the unit means (Cohen's d over units), so a unit
  with many cells does not weigh more than one with few.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from latentshift.design.folds import Folds
from latentshift.design.units import Units
from latentshift.errors import LoadingsError

log = logging.getLogger(__name__)

#: The settings of ``loadings.cells``.
CELLS = ("auto", "test", "all")


def resolve_cells(cells: str, folds: Folds | None) -> str:
    """``loadings.cells``: ``"auto"`` is ``"test"`` (the cells held out from the LDVAE) when
    the split holds out a fraction of many units, and ``"all"`` for leave-units-out folds
    (a handful of donors: every one is needed)."""
    if cells not in CELLS:
        raise LoadingsError(
            f"cells = {cells!r}: use one of {', '.join(CELLS)} (params key loadings.cells)."
        )
    if cells != "auto":
        return cells
    return "test" if folds is not None and folds.scheme == "held-out" else "all"


def _default_units(obs: pd.DataFrame) -> Units:
    """Source cells with the conditions of ``obs["condition"]``, ``normal`` the reference."""
    for col in ("condition", "source_cell"):
        if col not in obs.columns:
            raise LoadingsError(
                f"obs has no '{col}' column: use latent.h5ad written by 03_ldvae (from 02_perturb's cells)."
            )
    cond = obs["condition"]
    order = cond.cat.categories if isinstance(cond.dtype, pd.CategoricalDtype) else pd.unique(cond)
    others = [str(c) for c in order if str(c) != "normal"]
    return Units(
        obs["source_cell"].astype(str).to_numpy(),
        cond.astype(str).to_numpy(),
        ("normal", *others),
        True,
        "source cell",
    )


def _kept(obs: pd.DataFrame, cells: str) -> np.ndarray:
    if cells not in ("test", "all"):
        raise LoadingsError(f"cells = {cells!r}: use 'test' or 'all' (params key loadings.cells).")
    keep = np.ones(len(obs), dtype=bool)
    if cells == "test":
        if "split" not in obs.columns:
            raise LoadingsError(
                "obs has no 'split' column; pass cells='all' or use latent.h5ad from 03_ldvae."
            )
        keep &= obs["split"].astype(str).to_numpy() == "test"
    return keep


def paired_differences(
    latent: np.ndarray,
    obs: pd.DataFrame,
    condition: str,
    cells: str = "test",
    perturbed_only: bool = True,
    units: Units | None = None,
) -> np.ndarray:
    """Per unit, the mean latent of its condition cells minus that of its reference cells.

    For copies (one of each per source cell) this is each copy's latent minus its own source
    cell's, in the copies' order.

    Parameters
    ----------
    latent
        Cells × dims (rows in ``obs`` order).
    obs
        With ``split`` when ``cells == "test"``; ``perturbed`` when ``perturbed_only``.
    condition
        The condition.
    cells
        ``"test"``: only test-split cells (cells the model was not trained on); ``"all"``: all.
    perturbed_only
        Keep only condition cells the perturbation touched (``obs["perturbed"]``). If it
        touched none (e.g. every copy untouched), all are used and a warning is logged.
    units
        The design (default: source cells, ``obs["condition"]``, ``normal`` the reference).

    Returns
    -------
    numpy.ndarray
        Units × dims.
    """
    units = units if units is not None else _default_units(obs)
    latent = np.asarray(latent, dtype=float)
    if latent.shape[0] != obs.shape[0]:
        raise LoadingsError(
            f"latent has {latent.shape[0]} rows but obs has {obs.shape[0]}; pass the same cells."
        )
    keep = _kept(obs, cells)
    cond = units.condition
    if condition not in set(cond):
        raise LoadingsError(
            f"condition '{condition}' is not in obs['condition'] (have: {sorted(set(cond))})."
        )
    copies = keep & (cond == condition)
    if perturbed_only and "perturbed" in obs.columns:
        touched = copies & obs["perturbed"].astype(bool).to_numpy()
        if touched.any():
            copies = touched
        else:
            log.warning("no cell of '%s' is marked perturbed; using all of them", condition)
    reference = keep & (cond == units.reference)
    # each unit's mean, in order of the condition cells' first appearance
    mean_copy = pd.DataFrame(latent[copies]).groupby(units.unit[copies], sort=False).mean()
    mean_ref = pd.DataFrame(latent[reference]).groupby(units.unit[reference], sort=False).mean()
    both = mean_copy.index[mean_copy.index.isin(mean_ref.index)]
    if not len(both):
        raise LoadingsError(
            f"no {units.name} holds both a '{condition}' and a '{units.reference}' cell among "
            f"the {cells} cells; check obs['source_cell'] (02_perturb) or use cells='all'."
        )
    return mean_copy.loc[both].to_numpy() - mean_ref.loc[both].to_numpy()


def shift_statistics(
    diffs: np.ndarray,
    reference: np.ndarray | None = None,
    factor_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-dimension summary of paired differences.

    Parameters
    ----------
    diffs
        Units × dims (from :func:`paired_differences`).
    reference
        Optional reference cells × dims, for the between-group Cohen's d.
    factor_names
        Row names (default ``Z_0 …``).

    Returns
    -------
    pandas.DataFrame
        Rows = dims; ``n_pairs``, ``mean_shift``, ``sd_shift``, ``ci_low``/``ci_high`` (95%
        normal interval of the mean), ``effect_size`` (paired: mean / sd of the differences; 0
        when every difference is 0), ``cohens_d`` (mean shift / sd of the reference cells, when
        given).
    """
    diffs = np.asarray(diffs, dtype=float)
    n, k = diffs.shape
    names = list(factor_names) if factor_names is not None else [f"Z_{i}" for i in range(k)]
    mean = diffs.mean(axis=0)
    sd = diffs.std(axis=0, ddof=1) if n > 1 else np.zeros(k)
    half = 1.96 * sd / np.sqrt(max(n, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), 0.0)
    out = pd.DataFrame(
        {
            "n_pairs": n,
            "mean_shift": mean,
            "sd_shift": sd,
            "ci_low": mean - half,
            "ci_high": mean + half,
            "effect_size": effect,
        },
        index=pd.Index(names, name="factor"),
    )
    if reference is not None:
        ref_sd = np.asarray(reference, dtype=float).std(axis=0, ddof=1)
        out["cohens_d"] = np.where(ref_sd > 0, mean / np.where(ref_sd > 0, ref_sd, 1.0), 0.0)
    return out


def unit_mean_shift(
    latent: np.ndarray, units: Units, condition: str, keep: np.ndarray, factor_names: Sequence[str]
) -> pd.DataFrame:
    """Between units: the condition's unit means against the reference's (Welch; see the
    module docstring). Columns as :func:`shift_statistics`, plus ``n_units_reference``."""
    means = (
        pd.DataFrame(latent[keep], columns=list(factor_names))
        .groupby(units.unit[keep], sort=True)
        .mean()
    )
    cond_of = pd.Series(units.condition[keep]).groupby(units.unit[keep], sort=True).first()
    x = means[cond_of.loc[means.index].to_numpy() == condition]
    ref = means[cond_of.loc[means.index].to_numpy() == units.reference]
    if len(x) < 2 or len(ref) < 2:
        raise LoadingsError(
            f"shifts between {units.name}s need 2 {units.name}s per side; '{condition}' has "
            f"{len(x)}, '{units.reference}' {len(ref)}."
        )
    diff = x.mean() - ref.mean()
    se = np.sqrt(x.var(ddof=1) / len(x) + ref.var(ddof=1) / len(ref))
    pooled = np.sqrt(
        ((len(x) - 1) * x.var(ddof=1) + (len(ref) - 1) * ref.var(ddof=1)) / (len(x) + len(ref) - 2)
    )
    effect = np.where(pooled > 0, diff / pooled.where(pooled > 0, 1.0), 0.0)
    return pd.DataFrame(
        {
            "n_pairs": len(x),
            "n_units_reference": len(ref),
            "mean_shift": diff.to_numpy(),
            "sd_shift": pooled.to_numpy(),
            "ci_low": (diff - 1.96 * se).to_numpy(),
            "ci_high": (diff + 1.96 * se).to_numpy(),
            "effect_size": effect,
            "cohens_d": effect,
        },
        index=pd.Index(list(factor_names), name="factor"),
    )


def factor_shifts(
    latent: np.ndarray,
    obs: pd.DataFrame,
    conditions: Sequence[str],
    factor_names: Sequence[str] | None = None,
    cells: str = "test",
    perturbed_only: bool = True,
    units: Units | None = None,
) -> pd.DataFrame:
    """The shift of every condition on every factor, factors ranked by ``|effect|``.

    Parameters
    ----------
    latent, obs, cells, perturbed_only
        As in :func:`paired_differences`.
    conditions
        The conditions compared with the reference.
    factor_names
        Names of the latent dims (default ``Z_0 …``).
    units
        The design (default: source cells, paired).

    Returns
    -------
    pandas.DataFrame
        Long table: ``condition``, ``factor``, the columns of :func:`shift_statistics`
        (``n_pairs``: the units that give a shift), and ``rank`` (1 = largest
        ``|effect_size|`` within the condition).
    """
    units = units if units is not None else _default_units(obs)
    latent = np.asarray(latent, dtype=float)
    names = (
        list(factor_names)
        if factor_names is not None
        else [f"Z_{i}" for i in range(latent.shape[1])]
    )
    keep = _kept(obs, cells)
    frames = []
    for condition in conditions:
        if units.paired:
            diffs = paired_differences(latent, obs, condition, cells, perturbed_only, units)
            ref = latent[keep & (units.condition == units.reference)]
            stats_ = shift_statistics(diffs, ref, names)
        else:
            stats_ = unit_mean_shift(latent, units, condition, keep, names)
        stats_ = stats_.reset_index()
        stats_.insert(0, "condition", condition)
        stats_["rank"] = (
            stats_["effect_size"].abs().rank(ascending=False, method="first").astype(int)
        )
        frames.append(stats_)
    return pd.concat(frames, ignore_index=True)
