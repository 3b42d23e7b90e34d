"""Recorded results (latentshift.record.results) and the README written from them (latentshift.record.readme)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from latentshift.errors import LatentshiftError
from latentshift.record import readme, results
from latentshift.run import cli

NOTEBOOKS = ["01_data", "02_perturb", "03_ldvae", "04_latent_viz", "05_classifier", "06_loadings"]


def fake_run(folder, accuracy=0.387, notebooks_ok=NOTEBOOKS, dirty=False, fold_change=2.0):
    """A run folder as the runner leaves it: metrics, state and provenance."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {
        "classifier": {
            "accuracy": accuracy,
            "accuracy_low": accuracy - 0.02,
            "accuracy_high": accuracy + 0.02,
            "permutation_accuracy": 0.334,
            "chance_uniform": 1 / 3,
            "chance_majority": 1 / 3,
            "baseline_accuracy": {
                "mlp_pca": 0.378,
                "logreg_ldvae": 0.375,
                "logreg_disease_genes": 0.777,
            },
            "accuracy_by_epoch": [
                {"epoch": 25, "accuracy": 0.362, "final": False},
                {"epoch": 220, "accuracy": accuracy, "final": True},
            ],
        },
        "ldvae": {
            "epochs_run": 220,
            "max_epochs": 400,
            "early_stopped": True,
            "n_genes_used": 1000,
            "gene_choice": {"oracle": False, "set_genes": {"ALS": {"in_model": 9, "shifted": 53}}},
        },
        "loadings": {"ALS": {"auroc_ldvae_projected": 0.909}},
        "embedding": {"ldvae": {"leiden_ari": 0.644}, "pca": {"leiden_ari": 0.5}},
        "cell_types": {
            "e_min_pvalue": 0.000999,
            "auc": {
                "LDVAE": {
                    "ALS": {"L4/5 IT": {"auc_mean": 0.95}, "OPC": {"auc_mean": 0.6}, "L5 ET": None}
                },
                "PCA": {"ALS": {"VIP": {"auc_mean": 0.99}}},
            },
        },
        "perturb": {"entries": {"ALS": {"fold_change": fold_change}}},
        "provenance": {"profile": folder.name, "git_commit": "abc1234def", "params": {"seed": 0}},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    state = {
        nb: {"status": "ok", "seconds": 60.0, "peak_rss_bytes": 1.5e9, "stamp": "x"}
        for nb in NOTEBOOKS
    }
    (folder / "state.json").write_text(json.dumps(state))
    prov = {
        "git_commit": "abc1234def",
        "git_dirty": dirty,
        "started": "2026-12-03T12:00:00",
        "finished": "2026-12-03T12:04:30",
        "notebooks": {nb: "ok" for nb in notebooks_ok},
        "machine": {
            "cpu_cores": 2,
            "memory_gib": 23.4,
            "torch": "2.13.0",
            "torch_threads": 2,
            "cuda": False,
        },
    }
    (folder / "provenance.json").write_text(json.dumps(prov))
    return folder


def test_a_record_holds_the_metrics_timings_and_provenance(tmp_path, root):
    run = fake_run(tmp_path / "runs" / "demo")
    rec = results.record(run, root)
    assert rec["profile"] == "demo" and rec["schema"] == results.SCHEMA
    assert "provenance" not in rec["metrics"] and rec["metrics"]["classifier"]["accuracy"] == 0.387
    assert (
        rec["provenance"]["git_commit"] == "abc1234def" and rec["provenance"]["git_dirty"] is False
    )
    assert rec["provenance"]["machine"]["torch_threads"] == 2
    assert rec["timings"]["wall_minutes"] == 4.5 and rec["timings"]["resumed"] is False
    assert rec["timings"]["notebooks"]["03_ldvae"] == {"seconds": 60.0, "peak_memory_gb": 1.5}
    assert rec["params"] == {"seed": 0}
    assert rec["timings"]["ldvae_train_seconds"] is None  # no timings.json in this run
    (run / "timings.json").write_text(json.dumps({"ldvae_train_seconds": 157.6}))
    assert results.record(run, root)["timings"]["ldvae_train_seconds"] == 157.6
    target = results.write_record(run, root, out=tmp_path / "results" / "demo.json")
    assert json.loads(target.read_text())["metrics"] == json.loads(results.dumps(rec))["metrics"]


