"""The report's colours: Okabe & Ito's colour-blind-safe palette, in one place for figures, SVG and HTML.

Okabe, M. and Ito, K. (2008), "Color Universal Design": eight colours that people with the common forms of
colour blindness still tell apart. Series use them in this order; splits and waterfall bars use fixed ones.
"""

from __future__ import annotations

__all__ = ["OKABE_ITO", "SERIES", "SPLIT", "IDENTITY", "DROP", "GAIN", "STATE"]

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}

#: Series of a chart, in order (yellow last: it is the hardest to see on white).
SERIES = [
    OKABE_ITO[c] for c in ("blue", "orange", "bluish green", "vermillion", "reddish purple", "sky blue")
]
SERIES += [OKABE_ITO["black"], OKABE_ITO["yellow"]]

#: Train and validation, wherever a figure shows both.
SPLIT = {"train": OKABE_ITO["blue"], "val": OKABE_ITO["orange"]}

#: Identities on the embedding map: Okabe-Ito, then Paul Tol's "muted" scheme (also colour-blind safe) for
#: the ninth identity on; the hover text names every point, so colours only need to separate neighbours.
IDENTITY = SERIES[:6] + [
    "#332288",
    "#117733",
    "#882255",
    "#999933",
    "#AA4499",
    "#44AA99",
    "#DDCC77",
    "#CC6677",
]

#: The waterfall: measured states, drops and gains.
STATE, DROP, GAIN = "#4a5568", OKABE_ITO["vermillion"], OKABE_ITO["bluish green"]
