"""The benchmark index: recorded scale-profile runs shown against their targets."""

from __future__ import annotations

import json

from benchmarks import report


def _write_run(root, profile, seconds, peaks, elbo):
    run = root / "runs" / profile
    run.mkdir(parents=True)
    names = ["01_data", "02_perturb", "03_ldvae", "04_latent_viz", "05_classifier", "06_loadings"]
    state = {
        n: {"status": "ok", "seconds": s, "peak_rss_bytes": p}
        for n, s, p in zip(names, seconds, peaks, strict=True)
    }
    (run / "state.json").write_text(json.dumps(state))
    (run / "metrics.json").write_text(json.dumps({"ldvae": {"test_elbo": elbo}}))


def test_profile_runs_ratios_against_targets(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    _write_run(tmp_path, "seed_size", [60, 60, 600, 120, 60, 300], [1e9] * 6, 1234.5)
    _write_run(tmp_path, "atlas_scale", [100] * 6, [2e9, 6e9, 15e9, 3e9, 3e9, 3e9], 900.0)
    runs = report.profile_runs(tmp_path)
    seed, atlas = runs["seed_size"], runs["atlas_scale"]
    assert seed["complete"] and seed["wall_minutes"] == 20.0 and seed["wall_ratio_to_target"] == 1.0
    assert seed["heldout_neg_elbo"] == 1234.5
    assert atlas["peak_rss_gb"] == 15.0 and atlas["peak_ratio_to_target"] == 0.75  # of 20 GB
    assert atlas["notebooks"]["03_ldvae"]["peak_rss_gb"] == 15.0


def test_profile_never_run_is_left_out(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    assert report.profile_runs(tmp_path) == {}


def test_the_whole_m1_is_held_to_an_hour_and_12_gb_per_notebook(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    _write_run(tmp_path, "m1_full_sim", [600] * 6, [9e9, 15e9, 12e9, 6e9, 6e9, 6e9], 800.0)
    m1 = report.profile_runs(tmp_path)["m1_full_sim"]
    assert m1["wall_minutes"] == 60.0 and m1["wall_ratio_to_target"] == 1.0
    assert m1["peak_rss_gb"] == 15.0 and m1["peak_ratio_to_target"] == 1.25  # of 12 GB
