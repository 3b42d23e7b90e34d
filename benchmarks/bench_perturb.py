"""Sparse vs dense in-silico perturbation: time and peak memory, side by side.

The sparse implementation is :func:`latentshift.perturb.shift.perturb_counts` (binomial thinning of
the stored entries of ~100 genes, on the CSR arrays). The dense one is the straightforward
numpy version: densify, thin the gene columns, convert back to CSR (the pipeline stores sparse
counts, so both return the same kind of result from the same input).

* Both run on the SAME matrix (20k cells × 30k genes, ~6% nonzero: the largest whose dense
  int32 copy, 2.4 GB, fits comfortably on a 24 GB / 2-core machine) for the ratios.
* The sparse one alone runs on 25k, 50k and 100k cells × 30k genes to show time growing
  linearly in the number of nonzeros.

Each variant runs in its own subprocess on a matrix loaded from ``.npy`` files, so its peak
memory is clean: we report the peak resident-set growth over the loaded input (``ru_maxrss``)
and the peak of traced numpy allocations (``tracemalloc``). Time is the median of a few
repeats. Targets: ≥ 20× faster, ≤ 1/10 of the dense peak memory. Results are printed and
written to ``reports/bench/perturb.json``.

Run: ``python -m benchmarks perturb`` (``--quick`` for small sizes).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks.common import fmt_bytes, peak_rss, reset_peak_rss, run_worker

N_GENES = 30_000
DENSITY = 0.06
N_SET = 100
FOLD_CHANGE = 0.5
SEED = 0
COMPARE_CELLS = 20_000
SCALING_CELLS = (25_000, 50_000, 100_000)
REPEATS = {"sparse": 5, "dense": 3}
TARGET_SPEEDUP = 20.0
TARGET_MEMORY_RATIO = 0.1


# --- data --------------------------------------------------------------------------------------


def random_csr(
    n_rows: int, n_cols: int, density: float, seed: int, block_rows: int = 5000
) -> sp.csr_matrix:
    """A random integer CSR matrix, built block by block from geometric gaps between entries.

    Each stored position is a Bernoulli(density) event, so the column indices of a row come
    out sorted and distinct without any sorting; values are 1 + Geometric(0.4) counts (int32).
    """
    rng = np.random.default_rng(seed)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    data_parts, index_parts = [], []
    for r0 in range(0, n_rows, block_rows):
        rows = min(block_rows, n_rows - r0)
        cells = rows * n_cols
        expected = cells * density
        m = int(expected + 8 * np.sqrt(expected) + 100)
        pos = np.cumsum(rng.geometric(density, size=m)) - 1
        while pos[-1] < cells - 1:  # rare: not enough gaps drawn
            more = np.cumsum(rng.geometric(density, size=m // 10 + 100)) + pos[-1]
            pos = np.concatenate([pos, more])
        pos = pos[pos < cells]
        row, col = np.divmod(pos, n_cols)
        index_parts.append(col.astype(np.int32))
        data_parts.append((rng.geometric(0.4, size=pos.size)).astype(np.int32))
        indptr[r0 + 1 : r0 + rows + 1] = indptr[r0] + np.cumsum(np.bincount(row, minlength=rows))
        del pos, row, col
    data = np.concatenate(data_parts)
    indices = np.concatenate(index_parts)
    del data_parts, index_parts
    return sp.csr_matrix((data, indices, indptr.astype(np.int64)), shape=(n_rows, n_cols))


def tile_rows(X: sp.csr_matrix, times: int) -> sp.csr_matrix:
    """``X`` stacked on itself ``times`` times (a big matrix fast; the cost of a perturbation
    depends on the number and layout of nonzeros, not on the values being distinct)."""
    indptr = np.concatenate([X.indptr[:1]] + [X.indptr[1:] + k * X.nnz for k in range(times)])
    return sp.csr_matrix(
        (np.tile(X.data, times), np.tile(X.indices, times), indptr),
        shape=(X.shape[0] * times, X.shape[1]),
    )


def save_rows(X: sp.csr_matrix, n_rows: int, folder: Path) -> Path:
    """Save the first ``n_rows`` rows of ``X`` as .npy files (no copy of the arrays)."""
    folder.mkdir(parents=True, exist_ok=True)
    end = int(X.indptr[n_rows])
    np.save(folder / "data.npy", X.data[:end])
    np.save(folder / "indices.npy", X.indices[:end])
    np.save(folder / "indptr.npy", X.indptr[: n_rows + 1])
    (folder / "shape.json").write_text(json.dumps([n_rows, X.shape[1]]))
    return folder


def load(folder: Path) -> sp.csr_matrix:
    shape = tuple(json.loads((folder / "shape.json").read_text()))
    return sp.csr_matrix(
        (
            np.load(folder / "data.npy"),
            np.load(folder / "indices.npy"),
            np.load(folder / "indptr.npy"),
        ),
        shape=shape,
    )


# --- the two implementations -------------------------------------------------------------------


def sparse_perturb(
    X: sp.csr_matrix, gene_idx: np.ndarray, rng: np.random.Generator
) -> sp.csr_matrix:
    from latentshift.perturb.shift import perturb_counts

    return perturb_counts(X, gene_idx, FOLD_CHANGE, "thin", rng)


def dense_perturb(
    X: sp.csr_matrix, gene_idx: np.ndarray, rng: np.random.Generator
) -> sp.csr_matrix:
    """The straightforward way: a dense copy, thin the gene columns, back to sparse counts."""
    D = X.toarray()
    D[:, gene_idx] = rng.binomial(D[:, gene_idx], FOLD_CHANGE)
    return sp.csr_matrix(D)


IMPLEMENTATIONS = {"sparse": sparse_perturb, "dense": dense_perturb}


def worker(variant: str, folder: str, repeats: int) -> dict:
    """Run one implementation on one matrix in this (fresh) process; return its numbers."""
    import latentshift.perturb.shift  # noqa: F401  (import cost outside the measurement, for both variants)

    X = load(Path(folder))
    gene_idx = np.sort(np.random.default_rng(SEED).choice(X.shape[1], size=N_SET, replace=False))
    fn = IMPLEMENTATIONS[variant]
    rss_input = reset_peak_rss()  # interpreter, libraries and the input
    times = []
    checksum = None
    for i in range(repeats):
        rng = np.random.default_rng(SEED + i)
        if i == 0:
            tracemalloc.start()
        start = time.perf_counter()
        out = fn(X, gene_idx, rng)
        times.append(time.perf_counter() - start)
        if i == 0:
            _, traced_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            # sanity: integer CSR, untouched genes unchanged, the set's total about halved
            assert sp.issparse(out) and out.dtype == X.dtype and out.shape == X.shape
            before = X[:, gene_idx].sum()
            after = out[:, gene_idx].sum()
            checksum = {
                "set_sum_before": int(before),
                "set_sum_after": int(after),
                "nnz_out": int(out.nnz),
            }
            assert abs(after / before - FOLD_CHANGE) < 0.01
            assert out.nnz - out[:, gene_idx].nnz == X.nnz - X[:, gene_idx].nnz
        del out
    return {
        "variant": variant,
        "n_cells": X.shape[0],
        "n_genes": X.shape[1],
        "nnz": int(X.nnz),
        "input_bytes": int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes),
        "times_s": times,
        "median_s": statistics.median(times),
        # peak memory beyond the loaded input; the first (traced) run counts too
        "peak_rss_increase_bytes": max(peak_rss() - rss_input, 0),
        "peak_traced_bytes": int(traced_peak),
        "check": checksum,
    }


# --- report ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        print(json.dumps(worker(argv[1], argv[2], int(argv[3]))))
        return 0
    quick = "--quick" in argv
    compare_cells = 2_000 if quick else COMPARE_CELLS
    scaling = tuple(s // 20 for s in SCALING_CELLS) if quick else SCALING_CELLS
    n_genes = 3_000 if quick else N_GENES
    root = Path(__file__).resolve().parent.parent
    out_path = root / "reports" / "bench" / "perturb.json"

    t0 = time.perf_counter()
    largest = max(*scaling, compare_cells)
    base_rows = min(scaling[0], largest)
    base = random_csr(base_rows, n_genes, DENSITY, SEED)
    X = tile_rows(base, -(-largest // base_rows))
    del base
    gen_s = time.perf_counter() - t0
    print(
        f"generated {X.shape[0]:,} × {n_genes:,} CSR ({base_rows:,} random rows, tiled), {X.nnz:,} "
        f"nonzeros ({X.nnz / (X.shape[0] * n_genes):.1%}) in {gen_s:.1f} s",
        flush=True,
    )

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_perturb_") as tmp:
        folders = {
            n: save_rows(X, n, Path(tmp) / f"rows{n}") for n in sorted({compare_cells, *scaling})
        }
        del X
        for variant in ("dense", "sparse"):
            results[f"{variant}_{compare_cells}"] = r = run_worker(
                "bench_perturb", variant, str(folders[compare_cells]), str(REPEATS[variant])
            )
            print(
                f"  {variant:6s} {compare_cells:>7,} cells: {r['median_s']:.3f} s, "
                f"peak +{fmt_bytes(r['peak_rss_increase_bytes'])} RSS",
                flush=True,
            )
        for n in scaling:
            if n == compare_cells:
                continue
            results[f"sparse_{n}"] = r = run_worker(
                "bench_perturb", "sparse", str(folders[n]), str(REPEATS["sparse"])
            )
            print(
                f"  sparse {n:>7,} cells: {r['median_s']:.3f} s, peak +{fmt_bytes(r['peak_rss_increase_bytes'])} RSS",
                flush=True,
            )

    dense, sparse = results[f"dense_{compare_cells}"], results[f"sparse_{compare_cells}"]
    speedup = dense["median_s"] / sparse["median_s"]
    mem_ratio_rss = sparse["peak_rss_increase_bytes"] / max(dense["peak_rss_increase_bytes"], 1)
    mem_ratio_traced = sparse["peak_traced_bytes"] / max(dense["peak_traced_bytes"], 1)
    scal = [results[f"sparse_{n}"] for n in scaling]
    nnz = np.array([r["nnz"] for r in scal], dtype=float)
    secs = np.array([r["median_s"] for r in scal])
    slope, intercept = np.polyfit(nnz, secs, 1)
    pred = slope * nnz + intercept
    r2 = 1 - np.sum((secs - pred) ** 2) / np.sum((secs - secs.mean()) ** 2)
    per_nnz_ns = secs / nnz * 1e9
    log_slope = float(np.polyfit(np.log(nnz), np.log(secs), 1)[0])

    print()
    print(
        f"Perturbation of {N_SET} genes (thin, fold change {FOLD_CHANGE}), {n_genes:,} genes, "
        f"{DENSITY:.0%} density; median of {REPEATS['sparse']} (sparse) / {REPEATS['dense']} (dense) runs"
    )
    print(
        f"{'variant':<8}{'cells':>9}{'nonzeros':>14}{'time':>10}{'peak RSS +':>13}{'peak traced':>13}{'ns/nnz':>8}"
    )
    for r in results.values():
        print(
            f"{r['variant']:<8}{r['n_cells']:>9,}{r['nnz']:>14,}{r['median_s']:>9.3f}s"
            f"{fmt_bytes(r['peak_rss_increase_bytes']):>13}{fmt_bytes(r['peak_traced_bytes']):>13}"
            f"{r['median_s'] / r['nnz'] * 1e9:>8.2f}"
        )
    print()
    ok_speed = speedup >= TARGET_SPEEDUP
    ok_mem = mem_ratio_rss <= TARGET_MEMORY_RATIO
    print(
        f"same size ({compare_cells:,} cells): sparse is {speedup:.1f}× faster "
        f"(target ≥ {TARGET_SPEEDUP:.0f}×: {'met' if ok_speed else 'MISSED'})"
    )
    print(
        f"  peak memory sparse/dense: {mem_ratio_rss:.3f} by RSS, {mem_ratio_traced:.3f} traced "
        f"(target ≤ {TARGET_MEMORY_RATIO}: {'met' if ok_mem else 'MISSED'})"
    )
    print(
        f"linearity ({', '.join(f'{n:,}' for n in scaling)} cells): time = {slope * 1e9:.2f} ns × nnz "
        f"+ {intercept:.3f} s, R² = {r2:.4f}; log-log slope {log_slope:.2f} (1 = linear); "
        f"ns per nonzero: {', '.join(f'{v:.2f}' for v in per_nnz_ns)}"
    )
    summary = {
        "quick": quick,
        "settings": {
            "n_genes": n_genes,
            "density": DENSITY,
            "n_set_genes": N_SET,
            "method": "thin",
            "fold_change": FOLD_CHANGE,
            "seed": SEED,
            "repeats": REPEATS,
        },
        "generate_seconds": gen_s,
        "results": results,
        "comparison": {
            "n_cells": compare_cells,
            "speedup": speedup,
            "memory_ratio_rss": mem_ratio_rss,
            "memory_ratio_traced": mem_ratio_traced,
            "target_speedup": TARGET_SPEEDUP,
            "target_memory_ratio": TARGET_MEMORY_RATIO,
            "speedup_met": ok_speed,
            "memory_met": ok_mem,
        },
        "linearity": {
            "n_cells": list(scaling),
            "nnz": nnz.tolist(),
            "median_s": secs.tolist(),
            "ns_per_nnz": per_nnz_ns.tolist(),
            "fit_ns_per_nnz": slope * 1e9,
            "fit_intercept_s": intercept,
            "r2": r2,
            "loglog_slope": log_slope,
        },
        "total_seconds": time.perf_counter() - t0,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(summary, indent=2) + "\n")
    tmp_path.replace(out_path)
    print(f"wrote {out_path.relative_to(root)} (total {summary['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
