"""Tests of latentshift.data.reference: the shipped gene levels and M1 cell-type table, and their
derivation from the public source tables (GSE64810, Siletti et al. 2023)."""

from __future__ import annotations

import csv
import gzip
import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentshift.data import derive_reference as dr
from latentshift.data import reference as ref
from latentshift.errors import LatentshiftError

DATA = Path(__file__).parent / "data"
GSE_EXCERPT = DATA / "gse64810_excerpt.csv"
SILETTI_EXCERPT = DATA / "siletti_excerpt.csv"
SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data, when present
needs_source = pytest.mark.skipif(
    not (SOURCE / ref.GSE64810_FILE).is_file(), reason="reference source folder not available"
)

#: The simulator's former (Bakken 2021 tissue-like) composition.
TISSUE = {
    "L2/3 IT": 0.180,
    "L4/5 IT": 0.110,
    "L5 ET": 0.007,
    "L5/6 NP": 0.015,
    "L6 IT": 0.050,
    "L6 CT": 0.040,
    "PVALB": 0.065,
    "SST": 0.050,
    "VIP": 0.055,
    "LAMP5": 0.050,
    "Astro": 0.075,
    "Oligo": 0.200,
    "OPC": 0.045,
    "Micro-PVM": 0.040,
    "Endo": 0.018,
}
NEURONS = [t for t in TISSUE if t not in {"Astro", "Oligo", "OPC", "Micro-PVM", "Endo"}]


def _shipped(name: str) -> bytes:
    return resources.files("latentshift").joinpath("resources", name).read_bytes()


def _per_10k(levels: pd.DataFrame, symbol: str) -> float:
    return float(levels.loc[levels["symbol"] == symbol, "level"].iloc[0]) * 1e4


def _weighted(table: pd.DataFrame, rows: pd.Series, column: str) -> float:
    w = table.loc[rows, column]
    return float((w * table.loc[rows, "umi_depth"]).sum() / w.sum())


# --- gene levels: derivation on the excerpt ---------------------------------------------------


@pytest.fixture(scope="module")
def excerpt_levels() -> pd.DataFrame:
    return dr.derive_gene_levels(GSE_EXCERPT)


def test_excerpt_levels_hand_checked(excerpt_levels):
    # 28 rows cut verbatim from the source; Control.mean sums to 1,927,915.0054
    assert len(excerpt_levels) == 28
    assert list(excerpt_levels.columns) == ["gene_id", "symbol", "control_mean", "level"]
    by = excerpt_levels.set_index("symbol")
    assert by.loc["SOD1", "level"] == pytest.approx(10145.71571 / 1927915.00544, rel=1e-9)
    assert by.loc["SOD1", "level"] == pytest.approx(0.0052625327, rel=1e-8)
    assert by.loc["MT-RNR2", "level"] == pytest.approx(0.5872449770, rel=1e-8)
    assert by.loc["PITX1", "control_mean"] == 0.323792959
    assert math.fsum(excerpt_levels["level"]) == pytest.approx(1.0, abs=1e-12)


def test_excerpt_levels_match_the_raw_rows(excerpt_levels):
    with GSE_EXCERPT.open() as handle:
        rows = list(csv.reader(handle))[1:]
    total = math.fsum(float(r[4]) for r in rows)
    expected = {r[0].split(".")[0]: float(r[4]) / total for r in rows}
    got = dict(zip(excerpt_levels["gene_id"], excerpt_levels["level"], strict=True))
    assert got == pytest.approx(expected, rel=1e-12)


def test_excerpt_ids_symbols_and_order(excerpt_levels):
    ids = excerpt_levels["gene_id"]
    assert ids.is_unique and ids.str.fullmatch(r"ENSG\d{11}").all()  # version dropped
    # NA symbol -> the Ensembl id, as CELLxGENE does
    row = excerpt_levels[excerpt_levels["gene_id"] == "ENSG00000225994"]
    assert row["symbol"].item() == "ENSG00000225994"
    assert excerpt_levels["symbol"].notna().all()
    # duplicated symbols are kept on each gene
    assert (excerpt_levels["symbol"] == "7SK").sum() == 2
    assert (excerpt_levels["symbol"] == "SDHD").sum() == 2
    # a zero Control.mean is kept, at level 0, sorted last
    assert excerpt_levels.iloc[-1]["symbol"] == "HOXA11"
    assert excerpt_levels.iloc[-1]["level"] == 0.0
    assert excerpt_levels["level"].is_monotonic_decreasing
    assert excerpt_levels.iloc[0]["symbol"] == "MT-RNR2"


