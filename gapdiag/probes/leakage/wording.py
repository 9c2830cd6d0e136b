"""Plain words for attributes and pair features in findings: names, parts, directions."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .attributes import FEATURE_PARTS, describe_attribute

__all__ = ["describe", "plain_name", "part_text", "direction_words", "name_of"]

_DEVIATION_TEXT = (
    "deviation = how far the pair's mean lies from the split's median item, in either direction "
    "(0 = typical, larger = more extreme)"
)


# Short plain names of built-in attributes for messages; others are named as they are.
_PLAIN: dict[str, str] = {
    "center_of_mass_x": "horizontal position",
    "center_of_mass_y": "vertical position",
    "border": "border/background level",
    "saturation": "colour saturation",
    "red": "red channel level",
    "green": "green channel level",
    "blue": "blue channel level",
    "l2_norm": "norm",
    "std": "spread",
}

# Plain words for "higher" / "lower" values of the built-in attributes ("positive pairs are ...").
_MORE_LESS: dict[str, tuple[str, str]] = {
    "brightness": ("brighter", "darker"),
    "redness": ("redder", "less red"),
    "greenness": ("greener", "less green"),
    "blueness": ("bluer", "less blue"),
    "red": ("higher in the red channel", "lower in the red channel"),
    "green": ("higher in the green channel", "lower in the green channel"),
    "blue": ("higher in the blue channel", "lower in the blue channel"),
    "saturation": ("more colourful (saturated)", "greyer (less saturated)"),
    "contrast": ("higher in contrast", "lower in contrast"),
    "sharpness": ("sharper", "blurrier"),
    "center_of_mass_x": ("shifted further right", "shifted further left"),
    "center_of_mass_y": ("shifted further down", "shifted further up"),
    "border": ("brighter at the border (background)", "darker at the border (background)"),
    "mean": ("higher in mean value", "lower in mean value"),
    "std": ("more spread out", "less spread out"),
    "l2_norm": ("larger in norm", "smaller in norm"),
}


# --------------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------------


def describe(attr: str, table: pd.DataFrame | None) -> str:
    """Plain-words description of an attribute column (built-in, registered or the user's)."""
    try:
        return describe_attribute(attr, table=table)
    except Exception:  # an unregistered user column without a table entry: its name is all we know
        return f"user-supplied column {attr!r}"


def plain_name(attr: str) -> str:
    """'horizontal position [center_of_mass_x]' for built-ins with a plainer name, else the name itself."""
    return f"{_PLAIN[attr]} [{attr}]" if attr in _PLAIN else attr


def part_text(part: str) -> str:
    """What a pair-feature part means, in words."""
    return _DEVIATION_TEXT if part == "deviation" else FEATURE_PARTS.get(part, part)


def name_of(row: dict[str, Any]) -> str:
    """The plain name of a feature row's attribute: a catalogue-free column's own words, else :func:`plain_name`."""
    return row.get("plain") or plain_name(row["attribute"])


def direction_words(row: dict[str, Any], split_word: str = "training") -> str:
    """'positive training pairs are redder than negative ones', and the like, for a feature row.

    Catalogue-free rows carry their own words (``row["words"]`` = (more, less), ``row["plain"]``).
    """
    attr, part, higher = row["attribute"], row["part"], row["direction"] == "higher"
    if part in ("level", "pair"):
        default = (f"higher in {name_of(row)}", f"lower in {name_of(row)}")
        more, less = row.get("words") or _MORE_LESS.get(attr, default)
        return f"positive {split_word} pairs are {more if higher else less} than negative ones"
    attr = name_of(row) if row.get("plain") else attr
    if part == "deviation":
        if higher:
            return (
                f"positive {split_word} pairs are more extreme in {attr} than negative ones "
                "(further from the typical value, in either direction)"
            )
        return f"positive {split_word} pairs are closer to the typical {attr} than negative ones"
    if part == "agreement":
        return (
            f"the two items of a positive {split_word} pair agree {'more' if higher else 'less'} in {attr} "
            "than those of a negative pair"
        )
    rates = row.get("same_rate_train") or {}
    extra = ""
    if rates.get("positive") is not None and rates.get("negative") is not None:
        extra = f" ({rates['positive']:.0%} of positive vs {rates['negative']:.0%} of negative pairs)"
    return (
        f"positive {split_word} pairs share the same {attr} {'more' if higher else 'less'} often than "
        f"negative pairs{extra}"
    )
