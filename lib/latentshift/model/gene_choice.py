"""Which genes the LDVAE reads: all, or highly variable genes chosen without the answer.

- :func:`select_genes` — all genes, or ``n_top_genes`` highly variable genes of the training
  cells (scanpy's ``seurat_v3`` or Pearson residuals), ranked on every training cell
  (label-blind) or on the normal ones, plus any genes to keep;
- :func:`model_genes` — the choice the ``ldvae`` params make; forcing the disease-set genes in
  (``keep_perturbed_genes``) is an **oracle**: it tells the model where the shift is;
- :func:`cells_for_model` — the cells restricted to those genes, with 05's disease-gene
  baseline computed first over every gene; :func:`genes_in_model`, :func:`gene_choice_table`
  say how many genes of each shifted set the model reads;
- :func:`keep_model_genes` — the same choice before the copies are made (atlas memory);
- :func:`train_mask` — which cells are training cells.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.errors import DataError
from latentshift.perturb.shift import perturbed_genes

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)


def select_genes(
    adata: AnnData,
    n_top_genes: int | None,
    *,
    keep: Sequence[str] | None = None,
    hvg_cells: str = "all",
    flavor: str = "seurat_v3",
    split_key: str = "split",
    train_value: str = "train",
    layer: str = "counts",
    max_cells: int | None = None,
    seed: int = 0,
) -> list[str]:
    """The genes the LDVAE reads.

    Parameters
    ----------
    adata
        Cells × genes with integer counts in ``layers[layer]`` and ``obs[split_key]``.
    n_top_genes
        ``None``: every gene (the original study). A number: the ``n_top_genes`` most variable
        genes of the training cells (``flavor="seurat_v3"`` on counts), plus every gene of
        ``keep``.
    keep
        Genes always kept whether variable or not. ``None`` or empty: none (label-blind).
        Passing the disease-set genes (:func:`latentshift.perturb.shift.perturbed_genes`,
        ``ldvae.keep_perturbed_genes``) is an **oracle**: it tells the model where the shift is.
    hvg_cells
        Which training cells rank variability: ``"all"`` (every training cell, the disease
        copies included, labels unseen — what a user with unlabelled nuclei does; a shifted gene
        is more variable across them, which is the signal in question) or ``"normal"`` (the
        normal training cells only, when ``obs["condition"]`` is present).
    flavor
        scanpy's ranking: ``"seurat_v3"`` (``scanpy.pp.highly_variable_genes`` on counts) or
        ``"pearson_residuals"`` (``scanpy.experimental.pp.highly_variable_genes``: the variance
        of analytic Pearson residuals, Lause et al. 2021).
    split_key, train_value
        Which cells are training cells; test cells never influence the choice.
    layer
        The counts layer.
    max_cells
        Rank variability on at most this many of those cells, drawn at random (seeded by
        ``seed``): scanpy's ranking copies the cells it ranks on twice, which at atlas size is
        the notebook's memory peak. ``None``: all of them.
    seed
        Seeds that draw.

    Returns
    -------
    list of str
        Selected ``var_names`` in data order.
    """
    import scanpy as sc

    if hvg_cells not in ("all", "normal"):
        raise DataError(f"hvg_cells is {hvg_cells!r}; it must be 'all' or 'normal'.")
    if n_top_genes is None or n_top_genes >= adata.n_vars:
        return list(adata.var_names)
    chosen_before = adata.uns.get("latentshift", {}).get("ldvae_genes_chosen")
    if chosen_before is not None and int(chosen_before) == int(n_top_genes):
        log.info(
            "genes: chosen before the disease copies were made (02) — all %d kept", adata.n_vars
        )
        return list(adata.var_names)
    keep = list(keep or [])
    missing = sorted(set(keep) - set(adata.var_names))
    if missing:
        raise DataError(
            f"{len(missing)} genes to keep are not in the data (e.g. {missing[:3]}); "
            "pass var_names of this AnnData."
        )
    mask = train_mask(adata, split_key, train_value)
    ranked_on = "all"
    if hvg_cells == "normal" and "condition" in adata.obs:
        normal = mask & (adata.obs["condition"].astype(str) == "normal").to_numpy()
        if normal.sum() >= 10:
            mask, ranked_on = normal, "normal"
    if max_cells is not None and mask.sum() > max_cells:
        drawn = np.random.default_rng([seed, 29]).choice(
            np.flatnonzero(mask), int(max_cells), replace=False
        )
        mask = np.zeros_like(mask)
        mask[drawn] = True
        ranked_on += f", {int(max_cells)} of them drawn at random"
    train = adata[mask]
    if flavor == "pearson_residuals":
        hvg = sc.experimental.pp.highly_variable_genes(
            train, n_top_genes=int(n_top_genes), layer=layer, inplace=False
        )
    elif flavor == "seurat_v3":
        hvg = sc.pp.highly_variable_genes(
            train,
            n_top_genes=int(n_top_genes),
            flavor="seurat_v3",
            layer=layer,
            inplace=False,
            check_values=False,  # integer counts are checked where they are read (01, 03)
        )
    else:
        raise DataError(f"flavor is {flavor!r}; it must be 'seurat_v3' or 'pearson_residuals'.")
    chosen = set(train.var_names[np.asarray(hvg["highly_variable"], dtype=bool)]) | set(keep)
    genes = [g for g in adata.var_names if g in chosen]
    log.info(
        "genes: %d highly variable (%s training cells)%s → %d of %d",
        n_top_genes,
        ranked_on,
        f" + {len(keep)} genes kept whatever their variability" if keep else "",
        len(genes),
        adata.n_vars,
    )
    return genes


def model_genes(adata: AnnData, params: Mapping[str, Any]) -> list[str]:
    """The LDVAE's genes as the ``ldvae`` params choose them (see :func:`select_genes`).

    Parameters
    ----------
    adata
        The perturbed cells (``perturbed.h5ad``) with ``obs["split"]``.
    params
        The resolved ``ldvae`` section: ``n_top_genes``, ``hvg_cells`` and
        ``keep_perturbed_genes`` (the oracle: every disease-set gene forced in).
    """
    keep = perturbed_genes(adata) if params["keep_perturbed_genes"] else []
    return select_genes(
        adata,
        params["n_top_genes"],
        keep=keep,
        hvg_cells=params["hvg_cells"],
        flavor=params.get("hvg_flavor", "seurat_v3"),
        max_cells=params.get("hvg_max_cells"),
    )


def genes_in_model(
    genes: Sequence[str], gene_sets: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, int]]:
    """How many genes of each perturbed set the model reads.

    Parameters
    ----------
    genes
        The model's genes.
    gene_sets
        ``{condition: [genes perturbed]}`` (``uns["perturbation_genes"]``).

    Returns
    -------
    dict
        ``{condition: {"in_model": k, "shifted": n}}``.
    """
    chosen = set(map(str, genes))
    return {
        str(c): {
            "in_model": int(sum(str(g) in chosen for g in np.atleast_1d(gs))),
            "shifted": int(len(np.atleast_1d(gs))),
        }
        for c, gs in gene_sets.items()
    }


def sets_within(
    genes_by_set: Mapping[str, Sequence[str]], var_names: Sequence[str]
) -> tuple[dict[str, list[str]], pd.DataFrame]:
    """The disease sets cut to the genes the cells still have (after :func:`keep_model_genes`).

    With a label-blind choice before the copies, a set gene that is not among the model's genes
    is no longer in the cells: it cannot be shifted, and the LDVAE would not read it anyway.
    Only the set genes that remain are perturbed; the table says how many that is.

    Returns
    -------
    sets, table
        ``{set: [genes kept]}`` and one row per set: ``matched`` (genes of the set in the
        data), ``in_model`` (of those, among the model's genes).

    Raises
    ------
    DataError
        A set has no gene left, with the fix.
    """
    present = set(map(str, var_names))
    kept = {k: [g for g in genes if str(g) in present] for k, genes in genes_by_set.items()}
    table = pd.DataFrame(
        {
            "matched": {k: len(v) for k, v in genes_by_set.items()},
            "in_model": {k: len(v) for k, v in kept.items()},
        }
    )
    table.index.name = "gene set"
    empty = [k for k, v in kept.items() if not v]
    if empty:
        raise DataError(
            f"none of the genes of {', '.join(empty)} is among the {len(present)} genes chosen for "
            "the LDVAE before the copies, so nothing of it could be shifted. Raise "
            "ldvae.n_top_genes, or set ldvae.keep_perturbed_genes: true (an oracle: it forces the "
            "set genes in)."
        )
    for k in genes_by_set:
        log.info(
            "gene set %s: %d of %d matched genes among the model's genes",
            k,
            len(kept[k]),
            len(genes_by_set[k]),
        )
    return kept, table


def cells_for_model(adata: AnnData, params: Mapping[str, Any]) -> tuple[AnnData, dict[str, Any]]:
    """The perturbed cells restricted to the LDVAE's genes, with the disease-gene baseline kept.

    Chooses the genes (:func:`model_genes`), and before cutting the others away stores the
    features of 05's disease-gene baseline in ``obsm["X_disease_genes"]``
    (:func:`latentshift.model.features.disease_gene_features` over every gene of ``adata``: each
    cell's library size is its total over all its genes, so the baseline is the same whatever
    genes the LDVAE reads).

    Parameters
    ----------
    adata
        ``perturbed.h5ad`` (every gene, ``obs["split"]``, ``uns["perturbation_genes"]``).
    params
        The resolved ``ldvae`` section.

    Returns
    -------
    tuple
        The restricted cells (counts copied once; shared with ``adata`` when every gene is
        kept) and the gene choice for ``metrics.json``:
        ``n_top_genes``, ``hvg_cells``, ``keep_perturbed_genes``, ``oracle`` (the choice knows
        which genes were shifted), ``n_genes_in_data``, ``n_genes_used`` and, per condition,
        ``set_genes`` (:func:`genes_in_model`).
    """
    from latentshift.data.counts import subset
    from latentshift.model.features import DISEASE_GENES_KEY, disease_gene_features

    genes = model_genes(adata, params)
    shifted = perturbed_genes(adata)
    features = disease_gene_features(adata, shifted) if shifted else None
    cols = adata.var_names.get_indexer(genes)
    if len(cols) == adata.n_vars and np.array_equal(cols, np.arange(adata.n_vars)):
        # every gene kept (genes chosen in 02, before the copies): the counts are shared, not copied
        out = subset(adata, copy_counts=False)
    else:
        out = subset(adata, cols=cols)
    if features is not None:
        out.obsm[DISEASE_GENES_KEY] = features.astype(np.float32)
    choice = {
        "n_top_genes": params["n_top_genes"],
        "hvg_cells": params["hvg_cells"],
        "hvg_flavor": params.get("hvg_flavor", "seurat_v3"),
        "keep_perturbed_genes": bool(params["keep_perturbed_genes"]),
        "oracle": bool(params["keep_perturbed_genes"] and params["n_top_genes"] is not None),
        "n_genes_in_data": int(adata.n_vars),
        "n_genes_used": len(genes),
        "set_genes": genes_in_model(genes, adata.uns.get("perturbation_genes", {}) or {}),
    }
    return out, choice


def gene_choice_table(choice: Mapping[str, Any]) -> pd.DataFrame:
    """The gene choice of :func:`cells_for_model` as a table: how many genes of each shifted set
    the model reads, under the settings that chose them."""
    how = (
        "every gene"
        if choice["n_top_genes"] is None
        else f"{choice['n_top_genes']} HVGs ranked on {choice['hvg_cells']} training cells"
        + (" + every disease-set gene (oracle)" if choice["keep_perturbed_genes"] else "")
    )
    rows = [
        {"genes": "model", "in the model": choice["n_genes_used"], "of": choice["n_genes_in_data"]}
    ] + [
        {"genes": f"{c} set (shifted)", "in the model": v["in_model"], "of": v["shifted"]}
        for c, v in choice["set_genes"].items()
    ]
    table = pd.DataFrame(rows).set_index("genes")
    table.columns.name = how
    return table


def keep_model_genes(
    cells: AnnData,
    set_genes: Sequence[str],
    params: Mapping[str, Any],
    split: Mapping[str, Any],
    seed: int,
) -> AnnData:
    """The normal cells restricted to the genes the LDVAE will read, before any copy is made.

    At atlas size the disease copies triple the counts in memory; the LDVAE reads only its
    highly variable genes (plus, with the oracle ``keep_perturbed_genes``, every disease-set
    gene), so choosing them first (on the normal cells the grouped split will put in training,
    as :func:`select_genes` does after the copies with ``hvg_cells="normal"``) and copying only
    those genes cuts memory by the share of nonzeros the other genes hold. The split over source
    cells does not depend on the copies, so it is drawn here the same way
    :func:`latentshift.design.split.assign_split` will draw it in 02.

    Parameters
    ----------
    cells
        The normal cells (``cells.h5ad``).
    set_genes
        The disease sets' matched ``var_names`` (kept only when
        ``params["keep_perturbed_genes"]``).
    params
        The resolved ``ldvae`` section (``n_top_genes``, ``keep_perturbed_genes``; ``hvg_cells``
        must be ``"normal"``: :func:`latentshift.config.validate` refuses anything else).
    split
        The resolved ``split`` params section; must be grouped.
    seed
        The split's seed.

    Returns
    -------
    AnnData
        The cells with only the chosen genes; ``uns["latentshift"]["ldvae_genes_chosen"]``
        records ``n_top_genes`` so that 03 does not choose again.

    Raises
    ------
    DataError
        ``split.grouped`` is false (a plain split is drawn over the copies, so it is not known
        before they exist), or ``hvg_cells`` is not ``"normal"``.
    """
    import anndata as ad

    from latentshift.data.counts import subset
    from latentshift.design.split import assign_split

    n_top_genes = params["n_top_genes"]
    if n_top_genes is None or n_top_genes >= cells.n_vars:
        return cells
    if params["hvg_cells"] != "normal":
        raise DataError(
            "ldvae.genes_before_copies ranks variability before the disease copies exist, so on "
            f"the normal cells only, but ldvae.hvg_cells is {params['hvg_cells']!r}. Set "
            "ldvae.hvg_cells to 'normal', or ldvae.genes_before_copies to false."
        )
    if not split["grouped"]:
        raise DataError(
            "ldvae.genes_before_copies needs split.grouped: true (a plain split is drawn over "
            "the disease copies, so the training cells are not known before the copies exist). "
            "Set split.grouped to true or ldvae.genes_before_copies to false."
        )
    obs = pd.DataFrame(
        {
            "source_cell": cells.obs_names.astype(str),
            "cell_type": cells.obs["cell_type"].to_numpy(),
        },
        index=cells.obs_names,
    )
    side = assign_split(ad.AnnData(obs=obs), split["train_fraction"], grouped=True, seed=seed)
    counts = cells.layers["counts"] if "counts" in cells.layers else cells.X
    view = ad.AnnData(
        obs=pd.DataFrame({"split": side.to_numpy()}, index=cells.obs_names),
        var=pd.DataFrame(index=cells.var_names),
        layers={"counts": counts},
    )
    keep = list(set_genes) if params["keep_perturbed_genes"] else []
    genes = select_genes(
        view,
        n_top_genes,
        keep=keep,
        hvg_cells="normal",
        flavor=params.get("hvg_flavor", "seurat_v3"),
        max_cells=params.get("hvg_max_cells"),
        seed=seed,
    )
    out = subset(cells, cols=cells.var_names.get_indexer(genes))
    out.uns.setdefault("latentshift", {})["ldvae_genes_chosen"] = int(n_top_genes)
    log.info("genes kept before the copies: %d of %d", out.n_vars, cells.n_vars)
    return out


def train_mask(adata: AnnData, split_key: str, train_value: str) -> np.ndarray:
    if split_key not in adata.obs:
        raise DataError(
            f"obs['{split_key}'] is missing: the LDVAE trains on the training split only. "
            "Run 02_perturb, which writes the train/test split."
        )
    mask = (adata.obs[split_key].astype(str) == train_value).to_numpy()
    if mask.sum() < 10:
        raise DataError(
            f"only {int(mask.sum())} cells have obs['{split_key}'] == '{train_value}'; the LDVAE "
            "needs at least 10 training cells. Raise split.train_fraction or use more cells."
        )
    return mask
