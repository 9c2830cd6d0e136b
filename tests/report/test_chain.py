"""The gap chain in words and text bars: console summary and Markdown."""

from gapdiag import Finding, Severity
from gapdiag.probes.base import ProbeResult
from gapdiag.report import Report
from gapdiag.report.chain import chain_of, text_waterfall, waterfall_rows
from gapdiag.report.formatting import step_text, symptom_text
from gapdiag.report.renderers import _md


def _report(chain, grid):
    f = Finding("GD101", Severity.FAIL, "Shortcut", "Positive pairs are redder. More.", probe="shortcut")
    return Report(
        [f], [ProbeResult("shortcut", "leakage", "ok", findings=[f])], gap={"chain": chain, "grid": grid}
    )


def test_waterfall_rows_alternate_states_and_steps_and_steps_float_between_them(chain):
    rows = waterfall_rows(chain)
    assert [r.kind for r in rows] == ["state", "step"] * 3 + ["state"]
    first, drop, fresh, gain = rows[:4]
    assert (first.start, round(first.end, 3)) == (0.0, 0.998)
    # a drop spans from the next state up to the previous one; its whisker is where the next state lands
    assert round(drop.start, 3) == 0.495 and round(drop.end, 3) == 0.998 and drop.direction == "drop"
    assert abs(drop.ci[0] - (0.998 - 0.529)) < 1e-9 and abs(drop.ci[1] - (0.998 - 0.478)) < 1e-9
    assert gain.direction == "gain" and gain.value_text.startswith("gain 0.30") and gain.owner is None
    assert fresh.chance == 0.5 and "1500 pairs" in fresh.meaning


def test_text_waterfall_has_one_bar_per_state_and_step_and_names_each_owner(chain):
    lines = text_waterfall(chain)
    bars = [line for line in lines if "|" in line]
    assert len(bars) == len(chain["states"]) + len(chain["steps"])
    assert "95% CI" in lines[0]
    assert any("specific to the given training pairs: GD101" in line for line in bars)
    assert any("from training items to validation items: a gain" in line for line in bars)
    assert "drop 0.45 [0.41, 0.48]" in lines[-1] and "GD101" in lines[-1]
    widths = {line.index("|", 5) for line in bars}  # the bars line up
    assert len(widths) == 1


def test_an_unexplained_step_says_so(chain, chain_parts):
    _, step = chain_parts
    chain["steps"][1] = step("generalization", "from training items to validation items", "train_fresh",
                             "val_train_protocol", 0.1, 0.05, 0.15)  # fmt: skip
    assert any(
        line.endswith(
            "from training items to validation items: unexplained: no known fault, training items fit better "
            "than new ones"
        )
        for line in text_waterfall(chain)
    )
    # the long form says what is left once the checked faults are ruled out
    assert "the plain generalization gap" in step_text(chain["steps"][1])


def test_symptom_gives_both_ends_with_ci_n_and_chance(chain):
    text = symptom_text({"chain": chain})
    assert "pairwise verification accuracy 1.00 [1.00, 1.00] (1500 pairs, chance 0.50)" in text
    assert "10-way identification accuracy 0.55 [0.52, 0.58] (1000 episodes, chance 0.10)" in text


def test_a_reversed_reading_is_said_under_the_bars(chain):
    chain["reading_reversed"] = True
    assert any("read the way the training pairs separate" in line for line in text_waterfall(chain))


def test_console_and_markdown_show_the_chain(chain, grid):
    r = _report(chain, grid)
    text, md = r.render("text"), r.render("markdown")
    assert symptom_text({"chain": chain}) in text
    assert (
        _md(symptom_text({"chain": chain})) in md
    )  # Markdown shows it as literal text, its brackets escaped
    for out in (text, md):
        assert "specific to the given training pairs: GD101" in out
    assert "```text\nThe gap, step by step" in md


def test_a_gap_without_a_chain_is_not_a_chain():
    assert chain_of({}) is None and chain_of({"chain": {"states": [{"id": "a"}]}}) is None


def test_a_fresh_state_that_could_re_pair_few_pairs_says_so():
    """Identities inferred from positive pairs may leave most pairs without another item of their identity:
    those count as given, so the state names the share actually re-paired."""
    from gapdiag.report.chain import state_text

    fresh = {"protocol": "pairwise", "n": 3000, "unit": "pairs", "chance": 0.55, "basis": "inferred"}
    assert "re-paired" not in state_text({**fresh, "n_changed": 3000})
    assert "753 of 3000 re-paired, the rest as given" in state_text({**fresh, "n_changed": 753})
    assert "re-paired" not in state_text(fresh)


def test_the_given_training_state_names_how_many_items_its_pairs_draw_on(healthy_pairs):
    """A training accuracy over 3000 pairs of 40 items says little about new items: the count is shown."""
    from gapdiag import audit
    from gapdiag.report.chain import state_text

    given = {"protocol": "pairwise", "n": 3000, "unit": "pairs", "chance": 0.5, "n_items": 40}
    assert "3000 pairs, 40 distinct items, chance 0.50" in state_text(given)
    sc = healthy_pairs
    report = audit(sc.model, sc.train, sc.val, probes=["memorization"], progress=False)
    state = report.gap["chain"]["states"][0]
    p = sc.train.pairs
    assert state["id"] == "train_given" and state["n_items"] == len(set(p.left) | set(p.right))
