"""Time to quality of the LDVAE: our training settings vs scvi-tools' defaults, side by side.

Both runs train :class:`scvi.model.LinearSCVI` (same architecture: n_hidden 128, n_latent 10,
one encoder layer) on the SAME simulated cells (:func:`latentshift.data.simulate.simulate_m1`, split
70/30 into training and held-out cells by the same seed):

* **ours** — :func:`latentshift.model.ldvae.train_ldvae` with the ``ldvae`` defaults of
  :mod:`latentshift.config` (learning rate, batch size, short KL warm-up, early stopping on the
  validation ELBO, ``max_epochs``);
* **scvi defaults** — ``LinearSCVI(adata)`` and ``model.train()`` with nothing changed
  (lr 1e-3, batch 128, KL warm-up 400 epochs, no early stopping, ``max_epochs`` from
  scvi-tools' heuristic: 400 below 20k cells).

A callback records the held-out negative ELBO per cell (lower is better) every few epochs
against the wall time spent training (evaluation time excluded). The quality bar is the better
of the two final held-out values plus 1%; each run's *time to quality* is the training time at
its first evaluation that clears the bar (``None`` if it never does). Reported: wall time,
epochs, cells per second (training cells × epochs / second), final held-out ELBO, time to
quality and the ratio (defaults / ours). Target: ours at least 2× faster at an equal or better
final held-out ELBO (within 1%).

Sizes: ``--size demo`` (default; 6,000 cells × 3,000 genes — the demo's cells after their disease copies, every simulated gene),
``--size seed`` (the original study's 15,000 cells × 30,000 genes; about an hour or more on
2 CPU cores, minutes on a GPU), ``--quick`` (a tiny check that the code runs).
Results are printed and written to ``reports/bench/ldvae.json``.

Run: ``python -m benchmarks ldvae`` or ``python -m benchmarks.bench_ldvae --size demo``.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZES = {"quick": (600, 300), "demo": (6000, 3000), "seed": (15000, 30000)}
TOLERANCE = 0.01
TARGET_RATIO = 2.0
N_EVALS = 40  # held-out evaluations per run (every max_epochs / N_EVALS epochs)

log = logging.getLogger("bench_ldvae")


def simulated_cells(n_cells: int, n_genes: int, seed: int) -> Any:
    """Simulated M1-like counts with a 70/30 train/test split in ``obs["split"]``."""
    from latentshift.data import simulate

    adata = simulate.simulate_m1(n_cells, n_genes, seed=seed)
    rng = np.random.default_rng([seed, 7])
    adata.obs["split"] = np.where(rng.random(adata.n_obs) < 0.7, "train", "test")
    return adata


class HeldoutTracker:
    """Lightning callback: held-out negative ELBO every ``every`` epochs vs training time."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # build a real Callback subclass lazily
        from lightning.pytorch.callbacks import Callback

        class _Tracker(Callback):
            def __init__(self, model_ref: list, test: Any, every: int) -> None:
                self.model_ref, self.test, self.every = model_ref, test, every
                self.points: list[tuple[float, int, float]] = []
                self.start = 0.0
                self.paused = 0.0

            def on_train_start(self, trainer: Any, pl_module: Any) -> None:
                self.start = time.perf_counter()
                self.paused = 0.0

            def _evaluate(self, trainer: Any, pl_module: Any) -> None:
                t0 = time.perf_counter()
                module = pl_module.module
                was_training = module.training
                module.eval()
                value = float(-self.model_ref[0].get_elbo(self.test, batch_size=1024))
                if was_training:
                    module.train()
                epoch = trainer.current_epoch + 1
                self.points.append((t0 - self.start - self.paused, epoch, value))
                self.paused += time.perf_counter() - t0

            def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
                if (trainer.current_epoch + 1) % self.every == 0:
                    self._evaluate(trainer, pl_module)

            def on_train_end(self, trainer: Any, pl_module: Any) -> None:
                if not self.points or self.points[-1][1] != trainer.current_epoch:
                    self._evaluate(trainer, pl_module)

        return _Tracker(*args, **kwargs)


