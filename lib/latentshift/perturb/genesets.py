"""Gene sets: GMT in and out, and matching a set's genes against a data set's genes.

A GMT file (the MSigDB format) holds one set per line, tab-separated: the set's name, a
description (or URL), then its genes. A profile names one GMT file (``genesets.gmt``) and,
through its perturbation entries, the sets it uses.

Matching is case-insensitive on gene symbols. When a data set's ``var_names`` are Ensembl IDs
(CELLxGENE files), the symbols come from a ``var`` column: ``data.symbol_column`` when given,
else ``var["feature_name"]`` when present, else the ``var_names`` themselves.
"""

from __future__ import annotations

import difflib
import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from anndata import AnnData

from latentshift.errors import GeneSetError

log = logging.getLogger(__name__)

#: The ``var`` column CELLxGENE files keep gene symbols in.
DEFAULT_SYMBOL_COLUMN = "feature_name"


@dataclass(frozen=True)
class GeneSet:
    """One gene set.

    Parameters
    ----------
    name
        The set's name (first GMT field), e.g. ``"HD_CORTEX_UP"``.
    description
        Free text or a URL (second GMT field).
    genes
        Gene symbols in file order, duplicates removed.
    """

    name: str
    description: str = ""
    genes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # dict.fromkeys keeps the first occurrence and the order
        object.__setattr__(self, "genes", tuple(dict.fromkeys(str(g) for g in self.genes)))

    def __len__(self) -> int:
        return len(self.genes)


# --- GMT in and out ------------------------------------------------------------------------


def read_gmt(path: str | Path) -> dict[str, GeneSet]:
    """Read a GMT file.

    Parameters
    ----------
    path
        The ``.gmt`` file: one set per line, ``name<TAB>description<TAB>gene<TAB>gene...``.
        Blank lines and lines starting with ``#`` are skipped; empty gene fields (a trailing
        tab) are ignored; repeated genes within a set are kept once.

    Returns
    -------
    dict of str to GeneSet
        The sets by name, in file order.

    Raises
    ------
    GeneSetError
        When the file does not exist, or a line is malformed (no tab, no name, no genes, or a
        name used twice); the message gives the line number.
    """
    path = Path(path)
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("*.gmt")) if path.parent.is_dir() else []
        hint = f" GMT files in {path.parent}: {', '.join(others)}." if others else ""
        raise GeneSetError(
            f"gene-set file '{path}' does not exist. Fix 'genesets.gmt' in the params file to "
            f"point at a GMT file.{hint}"
        )
    sets: dict[str, GeneSet] = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            where = f"{path}, line {lineno}"
            if "\t" not in line:
                raise GeneSetError(
                    f"{where}: no tab found. GMT lines are tab-separated: "
                    "name<TAB>description<TAB>gene1<TAB>gene2... (spaces do not count)."
                )
            name, description, *genes = line.split("\t")
            name = name.strip()
            genes = [g.strip() for g in genes if g.strip()]
            if not name:
                raise GeneSetError(f"{where}: the set has no name (the first field is empty).")
            if not genes:
                raise GeneSetError(
                    f"{where}: set '{name}' lists no genes. Give genes after the description "
                    "field, separated by tabs."
                )
            if name in sets:
                raise GeneSetError(
                    f"{where}: set name '{name}' is used twice; names must be unique."
                )
            sets[name] = GeneSet(name, description.strip(), tuple(genes))
    if not sets:
        raise GeneSetError(f"gene-set file '{path}' holds no gene sets.")
    log.info("read %d gene sets from %s", len(sets), path)
    return sets