def _write_rows(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "gse.csv"
    header = ",symbol,baseMean,HD.mean,Control.mean,log2FoldChange,lfcSE,stat,pvalue,padj"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["ENSG00000000001.1,A,1,1,1,0,1,0,1,1", "ENSG00000000001.2,B,1,1,2,0,1,0,1,1"], "repeat"),
        (["ENSG00000000001.1,A,1,1,-1,0,1,0,1,1"], ">= 0"),
        (["ENSG00000000001.1,A,1,1,NA,0,1,0,1,1"], ">= 0"),
        (["chr1:100,A,1,1,1,0,1,0,1,1"], "Ensembl"),
        (["ENSG00000000001.1,A,1,1,0,0,1,0,1,1"], "sums to 0"),
    ],
)
def test_derive_gene_levels_refuses_bad_tables(tmp_path, rows, message):
    with pytest.raises(LatentshiftError, match=message):
        dr.derive_gene_levels(_write_rows(tmp_path, rows))


def test_derive_gene_levels_needs_the_columns(tmp_path):
    path = tmp_path / "gse.csv"
    path.write_text(",symbol,baseMean\nENSG00000000001.1,A,1\n")
    with pytest.raises(LatentshiftError, match="Control.mean"):
        dr.derive_gene_levels(path)


# --- gene levels: the shipped resource ------------------------------------------------------


@pytest.fixture(scope="module")
def levels() -> pd.DataFrame:
    return ref.gene_levels()


def test_shipped_levels_shape_and_keys(levels):
    assert len(levels) == 28_087  # every gene of GSE64810, none dropped
    assert levels["gene_id"].is_unique
    assert levels["gene_id"].str.fullmatch(r"ENSG\d{11}").all()
    assert levels["symbol"].notna().all() and (levels["symbol"] != "").all()
    assert (levels["symbol"] == levels["gene_id"]).sum() == 102  # the NA symbols
    assert (levels["control_mean"] == 0).sum() == 4
    assert levels["level"].is_monotonic_decreasing


def test_shipped_levels_sum_to_one(levels):
    assert math.fsum(levels["level"]) == pytest.approx(1.0, abs=1e-9)
    total = math.fsum(levels["control_mean"])
    np.testing.assert_allclose(levels["level"], levels["control_mean"] / total, rtol=1e-9)


def test_shipped_levels_real_figures(levels):
    assert _per_10k(levels, "SOD1") == pytest.approx(3.1, abs=0.05)
    assert _per_10k(levels, "NEFL") == pytest.approx(7.9, abs=0.05)
    assert _per_10k(levels, "SLC1A2") == pytest.approx(18.2, abs=0.05)
    assert _per_10k(levels, "HOXA10") < 0.001
    assert _per_10k(levels, "PITX1") < 0.001
    assert math.fsum(levels["level"].iloc[:3000]) == pytest.approx(0.734, abs=0.005)
    mito = levels["symbol"].str.startswith("MT-")
    assert mito.sum() == 17
    assert math.fsum(levels.loc[mito, "level"]) == pytest.approx(0.164, abs=0.001)


def test_gene_levels_returns_a_copy():
    first = ref.gene_levels()
    first.loc[0, "level"] = -1.0
    assert ref.gene_levels().loc[0, "level"] > 0


def test_gene_levels_mito_fraction(levels):
    nuclear = ref.gene_levels(mito_fraction=0.005)
    mito = nuclear["symbol"].str.startswith("MT-")
    assert math.fsum(nuclear["level"]) == pytest.approx(1.0, abs=1e-9)
    assert math.fsum(nuclear.loc[mito, "level"]) == pytest.approx(0.005, abs=1e-12)
    ratio = nuclear.loc[~mito, "level"] / levels.loc[~mito, "level"]
    np.testing.assert_allclose(
        ratio[levels.loc[~mito, "level"] > 0], 0.995 / (1 - 0.164), rtol=3e-3
    )
    assert (ref.gene_levels(mito_fraction=0.0).loc[mito, "level"] == 0).all()
    for bad in (-0.1, 1.0):
        with pytest.raises(LatentshiftError, match="mito_fraction"):
            ref.gene_levels(mito_fraction=bad)


