"""Time gapdiag's retrieval metrics against pytorch-metric-learning's AccuracyCalculator, same run.

Both get the same float32 embeddings (n items, d dims, C classes, Gaussian class centres plus noise) and
compute precision@1, R-precision and MAP@R with self-retrieval (query set = reference set). Timings are the
minimum (and median) over ``--repeats`` interleaved runs: on a shared machine other jobs only ever add
time, so the minimum is the least noisy estimate. Ratios are gapdiag time / PML time: below 1 means
gapdiag is faster. Values must agree to 1e-6 (faiss backend; the torch backend can differ by one
near-tie swap, about 1 / n_queries; its row shows its own difference).

Rows:
  gapdiag point     retrieval_metrics(..., n_boot=0): the same work PML does, plus recall@1/5/10
  gapdiag with CIs  retrieval_metrics(...) with the default bootstrap (500 resamples over queries)
  gapdiag torch     point values with the torch backend instead of faiss (for machines without faiss)

``--long-tail`` draws Zipf-distributed class sizes instead of balanced ones: there the largest class sets
PML's k for every query, while gapdiag searches each query only as deep as its own class needs (values
stay exact).

Usage: python benchmarks/bench_metrics.py [--sizes 2000 10000 30000] [--dim 64] [--classes 100]
                                          [--repeats 5] [--long-tail] [--skip-torch]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gapdiag.metrics import retrieval_metrics
from gapdiag.neighbors import faiss_available

PML_KEYS = {
    "precision_at_1": "precision_at_1",
    "r_precision": "r_precision",
    "map_at_r": "mean_average_precision_at_r",
}


def make_embeddings(
    n: int, dim: int, n_classes: int, seed: int = 0, long_tail: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # balanced: uniform class draws; long tail: class c drawn with probability ~ 1 / (c + 1) (Zipf)
    p = 1.0 / np.arange(1, n_classes + 1) if long_tail else np.ones(n_classes)
    labels = rng.choice(n_classes, size=n, p=p / p.sum())
    centres = rng.standard_normal((n_classes, dim))
    x = centres[labels] + 1.2 * rng.standard_normal((n, dim))
    return x.astype(np.float32), labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 30000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--long-tail", action="store_true", help="Zipf class sizes instead of balanced")
    parser.add_argument("--skip-torch", action="store_true", help="do not time the torch backend")
    args = parser.parse_args(argv)

    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    if not faiss_available():
        print("faiss is not installed: PML's default kNN needs it; install faiss-cpu to run this benchmark.")
        return 2
    calc = AccuracyCalculator(include=tuple(PML_KEYS.values()), k="max_bin_count", device=torch.device("cpu"))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; d={args.dim}, {args.classes} "
        f"{'long-tail' if args.long_tail else 'balanced'} classes; seconds are min (median) of {args.repeats} "
        "interleaved runs; ratio = gapdiag / PML from the minima (< 1: gapdiag faster)"
    )
    runs = {
        "PML": lambda x, y: calc.get_accuracy(x, y),
        "gapdiag point": lambda x, y: retrieval_metrics(x, y, n_boot=0),
        "gapdiag with CIs": lambda x, y: retrieval_metrics(x, y, rng=0),
    }
    if not args.skip_torch:
        runs["gapdiag torch"] = lambda x, y: retrieval_metrics(x, y, n_boot=0, backend="torch")
    warm_x, warm_labels = make_embeddings(500, args.dim, 10)
    for run in runs.values():  # first calls pay one-off imports and thread-pool start-up
        run(warm_x, warm_labels)
    all_equal = True
    for n in args.sizes:
        x, labels = make_embeddings(n, args.dim, args.classes, long_tail=args.long_tail)
        times: dict[str, list[float]] = {name: [] for name in runs}
        results = {}
        for rep in range(args.repeats):
            names = list(runs) if rep % 2 == 0 else list(reversed(runs))  # alternate who runs first
            for name in names:
                start = time.perf_counter()
                results[name] = runs[name](x, labels)
                times[name].append(time.perf_counter() - start)
        theirs = results["PML"]
        ours = results["gapdiag point"]
        sizes = np.bincount(labels)
        print(f"n={n}: class sizes {sizes.min()}..{sizes.max()}, PML k={sizes.max() - 1}")
        pml_best = min(times["PML"])
        for name, ts in times.items():
            line = f"  {name:<17} {min(ts):8.3f} s ({np.median(ts):7.3f})"
            if name != "PML":
                res = results[name]
                diff = max(abs(getattr(res, k).value - theirs[v]) for k, v in PML_KEYS.items())
                if name != "gapdiag torch":
                    all_equal &= diff < 1e-6
                line += f"  ratio {min(ts) / pml_best:5.2f}  max |value diff| {diff:.1e}"
            print(line)
        print(
            "  values: "
            + ", ".join(
                f"{k}={getattr(ours, k).value:.6f} (PML {theirs[v]:.6f})" for k, v in PML_KEYS.items()
            )
        )
    print("values equal to PML within 1e-6:", "yes" if all_equal else "NO")
    return 0 if all_equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