def run_ours(train_test: Any, seed: int) -> dict[str, Any]:
    from latentshift import config
    from latentshift.model import ldvae

    cfg = config.section("ldvae", {})
    model_ref: list = []
    tracker = HeldoutTracker(model_ref, train_test["test"], max(1, cfg["max_epochs"] // N_EVALS))

    # train_ldvae builds the model inside; hand the tracker the model as soon as it exists
    import scvi

    original = scvi.model.LinearSCVI.train

    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        model_ref.append(self)
        return original(self, *args, **kwargs)

    scvi.model.LinearSCVI.train = train
    try:
        start = time.perf_counter()
        fit = ldvae.train_ldvae(
            train_test["all"], cfg, seed=seed, progress_bar=False, callbacks=[tracker]
        )
        wall = time.perf_counter() - start
    finally:
        scvi.model.LinearSCVI.train = original
    return _summary("ours", cfg, fit.epochs_run, fit.n_train, tracker, wall, fit.train_seconds)


def run_defaults(train_test: Any, seed: int) -> dict[str, Any]:
    import scvi

    train = train_test["train"].copy()
    scvi.settings.seed = seed
    scvi.model.LinearSCVI.setup_anndata(train, layer="counts")
    model = scvi.model.LinearSCVI(train)
    from scvi.model._utils import get_max_epochs_heuristic

    epochs = get_max_epochs_heuristic(train.n_obs)  # what model.train() picks
    tracker = HeldoutTracker([model], train_test["test"], max(1, epochs // N_EVALS))
    start = time.perf_counter()
    model.train(callbacks=[tracker], enable_progress_bar=False)
    wall = time.perf_counter() - start
    n_fit = len(model.train_indices)
    params = {
        "lr": 1e-3,
        "batch_size": 128,
        "max_epochs": epochs,
        "kl_warmup_epochs": 400,
        "early_stopping_patience": None,
    }
    return _summary(
        "scvi defaults", params, len(model.history["elbo_train"]), n_fit, tracker, wall, wall
    )


def _summary(
    name: str, params: dict, epochs: int, n_fit: int, tracker: Any, wall: float, train_s: float
) -> dict[str, Any]:
    eval_s = tracker.paused
    train_only = max(train_s - eval_s, 1e-9)
    return {
        "name": name,
        "settings": {
            k: params.get(k)
            for k in (
                "lr",
                "batch_size",
                "max_epochs",
                "kl_warmup_epochs",
                "early_stopping_patience",
            )
        },
        "epochs": int(epochs),
        "n_fit_cells": int(n_fit),
        "train_seconds": round(train_only, 2),
        "eval_seconds_excluded": round(eval_s, 2),
        "cells_per_second": round(n_fit * epochs / train_only, 1),
        "final_heldout_neg_elbo": tracker.points[-1][2],
        "curve": [
            {"seconds": round(t, 2), "epoch": e, "heldout_neg_elbo": round(v, 3)}
            for t, e, v in tracker.points
        ],
    }


def time_to_quality(curve: list[dict[str, Any]], bar: float) -> float | None:
    """Seconds at the first evaluation whose held-out negative ELBO is at or below ``bar``."""
    for point in curve:
        if point["heldout_neg_elbo"] <= bar:
            return point["seconds"]
    return None


def compare(ours: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    best = min(ours["final_heldout_neg_elbo"], default["final_heldout_neg_elbo"])
    bar = best + TOLERANCE * abs(best)
    t_ours = time_to_quality(ours["curve"], bar)
    t_def = time_to_quality(default["curve"], bar)
    ratio = (t_def / t_ours) if (t_ours and t_def) else None
    equal_or_better = ours["final_heldout_neg_elbo"] <= bar
    met = bool(
        equal_or_better
        and (
            (ratio is not None and ratio >= TARGET_RATIO) or (t_def is None and t_ours is not None)
        )
    )
    return {
        "quality_bar_neg_elbo": round(bar, 3),
        "time_to_quality_ours_s": t_ours,
        "time_to_quality_defaults_s": t_def,
        "speedup_defaults_over_ours": round(ratio, 2) if ratio else None,
        "ours_final_within_1pct_of_best": bool(equal_or_better),
        "target": f"ours >= {TARGET_RATIO}x faster to within {100 * TOLERANCE:.0f}% of the better final held-out ELBO",
        "target_met": met,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_ldvae", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--size", choices=("demo", "seed"), default="demo")
    parser.add_argument(
        "--quick", action="store_true", help="tiny data, only checks that the code runs"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file (default reports/bench/ldvae.json)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for both runs (default: torch's)",
    )
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("lightning", "lightning.pytorch", "scvi"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import torch

    from latentshift.data import artifacts

    if args.threads:
        torch.set_num_threads(args.threads)
    size = "quick" if args.quick else args.size
    n_cells, n_genes = SIZES[size]
    print(
        f"LDVAE time to quality: {n_cells} cells x {n_genes} genes (simulated), seed {args.seed}",
        flush=True,
    )
    adata = simulated_cells(n_cells, n_genes, args.seed)
    data = {
        "all": adata,
        "train": adata[adata.obs["split"] == "train"],
        "test": adata[adata.obs["split"] == "test"].copy(),
    }
    ours = run_ours(data, args.seed)
    print(
        f"  ours:          {ours['epochs']} epochs, {ours['train_seconds']:.1f} s, held-out -ELBO {ours['final_heldout_neg_elbo']:.2f}",
        flush=True,
    )
    default = run_defaults(data, args.seed)
    print(
        f"  scvi defaults: {default['epochs']} epochs, {default['train_seconds']:.1f} s, held-out -ELBO {default['final_heldout_neg_elbo']:.2f}",
        flush=True,
    )
    result = compare(ours, default)
    report = {
        "benchmark": "ldvae time to quality",
        "size": size,
        "n_cells": n_cells,
        "n_genes": n_genes,
        "n_test_cells": int(data["test"].n_obs),
        "seed": args.seed,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "accelerator": "cuda" if torch.cuda.is_available() else "cpu",
            "cpu": platform.processor() or platform.machine(),
        },
        "runs": {"ours": ours, "scvi_defaults": default},
        "comparison": result,
    }
    out = (
        Path(args.out)
        if args.out
        else artifacts.project_root() / "reports" / "bench" / "ldvae.json"
    )
    artifacts.write_json(report, out)
    rows = [("", "ours", "scvi defaults")]
    for key in ("epochs", "train_seconds", "cells_per_second", "final_heldout_neg_elbo"):
        rows.append(
            (
                key,
                f"{ours[key]:.2f}" if isinstance(ours[key], float) else str(ours[key]),
                f"{default[key]:.2f}" if isinstance(default[key], float) else str(default[key]),
            )
        )
    rows.append(
        (
            "time to quality (s)",
            str(result["time_to_quality_ours_s"]),
            str(result["time_to_quality_defaults_s"]),
        )
    )
    for r in rows:
        print(f"  {r[0]:<24}{r[1]:>14}{r[2]:>16}")
    print(f"  quality bar (held-out -ELBO): {result['quality_bar_neg_elbo']}")
    print(
        f"  speedup (defaults / ours): {result['speedup_defaults_over_ours']}  target met: {result['target_met']}"
    )
    print(f"  written: {out}", flush=True)
    return 0 if result["target_met"] or size == "quick" else 1


if __name__ == "__main__":
    sys.exit(main())
