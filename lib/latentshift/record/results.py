"""Recorded results: the small, committed record of a published run.

Every number the README quotes from a run comes from a record made by one command from the
run's folder::

    python -m latentshift results runs/demo          # → results/demo.json
    python -m latentshift results runs/demo --check  # a fresh run against its record

A record holds the run's ``metrics.json`` (without its provenance section), the wall time and
peak memory of every notebook, and the provenance: commit (and whether the tree was dirty),
start and end, package versions, the machine (cores, memory, torch threads). Large artifacts
(the ``.h5ad`` files, the model) stay in ``runs/`` and out of git. :mod:`latentshift.record.readme`
writes the README's tables and quoted numbers from the records; a test fails when the README
and ``results/`` disagree.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from latentshift.data import artifacts
from latentshift.errors import LatentshiftError

log = logging.getLogger(__name__)

#: Version of the record's layout (raise it when the layout changes).
SCHEMA = 1

#: Folder of the records, relative to the project root.
RESULTS_DIR = "results"

#: Provenance fields kept in a record.
PROVENANCE_KEYS: tuple[str, ...] = (
    "git_commit",
    "git_dirty",
    "started",
    "finished",
    "python",
    "packages",
    "data_sha256",
    "machine",
)


class ResultsError(LatentshiftError):
    """A run cannot be recorded (incomplete, missing), or a record is missing or malformed."""


def record(run_folder: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """The record of one finished run.

    Parameters
    ----------
    run_folder
        The run's folder (``runs/<profile>``): ``metrics.json``, ``state.json`` and
        ``provenance.json`` as the runner wrote them.
    root
        The project root (its ``notebooks/`` name the notebooks a whole run has). A study's
        point (``runs/<profile>/<study>/<point>``) is recorded as
        ``<profile>_<study>_<point>`` with the notebooks its study ran.

    Returns
    -------
    dict
        ``profile``, ``schema``, ``recorded`` (date), ``provenance``, ``params``,
        ``timings`` (per notebook: seconds, peak GB; the run's wall minutes) and ``metrics``.

    Raises
    ------
    ResultsError
        The folder is not a run, or one of its notebooks did not finish.
    """
    folder = Path(run_folder)
    prov_path = folder / "provenance.json"
    metrics = artifacts.read_metrics(folder)
    state = artifacts.load_state(folder)
    if not prov_path.is_file() or not metrics or not state:
        raise ResultsError(
            f"'{folder.name}' is not a finished run folder (it needs provenance.json, "
            "metrics.json and state.json). Run the profile first: make report "
            f"PARAMS=params/{folder.name}.yaml, then record runs/{folder.name}."
        )
    prov = json.loads(prov_path.read_text())
    expected = [nb.stem for nb in artifacts.notebooks(artifacts.project_root(root))]
    point = (folder.parent / "study.csv").is_file()
    if point:  # a study's point: 01 ran once for the study (and 04 only on request)
        expected = [
            nb
            for nb in expected
            if nb in (prov.get("notebooks") or {}) or nb[:2] not in ("01", "04")
        ]
    notebooks = prov.get("notebooks") or {}
    # "skipped": up to date when the run was resumed (its earlier result stands)
    unfinished = [nb for nb in expected if notebooks.get(nb) not in ("ok", "skipped")]
    resumed = any(notebooks.get(nb) == "skipped" for nb in expected)
    if unfinished:
        raise ResultsError(
            f"run '{folder.name}' is not complete: {', '.join(unfinished)} did not finish. "
            "A record is made from a whole run; run make report for its profile to the end first."
        )
    metrics = dict(metrics)
    run_prov = metrics.pop("provenance", {}) or {}
    if prov.get("git_dirty"):
        log.warning(
            "run '%s' was made from a working tree with uncommitted changes; the record says so",
            folder.name,
        )
    timings = {
        nb: {
            "seconds": state[nb].get("seconds"),
            "peak_memory_gb": round(float(state[nb].get("peak_rss_bytes") or 0) / 1e9, 2),
        }
        for nb in expected
        if isinstance(state.get(nb), Mapping)
    }
    wall = None
    if resumed:  # the last invocation ran only part of it: the notebooks' own times, summed
        wall = round(sum(float(t["seconds"] or 0) for t in timings.values()) / 60, 1)
    elif prov.get("started") and prov.get("finished"):
        span = _dt.datetime.fromisoformat(prov["finished"]) - _dt.datetime.fromisoformat(
            prov["started"]
        )
        wall = round(span.total_seconds() / 60, 1)
    return {
        "profile": f"{folder.parent.parent.name}_{folder.parent.name}_{folder.name}"
        if point
        else run_prov.get("profile") or folder.name,
        "study_point": point,
        "schema": SCHEMA,
        "recorded": _dt.date.today().isoformat(),
        "provenance": {k: prov.get(k) for k in PROVENANCE_KEYS},
        "params": run_prov.get("params"),
        "timings": {
            "notebooks": timings,
            "wall_minutes": wall,
            "resumed": resumed,
            "ldvae_train_seconds": _train_seconds(folder),
        },
        "metrics": metrics,
    }


def record_path(profile: str, root: str | Path | None = None) -> Path:
    """``results/<profile>.json`` under the project root."""
    return artifacts.project_root(root) / RESULTS_DIR / f"{profile}.json"


def _train_seconds(folder: Path) -> float | None:
    """The LDVAE's training wall time from the run's ``timings.json`` (03_ldvae), or ``None``."""
    path = folder / "timings.json"
    if not path.is_file():
        return None
    value = json.loads(path.read_text()).get("ldvae_train_seconds")
    return None if value is None else float(value)


def write_record(
    run_folder: str | Path, root: str | Path | None = None, out: str | Path | None = None
) -> Path:
    """Record a run: write :func:`record` to ``results/<profile>.json`` (or ``out``)."""
    rec = record(run_folder, root)
    target = Path(out) if out else record_path(rec["profile"], root)
    artifacts.write_text(dumps(rec), target)
    log.info(
        "recorded %s (commit %s%s) → %s",
        rec["profile"],
        (rec["provenance"]["git_commit"] or "unknown")[:7],
        ", dirty" if rec["provenance"]["git_dirty"] else "",
        artifacts.display_path(target, root),
    )
    return target


def write_table(
    table: Any, name: str, root: str | Path | None = None, out: str | Path | None = None
) -> Path:
    """Record a study's or a sweep's table (each row with the commit it ran at) as
    ``results/<name>.csv`` (or ``out``); a point without a result (not run, or run with
    ``--points`` leaving it out) is left out of the record, and the log names it.

    Raises
    ------
    ResultsError
        No row of the table has a result yet.
    """
    done = [c for c in ("accuracy", "ldvae_accuracy") if c in table]
    if done:
        missing = table[done[0]].isna()
        if missing.all():
            raise ResultsError(
                f"no point of '{name}' has a result yet; run it before recording it."
            )
        if missing.any():
            key = next((c for c in ("point", "level") if c in table), None)
            names = table.loc[missing, key].astype(str).tolist() if key else []
            log.info("not recorded, without a result: %s", ", ".join(names) or missing.sum())
            table = table[~missing]
    target = Path(out) if out else artifacts.project_root(root) / RESULTS_DIR / f"{name}.csv"
    artifacts.write_csv(table, target, index=False)
    log.info("recorded %s (%d rows) → %s", name, len(table), artifacts.display_path(target, root))
    return target


def dumps(rec: Mapping[str, Any]) -> str:
    """A record as stable, diff-friendly JSON (sorted keys, one value per line)."""
    return json.dumps(artifacts.jsonable(rec), indent=1, sort_keys=True, allow_nan=True) + "\n"


def load(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """The record ``results/<name>.json``.

    Raises
    ------
    ResultsError
        No such record, or not a record this code can read.
    """
    path = record_path(name, root)
    if not path.is_file():
        raise ResultsError(
            f"there is no recorded result '{RESULTS_DIR}/{name}.json'. Run the profile (make "
            f"report PARAMS=params/{name}.yaml) and record it (make results PROFILE={name})."
        )
    rec = json.loads(path.read_text())
    if rec.get("schema") != SCHEMA or "metrics" not in rec:
        raise ResultsError(
            f"'{RESULTS_DIR}/{name}.json' is not a record of schema {SCHEMA}; re-record it with "
            f"make results PROFILE={name}."
        )
    return rec


def lookup(rec: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a record (``metrics.classifier.accuracy``; list items
    by index, ``metrics.classifier.accuracy_by_epoch.0``).

    Raises
    ------
    ResultsError
        A key the record does not have.
    """
    value: Any = rec
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            raise ResultsError(
                f"the record of '{rec.get('profile')}' has no '{path}' (stopped at '{part}'); "
                "re-record the run, or fix the key where it is quoted."
            )
    return value


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k in sorted(value):
            yield from _leaves(value[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{prefix}.{i}")
    else:
        yield prefix, value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def differences(
    recorded: Mapping[str, Any], fresh: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """The metrics that differ between two records of one profile: ``(key, recorded, fresh)``.

    Only ``metrics`` are compared (timings and provenance always differ); a key present on one
    side only is a difference with ``None`` on the other.
    """
    a = dict(_leaves(artifacts.jsonable(recorded.get("metrics", {}))))
    b = dict(_leaves(artifacts.jsonable(fresh.get("metrics", {}))))
    return [
        (k, a.get(k), b.get(k))
        for k in sorted(a.keys() | b.keys())
        if not _same(a.get(k), b.get(k))
    ]


def check_run(run_folder: str | Path, root: str | Path | None = None) -> list[tuple[str, Any, Any]]:
    """Compare a run folder with its profile's record (:func:`differences`)."""
    fresh = record(run_folder, root)
    return differences(load(fresh["profile"], root), fresh)


# --- how much a number moves -------------------------------------------------------------------


def seed_spread(table: Any) -> dict[str, Any]:
    """The spread of the headline over the runs of a seed study (``study.csv`` of
    ``params/studies/demo_seeds.yaml``): ``n``, ``mean``, ``sd`` (n − 1), ``min``, ``max``
    of the network accuracy on the latent, ``half_width`` (the mean half-width of one run's
    95% interval, for comparison) and ``commit``.

    Raises
    ------
    ResultsError
        Fewer than two runs with a result.
    """
    done = table.dropna(subset=["accuracy"])
    if len(done) < 2:
        raise ResultsError(
            f"a seed spread needs at least two finished runs, this table has {len(done)}; run the "
            "seed study (make study PARAMS=params/demo.yaml DESIGN=params/studies/demo_seeds.yaml)."
        )
    acc = done["accuracy"].astype(float)
    commits = sorted({str(c)[:7] for c in done.get("git_commit", []) if isinstance(c, str)})
    return {
        "n": len(done),
        "mean": float(acc.mean()),
        "sd": float(acc.std(ddof=1)),
        "min": float(acc.min()),
        "max": float(acc.max()),
        "range": float(acc.max() - acc.min()),
        "half_width": float(((done["accuracy_high"] - done["accuracy_low"]) / 2).mean()),
        "commit": ", ".join(commits) or "unknown",
    }


def _by_seed(table: Any) -> dict[int, Any]:
    return {int(float(r["seed"])): r for _, r in table.dropna(subset=["accuracy"]).iterrows()}


def thread_pairs(seeds: Any, threads: Any) -> dict[int, tuple[float, float, int, int]]:
    """Per seed run in both tables: ``(accuracy in seeds, accuracy in threads, threads of the
    first, threads of the second)``."""
    a, b = _by_seed(seeds), _by_seed(threads)
    return {
        s: (
            float(a[s]["accuracy"]),
            float(b[s]["accuracy"]),
            int(a[s]["torch_threads"]),
            int(b[s]["torch_threads"]),
        )
        for s in sorted(a.keys() & b.keys())
    }


#: The numbers a re-run must reproduce to count as the same result.
REPRODUCED_COLUMNS: dict[str, str] = {
    "accuracy": "classifier.accuracy",
    "accuracy_low": "classifier.accuracy_low",
    "accuracy_high": "classifier.accuracy_high",
    "permutation_accuracy": "classifier.permutation_accuracy",
    "pca_accuracy": "classifier.baseline_accuracy.mlp_pca",
    "epochs": "ldvae.epochs_run",
}


def reproduces(rec: Mapping[str, Any], seeds: Any) -> bool:
    """Whether the seed study's run with the record's seed and thread count gives the record's
    headline numbers (:data:`REPRODUCED_COLUMNS`) to the last digit."""
    seed = int((rec.get("params") or {}).get("seed", 0))
    row = _by_seed(seeds).get(seed)
    threads = ((rec.get("provenance") or {}).get("machine") or {}).get("torch_threads")
    if row is None or (threads is not None and int(row["torch_threads"]) != int(threads)):
        return False
    metrics = rec["metrics"]
    for column, key in REPRODUCED_COLUMNS.items():
        value = lookup({"metrics": metrics}, f"metrics.{key}")
        if not math.isclose(float(row[column]), float(value), rel_tol=1e-12, abs_tol=0.0):
            return False
    return True