def write_gmt(sets: Mapping[str, GeneSet] | Iterable[GeneSet], path: str | Path) -> Path:
    """Write gene sets to a GMT file (atomically).

    Parameters
    ----------
    sets
        Gene sets, as a mapping of name to :class:`GeneSet` or an iterable of them.
    path
        The file to write.

    Returns
    -------
    Path
        The written file.
    """
    from latentshift.data import artifacts

    items = list(sets.values()) if isinstance(sets, Mapping) else list(sets)
    lines = []
    for gs in items:
        fields = [gs.name, gs.description, *gs.genes]
        for f in fields:
            if "\t" in f or "\n" in f or "\r" in f:
                raise GeneSetError(
                    f"gene set '{gs.name}': field {f!r} holds a tab or line break, which GMT "
                    "cannot store. Remove it."
                )
        if not gs.name or not gs.genes:
            raise GeneSetError(
                f"gene set {gs.name!r} needs a name and at least one gene to be written."
            )
        lines.append("\t".join(fields))
    return artifacts.write_text("\n".join(lines) + "\n", Path(path))


def select_sets(sets: Mapping[str, GeneSet], names: Sequence[str]) -> dict[str, GeneSet]:
    """Pick sets by name, with a did-you-mean error for an unknown name.

    Parameters
    ----------
    sets
        All sets (from :func:`read_gmt`).
    names
        The names a profile asks for (duplicates are kept once).

    Raises
    ------
    GeneSetError
        When a name is not in ``sets``; the message lists the available names.
    """
    out: dict[str, GeneSet] = {}
    for name in dict.fromkeys(names):
        if name not in sets:
            available = list(sets)
            close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
            upper = {k.upper(): k for k in available}
            if name.upper() in upper:
                close = [upper[name.upper()]]
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise GeneSetError(
                f"gene set '{name}' is not in the GMT file.{hint} Available sets: "
                f"{', '.join(available)}. Fix the 'geneset' of the perturbation entry or "
                "'genesets.gmt' in the params file."
            )
        out[name] = sets[name]
    return out


# --- matching against data -------------------------------------------------------------------


def symbols_of(adata: AnnData, symbol_column: str | None = None) -> pd.Index:
    """The gene symbols of a data set, aligned with its ``var_names``.

    Parameters
    ----------
    adata
        An AnnData.
    symbol_column
        A ``var`` column holding symbols. ``None``: ``var["feature_name"]`` when present
        (CELLxGENE files), else ``var_names``.

    Returns
    -------
    pandas.Index
        One symbol (str) per gene, in ``var`` order.

    Raises
    ------
    GeneSetError
        When ``symbol_column`` is given but not a ``var`` column.
    """
    if symbol_column is not None:
        if symbol_column not in adata.var.columns:
            raise GeneSetError(
                f"data.symbol_column is '{symbol_column}', but the data's var has no such column "
                f"(columns: {', '.join(map(str, adata.var.columns)) or 'none'}). Set "
                "data.symbol_column to one of them, or to null to match on var_names."
            )
        values = adata.var[symbol_column]
    elif DEFAULT_SYMBOL_COLUMN in adata.var.columns:
        values = adata.var[DEFAULT_SYMBOL_COLUMN]
    else:
        return pd.Index(adata.var_names.astype(str), name="symbol")
    return pd.Index(values.astype(str).to_numpy(), name="symbol")