def test_a_resumed_run_is_whole_and_its_wall_time_is_its_notebooks(tmp_path, root):
    run = fake_run(tmp_path / "demo")
    prov = json.loads((run / "provenance.json").read_text())
    prov["notebooks"] = {nb: "skipped" for nb in NOTEBOOKS} | {"05_classifier": "ok"}
    (run / "provenance.json").write_text(json.dumps(prov))
    rec = results.record(run, root)
    assert rec["timings"]["resumed"] is True and rec["timings"]["wall_minutes"] == 6.0


def test_an_unfinished_or_missing_run_is_refused_with_the_fix(tmp_path, root):
    run = fake_run(tmp_path / "half", notebooks_ok=NOTEBOOKS[:4])
    with pytest.raises(
        results.ResultsError, match="05_classifier, 06_loadings did not finish.*make report"
    ):
        results.record(run, root)
    with pytest.raises(results.ResultsError, match="not a finished run folder"):
        results.record(tmp_path / "nothing", root)
    (tmp_path / "empty").mkdir()
    assert (
        cli.main(["results", str(tmp_path / "empty")]) == 2
    )  # "holds no run, study.csv or sweep.csv"
    assert issubclass(results.ResultsError, LatentshiftError)


def test_differences_name_every_metric_that_moved(tmp_path, root):
    a = results.record(fake_run(tmp_path / "a"), root)
    b = results.record(fake_run(tmp_path / "b", accuracy=0.4), root)
    assert results.differences(a, a) == []
    keys = [k for k, _, _ in results.differences(a, b)]
    assert "classifier.accuracy" in keys and "classifier.accuracy_by_epoch.1.accuracy" in keys
    assert all(k.startswith("classifier.") for k in keys)  # timings and provenance are not compared


def test_lookup_follows_dotted_keys_and_list_items(tmp_path, root):
    rec = results.record(fake_run(tmp_path / "demo"), root)
    assert results.lookup(rec, "metrics.classifier.accuracy_by_epoch.0.epoch") == 25
    with pytest.raises(results.ResultsError, match="no 'metrics.classifier.nope'"):
        results.lookup(rec, "metrics.classifier.nope")


def seeds_table(accuracies, threads=2, start=0):
    rows = []
    for i, acc in enumerate(accuracies):
        rows.append(
            {
                "point": f"seed{start + i}",
                "seed": start + i,
                "accuracy": acc,
                "accuracy_low": acc - 0.02,
                "accuracy_high": acc + 0.02,
                "permutation_accuracy": 0.334,
                "pca_accuracy": 0.378,
                "epochs": 220,
                "torch_threads": threads,
                "git_commit": "abc1234def00",
            }
        )
    return pd.DataFrame(rows)


def test_seed_spread_by_hand():
    s = results.seed_spread(seeds_table([0.36, 0.38, 0.40]))
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.38) and s["sd"] == pytest.approx(0.02)
    assert s["min"] == 0.36 and s["max"] == 0.40 and s["range"] == pytest.approx(0.04)
    assert s["half_width"] == pytest.approx(0.02) and s["commit"] == "abc1234"
    with pytest.raises(results.ResultsError, match="at least two"):
        results.seed_spread(seeds_table([0.36]))


def test_a_recorded_run_is_reproduced_only_by_the_same_seed_threads_and_numbers(tmp_path, root):
    rec = results.record(fake_run(tmp_path / "demo"), root)
    seeds = seeds_table([0.387, 0.37])
    assert results.reproduces(rec, seeds)
    assert not results.reproduces(rec, seeds_table([0.386, 0.37]))
    assert not results.reproduces(rec, seeds_table([0.387, 0.37], threads=1))
    pairs = results.thread_pairs(seeds, seeds_table([0.39], threads=1))
    assert pairs == {0: (0.387, 0.39, 2, 1)}


