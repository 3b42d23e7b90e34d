"""Derive the shipped reference resources from their public source tables.

The maintenance side of :mod:`latentshift.data.reference` (which only reads the shipped files):
:func:`derive_gene_levels` and :func:`derive_celltype_table` compute the two tables from the
source CSVs (GEO GSE64810; the Siletti et al. 2023 cluster and sample tables), and
:func:`write_resources` writes them deterministically (fixed float formats, gzip without a
time stamp), so a re-derivation gives the same bytes. Sources, rules and caveats are in
:mod:`latentshift.data.reference` and ``resources/README.md``.

Command line::

    python -m latentshift.data.derive_reference --source ../shared/data --out lib/latentshift/resources
"""

from __future__ import annotations

import argparse
import gzip
import io
import logging
import math
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from latentshift.data.reference import (
    CELL_TYPES,
    CELL_TYPES_FILE,
    CLUSTER_GROUPS,
    GENE_LEVELS_FILE,
    GLIA_SUPERCLUSTERS,
    GSE64810_FILE,
    NEURON_CLASSES,
    PUBLISHED_SUPERCLUSTERS,
    SILETTI_CLUSTERS_FILE,
    SILETTI_SAMPLES_FILE,
    CellTypeSpec,
    fsum,
)
from latentshift.errors import DataError

log = logging.getLogger(__name__)


# --- reading and checking the source tables ---------------------------------------------------

_CLUSTER_COLUMNS = {
    "Cluster name": "cluster_name",
    "Supercluster": "supercluster",
    "Class auto-annotation": "class_annotation",
    "Top three dissections": "top_dissections",
    "Number of cells": "n_cells",
    "Total UMI": "total_umi",
    "Fraction mitochondrial": "fraction_mito",
}
_M1C_SHARE = re.compile(r"Human M1C:\s*([0-9]+(?:\.[0-9]+)?)\s*%")
_ENSEMBL_ID = re.compile(r"^(ENS[A-Z]*G[0-9]+)(\.[0-9]+)?$")


def _require(frame: pd.DataFrame, columns: Iterable[str], path: str | Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {list(frame.columns)}. "
            "Give the file named in resources/README.md, unmodified."
        )


def _m1c_share(text: object) -> float:
    """The M1C share (0-1) in a "Top three dissections" string; 0 when M1C is not named."""
    if not isinstance(text, str):
        return 0.0
    match = _M1C_SHARE.search(text)
    return float(match.group(1)) / 100.0 if match else 0.0


def read_clusters(cluster_csv: str | Path) -> pd.DataFrame:
    """Read the Siletti 2023 cluster table, with each cluster's M1C nuclei.

    Parameters
    ----------
    cluster_csv
        ``siletti2023_cluster_annotation.csv`` (or an excerpt with the same columns).

    Returns
    -------
    pandas.DataFrame
        One row per cluster (blank rows dropped): ``cluster_name``, ``supercluster``,
        ``class_annotation``, ``top_dissections``, ``n_cells``, ``total_umi``,
        ``fraction_mito``, ``m1c_share`` (0-1, 0 when M1C is not in the top three) and
        ``m1c_nuclei`` = ``m1c_share * n_cells``.

    Raises
    ------
    DataError
        A column is missing, or a cluster lacks its cell count or UMI figure.
    """
    raw = pd.read_csv(cluster_csv)
    _require(raw, _CLUSTER_COLUMNS, cluster_csv)
    frame = raw.dropna(how="all").rename(columns=_CLUSTER_COLUMNS)[list(_CLUSTER_COLUMNS.values())]
    bad = frame["cluster_name"].isna() | frame["n_cells"].isna() | frame["total_umi"].isna()
    if bad.any():
        raise DataError(
            f"{cluster_csv}: {int(bad.sum())} row(s) lack a cluster name, 'Number of cells' "
            "or 'Total UMI'"
        )
    frame = frame.reset_index(drop=True)
    frame["m1c_share"] = frame["top_dissections"].map(_m1c_share)
    frame["m1c_nuclei"] = frame["m1c_share"] * frame["n_cells"]
    return frame


def _weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    total = fsum(weights)
    if total <= 0:
        return math.nan
    return fsum(values * weights) / total


