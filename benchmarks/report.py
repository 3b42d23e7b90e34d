"""``reports/bench/index.html``: every benchmark's comparison side by side, with the machine.

Each ``benchmarks/bench_*.py`` writes ``reports/bench/<name>.json`` holding a ``comparison``
mapping (ratios, targets, whether each was met). This page collects them; it is rewritten
after every ``make bench`` and can be rebuilt alone with ``python -m benchmarks.report``.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import platform
from pathlib import Path
from typing import Any

from latentshift import artifacts


def machine() -> dict[str, Any]:
    """Cores, memory, torch threads and BLAS of this machine."""
    info: dict[str, Any] = {"cpu_cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        with open("/proc/meminfo") as fh:
            total_kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(total_kb / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        info["memory_gib"] = None
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        info["torch"] = None
    try:
        import numpy  # noqa: F401 - loads the BLAS that threadpoolctl reports
        from threadpoolctl import threadpool_info

        info["blas"] = sorted({f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)" for p in threadpool_info() if p.get("user_api") == "blas"})
    except ImportError:  # pragma: no cover
        info["blas"] = None
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    return info


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "✔ yes" if value else "✘ no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


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
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in comparison.items())
        doc = data.get("benchmark") or path.stem
        quick = " <em>(quick run: small sizes, targets not judged)</em>" if data.get("quick") else ""
        sections.append(
            f"<h2>{html.escape(str(doc))}{quick}</h2><p>source: <code>{path.name}</code></p>"
            f"<table><tr><th>measure</th><th>value</th></tr>{rows}</table>"
        )
    info = machine()
    artifacts.write_json({"machine": info, "comparisons": summary}, folder / "index.json")
    mrows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in info.items())
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>latentshift benchmarks</title>
<style>body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}</style>
</head><body><h1>latentshift benchmarks</h1>
<p>Each comparison ran side by side in one run on this machine; figures are ratios against the
straightforward or default alternative. Generated {_dt.datetime.now().isoformat(timespec="seconds")}.</p>
<h2>Machine</h2><table>{mrows}</table>
{"".join(sections) or "<p>No benchmark results yet: run <code>make bench</code>.</p>"}
</body></html>
"""
    return artifacts.write_text(page, folder / "index.html")


if __name__ == "__main__":
    print(write_index())
