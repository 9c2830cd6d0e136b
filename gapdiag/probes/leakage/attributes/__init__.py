"""Per-item nuisance attributes, their registry, and the interventions that transplant them.

Attributes
----------
An *attribute* is a property of a single item that has nothing to do with its identity: how bright
it is, how red, how sharp, where its mass sits. Each registered attribute is a function of one batch,
``fn(batch) -> ndarray (B,)`` or ``fn(batch) -> {column: ndarray (B,)}``; :func:`compute_attributes`
evaluates every applicable attribute once per item, batch by batch, into one table with a row per
item. Users add their own with :func:`register_attribute` and their own known columns (scanner id,
camera...) with :func:`merge_attributes`.

Which columns are categorical
    A column is *categorical* when its dtype is ``category``, ``bool``, ``object`` or a string dtype,
    or when it holds integers with at most ``CATEGORICAL_MAX_INTEGER_LEVELS`` (20) distinct values
    (scanner 0..3 is a category, not a quantity). Float columns are always numeric, and so are
    integer columns with more distinct values. :func:`merge_attributes` can force either kind, and
    stores the result with an unambiguous dtype (``category`` or ``float64``).

Pair features
    :func:`pair_features` turns the per-item table into per-pair features. For a numeric attribute
    ``a``: ``a:level`` = the mean of the two items (is the pair, as a whole, red?) and
    ``a:agreement`` = ``-|a_left - a_right|`` (0 for identical items, more negative for less alike
    ones, so *higher = more alike*). For a categorical attribute: ``a:same`` = 1.0 when both items
    have the same value, else 0.0; a "level" of a category has no meaning and is not produced.
    Missing values give NaN features.

Interventions
-------------
An *intervention* moves attributes of an input on purpose: add a colour cast, shift the image by two
pixels, blur it. GD102 uses them as counterfactuals: "positive training pairs are redder; transplant
that redness onto validation pairs and see whether the model's decisions flip". So every built-in
intervention has parameters that can be *estimated from the data*:
:func:`fit_intervention` compares a ``source`` batch that shows the artifact (the items of positive
training pairs) with a ``reference`` batch that lacks it (validation items) and returns the
parameters that move the reference's attribute to the source's level; :func:`apply_intervention`
applies them. ``strength`` scales the effect: 0 is the identity, 1 the estimated (or default)
amount, 2 twice that. Interventions always return a new tensor and never modify their input, and
they do not clip values to the input's range (so the attribute moves by exactly the fitted amount).

=================  ========================================================================
intervention       attributes it moves (:func:`intervention_for_attribute` reads this)
=================  ========================================================================
``tint``           redness, greenness, blueness, saturation, red, green, blue, channel_0..3
``channel_shift``  redness, greenness, blueness, saturation, red, green, blue, channel_0..3
``brightness``     brightness, border, mean, min, max
``contrast``       contrast, std
``translation``    center_of_mass_x, center_of_mass_y
``blur``           sharpness
``scale``          l2_norm
=================  ========================================================================

The catalogue-free detectors (:mod:`.generic`: region statistics of images, segments and frequency bands
of 1-D signals, length and padding of token sequences, the features of feature rows) need no name for the
artifact; each of their columns carries the intervention that moves it with the parameters bound to its
place (``region_transplant``, ``band_transplant``, ``sequence_length``, ``feature_value``,
fitted to one source item and applied side by side, see ``InterventionSpec.per_side``).

The package: ``registry`` (attribute specs and input kinds), ``builtin`` (the built-in attributes),
``generic`` (the catalogue-free detectors), ``table`` (the per-item table, column kinds, user columns),
``pair_features``, ``interventions`` (their registry, fit and apply), ``builtin_interventions`` and
``generic_interventions``. Importing the package registers the built-ins.
"""

from __future__ import annotations

from ....modality import is_image_like
from . import builtin, builtin_interventions, generic_interventions  # noqa: F401  (registers the built-ins)
from .interventions import (
    InterventionSpec,
    apply_intervention,
    describe_intervention,
    fit_intervention,
    get_intervention,
    intervention_for_attribute,
    list_interventions,
    register_intervention,
    unregister_intervention,
)
from .pair_features import pair_features
from .registry import (
    CATEGORICAL_MAX_INTEGER_LEVELS,
    FEATURE_PARTS,
    AttributeSpec,
    get_attribute,
    list_attributes,
    register_attribute,
    unregister_attribute,
)
from .table import (
    attribute_kind,
    column_kind,
    compute_attributes,
    compute_attributes_from_tensor,
    describe_attribute,
    merge_attributes,
    split_feature_name,
)

__all__ = [
    "AttributeSpec",
    "InterventionSpec",
    "CATEGORICAL_MAX_INTEGER_LEVELS",
    "FEATURE_PARTS",
    "register_attribute",
    "unregister_attribute",
    "get_attribute",
    "list_attributes",
    "is_image_like",
    "compute_attributes",
    "compute_attributes_from_tensor",
    "merge_attributes",
    "column_kind",
    "attribute_kind",
    "describe_attribute",
    "pair_features",
    "split_feature_name",
    "register_intervention",
    "unregister_intervention",
    "get_intervention",
    "list_interventions",
    "describe_intervention",
    "fit_intervention",
    "apply_intervention",
    "intervention_for_attribute",
]