def write_records(tmp_path, root):
    for name, kwargs in {"demo": {}, "null": {"accuracy": 0.333, "fold_change": 1.0}}.items():
        results.write_record(
            fake_run(tmp_path / "runs" / name, **kwargs),
            root,
            out=tmp_path / "results" / f"{name}.json",
        )
    seeds_table([0.387, 0.37, 0.40]).to_csv(tmp_path / "results" / "demo_seeds.csv", index=False)
    seeds_table([0.39], threads=1).to_csv(tmp_path / "results" / "demo_threads1.csv", index=False)


def test_the_readme_is_written_from_the_records_and_a_changed_number_is_caught(tmp_path, root):
    write_records(tmp_path, root)
    doc = tmp_path / "README.md"
    doc.write_text(
        "# t\n<!-- results-table demo null -->\nold\n<!-- /results-table -->\n"
        "The demo reaches <!-- value demo metrics.classifier.accuracy pct -->?<!-- /value --> "
        "(seeds: <!-- value spread:results/demo_seeds.csv sd points -->?<!-- /value --> points), "
        "row <!-- value results/demo_seeds.csv:point=seed1 accuracy pct -->?<!-- /value -->.\n"
        "<!-- spread-table results/demo_seeds.csv results/demo_threads1.csv demo -->\n<!-- /spread-table -->\n"
        "<!-- timings-table demo null -->\n<!-- /timings-table -->\n"
    )
    assert len(readme.sync(doc, tmp_path, check=True)) == 6
    assert "old" in doc.read_text()  # check mode leaves the file alone
    readme.sync(doc, tmp_path)
    text = doc.read_text()
    assert readme.sync(doc, tmp_path, check=True) == []
    assert (
        "| network on the LDVAE latent [95% CI] | 38.7% [36.7%, 40.7%] | 33.3% [31.3%, 35.3%] |"
        in text
    )
    assert "`null` (null control: every fold change 1.0)" in text and "`demo` (label-blind)" in text
    assert (
        "| top cell type by AUC on the latent | ALS: L4/5 IT 0.950 |" in text
    )  # PCA's 0.99 is not the latent's
    assert (
        "The demo reaches <!-- value demo metrics.classifier.accuracy pct -->38.7%<!-- /value -->"
        in text
    )
    assert "-->1.5<!-- /value --> points" in text and "-->37.0%<!-- /value -->." in text
    assert "the study's run with the same seed and threads gives the same number" in text
    assert "seed 0: 1 vs 2 threads" in text and "39.0% vs 38.7% (0.3 points)" in text
    assert "| `demo` | 4.5 min | 1.0 / 1.5 |" in text
    assert "| commit | date |" in text and "| abc1234 | 2026-12-03 |" in text  # when, and what code
    # a number edited by hand in the README is caught, and named
    edited = text.replace("38.7% [36.7%, 40.7%]", "38.9% [36.7%, 40.7%]", 1)
    doc.write_text(edited)
    assert readme.sync(doc, tmp_path, check=True) == ["results-table demo null"]
    doc.write_text(text.replace("-->38.7%<!-- /value -->", "-->39%<!-- /value -->"))
    (stale,) = readme.sync(doc, tmp_path, check=True)
    assert stale.startswith("value demo metrics.classifier.accuracy pct ('39%' → '38.7%')")


def test_the_readme_and_every_docs_page_are_synced_and_named(tmp_path, root):
    write_records(tmp_path, root)
    marker = "<!-- value demo metrics.classifier.accuracy pct -->?<!-- /value -->\n"
    (tmp_path / "docs").mkdir()
    for name in ("README.md", "docs/b.md", "docs/a.md", "docs/plain.md"):
        (tmp_path / name).write_text("# t\n" + ("" if "plain" in name else marker))
    stale = readme.sync_docs(tmp_path, check=True)
    assert [s.split(": ", 1)[0] for s in stale] == ["README.md", "docs/a.md", "docs/b.md"]
    assert stale[1] == "docs/a.md: value demo metrics.classifier.accuracy pct ('?' → '38.7%')"
    assert "?<!--" in (tmp_path / "docs" / "a.md").read_text()  # check mode leaves them alone
    assert len(readme.sync_docs(tmp_path)) == 3
    assert "-->38.7%<!--" in (tmp_path / "docs" / "b.md").read_text()
    assert readme.sync_docs(tmp_path, check=True) == []


