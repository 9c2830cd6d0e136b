"""A target for the CLI: ``gapdiag audit examples.ci_target:make --fail-on warn --format junit,json``.

The function returns ``(model, train, val)``; in your project it would load your checkpoint with
``torch.load(path, weights_only=True)`` and your loaders. Here it trains a small healthy model on the
bundled digits, validated under the same (pairwise) protocol as training.
"""

from gapdiag.digits import build_scenario


def make():
    s = build_scenario(n_pairs=1500, epochs=4, val_protocol="pairs")
    return s.model, s.train, s.val
