"""Run every ``benchmarks/bench_*.py`` module's ``main()`` in turn (``python -m benchmarks``).

``python -m benchmarks perturb`` runs only the modules whose name contains ``perturb``;
``--quick`` is passed on to each ``main`` (small sizes, for a check that the code runs).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = [a for a in argv if a.startswith("-")]
    names = [a for a in argv if not a.startswith("-")]
    here = Path(__file__).resolve().parent
    modules = sorted(
        m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")
    )
    if names:
        modules = [m for m in modules if any(n in m for n in names)]
    if not modules:
        print(
            f"no benchmark matches {names}; available: {', '.join(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith('bench_'))}"
        )
        return 1
    failed = []
    for name in modules:
        print(f"=== {name} ===", flush=True)
        start = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        rc = module.main(options)
        print(f"=== {name}: done in {time.perf_counter() - start:.0f} s ===\n", flush=True)
        if rc:
            failed.append(name)
    from benchmarks.report import write_index

    print(f"side-by-side summary: {write_index()}")
    if failed:
        print(f"benchmarks that missed their targets: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