def test_a_small_gap_is_quoted_with_two_decimals():
    # a relative gap of 0.04 % must not read as "0.0%" next to a 0.5 % target
    assert readme.FORMATS["pct2"](0.0004) == "0.04%"
    assert readme.FORMATS["pct"](0.0004) == "0.0%"
    assert readme.FORMATS["pct2"](None) == "–"


def test_a_target_is_quoted_as_met_or_not_from_its_record():
    assert readme.FORMATS["met"](True) == "met"
    assert readme.FORMATS["met"](False) == "not met"
    assert readme.FORMATS["met"](None) == "–"


def test_bad_readme_markers_name_the_problem(tmp_path, root):
    write_records(tmp_path, root)
    doc = tmp_path / "README.md"
    for marker, match in {
        "<!-- value demo metrics.classifier.accuracy nope -->x<!-- /value -->": "unknown value format",
        "<!-- value gone metrics.x pct -->x<!-- /value -->": "no recorded result 'results/gone.json'",
        "<!-- value results/demo_seeds.csv:point=seed9 accuracy pct -->x<!-- /value -->": "no single row",
        "<!-- bogus-table a -->\n<!-- /bogus-table -->": "known kinds",
        "<!-- results-table missing -->\n<!-- /results-table -->": "make results PROFILE=missing",
    }.items():
        doc.write_text(marker + "\n")
        with pytest.raises(LatentshiftError, match=match):
            readme.sync(doc, tmp_path, check=True)


def test_a_sweep_is_recorded_with_the_commit_of_every_level(tmp_path, root):
    from latentshift.run import sweep

    folder = tmp_path / "runs" / "demo" / "sweep"
    for level, acc in ((1.0, 0.333), (2.0, 0.6)):
        level_run = folder / sweep.level_name(level)
        fake_run(level_run, accuracy=acc)
    pd.DataFrame({"level": [1.0, 2.0]}).to_csv(folder / "sweep.csv", index=False)
    target = tmp_path / "results" / "demo_sweep.csv"
    assert cli.main(["results", str(folder), "--out", str(target)]) == 0
    table = pd.read_csv(target)
    assert table["ldvae_accuracy"].tolist() == [0.333, 0.6]
    assert table["git_commit"].tolist() == ["abc1234def", "abc1234def"]
    text = readme.sweep_table(table)
    assert text.splitlines()[0] == "| fold-change level | 1 | 2 |"
    assert (
        "| network on the LDVAE latent [95% CI] | 33.3% [31.3%, 35.3%] | 60.0% [58.0%, 62.0%] |"
        in text
    )


def test_the_readme_matches_the_recorded_results(root):
    # every table and quoted number of the README and of docs/*.md equals what results/ gives;
    # after a re-run: python -m latentshift results runs/<profile> && python -m latentshift readme
    assert readme.sync_docs(root, check=True) == []


def test_the_index_shows_the_recorded_seed_spread_under_the_headline(tmp_path):
    from latentshift.report import index_page
    from latentshift.run import runner

    assert runner.recorded_spread(tmp_path, "demo") is None  # nothing recorded: no row
    (tmp_path / "results").mkdir()
    seeds_table([0.36, 0.38, 0.40]).to_csv(tmp_path / "results" / "demo_seeds.csv", index=False)
    spread = runner.recorded_spread(tmp_path, "demo")
    metrics = {"classifier": {"accuracy": 0.387, "accuracy_low": 0.367, "accuracy_high": 0.407}}
    rows = dict(index_page.headline_rows(metrics, seed_spread=spread))
    (label,) = [k for k in rows if k.startswith("seed-to-seed spread")]
    assert "3 seeds" in label and "commit abc1234" in label
    assert (
        rows[label]
        == "mean 38.0%, sd 2.0 points, range 36.0%–40.0%; one run's 95% interval ± 2.0 points"
    )
    assert not any(k.startswith("seed-to-seed") for k, _ in index_page.headline_rows(metrics))


