"""Everything is checked up front: one clear GapdiagError before the embedding pass, or a probe skipped
with a reason when only that probe cannot use the data."""

import numpy as np
import pytest
import torch
from torch import nn

import gapdiag
from gapdiag import (
    ConfigError,
    EncoderError,
    Episodes,
    InputError,
    Items,
    ModelError,
    OutputError,
    Pairs,
    SiameseModel,
    Split,
)


class CountingNet(nn.Module):
    """Counts encoder calls, so a test can prove nothing was embedded before the error."""

    def __init__(self, out=None):
        super().__init__()
        self.lin = nn.Linear(16, 4)
        self.calls = 0
        self.out = out

    def encode(self, x):
        self.calls += 1
        return self.out(x) if self.out is not None else self.lin(x.flatten(1).float())


def _audit(model, train, val, **kw):
    return gapdiag.audit(model, train, val, probes=["protocol_mismatch"], progress=False, **kw)


# -- the model: encoder and distance on a probe batch ------------------------------------------------------


@pytest.mark.parametrize(
    ("distance", "needle"),
    [
        (lambda a, b: a - b, "returned shape \\(4, 4\\) for 4 pairs"),
        (lambda a, b: (a - b).sum(), "returned shape \\(\\) for 4 pairs"),
        (lambda a, b: (a - b).sum(1) * float("nan"), "returned NaN or inf"),
        (lambda a, b: 1 / 0, "raised on embeddings of shape \\(4, 4\\): ZeroDivisionError"),
        (lambda a, b: "far", "returned str, not numbers"),
        (lambda a, b: (a - b).sum(1) > 0, "torch.bool scores"),
        (lambda a, b: [1.0, 2.0], "returned shape \\(2,\\) for 4 pairs"),
    ],
)
def test_a_broken_distance_is_refused_before_the_embedding_pass(tiny, distance, needle):
    net = CountingNet()
    train, val = tiny.splits()
    with pytest.raises(ModelError, match=needle):
        _audit(SiameseModel(net, distance=distance), train, val)
    assert net.calls == 2  # only the preflight batch of each split was embedded


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        (lambda x: (), "returned an empty tuple"),
        (lambda x: [], "returned an empty list"),
        (lambda x: torch.zeros(x.shape[0], 0), "empty embeddings of shape \\(2, 0\\)"),
        (lambda x: torch.zeros(3), "expected \\(B, d\\)"),
        (lambda x: torch.zeros(x.shape[0]), "returned shape \\(2,\\)"),
        (lambda x: {"emb": torch.zeros(x.shape[0], 2)}, "returned a mapping \\(keys emb\\)"),
        (lambda x: x.flatten(1).numpy(), "returned ndarray"),
        (lambda x: torch.full((x.shape[0], 2), float("inf")), "NaN or inf embeddings"),
        (lambda x: torch.zeros(x.shape[0], 2, dtype=torch.complex64), "complex embeddings"),
        (lambda x: torch.zeros(x.shape[0], 2, device="meta"), "'meta' device"),
    ],
)
def test_a_broken_encoder_is_named_on_the_preflight_batch(tiny, out, needle):
    train, val = tiny.splits()
    with pytest.raises(EncoderError, match=needle) as info:
        _audit(CountingNet(out), train, val)
    assert "preflight batch of split 'train'" in str(info.value)


def test_embeddings_of_different_widths_between_splits_are_refused(tiny):
    train, val = tiny.splits()
    widths = iter([3, 5])
    net = CountingNet(lambda x: torch.zeros(x.shape[0], next(widths)))
    with pytest.raises(EncoderError, match="different widths \\(train 3, val 5\\)"):
        _audit(net, train, val)


def test_a_model_or_inputs_on_the_meta_device_are_refused(tiny):
    train, val = tiny.splits()
    with pytest.raises(ModelError, match="'lin.weight' is on the 'meta' device"):
        _audit(tiny.Net().to("meta"), train, val)
    meta_items = Items(torch.rand(48, 1, 4, 4, device="meta"), labels=np.arange(48) % 6)
    with pytest.raises(InputError, match="train split's inputs are on the 'meta' device"):
        _audit(tiny.Net(), meta_items, val)
    with pytest.raises(InputError, match="'meta' device, which holds no values"):
        Items(torch.rand(4, 2), labels=torch.zeros(4, device="meta"))


def test_a_lazy_module_that_was_never_run_is_refused(tiny):
    class Lazy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.LazyLinear(4)

        def encode(self, x):
            return self.lin(x.flatten(1))

    train, val = tiny.splits()
    with pytest.raises(ModelError, match="'lin.weight' is not initialized yet"):
        _audit(Lazy(), train, val)


