"""``audit()``: validate, embed once, run every probe in isolation, build the ``Report``."""

from __future__ import annotations

import platform
import time
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import InputError, ModelError

if TYPE_CHECKING:
    from .context import AuditContext
    from .data import Split
    from .findings.finding import Finding
    from .model import SiameseModel
    from .probes.base import ProbeResult
    from .report.report import Report
    from .scoring import Scorer

# The heavy modules (torch, numpy and everything built on them) are imported when audit() runs, not when
# this module is: ``gapdiag.audit`` is the public function, bound eagerly by the package's __init__, and
# ``import gapdiag`` must stay light (see tests/test_startup.py).

__all__ = ["audit", "audit_inputs"]


def _as_model(model: Any, kind: str | None) -> SiameseModel | None:
    import torch

    from .model import SiameseModel

    if model is None or isinstance(model, SiameseModel):
        if kind is not None and isinstance(model, SiameseModel) and kind != model.kind:
            raise ModelError(
                f"kind={kind!r} contradicts the SiameseModel's kind={model.kind!r}; set it in one place."
            )
        return model
    if isinstance(model, torch.nn.Module):
        return SiameseModel(model, kind=kind or "distance")
    raise ModelError(
        f"model must be a SiameseModel, a torch.nn.Module or None (precomputed embeddings); got {type(model).__name__}."
    )


def _sizes(splits: dict[str, Split]) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {}
    for name, s in splits.items():
        out[f"{name}_items"] = len(s.items)
        out[f"{name}_pairs"] = len(s.pairs) if s.pairs is not None else 0
        out[f"{name}_episodes"] = len(s.episodes) if s.episodes is not None else 0
        out[f"{name}_identities"] = (
            int(np.unique(s.items.labels).size) if s.items.labels is not None else None
        )
    return out


def audit(
    model: Any,
    train: Any,
    val: Any,
    *,
    probes: list[str] | None = None,
    config: Config | dict | None = None,
    seed: int | None = None,
    progress: bool = True,
    kind: str | None = None,
) -> Report:
    """Audit a Siamese model's generalization gap between ``train`` and ``val``.

    Parameters
    ----------
    model : SiameseModel, torch.nn.Module or None
        The trained network. A bare module is wrapped with ``SiameseModel(module, kind=kind)``. ``None``
        when both splits carry precomputed embeddings (``Split.from_embeddings``).
    train, val : Split, Pairs, Episodes or Items
        The two splits as the user evaluates them. Bare Pairs/Episodes/Items are wrapped into a Split.
    probes : list of str, optional
        Probe names to run (default: all registered, or the config's ``probes``).
    config : Config or dict, optional
        Options and per-probe thresholds (see :mod:`gapdiag.config`).
    seed : int, optional
        Overrides the config's seed. Same inputs and seed give the same report bytes (JSON).
    progress : bool
        Show progress bars on stderr.
    kind : {"distance", "similarity"}, optional
        How your evaluation reads the score, when ``model`` is a bare module.

    Returns
    -------
    Report
    """
    from ._threads import single_threaded
    from .context import AuditContext
    from .data import as_split
    from .embed import embed_splits
    from .gap import CHAIN
    from .gates import evaluate_gates
    from .label_convention import apply_similar_label, check_by_episodes, check_by_identities
    from .preflight import preflight
    from .probes.registry import check_config
    from .report.report import Report
    from .scoring import Scorer

    t_start = time.perf_counter()
    if not isinstance(config, Config):
        config = Config.from_mapping(config)
    config = check_config(config.with_overrides(seed=seed, probes=probes))
    siamese = _as_model(model, kind)
    # roles come from argument positions: a Split named "val" passed as train is audited as train
    splits = {"train": as_split(train, "train"), "val": as_split(val, "val")}
    splits = apply_similar_label(splits, config.similar_label)
    check_by_identities(splits, similar_label=config.similar_label, level=config.ci_level)
    preflight(siamese, splits, config)  # data, model, distance, folders: checked before anything is embedded
    for role, s in splits.items():
        if s.pairs is None and s.episodes is None and s.items.labels is None:
            raise InputError(
                f"The {role} split has neither pairs, episodes nor labels; gapdiag needs one of them to evaluate it."
            )
    scorer = siamese.scorer if siamese is not None else Scorer(kind or "distance")

    t0 = time.perf_counter()
    embedded = embed_splits(
        siamese,
        [splits["train"], splits["val"]],
        batch_size=config.batch_size,
        progress=progress,
        cache_dir=config.cache_dir,
    )
    timings: dict[str, float] = {"embedding_pass": round(time.perf_counter() - t0, 3)}
    ctx = AuditContext(splits, embedded.embeddings, model=siamese, scorer=scorer, config=config)
    check_by_episodes(ctx)  # pair labels that contradict the user's own episodes: stop before any finding
    results = _run_probes(ctx, config, progress, timings)
    findings = [f for r in results for f in r.findings]
    _lower_contrasts_of_a_slip(findings)
    _lower_what_backwards_labels_would_make(ctx, findings)
    _lower_overlap_lost_to_unknown_words(findings)
    _lower_augmentation_the_data_carries(findings)
    _lower_what_a_shifted_index_makes(findings)
    _lower_reliance_on_what_copies_share(findings)
    with single_threaded():  # the chain's measurements are small operations, like the probes'
        gap = _gap(ctx, findings)
    gate_results = evaluate_gates(config.gates, ctx.artifact(CHAIN) if "chain" in gap else None)
    timings["total"] = round(time.perf_counter() - t_start, 3)
    meta = _meta(ctx, splits, embedded, siamese, scorer, timings)
    return Report(findings, results, gap=gap, meta=meta, fail_on=config.fail_on, gates=gate_results)


