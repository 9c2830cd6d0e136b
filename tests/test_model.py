import json

import numpy as np
import pytest
import torch
from torch import nn

import gapdiag
from gapdiag import EncoderError, Items, ModelError, SiameseModel, Split
from gapdiag.data import make_episodes, make_pairs
from gapdiag.model import state_fingerprint


class BNNet(nn.Module):
    """BatchNorm + Dropout: the modules whose state an audit could disturb."""

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 4)
        )
        self.calls = 0
        self.fail_after = fail_after

    def encode(self, x):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("boom")
        return self.body(x)


def _splits(n=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    train = Items(torch.rand(n, 1, 4, 4, generator=g), labels=np.arange(n) % 8)
    val = Items(torch.rand(n, 1, 4, 4, generator=g), labels=np.arange(n) % 8)
    return (
        Split("train", train, pairs=make_pairs(train, n_pairs=200)),
        Split("val", val, episodes=make_episodes(val, n_way=5, n_episodes=60)),
    )


def _flags(module):
    return [m.training for m in module.modules()]


def test_audit_leaves_the_model_untouched():
    net = BNNet()
    net.train()  # the user left it in train mode: BatchNorm would update if we ran in train mode
    net.body[2].training = False  # and a mixed state that must come back exactly
    before_hash, before_flags = state_fingerprint(net), _flags(net)
    params_before = [p.requires_grad for p in net.parameters()]
    train, val = _splits()
    gapdiag.audit(SiameseModel(net), train, val, progress=False)
    assert state_fingerprint(net) == before_hash
    assert _flags(net) == before_flags
    assert [p.requires_grad for p in net.parameters()] == params_before
    assert all(p.grad is None for p in net.parameters())


def test_model_untouched_when_the_encoder_raises_half_way():
    net = BNNet(fail_after=3)  # the preflight batches of train and val, then batch 0 of the pass
    net.train()
    before_hash, before_flags = state_fingerprint(net), _flags(net)
    train, val = _splits()
    with pytest.raises(EncoderError, match="batch 1 of split 'train'") as info:
        gapdiag.audit(SiameseModel(net, batch_size=32), train, val, progress=False)
    assert "boom" in str(info.value)
    assert state_fingerprint(net) == before_hash
    assert _flags(net) == before_flags


def test_encoder_wrong_shape_and_nan_are_clear_errors():
    class Bad(nn.Module):
        def __init__(self, out):
            super().__init__()
            self.lin = nn.Linear(1, 1)
            self.out = out

        def forward(self, x):
            return self.out(x)

    train, val = _splits()
    with pytest.raises(EncoderError, match="expected \\(B, d\\)"):
        gapdiag.audit(Bad(lambda x: torch.zeros(3)), train, val, progress=False)
    with pytest.raises(EncoderError, match="NaN"):
        gapdiag.audit(Bad(lambda x: torch.full((x.shape[0], 2), float("nan"))), train, val, progress=False)


def test_model_arguments_are_validated():
    with pytest.raises(ModelError, match="torch.nn.Module"):
        SiameseModel(object())
    with pytest.raises(ModelError, match="no method 'embed'"):
        SiameseModel(nn.Linear(2, 2), encode="embed")
    with pytest.raises(gapdiag.InputError, match="kind"):
        SiameseModel(nn.Linear(2, 2), kind="cosine")


def test_callable_encode_and_distance_are_used():
    lin = nn.Linear(16, 3)
    seen = {}

    def dist(a, b):
        seen["called"] = True
        return (a - b).abs().sum(dim=1)

    m = SiameseModel(lin, encode=lambda x: lin(x.flatten(1)), distance=dist)
    emb = m.embed(torch.rand(5, 1, 4, 4))
    assert emb.shape == (5, 3)
    scores = m.raw_scores(emb[:2], emb[2:4])
    assert seen["called"] and scores.shape == (2,)


def test_nan_inputs_are_named_before_the_encoder_runs():
    train, val = _splits()
    bad = val.items.inputs.clone()
    bad[17, 0, 1, 2] = float("nan")
    val_bad = Split("val", Items(bad, labels=val.items.labels), episodes=None, pairs=None)
    with pytest.raises(gapdiag.InputError, match="Item 17 of split 'val' contains NaN"):
        gapdiag.audit(SiameseModel(BNNet()), train, val_bad, progress=False)


def test_a_two_input_forward_gets_a_hint_that_names_its_single_input_methods():
    class PairNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 4)

        def features(self, x):  # a single-input method under a name no idiom uses
            return self.lin(x.flatten(1))

        def forward(self, x1, x2):
            return torch.linalg.vector_norm(self.features(x1) - self.features(x2), dim=1)

    train, val = _splits()
    with pytest.raises(
        EncoderError, match="pass encode= the method.*encode='features'.*take one input: features"
    ):
        gapdiag.audit(PairNet(), train, val, progress=False)
    report = gapdiag.audit(
        SiameseModel(PairNet(), encode="features"), train, val, probes=["protocol_mismatch"], progress=False
    )
    assert report.result("protocol_mismatch").status == "ok"
    assert report.meta["model"]["encode"] == "features"


