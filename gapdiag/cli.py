"""The ``gapdiag`` command.

Exit codes: 0 pass, 1 a finding at or above ``--fail-on``, 2 bad usage, config or input (one line, no
traceback), 3 a probe errored and nothing gated.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, GapdiagError, InputError
from .findings.policy import EXIT_USAGE
from .report_formats import FORMATS

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep it to one line
        self.exit(EXIT_USAGE, f"gapdiag: error: {message}\n")


def _add_audit_options(p: argparse.ArgumentParser, *, out_default: str = "gapdiag-report") -> None:
    p.add_argument("--out", default=out_default, help="folder for the report files (default: %(default)s)")
    p.add_argument(
        "--format",
        default="html,json",
        help=f"comma-separated formats among {', '.join(FORMATS)} (default: %(default)s)",
    )
    p.add_argument(
        "--fail-on",
        choices=("warn", "fail"),
        default=None,
        help="lowest severity that makes the exit code 1 (default: fail)",
    )
    p.add_argument(
        "--ignore",
        default=None,
        help="comma-separated finding codes to report but never gate on, e.g. GD204,GD205",
    )
    p.add_argument(
        "--config",
        default=None,
        help="TOML config file (default: [tool.gapdiag] of ./pyproject.toml if present)",
    )
    p.add_argument("--probes", default=None, help="comma-separated probe names to run (default: all)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="probes side by side on this many threads (default: usable cores + 1, at most 4; 1 = in turn)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the summary")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gapdiag", description="Explain the generalization gap of a Siamese (metric-learning) network."
    )
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"gapdiag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        help="train a small Siamese net on bundled digits with a planted fault, audit it, write the report",
    )
    _add_audit_options(demo)

    audit = sub.add_parser("audit", help="audit the model and splits returned by package.module:function")
    audit.add_argument(
        "target", help="package.module:function returning (model, train, val) or a dict with those keys"
    )
    _add_audit_options(audit)
    _add_baseline_option(audit)

    emb = sub.add_parser(
        "audit-embeddings",
        help="audit precomputed embeddings: .npz, a folder of .npy arrays, parquet shards (gapdiag embed)",
    )
    emb.add_argument(
        "train",
        help="train split: an npz with 'embeddings' (N, d) and optional 'labels', 'left', 'right', 'pair_label', "
        "'anchor', 'candidates', 'correct'; a folder of those as .npy files (memory-mapped); a parquet file; "
        "or a folder of parquet shards as `gapdiag embed` writes",
    )
    emb.add_argument("val", help="val split, same layouts")
    emb.add_argument(
        "--kind",
        choices=("distance", "similarity"),
        default="distance",
        help="how your evaluation reads euclidean scores",
    )
    _add_audit_options(emb)
    _add_baseline_option(emb)
    _add_baseline_command(sub)

    _add_embed(sub)

    cmp_ = sub.add_parser("compare", help="what got better or worse between two JSON reports")
    cmp_.add_argument("old", help="the earlier report.json (e.g. from the main branch)")
    cmp_.add_argument("new", help="the later report.json; exit code 1 when something got worse")

    exp = sub.add_parser(
        "explain", help="what a finding code means, why it matters, how it is measured and fixed"
    )
    exp.add_argument(
        "code", nargs="?", help="a finding code such as GD101; without it, the list of all codes"
    )
    return parser


def _add_embed(sub) -> None:
    p = sub.add_parser(
        "embed",
        help="run the model over every item as a Ray Data job and write parquet shards for audit-embeddings",
    )
    p.add_argument("target", help="package.module:function returning (model, train, val), as for `audit`")
    p.add_argument("--out", required=True, help="a new or empty folder for the shards (one per split)")
    p.add_argument("--engine", choices=("ray", "local"), default="ray", help="default: %(default)s")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else local)")
    p.add_argument("--actors", type=int, default=None, help="model replicas (default: what resources allow)")
    p.add_argument("--cpus-per-actor", type=float, default=1.0, help="default: %(default)s")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="default: %(default)s")
    p.add_argument(
        "--batch-size", type=int, default=None, help="items per encoder call (default: the model's)"
    )


def _embed(args: argparse.Namespace) -> int:
    from .audit import _as_model
    from .data import as_split
    from .embed_job import embed_to_parquet

    model, train, val = _load_target(args.target)
    splits = [as_split(train, "train"), as_split(val, "val")]
    manifest = embed_to_parquet(
        _as_model(model, None),
        splits,
        args.out,
        engine=args.engine,
        batch_size=args.batch_size,
        num_actors=args.actors,
        cpus_per_actor=args.cpus_per_actor,
        gpus_per_actor=args.gpus_per_actor,
        ray_address=args.address,
    )
    sizes = ", ".join(f"{k} {v}" for k, v in manifest["items"].items())
    print(f"Embedded {sizes} items (d={manifest['dimension']}) into {args.out}")
    print(f"Audit them with: gapdiag audit-embeddings {args.out}/train {args.out}/val")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except GapdiagError as exc:
        print(f"gapdiag: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `gapdiag explain GD101 | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("gapdiag: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("demo", "audit", "audit-embeddings"):
        _check_before_work(args)
    if args.command == "explain":
        return _explain(args.code)
    if args.command == "compare":
        return _compare(args.old, args.new)
    if args.command == "baseline":
        return _baseline(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "audit":
        model, train, val = _load_target(args.target)
        return _run_audit(args, model, train, val)
    if args.command == "embed":
        return _embed(args)
    if args.command == "audit-embeddings":
        from .embeddings_io import load_embedding_split

        train = load_embedding_split(args.train, name="train")
        val = load_embedding_split(args.val, name="val")
        return _run_audit(args, None, train, val, kind=args.kind)
    raise ConfigError(f"Unknown command {args.command!r}.")  # pragma: no cover - argparse guards it


def _config(args: argparse.Namespace):
    from .config import load_config

    cfg = load_config(args.config)
    probes = tuple(p.strip() for p in args.probes.split(",") if p.strip()) if args.probes else None
    from .probes.registry import check_config

    return check_config(
        cfg.with_overrides(
            fail_on=args.fail_on,
            ignore=_ignores(cfg, args),
            seed=args.seed,
            probes=probes,
            workers=args.workers,
        )
    )


def _check_before_work(args: argparse.Namespace) -> None:
    """Formats, the output folder, the configuration and the baseline, checked before a target is loaded or
    embedded."""
    _formats(args.format)
    from .validation import check_output_dir

    check_output_dir(args.out)
    _config(args)
    args.baseline_data = _load_baseline(args)


def _formats(value: str) -> list[str]:
    fmts = [f.strip().lower() for f in value.split(",") if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise ConfigError(f"Unknown --format {', '.join(bad) or value!r}; choose among {', '.join(FORMATS)}.")
    return fmts


def _write(report, args: argparse.Namespace) -> list[Path]:

    return [report.save(Path(args.out) / FORMATS[f].filename, format=f) for f in _formats(args.format)]


def _run_audit(args: argparse.Namespace, model: Any, train: Any, val: Any, kind: str | None = None) -> int:
    from .audit import audit

    _formats(args.format)  # fail on a bad format before the work
    report = audit(model, train, val, config=_config(args), progress=not args.quiet, kind=kind)
    if args.baseline_data is not None:
        from .baseline import apply_baseline

        report = apply_baseline(report, args.baseline_data, source=args.baseline)
    paths = _write(report, args)
    print(report.summary().rstrip())
    print("Report written to " + ", ".join(str(p) for p in paths))
    return report.exit_code


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report, _ = run_demo(
        args.out, config=_config(args), formats=tuple(_formats(args.format)), progress=not args.quiet
    )
    return report.exit_code


def _load_target(target: str) -> tuple[Any, Any, Any]:
    module_name, sep, func_name = target.partition(":")
    if not sep or not module_name or not func_name:
        raise InputError(f"TARGET must look like package.module:function; got {target!r}.")
    if str(Path.cwd()) not in sys.path:
        # find the user's modules in the current folder, after everything installed: a local file named like
        # one of gapdiag's dependencies (numpy.py, torch/) must not shadow it
        sys.path.append(str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(
            f"Cannot import module {module_name!r} ({exc}); check the name and that it is on PYTHONPATH."
        ) from None
    except Exception as exc:
        raise InputError(f"Importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise InputError(f"Module {module_name!r} has no function {func_name!r}.")
    try:
        result = fn()
    except GapdiagError:
        raise
    except Exception as exc:  # the user's own code: one line naming it, not a traceback from gapdiag
        raise InputError(f"{target}() raised {type(exc).__name__}: {exc}") from None
    from .audit import audit_inputs

    return audit_inputs(result, target)


def _explain(code: str | None) -> int:
    from .findings.codes import CATALOGUE, lookup
    from .probes.declarations import declared_owner as owner_of  # reads the probes' source, imports none

    if code is None:
        for info in CATALOGUE.values():
            owner = owner_of(info.code)
            print(
                f"{info.code}  {info.family:9}  {info.title}" + (f"  (probe {owner.name})" if owner else "")
            )
        return 0

    info = lookup(code)
    lines = [
        f"{info.code}: {info.title}  [{info.family}]",
        "",
        "What it means",
        "  " + info.meaning,
        "",
        "Why it matters",
        "  " + info.why,
        "",
        "How it is measured",
        "  " + info.measured,
        "",
        "How to fix it",
    ]
    lines += [f"  - {step}" for step in info.fix]
    owner = owner_of(info.code)
    if owner is not None:
        lines += [
            "",
            f"Emitted by probe {owner.name!r}; its default thresholds (override under [probes.{owner.name}]):",
        ]
        lines += [f"  {k} = {v!r}" for k, v in owner.default_params().items()] or ["  (none)"]
    print("\n".join(lines))
    return 0


def _compare(old_path: str, new_path: str) -> int:
    from ._io import read_json
    from .compare import compare_reports

    old, new = (read_json(p, "a gapdiag JSON report") for p in (old_path, new_path))
    text, worse = compare_reports(old, new)
    print(text)
    return 1 if worse else 0


# -- CI: baselines and ignores with reasons (gapdiag.baseline, gapdiag.ignores; docs/ci.md) --------------------
def _add_baseline_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--baseline",
        default=None,
        help="gate only on findings new or worse than this baseline (.gapdiag-baseline.json or an older report.json)",
    )


def _add_baseline_command(sub: Any) -> None:
    base = sub.add_parser("baseline", help="store the accepted state of an audit for --baseline")
    actions = base.add_subparsers(dest="action", required=True, parser_class=_Parser, metavar="{write}")
    write = actions.add_parser("write", help="write the baseline of a JSON report (commit the file)")
    write.add_argument("report", help="a JSON report written by gapdiag (report.json)")
    write.add_argument("--out", default=None, help="baseline file to write (default: .gapdiag-baseline.json)")


def _baseline(args: argparse.Namespace) -> int:
    from .baseline import DEFAULT_PATH, load_baseline, write_baseline

    path = write_baseline(args.report, args.out or DEFAULT_PATH)
    data = load_baseline(path)
    print(f"Baseline written to {path}: {len(data['findings'])} warn/fail finding(s) accepted; commit it.")
    return 0


def _load_baseline(args: argparse.Namespace) -> dict | None:
    if getattr(args, "baseline", None) is None:
        return None
    from .baseline import load_baseline

    return load_baseline(args.baseline)


def _ignores(cfg: Any, args: argparse.Namespace) -> dict[str, str] | None:
    """The configuration's ignores (with their reasons) plus ``--ignore`` codes; None when the flag is absent."""
    from .ignores import command_line_ignores

    extra = command_line_ignores(args.ignore)
    return None if extra is None else {**extra, **cfg.ignore}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
