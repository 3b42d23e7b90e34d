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


def test_the_controls_hold_eight_donors_and_the_symbols_derive_again():
    from latentshift.data import datasets

    adata = ad.read_h5ad(HERE / "kang2018_ctrl_8donors.h5ad")
    assert adata.shape == (12261, 1287) and adata.X.dtype.kind == "i"
    assert (adata.obs["disease"] == "normal").all()
    sizes = adata.obs["donor_id"].value_counts().to_dict()
    assert sizes == {
        "1015": 2738,
        "1256": 2108,
        "1488": 2030,
        "1244": 1879,
        "1016": 1723,
        "101": 858,
        "107": 517,
        "1039": 408,
    }
    paired = ad.read_h5ad(HERE / "kang2018_ifnb_2donors.h5ad", backed="r")
    again = datasets.gene_symbols(adata.var_names, paired.var)
    assert (again["feature_name"].to_numpy() == adata.var["feature_name"].astype(str)).all()
    assert again["feature_name_source"].value_counts().to_dict() == {
        "kang2018": 1016,
        "gse64810": 270,
        "ensembl_id": 1,
    }
    # every control barcode of the paired file is here (the same cells)
    controls = paired.obs_names[paired.obs["disease"] == "normal"].str.replace(
        r"^ctrl\d+_", "", regex=True
    )
    assert set(controls) <= set(adata.obs_names)
