"""Params validation: unknown keys with did-you-mean, types, ranges, defaults."""

from __future__ import annotations

import pytest
import yaml

from latentshift import config
from latentshift.config import ParamsError


def test_every_profile_in_params_is_valid(root):
    profiles = sorted((root / "params").glob("*.yaml"))
    assert profiles, "no profiles found"
    for path in profiles:
        params = config.load_params(path)
        assert set(params) == set(config.DEFAULTS)


def test_defaults_fill_missing_keys():
    params = config.validate({"data": {"n_cells": 123}})
    assert params["data"]["n_cells"] == 123
    assert params["data"]["min_cells"] == config.DEFAULTS["data"]["min_cells"]
    assert params["perturbations"][0]["method"] == "thin"
    assert params["perturbations"][1]["method"] == "poisson"


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"data": {"n_cell": 10}}, ["data.n_cell", "n_cells"]),
        ({"ldave": {}}, ["ldave", "ldvae"]),
        ({"split": {"train_fracton": 0.5}}, ["split.train_fracton", "train_fraction"]),
        (
            {"perturbations": [{"name": "A", "geneset": "S", "direction": "up", "fold_chnage": 2}]},
            ["fold_chnage", "fold_change"],
        ),
    ],
)
def test_unknown_key_names_key_and_closest(raw, names):
    with pytest.raises(ParamsError) as err:
        config.validate(raw)
    for name in names:
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"ldvae": {"n_latent": "ten"}}, "ldvae.n_latent"),
        ({"ldvae": {"n_latent": 0}}, "ldvae.n_latent"),
        ({"split": {"train_fraction": 1.0}}, "split.train_fraction"),
        ({"split": {"grouped": "yes"}}, "split.grouped"),
        ({"seed": True}, "seed"),
        ({"data": {"source": "csv"}}, "data.source"),
        ({"ldvae": {"strategy": 3}}, "ldvae.strategy"),
        ({"ldvae": {"accelerator": "tpu"}}, "ldvae.accelerator"),
        (
            {"perturbations": [{"name": "A", "geneset": "S", "direction": "up", "fold_change": 0}]},
            "fold_change",
        ),
        (
            {
                "perturbations": [
                    {"name": "A", "geneset": "S", "direction": "sideways", "fold_change": 2}
                ]
            },
            "direction",
        ),
    ],
)
def test_wrong_type_or_range_names_key(raw, key):
    with pytest.raises(ParamsError, match="must be") as err:
        config.validate(raw)
    assert key in str(err.value)


def test_direction_and_fold_change_must_agree():
    with pytest.raises(ParamsError, match="direction 'down' needs fold_change <= 1"):
        config.validate(
            {
                "perturbations": [
                    {"name": "A", "geneset": "S", "direction": "down", "fold_change": 2}
                ]
            }
        )


def test_duplicate_and_reserved_names():
    entry = {"name": "A", "geneset": "S", "direction": "up", "fold_change": 2}
    with pytest.raises(ParamsError, match="used twice"):
        config.validate({"perturbations": [entry, entry]})
    with pytest.raises(ParamsError, match="reserved"):
        config.validate({"perturbations": [{**entry, "name": "normal"}]})


def test_n_cells_above_what_the_simulator_makes():
    with pytest.raises(
        ParamsError, match=r"'data.n_cells' is 500, more than the 300 cells.*at most 300.*null"
    ):
        config.validate({"data": {"simulate_n_cells": 300, "n_cells": 500}})
    assert (
        config.validate({"data": {"simulate_n_cells": 300, "n_cells": None}})["data"]["n_cells"]
        is None
    )


def test_h5ad_source_needs_path():
    with pytest.raises(ParamsError, match="data.path"):
        config.validate({"data": {"source": "h5ad"}})


def test_load_params_reports_file_and_yaml_errors(tmp_path):
    with pytest.raises(ParamsError, match="does not exist"):
        config.load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        config.load_params(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"data": {"n_cels": 5}}))
    with pytest.raises(ParamsError, match=r"typo\.yaml.*did you mean 'n_cells'"):
        config.load_params(typo)


def test_section_merges_notebook_overrides():
    assert config.section("ldvae", {})["n_latent"] == config.DEFAULTS["ldvae"]["n_latent"]
    assert config.section("ldvae", {"n_latent": 36})["n_latent"] == 36
    assert config.section("perturbations", None)[0]["name"] == "ALS"
    with pytest.raises(ParamsError, match="did you mean"):
        config.section("ldvea", {})


def test_gene_choice_keys_are_validated_and_named_in_the_cli_error(tmp_path, caplog):
    from latentshift.run import cli

    ok = config.validate({"ldvae": {"hvg_cells": "normal", "keep_perturbed_genes": True}})
    assert ok["ldvae"]["hvg_cells"] == "normal" and ok["ldvae"]["keep_perturbed_genes"] is True
    defaults = config.validate({})["ldvae"]
    assert defaults["hvg_cells"] == "all" and defaults["keep_perturbed_genes"] is False
    with pytest.raises(ParamsError, match=r"ldvae.hvg_cells.*'all'.*'normal'"):
        config.validate({"ldvae": {"hvg_cells": "copies"}})
    with pytest.raises(ParamsError, match=r"ldvae.keep_perturbed_genes.*true.*oracle"):
        config.validate({"ldvae": {"keep_perturbed_genes": "yes"}})
    with pytest.raises(ParamsError, match=r"ldvae.hvg_flavor.*pearson_residuals"):
        config.validate({"ldvae": {"hvg_flavor": "cell_ranger"}})
    # before the copies only the normal cells exist: the label-blind ranking is refused there
    with pytest.raises(ParamsError, match=r"genes_before_copies.*hvg_cells to 'normal'"):
        config.validate({"ldvae": {"genes_before_copies": True}})
    # `python -m latentshift check` names the key and the allowed values
    bad = tmp_path / "bad.yaml"
    bad.write_text("ldvae:\n  hvg_cells: copies\n")
    assert cli.main(["check", str(bad)]) == 2
    assert "ldvae.hvg_cells" in caplog.text and "'all'" in caplog.text and "'normal'" in caplog.text