def _lower_contrasts_of_a_slip(findings: list) -> None:
    """When GD305 finds the validation loader flipping, turning, cropping, cutting sequences short or reordering
    the inputs, a GD101 on the same inputs rests on a train-vs-validation contrast that the slip alone creates
    (feature j of validation is another feature; a 6-token text shares fewer tokens with its partner): lowered
    to info, saying so. Its numbers stay, for after the fix."""
    from .findings.finding import Severity, lower_to_info

    slip = any(
        f.code == "GD305"
        and f.severity >= Severity.WARN
        and ({"columns", "orientation", "lengths"} & set(f.evidence))
        for f in findings
    )
    if slip:
        lower_to_info(
            findings,
            "GD101",
            "GD305 found the validation inputs flipped, turned, cropped, cut to another length or in another "
            "column order, so the validation side of this contrast measures other pixels, tokens or columns. "
            "Audit again once the validation loader matches training.",
        )


def _lower_what_backwards_labels_would_make(ctx: AuditContext, findings: list) -> None:
    """GD302 cannot tell a score read backwards from pair labels that mean 1 = dissimilar when neither identity
    labels nor the user's episodes say which (``gapdiag.label_convention`` stops the audit when they do). In
    the second case the training identities inferred from "similar" pairs group dissimilar items, so a GD201
    resting on them is a guess: lowered to info, saying so."""
    from .findings.finding import Severity, lower_to_info

    backwards = any(f.code == "GD302" and f.severity >= Severity.WARN for f in findings)
    if backwards and ctx.identities_origin("train") != "labels":
        lower_to_info(
            findings,
            "GD201",
            "GD302 finds the training pairs ranked backwards, and without identity labels or episodes gapdiag "
            "cannot tell a score read backwards from pair labels that mean 1 = dissimilar. In the second case the "
            "identities inferred from the pairs labelled similar are wrong, and so is this comparison. Pass "
            "identity labels, or fix the reading (kind=) or the labels (similar_label=0), and audit again.",
        )


def _lower_overlap_lost_to_unknown_words(findings: list) -> None:
    """When one token id floods validation (GD205's token evidence: at least 5 points more of all validation
    tokens than of training tokens, CI above 0, and five times its training share: an unknown-token id, words
    the training vocabulary lacks), validation pairs share that id whatever they are, and share fewer of the
    words that tell identities apart. A GD101 led by the token overlap of the two items then rests on that,
    not on a token set shared by training pairs alone: lowered to info, saying so."""
    from .findings.finding import lower_to_info

    flood = [
        e
        for f in findings
        if f.code == "GD205"
        for e in f.evidence.get("token_shift", [])
        if e["val_share"] - e["train_share"] >= 0.05
        and e["difference"]["ci_low"] > 0
        and e["val_share"] >= 5 * e["train_share"]
    ]
    if flood:
        e = flood[0]
        lower_to_info(
            findings,
            "GD101",
            f"token id {e['token']} is {e['val_share']:.0%} of validation tokens against {e['train_share']:.1%} of "
            "training tokens (GD205): validation holds words the training vocabulary lacks, so its pairs share "
            "that id whatever they are and fewer of the words that tell identities apart. The overlap is weaker "
            "on validation for that reason, not because training pairs share a spurious token set. Fix the "
            "vocabulary (or pass identity labels, which let gapdiag check the overlap against identity) and "
            "audit again.",
            only=lambda f: str(f.evidence.get("feature", "")).startswith("seq_token_overlap"),
        )