def match_genesets(
    adata: AnnData,
    sets: Mapping[str, GeneSet],
    names: Sequence[str] | None = None,
    symbol_column: str | None = None,
    min_found_fraction: float = 0.5,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Find each gene set's genes in a data set (case-insensitive symbols).

    Parameters
    ----------
    adata
        The data (its ``var``).
    sets
        Gene sets by name (from :func:`read_gmt`).
    names
        The sets to match (default: all of ``sets``); an unknown name raises with a
        did-you-mean hint.
    symbol_column
        Where the symbols are, see :func:`symbols_of`.
    min_found_fraction
        A set with a smaller fraction of its genes found triggers a warning.

    Returns
    -------
    table : pandas.DataFrame
        One row per set (index: set name): ``n_genes``, ``n_found``, ``found_fraction``,
        ``found`` and ``missing`` (lists of the set's symbols).
    genes_by_set : dict of str to list of str
        The matched ``var_names`` per set, in the set's order. A symbol found on several
        genes (e.g. two Ensembl IDs) contributes all of them.

    Raises
    ------
    GeneSetError
        When a set has none of its genes in the data; the message names the set and a few of
        its genes, and shows a few of the data's symbols.
    """
    names = list(sets) if names is None else list(names)
    chosen = select_sets(sets, names)
    symbols = symbols_of(adata, symbol_column)
    source = (
        f"var['{symbol_column}']"
        if symbol_column is not None
        else f"var['{DEFAULT_SYMBOL_COLUMN}']"
        if DEFAULT_SYMBOL_COLUMN in adata.var.columns
        else "var_names"
    )
    positions: dict[str, list[int]] = {}
    for i, sym in enumerate(symbols.str.upper()):
        positions.setdefault(sym, []).append(i)
    var_names = adata.var_names
    rows = []
    genes_by_set: dict[str, list[str]] = {}
    for name, gs in chosen.items():
        found, missing, matched = [], [], []
        for gene in gs.genes:
            hits = positions.get(gene.upper())
            if hits:
                found.append(gene)
                matched.extend(str(var_names[i]) for i in hits)
            else:
                missing.append(gene)
        matched = list(dict.fromkeys(matched))
        n = len(gs.genes)
        if not found:
            example = ", ".join(gs.genes[:5])
            data_example = ", ".join(map(str, symbols[:5]))
            raise GeneSetError(
                f"gene set '{name}' ({n} genes, e.g. {example}) has none of its genes in the data "
                f"(matched case-insensitively against {source}, e.g. {data_example}). If the data's "
                "genes are Ensembl IDs, set data.symbol_column to the var column with gene "
                "symbols; otherwise check that the set and the data are of the same species."
            )
        fraction = len(found) / n
        if fraction < min_found_fraction:
            msg = (
                f"gene set '{name}': only {len(found)} of {n} genes ({fraction:.0%}) found in the "
                f"data, below genesets.min_found_fraction = {min_found_fraction}. Missing e.g. "
                f"{', '.join(missing[:5])}."
            )
            log.warning(msg)
            warnings.warn(msg, UserWarning, stacklevel=2)
        log.info("gene set %s: %d of %d genes found", name, len(found), n)
        rows.append(
            {
                "set": name,
                "n_genes": n,
                "n_found": len(found),
                "found_fraction": fraction,
                "matched_on": source,
                "found": found,
                "missing": missing,
            }
        )
        genes_by_set[name] = matched
    table = pd.DataFrame(rows).set_index("set")
    return table, genes_by_set


def match_summary(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The match table as plain values for ``metrics.json``.

    Parameters
    ----------
    table
        From :func:`match_genesets`.

    Returns
    -------
    dict
        Per set: ``n_genes``, ``n_found``, ``found_fraction``, ``matched_on`` (the column the
        symbols came from), ``missing`` (list).
    """
    return {
        str(name): {
            "n_genes": int(row["n_genes"]),
            "n_found": int(row["n_found"]),
            "found_fraction": round(float(row["found_fraction"]), 4),
            "matched_on": str(row["matched_on"]),
            "missing": list(row["missing"]),
        }
        for name, row in table.iterrows()
    }


def n_present(adata: AnnData, genes: Sequence[str], symbol_column: str | None = None) -> int:
    """How many of ``genes`` are among the data's genes (symbols, case-insensitive)."""
    present = {str(s).upper() for s in symbols_of(adata, symbol_column)}
    return sum(str(g).upper() in present for g in genes)


def match_display(table: pd.DataFrame) -> pd.DataFrame:
    """The match table of :func:`match_genesets` for reading: fractions rounded, gene lists
    joined by commas ("—" where none is missing)."""
    return table.assign(
        found_fraction=table["found_fraction"].round(3),
        found=table["found"].map(", ".join),
        missing=table["missing"].map(lambda m: ", ".join(m) or "—"),
    )
