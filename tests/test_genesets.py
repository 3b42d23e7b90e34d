"""Tests of latentshift.perturb.genesets: GMT in/out, set selection, matching against data."""

from __future__ import annotations

import string
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshift.perturb import genesets as gs
from latentshift.perturb.genesets import GeneSet, GeneSetError


def _adata(var_names, var=None):
    X = sp.csr_matrix(np.ones((3, len(var_names)), dtype=np.int32))
    frame = pd.DataFrame(var or {}, index=pd.Index(var_names))
    return ad.AnnData(X=X, var=frame)


def _write(tmp_path, text, name="sets.gmt"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- GMT ------------------------------------------------------------------------------------

_field = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(
    sets=st.dictionaries(
        _field,
        st.tuples(
            st.text(alphabet=string.ascii_letters + " :/.", max_size=20),
            st.lists(_field, min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_gmt_round_trip(tmp_path_factory, sets):
    path = tmp_path_factory.mktemp("gmt") / "x.gmt"
    original = {
        name: GeneSet(name, desc.strip(), tuple(genes)) for name, (desc, genes) in sets.items()
    }
    gs.write_gmt(original, path)
    back = gs.read_gmt(path)
    assert back == original
    assert list(back) == list(original)


def test_read_gmt_msigdb_format(tmp_path):
    path = _write(
        tmp_path,
        "SET_A\thttp://example.org/a\tGENE1\tGENE2\tGENE2\tGENE3\t\n\nSET_B\tdesc\tX1\r\n",
    )
    sets = gs.read_gmt(path)
    assert list(sets) == ["SET_A", "SET_B"]
    assert sets["SET_A"].genes == (
        "GENE1",
        "GENE2",
        "GENE3",
    )  # duplicates dropped, trailing tab ignored
    assert sets["SET_A"].description == "http://example.org/a"
    assert len(sets["SET_B"]) == 1


def test_read_gmt_missing_file(tmp_path):
    _write(tmp_path, "A\td\tG\n", name="other.gmt")
    with pytest.raises(GeneSetError, match=r"does not exist.*other\.gmt"):
        gs.read_gmt(tmp_path / "nope.gmt")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("A\td\tG1\nB d G2 G3\n", r"line 2: no tab"),
        ("A\td\tG1\n\nB\tdesc\n", r"line 3: set 'B' lists no genes"),
        ("\td\tG1\n", r"line 1: the set has no name"),
        ("A\td\tG1\nA\td\tG2\n", r"line 2: set name 'A' is used twice"),
    ],
)
def test_read_gmt_malformed_lines(tmp_path, text, pattern):
    with pytest.raises(GeneSetError, match=pattern):
        gs.read_gmt(_write(tmp_path, text))


def test_write_gmt_rejects_tabs(tmp_path):
    with pytest.raises(GeneSetError, match="tab"):
        gs.write_gmt([GeneSet("A", "a\tb", ("G",))], tmp_path / "x.gmt")


def test_select_sets_did_you_mean():
    sets = {
        "ALS_MOTOR_CORTEX_DOWN": GeneSet("ALS_MOTOR_CORTEX_DOWN", "", ("A",)),
        "HD_CORTEX_UP": GeneSet("HD_CORTEX_UP", "", ("B",)),
    }
    with pytest.raises(GeneSetError) as err:
        gs.select_sets(sets, ["HD_CORTEX_UPP"])
    assert "Did you mean 'HD_CORTEX_UP'" in str(err.value)
    assert "ALS_MOTOR_CORTEX_DOWN, HD_CORTEX_UP" in str(err.value)
    with pytest.raises(GeneSetError, match="Did you mean 'HD_CORTEX_UP'"):
        gs.select_sets(sets, ["hd_cortex_up"])
    assert list(gs.select_sets(sets, ["HD_CORTEX_UP", "HD_CORTEX_UP"])) == ["HD_CORTEX_UP"]


# --- matching -------------------------------------------------------------------------------


def test_match_case_insensitive_on_var_names():
    adata = _adata(["Snap25", "GAD1", "c21orf62", "MT-CO1"])
    sets = {"S": GeneSet("S", "", ("SNAP25", "gad1", "C21ORF62", "NOPE"))}
    table, genes = gs.match_genesets(adata, sets, ["S"], min_found_fraction=0.5)
    assert genes["S"] == ["Snap25", "GAD1", "c21orf62"]
    row = table.loc["S"]
    assert (row["n_genes"], row["n_found"]) == (4, 3)
    assert row["missing"] == ["NOPE"]
    assert row["found_fraction"] == pytest.approx(0.75)


def test_match_through_ensembl_ids_and_feature_name():
    ids = ["ENSG00000132639", "ENSG00000128683", "ENSG00000000003", "ENSG00000999999"]
    adata = _adata(ids, {"feature_name": ["SNAP25", "GAD1", "TSPAN6", "SNAP25"]})
    sets = {"S": GeneSet("S", "", ("snap25", "Gad1", "MISSING1"))}
    table, genes = gs.match_genesets(adata, sets)  # auto-detects feature_name
    # SNAP25 sits on two Ensembl IDs: both are perturbed
    assert genes["S"] == ["ENSG00000132639", "ENSG00000999999", "ENSG00000128683"]
    assert table.loc["S", "n_found"] == 2
    assert table.loc["S", "missing"] == ["MISSING1"]
    assert table.loc["S", "matched_on"] == "var['feature_name']"


def test_match_explicit_symbol_column():
    adata = _adata(["e1", "e2"], {"gene_symbols": ["AAA", "BBB"], "feature_name": ["x", "y"]})
    sets = {"S": GeneSet("S", "", ("BBB",))}
    _, genes = gs.match_genesets(adata, sets, symbol_column="gene_symbols")
    assert genes["S"] == ["e2"]
    with pytest.raises(GeneSetError, match="no such column.*gene_symbols, feature_name"):
        gs.match_genesets(adata, sets, symbol_column="symbol")


def test_zero_overlap_is_a_clear_error():
    adata = _adata(["ENSG01", "ENSG02"])
    sets = {"HD_UP": GeneSet("HD_UP", "", ("PITX1", "HOXB9", "HOXC10"))}
    with pytest.raises(GeneSetError) as err:
        gs.match_genesets(adata, sets, ["HD_UP"])
    msg = str(err.value)
    assert "HD_UP" in msg and "PITX1" in msg and "symbol_column" in msg


def test_low_found_fraction_warns_and_high_does_not():
    adata = _adata(["A", "B"])
    sets = {"S": GeneSet("S", "", ("A", "X", "Y", "Z"))}
    with pytest.warns(UserWarning, match=r"only 1 of 4 genes"):
        gs.match_genesets(adata, sets, min_found_fraction=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gs.match_genesets(adata, sets, min_found_fraction=0.25)


def test_match_summary_is_plain():
    adata = _adata(["A", "B"])
    sets = {"S": GeneSet("S", "", ("A", "B", "C"))}
    table, _ = gs.match_genesets(adata, sets, min_found_fraction=0.0)
    summary = gs.match_summary(table)
    assert summary == {
        "S": {
            "n_genes": 3,
            "n_found": 2,
            "found_fraction": 0.6667,
            "matched_on": "var_names",
            "missing": ["C"],
        }
    }
    assert isinstance(summary["S"]["n_found"], int) and not isinstance(
        summary["S"]["n_found"], np.integer
    )


def test_the_interferon_sets_and_their_found_counts_in_the_real_file(root):
    import anndata as ad

    from latentshift.perturb import genesets as gs

    sets = gs.read_gmt(root / "params/genesets/interferon_genesets.gmt")
    alpha = sets["HALLMARK_INTERFERON_ALPHA_RESPONSE"].genes
    gamma = sets["HALLMARK_INTERFERON_GAMMA_RESPONSE"].genes
    assert (len(alpha), len(gamma)) == (97, 200) and len(set(alpha)) == 97
    assert alpha[:4] == ("MX1", "ISG15", "OAS1", "IFIT3") and "WARS1" in alpha
    cells = ad.read_h5ad(
        root / "lib/latentshift/resources/kang2018/kang2018_ifnb_2donors.h5ad", backed="r"
    )
    _, genes = gs.match_genesets(cells, sets, list(sets))
    # the counts the README quotes
    assert {k: len(v) for k, v in genes.items()} == {
        "HALLMARK_INTERFERON_ALPHA_RESPONSE": 61,
        "HALLMARK_INTERFERON_GAMMA_RESPONSE": 106,
    }
