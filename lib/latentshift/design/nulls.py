"""The label null of a design: every relabelling the units allow, enumerated or sampled.

The one module that relabels conditions (:func:`relabel`), for every reading — the classifier,
the per-cell-type AUC, the E-test:

- when the conditions sit **within** units (a cell and its copies, a donor before and after a
  stimulation), each unit's condition labels are permuted among its conditions, as wholes: a
  copy and its source swap labels, a donor's stimulated and control nuclei swap labels;
- when they sit **between** units (a donor is a case or a control), the units' conditions are
  dealt anew among the units, each keeping its cells.

A design with at most as many distinct relabellings as asked for gets every one of them (the
p-value is then exact and its floor is the design's: two paired donors have 2² relabellings, two
of which give the observed grouping back, so p ≥ 1/2); a larger one a random sample (floor
1 / (n + 1)). :class:`Relabellings` says which, and computes the p-value. :func:`unit_rng` gives
each unit of analysis (a condition and cell type) its own random stream.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from latentshift.design.units import Units
from latentshift.errors import DesignError

__all__ = ["Relabellings", "relabel", "unit_rng"]


@dataclass(frozen=True)
class Relabellings:
    """Relabellings of a design under its null (:func:`relabel`).

    Attributes
    ----------
    codes
        Draws × cells: each cell's relabelled condition, as a position in :attr:`labels`.
    labels
        The conditions.
    exact
        True when every distinct relabelling is listed (the observed one among them).
    n_distinct
        How many distinct relabellings the design has (``inf`` beyond 10^15; see
        :attr:`log10_distinct`).
    n_equivalent
        How many of them give the observed grouping back with the conditions renamed (the
        observed one included); a statistic blind to the names takes the observed value on
        each, which sets the smallest attainable exact p-value.
    log10_distinct
        log10 of the number of distinct relabellings.
    equivalent
        Exact: which relabellings give the observed grouping back (the observed one and its
        renamings); :meth:`pvalue` counts them as at least as extreme, whatever a statistic
        with its own randomness (a network, a subsample) made of them.
    """

    codes: np.ndarray
    labels: tuple[str, ...]
    exact: bool
    n_distinct: float
    n_equivalent: int
    log10_distinct: float = 0.0
    equivalent: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def conditions(self, i: int) -> np.ndarray:
        """The cells' conditions under relabelling ``i``."""
        return np.asarray(self.labels, dtype=object)[self.codes[i]].astype(str)

    @property
    def min_pvalue(self) -> float:
        """The smallest p-value :meth:`pvalue` can return."""
        if self.exact:
            return self.n_equivalent / len(self)
        return 1.0 / (len(self) + 1)

    def pvalue(
        self, observed: float, null: Sequence[float] | np.ndarray, tol: float = 1e-12
    ) -> float:
        """Share of relabellings at least as extreme as the observed statistic.

        Exact: ``#{null >= observed} / n`` over every relabelling, those that give the observed
        grouping back counted as at least as extreme (``null`` is then aligned with the
        relabellings); sampled: ``(1 + #{null >= observed}) / (1 + n)`` (Phipson & Smyth 2010).
        Draws that could not be scored (NaN) are left out.
        """
        null = np.asarray(null, dtype=np.float64)
        if not np.isfinite(observed):
            return float("nan")
        if self.exact and self.equivalent is not None and null.size == len(self):
            same = self.equivalent
            scored = ~same & np.isfinite(null)
            hits = int((null[scored] >= observed - tol).sum()) + int(same.sum())
            return hits / (int(scored.sum()) + int(same.sum()))
        null = null[np.isfinite(null)]
        if not null.size:
            return float("nan")
        hits = int((null >= observed - tol).sum())
        return hits / null.size if self.exact else (1 + hits) / (1 + null.size)

    def describe(self, name: str = "unit") -> str:
        """The null in words: how many relabellings, enumerated or sampled, and the floor."""
        how = (
            f"all {len(self):,} distinct relabellings enumerated (exact)"
            if self.exact
            else (
                f"{len(self):,} random relabellings of "
                + (
                    f"{self.n_distinct:,.0f}"
                    if self.log10_distinct < 9
                    else f"about 10^{self.log10_distinct:.0f}"
                )
                + " distinct ones"
            )
        )
        return f"{how}; smallest attainable p = {self.min_pvalue:.3g}"


#: Beyond this many distinct relabellings the count is kept as its logarithm only.
_COUNTABLE = 1e15


def _count(log10: float) -> float:
    return float(round(10**log10)) if log10 < math.log10(_COUNTABLE) else math.inf


