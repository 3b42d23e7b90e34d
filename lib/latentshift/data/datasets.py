"""The real cells shipped with the project, and how they are rebuilt.

Kang et al. 2018 (*Nat Biotechnol* 36:89; GEO GSE96583): PBMCs of lupus patients, each sample
cultured 6 h with or without interferon-β, subsets shipped by the Bioconductor package muscat
(Crowell et al. 2020). Two files, in ``lib/latentshift/resources/kang2018/`` (their README
gives sources, citation and licence):

- :data:`KANG2018_PAIRED` — 1,556 cells of donors 101 and 107, each before and after
  stimulation (paired), gene symbols as ``var_names``;
- :data:`KANG2018_CONTROLS` — the 12,261 control (unstimulated) cells of all 8 donors, Ensembl
  ids as ``var_names``. Its export carries no gene symbols, so :func:`derive_controls` adds
  ``var["feature_name"]``: the paired file's symbol for the same Ensembl id (the same
  experiment's annotation), else the shipped cortex gene table's (GSE64810), else the id itself.

:func:`rebuild` makes the shipped files from muscat's exports (``python -m latentshift.data.datasets
DIR``): the paired file as it is, the controls with their symbols, and the checksums.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
from pathlib import Path

import pandas as pd

from latentshift.data.reference import GENE_LEVELS_FILE
from latentshift.errors import DataError

log = logging.getLogger(__name__)

#: The package's shipped resources (a real folder: the package is installed editable).
RESOURCES = Path(__file__).resolve().parents[1] / "resources"
#: Where the shipped real cells live.
KANG2018_DIR = RESOURCES / "kang2018"
#: Donors 101 and 107 before and after interferon-β (paired).
KANG2018_PAIRED = KANG2018_DIR / "kang2018_ifnb_2donors.h5ad"
#: The control cells of all 8 donors (101 and 107 among them).
KANG2018_CONTROLS = KANG2018_DIR / "kang2018_ctrl_8donors.h5ad"
#: The checksums of the shipped files.
CHECKSUMS = KANG2018_DIR / "SHA256SUMS"


def gene_symbols(ensembl_ids: pd.Index, paired_var: pd.DataFrame) -> pd.DataFrame:
    """A gene symbol for each Ensembl id, and where it came from.

    Parameters
    ----------
    ensembl_ids
        The genes (unversioned Ensembl ids).
    paired_var
        The paired file's ``var`` (index: symbols; ``ensembl_id``).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``ensembl_ids``: ``feature_name`` and ``feature_name_source``
        (``kang2018`` — the paired file of the same experiment; ``gse64810`` — the shipped
        cortex gene table; ``ensembl_id`` — no symbol known, the id kept).
    """
    from_kang = pd.Series(paired_var.index.astype(str), index=paired_var["ensembl_id"].astype(str))
    table = pd.read_csv(RESOURCES / GENE_LEVELS_FILE, sep="\t", usecols=["gene_id", "symbol"])
    from_cortex = pd.Series(table["symbol"].to_numpy(), index=table["gene_id"].astype(str))
    from_kang = from_kang[~from_kang.index.duplicated()]
    from_cortex = from_cortex[~from_cortex.index.duplicated()]
    ids = pd.Index(ensembl_ids.astype(str))
    kang = from_kang.reindex(ids)
    cortex = from_cortex.reindex(ids)
    symbol = kang.fillna(cortex).fillna(pd.Series(ids, index=ids))
    source = pd.Series("ensembl_id", index=ids)
    source[cortex.notna().to_numpy()] = "gse64810"
    source[kang.notna().to_numpy()] = "kang2018"
    return pd.DataFrame(
        {"feature_name": symbol.to_numpy(), "feature_name_source": source.to_numpy()}, index=ids
    )


def derive_controls(source: str | Path, out: str | Path) -> Path:
    """The shipped controls file: muscat's export with ``var["feature_name"]`` added.

    Parameters
    ----------
    source
        muscat's control cells exported to ``.h5ad`` (Ensembl ids as ``var_names``).
    out
        Where to write the file (counts, obs and the rest unchanged).
    """
    import anndata as ad

    from latentshift.data import artifacts

    adata = ad.read_h5ad(source)
    paired = ad.read_h5ad(KANG2018_PAIRED, backed="r")
    symbols = gene_symbols(adata.var_names, paired.var)
    adata.var["feature_name"] = pd.Categorical(symbols["feature_name"].to_numpy())
    adata.var["feature_name_source"] = pd.Categorical(symbols["feature_name_source"].to_numpy())
    counts = symbols["feature_name_source"].value_counts().to_dict()
    log.info("gene symbols of %s: %s", Path(source).name, counts)
    with artifacts.atomic_path(out) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    return Path(out)


def sha256(path: str | Path) -> str:
    """The file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rebuild(exports: str | Path, target: str | Path = KANG2018_DIR) -> dict[str, str]:
    """Make the shipped files from muscat's exports and write their checksums.

    Parameters
    ----------
    exports
        A folder holding ``kang2018_ifnb_2donors.h5ad`` and ``kang2018_ctrl_8donors.h5ad``,
        the ``.h5ad`` exports of muscat's ``example_sce`` and ``kang_se`` (see the README
        beside the shipped files for the export).
    target
        Where the shipped files go.

    Returns
    -------
    dict
        File name → SHA-256, as written to ``SHA256SUMS``.
    """
    exports, target = Path(exports), Path(target)
    missing = [
        p.name for p in (KANG2018_PAIRED, KANG2018_CONTROLS) if not (exports / p.name).is_file()
    ]
    if missing:
        raise DataError(
            f"{exports} lacks {', '.join(missing)}: export muscat's objects first (the README "
            "in lib/latentshift/resources/kang2018 says how)."
        )
    target.mkdir(parents=True, exist_ok=True)
    paired = target / KANG2018_PAIRED.name
    if (exports / paired.name).resolve() != paired.resolve():
        shutil.copyfile(exports / paired.name, paired)
    derive_controls(exports / KANG2018_CONTROLS.name, target / KANG2018_CONTROLS.name)
    sums = {p.name: sha256(target / p.name) for p in (KANG2018_PAIRED, KANG2018_CONTROLS)}
    (target / CHECKSUMS.name).write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    return sums


if __name__ == "__main__":  # pragma: no cover - the maintainers' rebuild
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name, digest in rebuild(sys.argv[1]).items():
        log.info("%s  %s", digest, name)
