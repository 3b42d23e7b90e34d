"""The real-cell docs block (latentshift.report.realcells_summary) on hand-made records."""

from __future__ import annotations

import pandas as pd

from latentshift.report import realcells_summary as rs

STIM = rs.STIMULATED


def _record(acc: float, low: float, high: float, units: int, fold: float | None = None) -> dict:
    clf = {
        "accuracy": acc,
        "accuracy_low": low,
        "accuracy_high": high,
        "unit": "donor",
        "n_units": units,
        "permutation_accuracy": 0.5,
        "permutation_p_value": 0.25,
        "permutation_min_p_value": 0.25,
        "n_relabellings": 4,
    }
    params = {"perturbations": [{"fold_change": fold}]} if fold else {}
    return {
        "metrics": {"classifier": clf},
        "params": params,
        "provenance": {"git_commit": "abc1234"},
    }


def _sweep() -> pd.DataFrame:
    # f = 1 points nowhere (below its null); f = 4 points the right way but is half as long;
    # f = 16 points the right way and is closest in length: the best match
    rows = []
    for level, cos, ratio, stim in [(1, 0.1, 0.05, 0.1), (4, 0.9, 0.5, 0.8), (16, 0.8, 1.25, 0.95)]:
        row = {"level": float(level), "git_commit": "abc1234"}
        for rep in ("ldvae", "pca"):
            row[f"{STIM}_transfer_{rep}_targeted_disease"] = stim
            row[f"{STIM}_transfer_{rep}_targeted_control"] = 0.1
            row[f"{STIM}_direction_{rep}_cosine"] = cos
            row[f"{STIM}_direction_{rep}_null_high"] = 0.4
            row[f"{STIM}_direction_{rep}_length_ratio"] = ratio
        rows.append(row)
    return pd.DataFrame(rows)


def _calls() -> pd.DataFrame:
    rows = []
    for level in (4.0, 16.0):
        for cell_type, stim, ctrl in [("B cells", 0.9, 0.2), ("NK cells", 0.6, 0.5)]:
            rows.append(
                {
                    "level": level,
                    "condition": STIM,
                    "cell_type": cell_type,
                    "ldvae_disease": stim,
                    "ldvae_control": ctrl,
                    "pca_disease": stim - 0.1,
                    "pca_control": ctrl,
                }
            )
    return pd.DataFrame(rows)


def test_match_score_and_best_level():
    assert rs.match_score(0.8, 1.25) == rs.match_score(0.8, 0.8) == 0.8 * 0.8
    assert pd.isna(rs.match_score(0.8, 0.0))
    assert rs.best_level(_sweep()) == 16.0
    # no level above its null: no best match
    below = _sweep().assign(**{f"{STIM}_direction_ldvae_null_high": 0.95})
    assert rs.best_level(below) is None


def test_per_type_sentence_names_the_ends_at_one_fold_change():
    text = rs.per_type_sentence(_calls(), 16)
    assert text.startswith("Per cell type at f = 16 (2 types): the LDVAE network calls 60.0%–90.0%")
    assert "against 20.0%–50.0% of the control cells" in text
    assert "widest gap B cells, 90.0% vs 20.0%; narrowest NK cells, 60.0% vs 50.0%" in text
    assert "the PCA network calls 50.0%–80.0%" in text
    assert rs.per_type_sentence(_calls(), 2) == ""


def test_render_puts_the_leak_beside_its_null_and_says_the_verdict():
    records = {
        "paired": _record(0.99, 0.98, 1.0, 2),
        "null": _record(0.55, 0.45, 0.65, 8),
        "syn": _record(0.6, 0.55, 0.65, 6, fold=4.0),
        "syn0": _record(0.5, 0.5, 0.5, 6, fold=1.0),
    }
    split = pd.DataFrame(
        [
            {
                "point": "cell_split",
                "accuracy": 0.66,
                "accuracy_low": 0.6,
                "accuracy_high": 0.7,
                "git_commit": "def5678",
            }
        ]
    )
    tables = {"split.csv": split, "sweep.csv": _sweep(), "calls.csv": _calls()}
    args = ["paired", "null", "split.csv", "syn", "syn0", "sweep.csv", "calls.csv"]
    text = rs.render(args, records.__getitem__, tables.__getitem__)
    head = text.splitlines()[0]
    assert head.index("donor folds") < head.index("cell folds") < head.index("synthetic on real")
    assert "synthetic on real cells (f = 4)" in head and "synthetic null (f = 1)" in head
    assert "99.0% [98.0%, 100.0%]" in text
    assert "its interval covers chance" in text and "66.0% [60.0%, 70.0%]" in text
    assert "best-matching fold change f = 16" in text
    assert "The premise holds here" in text  # 95% vs 10%, cosine 0.8 above 0.4
    assert "Per cell type at f = 16" in text
    # unrecorded parts are left out, not shown as empty columns or sentences
    short = rs.render(["paired", "-", "-", "-", "-", "-"], records.__getitem__, tables.__getitem__)
    assert "donor folds" not in short and "Synthetic against real" not in short


def test_widest_gap_is_named_where_it_is_not_the_best_match():
    sweep = _sweep()
    assert rs.widest_gap_level(sweep) == 16.0  # 95% vs 10%
    assert rs._widest_clause(sweep, 16.0) == ""
    # f = 4 calls more stimulated cells than f = 16 (as on the real cells: 97% vs 64%)
    sweep.loc[sweep["level"] == 4.0, f"{STIM}_transfer_ldvae_targeted_disease"] = 0.99
    assert rs.widest_gap_level(sweep) == 4.0
    clause = rs._widest_clause(sweep, 16.0)
    assert "most at f = 4: 99.0% of the stimulated cells against 10.0%" in clause
    assert "shorter than the real one" in clause  # cosine 0.9 > 0.4, length 0.5


def test_transfer_table_says_na_where_f1_has_no_direction():
    sweep = _sweep()
    sweep.loc[sweep["level"] == 1.0, f"{STIM}_direction_ldvae_cosine"] = float("nan")
    table = rs.transfer_table(sweep)
    row = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    assert "n/a (no synthetic displacement at f = 1)" in row and "nan" not in row