def test_select_genes_keeps_real_required_genes_then_the_top(levels):
    required = ["hoxa10", "PITX1", "NOT_A_GENE", "ENSG00000225994", "SDHD", "SOD1"]
    panel = ref.select_genes(100, required, levels)
    assert len(panel) == 100
    assert {"HOXA10", "PITX1", "ENSG00000225994", "SOD1"} <= set(panel["symbol"])
    assert "NOT_A_GENE" not in set(panel["symbol"])  # not a real gene: left out
    sdhd = panel[panel["symbol"] == "SDHD"]
    assert len(sdhd) == 1 and sdhd["control_mean"].item() == pytest.approx(1397.978538)
    top = set(levels["gene_id"].iloc[:95])
    assert top <= set(panel["gene_id"])  # 5 required outside the top 95, rest the top
    assert panel["level"].is_monotonic_decreasing


def test_select_genes_edges(levels):
    assert len(ref.select_genes(50_000, ["SOD1"], levels)) == len(levels)
    assert list(ref.select_genes(3, (), levels)["symbol"]) == ["MT-RNR2", "MT-CO1", "MT-ND4"]
    with pytest.raises(LatentshiftError, match="panel holds only 2"):
        ref.select_genes(2, ["SOD1", "NEFL", "SLC1A2"], levels)
    with pytest.raises(LatentshiftError, match="n_genes"):
        ref.select_genes(0, (), levels)


# --- cell types: the shipped table ------------------------------------------------------------


@pytest.fixture(scope="module")
def cell_types() -> pd.DataFrame:
    return ref.celltype_table()


def test_shipped_celltypes_rows(cell_types):
    assert list(cell_types["cell_type"]) == list(TISSUE)
    classes = dict(zip(cell_types["cell_type"], cell_types["cell_class"], strict=True))
    assert {classes[t] for t in NEURONS[:6]} == {"Glutamatergic"}
    assert {classes[t] for t in NEURONS[6:]} == {"GABAergic"}
    assert (cell_types["n_clusters"] > 0).all()
    assert list(cell_types["sources"]) == ["; ".join(s.sources) for s in ref.CELL_TYPES]


def test_shipped_compositions(cell_types):
    assert (
        dict(zip(cell_types["cell_type"], cell_types["tissue_proportion"], strict=True)) == TISSUE
    )
    assert ref.celltype_proportions("tissue") == pytest.approx(TISSUE, abs=1e-12)
    m1 = ref.celltype_proportions()
    assert m1 == ref.celltype_proportions("m1")
    assert sum(m1.values()) == pytest.approx(1.0, abs=1e-12)
    assert cell_types["m1_proportion"].sum() == pytest.approx(1.0, abs=1e-6)
    assert sum(m1[t] for t in NEURONS) == pytest.approx(0.90, abs=0.001)
    # neuron split by the M1C shares of the README (33.9 % upper-layer IT, 22.0 % deep IT, ...)
    assert m1["L2/3 IT"] / 0.9 == pytest.approx(0.339 / 0.9971, abs=0.002)
    assert (m1["L4/5 IT"] + m1["L6 IT"]) / 0.9 == pytest.approx(0.220 / 0.9971, abs=0.002)
    assert m1["L4/5 IT"] / m1["L6 IT"] == pytest.approx(0.110 / 0.050)
    assert m1["PVALB"] / m1["SST"] == pytest.approx(0.065 / 0.050)
    # glia: the tissue census's glia, renormalised to 0.1
    assert m1["Oligo"] == pytest.approx(0.1 * 0.200 / 0.378, abs=1e-7)
    with pytest.raises(LatentshiftError, match="composition"):
        ref.celltype_proportions("cortex")  # type: ignore[arg-type]


def test_shipped_depths_match_the_published_figures(cell_types):
    depth = ref.celltype_depths()
    neuron = cell_types["cell_class"] != "Non-neuronal"
    assert _weighted(cell_types, neuron, "m1_proportion") == pytest.approx(23_500, rel=0.03)
    assert _weighted(cell_types, ~neuron, "m1_proportion") == pytest.approx(5_200, rel=0.03)
    pub = ref.PUBLISHED_SUPERCLUSTERS
    single = {
        "L2/3 IT": "Upper-layer intratelencephalic",
        "L4/5 IT": "Deep-layer intratelencephalic",
        "L6 IT": "Deep-layer intratelencephalic",
        "L5/6 NP": "Deep-layer near-projecting",
        "L6 CT": "Deep-layer corticothalamic and 6b",
        "PVALB": "MGE interneuron",
        "SST": "MGE interneuron",
        "VIP": "CGE interneuron",
    }
    for cell_type, name in single.items():
        assert depth[cell_type] == pytest.approx(pub[name].umi_m1c, rel=0.005), cell_type
    glia = {
        "Astro": "Astrocyte",
        "Oligo": "Oligodendrocyte",
        "OPC": "Oligodendrocyte precursor",
        "Micro-PVM": "Microglia",
    }
    for cell_type, name in glia.items():
        assert depth[cell_type] == pytest.approx(pub[name].umi_all, abs=1), cell_type
    # LAMP5 mixes LAMP5-LHX6/Chandelier (≈ 16,200) and CGE (≈ 14,000)
    assert 14_000 < depth["LAMP5"] < 16_200
    # L5 ET: the L5ET clusters, L5ET_113 (≈ 35,000) the largest M1C share
    assert ref.L5ET_113_UMI_DEPTH < depth["L5 ET"] < 45_000
    assert depth["Endo"] == pytest.approx(3_324, abs=1)


