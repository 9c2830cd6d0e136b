"""Benchmark: the audit time of ``gapdiag demo``, per probe, against a baseline checkout in the same run.

The demo model is trained once per process; the audit then runs ``--repeats`` times (same seed) and the
minimum wall time of the whole audit and of each probe is kept (on a shared machine other jobs only ever add
time, so the minimum is the least noisy estimate), with the audit's CPU time (``time.process_time``, all
threads of the process), which waiting for a busy machine does not inflate. With ``--baseline DIR`` (another checkout of gapdiag, e.g.
``git worktree add /tmp/base main``) the two trees are measured in alternating child processes, ``--rounds``
times each, so both see the same load; the ratio this tree / baseline is printed (issue 10: at most 1.25).

    python benchmarks/bench_demo_audit.py [--repeats 3] [--baseline DIR --rounds 3] [--umap]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def measure(repeats: int, umap: bool) -> dict:
    """Train the demo model, audit it ``repeats`` times; minimum seconds of the audit and of each probe."""
    from gapdiag import audit
    from gapdiag.demo import build_demo

    sc = build_demo(seed=0)
    config = None if umap else {"probes": {"class_gap": {"umap": False}}}
    totals, cpu, embed, per_probe, families = [], [], [], {}, {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        for split in (sc.train, sc.val):
            sc.model.embed(split.items.get_batch(np.arange(len(split.items))))
        embed.append(time.perf_counter() - t0)
        t0, c0 = time.perf_counter(), time.process_time()
        report = audit(sc.model, sc.train, sc.val, config=config, progress=False)
        totals.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        for r in report.results:
            per_probe.setdefault(r.probe, []).append(r.duration_s)
            families[r.probe] = r.family
    return {
        "audit": min(totals),
        "audit_cpu": min(cpu),
        "embedding_pass": min(embed),
        "probes": {k: min(v) for k, v in per_probe.items()},
        "families": families,
        "codes": sorted({f.code for f in report.findings}),
    }


def _child(tree: Path, repeats: int, umap: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--repeats", str(repeats)]
    out = subprocess.run(
        [*cmd, *(["--umap"] if umap else [])], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print(name: str, m: dict) -> None:
    total = m["audit"]
    print(
        f"{name}: demo audit {total:.2f} s wall, {m['audit_cpu']:.2f} s CPU; one embedding pass "
        f"{m['embedding_pass']:.3f} s"
    )
    leakage = sum(t for p, t in m["probes"].items() if m["families"][p] == "leakage")
    for p, t in sorted(m["probes"].items(), key=lambda kv: -kv[1]):
        print(f"  {p:<18} {m['families'][p]:<10} {t:6.2f} s  ({t / total:5.1%})")
    print(f"  leakage family {leakage:.2f} s ({leakage / total:.1%}); codes {m['codes']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="audits per process (the minimum is kept)")
    parser.add_argument("--baseline", type=Path, help="another gapdiag checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="alternating child processes per tree")
    parser.add_argument(
        "--umap", action="store_true", help="include the UMAP figure (compile time dominates)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.repeats, args.umap)))
        return 0
    if args.baseline is None:
        _print("this tree", measure(args.repeats, args.umap))
        return 0
    runs: dict[str, list[dict]] = {"this tree": [], "baseline": []}
    for _ in range(args.rounds):
        runs["this tree"].append(_child(HERE, args.repeats, args.umap))
        runs["baseline"].append(_child(args.baseline.resolve(), args.repeats, args.umap))
    best = {k: min(v, key=lambda m: m["audit"]) for k, v in runs.items()}
    for name, m in best.items():
        _print(name, m)
    for key, what in (("audit", "wall"), ("audit_cpu", "CPU")):
        ratios = [a[key] / b[key] for a, b in zip(runs["this tree"], runs["baseline"], strict=True)]
        lo = min(m[key] for m in runs["this tree"]) / min(m[key] for m in runs["baseline"])
        print(
            f"audit {what} time this tree / baseline: {lo:.2f} (minimum over {args.rounds} alternating rounds; "
            f"per round {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
