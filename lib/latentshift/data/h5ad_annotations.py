"""The annotations of a count file: obs and var read and mapped, and the AnnData built.

* :func:`read_annotations` — obs and var of the counts' matrix (raw.X: raw/var), the gene
  symbol column found or checked, cell-type and donor labels copied, the file's own flags;
* :func:`build_anndata` — the ``cells.h5ad``-shaped AnnData of the counts read.

Used by :mod:`latentshift.data.h5ad`, which finds and reads the counts themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import scipy.sparse as sp

from latentshift.errors import DataError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

_ENSEMBL = r"^ENS[A-Z]*G\d{6,}(\.\d+)?$"


def _labels(values: pd.Series) -> pd.Categorical:
    """Labels as a string categorical, NaN kept as missing."""
    text = values.astype(object).where(values.notna(), None)
    return pd.Categorical([None if v is None else str(v) for v in text])


#: var columns that commonly hold gene symbols when the var_names are Ensembl ids.
_SYMBOL_CANDIDATES = ("gene_symbols", "gene_symbol", "gene_name", "gene_names", "symbol", "SYMBOL")


def _symbol_column(var: pd.DataFrame) -> str | None:
    """A var column of gene symbols (mostly not Ensembl ids), by its usual names; or None."""
    for column in _SYMBOL_CANDIDATES:
        if column in var.columns:
            values = var[column].astype(str)
            if values.str.match(_ENSEMBL).mean() < 0.5 and values.str.len().gt(0).mean() > 0.5:
                return column
    return None


def _read_var(f: Any, where: str) -> pd.DataFrame:
    """The var of the counts' matrix: ``raw/var`` for ``raw.X`` (with the main var's extra
    columns joined on; a missing ``feature_name`` there falls back to the gene's name), else var.
    """
    from anndata.io import read_elem  # deferred on purpose: anndata is heavy to import

    if where == "raw.X":
        var = read_elem(f["raw"]["var"])
        main_var = read_elem(f["var"])
        extra = [c for c in main_var.columns if c not in var.columns]
        if extra:
            joined = main_var[extra].reindex(var.index)
            for c in extra:
                col = joined[c]
                if c == "feature_name" and col.isna().any():
                    col = col.astype(object).where(
                        col.notna(), pd.Series(var.index, index=var.index)
                    )
                var[c] = col
    else:
        var = read_elem(f["var"])
    return var


def read_annotations(
    f: Any,
    where: str,
    shape: tuple[int, int],
    path: Path,
    symbol_column: str | None,
    cell_type_column: str,
    donor_column: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame, str | None, dict[str, Any]]:
    """obs and var of the counts' matrix, checked and mapped; the file's own latentshift flags.

    Parameters
    ----------
    f
        The open ``h5py.File`` (:func:`~latentshift.data.h5ad.open_h5ad`).
    where
        Where the counts are (``"X"``, ``"raw.X"``, ``"layers['counts']"``, ...): ``raw.X``
        takes its genes from ``raw/var`` (with the main var's extra columns joined on).
    shape
        The stored shape of the counts' matrix, checked against obs and var.
    path
        The file, for messages.
    symbol_column, cell_type_column, donor_column
        As in :func:`~latentshift.data.h5ad.read_h5ad_counts`.

    Returns
    -------
    obs : pandas.DataFrame
        With ``cell_type`` and, where known, ``donor_id`` (string categoricals, NaN kept).
    var : pandas.DataFrame
        With ``feature_name`` when a symbol column is known.
    symbol_column : str or None
        The symbol column used.
    flags : dict
        The ``uns["latentshift"]`` the file carries (``{}`` for files not written by
        latentshift).

    Raises
    ------
    DataError
        A shape that obs/var contradict, a missing symbol or cell-type column, Ensembl-ID genes
        with no symbol column.
    """
    from anndata.io import read_elem  # deferred on purpose: anndata is heavy to import

    obs = read_elem(f["obs"])
    var = _read_var(f, where)
    if shape != (len(obs), len(var)):
        raise DataError(
            f"{path}: the counts in {where} have shape {shape} but obs/var give "
            f"{(len(obs), len(var))}; the file looks damaged."
        )

    var_columns = ", ".join(map(str, var.columns)) or "none"
    if symbol_column is not None and symbol_column not in var.columns:
        raise DataError(
            f"data.symbol_column '{symbol_column}' is not a var column of {path}; available "
            f"var columns: {var_columns}. Set data.symbol_column to one of them, or null to use "
            "feature_name / the var_names."
        )
    if symbol_column is None and "feature_name" in var.columns:
        symbol_column = "feature_name"
    if symbol_column is None:
        ensembl = pd.Index(var.index.astype(str)).str.match(_ENSEMBL)
        found = _symbol_column(var) if len(var) and ensembl.mean() > 0.5 else None
        if found is not None:
            log.info("the genes are Ensembl ids; gene symbols from var['%s']", found)
            symbol_column = found
        elif len(var) and ensembl.mean() > 0.5:
            raise DataError(
                f"{path}: the genes are Ensembl IDs (e.g. {var.index[0]}) and var has no "
                f"'feature_name' column with gene symbols, so no gene set can be matched. var "
                f"columns: {var_columns}. Set data.symbol_column to the column holding gene "
                "symbols (e.g. gene_symbols, gene_name)."
            )
    if symbol_column is not None and symbol_column != "feature_name" and "feature_name" not in var:
        var["feature_name"] = var[symbol_column].astype(str)

    if cell_type_column not in obs.columns:
        hint = [
            str(c)
            for c in obs.columns
            if any(w in str(c).lower() for w in ("type", "class", "cluster", "label", "annot"))
        ]
        raise DataError(
            f"data.cell_type_column '{cell_type_column}' is not an obs column of {path}; "
            f"obs columns present: {', '.join(map(str, obs.columns)) or 'none'}. Set "
            "data.cell_type_column to the column holding cell-type labels"
            + (f" (candidates: {', '.join(hint)})." if hint else ".")
        )
    # a missing label stays missing (astype(str) would make it the label "nan"); 01 leaves
    # such cells out (latentshift.data.load.drop_unlabelled)
    obs["cell_type"] = _labels(obs[cell_type_column])
    if donor_column:
        if donor_column in obs.columns:
            obs["donor_id"] = _labels(obs[donor_column])
        else:
            log.warning(
                "obs column %r (data.donor_column) not in %s (obs columns: %s); no donor_id",
                donor_column,
                path,
                ", ".join(map(str, obs.columns)),
            )
    flags: dict[str, Any] = {}
    if "uns" in f and "latentshift" in f["uns"]:
        try:
            flags = dict(read_elem(f["uns"]["latentshift"]))
        except Exception:  # noqa: BLE001 - a foreign uns entry: ignore it
            flags = {}
    return obs, var, symbol_column, flags


def build_anndata(
    counts: sp.csr_matrix,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    path: Path,
    where: str,
    symbol_column: str | None,
    flags: Mapping[str, Any],
    sample: Mapping[str, Any] | None,
) -> AnnData:
    """The ``cells.h5ad``-shaped AnnData of counts read from a file.

    Parameters
    ----------
    counts
        Integer CSR counts (cells × genes).
    obs, var
        From :func:`read_annotations` (for a sample: the sampled rows of obs).
    path, where, symbol_column
        The file, where its counts were, the symbol column used (kept in ``uns``).
    flags
        The file's own ``uns["latentshift"]`` (``simulated`` and ``source`` are carried over).
    sample
        How a sample was drawn (:func:`~latentshift.data.h5ad.read_h5ad_sample`), or None.

    Returns
    -------
    AnnData
        ``X`` and ``layers["counts"]`` the same matrix; duplicated gene names made unique
        (the symbols kept in ``var["feature_name"]``); ``uns["latentshift"]`` as documented
        in :func:`~latentshift.data.h5ad.read_h5ad_counts`.
    """
    import anndata as ad  # deferred on purpose: anndata is heavy to import

    var = var.copy()
    for c in var.columns:  # as anndata's own copies do: no category without a gene
        if isinstance(var[c].dtype, pd.CategoricalDtype):
            var[c] = var[c].cat.remove_unused_categories()
    adata = ad.AnnData(X=counts, obs=obs, var=var)
    duplicated = int(adata.var_names.duplicated().sum())
    if duplicated:  # scanpy's convention: GENE, GENE-1, …; the symbols stay in feature_name
        if "feature_name" not in adata.var:
            adata.var["feature_name"] = adata.var_names.astype(str)
        adata.var_names_make_unique()
        log.warning(
            "%s: %d gene names occur more than once; they were made unique (GENE-1, GENE-2, …) "
            "and gene sets match every copy through var['feature_name']",
            path.name,
            duplicated,
        )
    # the same matrix object, as simulate_m1 and artifacts.read_h5ad make it: one copy of the
    # counts in memory (counts.subset and artifacts.write_h5ad keep it one)
    adata.layers["counts"] = adata.X
    info: dict[str, Any] = {
        "simulated": bool(flags.get("simulated", False)),
        "source": str(path),
        "counts_from": where,
        "symbol_column": symbol_column,
    }
    if flags.get("simulated"):
        info["simulated_by"] = str(flags.get("source", ""))
    if sample is not None:
        info["sample"] = dict(sample)
    if duplicated:
        info["duplicate_gene_names"] = duplicated
    adata.uns["latentshift"] = info
    return adata