@pytest.mark.parametrize("idiom", ["forward_once", "get_embedding"])
def test_a_pair_forward_with_a_common_single_input_method_is_embedded_through_it(idiom):
    """The tutorials' ``forward_once`` and siamese-triplet's ``get_embedding``: no encode= needed."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 4)

        def forward(self, x1, x2):
            return getattr(self, idiom)(x1), getattr(self, idiom)(x2)

    setattr(Net, idiom, lambda self, x: self.lin(x.flatten(1)))
    train, val = _splits()
    net = Net()
    report = gapdiag.audit(net, train, val, probes=["protocol_mismatch"], progress=False)
    assert report.result("protocol_mismatch").status == "ok"
    assert report.meta["model"]["encode"] == idiom
    x = torch.randn(3, 16)
    assert np.allclose(SiameseModel(net).embed(x), net.lin(x).detach().numpy(), atol=1e-6)


class BufferWriter(nn.Module):
    """An encoder that writes to its own state on every call: a counter buffer, a running mean updated in
    place through ``.data``, a replaced buffer, a parameter nudged in place, and a buffer added on the fly."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 4)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("running", torch.zeros(4))
        self.register_buffer("last", torch.zeros(4))

    def encode(self, x):
        out = self.lin(x.flatten(1))
        self.calls += 1
        self.running.data.mul_(0.9).add_(out.mean(0))
        self.last = out[0].detach().clone()  # replaces the registered tensor object
        self.lin.bias.data.add_(1e-3)  # a parameter written in place
        self.register_buffer("scratch", torch.ones(1))
        return out


def test_an_encoder_that_writes_to_its_state_leaves_no_trace():
    net = BufferWriter()
    net.lin.weight.grad = torch.full_like(net.lin.weight, 0.5)  # a gradient the user left there
    grad, last, bias = net.lin.weight.grad, net.last, net.lin.bias
    before = state_fingerprint(net)
    train, val = _splits()
    gapdiag.audit(SiameseModel(net), train, val, probes=["protocol_mismatch"], progress=False)
    assert state_fingerprint(net) == before  # every parameter and buffer bit for bit
    assert net.last is last and net.lin.bias is bias  # the very same tensor objects
    assert net.lin.weight.grad is grad and torch.equal(grad, torch.full_like(grad, 0.5))
    assert "scratch" not in dict(net.named_buffers())
    assert all(p.requires_grad for p in net.parameters())


def test_an_encoder_that_raises_after_writing_leaves_no_trace():
    class WriteThenFail(BufferWriter):
        def encode(self, x):
            super().encode(x)
            raise RuntimeError("after the write")

    net = WriteThenFail()
    before = state_fingerprint(net)
    with pytest.raises(EncoderError, match="after the write"):
        gapdiag.audit(SiameseModel(net), *_splits(), progress=False)
    assert state_fingerprint(net) == before and "scratch" not in dict(net.named_buffers())


def test_an_audit_leaves_the_global_random_streams_untouched(tiny):
    """numpy's, Python's and torch's global streams are where the caller left them after a whole audit,
    with every probe (split_shift's liblinear used to draw from numpy's global stream)."""
    import random

    train, val = tiny.splits()
    net = tiny.Net()
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.random.get_rng_state()
    report = gapdiag.audit(net, train, val, config=tiny.FAST, progress=False)
    assert not report.errored
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()  # to_dict is JSON-ready
    after = np.random.get_state()
    assert np.array_equal(np_state[1], after[1]) and np_state[2] == after[2]
    assert random.getstate() == py_state
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_an_audit_is_deterministic_whatever_the_global_random_state(tiny):
    train, val = tiny.splits()
    texts = []
    for seed in (1, 2):
        np.random.seed(seed)
        torch.manual_seed(seed)
        report = gapdiag.audit(tiny.Net(), train, val, probes=["split_shift"], progress=False)
        texts.append(report.render("json"))
    assert texts[0] == texts[1]


