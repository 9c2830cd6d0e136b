"""What kind of input a batch holds (images, token ids, signals, feature rows): one rule for every module."""

from __future__ import annotations

import torch

from .errors import InputError

__all__ = ["INPUT_KINDS", "TABULAR_MAX_FEATURES", "input_kind", "is_image_like", "kind_text"]

#: Floating-point rows (B, D) with at most this many columns are read as tabular feature rows, longer
#: rows as 1-D signals. Declare the kind (``[probes.shortcut] input_kind``) where this guess is wrong.
TABULAR_MAX_FEATURES = 64

#: Every kind :func:`input_kind` can return, with what it means.
INPUT_KINDS: dict[str, str] = {
    "image": "images (B, C, H, W) with C in 1..4 and H, W >= 4, or (B, H, W) read as one channel",
    "sequence": "token-id sequences (B, L) of an integer dtype, padded with a pad id",
    "signal": (
        f"1-D signals: (B, L) floating point with L > {TABULAR_MAX_FEATURES}, or (B, C, L) with C < 4 channels"
    ),
    "tabular": f"feature rows (B, D) floating point or bool with D <= {TABULAR_MAX_FEATURES} columns",
    "other": "anything else (scalars per item, 5-D video...): only generic statistics apply",
}


def is_image_like(x: torch.Tensor) -> bool:
    """Whether a batch is treated as images.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, H, W) or (B, H, W) or any (B, ...)
        A batch of items.

    Returns
    -------
    bool
        True for shape (B, C, H, W) with C in 1..4 and H, W >= 4, or (B, H, W) with H, W >= 4 (read
        as one channel). Any real dtype counts; attributes convert to floating point.
    """
    if x.ndim == 3:
        return x.shape[1] >= 4 and x.shape[2] >= 4
    if x.ndim == 4:
        return 1 <= x.shape[1] <= 4 and x.shape[2] >= 4 and x.shape[3] >= 4
    return False


def _is_integer(x: torch.Tensor) -> bool:
    return not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)


def input_kind(x: torch.Tensor, *, declared: str = "auto") -> str:
    """The kind of input a batch holds: one of :data:`INPUT_KINDS`.

    Parameters
    ----------
    x : torch.Tensor, shape (B, ...)
        A batch of items in the user's dtype (integer token ids must not have been converted to float yet).
    declared : str, default "auto"
        ``"auto"`` applies the rule below; a kind name is checked against the batch's shape and returned.

    Returns
    -------
    str
        The first rule that matches: ``image`` (:func:`is_image_like`); ``sequence`` for (B, L) of an
        integer dtype; ``signal`` for floating-point (B, L) with L > :data:`TABULAR_MAX_FEATURES` or
        (B, C, L) that is not image-like; ``tabular`` for floating-point or bool (B, D) with
        D <= :data:`TABULAR_MAX_FEATURES`; ``other`` otherwise.

    Raises
    ------
    InputError
        When ``declared`` is not a kind, or names one the batch's shape cannot be (images need
        (B, C, H, W) or (B, H, W); sequences, tabular rows (B, L); signals (B, L) or (B, C, L)).
    """
    if declared != "auto":
        return _check_declared(x, declared)
    if is_image_like(x):
        return "image"
    if x.ndim == 2:
        if _is_integer(x):
            return "sequence"
        return "signal" if x.shape[1] > TABULAR_MAX_FEATURES else "tabular"
    if x.ndim == 3 and x.shape[1] < 4 and x.shape[2] >= 2:
        return "signal"
    return "other"


def _check_declared(x: torch.Tensor, declared: str) -> str:
    allowed = {
        "image": is_image_like(x),
        "sequence": x.ndim == 2,
        "tabular": x.ndim == 2,
        "signal": x.ndim in (2, 3),
        "other": True,
    }
    if declared not in allowed:
        raise InputError(
            f"input_kind {declared!r} is not a kind; use 'auto' or one of {', '.join(INPUT_KINDS)}."
        )
    if not allowed[declared]:
        raise InputError(
            f"input_kind is declared {declared!r} but the items have shape {tuple(x.shape[1:])}; that kind "
            f"needs {INPUT_KINDS[declared]}. Declare another kind or 'auto'."
        )
    return declared


def kind_text(kind: str) -> str:
    """What an input kind means, in words (for messages)."""
    return INPUT_KINDS.get(kind, kind)