def _lower_augmentation_the_data_carries(findings: list) -> None:
    """GD105 is the model's side of a shortcut whose data side may be out of sight (augmentation inside the
    training loop). When the loader's own pairs carry a shared attribute (GD101 or GD102 at warn or above),
    GD105 measures the model's side of that one: lowered to info, saying so, so it does not send the user
    looking for a training loop."""
    from .findings.finding import Severity, lower_to_info

    seen = [
        f for f in findings if f.code in ("GD101", "GD102") and f.severity >= Severity.WARN and not f.ignored
    ]
    if seen:
        lower_to_info(
            findings,
            "GD105",
            f"the training pairs as loaded carry a shared attribute themselves ({seen[0].code}): the model's response "
            "to the augmentation is the other side of that shortcut, which GD101/GD102 name and measure.",
        )


def _lower_what_a_shifted_index_makes(findings: list) -> None:
    """When GD307 finds the validation episodes' correct index shifted and the validation pairs were derived
    from those episodes, the pairs' labels are the index's: a GD105 (non-matches against 'true matches') and a
    GD304 on hard validation negatives (the true match among them) rest on them. Lowered to info, saying so."""
    from .findings.finding import lower_to_info

    if any(
        f.code == "GD307" and f.evidence.get("val_pairs_from_episodes") and not f.ignored for f in findings
    ):
        why = (
            "the validation pairs come from episodes whose correct index looks shifted (GD307), so their labels "
            "are wrong; measure again once the index is fixed."
        )
        lower_to_info(findings, "GD105", why)
        lower_to_info(
            findings, "GD304", why, only=lambda f: bool(f.evidence.get("validation_negatives_harder"))
        )


def _lower_reliance_on_what_copies_share(findings: list) -> None:
    """When GD101 finds the similar training pairs to be an input paired with itself, the two items agree in
    every attribute, and a GD102 on one of them measures a by-product of the copies: lowered to info, so that
    the copies (GD101) own the drop and are named the cause."""
    from .findings.finding import lower_to_info

    if any(
        f.code == "GD101" and f.evidence.get("copies_solve_training_pairs") and not f.ignored
        for f in findings
    ):
        lower_to_info(
            findings,
            "GD102",
            "the similar training pairs are copies of one input (GD101), so they agree in this attribute as in "
            "every other; what the model learned is to recognise copies.",
        )


def _run_probes(
    ctx: AuditContext, config: Config, progress: bool, timings: dict[str, float]
) -> list[ProbeResult]:
    """Build the shared neighbour graphs (every core), then run the probes, each single-threaded, up to
    ``workers`` side by side (a crash is a GD900 finding); ignored codes are marked. Results come in the
    order of ``names`` whichever finished first, and are the same whatever ``workers`` is."""
    from ._threads import probe_phase_warnings, probe_workers, run_side_by_side, single_threaded
    from .probes.registry import get_probe, registered_probes

    names = list(config.probes) if config.probes is not None else list(registered_probes())
    probes = [get_probe(name)(**config.params_for(name)) for name in names]
    t0 = time.perf_counter()
    _prepare_neighbours(ctx, probes)
    timings["neighbour_graphs"] = round(time.perf_counter() - t0, 3)
    results: list[ProbeResult | None] = [None] * len(probes)
    bar = _probe_bar(len(names), progress)

    def run_one(i: int) -> None:
        bar.set_postfix_str(names[i])
        result = probes[i].run(ctx)
        for f in result.findings:
            f.ignored = f.code in config.ignore
            f.ignore_reason = config.ignore.get(f.code, "") if f.ignored else ""
        results[i] = result
        bar.update(1)

    try:
        with single_threaded(), probe_phase_warnings():
            run_side_by_side(
                [i for i, p in enumerate(probes) if not p.concurrent],
                [i for i, p in enumerate(probes) if p.concurrent],
                run_one,
                workers=probe_workers(config.workers),
            )
    finally:
        bar.close()
    done = [r for r in results if r is not None]
    for r in done:  # in the registry's order, whichever finished first
        timings[f"probe.{r.probe}"] = round(r.duration_s, 3)
    return done


