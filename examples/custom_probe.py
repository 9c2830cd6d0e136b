"""Adding your own probe: one class, one decorator (see docs/writing-a-probe.md).

python examples/custom_probe.py
"""

import numpy as np

import gapdiag
from gapdiag import Measurement, Probe, Severity, register_probe
from gapdiag.digits import build_scenario
from gapdiag.stats import bootstrap_mean


@register_probe
class ScoreSpread(Probe):
    """XS001: validation pair scores spread much less than training pair scores.

    Measures the standard deviation of oriented pair scores per split and their ratio val/train (1 = same
    spread), with a bootstrap CI of the val mean score for context. Emits XS001 (warn) when the ratio is
    below ``min_ratio``.
    """

    name = "score_spread"
    family = "custom"
    codes = ("XS001",)
    requires = frozenset({"train_pairs_any", "val_pairs_any"})
    defaults = {"min_ratio": 0.5}

    def _measure(self, ctx):
        sd = {s: float(np.std(ctx.pair_scores(s))) for s in ("train", "val")}
        mean_val = bootstrap_mean(ctx.pair_scores("val"), rng=ctx.rng(self.name))
        return Measurement(metrics={"sd": sd, "ratio": sd["val"] / sd["train"], "val_mean_score": mean_val})

    def _judge(self, m):
        ratio = m.metrics["ratio"]
        if ratio < self.params["min_ratio"]:
            msg = f"validation scores spread {ratio:.2f} times as much as training scores (threshold {self.params['min_ratio']})"
            return [self.finding("XS001", Severity.WARN, msg, title="Validation scores collapse")]
        return []


def main() -> gapdiag.Report:
    s = build_scenario(n_pairs=1000, epochs=3, val_protocol="pairs")
    report = gapdiag.audit(s.model, s.train, s.val, probes=["score_spread"], progress=False)
    print(report.summary())
    print("spread ratio val/train:", round(report.result("score_spread").metrics["ratio"], 3))
    return report


if __name__ == "__main__":
    main()
