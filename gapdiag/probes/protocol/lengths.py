"""Sequence lengths of token-id items per split, for the preprocessing probe (GD305).

Token ids are categories: their mean and spread say nothing about preprocessing. What a tokenizer set up
differently changes is the length: a validation loader that truncates at another ``max_length``, or pads
with another id, gives sequences that are never as long as the training ones (or longer than any of them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...stats import Estimate, bootstrap_mean, wilson

__all__ = ["length_check", "capped_side", "length_message"]


def length_check(
    train: np.ndarray, val: np.ndarray, *, rng: np.random.Generator, n_boot: int, level: float
) -> dict:
    """Lengths (tokens other than the pad id) of sampled training and validation items, (n_t,) and (n_v,).

    Per split: the mean length (bootstrap CI), the longest, and for each split the share of the *other*
    split's items longer than its longest (``beyond``, Wilson CI) with the share of its own items at exactly
    its longest (``at_longest``): a cut at that length piles items there.
    """
    out: dict[str, Any] = {}
    for name, own, other in (("train", train, val), ("val", val, train)):
        longest = int(own.max())
        out[name] = {
            "n_items": int(own.size),
            "mean": bootstrap_mean(own.astype(np.float64), rng=rng, n_boot=n_boot, level=level),
            "longest": longest,
            "at_longest": wilson(int((own == longest).sum()), own.size, level),
            "other_beyond": wilson(int((other > longest).sum()), other.size, level),
            "other_at_or_beyond": float(np.mean(other >= longest)),
        }
    return out


def capped_side(lengths: dict[str, Any], min_beyond: float) -> str | None:
    """The split whose longest sequence a real share of the other split's sequences exceeds: at least
    ``min_beyond`` of them, CI above half of it (a few longer items are sampling); None when neither is."""
    for name in ("val", "train"):
        beyond: Estimate = lengths[name]["other_beyond"]
        if beyond.value >= min_beyond and beyond.low > min_beyond / 2:
            return name
    return None


def length_message(lengths: dict[str, Any], capped: str, level_words: str) -> str:
    """Plain words for a GD305 on token ids: which split is cut where, and how the lengths compare."""
    other = "train" if capped == "val" else "val"
    words = {"train": "training", "val": "validation"}
    c, o = lengths[capped], lengths[other]
    beyond, at = c["other_beyond"], c["at_longest"]
    head = (
        f"Validation sequences are never longer than {c['longest']} tokens, while {beyond.value:.0%} "
        f"[{beyond.low:.0%}, {beyond.high:.0%}] of training sequences are"
        if capped == "val"
        else f"{beyond.value:.0%} [{beyond.low:.0%}, {beyond.high:.0%}] of validation sequences are longer than "
        f"any training sequence ({c['longest']} tokens): the model never saw such lengths"
    )
    return (
        f"{head}. {at.value:.0%} of {words[capped]} sequences have exactly {c['longest']} tokens, against "
        f"{c['other_at_or_beyond']:.0%} of {words[other]} sequences at that length or more (a cut piles them "
        f"there); mean length {c['mean']:.1f} vs {o['mean']:.1f} tokens ({level_words}). A tokenizer with "
        f"another max_length or truncation, or another pad id, in one of the loaders gives exactly this."
    )
