"""The seed's situation: a colour/brightness distortion shared by both images of positive training pairs.

Train pairwise accuracy is near 1, 10-way validation accuracy is far lower. gapdiag separates the protocol
part of that drop from the real gap and names the shortcut (GD101) and the model's reliance on it (GD102).

    python examples/colour_artifact.py [OUT_DIR]
"""

import sys

import gapdiag
from gapdiag.demo import build_demo


def main(out: str = "gapdiag-report/colour_artifact") -> gapdiag.Report:
    scenario = build_demo(seed=0)
    print(
        f"train pairwise accuracy {scenario.train_pair_accuracy:.2f}, val 10-way accuracy {scenario.val_nway_accuracy:.2f}"
    )
    report = gapdiag.audit(scenario.model, scenario.train, scenario.val, progress=False)
    print(report.summary())
    print("written:", report.save(f"{out}/report.html"))
    return report


if __name__ == "__main__":
    main(*sys.argv[1:])
