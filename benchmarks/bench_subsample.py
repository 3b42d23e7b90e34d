"""Reading a 5000-cell sample of a large .h5ad: only the sampled rows vs a full read, side by side.

The file is a simulated CELLxGENE-shaped M1 data set the size of the real one (114.6k cells ×
30k genes; Ensembl-style IDs, symbols in ``var["feature_name"]``, log-normalised ``X``, integer
counts only in ``raw/X``), written once by :func:`latentshift.data.simulate_h5ad.write_simulated_h5ad` and
cached under ``data/bench/``. The two variants:

* ``sample`` — :func:`latentshift.data.h5ad.read_h5ad_sample`: obs, var and the row pointers, then
  only the 5000 chosen rows of ``raw/X`` (what ``01_data`` does when ``n_cells`` is set);
* ``full`` — ``anndata.read_h5ad(path)`` (X and raw.X in memory), then the same 5000 rows
  (``adata[rows].copy()``).

Both draw the same cells (seeded, stratified by cell type) and the counts are checked to agree.
Each runs in its own subprocess; its peak resident memory is the kernel's high-water mark
(``VmHWM``, i.e. ``ru_maxrss``) of that process, reported whole and as the growth over the
process after its imports. The file is read once beforehand so both find it in the page cache.
Target: the sample's peak at most a fifth of the full read's. Results are printed and written to
``reports/bench/subsample.json``.

Run: ``python -m benchmarks subsample`` (``--quick``: 11.46k cells × 3k genes; ``--cells N`` and
``--genes G`` for other sizes; ``--sample N`` for the sample size, by default the same share
of the file as 5000 of 114.6k cells).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import fmt_bytes, peak_rss, reset_peak_rss, run_worker

N_CELLS = 114_600
N_GENES = 30_000
N_SAMPLE = 5_000
SEED = 0
TARGET_MEMORY_RATIO = 0.2
ROOT = Path(__file__).resolve().parent.parent


def bench_file(n_cells: int, n_genes: int) -> tuple[Path, float]:
    """The cached simulated file (written when missing); seconds spent writing it (0 if cached)."""
    from latentshift.data import simulate_h5ad
    from latentshift.perturb import genesets as gs

    path = ROOT / "data" / "bench" / f"sim_cellxgene_{n_cells}x{n_genes}_seed{SEED}.h5ad"
    if path.is_file():
        return path, 0.0
    sets = gs.read_gmt(ROOT / "params" / "genesets" / "disease_genesets.gmt")
    required = sorted({g for s in sets.values() for g in s.genes})
    start = time.perf_counter()
    simulate_h5ad.write_simulated_h5ad(
        path, n_cells, n_genes, seed=SEED, schema="cellxgene", required_genes=required
    )
    return path, time.perf_counter() - start


def worker(variant: str, path: str, n_sample: int) -> dict:
    """Run one variant in this (fresh) process; return its numbers."""
    import anndata as ad
    import h5py  # noqa: F401  (import cost outside the measurement, for both variants)
    import scipy.sparse as sp

    from latentshift.data import h5ad, sampling

    rss_base = reset_peak_rss()
    start = time.perf_counter()
    if variant == "sample":
        sample = h5ad.read_h5ad_sample(path, n_sample, SEED, stratify_by="cell_type", min_genes=0)
        counts = sample.layers["counts"]
        names = sample.obs_names
    else:
        adata = ad.read_h5ad(path)
        rows = sampling.choose_cells(adata.n_obs, n_sample, SEED, adata.obs["cell_type"].to_numpy())
        sample = adata[rows].copy()
        del adata
        counts = sp.csr_matrix(sample.raw.X)
        names = sample.obs_names
    seconds = time.perf_counter() - start
    peak = peak_rss()
    return {
        "variant": variant,
        "n_sample": int(counts.shape[0]),
        "n_genes": int(counts.shape[1]),
        "seconds": seconds,
        "peak_rss_bytes": int(peak),
        "baseline_rss_bytes": int(rss_base),
        "peak_rss_increase_bytes": int(max(peak - rss_base, 0)),
        "check": {
            "nnz": int(counts.nnz),
            "total_counts": int(np.asarray(counts.data).astype(np.int64).sum()),
            "first_cells": [str(x) for x in names[:3]],
        },
    }


def _option(argv: list[str], name: str, default: int) -> int:
    if name in argv:
        return int(argv[argv.index(name) + 1])
    for a in argv:
        if a.startswith(name + "="):
            return int(a.split("=", 1)[1])
    return default


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        print(json.dumps(worker(argv[1], argv[2], int(argv[3]))))
        return 0
    quick = "--quick" in argv
    n_cells = _option(argv, "--cells", N_CELLS // 10 if quick else N_CELLS)
    n_genes = _option(argv, "--genes", 3_000 if quick else N_GENES)
    # the same share of the file as 5000 of 114.6k cells unless --sample says otherwise
    n_sample = _option(
        argv, "--sample", max(10, min(N_SAMPLE, round(N_SAMPLE * n_cells / N_CELLS)))
    )
    out_path = ROOT / "reports" / "bench" / "subsample.json"

    t0 = time.perf_counter()
    path, gen_s = bench_file(n_cells, n_genes)
    size = path.stat().st_size
    made = f"written in {gen_s:.0f} s" if gen_s else "cached"
    print(
        f"file: {path.relative_to(ROOT)} ({n_cells:,} cells × {n_genes:,} genes, {fmt_bytes(size)} on disk; {made})",
        flush=True,
    )
    with open(path, "rb") as fh:  # warm the page cache so neither variant pays for the disk
        while fh.read(1 << 26):
            pass

    results = {}
    for variant in ("sample", "full"):
        results[variant] = r = run_worker("bench_subsample", variant, str(path), str(n_sample))
        print(
            f"  {variant:6s}: {r['seconds']:.2f} s, peak RSS {fmt_bytes(r['peak_rss_bytes'])} "
            f"(+{fmt_bytes(r['peak_rss_increase_bytes'])} over imports)",
            flush=True,
        )
    s, f = results["sample"], results["full"]
    if s["check"] != f["check"]:
        raise RuntimeError(
            f"the two variants read different cells or counts: {s['check']} vs {f['check']}"
        )
    ratio = s["peak_rss_bytes"] / f["peak_rss_bytes"]
    ratio_increase = s["peak_rss_increase_bytes"] / max(f["peak_rss_increase_bytes"], 1)
    speedup = f["seconds"] / s["seconds"]
    ok = ratio <= TARGET_MEMORY_RATIO

    print()
    print(
        f"Sampling {n_sample:,} of {n_cells:,} cells × {n_genes:,} genes (CELLxGENE-shaped, counts in raw/X), "
        "same cells in both (seeded, stratified by cell type)"
    )
    print(f"{'variant':<34}{'time':>9}{'peak RSS':>12}{'peak − imports':>16}")
    labels = {"sample": "read_h5ad_sample (sampled rows)", "full": "anndata.read_h5ad + subset"}
    for name in ("sample", "full"):
        r = results[name]
        print(
            f"{labels[name]:<34}{r['seconds']:>8.2f}s{fmt_bytes(r['peak_rss_bytes']):>12}{fmt_bytes(r['peak_rss_increase_bytes']):>16}"
        )
    print(
        f"{'ratio sample / full':<34}{s['seconds'] / f['seconds']:>9.3f}{ratio:>12.3f}{ratio_increase:>16.3f}"
    )
    print()
    print(
        f"peak memory sample/full: {ratio:.3f} (target ≤ {TARGET_MEMORY_RATIO}: {'met' if ok else 'MISSED'}); "
        f"sample is {speedup:.1f}× faster; both read {s['check']['nnz']:,} nonzeros, "
        f"{s['check']['total_counts']:,} counts"
    )
    summary = {
        "quick": quick,
        "settings": {
            "n_cells": n_cells,
            "n_genes": n_genes,
            "n_sample": n_sample,
            "seed": SEED,
            "stratify_by": "cell_type",
            "file": str(path.relative_to(ROOT)),
            "file_bytes": size,
        },
        "generate_seconds": gen_s,
        "results": results,
        "comparison": {
            "memory_ratio_peak_rss": ratio,
            "memory_ratio_peak_increase": ratio_increase,
            "time_ratio": s["seconds"] / f["seconds"],
            "speedup": speedup,
            "target_memory_ratio": TARGET_MEMORY_RATIO,
            "memory_met": ok,
        },
        "total_seconds": time.perf_counter() - t0,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(summary, indent=2) + "\n")
    tmp_path.replace(out_path)
    print(f"wrote {out_path.relative_to(ROOT)} (total {summary['total_seconds']:.0f} s)")
    return 0 if ok or quick else 1  # quick sizes are dominated by the imports: no target


if __name__ == "__main__":
    sys.exit(main())
