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
    net = BNNet(fail_after=1)
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


def test_a_two_input_forward_gets_a_hint_to_name_the_encoder():
    class PairNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 4)

        def forward_one(self, x):
            return self.lin(x.flatten(1))

        def forward(self, x1, x2):
            return torch.linalg.vector_norm(self.forward_one(x1) - self.forward_one(x2), dim=1)

    train, val = _splits()
    with pytest.raises(EncoderError, match="pass encode= the method"):
        gapdiag.audit(PairNet(), train, val, progress=False)
    report = gapdiag.audit(
        SiameseModel(PairNet(), encode="forward_one"),
        train,
        val,
        probes=["protocol_mismatch"],
        progress=False,
    )
    assert report.result("protocol_mismatch").status == "ok"
