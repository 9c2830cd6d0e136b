"""The check_* helpers: each returns the value in canonical form or raises a GapdiagError naming it."""

import numpy as np
import pandas as pd
import pytest
import torch

from gapdiag import InputError, Items
from gapdiag.embed import batch_keys
from gapdiag.validation import check_embeddings, check_index_array, check_labels


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        (["a", 1, "b", 2], "mixes strings and numbers"),
        (np.array(["a", 1, "b", 2], dtype=object), "mixes strings and numbers"),
        (["a", None, "b", "c"], "labels\\[1\\] is missing \\(None\\)"),
        ([1, None, 2, 3], "labels\\[1\\] is missing"),
        ([1.0, float("nan"), 2.0, 3.0], "labels\\[1\\] is missing|labels\\[1\\] is NaN"),
        (np.array([1.0, np.inf, 2.0, 3.0]), "labels\\[1\\] is NaN or inf"),
        ([1, 2, [3], 4], "labels\\[2\\] is a list"),
        (np.array([1 + 2j, 1, 2, 3]), "complex"),
        (pd.Series(["a", None, "b", "c"]), "labels\\[1\\] is missing"),
        ([0, 1, 2], "has 3 entries but there are 4 items"),
    ],
)
def test_labels_that_cannot_identify_items_are_refused(labels, needle):
    with pytest.raises(InputError, match=needle):
        check_labels(labels, name="labels", n=4)


def test_labels_of_one_kind_are_kept_apart_and_canonical():
    assert check_labels(["a", "b", "a", "c"], name="labels", n=4).dtype.kind == "U"
    assert check_labels(np.array([1, 2, 1, 3], dtype=object), name="labels", n=4).dtype == np.int64
    assert check_labels([1.0, 2.0, 1.0, 3.0], name="labels", n=4).dtype == np.int64
    assert check_labels(torch.tensor([3, 1, 3, 2]), name="labels", n=4).tolist() == [3, 1, 3, 2]
    assert check_labels([True, False, True, True], name="labels", n=4).dtype == np.int64


def test_index_arrays_that_are_ragged_huge_or_not_integers_are_refused():
    with pytest.raises(InputError, match="cannot be read as an array"):
        check_index_array([[1, 2], [3]], name="candidates", n_items=5, ndim=2)
    with pytest.raises(InputError, match="outside the 5 items"):
        check_index_array([1e30], name="left", n_items=5)
    with pytest.raises(InputError, match="outside the 5 items"):
        check_index_array(np.array([2**63], dtype=np.uint64), name="left", n_items=5)
    for bad in (["a"], [True, False], [0.5]):
        with pytest.raises(InputError, match="must hold integer item indices"):
            check_index_array(bad, name="left", n_items=5)
    with pytest.raises(InputError, match="'meta' device"):
        check_index_array(torch.zeros(3, dtype=torch.long, device="meta"), name="left", n_items=5)
    assert check_index_array([1.0, 2.0], name="left", n_items=5).tolist() == [1, 2]


def test_whole_float_labels_beyond_int64_stay_floats_quietly():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fuzz suite found an invalid-cast warning on 1e300
        out = check_labels(np.array([1e300, 2.0, 1e300]), name="labels", n=3)
        half = check_labels(np.array([3.0, 2.0], dtype=np.float16), name="labels", n=2)  # 2**53 > float16 max
    assert out.dtype == np.float64 and out[0] == out[2] != out[1]
    assert half.dtype == np.int64 and half.tolist() == [3, 2]
    assert check_labels(np.array([3.0, 2.0]), name="labels", n=2).dtype == np.int64


def test_half_precision_indices_into_more_items_than_float16_holds_convert_quietly():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fuzz suite found an overflow warning casting n_items to float16
        out = check_index_array(np.array([1.0, 2.0], dtype=np.float16), name="left", n_items=100_000)
    assert out.tolist() == [1, 2]


def test_embeddings_are_finite_real_float32_rows():
    with pytest.raises(InputError, match="dtype <U1; embeddings must be real numbers"):
        check_embeddings(np.array([["a"]]), name="e")
    with pytest.raises(InputError, match="must have shape \\(N, d\\) with d >= 1"):
        check_embeddings(np.zeros((3, 0)), name="e")
    with pytest.raises(InputError, match="NaN or inf in 1 row"):
        check_embeddings(np.array([[1.0], [1e300]]), name="e")  # overflows float32
    assert check_embeddings(np.eye(2, dtype=np.int64), name="e").dtype == np.float32


def test_item_keys_tell_dtypes_and_shapes_apart():
    x = torch.arange(6, dtype=torch.float32)
    a = batch_keys(x.reshape(1, 6))
    b = batch_keys(x.reshape(1, 2, 3))
    c = batch_keys(x.reshape(1, 6).to(torch.int64))
    assert len({a[0], b[0], c[0]}) == 3


def test_items_refuse_inputs_without_rows():
    with pytest.raises(InputError, match="without rows"):
        Items(np.array(3.0))
    with pytest.raises(InputError, match="must be indexable"):
        Items("abc")
    with pytest.raises(InputError, match="ids cannot be read"):
        Items(torch.rand(2, 3), ids=[[1], []])
