"""The command line: ``python -m latentshift {run,sweep,fetch,simulate,check} ...``.

``make report``, ``make sweep`` and ``make data`` call it. A problem the user can fix (every
:class:`~latentshift.errors.LatentshiftError`) is printed as one message and exits with 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latentshift import config
from latentshift.data import artifacts, fetch
from latentshift.errors import LatentshiftError, PipelineError
from latentshift.run import runner, study, sweep

log = logging.getLogger("latentshift")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m latentshift``."""
    parser = argparse.ArgumentParser(
        prog="python -m latentshift",
        description="The latentshift pipeline: run the notebooks of a profile and render its report.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the notebooks for a profile and render the report")
    p_run.add_argument("params", help="profile YAML, e.g. params/demo.yaml")
    group = p_run.add_mutually_exclusive_group()
    group.add_argument("--only", metavar="NB", help="run only this notebook (e.g. 03 or 03_ldvae)")
    group.add_argument("--from", dest="start_from", metavar="NB", help="run from this notebook on")
    p_run.add_argument("--force", action="store_true", help="rerun notebooks that are up to date")
    p_run.add_argument("--run-dir", help="folder for this run's files (default runs/<profile>)")
    p_run.add_argument(
        "--report-dir", help="folder for the HTML report (default reports/<profile>)"
    )
    p_sweep = sub.add_parser(
        "sweep",
        help="dose-response sweep (notebooks 02-05 once per fold-change level), or a study over "
        "any params keys (--vary, --design: notebooks 02-06 once per point)",
    )
    p_sweep.add_argument("params", help="profile YAML, e.g. params/demo.yaml")
    p_sweep.add_argument(
        "--levels",
        help="comma-separated fold-change levels (up entries get the level, down entries "
        "1/level), e.g. 1,1.25,1.5,2,3",
    )
    p_sweep.add_argument(
        "--vary",
        action="append",
        metavar="KEY=V1,V2",
        help="a study: run every combination of these values (YAML values, e.g. "
        "ldvae.n_top_genes=null,1000); repeat for more keys",
    )
    p_sweep.add_argument("--design", metavar="FILE", help="a study: its points from a design YAML")
    p_sweep.add_argument("--name", help="the study's name (folders and page; default 'study')")
    p_sweep.add_argument(
        "--nulls", action="store_true", help="also run each point's null (every fold change 1.0)"
    )
    p_sweep.add_argument("--viz", action="store_true", help="also run 04_latent_viz per point")
    p_sweep.add_argument(
        "--points",
        metavar="P1,P2",
        help="a study: run only these points (and their nulls); the others keep their results",
    )
    p_sweep.add_argument(
        "--run-dir", help="a study: the profile's run folder (default runs/<profile>)"
    )
    p_sweep.add_argument(
        "--report-dir", help="a study: the profile's report folder (default reports/<profile>)"
    )
    p_fetch = sub.add_parser(
        "fetch",
        help="download the profile's data file (data.url → data.path, checked against data.sha256)",
    )
    p_fetch.add_argument("params", help="profile YAML, e.g. params/m1_seed.yaml")
    p_fetch.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p_sim = sub.add_parser(
        "simulate", help="write a simulated M1 .h5ad (CELLxGENE-shaped by default)"
    )
    p_sim.add_argument("out", help="the .h5ad file to write, e.g. data/sim_cellxgene.h5ad")
    p_sim.add_argument("--cells", type=int, default=4000)
    p_sim.add_argument("--genes", type=int, default=3000)
    p_sim.add_argument("--seed", type=int, default=0)
    p_sim.add_argument("--schema", choices=["cellxgene", "latentshift"], default="cellxgene")
    p_sim.add_argument(
        "--composition",
        choices=["m1", "tissue"],
        default="m1",
        help="cell-type composition: the HCA M1 file's (90%% neurons) or the tissue's",
    )
    p_sim.add_argument(
        "--gmt",
        default="params/genesets/disease_genesets.gmt",
        help="gene sets whose genes must be present",
    )
    p_results = sub.add_parser(
        "results",
        help="record a finished run (runs/<profile> → results/<profile>.json) or a study's or "
        "sweep's table (runs/<profile>/<study> → results/<profile>_<study>.csv)",
    )
    p_results.add_argument(
        "folder", help="runs/<profile>, runs/<profile>/<study> or runs/<profile>/sweep"
    )
    p_results.add_argument(
        "--check",
        action="store_true",
        help="compare the run with its record instead of recording it (exit 1 when they differ)",
    )
    p_results.add_argument("--out", help="where to write the record (default results/...)")
    p_readme = sub.add_parser(
        "readme",
        help="regenerate the tables and quoted numbers of README.md and docs/*.md from results/",
    )
    p_readme.add_argument("--check", action="store_true", help="only say whether they are stale")
    _add_donor_level_parsers(sub)
    p_check = sub.add_parser("check", help="validate a profile without running anything")
    p_check.add_argument("params")
    return parser