def _same_grouping(rows: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per row, whether it groups the items as ``observed`` does (the codes renamed at most)."""
    k = int(max(rows.max(), observed.max())) + 1
    n_obs = np.unique(observed).size
    out = np.empty(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        pairs = np.unique(observed * k + row).size
        out[i] = pairs == n_obs == np.unique(row).size
    return out


def _equivalent(units: Units) -> int:
    """Renamings of the conditions that give a valid relabelling (see :class:`Relabellings`)."""
    if units.paired:
        return math.factorial(len(units.labels))
    counts = Counter(units.units_per_condition().values())
    return math.prod(math.factorial(m) for m in counts.values())


def relabel(units: Units, n_permutations: int, rng: np.random.Generator | int = 0) -> Relabellings:
    """The design's label null: relabellings within units (paired) or of whole units (unpaired).

    Parameters
    ----------
    units
        The cells' units and conditions.
    n_permutations
        How many random relabellings to draw when the design has more distinct ones; when it
        has at most this many, every one is listed instead (exact).
    rng
        Generator or seed.

    Returns
    -------
    Relabellings
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    labels = units.labels
    index = {c: i for i, c in enumerate(labels)}
    k = len(labels)
    cond = np.array([index[c] for c in units.condition.tolist()], dtype=np.int64)
    if units.paired:
        # one group per (unit, condition), in order of first appearance; labels move among a
        # unit's groups, so each unit's conditions are permuted as wholes
        keys = pd.Series(units.unit).str.cat(cond.astype(str), sep="\x1f")
        group, first = pd.factorize(keys)[0], pd.Series(keys).drop_duplicates().index.to_numpy()
        g_unit = pd.factorize(units.unit[first])[0]
        g_cond = cond[first]
        n_units = int(g_unit.max()) + 1
        log10 = n_units * math.log10(math.factorial(k))
        if g_unit.size != n_units * k:
            raise DesignError(
                f"a paired relabelling needs every {units.name} in every condition; "
                f"{n_units * k - g_unit.size} (unit, condition) combinations are missing."
            )
        if log10 <= math.log10(max(n_permutations, 1)) + 1e-9:
            perms = list(itertools.permutations(range(k)))
            rows = [
                np.array([choice[u][c] for u, c in zip(g_unit, g_cond, strict=True)])
                for choice in itertools.product(perms, repeat=n_units)
            ]
            g_codes, exact = np.array(rows, dtype=np.int64), True
        else:
            # unit code + U(0, 1): sorting keeps the units in order and shuffles within each
            codes = g_unit.astype(np.float64)
            base = np.argsort(codes, kind="stable")
            order = np.argsort(codes[None, :] + rng.random((n_permutations, codes.size)), axis=1)
            g_codes = np.empty((n_permutations, codes.size), dtype=np.int64)
            g_codes[:, base] = g_cond[order]
            exact = False
        same = _same_grouping(g_codes, g_cond) if exact else None
        return Relabellings(
            g_codes[:, group], labels, exact, _count(log10), _equivalent(units), log10, same
        )
    # unpaired: one condition per unit, dealt anew among the units
    u_code, u_names = pd.factorize(units.unit)
    u_cond = np.zeros(len(u_names), dtype=np.int64)
    u_cond[u_code] = cond
    counts = np.bincount(u_cond, minlength=k)
    log10 = (
        math.lgamma(len(u_names) + 1) - sum(math.lgamma(int(c) + 1) for c in counts)
    ) / math.log(10)
    if log10 <= math.log10(max(n_permutations, 1)) + 1e-9:
        u_codes, exact = np.array(list(_arrangements(counts)), dtype=np.int64), True
    else:
        order = np.argsort(rng.random((n_permutations, len(u_names))), axis=1)
        u_codes, exact = u_cond[order], False
    same = _same_grouping(u_codes, u_cond) if exact else None
    return Relabellings(
        u_codes[:, u_code], labels, exact, _count(log10), _equivalent(units), log10, same
    )


def _arrangements(counts: np.ndarray) -> Iterator[tuple[int, ...]]:
    """Every distinct sequence holding ``counts[c]`` times the code c, in lexicographic order."""
    left = [int(c) for c in counts]
    n = sum(left)

    def extend(prefix: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        if len(prefix) == n:
            yield prefix
            return
        for c, m in enumerate(left):
            if m:
                left[c] -= 1
                yield from extend((*prefix, c))
                left[c] += 1

    return extend(())


def unit_rng(seed: int, *names: str) -> np.random.Generator:
    """The random generator of one unit of analysis, e.g. one (condition, cell type).

    Derived from ``seed`` and a CRC-32 of the names (stable across runs and platforms,
    unlike :func:`hash`), so the draws of one unit of analysis do not depend on which others
    are analysed, and every representation sees the same draws.
    """
    if int(seed) < 0:
        raise DesignError(f"seed must be a non-negative integer, got {seed}.")
    key = zlib.crc32("\x1f".join(names).encode("utf-8"))
    return np.random.default_rng([int(seed), key])
