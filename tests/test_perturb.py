"""Tests of latentshift.perturb.shift: count-preserving perturbations, copies, split."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from latentshift.design import split as splitting
from latentshift.perturb import shift as perturb
from latentshift.perturb import shift_checks
from latentshift.perturb.shift import PerturbError
from tests.conftest import random_counts


def small_adata(n_cells=60, n_genes=40, seed=0):
    X = random_counts(n_cells, n_genes, seed=seed)
    types = np.array(["Exc", "Inh", "Astro"])[np.arange(n_cells) % 3]
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(types)}, index=[f"c{i}" for i in range(n_cells)]
    )
    var = pd.DataFrame(index=[f"G{j}" for j in range(n_genes)])
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.layers["counts"] = X.copy()
    adata.uns["latentshift"] = {"simulated": True, "source": "test"}
    return adata


def dense_reference_scale(X, genes, fc, mask):
    D = X.toarray().astype(float)
    rows = np.flatnonzero(mask)
    D[np.ix_(rows, genes)] = np.rint(D[np.ix_(rows, genes)] * fc)
    return D


@st.composite
def problems(draw):
    n_cells = draw(st.integers(1, 30))
    n_genes = draw(st.integers(1, 25))
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**16))
    X = random_counts(
        n_cells,
        n_genes,
        density=density,
        seed=seed,
        dtype=draw(st.sampled_from([np.int32, np.int64, np.float32])),
    )
    if draw(st.booleans()) and X.nnz:  # some stored (explicit) zeros, which must survive
        X.data[np.random.default_rng(seed).random(X.nnz) < 0.2] = 0
    genes = draw(st.lists(st.integers(0, n_genes - 1), unique=True, max_size=n_genes))
    mask = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=n_cells, max_size=n_cells)))
    return X, np.array(genes, dtype=int), mask, seed


def _untouched(X, out, genes, mask):
    """Dense copies of X and out with the touched block zeroed (tests only, small inputs)."""
    a, b = X.toarray(), out.toarray()
    rows = np.arange(X.shape[0]) if mask is None else np.flatnonzero(mask)
    a[np.ix_(rows, genes)] = 0
    b[np.ix_(rows, genes)] = 0
    return a, b


# --- properties of perturb_counts --------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    problem=problems(),
    method=st.sampled_from(["thin", "poisson", "scale"]),
    fc=st.floats(0.05, 4.0),
)
def test_counts_stay_integer_sparse_and_untouched_genes_bit_identical(problem, method, fc):
    X, genes, mask, seed = problem
    if method == "thin":
        fc = min(fc, 1.0)
    X0 = X.copy()
    out = perturb.perturb_counts(X, genes, fc, method, np.random.default_rng(seed), cell_mask=mask)
    np.testing.assert_array_equal(X.data, X0.data)  # the input is not modified
    np.testing.assert_array_equal(X.indices, X0.indices)
    assert sp.issparse(out) and out.format == "csr"
    assert out.shape == X.shape and out.dtype == X.dtype
    assert np.all(out.data == np.rint(out.data)) and np.all(out.data >= 0)
    # untouched genes: the column slices are identical, stored structure included
    others = np.setdiff1d(np.arange(X.shape[1]), genes)
    a, b = X[:, others], out[:, others]
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)
    # untouched cells of the gene set are identical too
    ua, ub = _untouched(X, out, genes, mask)
    np.testing.assert_array_equal(ua, ub)
    # no explicit zeros are created
    assert np.count_nonzero(out.data == 0) <= np.count_nonzero(X.data == 0)


@settings(max_examples=40, deadline=None)
@given(problem=problems(), fc=st.floats(0.0, 1.0, exclude_min=True))
def test_down_never_raises_a_count(problem, fc):
    X, genes, mask, seed = problem
    for method in ("thin", "scale"):
        out = perturb.perturb_counts(
            X, genes, fc, method, np.random.default_rng(seed), cell_mask=mask
        )
        assert np.all(out.toarray() <= X.toarray())


@settings(max_examples=40, deadline=None)
@given(problem=problems(), fc=st.floats(0.05, 4.0))
def test_scale_matches_dense_reference(problem, fc):
    X, genes, mask, _ = problem
    out = perturb.perturb_counts(X, genes, fc, "scale", cell_mask=mask)
    m = np.ones(X.shape[0], bool) if mask is None else np.asarray(mask)
    np.testing.assert_array_equal(out.toarray(), dense_reference_scale(X, genes, fc, m))


@settings(max_examples=30, deadline=None)
@given(problem=problems(), method=st.sampled_from(["thin", "poisson", "scale"]))
def test_fold_change_one_leaves_counts_identical(problem, method):
    X, genes, mask, seed = problem
    out = perturb.perturb_counts(X, genes, 1.0, method, np.random.default_rng(seed), cell_mask=mask)
    assert (out != X).nnz == 0
    np.testing.assert_array_equal(out.indices, X.indices)
    np.testing.assert_array_equal(out.data, X.data)


def test_few_cells_path_matches_full_scan():
    X = random_counts(400, 30, density=0.4, seed=3)
    genes = np.array([1, 5, 7, 20])
    few = np.zeros(400, bool)
    few[[0, 10, 399]] = True  # takes the row-wise path
    many = np.ones(400, bool)
    many[[2, 3]] = False  # takes the full-scan path
    for mask in (few, many):
        out = perturb.perturb_counts(X, genes, 0.4, "scale", cell_mask=mask)
        np.testing.assert_array_equal(out.toarray(), dense_reference_scale(X, genes, 0.4, mask))


@pytest.mark.parametrize(
    ("method", "fc"), [("thin", 0.5), ("thin", 0.2), ("poisson", 2.0), ("poisson", 3.0)]
)
def test_realised_mean_fold_change_on_large_input(method, fc):
    X = random_counts(5000, 60, density=0.3, seed=1, mean=4.0)
    genes = np.arange(0, 60, 3)
    out = perturb.perturb_counts(X, genes, fc, method, np.random.default_rng(7))
    before = X[:, genes].sum(axis=0).A1
    after = out[:, genes].sum(axis=0).A1
    np.testing.assert_allclose(after / before, fc, rtol=0.12)  # per gene (~5 sd)
    assert after.sum() / before.sum() == pytest.approx(fc, rel=0.01)
    if method == "poisson":
        assert after.sum() >= before.sum()  # up never lowers the mean


def test_lfc_sd_spreads_fold_changes_and_clips_thin():
    fc = perturb.gene_fold_changes(0.8, 2000, lfc_sd=0.5, method="thin", rng=0)
    assert fc.max() <= 1.0 and fc.min() < 0.5
    fc_up = perturb.gene_fold_changes(2.0, 2000, lfc_sd=0.3, method="poisson", rng=0)
    assert np.median(np.log(fc_up)) == pytest.approx(np.log(2.0), abs=0.03)
    assert np.std(np.log(fc_up)) == pytest.approx(0.3, rel=0.1)
    np.testing.assert_array_equal(perturb.gene_fold_changes(0.5, 3), [0.5, 0.5, 0.5])


def test_perturb_counts_is_deterministic_given_the_seed():
    X = random_counts(200, 30, seed=2)
    a = perturb.perturb_counts(X, [1, 2, 3], 0.5, "thin", 11, lfc_sd=0.2)
    b = perturb.perturb_counts(X, [1, 2, 3], 0.5, "thin", 11, lfc_sd=0.2)
    c = perturb.perturb_counts(X, [1, 2, 3], 0.5, "thin", 12, lfc_sd=0.2)
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"method": "thinn"}, "Did you mean 'thin'"),
        ({"method": "thin", "fold_change": 2.0}, "only lower counts"),
        ({"method": "poisson", "rng": None}, "pass rng"),
        ({"gene_idx": [0, 99]}, "gene indices"),
        ({"gene_idx": [1, 1]}, "twice"),
        ({"cell_mask": [True]}, "cell_mask has 1 entries"),
    ],
)
def test_perturb_counts_errors(kwargs, pattern):
    X = random_counts(10, 5, seed=0)
    args = {"gene_idx": [0, 1], "fold_change": 0.5, "method": "thin", "rng": 0} | kwargs
    with pytest.raises(PerturbError, match=pattern):
        perturb.perturb_counts(X, **args)


def test_perturb_counts_refuses_dense_and_normalised_input():
    X = random_counts(10, 5, seed=0)
    with pytest.raises(PerturbError, match="sparse"):
        perturb.perturb_counts(X.toarray(), [0], 0.5, "thin", 0)
    Xf = X.astype(np.float32)
    Xf.data = Xf.data / 3.0
    with pytest.raises(PerturbError, match="non-integer"):
        perturb.perturb_counts(Xf, list(range(5)), 0.5, "thin", 0)


# --- make_perturbed ---------------------------------------------------------------------------

ENTRIES = [
    {"name": "ALS", "geneset": "DOWN", "direction": "down", "fold_change": 0.5},
    {"name": "HD", "geneset": "UP", "direction": "up", "fold_change": 2.0},
]
GENES = {"DOWN": ["G0", "G1", "G2", "G3"], "UP": ["G10", "G11", "G12"]}


def test_make_perturbed_layout(tmp_path):
    adata = small_adata()
    out = perturb.make_perturbed(adata, ENTRIES, GENES, seed=0)
    n = adata.n_obs
    assert out.n_obs == 3 * n
    assert list(out.obs["condition"].cat.categories) == ["normal", "ALS", "HD"]
    assert out.obs["condition"].value_counts().to_dict() == {"normal": n, "ALS": n, "HD": n}
    assert out.obs_names.is_unique
    assert out.obs_names[0] == "c0-normal" and out.obs_names[n] == "c0-ALS"
    assert (out.obs["source_cell"].iloc[n : 2 * n].to_numpy() == adata.obs_names.to_numpy()).all()
    assert not out.obs.loc[out.obs["condition"] == "normal", "perturbed"].any()
    assert out.obs.loc[out.obs["condition"] != "normal", "perturbed"].all()
    assert sp.issparse(out.layers["counts"]) and out.layers["counts"].dtype == np.int32
    assert (out.X != out.layers["counts"]).nnz == 0
    # normal block identical to the input
    assert (out.layers["counts"][:n] != adata.layers["counts"]).nnz == 0
    assert out.uns["perturbation_genes"] == {"ALS": GENES["DOWN"], "HD": GENES["UP"]}
    assert out.uns["latentshift"]["simulated"] is True
    # ALS copy differs only in its genes
    als = out.layers["counts"][n : 2 * n]
    others = [j for j in range(adata.n_vars) if f"G{j}" not in GENES["DOWN"]]
    assert (als[:, others] != adata.layers["counts"][:, others]).nnz == 0
    # writable as h5ad and reads back the same
    out.obs["split"] = splitting.assign_split(out, 0.7, True, 0)
    out.write_h5ad(tmp_path / "p.h5ad")
    back = ad.read_h5ad(tmp_path / "p.h5ad")
    assert back.uns["perturbations"]["HD"]["method"] == "poisson"
    assert back.uns["perturbations"]["ALS"]["method"] == "thin"
    assert (back.layers["counts"] != out.layers["counts"]).nnz == 0


def test_make_perturbed_null_control_and_determinism():
    adata = small_adata()
    null = [{"name": "NULL", "geneset": "UP", "direction": "up", "fold_change": 1.0}]
    out = perturb.make_perturbed(adata, null, GENES, seed=3)
    n = adata.n_obs
    assert (out.layers["counts"][n:] != adata.layers["counts"]).nnz == 0
    assert not out.obs["perturbed"].any()
    a = perturb.make_perturbed(adata, ENTRIES, GENES, seed=5)
    b = perturb.make_perturbed(adata, ENTRIES, GENES, seed=5)
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0
    # adding an entry does not change the earlier ones
    c = perturb.make_perturbed(adata, ENTRIES[:1], GENES, seed=5)
    assert (a.layers["counts"][: 2 * n] != c.layers["counts"]).nnz == 0


def test_make_perturbed_frees_an_anndata_the_caller_replaced_before_it_allocates():
    """02 replaces its whole-gene cells by the chosen genes' before the copies; the replaced
    AnnData is kept alive only by its own reference cycles and must not outlive the copies."""
    import gc
    import weakref

    adata = small_adata()
    old = adata.copy()
    view = old[:5]  # a view (gene choice takes them) is a reference cycle that holds its parent
    gone = weakref.ref(old)
    gc.collect()  # both survive collections while referenced, so they grow old: once
    gc.collect()  # dropped, only a full collection frees them, not a young-generation pass
    del old, view
    assert gone() is not None, "a dropped view is expected to keep its parent until collected"
    perturb.make_perturbed(adata, ENTRIES, GENES, seed=5)
    assert gone() is None


@settings(max_examples=20, deadline=None)
@given(
    penetrance=st.floats(0.05, 1.0),
    types=st.sampled_from([None, ["Exc"], ["Inh", "Astro"]]),
    seed=st.integers(0, 1000),
)
def test_penetrance_and_targeting_perturb_exactly_the_chosen_cells(penetrance, types, seed):
    adata = small_adata(n_cells=90)
    entry = [
        {
            "name": "ALS",
            "geneset": "DOWN",
            "direction": "down",
            "fold_change": 0.01,
            "target_cell_types": types,
            "penetrance": penetrance,
        }
    ]
    out = perturb.make_perturbed(adata, entry, GENES, seed=seed)
    n = adata.n_obs
    copy = out.obs.iloc[n:]
    targeted = adata.obs["cell_type"].isin(types).to_numpy() if types else np.ones(n, bool)
    flagged = copy["perturbed"].to_numpy()
    assert flagged.sum() == max(1, round(penetrance * targeted.sum()))
    assert not (flagged & ~targeted).any()
    before, after = adata.layers["counts"], out.layers["counts"][n:]
    # unflagged cells are bit-identical; flagged cells have every set gene thinned (fc 0.01)
    assert (after[~flagged] != before[~flagged]).nnz == 0
    cols = [adata.var_names.get_loc(g) for g in GENES["DOWN"]]
    assert after[flagged][:, cols].sum() <= before[flagged][:, cols].sum()


def test_make_perturbed_errors():
    adata = small_adata()
    with pytest.raises(PerturbError, match="Did you mean 'Exc'"):
        perturb.make_perturbed(adata, [ENTRIES[0] | {"target_cell_types": ["Ecx"]}], GENES, seed=0)
    with pytest.raises(PerturbError, match="not matched"):
        perturb.make_perturbed(adata, [ENTRIES[0] | {"geneset": "OTHER"}], GENES, seed=0)


def test_realised_fold_change_table():
    adata = small_adata(n_cells=3000, n_genes=20)
    out = perturb.make_perturbed(adata, ENTRIES, {"DOWN": ["G0", "G1"], "UP": ["G5", "G6"]}, seed=0)
    table = shift_checks.realised_fold_changes(out)
    assert set(table["entry"]) == {"ALS", "HD"}
    assert len(table) == 4
    np.testing.assert_allclose(table["realised"], table["requested"], rtol=0.08)
    assert (table["n_cells"] == 3000).all()


def test_mean_expression_and_library_sizes():
    adata = small_adata()
    out = perturb.make_perturbed(adata, ENTRIES, GENES, seed=0)
    means = shift_checks.mean_expression(out, GENES["UP"])
    assert list(means.index) == GENES["UP"]
    assert means.shape[1] == 3 * 3  # cell types × conditions
    hd = means.xs("HD", axis=1, level="condition").mean().mean()
    normal = means.xs("normal", axis=1, level="condition").mean().mean()
    assert hd > normal
    lib = shift_checks.library_sizes(out)
    assert lib.iloc[: adata.n_obs].sum() == adata.layers["counts"].sum()


# --- split -------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(frac=st.floats(0.2, 0.9), seed=st.integers(0, 10_000))
def test_grouped_split_never_splits_a_source_cell(frac, seed):
    adata = small_adata(n_cells=90)
    out = perturb.make_perturbed(adata, ENTRIES, GENES, seed=0)
    split = splitting.assign_split(out, frac, grouped=True, seed=seed)
    sides = split.groupby(out.obs["source_cell"].to_numpy(), observed=True).nunique()
    assert (sides == 1).all()
    counts = pd.crosstab(out.obs["condition"], split)
    assert counts["train"].nunique() == 1  # the same in every condition
    # stratified by cell type: each type gets round(frac × n_type) source cells
    per_type = out.obs.loc[
        (split == "train").to_numpy() & (out.obs["condition"] == "normal").to_numpy(), "cell_type"
    ].value_counts()
    assert all(per_type[t] == round(frac * 30) for t in ["Exc", "Inh", "Astro"])


def test_ungrouped_split_reproduces_plain_stratified_split():
    adata = small_adata(n_cells=90)
    out = perturb.make_perturbed(adata, ENTRIES, GENES, seed=0)
    split = splitting.assign_split(out, 0.7, grouped=False, seed=4)
    train_idx, _ = train_test_split(
        np.arange(out.n_obs),
        train_size=0.7,
        stratify=out.obs["condition"].astype(str).to_numpy(),
        random_state=4,
    )
    assert set(np.flatnonzero((split == "train").to_numpy())) == set(train_idx)
    out.obs["split"] = split
    table = splitting.split_counts(out)
    assert table["total"].tolist() == [90, 90, 90]
    # plain split: some source cells land on both sides
    sides = split.groupby(out.obs["source_cell"].to_numpy(), observed=True).nunique()
    assert (sides == 2).any()


def test_split_rejects_bad_fraction():
    out = perturb.make_perturbed(small_adata(), ENTRIES, GENES, seed=0)
    with pytest.raises(PerturbError, match="train_fraction"):
        splitting.assign_split(out, 1.0)


def test_split_with_too_few_cells_names_the_problem_and_the_fix(caplog):
    # three source cells of three cell types: each type puts its single cell on the training side
    out = perturb.make_perturbed(small_adata(n_cells=3), ENTRIES, GENES, seed=0)
    with pytest.raises(
        PerturbError,
        match=r"too few cells for the split.*3 source cell.*test side empty.*raise data.n_cells",
    ):
        splitting.assign_split(out, 0.7, grouped=True, seed=0)
    # ungrouped (the original plain split): sklearn's stratification error, translated
    with pytest.raises(PerturbError, match=r"too few cells for the split.*raise data.n_cells"):
        splitting.assign_split(out, 0.9, grouped=False, seed=0)
    # enough cells overall, one cell type with a single source cell: split, with a warning
    adata = small_adata(n_cells=61)
    adata.obs["cell_type"] = adata.obs["cell_type"].cat.add_categories("Micro")
    adata.obs.iloc[60, adata.obs.columns.get_loc("cell_type")] = "Micro"
    out = perturb.make_perturbed(adata, ENTRIES, GENES, seed=0)
    with caplog.at_level("WARNING", logger="latentshift.perturb.shift"):
        split = splitting.assign_split(out, 0.7, grouped=True, seed=0)
    assert set(split) == {"train", "test"}
    assert "single source cell" in caplog.text


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), n_blocks=st.integers(1, 4), extra=st.booleans())
def test_row_stacker_equals_vstack(seed, n_blocks, extra):
    from latentshift.data.counts import RowStacker

    blocks = [
        random_counts(int(np.random.default_rng([seed, b]).integers(1, 30)), 12, seed=seed + b)
        for b in range(n_blocks)
    ]
    # capacity too small when `extra`: the stacker must grow and still match
    capacity = blocks[0].nnz if extra else sum(b.nnz for b in blocks)
    stack = RowStacker(12, max(capacity, 1), blocks[0].dtype)
    for b in blocks:
        stack.append(b)
    got, want = stack.tocsr(), sp.vstack(blocks, format="csr")
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)
