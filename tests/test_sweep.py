"""Tests of latentshift.run.sweep that need no pipeline run (fake per-level metrics)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from latentshift import config
from latentshift.data import artifacts
from latentshift.run import sweep


def test_scaled_params_sets_every_entry_to_the_level():
    raw = yaml.safe_load((artifacts.project_root() / "params" / "demo.yaml").read_text())
    out = sweep.scaled_params(raw, 2.0)
    by_dir = {e["direction"]: e["fold_change"] for e in out["perturbations"]}
    assert by_dir == {"down": 0.5, "up": 2.0}
    config.validate(out)  # the scaled params are a valid profile
    null = sweep.scaled_params(raw, 1.0)
    assert all(e["fold_change"] == 1.0 for e in null["perturbations"])
    # defaults are used when the profile names no perturbations
    assert len(sweep.scaled_params({}, 1.5)["perturbations"]) == len(config.DEFAULT_PERTURBATIONS)
    with pytest.raises(sweep.SweepError, match=">= 1"):
        sweep.scaled_params(raw, 0.5)


def test_null_profile_is_demo_with_unit_fold_changes():
    root = artifacts.project_root()
    demo = config.load_params(root / "params" / "demo.yaml")
    null = config.load_params(root / "params" / "null.yaml")
    assert all(e["fold_change"] == 1.0 for e in null["perturbations"])
    for e in null["perturbations"]:
        e["fold_change"] = None
    for e in demo["perturbations"]:
        e["fold_change"] = None
    # the demo names its null control and its oracle; the null does not
    demo["report"]["null_profile"] = demo["report"]["oracle_profile"] = None
    assert null == demo


def test_demo_profile_is_the_notebook_defaults():
    # a notebook opened in JupyterLab with its own defaults runs the demo profile
    root = artifacts.project_root()
    demo = config.load_params(root / "params" / "demo.yaml")
    defaults = config.validate({})
    demo["report"]["null_profile"] = demo["report"]["oracle_profile"] = None
    assert demo == defaults


def test_level_names():
    assert [sweep.level_name(x) for x in (1, 1.1, 1.25, 2)] == ["1.0", "1.1", "1.25", "2.0"]


def _fake_level(folder, level, acc, low, high, pca):
    artifacts.update_metrics(
        folder / sweep.level_name(level),
        "classifier",
        {
            "accuracy": acc,
            "accuracy_low": low,
            "accuracy_high": high,
            "baseline_accuracy": {"mlp_pca": pca, "logreg_disease_genes": 0.9},
            "baseline_accuracy_low": {"mlp_pca": pca - 0.05},
            "baseline_accuracy_high": {"mlp_pca": pca + 0.05},
            "permutation_accuracy": 0.33,
            "chance_uniform": 1 / 3,
            "chance_majority": 0.34,
        },
    )


def test_collect_threshold_and_page(tmp_path):
    runs = tmp_path / "sweep"
    _fake_level(runs, 1.0, 0.33, 0.30, 0.36, 0.33)
    _fake_level(runs, 1.5, 0.40, 0.32, 0.48, 0.34)  # interval reaches down to chance: not detected
    _fake_level(runs, 2.0, 0.60, 0.55, 0.65, 0.45)
    table = sweep.collect(runs, [1.0, 1.5, 2.0, 3.0])  # 3.0 never ran
    assert list(table["level"]) == [1.0, 1.5, 2.0, 3.0]
    assert table["ldvae_accuracy"].iloc[2] == 0.60 and pd.isna(table["ldvae_accuracy"].iloc[3])
    assert table["chance"].iloc[0] == 0.34  # the larger of the two chance levels
    assert sweep.detection_threshold(table, "ldvae") == 2.0
    assert sweep.detection_threshold(table, "pca") == 2.0
    assert sweep.detection_threshold(table, "ldvae", chance=0.9) is None
    prov = {
        "git_commit": "abc123",
        "packages": {"scvi-tools": "1.4.2"},
        "started": "2026-01-01T00:00:00",
    }
    page = sweep.render_sweep(
        table, "demo", True, tmp_path / "sweep.html", {1.0: 0, 1.5: 0, 2.0: 0, 3.0: 1}, prov
    )
    text = page.read_text()
    assert "Provenance" in text and "abc123" in text and "scvi-tools: 1.4.2" in text
    assert "data:image/png;base64," in text and "Simulated data" in text
    assert 'id="findings"' in text and 'class="ls-nav"' in text
    assert "<b>2×</b>" in text and "FAILED" in text  # the threshold, in bold
    assert 'href="sweep/1.5/index.html"' in text


def test_run_sweep_rejects_bad_levels(tmp_path):
    with pytest.raises(sweep.SweepError, match=">= 1"):
        sweep.run_sweep("params/smoke.yaml", levels=[0.5, 2.0])
    with pytest.raises(sweep.SweepError, match="no sweep levels"):
        sweep.run_sweep("params/smoke.yaml", levels=[])


def test_collect_calls_stacks_each_levels_calls_per_cell_type(tmp_path):
    runs = tmp_path / "sweep"
    for level, rate in [(1.0, 0.1), (4.0, 0.9)]:
        folder = runs / sweep.level_name(level)
        artifacts.update_metrics(folder, "provenance", {"git_commit": f"c{int(level)}" * 4})
        pd.DataFrame(
            {
                "condition": ["stim", "stim"],
                "cell_type": ["B", "T"],
                "targeted": [True, True],
                "n_disease": [10, 20],
                "n_control": [10, 20],
                "donors_disease": [2, 2],
                "donors_control": [2, 2],
                "ldvae_disease": [rate, rate / 2],
                "ldvae_control": [0.1, 0.1],
                "ldvae_donor_p": [0.25, 0.25],
                "pca_disease": [rate, rate],
                "pca_control": [0.2, 0.2],
                "pca_donor_p": [0.25, 0.25],
            }
        ).to_csv(folder / "transfer_calls.csv", index=False)
    calls = sweep.collect_calls(runs, [1.0, 2.0, 4.0])  # 2.0 never ran: left out
    assert list(calls["level"]) == [1.0, 1.0, 4.0, 4.0]
    assert list(calls["git_commit"]) == ["c1c1c1c1"] * 2 + ["c4c4c4c4"] * 2
    assert calls.loc[calls["level"] == 4.0, "ldvae_disease"].tolist() == [0.9, 0.45]
    assert sweep.collect_calls(tmp_path / "none", [1.0]).empty
    from latentshift.report import study_report

    text = study_report.transfer_calls_table(calls)
    assert text.splitlines()[0].startswith("| fold change f | condition | cell type |")
    assert "| 4 | stim | **T** (targeted) | 20 / 20 (2 / 2) | 45.0% | 10.0% | 0.250 |" in text
