"""gapdiag's benchmarks: every figure as a ratio against its peer or floor measured in the same run.

    python benchmarks/run.py --quick          # about 5 minutes on 2 idle cores (10 on a loaded machine)
    python benchmarks/run.py                  # the full run of docs/performance.md (about 45 minutes)
    python benchmarks/run.py --only audit retrieval --markdown table.md

Rows (each case runs in a fresh process, so that peak memory is its own; see ``cases.py``):

- retrieval: ``gapdiag.metrics.retrieval_metrics`` against pytorch-metric-learning's
  ``AccuracyCalculator`` (precision@1, R-precision, MAP@R, ``k="max_bin_count"``) on the same Gaussian
  embeddings, 100 classes, d = 128: time, peak memory and the largest difference of the three values
  (must be below 1e-6). Quick: 20k items; full: 20k and 100k, and 20k with Zipf class sizes.
- kNN backends: the torch and faiss backends of ``gapdiag.neighbors.knn`` (why ``"auto"`` is torch).
- n-way: the n-way evaluation of validation episodes as the user's write-up loops over candidates
  (encode each candidate, ``index(min(...))``) against gapdiag's (each unique item embedded once, all
  episodes scored at once); the accuracies must agree.
- audit: the whole default audit (every probe) against one plain embedding pass of the same model over
  the same items (3x32x32 images, 25 per identity, validation identities unseen). The process first
  audits a small split, so one-off costs (imports, umap-learn's compiled code, thread pools) are shown
  on their own row. Quick: 10k and 25k items (the target); full: also 50k (the audit's own work is
  a fixed cost, so the ratio falls as the splits grow).
- audit-embeddings: ``gapdiag audit-embeddings`` on memory-mapped ``.npy`` folders of Gaussian
  identities (d = 128, 100 items each) against the budget of 10 minutes and 4 GB, with the floor of
  reading the files once. Quick: 250k + 62.5k; full: 1M + 250k.
- start-up: ``gapdiag --help``, ``explain`` and ``compare`` in a fresh interpreter against a bare
  ``python -c pass`` (target: under 0.3 s).

Seconds are wall time on whatever else the machine is doing: read the ratios, which compare runs made
minutes apart on the same machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


# glibc maps every allocation above its (moving) mmap threshold afresh and trims the heap behind it: the
# im2col buffers of torch's CPU convolutions (~150 MB a batch here) then cost 0.8 to 2.4 million page
# faults per pass over 25k images, a different number each time (measured: the same pass took 4.9 s to
# 7.7 s). Fixed thresholds take that lottery out of both sides of the audit row; the plain pass gains the
# most (3.3 s instead of 4-6 s), so the ratio is harder to meet, not easier. Set the same variables to
# speed up any CPU inference with torch.
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def _child(case: str, *, steady_malloc: bool = False, **kwargs) -> dict:
    """Run one case of ``cases.py`` in a fresh interpreter (with :data:`STEADY_MALLOC` if asked); its JSON result."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    if steady_malloc:
        env.update(STEADY_MALLOC)
    proc = subprocess.run(
        [sys.executable, str(HERE / "run.py"), "--child", case, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {case} {kwargs} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(figure, ours_s, ours_mb, peer, peer_s, peer_mb, target, ok, note="") -> dict:
    return {
        "figure": figure,
        "gapdiag": f"{ours_s:.2f} s",
        "gapdiag_mb": f"{ours_mb:.0f}" if ours_mb is not None else "",
        "peer": f"{peer}: {peer_s:.2f} s" if peer_s is not None else peer,
        "peer_mb": f"{peer_mb:.0f}" if peer_mb is not None else "",
        "ratio": f"{ours_s / peer_s:.2f}" if peer_s else "",
        "target": target,
        "ok": "yes" if ok else "NO",
        "note": note,
    }


def bench_retrieval(sizes: list[int], long_tail: bool = False) -> list[dict]:
    rows = []
    for n in sizes:
        ours = _child("retrieval", n=n, long_tail=long_tail)
        pml = _child("retrieval", n=n, who="pml", long_tail=long_tail)
        diff = max(abs(ours["values"][k] - pml["values"][k]) for k in ours["values"])
        mem = ours["run_mb"] / max(pml["run_mb"], 1e-9)
        ok = ours["run_s"] <= pml["run_s"] and mem <= 0.25 and diff < 1e-6
        rows.append(
            _row(
                f"retrieval metrics, {n:,} x 128, 100 {'long-tail (Zipf) ' if long_tail else ''}classes",
                ours["run_s"],
                ours["run_mb"],
                "PML AccuracyCalculator",
                pml["run_s"],
                pml["run_mb"],
                "time <= 1.0x, memory <= 1/4, equal values",
                ok,
                f"memory {mem:.2f}x; max |value diff| {diff:.1e}; with 500-resample CIs {ours['with_ci_s']:.2f} s",
            )
        )
    return rows


def bench_knn() -> list[dict]:
    r = _child("knn_backends")
    if "faiss_s" not in r:
        return []
    return [
        _row(
            f"self-kNN {r['n']:,} x {r['dim']}, k={r['k']}: torch backend ('auto')",
            r["torch_s"],
            r["torch_mb"],
            "faiss IndexFlatL2",
            r["faiss_s"],
            r["faiss_mb"],
            "<= 1.0x (why 'auto' is torch)",
            r["torch_s"] <= r["faiss_s"],
        )
    ]


def bench_nway(n_episodes: int) -> list[dict]:
    r = _child("nway", n_episodes=n_episodes)
    speed = r["loop_s"] / r["gapdiag_s"]
    same = abs(r["loop_accuracy"] - r["gapdiag_accuracy"]) < 1e-9
    return [
        _row(
            f"n-way evaluation, {n_episodes:,} 10-way episodes of {r['items']:,} items",
            r["gapdiag_s"],
            r["gapdiag_mb"],
            "per-candidate loop",
            r["loop_s"],
            r["loop_mb"],
            ">= 20x faster, same accuracy",
            speed >= 20 and same,
            f"{speed:.0f}x faster; accuracy {r['gapdiag_accuracy']:.4f} vs loop {r['loop_accuracy']:.4f}",
        )
    ]


def bench_audit(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        r = _child("audit", n=n, steady_malloc=True)
        t = r["timings"]
        slow = sorted(((v, k) for k, v in t.items() if k.startswith("probe.")), reverse=True)[:3]
        note = (
            f"plain pass {r['plain_first_s']:.1f} s before, {r['plain_again_s']:.1f} s after (the lower is the "
            f"floor); CPU time audit / plain {r['audit_cpu_s'] / r['plain_cpu_s']:.2f}; inside the audit: "
            f"embedding {t['embedding_pass']:.1f} s, neighbour graphs {t.get('neighbour_graphs', 0):.1f} s, "
            f"probes on {r['probe_workers']} threads side by side, the longest "
            + ", ".join(f"{k[6:]} {v:.1f} s" for v, k in slow)
        )
        rows.append(
            _row(
                f"default audit, {n:,} items 3x32x32 ({r['train']:,} train / {r['val']:,} val)",
                r["audit_s"],
                r["audit_mb"],
                "one plain embedding pass",
                r["plain_s"],
                r["plain_mb"],
                "<= 2x",
                r["audit_s"] <= 2 * r["plain_s"],
                note,
            )
        )
        rows.append(
            _row(
                "  one-off per process: first audit (600 items) incl. imports, compiled code",
                r["first_audit_small_s"],
                r["first_audit_small_mb"],
                "",
                None,
                None,
                "",
                True,
                "paid once per process, not per item",
            )
        )
    return rows


def bench_audit_embeddings(n_train: int, n_val: int) -> list[dict]:
    r = _child("audit_embeddings", n_train=n_train, n_val=n_val)
    ok = r["audit_s"] < 600 and r["audit_peak_mb"] < 4096
    est = "; ".join(f"{k}: {m:,} of {tot:,} queries" for k, (m, tot) in r["estimates"].items())
    return [
        _row(
            f"audit-embeddings, {n_train:,} + {n_val:,} x 128 (.npy, memory-mapped)",
            r["audit_s"],
            r["audit_peak_mb"],
            "budget 600 s / 4096 MB; floor: reading the files",
            r["read_s"],
            None,
            "< 600 s and < 4 GB (peak RSS of the process)",
            ok,
            f"{r['audit_s'] / 600:.2f} of the time budget, {r['audit_peak_mb'] / 4096:.2f} of the memory; "
            f"estimates: {est or 'none'}",
        )
    ]


def bench_startup() -> list[dict]:
    bare = _child("startup", command="bare")
    rows = []
    for cmd, label in (
        ("help", "gapdiag --help"),
        ("explain", "gapdiag explain GD101"),
        ("compare", "gapdiag compare"),
    ):
        r = _child("startup", command=cmd)
        rows.append(
            _row(
                label,
                r["run_s"],
                r["run_mb"],
                "python -c pass",
                bare["run_s"],
                bare["run_mb"],
                "< 0.3 s",
                r["run_s"] < 0.3,
                f"{r['run_s'] - bare['run_s']:.2f} s over the bare interpreter; imports neither torch nor numpy",
            )
        )
    return rows


COLUMNS = ("figure", "gapdiag", "gapdiag_mb", "peer", "peer_mb", "ratio", "target", "ok", "note")
HEADERS = ("figure", "gapdiag", "peak MB", "peer / floor", "peak MB", "ratio", "target", "met", "detail")


def _markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes: about 5 minutes on 2 idle cores")
    ap.add_argument(
        "--only",
        nargs="+",
        default=None,
        choices=("retrieval", "knn", "nway", "audit", "embeddings", "startup"),
    )
    ap.add_argument("--markdown", default=None, help="also write the table as Markdown to this file")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        from cases import CASES

        print(json.dumps(CASES[args.child[0]](**json.loads(args.child[1]))))
        return 0
    q = args.quick
    plan = {
        "startup": bench_startup,
        # 2,000 episodes in both runs: with 300 the loop makes only 3,300 encoder calls and the ratio times set-up
        "nway": lambda: bench_nway(2000),
        "knn": bench_knn,
        "retrieval": lambda: (
            bench_retrieval([20000] if q else [20000, 100000])
            + ([] if q else bench_retrieval([20000], long_tail=True))
        ),
        "audit": lambda: bench_audit([10000, 25000] if q else [10000, 25000, 50000]),
        "embeddings": lambda: bench_audit_embeddings(*((250_000, 62_500) if q else (1_000_000, 250_000))),
    }
    import torch

    header = (
        f"gapdiag benchmarks ({'quick' if q else 'full'}), {dt.date.today().isoformat()}: {platform.machine()}, "
        f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB, "
        f"Python {platform.python_version()}, torch {torch.__version__}; load average at start "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(header, flush=True)
    rows: list[dict] = []
    for name, fn in plan.items():
        if args.only and name not in args.only:
            continue
        for row in fn():
            rows.append(row)
            print(
                f"{row['figure']:<72} {row['gapdiag']:>10} {row['gapdiag_mb']:>6} MB | {row['peer']:<40} "
                f"{row['peer_mb']:>6} | ratio {row['ratio']:>5} | {row['target']} [{row['ok']}] {row['note']}",
                flush=True,
            )
    if args.markdown:
        Path(args.markdown).write_text(_markdown(rows, header), encoding="utf-8")
    return 0 if all(r["ok"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