def _prepare_neighbours(ctx: AuditContext, probes: list) -> None:
    """Declare every probe's neighbour needs, then build each needed graph once, with every core.

    The probes then run single-threaded and read the graphs from the context.
    """
    for probe in probes:
        try:
            if ctx.missing(probe.requires):
                continue  # it will be skipped: its needs must not deepen the graph
            needs = probe.neighbours_needed(ctx)
        except Exception:  # noqa: BLE001 - the probe's own run reports its error as GD900
            continue
        for key, k in needs.items():
            split, _, database = key.partition("->")
            ctx.declare_neighbours(split, k, database=database or None)
    for split in ("train", "val"):
        if ctx.neighbour_depth(split) and ctx.embeddings(split).shape[0] >= 2:
            ctx.neighbour_graph(split, 1)
        for other in ("train", "val"):
            if other != split and ctx.neighbour_depth(split, other):
                ctx.cross_neighbours(split, other, 1)


def _gap(ctx: AuditContext, findings: list[Finding]) -> dict[str, Any]:
    """The grid and the attributed chain (numbers only), or why they could not be measured."""
    from .gap import CHAIN, GRID, attribute

    missing = ctx.missing(frozenset({"train_pairs_any", "val_pairs_any"}))
    if missing:
        return {"unavailable": f"the gap chain {missing}"}
    try:
        chain = attribute(ctx.artifact(CHAIN), findings)
        grid = ctx.artifact(GRID)
        threshold, origin = ctx.decision_threshold()
    except InputError as exc:  # data no protocol can measure (e.g. every pair of one kind): say why
        return {"unavailable": f"the gap chain could not be measured: {exc}"}
    reading = ctx.reading()
    return {
        "chain": chain.to_dict(),
        "grid": grid.to_dict(),
        "decision_threshold": {"raw": float(reading.scorer.to_raw(threshold)), "origin": origin},
        "reading": {"declared": ctx.scorer.rule, "used": reading.scorer.rule, "reversed": reading.reversed},
    }


def _meta(
    ctx: AuditContext,
    splits: dict[str, Split],
    embedded: Any,
    siamese: SiameseModel | None,
    scorer: Scorer,
    timings: dict[str, float],
) -> dict[str, Any]:
    config = ctx.config
    return {
        "seed": config.seed,
        "config": config.to_dict(),
        "sizes": _sizes(splits),
        "identities": {s: ctx.identities_origin(s) for s in splits},
        "embedding": {
            "dimension": int(embedded.embeddings["train"].shape[1]),
            "unique_items_embedded": embedded.n_encoded,
            "unique_items": embedded.n_unique,
            "from_cache": embedded.from_cache,
            "probe_sample_items_embedded": ctx.extra_items_encoded,
            "integer_inputs_cast_to_float32": bool(siamese is not None and siamese.cast_inputs_to_float),
        },
        "model": None
        if siamese is None
        else {
            "class": type(siamese.module).__name__,
            "kind": siamese.kind,
            "encode": siamese.encoder_name,
            "score": siamese.score_source,
        },
        "scoring": scorer.rule,
        "versions": _versions(),
        "timings": timings,
        # why a cache file was not used: a fact about this machine, kept out of the byte-stable JSON
        "cache": {"note": embedded.cache_note},
    }


def _probe_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="gapdiag: probes", unit="probe", leave=False)


def _versions() -> dict[str, str]:
    import numpy as np
    import torch

    from ._version import __version__

    out = {
        "gapdiag": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    try:
        import sklearn

        out["scikit-learn"] = sklearn.__version__
    except ImportError:  # pragma: no cover - a core dependency
        pass
    return out


def audit_inputs(result: Any, source: str) -> tuple[Any, Any, Any]:
    """``(model, train, val)`` from what a user's target returned: that tuple, or a dict with those keys.

    ``source`` names the target in the error (``mypkg.setup:make``, ``the gapdiag_target fixture``).
    """
    if isinstance(result, dict):
        missing = {"model", "train", "val"} - set(result)
        if missing:
            raise InputError(
                f"{source} returned a dict without {', '.join(sorted(missing))}; return model, train and val."
            )
        return result["model"], result["train"], result["val"]
    if isinstance(result, (tuple, list)) and len(result) == 3:
        return result[0], result[1], result[2]
    raise InputError(
        f"{source} must return (model, train, val) or a dict with those keys; got {type(result).__name__}."
    )
