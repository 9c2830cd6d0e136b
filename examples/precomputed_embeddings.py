"""Audit embeddings computed by any framework (no model): ``Split.from_embeddings``.

Probes that need raw inputs or the model (attribute shortcuts, counterfactuals, mode check) are skipped
with the reason; the protocol, memorization and embedding-space probes run. The same files work with
``gapdiag audit-embeddings train.npz val.npz``.

    python examples/precomputed_embeddings.py [OUT_DIR]
"""

import sys
from pathlib import Path

import numpy as np

import gapdiag
from gapdiag import Split


def main(out: str = "gapdiag-report/precomputed") -> gapdiag.Report:
    rng = np.random.default_rng(0)
    n_classes, per_class, dim = 20, 15, 32
    centres = rng.normal(size=(n_classes, dim)) * 2.0
    labels = np.repeat(np.arange(n_classes), per_class)
    train_emb = centres[labels] + rng.normal(size=(labels.size, dim))
    val_emb = centres[labels] + 1.8 * rng.normal(size=(labels.size, dim))  # noisier on validation
    Path(out).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out) / "train.npz", embeddings=train_emb.astype(np.float32), labels=labels)
    np.savez(Path(out) / "val.npz", embeddings=val_emb.astype(np.float32), labels=labels)
    # without pairs or episodes, gapdiag generates them from the labels (seeded)
    train = Split.from_embeddings(train_emb, labels, name="train")
    val = Split.from_embeddings(val_emb, labels, name="val")
    report = gapdiag.audit(None, train, val, progress=False)
    print(report.summary())
    report.save(f"{out}/report.html")
    return report


if __name__ == "__main__":
    main(*sys.argv[1:])
