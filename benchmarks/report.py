"""``reports/bench/index.html``: every benchmark's comparison side by side, with the machine.

Each ``benchmarks/bench_*.py`` writes ``reports/bench/<name>.json`` holding a ``comparison``
mapping (ratios, targets, whether each was met). This page collects them; it is rewritten
after every ``make bench`` and can be rebuilt alone with ``python -m benchmarks.report``.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any

from latentshift.data import artifacts
from latentshift.record.provenance import machine


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "✔ yes" if value else "✘ no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


#: Pipeline profiles whose recorded runs the index shows against their targets (issue: scale).
PROFILE_TARGETS: dict[str, dict[str, float]] = {
    "seed_size": {"wall_seconds": 20 * 60},
    "atlas_scale": {"peak_rss_bytes": 20e9},
    # issue 25: end to end within the hour, every notebook within 12 GB
    "m1_full_sim": {"wall_seconds": 60 * 60, "peak_rss_bytes": 12e9},
}


def profile_runs(root: str | Path | None = None) -> dict[str, Any]:
    """Wall time and peak memory per notebook of the recorded scale-profile runs.

    Reads ``runs/<profile>/state.json`` (written by the pipeline runner) and the held-out ELBO
    from ``metrics.json``; a profile never run is left out. Ratios are measured / target
    (at most 1 meets the target).
    """
    root = artifacts.project_root(root)
    out: dict[str, Any] = {}
    for profile, targets in PROFILE_TARGETS.items():
        run = root / "runs" / profile
        state_path = run / "state.json"
        if not state_path.is_file():
            continue
        state = json.loads(state_path.read_text())
        notebooks = {
            name: {
                "status": e.get("status"),
                "seconds": e.get("seconds"),
                "peak_rss_gb": round(e.get("peak_rss_bytes", 0) / 1e9, 2),
                "finished": e.get("finished"),
            }
            for name, e in sorted(state.items())
            if isinstance(e, dict)
        }
        wall = sum(e.get("seconds") or 0 for e in state.values() if isinstance(e, dict))
        peak = max(
            (e.get("peak_rss_bytes") or 0 for e in state.values() if isinstance(e, dict)), default=0
        )
        metrics = (
            json.loads((run / "metrics.json").read_text())
            if (run / "metrics.json").is_file()
            else {}
        )
        entry: dict[str, Any] = {
            "complete": all(e["status"] in {"ok", "skipped"} for e in notebooks.values())
            and len(notebooks) == 6,
            "wall_minutes": round(wall / 60, 1),
            "peak_rss_gb": round(peak / 1e9, 2),
            "heldout_neg_elbo": metrics.get("ldvae", {}).get("test_elbo"),
            "ldvae_epochs": metrics.get("ldvae", {}).get("epochs_run"),
            "ldvae_early_stopped": metrics.get("ldvae", {}).get("early_stopped"),
            "notebooks": notebooks,
        }
        if "wall_seconds" in targets:
            entry["target_wall_minutes"] = targets["wall_seconds"] / 60
            entry["wall_ratio_to_target"] = round(wall / targets["wall_seconds"], 2)
        if "peak_rss_bytes" in targets:
            entry["target_peak_rss_gb"] = targets["peak_rss_bytes"] / 1e9
            entry["peak_ratio_to_target"] = round(peak / targets["peak_rss_bytes"], 2)
        out[profile] = entry
    return out


def _profile_section(runs: dict[str, Any]) -> str:
    if not runs:
        return ""
    parts = [
        "<h2>Pipeline profiles at scale (recorded runs of <code>make report PARAMS=params/&lt;profile&gt;.yaml</code>)</h2>"
    ]
    for profile, entry in runs.items():
        head = {k: v for k, v in entry.items() if k != "notebooks"}
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in head.items()
        )
        nb_rows = "".join(
            f"<tr><td>{html.escape(n)}</td><td>{_fmt(e['status'])}</td><td>{_fmt(e['seconds'])} s</td><td>{_fmt(e['peak_rss_gb'])} GB</td></tr>"
            for n, e in entry["notebooks"].items()
        )
        parts.append(
            f'<h3>{html.escape(profile)}</h3><table class="ls-table">{rows}</table>'
            '<table class="ls-table"><tr><th>notebook</th><th>status</th><th>wall time</th>'
            f"<th>peak memory</th></tr>{nb_rows}</table>"
        )
    return "".join(parts)


def write_index(folder: str | Path | None = None) -> Path:
    """Render ``index.html`` (and ``index.json``) from the JSON files in ``folder``."""
    folder = Path(folder) if folder else artifacts.project_root() / "reports" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    sections, summary = [], {}
    for path in sorted(folder.glob("*.json")):
        if path.name == "index.json":
            continue
        data = json.loads(path.read_text())
        comparison = data.get("comparison") or {}
        summary[path.stem] = comparison
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in comparison.items()
        )
        doc = data.get("benchmark") or path.stem
        quick = (
            " <em>(quick run: small sizes, targets not judged)</em>" if data.get("quick") else ""
        )
        sections.append(
            f"<h2>{html.escape(str(doc))}{quick}</h2><p>source: <code>{path.name}</code></p>"
            f'<table class="ls-table"><tr><th>measure</th><th>value</th></tr>{rows}</table>'
        )
    info = machine()
    runs = profile_runs()
    artifacts.write_json(
        {"machine": info, "comparisons": summary, "profiles": runs}, folder / "index.json"
    )
    mrows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in info.items()
    )
    from latentshift.report import pages as report
    from latentshift.report.findings import Findings, findings_html

    items = []
    for name, comparison in summary.items():
        met = [k for k, v in comparison.items() if k.endswith("met") and isinstance(v, bool)]
        if met:
            verdict = ", ".join(f"{k}: {'yes' if comparison[k] else 'NO'}" for k in met)
            items.append(f"{name}: {verdict}.")
    for profile, entry in runs.items():
        ratio = entry.get("wall_ratio_to_target", entry.get("peak_ratio_to_target"))
        items.append(
            f"{profile}: {entry['wall_minutes']} min, peak {entry['peak_rss_gb']} GB "
            f"({'meets' if ratio is not None and ratio <= 1 else 'misses'} its target)."
        )
    box = Findings(
        "bench",
        "Each comparison ran side by side in one run on this machine.",
        items or ["No benchmark results yet: run `make bench`."],
        [],
        "",
        False,
    )
    body = f"""<h1>latentshift benchmarks</h1>
{findings_html(box)}
<p>Figures are ratios against the straightforward or default alternative. Generated
{_dt.datetime.now().isoformat(timespec="seconds")}.</p>
<h2>Machine</h2><table class="ls-table">{mrows}</table>
{"".join(sections) or "<p>No benchmark results yet: run <code>make bench</code>.</p>"}
{_profile_section(runs)}
"""
    page = report.page("latentshift benchmarks", body, report.nav_html("bench", []))
    return artifacts.write_text(page, folder / "index.html")


if __name__ == "__main__":
    print(write_index())