def supercluster_summary(cluster_csv: str | Path) -> pd.DataFrame:
    """Per-supercluster depth and M1C share: the README's table of derived figures.

    Parameters
    ----------
    cluster_csv
        The Siletti cluster table.

    Returns
    -------
    pandas.DataFrame
        Indexed by supercluster (sorted by name): ``n_clusters``, ``n_cells``, ``umi_all``
        (``Total UMI`` weighted by nuclei, all clusters), ``m1c_clusters`` (clusters naming M1C
        in their top three), ``m1c_nuclei``, ``umi_m1c`` (weighted by M1C nuclei; NaN when no
        cluster names M1C) and ``m1c_share`` (share of all M1C nuclei recovered).
    """
    clusters = read_clusters(cluster_csv)
    all_m1c = fsum(clusters["m1c_nuclei"])
    rows = {}
    for name, part in clusters.groupby("supercluster", sort=True):
        m1c = fsum(part["m1c_nuclei"])
        rows[name] = {
            "n_clusters": len(part),
            "n_cells": fsum(part["n_cells"]),
            "umi_all": _weighted_mean(part["total_umi"], part["n_cells"]),
            "m1c_clusters": int((part["m1c_nuclei"] > 0).sum()),
            "m1c_nuclei": m1c,
            "umi_m1c": _weighted_mean(part["total_umi"], part["m1c_nuclei"]),
            "m1c_share": m1c / all_m1c if all_m1c > 0 else math.nan,
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "supercluster"
    return out


def _neuron_fraction(samples_csv: str | Path) -> float:
    samples = pd.read_csv(samples_csv)
    expected = "Expected proportion of non-neuronal nuclei based on FACS"
    _require(samples, [expected, "Sample retained in analysis"], samples_csv)
    kept = samples[samples["Sample retained in analysis"].astype(str).str.upper() == "Y"]
    if kept.empty:
        raise DataError(f"{samples_csv}: no sample has 'Sample retained in analysis' = Y")
    non_neuronal = kept[expected].astype(float)
    if not non_neuronal.between(0, 1).all():
        raise DataError(f"{samples_csv}: '{expected}' must lie in [0, 1]")
    return 1.0 - fsum(non_neuronal) / len(non_neuronal)


def summary_figures(cluster_csv: str | Path, samples_csv: str | Path) -> dict[str, float]:
    """The scalar figures of the README, recomputed from the source tables.

    Parameters
    ----------
    cluster_csv, samples_csv
        The Siletti cluster and M1C sample tables.

    Returns
    -------
    dict of str to float
        ``neuron_umi_depth`` (the seven cortical neuronal superclusters of
        :data:`PUBLISHED_SUPERCLUSTERS`, weighted by M1C nuclei), ``non_neuron_umi_depth``
        (:data:`GLIA_SUPERCLUSTERS`, weighted by all nuclei), ``l5et_113_umi_depth``,
        ``m1_neuron_fraction`` and ``m1c_fraction_mito`` (fraction mitochondrial of the
        M1C clusters, weighted by M1C nuclei).
    """
    clusters = read_clusters(cluster_csv)
    neuronal = [n for n, p in PUBLISHED_SUPERCLUSTERS.items() if p.umi_m1c is not None]
    neurons = clusters[clusters["supercluster"].isin(neuronal)]
    glia = clusters[clusters["supercluster"].isin(GLIA_SUPERCLUSTERS)]
    l5et_113 = clusters.loc[clusters["cluster_name"] == "L5ET_113", "total_umi"]
    return {
        "neuron_umi_depth": _weighted_mean(neurons["total_umi"], neurons["m1c_nuclei"]),
        "non_neuron_umi_depth": _weighted_mean(glia["total_umi"], glia["n_cells"]),
        "l5et_113_umi_depth": float(l5et_113.iloc[0]) if len(l5et_113) else math.nan,
        "m1_neuron_fraction": _neuron_fraction(samples_csv),
        "m1c_fraction_mito": _weighted_mean(clusters["fraction_mito"], clusters["m1c_nuclei"]),
    }


# --- derivations --------------------------------------------------------------------------


def derive_gene_levels(csv_path: str | Path) -> pd.DataFrame:
    """Real relative gene levels of human cortex from the GSE64810 DESeq2 table.

    Parameters
    ----------
    csv_path
        ``GSE64810_deseq2_results.csv``: first (unnamed) column the versioned Ensembl id,
        columns ``symbol`` (``NA`` where the gene has none) and ``Control.mean``.

    Returns
    -------
    pandas.DataFrame
        One row per gene, columns ``gene_id`` (Ensembl id without the version), ``symbol``
        (the Ensembl id where the table has none, as CELLxGENE does; a symbol shared by several
        genes, e.g. ``Y_RNA`` or ``7SK``, is kept on each of them), ``control_mean`` and
        ``level`` = ``control_mean`` / the total (sums to 1), sorted by ``level`` descending,
        then ``gene_id``. Genes with ``control_mean`` 0 are kept (level 0).

    Raises
    ------
    DataError
        A column is missing, an id is not an Ensembl gene id, two ids differ only by version,
        or ``Control.mean`` is missing or negative.
    """
    # R wrote missing symbols as "NA"; read every field as text so nothing else turns into NaN
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_filter=False)
    raw = raw.set_index(raw.columns[0])
    _require(raw, ["symbol", "Control.mean"], csv_path)
    ids = raw.index.astype(str).str.strip()
    parsed = ids.str.extract(_ENSEMBL_ID)
    if parsed[0].isna().any():
        bad = ids[parsed[0].isna().to_numpy()][:5].tolist()
        raise DataError(f"{csv_path}: first column must hold Ensembl gene ids; got {bad}")
    gene_id = parsed[0].to_numpy(dtype=object)
    dup = pd.Index(gene_id).duplicated(keep=False)
    if dup.any():
        raise DataError(
            f"{csv_path}: ids repeat once the version is dropped: {sorted(set(gene_id[dup]))[:5]}"
        )
    control = pd.to_numeric(raw["Control.mean"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(control).any() or (control < 0).any():
        raise DataError(f"{csv_path}: 'Control.mean' must be a number >= 0 on every row")
    total = fsum(control)
    if total <= 0:
        raise DataError(f"{csv_path}: 'Control.mean' sums to 0")
    symbol = raw["symbol"].str.strip().to_numpy(dtype=object)
    unnamed = np.isin(symbol, ["", "NA"])
    symbol[unnamed] = gene_id[unnamed]
    out = pd.DataFrame(
        {
            "gene_id": gene_id,
            "symbol": symbol,
            "control_mean": control,
            "level": control / total,
        }
    )
    out = out.sort_values(["level", "gene_id"], ascending=[False, True], kind="mergesort")
    return out.reset_index(drop=True)


def _source_fractions() -> dict[tuple[str, str], float]:
    """(cell type, source) -> the share of the source that the type receives."""
    sharing: dict[str, list[CellTypeSpec]] = {}
    for spec in CELL_TYPES:
        for source in spec.sources:
            sharing.setdefault(source, []).append(spec)
    fractions = {}
    for source, specs in sharing.items():
        total = fsum(s.tissue_proportion for s in specs)
        for spec in specs:
            fractions[(spec.cell_type, source)] = spec.tissue_proportion / total
    return fractions


def derive_celltype_table(cluster_csv: str | Path, samples_csv: str | Path) -> pd.DataFrame:
    """Depth and composition of the simulated M1 cell types from the Siletti 2023 tables.

    Parameters
    ----------
    cluster_csv
        ``siletti2023_cluster_annotation.csv`` (cluster names, superclusters, top three
        dissections, number of cells, ``Total UMI``).
    samples_csv
        ``siletti2023_m1c_samples.csv`` (the FACS-expected non-neuronal proportion per sample).

    Returns
    -------
    pandas.DataFrame
        One row per type of :data:`CELL_TYPES`, in that order: ``cell_type``, ``cell_class``,
        ``sources`` (``"; "``-joined :data:`CLUSTER_GROUPS` keys), ``source_fractions`` (the
        share of each source given to the type), ``superclusters`` (the Siletti superclusters
        of the contributing clusters), ``n_clusters`` (clusters with a non-zero weight),
        ``weighting`` (``"M1C nuclei"`` for neurons, ``"all nuclei"`` for glia),
        ``source_nuclei`` (weight behind the type), ``umi_depth`` (weighted mean
        ``Total UMI``), ``m1_proportion`` and ``tissue_proportion`` (each sums to 1).

    Raises
    ------
    DataError
        A source group has no cluster with a non-zero weight, or a cluster falls in two groups.
    """
    clusters = read_clusters(cluster_csv)
    neuron_fraction = _neuron_fraction(samples_csv)
    masks = {name: group.select(clusters) for name, group in CLUSTER_GROUPS.items()}
    overlap = sum(m.astype(int) for m in masks.values()) > 1
    if overlap.any():
        raise DataError(
            f"{cluster_csv}: clusters in two source groups: "
            f"{clusters.loc[overlap, 'cluster_name'].tolist()[:5]}"
        )
    fractions = _source_fractions()
    rows = []
    for spec in CELL_TYPES:
        weight_col = "m1c_nuclei" if spec.is_neuron else "n_cells"
        weight_sum = umi_sum = 0.0
        n_clusters = 0
        superclusters: list[str] = []
        for source in spec.sources:
            part = clusters[masks[source] & (clusters[weight_col] > 0)]
            if part.empty:
                raise DataError(
                    f"{cluster_csv}: no cluster of '{source}' has {weight_col} > 0; "
                    f"cannot derive '{spec.cell_type}'"
                )
            f = fractions[(spec.cell_type, source)]
            weight_sum += f * fsum(part[weight_col])
            umi_sum += f * fsum(part[weight_col] * part["total_umi"])
            n_clusters += len(part)
            superclusters += [
                s for s in dict.fromkeys(part["supercluster"]) if s not in superclusters
            ]
        rows.append(
            {
                "cell_type": spec.cell_type,
                "cell_class": spec.cell_class,
                "sources": "; ".join(spec.sources),
                "source_fractions": "; ".join(
                    f"{fractions[(spec.cell_type, s)]:.6f}" for s in spec.sources
                ),
                "superclusters": "; ".join(superclusters),
                "n_clusters": n_clusters,
                "weighting": "M1C nuclei" if spec.is_neuron else "all nuclei",
                "source_nuclei": weight_sum,
                "umi_depth": umi_sum / weight_sum,
                "tissue_proportion": spec.tissue_proportion,
            }
        )
    table = pd.DataFrame(rows)
    neuron = table["cell_class"].isin(NEURON_CLASSES)
    neuron_nuclei = fsum(table.loc[neuron, "source_nuclei"])
    glia_tissue = fsum(table.loc[~neuron, "tissue_proportion"])
    table["m1_proportion"] = np.where(
        neuron,
        neuron_fraction * table["source_nuclei"] / neuron_nuclei,
        (1.0 - neuron_fraction) * table["tissue_proportion"] / glia_tissue,
    )
    columns = [
        "cell_type",
        "cell_class",
        "sources",
        "source_fractions",
        "superclusters",
        "n_clusters",
        "weighting",
        "source_nuclei",
        "umi_depth",
        "m1_proportion",
        "tissue_proportion",
    ]
    return table[columns]


# --- writing (deterministic) ----------------------------------------------------------------

_GENE_FORMATS = {"control_mean": "{:.10g}", "level": "{:.10g}"}
_CELLTYPE_FORMATS = {
    "source_nuclei": "{:.3f}",
    "umi_depth": "{:.1f}",
    "m1_proportion": "{:.8f}",
    "tissue_proportion": "{:.3f}",
}


def _to_tsv(frame: pd.DataFrame, formats: dict[str, str]) -> bytes:
    """A TSV with fixed float formats and ``\\n`` line ends, as UTF-8 bytes."""
    lines = ["\t".join(frame.columns)]
    columns = [
        [formats[c].format(v) for v in frame[c]] if c in formats else [str(v) for v in frame[c]]
        for c in frame.columns
    ]
    for cells in zip(*columns, strict=True):
        if any(("\t" in c) or ("\n" in c) for c in cells):
            raise DataError(f"a field holds a tab or a newline: {cells}")
        lines.append("\t".join(cells))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _gzip_bytes(payload: bytes) -> bytes:
    """Gzip with no file name and mtime 0, so that the same payload gives the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(payload)
    return buffer.getvalue()


def write_resources(source: str | Path, out: str | Path) -> list[Path]:
    """Derive both resources from the source folder and write them into ``out``.

    Parameters
    ----------
    source
        Folder holding ``GSE64810_deseq2_results.csv``, ``siletti2023_cluster_annotation.csv``
        and ``siletti2023_m1c_samples.csv``.
    out
        Folder to write ``cortex_gene_levels.tsv.gz`` and ``m1_cell_types.tsv`` into
        (created when missing).

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    DataError
        A source file is missing or malformed.
    """
    source, out = Path(source), Path(out)
    inputs = [source / f for f in (GSE64810_FILE, SILETTI_CLUSTERS_FILE, SILETTI_SAMPLES_FILE)]
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise DataError(f"source file(s) not found: {missing}; pass --source FOLDER")
    levels = derive_gene_levels(inputs[0])
    cell_types = derive_celltype_table(inputs[1], inputs[2])
    out.mkdir(parents=True, exist_ok=True)
    written = [out / GENE_LEVELS_FILE, out / CELL_TYPES_FILE]
    written[0].write_bytes(_gzip_bytes(_to_tsv(levels, _GENE_FORMATS)))
    written[1].write_bytes(_to_tsv(cell_types, _CELLTYPE_FORMATS))
    for path in written:
        log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return written


# --- command line ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m latentshift.data.derive_reference --source DIR --out DIR``.

    Parameters
    ----------
    argv
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on a :class:`~latentshift.errors.DataError`.
    """
    parser = argparse.ArgumentParser(
        prog="python -m latentshift.data.derive_reference",
        description="Rewrite the shipped reference resources from their source tables.",
    )
    parser.add_argument("--source", type=Path, required=True, help="folder of the source CSVs")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(str(resources.files("latentshift").joinpath("resources"))),
        help="folder to write into (default: the package's resources folder)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        write_resources(args.source, args.out)
    except DataError as error:
        log.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
