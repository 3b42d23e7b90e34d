"""LDVAE training at atlas shape: the settings of before vs the large-n schedule, side by side.

Both variants train scvi-tools' :class:`~scvi.model.LinearSCVI` (36 latent dimensions, the
zero-aware NB term) through :func:`latentshift.model.ldvae.train_ldvae` on the SAME cells — the
343.8k-cell × 5k-gene slice ``02_perturb`` writes for ``params/m1_full_sim.yaml`` (its training
split) — for the same wall-clock budget each:

* **before** — the ``m1_full_sim`` settings up to commit a725081: minibatches of 1024, an
  epoch is a full pass over the training cells, 10 % of them for validation;
* **large-n** — ``ldvae.batch_size: 256``, ``ldvae.epoch_cells: 50000``,
  ``ldvae.validation_cells: 10000`` (``params/m1_full_sim.yaml`` now).

A callback measures the held-out negative ELBO per cell (lower is better) of a fixed sample of
test cells every ``--eval-cells`` training cells, against the training time (evaluation
excluded). Reported per variant: training cells per second and seconds per 100k cells (the
per-cell cost of a step), the held-out curve; and the *time to quality*: the training time at
which each first reaches the better of the two final held-out values plus 0.5 %. Target: the
large-n schedule at least 2× faster to that quality.

Run: ``python -m benchmarks atlas`` (about 2 × ``--minutes`` plus the read; make the slice first
with ``python -m latentshift run params/m1_full_sim.yaml --only 01``, then ``--only 02``), ``--quick`` for a tiny
simulated check that the code runs. Written to ``reports/bench/atlas.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

TOLERANCE = 0.005
TARGET_RATIO = 2.0
VARIANTS: dict[str, dict[str, Any]] = {
    "before": {"batch_size": 1024, "epoch_cells": None, "validation_cells": None},
    "large-n": {"batch_size": 256, "epoch_cells": 50_000, "validation_cells": 10_000},
}
COMMON = {
    "n_latent": 36,
    "max_epochs": 100_000,  # the wall-clock budget ends training
    "early_stopping_patience": None,
    "snapshot_every": None,
}

log = logging.getLogger("bench_atlas")


def budget_tracker(test: Any, budget_s: float, eval_cells: int, batch_size: int) -> Any:
    """A Lightning callback: held-out −ELBO of ``test`` every ``eval_cells`` training cells,
    and a stop once ``budget_s`` seconds of training (evaluation excluded) are spent."""
    from lightning.pytorch.callbacks import Callback

    every = max(1, eval_cells // batch_size)

    class Tracker(Callback):
        def __init__(self) -> None:
            self.points: list[tuple[float, int, float]] = []
            self.model: Any = None
            self.start = self.paused = 0.0
            self.steps = 0

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.start, self.paused = time.perf_counter(), 0.0

        def trained(self) -> float:
            return time.perf_counter() - self.start - self.paused

        def evaluate(self, pl_module: Any) -> None:
            t0 = time.perf_counter()
            module = pl_module.module
            module.eval()
            value = float(-self.model.get_elbo(test, batch_size=2048))
            module.train()
            self.points.append((t0 - self.start - self.paused, self.steps * batch_size, value))
            self.paused += time.perf_counter() - t0

        def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            self.steps += 1
            if self.steps % every == 0:
                self.evaluate(pl_module)
                if self.trained() >= budget_s:
                    trainer.should_stop = True

    return Tracker()


def run_variant(name: str, cells: Any, test: Any, args: argparse.Namespace) -> dict[str, Any]:
    import scvi

    from latentshift.model import ldvae

    params = {**COMMON, **VARIANTS[name]}
    tracker = budget_tracker(test, args.minutes * 60, args.eval_cells, params["batch_size"])
    original = scvi.model.LinearSCVI.train

    def train(self: Any, *a: Any, **kw: Any) -> Any:  # hand the tracker the model
        tracker.model = self
        return original(self, *a, **kw)

    scvi.model.LinearSCVI.train = train
    try:
        ldvae.train_ldvae(cells, params, seed=args.seed, progress_bar=False, callbacks=[tracker])
    finally:
        scvi.model.LinearSCVI.train = original
    seconds, seen, final = tracker.points[-1]
    return {
        "settings": VARIANTS[name],
        "train_seconds": round(seconds, 1),
        "cells_seen": int(seen),
        "cells_per_second": round(seen / seconds, 1),
        "seconds_per_100k_cells": round(1e5 * seconds / seen, 2),
        "final_heldout_neg_elbo": round(final, 3),
        "curve": [
            {"seconds": round(t, 1), "cells_seen": int(c), "heldout_neg_elbo": round(v, 3)}
            for t, c, v in tracker.points
        ],
    }


def time_to(curve: list[dict[str, Any]], bar: float) -> float | None:
    return next((p["seconds"] for p in curve if p["heldout_neg_elbo"] <= bar), None)


def load_cells(args: argparse.Namespace) -> Any:
    from latentshift.data import artifacts

    if args.quick:
        from latentshift.data import simulate

        adata = simulate.simulate_m1(3000, 400, seed=args.seed)
        rng = np.random.default_rng([args.seed, 7])
        adata.obs["split"] = np.where(rng.random(adata.n_obs) < 0.7, "train", "test")
        adata.obs["source_cell"] = adata.obs_names.astype(str)
        return adata
    path = artifacts.resolve_path(args.cells)
    if not path.is_file():
        print(
            f"  skipped: {path} is missing. Make the atlas slice first (python -m latentshift "
            "simulate data/m1_full_sim.h5ad --cells 114600 --genes 28000, then python -m "
            "latentshift run params/m1_full_sim.yaml --only 01, and again with --only 02), or "
            "give --cells another perturbed.h5ad.",
            flush=True,
        )
        return None
    return artifacts.read_h5ad(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_atlas", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--cells", default="runs/m1_full_sim/perturbed.h5ad")
    parser.add_argument("--minutes", type=float, default=12.0, help="training budget per variant")
    parser.add_argument("--eval-cells", type=int, default=100_000)
    parser.add_argument("--test-cells", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny simulated cells")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.minutes, args.eval_cells, args.test_cells = 0.1, 2_000, 300
        VARIANTS["large-n"] = {**VARIANTS["large-n"], "epoch_cells": 500, "validation_cells": 100}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("lightning", "lightning.pytorch", "scvi", "latentshift"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from latentshift.data import artifacts
    from latentshift.record import provenance

    cells = load_cells(args)
    if cells is None:
        return 1
    test_rows = np.flatnonzero(cells.obs["split"].astype(str) == "test")
    pick = np.random.default_rng([args.seed, 3]).choice(
        test_rows, min(args.test_cells, len(test_rows)), replace=False
    )
    test = cells[np.sort(pick)].copy()
    print(f"LDVAE at atlas shape: {cells.n_obs} cells x {cells.n_vars} genes", flush=True)
    runs = {}
    for name in VARIANTS:
        runs[name] = run_variant(name, cells, test, args)
        r = runs[name]
        print(
            f"  {name:8s} {r['seconds_per_100k_cells']:7.1f} s per 100k cells, "
            f"held-out -ELBO {r['final_heldout_neg_elbo']:.1f} after {r['train_seconds']:.0f} s",
            flush=True,
        )
    best = min(r["final_heldout_neg_elbo"] for r in runs.values())
    bar = best + TOLERANCE * abs(best)
    t_before, t_new = time_to(runs["before"]["curve"], bar), time_to(runs["large-n"]["curve"], bar)
    ratio = t_before / t_new if t_before and t_new else None
    report = {
        "benchmark": "LDVAE training at atlas shape",
        "date": time.strftime("%Y-%m-%d"),
        "commit": provenance.git(artifacts.project_root(), "rev-parse", "HEAD"),
        "n_cells": int(cells.n_obs),
        "n_genes": int(cells.n_vars),
        "budget_minutes": args.minutes,
        "quick": bool(args.quick),
        "machine": provenance.machine(),
        "runs": runs,
        "comparison": {
            "quality_bar_neg_elbo": round(bar, 3),
            "time_to_quality_before_s": t_before,
            "time_to_quality_large_n_s": t_new,
            "speedup": round(ratio, 2) if ratio else None,
            "per_cell_cost_ratio": round(
                runs["before"]["seconds_per_100k_cells"]
                / runs["large-n"]["seconds_per_100k_cells"],
                2,
            ),
            "target": f"large-n >= {TARGET_RATIO}x faster to within {100 * TOLERANCE}% of the better final held-out ELBO",
            "target_met": bool(ratio and ratio >= TARGET_RATIO)
            or (t_before is None and t_new is not None),
        },
    }
    out = Path(args.out) if args.out else artifacts.project_root() / "reports/bench/atlas.json"
    artifacts.write_json(report, out)
    c = report["comparison"]
    print(
        f"  time to within 0.5% of the best: before {t_before} s, large-n {t_new} s; "
        f"speedup {c['speedup']}; per-cell cost before/large-n {c['per_cell_cost_ratio']}; "
        f"target met: {c['target_met']}\n  written: {out}",
        flush=True,
    )
    return 0 if c["target_met"] or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