def _add_donor_level_parsers(sub: Any) -> None:
    """The ``power`` and ``calibration`` commands: simulated case-control studies by design."""
    p_power = sub.add_parser(
        "power",
        help="power of each reading over simulated case-control studies: donors, nuclei, fold change",
    )
    p_power.add_argument("params", help="a case-control profile, e.g. params/case_control_sim.yaml")
    p_power.add_argument("--donors", default="3,6,12", help="donors per arm (default 3,6,12)")
    p_power.add_argument("--nuclei", default="200", help="nuclei per donor (default 200)")
    p_power.add_argument("--fold", default="1.25,1.5,2", help="fold changes (default 1.25,1.5,2)")
    p_power.add_argument("--reps", type=int, default=50, help="replicates per point (default 50)")
    p_power.add_argument(
        "--ldvae-donors", default="3,6", help="donors per arm of the LDVAE readings (default 3,6)"
    )
    p_power.add_argument("--ldvae-fold", default="2", help="fold changes of the LDVAE readings")
    p_power.add_argument("--ldvae-reps", type=int, default=0, help="their replicates (0: none)")
    p_power.add_argument(
        "--genes", type=int, help="simulated genes (default: the profile's simulate_n_genes)"
    )
    p_power.add_argument("--jobs", type=int, default=1, help="replicates run at once (default 1)")
    p_power.add_argument("--out", help="folder (default runs/<profile>/power)")
    p_cal = sub.add_parser(
        "calibration",
        help="are the pseudobulk gene-level p-values uniform on null studies with few donors?",
    )
    p_cal.add_argument("params", help="a simulated case-control profile")
    p_cal.add_argument("--donors", default="2,3,4,6", help="donors per arm (default 2,3,4,6)")
    p_cal.add_argument("--nuclei", type=int, default=200, help="nuclei per donor (default 200)")
    p_cal.add_argument("--reps", type=int, default=20, help="null studies per donor count")
    p_cal.add_argument(
        "--genes", type=int, help="simulated genes (default: the profile's simulate_n_genes)"
    )
    p_cal.add_argument("--out", help="folder (default runs/<profile>/calibration)")


