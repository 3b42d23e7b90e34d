"""What ``latent.h5ad`` carries in place of the counts: the loadings and per-gene means.

03_ldvae writes ``latent.h5ad`` without the counts (at atlas size they are gigabytes, and the
notebooks after it need the latent, not the counts). What 06_loadings used to derive from the
counts and the saved model is stored beside the latent instead:

- :func:`store_gene_summaries` (03) — ``varm["ldvae_loadings"]`` and
  ``var["mean_count_reference"]``;
- :func:`model_loadings`, :func:`reference_means` (06) — read them back, or, for an AnnData
  that still has its counts (an older run, a hand-made object), derive them as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.errors import LoadingsError
from latentshift.readings.loadings import ldvae_loadings, load_ldvae_loadings

if TYPE_CHECKING:
    from anndata import AnnData

#: ``varm`` key of the loadings 03_ldvae stores in ``latent.h5ad`` (genes × factors).
LOADINGS_KEY = "ldvae_loadings"
#: ``var`` column of each gene's mean count over the reference condition's cells (03_ldvae).
MEANS_KEY = "mean_count_reference"


def reference_condition(obs: pd.DataFrame) -> str:
    """The reference condition: the first category of ``obs["condition"]`` (normal, or the
    controls of a case–control design)."""
    condition = obs["condition"]
    if hasattr(condition, "cat"):
        return str(condition.cat.categories[0])
    return str(pd.Categorical(condition.astype(str)).categories[0])


def store_gene_summaries(adata: AnnData, model: Any) -> None:
    """Put what 06_loadings needs of the model and the counts into ``adata``, so that
    ``latent.h5ad`` can be written without the counts.

    ``varm["ldvae_loadings"]``: :func:`ldvae_loadings` (factor ``i`` is column ``Z_i``);
    ``var["mean_count_reference"]``: each gene's mean count over the reference condition's
    cells (:func:`reference_condition`), computed in bounded memory.
    """
    from latentshift.data.counts import counts_matrix, gene_means

    w = ldvae_loadings(model)
    if list(w.index) != list(adata.var_names):
        raise LoadingsError(
            "the model's genes differ from the cells' genes; restrict the cells to "
            "model.adata.var_names first."
        )
    adata.varm[LOADINGS_KEY] = w.to_numpy(dtype=np.float32)
    reference = (adata.obs["condition"].astype(str) == reference_condition(adata.obs)).to_numpy()
    adata.var[MEANS_KEY] = gene_means(counts_matrix(adata), reference)


def model_loadings(adata: AnnData, model_dir: str | Path) -> pd.DataFrame:
    """The LDVAE's loadings: ``varm["ldvae_loadings"]`` when 03_ldvae stored them, else loaded
    from the saved model (:func:`load_ldvae_loadings`, which needs the cells' counts)."""
    if LOADINGS_KEY in adata.varm:
        w = np.asarray(adata.varm[LOADINGS_KEY])
        out = pd.DataFrame(
            w, index=adata.var_names.copy(), columns=[f"Z_{i}" for i in range(w.shape[1])]
        )
        out.index.name = "gene"
        return out
    return load_ldvae_loadings(model_dir, adata)


def reference_means(adata: AnnData) -> pd.Series:
    """Each gene's mean count over the reference condition's cells: ``var["mean_count_reference"]``
    when 03_ldvae stored it, else computed from the cells' counts."""
    if MEANS_KEY in adata.var:
        return adata.var[MEANS_KEY].astype(float)
    from latentshift.data.counts import counts_matrix, gene_means

    if adata.X is None and "counts" not in adata.layers:
        raise LoadingsError(
            f"the cells carry neither var['{MEANS_KEY}'] nor counts; rerun 03_ldvae, which "
            "stores the per-gene means in latent.h5ad."
        )
    reference = (adata.obs["condition"].astype(str) == reference_condition(adata.obs)).to_numpy()
    return pd.Series(gene_means(counts_matrix(adata), reference), index=adata.var_names)
