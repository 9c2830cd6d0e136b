"""Open-set validation: train on digits 0-6, validate on the unseen digits 7, 8 and 9.

The real gap of metric learning: the embedding separates the classes it was trained on better than new
ones. gapdiag reports the class-level gap (GD202) and that validation identities are unseen (GD104).

    python examples/open_set_identities.py [OUT_DIR]
"""

import sys

import gapdiag
from gapdiag.digits import build_scenario


def main(out: str = "gapdiag-report/open_set") -> gapdiag.Report:
    s = build_scenario(partition="classes", val_classes=(7, 8, 9), n_pairs=1500, epochs=6, n_way=3)
    report = gapdiag.audit(s.model, s.train, s.val, progress=False)
    print(report.summary())
    report.save(f"{out}/report.html")
    return report


if __name__ == "__main__":
    main(*sys.argv[1:])