@pytest.mark.parametrize("unit", ["source cell", "donor"])
def test_the_index_names_every_baseline_in_words_not_by_its_key(tmp_path, unit):
    import re

    from latentshift.readings.classify import BASELINE_MODELS
    from latentshift.report import index_page

    accuracy = dict(zip(BASELINE_MODELS, (0.6, 0.55, 0.5, 0.8, 1 / 3), strict=True))
    metrics = {
        "classifier": {
            "accuracy": 0.6,
            "accuracy_low": 0.58,
            "accuracy_high": 0.62,
            "chance_uniform": 1 / 3,
            "permutation_accuracy": 0.34,
            "unit": unit,
            "baseline_accuracy": accuracy,
        },
        "ldvae": {"n_latent": 36, "test_elbo": 500.0, "epochs_run": 100},
    }
    labels = [k for k, _ in index_page.headline_rows(metrics)]
    keys = [key for key in BASELINE_MODELS if "_" in key]  # "majority" is also a word
    assert not any(key in label for key in keys for label in labels)
    assert not any(f"baseline: {key}" in labels for key in BASELINE_MODELS)
    assert "baseline: logistic regression on the same LDVAE latent" in labels
    assert (
        "baseline: the same small network on 36 PCA components of the log-normalised counts"
        in labels
    )
    genes = "that were perturbed" if unit == "source cell" else "the named sets hold"
    assert any(
        label.startswith("baseline: logistic regression on the log-normalised counts of the genes")
        and genes in label
        for label in labels
    )
    params = {
        "data": {"source": "simulated"},
        "perturbations": [{"geneset": "ALS", "direction": "up", "fold_change": 2.0}],
    }
    target = index_page.render_index("demo", params, metrics, {}, [], tmp_path / "index.html")
    text = target.read_text()
    assert "Headline numbers" in text and "PCA components" in text
    assert re.findall(r"baseline: [A-Za-z0-9]+(?:_[A-Za-z0-9]+)+", text) == []


def test_committed_benchmark_records_say_when_what_code_and_which_machine(root):
    for path in sorted((root / "results" / "bench").glob("*.json")):
        text = path.read_text()
        assert not any(folder in text for folder in ("/work/", "/tmp/", "/home/", "/root/")), (
            path.name
        )
        rec = json.loads(text)
        assert len(rec["commit"] or "") == 40 and rec["date"] and rec["machine"], path.name
        assert not rec.get("quick"), f"{path.name} is a --quick check, not a measurement"
        assert "target_met" in rec["comparison"], path.name


def test_committed_records_carry_provenance_and_no_machine_path(root):
    records = sorted((root / "results").glob("*.json"))
    assert {"demo.json", "null.json"} <= {p.name for p in records}
    for path in records:
        text = path.read_text()
        assert not any(folder in text for folder in ("/work/", "/tmp/", "/home/", "/root/")), (
            path.name
        )
        rec = results.load(path.stem, root)
        prov = rec["provenance"]
        assert len(prov["git_commit"] or "") == 40 and prov["git_dirty"] is False, path.name
        assert prov["started"] and prov["finished"] and rec["timings"]["notebooks"], path.name
    for path in sorted((root / "results").glob("*.csv")):
        table = pd.read_csv(path)
        if "git_commit" in table:  # study and sweep tables: every row says what made it
            assert table["git_commit"].notna().all(), path.name


def test_a_study_record_leaves_out_the_points_without_a_result(tmp_path):
    table = pd.DataFrame(
        {
            "point": ["donor_split", "cell_split"],
            "accuracy": [0.8, float("nan")],
            "git_commit": ["abc", None],
        }
    )
    out = results.write_table(table, "s", out=tmp_path / "s.csv")
    written = pd.read_csv(out)
    assert list(written["point"]) == ["donor_split"] and written["git_commit"].notna().all()
    with pytest.raises(results.ResultsError, match="no point of 'none' has a result"):
        results.write_table(table.iloc[1:], "none", out=tmp_path / "n.csv")