def _levels(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        return {"levels": tuple(float(x) for x in text.split(","))}
    except ValueError:
        raise PipelineError(f"--levels must be numbers separated by commas, got {text!r}") from None


def _results(args: argparse.Namespace) -> int:
    import pandas as pd

    from latentshift.record import results

    folder = Path(args.folder)
    if not folder.is_dir():
        raise results.ResultsError(
            f"'{args.folder}' is not a folder; give a run folder such as runs/demo (make report first)."
        )
    if not args.check and not (folder / "provenance.json").is_file():
        name = f"{folder.parent.name}_{folder.name}"
        if (folder / "study.csv").is_file():
            table = pd.read_csv(folder / "study.csv")
        elif (folder / "power.csv").is_file():
            table = pd.read_csv(folder / "power.csv")
        elif (folder / "calibration.csv").is_file():
            table = pd.read_csv(folder / "calibration.csv")
        elif (folder / "sweep.csv").is_file():  # read again: each level with the commit it ran at
            levels = pd.read_csv(folder / "sweep.csv")["level"].tolist()
            table = sweep.collect(folder, levels)
            calls = sweep.collect_calls(folder, levels)
            if len(calls):  # a transfer test: its call rates per cell type, beside the table
                out = Path(args.out) if args.out else None
                calls_out = out.with_name(out.stem + "_calls.csv") if out else None
                results.write_table(calls, f"{name}_calls", out=calls_out)
        else:
            raise results.ResultsError(
                f"'{args.folder}' holds no run, study.csv or sweep.csv: give a run folder "
                "(runs/<profile>), a study's (runs/<profile>/<study>) or a sweep's (runs/<profile>/sweep)."
            )
        results.write_table(table, name, out=args.out)
        return 0
    if not args.check:
        results.write_record(folder, out=args.out)
        return 0
    diffs = results.check_run(args.folder)
    for key, recorded, fresh in diffs[:40]:
        log.info("differs: %s: recorded %r, this run %r", key, recorded, fresh)
    log.info(
        "%s: %s",
        args.folder,
        "every recorded metric reproduced to the last digit"
        if not diffs
        else f"{len(diffs)} metrics differ from the record",
    )
    return 1 if diffs else 0


def _study(args: argparse.Namespace) -> int:
    if args.levels:
        raise PipelineError(
            "--levels belongs to the dose-response sweep; in a study vary the key "
            f"{study.LEVEL_KEY} (e.g. --vary {study.LEVEL_KEY}=1,2)."
        )
    if args.vary and args.design:
        raise PipelineError("give the study's points by --vary or by --design, not both.")
    if args.design:
        name, points, options = study.load_design(args.design)
    else:
        name, points, options = "study", study.parse_vary(args.vary), {}
    return study.run_study(
        args.params,
        points,
        name=args.name or name,
        nulls=args.nulls or options.get("nulls", False),
        viz=args.viz or options.get("viz", False),
        run_folder=args.run_dir,
        report_folder=args.report_dir,
        only=[s.strip() for s in args.points.split(",") if s.strip()] if args.points else None,
        threads=options.get("threads"),
    )


def _numbers(text: str, kind: type = float) -> list[Any]:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PipelineError(f"expected numbers separated by commas, got {text!r}") from None


def _power(args: argparse.Namespace) -> int:
    from latentshift.readings import power
    from latentshift.record import provenance

    params = _simulated_case_control(args.params, "a power study")
    if args.genes:
        params["data"]["simulate_n_genes"] = args.genes
    nuclei = _numbers(args.nuclei, int)
    points = [
        power.Point(d, n, f)
        for d in _numbers(args.donors, int)
        for n in nuclei
        for f in _numbers(args.fold)
    ]
    ldvae_points = [
        power.Point(d, nuclei[0], f)
        for d in _numbers(args.ldvae_donors, int)
        for f in _numbers(args.ldvae_fold)
    ]
    profile = Path(args.params).stem
    folder = Path(args.out) if args.out else artifacts.project_root() / "runs" / profile / "power"
    replicates = power.run_power(
        params, points, args.reps, ldvae_points, args.ldvae_reps, params["seed"], args.jobs
    )
    root = artifacts.project_root()
    table = power.write_power(folder, replicates, provenance.provenance(params, root, folder))
    log.info("power: %d rows → %s", len(table), artifacts.display_path(folder / "power.csv"))
    return 0


def _calibration(args: argparse.Namespace) -> int:
    from latentshift.readings import gene_calibration
    from latentshift.record import provenance

    params = _simulated_case_control(args.params, "a calibration")
    if args.genes:
        params["data"]["simulate_n_genes"] = args.genes
    profile = Path(args.params).stem
    root = artifacts.project_root()
    folder = Path(args.out) if args.out else root / "runs" / profile / "calibration"
    replicates = gene_calibration.run_calibration(
        params, _numbers(args.donors, int), args.nuclei, args.reps, params["seed"]
    )
    table = gene_calibration.write_calibration(
        folder, replicates, provenance.provenance(params, root, folder)
    )
    log.info(
        "calibration: %d donor counts → %s",
        len(table),
        artifacts.display_path(folder / "calibration.csv"),
    )
    return 0


def _simulated_case_control(path: str, what: str) -> dict[str, Any]:
    """A simulated case-control profile, resolved; refused otherwise."""
    from latentshift.readings import power

    params = config.load_params(path)
    if params["design"] != "case_control" or params["data"]["source"] != "simulated":
        raise power.PowerError(
            f"{path}: {what} draws simulated case-control data sets; give a "
            "simulated case-control profile (e.g. params/case_control_sim.yaml)."
        )
    return params


def _simulate(args: argparse.Namespace) -> int:
    from latentshift.data import simulate_h5ad
    from latentshift.perturb import genesets

    sets = genesets.read_gmt(artifacts.resolve_path(args.gmt))
    required = sorted({g for gs in sets.values() for g in gs.genes})
    simulate_h5ad.write_simulated_h5ad(
        Path(args.out),
        args.cells,
        args.genes,
        seed=args.seed,
        schema=args.schema,
        required_genes=required,
        composition=args.composition,
    )
    log.info("wrote %s (simulated, %s schema)", args.out, args.schema)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 a notebook failed, 2 user error)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "check":
            config.load_params(args.params)
            log.info("%s is valid", args.params)
            return 0
        if args.command == "fetch":
            fetch.fetch_profile(
                config.load_params(args.params),
                artifacts.project_root(),
                progress=not args.no_progress,
            )
            return 0
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "readme":
            from latentshift.record import readme

            root = artifacts.project_root()
            stale = readme.sync_docs(root, check=args.check)
            log.info(
                "README and docs tables and quoted numbers %s: %s",
                "stale" if args.check else "rewritten",
                "; ".join(stale) or "none",
            )
            return 1 if stale and args.check else 0
        if args.command == "results":
            return _results(args)
        if args.command == "power":
            return _power(args)
        if args.command == "calibration":
            return _calibration(args)
        if args.command == "sweep" and (args.vary or args.design):
            return _study(args)
        if args.command == "sweep":
            return sweep.run_sweep(args.params, **_levels(args.levels))
        return runner.run(
            args.params,
            only=args.only,
            start_from=args.start_from,
            force=args.force,
            run_folder=args.run_dir,
            report_folder=args.report_dir,
        )
    except LatentshiftError as exc:
        log.error("error: %s", exc)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