# --- cell types: derivation on the excerpt ----------------------------------------------------


def _samples(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "samples.csv"
    path.write_text(
        "10X Sample ID,Donor,Expected proportion of non-neuronal nuclei based on FACS,"
        "Sample retained in analysis\n"
        "a,d1,0.1,Y\nb,d2,0.1,Y\n" + extra
    )
    return path


@pytest.fixture
def excerpt_types(tmp_path) -> pd.DataFrame:
    # a sample not retained is ignored
    table = dr.derive_celltype_table(SILETTI_EXCERPT, _samples(tmp_path, "c,d3,0.9,N\n"))
    return table.set_index("cell_type")


def test_excerpt_celltype_depths_hand_checked(excerpt_types):
    t = excerpt_types
    # L2/3 IT: ULIT_128 (73.1 % of 10,650) and ULIT_131 (71.0 % of 22,050)
    w1, w2 = 0.731 * 10650, 0.710 * 22050
    assert t.loc["L2/3 IT", "umi_depth"] == pytest.approx(
        (w1 * 23508.71333333333 + w2 * 28230.67732426304) / (w1 + w2)
    )
    assert t.loc["L2/3 IT", "source_nuclei"] == pytest.approx(w1 + w2)
    # L5 ET: L5ET_113 and L5ET_115 (100 % M1C); L5ET_117 has no M1C in its top three
    w1, w2 = 0.733 * 630, 1.0 * 140
    assert t.loc["L5 ET", "umi_depth"] == pytest.approx(
        (w1 * 34997.15873015873 + w2 * 44747.37857142857) / (w1 + w2)
    )
    assert t.loc["L5 ET", "n_clusters"] == 2
    assert t.loc["L5 ET", "superclusters"] == "Miscellaneous; Hippocampal CA1-3"
    # LAMP5: all of LLC_270 plus 0.05 / (0.055 + 0.05) of CGE_288
    f = 0.050 / 0.105
    w1, w2 = 0.123 * 4751, f * 0.073 * 24831
    assert t.loc["LAMP5", "umi_depth"] == pytest.approx(
        (w1 * 15133.86781730162 + w2 * 14227.45950626233) / (w1 + w2)
    )
    assert t.loc["VIP", "umi_depth"] == pytest.approx(14227.45950626233)
    assert t.loc["LAMP5", "source_fractions"] == "1.000000; 0.476190"
    # glia: weighted by all nuclei; Endo = VendC_15 + Per_21
    assert t.loc["Oligo", "umi_depth"] == pytest.approx(5123.711502401097)
    assert t.loc["Endo", "umi_depth"] == pytest.approx(
        (2746 * 3281.848871085215 + 1753 * 2761.257273245864) / (2746 + 1753)
    )
    assert set(t["weighting"]) == {"M1C nuclei", "all nuclei"}


def test_excerpt_celltype_composition(excerpt_types):
    t = excerpt_types
    neuron = t["cell_class"] != "Non-neuronal"
    assert t.loc[neuron, "m1_proportion"].sum() == pytest.approx(0.9)
    assert t["m1_proportion"].sum() == pytest.approx(1.0)
    # neurons split by M1C nuclei; Misc_116 (unmapped) takes no share
    nuclei = t.loc[neuron, "source_nuclei"]
    np.testing.assert_allclose(t.loc[neuron, "m1_proportion"], 0.9 * nuclei / nuclei.sum())
    assert t.loc["L4/5 IT", "m1_proportion"] / t.loc["L6 IT", "m1_proportion"] == pytest.approx(2.2)
    assert t.loc["Astro", "m1_proportion"] == pytest.approx(0.1 * 0.075 / 0.378)


def test_derive_celltype_table_errors(tmp_path):
    lines = SILETTI_EXCERPT.read_text().splitlines()
    no_cge = tmp_path / "clusters.csv"
    no_cge.write_text("\n".join(line for line in lines if "CGE_288" not in line) + "\n")
    with pytest.raises(LatentshiftError, match="CGE interneuron"):
        dr.derive_celltype_table(no_cge, _samples(tmp_path))
    no_umi = tmp_path / "no_umi.csv"
    no_umi.write_text(lines[0].replace("Total UMI", "UMI") + "\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(LatentshiftError, match="Total UMI"):
        dr.derive_celltype_table(no_umi, _samples(tmp_path))
    none_kept = tmp_path / "none.csv"
    none_kept.write_text(
        "Expected proportion of non-neuronal nuclei based on FACS,Sample retained in analysis\n"
        "0.1,N\n"
    )
    with pytest.raises(LatentshiftError, match="retained"):
        dr.derive_celltype_table(SILETTI_EXCERPT, none_kept)


def test_m1c_share_parsing():
    clusters = dr.read_clusters(SILETTI_EXCERPT)
    assert len(clusters) == 20  # the blank trailing row is dropped
    share = dict(zip(clusters["cluster_name"], clusters["m1c_share"], strict=True))
    assert share["L5ET_113"] == pytest.approx(0.733)
    assert share["L5ET_115"] == pytest.approx(1.0)  # "Human M1C: 100.0%", no other dissection
    assert share["DLCT6b_106"] == pytest.approx(0.206)
    assert share["Oligo_45"] == 0.0


# --- the full sources: the README's figures and a byte-identical re-derivation ----------------


@needs_source
def test_readme_supercluster_figures_reproduced():
    summary = dr.supercluster_summary(SOURCE / ref.SILETTI_CLUSTERS_FILE)
    assert summary["n_clusters"].sum() == 461
    assert summary["n_cells"].sum() == 3_369_219
    for name, pub in ref.PUBLISHED_SUPERCLUSTERS.items():
        row = summary.loc[name]
        if pub.umi_m1c is not None:
            assert row["umi_m1c"] == pytest.approx(pub.umi_m1c, rel=0.005), name
            assert row["m1c_share"] == pytest.approx(pub.m1c_share, abs=0.0006), name
        if pub.umi_all is not None:
            assert row["umi_all"] == pytest.approx(pub.umi_all, abs=1), name


@needs_source
def test_readme_scalar_figures_reproduced():
    figures = dr.summary_figures(
        SOURCE / ref.SILETTI_CLUSTERS_FILE, SOURCE / ref.SILETTI_SAMPLES_FILE
    )
    assert figures["neuron_umi_depth"] == pytest.approx(ref.NEURON_UMI_DEPTH, rel=0.005)
    assert figures["non_neuron_umi_depth"] == pytest.approx(ref.NON_NEURON_UMI_DEPTH, rel=0.01)
    assert figures["l5et_113_umi_depth"] == pytest.approx(ref.L5ET_113_UMI_DEPTH, rel=0.005)
    assert figures["m1_neuron_fraction"] == pytest.approx(ref.M1_NEURON_FRACTION, abs=1e-12)
    assert 0.003 < figures["m1c_fraction_mito"] < 0.0075


@needs_source
def test_rederivation_is_byte_identical(tmp_path):
    out = tmp_path / "resources"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentshift.data.derive_reference",
            "--source",
            str(SOURCE),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for name in (ref.GENE_LEVELS_FILE, ref.CELL_TYPES_FILE):
        assert (out / name).read_bytes() == _shipped(name), name
    # and a second derivation in-process gives the same bytes again
    again = dr.write_resources(SOURCE, tmp_path / "again")
    assert [p.read_bytes() for p in again] == [(out / p.name).read_bytes() for p in again]


def test_shipped_gzip_is_deterministic_and_small():
    blob = _shipped(ref.GENE_LEVELS_FILE)
    assert len(blob) < 1_000_000
    assert blob[:3] == b"\x1f\x8b\x08"
    assert blob[3] == 0  # no file name stored
    assert blob[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    text = gzip.decompress(blob).decode("utf-8")
    assert text.startswith("gene_id\tsymbol\tcontrol_mean\tlevel\n") and "\r" not in text


def test_main_reports_a_missing_source(tmp_path, caplog):
    assert dr.main(["--source", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in caplog.text


def test_resources_readme_names_the_sources():
    text = resources.files("latentshift").joinpath("resources", "README.md").read_text()
    for needle in (
        "GSE64810",
        "e0143563",
        "8ea2d9317da58000144029ede7416d13bbee10f2",
        "7dd469b374469691665a72a3a59a43458bf03b19",
        "eadd7046",
        "Bakken",
        "prefrontal",
        "Gene length",
    ):
        assert needle in text, needle