def test_state_fingerprint_covers_extra_state():
    class WithExtra(nn.Module):
        def __init__(self, tag):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.tag = tag

        def get_extra_state(self):
            return {"tag": self.tag, "table": torch.arange(3)}

        def set_extra_state(self, state):
            self.tag = state["tag"]

    a, b = WithExtra("a"), WithExtra("b")
    b.load_state_dict(a.state_dict() | {"_extra_state": {"tag": "b", "table": torch.arange(3)}})
    assert state_fingerprint(a) != state_fingerprint(b)


class _PairScoringNet(nn.Module):
    """forward(x1, x2) scores the pair itself, with no distance method: the Koch-style Siamese network."""

    def __init__(self, score: str):
        super().__init__()
        self.score = score
        self.lin = nn.Linear(16, 4)
        self.head = nn.Linear(4, 1)

    def forward_once(self, x):
        return self.lin(x.flatten(1))

    def forward(self, x1, x2):
        a, b = self.forward_once(x1), self.forward_once(x2)
        if self.score == "cosine":
            return torch.nn.functional.cosine_similarity(a, b)
        if self.score == "euclidean":
            return torch.nn.functional.pairwise_distance(a, b)
        if self.score == "squared":  # the contrastive loss's own quantity
            return ((a - b) ** 2).sum(1)
        if self.score == "embeddings":
            return a, b
        return self.head(torch.abs(a - b))  # a learned head: one logit per pair, (B, 1)


def test_a_pair_forward_that_scores_with_a_learned_head_asks_for_the_distance():
    train, val = _splits()
    with pytest.raises(gapdiag.ModelError, match=r"learned head.*Pass it as distance="):
        gapdiag.audit(SiameseModel(_PairScoringNet("head"), kind="similarity"), train, val, progress=False)
    net = _PairScoringNet("head")
    report = gapdiag.audit(
        SiameseModel(net, distance=lambda a, b: net.head(torch.abs(a - b)).squeeze(1), kind="similarity"),
        train,
        val,
        probes=["protocol_mismatch"],
        progress=False,
    )
    assert report.meta["model"]["score"] == "distance="


@pytest.mark.parametrize(
    ("score", "kind", "source"),
    [
        ("cosine", "similarity", "forward(x1, x2) = cosine similarity of the embeddings"),
        ("euclidean", "distance", "forward(x1, x2) = euclidean distance of the embeddings"),
        ("squared", "distance", "forward(x1, x2) = squared euclidean distance of the embeddings"),
        ("embeddings", "distance", "euclidean distance of the embeddings (default)"),
    ],
)
def test_a_pair_forward_that_returns_a_known_score_is_scored_with_it(score, kind, source):
    """A cosine forward read as a similarity must not be scored as a euclidean distance (a false GD302)."""
    train, val = _splits()
    model = SiameseModel(_PairScoringNet(score), kind=kind)
    report = gapdiag.audit(model, train, val, probes=["score_direction"], progress=False)
    assert report.meta["model"]["score"] == source
    assert report.meta["model"]["encode"] == "forward_once"
    a, b = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32)
    expected = {
        "cosine": torch.nn.functional.cosine_similarity,
        "euclidean": torch.nn.functional.pairwise_distance,
        "squared": lambda a, b: ((a - b) ** 2).sum(1),
    }
    if score in expected:
        want = expected[score](torch.from_numpy(a), torch.from_numpy(b)).numpy()
        assert np.allclose(model.raw_scores(a, b), want, atol=1e-5)


def test_a_data_parallel_wrapper_is_looked_through():
    """A checkpoint loaded into nn.DataParallel: the wrapped network's encode is used, the wrapper untouched."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 4)

        def encode(self, x):
            return self.lin(x.flatten(1))

        def forward(self, x1, x2):
            return torch.nn.functional.pairwise_distance(self.encode(x1), self.encode(x2))

    wrapped = nn.DataParallel(Net())
    train, val = _splits()
    report = gapdiag.audit(wrapped, train, val, probes=["protocol_mismatch"], progress=False)
    assert report.result("protocol_mismatch").status == "ok"
    assert report.meta["model"] == {
        "class": "Net",
        "kind": "distance",
        "encode": "encode",
        "score": "forward(x1, x2) = euclidean distance of the embeddings",
    }
