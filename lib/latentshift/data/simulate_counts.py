"""The counts of a planned simulation, drawn chunk by chunk.

- :class:`SimulationPlan` — everything of a simulation but the counts
  (:func:`latentshift.data.simulate.plan_simulation` makes it), and the counts it draws, one
  chunk of cells at a time;
- :func:`sample_nb` — exact sparse negative-binomial draws of one chunk;
- :func:`stack_blocks` — the chunks stacked into one int32 CSR matrix in bounded memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentshift.data.counts import RowStacker

# the simulation's log lines, under the name of the module that runs it
log = logging.getLogger("latentshift.data.simulate")

_CELLS_PER_CHUNK_ENTRIES = 20_000_000  # cells × genes sampled per chunk


def sample_nb(rng: np.random.Generator, mu: np.ndarray, theta: np.ndarray) -> sp.csr_matrix:
    """Negative-binomial counts (mean ``mu``, inverse dispersion ``theta`` per gene) as CSR.

    Exact inversion sampling that touches only the nonzero draws after the first pass: one
    uniform per entry decides zero / nonzero against P(0) = (θ/(θ+μ))^θ; for the few nonzero
    entries the CDF is walked up with the pmf recursion p(k) = p(k-1)·(k-1+θ)/k·μ/(μ+θ).
    """
    n, g = mu.shape
    u = rng.random((n, g), dtype=np.float32)
    p0 = (theta / (theta + mu)) ** theta
    flat = np.flatnonzero(u > p0)
    del p0
    m = mu.ravel()[flat].astype(np.float64)
    th = theta[flat % g].astype(np.float64)
    uu = u.ravel()[flat].astype(np.float64)
    del u
    q = m / (m + th)
    pk = np.exp(th * np.log1p(-q))  # P(0) in float64
    cdf = pk.copy()
    out = np.zeros(len(flat), dtype=np.int32)
    active = np.arange(len(flat))
    k = 0
    while len(active):
        k += 1
        pk *= (k - 1 + th) / k * q
        cdf += pk
        done = (cdf >= uu) | (k >= 100_000)
        out[active[done]] = k
        keep = ~done
        if not keep.all():
            active, pk, cdf, th, q, uu = (a[keep] for a in (active, pk, cdf, th, q, uu))
    rows = flat // g
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sp.csr_matrix((out, (flat % g).astype(np.int32), indptr), shape=(n, g))


def stack_blocks(blocks: Iterator[sp.csr_matrix], n_cells: int, n_genes: int) -> sp.csr_matrix:
    """One int32 CSR matrix from the chunks, each freed once copied in.

    The buffer is sized from the first chunk's density (plus 5 %), so memory peaks at the
    counts plus one chunk, not at twice the counts (``scipy.sparse.vstack`` of a list).
    """
    stack: RowStacker | None = None
    for block in blocks:
        if stack is None:
            expected = int(block.nnz / max(1, block.shape[0]) * n_cells * 1.05) + 1
            stack = RowStacker(n_genes, expected, np.dtype(np.int32))
        stack.append(block)
    assert stack is not None  # n_cells >= 1 gives at least one chunk
    counts = stack.tocsr()
    counts.indices = counts.indices.astype(np.int32, copy=False)
    if counts.nnz < np.iinfo(np.int32).max:
        counts.indptr = counts.indptr.astype(np.int32, copy=False)
    return counts


@dataclass
class SimulationPlan:
    """Everything of a simulation but the counts, which :meth:`blocks` draws chunk by chunk.

    Made by :func:`latentshift.data.simulate.plan_simulation`;
    :func:`latentshift.data.simulate.simulate_m1` stacks its blocks in memory
    (:func:`stack_blocks`), :func:`latentshift.data.simulate_h5ad.write_simulated_h5ad` appends
    them to a file.
    """

    obs: pd.DataFrame
    var: pd.DataFrame
    source: str
    rows: np.ndarray  # per (type, donor) transcriptome fractions of the panel's genes, float32
    theta: np.ndarray
    library: np.ndarray
    combo: np.ndarray
    seed: int

    @property
    def n_genes(self) -> int:
        return len(self.var)

    def blocks(self) -> Iterator[sp.csr_matrix]:
        """int32 CSR counts of consecutive chunks of cells.

        The same draws as :func:`latentshift.data.simulate.simulate_m1`.
        """
        n_cells, g_total = len(self.obs), self.n_genes
        chunk = max(1, _CELLS_PER_CHUNK_ENTRIES // g_total)
        n_chunks = -(-n_cells // chunk)
        start = time.time()
        for c in range(n_chunks):
            lo, hi = c * chunk, min(n_cells, (c + 1) * chunk)
            mu = self.rows[self.combo[lo:hi]]
            mu *= self.library[lo:hi, None].astype(np.float32)
            block = sample_nb(np.random.default_rng([self.seed, 3, c]), mu, self.theta)
            del mu
            block.indices = block.indices.astype(np.int32, copy=False)
            block.data = block.data.astype(np.int32, copy=False)  # int32 in, int32 out of vstack
            log.info(
                "simulate_m1: chunk %d/%d (cells %d-%d) done, %.1f s",
                c + 1,
                n_chunks,
                lo,
                hi - 1,
                time.time() - start,
            )
            yield block
