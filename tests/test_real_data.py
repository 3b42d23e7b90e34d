"""The shipped real cells (Kang et al. 2018): the file is what its README says it is."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

HERE = Path(__file__).resolve().parents[1] / "lib" / "latentshift" / "resources" / "kang2018"


def _sums() -> dict[str, str]:
    lines = (HERE / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines)}


@pytest.mark.parametrize("name", sorted(_sums()))
def test_shipped_files_match_their_checksums(name):
    digest = hashlib.sha256((HERE / name).read_bytes()).hexdigest()
    assert digest == _sums()[name]


def test_the_paired_file_holds_raw_counts_of_two_donors_in_both_conditions():
    adata = ad.read_h5ad(HERE / "kang2018_ifnb_2donors.h5ad")
    assert adata.shape == (1556, 1267)
    assert adata.X.dtype.kind == "i" and adata.X.format == "csr" and adata.X.min() >= 0
    counts = adata.obs.groupby(["donor_id", "disease"], observed=True).size()
    assert counts.to_dict() == {
        ("101", "IFN-beta stimulated"): 500,
        ("101", "normal"): 454,
        ("107", "IFN-beta stimulated"): 306,
        ("107", "normal"): 296,
    }
    # the known answer the README quotes: ISG15 rises from 0.28 to 47 UMIs per cell
    isg15 = np.asarray(adata[:, "ISG15"].X.todense()).ravel()
    stim = (adata.obs["disease"] == "IFN-beta stimulated").to_numpy()
    assert isg15[~stim].mean() == pytest.approx(0.28, abs=0.01)
    assert isg15[stim].mean() == pytest.approx(47, abs=1)
