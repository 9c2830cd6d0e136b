"""A model whose ``distance()`` returns a cosine *similarity*, evaluated with ``min()`` (kind="distance").

Validation accuracy falls below chance although the embedding is good. gapdiag reports GD302 with the
fix; declaring ``kind="similarity"`` (what ``max()`` means) makes it go away.

    python examples/inverted_similarity.py [OUT_DIR]
"""

import sys

import gapdiag
from gapdiag.digits import build_scenario


def main(out: str = "gapdiag-report/inverted_similarity") -> gapdiag.Report:
    s = build_scenario(model_kwargs={"similarity": True}, kind="distance", n_pairs=1500, epochs=4)
    report = gapdiag.audit(s.model, s.train, s.val, progress=False)
    print(report.summary())
    fixed = gapdiag.audit(gapdiag.SiameseModel(s.net, kind="similarity"), s.train, s.val, progress=False)
    print("after declaring kind='similarity':", sorted(fixed.codes(min_severity=gapdiag.Severity.WARN)))
    report.save(f"{out}/report.html")
    return report


if __name__ == "__main__":
    main(*sys.argv[1:])