def test_devices_this_host_lacks_are_refused_when_the_model_is_built(tiny):
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no usable CUDA device; use device='cpu'"):
            SiameseModel(tiny.Net(), device="cuda")
    else:
        n = torch.cuda.device_count()
        with pytest.raises(ModelError, match=f"has {n} CUDA device"):
            SiameseModel(tiny.Net(), device=f"cuda:{n}")
    with pytest.raises(ModelError, match="not a device torch knows"):
        SiameseModel(tiny.Net(), device="tpu9")
    with pytest.raises(ModelError, match="device='meta' holds no weights"):
        SiameseModel(tiny.Net(), device="meta")


@pytest.mark.parametrize("batch_size", [-5, 0, "big", 2.5, True, None])
def test_batch_size_is_checked_on_the_model_and_in_the_config(tiny, batch_size):
    with pytest.raises(gapdiag.GapdiagError, match="batch_size"):
        SiameseModel(tiny.Net(), batch_size=batch_size)
    if batch_size is not None:
        train, val = tiny.splits()
        with pytest.raises(ConfigError, match="batch_size must be an integer"):
            _audit(tiny.Net(), train, val, config={"batch_size": batch_size})


# -- the data -----------------------------------------------------------------------------------------------


def test_object_string_and_complex_inputs_are_named(tiny):
    _, val = tiny.splits()
    labels = np.arange(48) % 6
    for inputs, dtype in [
        (np.array([object()] * 48, dtype=object), "object"),
        (np.array(["a"] * 48), "<U1"),
        (torch.zeros(48, 16, dtype=torch.complex64), "complex64"),
    ]:
        with pytest.raises(InputError, match=f"train split's inputs: dtype {dtype} cannot be embedded"):
            _audit(tiny.Net(), Items(inputs, labels=labels), val)


def test_a_dataset_of_dicts_or_of_strings_is_named(tiny):
    _, val = tiny.splits()

    class DictRows(torch.utils.data.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return {"x": torch.rand(16), "y": i % 3}

    with pytest.raises(InputError, match="is a dict \\(keys x, y\\); gapdiag reads tuples"):
        _audit(tiny.Net(), DictRows(), val)
    with pytest.raises(InputError, match="Reading items 0, 1 of the train split: A batch holds a str"):
        _audit(tiny.Net(), Items(["a", "b", "c", "d"], labels=[0, 0, 1, 1]), val)
    with pytest.raises(InputError, match="Reading items 0, 1 of the train split: A batch holds a dict"):
        _audit(tiny.Net(), Items([{"x": 1}, {"x": 2}, {"x": 3}], labels=[0, 0, 1]), val)


def test_nan_inputs_in_the_probe_batch_are_named(tiny):
    train, val = tiny.splits()
    x = val.items.inputs.clone()
    x[1, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="Item 1 of split 'val' contains NaN"):
        _audit(tiny.Net(), train, Items(x, labels=val.items.labels))


def test_a_one_item_split_cannot_be_audited(tiny):
    train, _ = tiny.splits()
    one = Items(torch.rand(1, 1, 4, 4), labels=[0])
    for val in (one, Pairs(one, [0], [0], [1])):
        with pytest.raises(InputError, match="val split has 1 item; .* at least 2 items"):
            _audit(tiny.Net(), train, val)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda it: Pairs(it, [0, 1], [2, 3], [0, 0]), "the val pairs are all dissimilar (0)"),
        (lambda it: Pairs(it, [0, 1, 2], [1, 2, 3], [1, 1, 1]), "the val pairs are all similar (1)"),
        (lambda it: Items(it.inputs, labels=[0, 0, 0, 0]), "needs validation pairs"),
        (lambda it: Items(it.inputs, labels=[0, 1, 2, 3]), "needs validation pairs"),
    ],
)
def test_a_split_that_supports_no_evaluation_skips_what_needs_one(tiny, make, needle):
    """No protocol can be evaluated on the val split: the probes that need one skip with the reason, the
    ones that only read embeddings still run."""
    train, _ = tiny.splits()
    items = Items(torch.rand(4, 1, 4, 4))
    config = {"probes": {"class_gap": {"umap": False}}, "n_boot": 50}
    report = gapdiag.audit(
        tiny.Net(),
        train,
        make(items),
        probes=["protocol_mismatch", "geometry", "split_shift"],
        config=config,
        progress=False,
    )
    assert not report.errored, [f.message for f in report.errored]
    assert (
        report.result("protocol_mismatch").status == "skipped"
        and needle in report.result("protocol_mismatch").reason
    )
    assert report.result("split_shift").status == "ok"  # reads only the embeddings


