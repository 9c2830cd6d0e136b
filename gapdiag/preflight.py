"""Up-front validation: everything an audit needs is checked once, before the embedding pass starts.

:func:`preflight` runs right after ``audit()`` has checked the configuration and built the two splits. It
refuses, with one ``GapdiagError`` naming the split, item, batch or option and what to do:

- a split with fewer than two items;
- inputs that cannot be embedded: object, string or complex dtypes, tensors on the ``meta`` device, rows a
  dataset cannot turn into a tensor (dicts, mixed shapes), NaN or inf;
- a model that cannot embed as configured (weights on ``meta``, a device this host lacks), an encoder that
  raises or returns something other than finite ``(B, d)`` embeddings with ``d >= 1`` on a probe batch of
  each split, embeddings of different widths between splits, and a distance function that raises or does
  not return one finite score per pair on those embeddings;
- a cache folder that is a file or not writable.

The probe batch (the first two items of each split) is embedded once: its rows are handed to the
embedding pass (``SiameseModel.preflight_rows``), which does not embed them again and checks a cached
table against them.

Degenerate data that some probes can still use is not an error: :func:`unsupported` tells
``Probe.run`` which declared requirements the data cannot meet (pairs that are all similar or all
dissimilar, a single identity), and that probe is skipped with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import Config
from .data import Split
from .embed import batch_keys, check_finite_inputs, read_items
from .errors import EncoderError, GapdiagError, InputError
from .model import SiameseModel
from .validation import check_input_dtype, check_output_dir

if TYPE_CHECKING:
    from .context import AuditContext

__all__ = ["preflight", "check_split", "check_model", "unsupported", "PROBE_BATCH"]

#: Items of each split embedded up front to check the encoder and the distance.
PROBE_BATCH = 2


def preflight(model: SiameseModel | None, splits: dict[str, Split], config: Config) -> None:
    """Validate the splits (keyed by role), the model and the output folders before anything is embedded.

    Raises ``InputError``, ``ModelError``/``EncoderError`` or ``OutputError``; returns nothing. Leaves the
    probe batch's embeddings in ``model.preflight_rows`` for the embedding pass.
    """
    for role, split in splits.items():
        check_split(split, role)
    if config.cache_dir is not None:
        check_output_dir(config.cache_dir, name="cache_dir")
    raw = [role for role, s in splits.items() if s.embeddings is None]
    if model is None:
        if raw:
            raise EncoderError(
                f"The {raw[0]} split has raw inputs but no model was given; pass a SiameseModel (or the "
                "torch module) or precomputed embeddings (Split.from_embeddings)."
            )
        return
    check_model(model, splits)


# -- splits -------------------------------------------------------------------------------------------------


def check_split(split: Split, role: str) -> None:
    """One split: at least two items and embeddable inputs.

    A split that supports no evaluation protocol (pairs of one class, a single identity) is not refused
    here: the probes that need one skip with the reason (:func:`unsupported`), the others still run.
    """
    n = len(split.items)
    if n < 2:
        raise InputError(
            f"The {role} split has {n} item; an audit compares items with each other, so each split needs at "
            "least 2 items (and pairs, episodes or labels over them)."
        )
    if split.embeddings is None and split.items.has_inputs:
        _check_inputs(split, role)


def _check_inputs(split: Split, role: str) -> None:
    """The inputs' container: numeric dtype, real device; the first rows readable as one tensor."""
    src = split.items.inputs
    if isinstance(src, torch.Tensor):
        if src.device.type == "meta":
            raise InputError(
                f"The {role} split's inputs are on the 'meta' device and hold no values; load the data first."
            )
        check_input_dtype(src.dtype, where=f"The {role} split's inputs")
    elif isinstance(src, np.ndarray):
        check_input_dtype(src.dtype, where=f"The {role} split's inputs")
    x = read_items(split, np.arange(min(PROBE_BATCH, len(split.items))), role=role)
    check_input_dtype(x.dtype, where=f"The {role} split's inputs")


# -- model --------------------------------------------------------------------------------------------------


def check_model(model: SiameseModel, splits: dict[str, Split]) -> None:
    """Encoder and distance on a probe batch of each split: finite (B, d) embeddings of one width, (B,) scores."""
    model.check_ready()
    model.preflight_rows = {}
    rows: list[np.ndarray] = []
    widths: dict[str, int] = {}
    raw_batches: list[tuple[torch.Tensor, np.ndarray]] = []
    with model.frozen("eval") as module:
        for role, split in splits.items():
            idx = np.arange(min(PROBE_BATCH, len(split.items)))
            if split.embeddings is not None:
                emb = split.embeddings[idx]
            else:
                x = read_items(split, idx, role=role)
                check_finite_inputs(x, idx, role)
                keys = batch_keys(x)
                new = [i for i, k in enumerate(keys) if k not in model.preflight_rows]  # each item once
                if new:
                    emb = model.embed_batch(
                        module, x[new], where=f"the preflight batch of split {role!r} (items 0..{idx[-1]})"
                    )
                    model.preflight_rows.update(zip([keys[i] for i in new], emb))
                emb = np.stack([model.preflight_rows[k] for k in keys])
                raw_batches.append((x, emb))
            widths[role] = int(emb.shape[1])
            rows.append(emb)
        shapes = {(tuple(x.shape[1:]), e.shape[1]) for x, e in raw_batches}
        if len(shapes) == 1:  # one input shape, one width (other widths are refused below)
            model.check_pair_forward(
                module,
                torch.cat([x for x, _ in raw_batches]),
                np.concatenate([e for _, e in raw_batches]),
            )
    if len(set(widths.values())) > 1:
        shown = ", ".join(f"{role} {d}" for role, d in widths.items())
        raise EncoderError(
            f"The splits' embeddings have different widths ({shown}); both splits must be embedded by the same "
            "encoder into the same space."
        )
    a = np.concatenate(rows).astype(np.float32)
    model.raw_scores(a, np.roll(a, 1, axis=0))  # raises ModelError naming what the distance returned


# -- per-probe support ---------------------------------------------------------------------------------------


def unsupported(ctx: AuditContext, requires: Any) -> str:
    """'' when the data meets every declared requirement of a probe, else the reason a person reads.

    ``ctx.missing`` tells whether a requirement is present at all; this tells whether what is present can be
    used: pairs (given or derived) need both similar and dissimilar pairs, identities need at least two.
    """
    reasons = []
    for req in sorted(requires):
        split, _, what = req.partition("_")
        if split not in ctx.splits:
            continue
        if what in ("pairs", "pairs_any"):
            try:
                pairs = ctx.splits[split].pairs if what == "pairs" else ctx.pairs(split)
            except GapdiagError as exc:
                reasons.append(f"no usable {split} pairs ({exc})")
                continue
            if pairs is not None and np.unique(pairs.label).size < 2:
                kind = "similar (1)" if pairs.label[0] == 1 else "dissimilar (0)"
                reasons.append(f"the {split} pairs are all {kind}; it compares similar with dissimilar pairs")
        elif what in ("identities", "labels"):
            ids = ctx.identities(split) if what == "identities" else ctx.splits[split].items.labels
            if ids is not None and np.unique(ids).size < 2:
                reasons.append(f"the {split} items hold a single identity; it needs at least two")
    return "; ".join(reasons)