def test_degenerate_pairs_skip_the_probes_that_need_both_kinds(tiny):
    """All-positive training pairs (with labels) and all-negative validation pairs: the probes that compare
    similar with dissimilar pairs skip with the reason; the rest run; no probe crashes."""
    train, val = tiny.splits()
    items = train.items
    all_pos = Pairs(items, np.arange(0, 40), np.arange(0, 40) + 6, np.ones(40))  # labels repeat every 6
    report = gapdiag.audit(tiny.Net(), all_pos, val, config=tiny.FAST, progress=False)
    assert not report.errored, [f.message for f in report.errored]
    skipped = {r.probe: r.reason for r in report.results if r.status == "skipped"}
    assert "the train pairs are all similar (1)" in skipped["protocol_mismatch"]
    assert "the train pairs are all similar (1)" in skipped["memorization"]
    assert report.result("class_gap").status == "ok"  # labels still give identities

    val_items = Items(val.items.inputs, labels=val.items.labels)
    all_neg = Pairs(val_items, np.arange(0, 40), np.arange(0, 40) + 1, np.zeros(40))
    report = gapdiag.audit(tiny.Net(), train, all_neg, config=tiny.FAST, progress=False)
    assert not report.errored, [f.message for f in report.errored]
    assert "the val pairs are all dissimilar (0)" in report.result("shortcut").reason


def test_roles_come_from_positions_not_names():
    rng = np.random.default_rng(0)
    y_train, y_val = np.repeat(np.arange(6), 8), np.repeat(np.arange(5), 6)
    # both named "val" (the default name): the first argument is train, whatever its name says
    a = Split.from_embeddings(rng.normal(size=(48, 4)), y_train, name="val")
    b = Split.from_embeddings(rng.normal(size=(30, 4)), y_val, name="val")
    report = gapdiag.audit(None, a, b, probes=["identity_overlap"], progress=False)
    sizes = report.meta["sizes"]
    assert (sizes["train_items"], sizes["val_items"]) == (48, 30)
    assert (sizes["train_identities"], sizes["val_identities"]) == (6, 5)


# -- configuration and folders -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("seed", -1, "seed must be an integer in \\[0,"),
        ("seed", 1.5, "seed must be an integer"),
        ("n_boot", 10**12, "n_boot must be an integer in \\[50, 20000\\]"),
        ("n_boot", "500", "n_boot must be an integer"),
        ("max_pairs_per_split", 0, "max_pairs_per_split must be an integer in \\[20,"),
        ("threshold", "x", "threshold must be a finite number"),
        ("threshold", float("nan"), "threshold must be a finite number"),
        ("threshold", True, "threshold must be a finite number"),
        ("ci_level", "x", "ci_level must be a number in \\(0.5, 1\\)"),
        ("ci_level", 1.0, "ci_level must be a number in \\(0.5, 1\\)"),
        ("n_way", 1, "n_way must be an integer in \\[2,"),
        ("cache_dir", 3, "cache_dir must be a folder path"),
        ("ignore", 3, "ignore must be a list of finding codes"),
        ("probes", 3, "probes must be a list of names"),
        ("probes", [1], "probes must be a list of names"),
        ("fail_on", ["x"], "fail_on must be 'warn' or 'fail'"),
    ],
)
def test_every_global_option_is_checked_for_type_and_range(tiny, option, value, needle):
    train, val = tiny.splits()
    with pytest.raises(ConfigError, match=needle):
        gapdiag.audit(tiny.Net(), train, val, config={option: value}, progress=False)


def test_the_option_rules_cover_every_global_option():
    from gapdiag.config import GLOBAL_DEFAULTS
    from gapdiag.validation import OPTION_RULES, check_options

    assert set(OPTION_RULES) == set(GLOBAL_DEFAULTS)
    check_options(dict(GLOBAL_DEFAULTS), source="defaults")  # every default passes its own rule


def test_a_cache_dir_that_is_a_file_is_refused_up_front(tiny, tmp_path):
    train, val = tiny.splits()
    f = tmp_path / "cache"
    f.write_text("x")
    with pytest.raises(ConfigError, match="cache_dir is a file; the embedding cache needs a folder"):
        gapdiag.audit(tiny.Net(), train, val, config={"cache_dir": str(f)}, progress=False)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        from gapdiag.validation import check_output_dir

        check_output_dir(f / "sub", name="cache_dir")


def test_episodes_with_ragged_candidates_or_bad_correct_are_named():
    items = Items(torch.rand(8, 3), labels=np.arange(8) % 4)
    with pytest.raises(InputError, match="candidates cannot be read as an array.*same length"):
        Episodes(items, [0, 1], [[1, 2], [3]], [0, 0])
    with pytest.raises(InputError, match="correct must hold integer item indices"):
        Episodes(items, [0], [[1, 2]], ["first"])
