"""The HTML report's structure: the first screen, one card per cause, honest probe details, the map."""

import re

import numpy as np

from gapdiag import Finding, Severity
from gapdiag.probes.base import FigureSpec, ProbeResult
from gapdiag.report import Report
from gapdiag.report.causes import group_causes, named_items
from gapdiag.report.svg import png_uri

_FIX_TINT = "Apply the colour jitter independently to each image of a pair."
_FIX_TEST = "Add the counterfactual as a test."


def _thumbs() -> FigureSpec:
    img = np.linspace(0, 1, 64).reshape(8, 8)
    return FigureSpec(
        "pairs", "images", "Pairs showing the cue", {"rows": [{"caption": "pos", "images": [img] * 4}]}
    )


def _map_spec(n=40) -> FigureSpec:
    rng = np.random.default_rng(0)
    split = ["train"] * (n // 2) + ["val"] * (n // 2)
    row = list(range(n // 2)) * 2
    points = {"split": split, "row": row, "id": [f"<i>{i}" for i in range(n)], "identity": [str(i % 3) for i in range(n)],
              "thumbnails": [{"point": 0, "image": np.ones((4, 4, 3)) * 0.5}]}  # fmt: skip
    panel = {
        "title": "by split",
        "x": rng.normal(size=n).tolist(),
        "y": rng.normal(size=n).tolist(),
        "groups": split,
    }
    return FigureSpec(
        "class_gap_embedding_map", "scatter", "UMAP", {"points": points, "panels": [panel, panel]}
    )


def _findings():
    gd101 = Finding("GD101", Severity.FAIL, "Spurious shared attribute", "Positive pairs are redder: AUC 0.99. More.",
                    probe="shortcut", evidence={"attribute": "redness", "feature": "redness:level",
                                                "also_flagged": ["saturation:level", "red:level"]},
                    remediation=[_FIX_TINT], figures=["pairs"])  # fmt: skip
    gd102 = Finding("GD102", Severity.FAIL, "Model relies on it", "Transplanting the tint flips 78% [73%, 82%].",
                    probe="reliance", evidence={"attributes": ["saturation:level", "redness:agreement"]},
                    remediation=[_FIX_TINT, _FIX_TEST])  # fmt: skip
    gd102b = Finding("GD102", Severity.WARN, "Model relies on it", "Blurring flips 18%.", probe="reliance",
                     evidence={"attributes": ["sharpness:level"]}, remediation=[_FIX_TEST])  # fmt: skip
    gd301 = Finding("GD301", Severity.WARN, "Protocol mismatch", "Pairwise vs 10-way.", probe="protocol")
    gd103 = Finding("GD103", Severity.INFO, "Near-duplicates", "2 val items copy train items.", probe="duplicates",
                    evidence={"examples": [{"val_item": 3, "train_item": 5}, {"val_item": 30, "train_item": 1}]})  # fmt: skip
    return [gd101, gd102, gd102b, gd301, gd103]


def _report(chain, grid, findings=None, results=None) -> Report:
    findings = _findings() if findings is None else findings
    by_probe = {}
    for f in findings:
        by_probe.setdefault(f.probe, []).append(f)
    results = results or [
        ProbeResult("shortcut", "leakage", "ok", findings=by_probe["shortcut"], figures=[_thumbs()]),
        ProbeResult("reliance", "leakage", "ok", findings=by_probe["reliance"]),
        ProbeResult("protocol", "protocol", "ok", findings=by_probe["protocol"]),
        ProbeResult("duplicates", "leakage", "ok", findings=by_probe["duplicates"]),
        ProbeResult("class_gap", "embedding", "ok", figures=[_map_spec()]),
        ProbeResult("mode", "protocol", "skipped", reason="needs a model with inputs"),
        ProbeResult("geometry", "embedding", "error", reason="ValueError: boom"),
    ]
    return Report(findings, results, gap={"chain": chain, "grid": grid}, meta={"seed": 0})


def test_findings_about_one_artifact_are_one_cause():
    causes = group_causes(Report(_findings(), []).findings)
    keys = [[f.code for f in c.findings] for c in causes]
    assert keys == [["GD101", "GD102"], ["GD102"], ["GD301"], ["GD103"]]
    assert causes[0].remedies == [_FIX_TINT, _FIX_TEST]
    assert causes[0].moves_together == ["saturation:level", "red:level", "redness:agreement"]


def test_findings_that_share_a_declared_cause_are_one_cause_whatever_their_evidence():
    a = Finding(
        "GD101", Severity.FAIL, "t", "m", probe="shortcut", cause="artifact:tint", evidence={"attribute": "x"}
    )
    b = Finding(
        "GD102", Severity.FAIL, "t", "m", probe="reliance", cause="artifact:tint", evidence={"attributes": []}
    )
    c = Finding(
        "GD102", Severity.FAIL, "t", "m", probe="reliance", cause="artifact:blur", evidence={"attribute": "x"}
    )
    causes = group_causes([a, b, c])
    assert [[f.code for f in k.findings] for k in causes] == [["GD101", "GD102"], ["GD102"]]
    assert causes[0].findings[1] is b and causes[1].findings[0] is c


def test_first_screen_order_verdict_then_waterfall_then_top_cause_with_its_picture(chain, grid):
    html = _report(chain, grid).render("html")
    positions = [html.index(s) for s in ('id="verdict"', 'id="waterfall"', 'id="cause-', "<img")]
    assert positions == sorted(positions)
    hero = html[html.index('id="symptom"') : html.index('id="causes"')]
    assert "GD101" in hero and "GD102" in hero and "<img" in hero and "AUC 0.99" in hero
    assert "Owns the step <i>specific to the given training pairs</i>" in hero


def test_waterfall_has_a_bar_per_state_and_step_with_owner_links(chain, grid):
    html = _report(chain, grid).render("html")
    wf = html[html.index('id="waterfall"') : html.index('class="wtotal"')]
    assert wf.count('class="wrow state') == 4 and wf.count('class="wrow step') == 3
    assert 'href="#code-GD101"' in wf and 'href="#code-GD301"' in wf and "a gain" in wf
    assert wf.count('class="whisker"') == 7 and wf.count('class="chance"') == 4
    for code in ("GD101", "GD301"):  # every owner link lands on exactly one card
        assert html.count(f'id="code-{code}"') == 1


def test_each_remedy_appears_once_per_card(chain, grid):
    html = _report(chain, grid).render("html")
    cards = re.findall(r'<article class="card sev-\w+" id="cause-.*?</article>', html, flags=re.S)
    assert len(cards) == 3  # tint (GD101 + GD102), blur (GD102), protocol (GD301); GD103 is an info note
    assert cards[0].count(_FIX_TINT) == 1 and cards[0].count(_FIX_TEST) == 1
    assert "<details" in cards[0] and "What to do (2 steps)" in cards[0]


def test_probe_details_show_the_worst_severity_skips_with_reason_and_errors(chain, grid):
    html = _report(chain, grid).render("html")

    def summary(probe):
        block = html[html.index(f'id="probe-{probe}"') :]
        return block[: block.index("</summary>")]

    assert 'class="badge b-fail"' in summary("shortcut") and "b-ok" not in summary("shortcut")
    assert 'class="badge b-warn"' in summary("protocol")
    assert 'class="badge b-info"' in summary("duplicates")
    assert 'class="badge b-ok"' in summary("class_gap")
    assert 'class="badge b-skipped"' in summary("mode") and "needs a model with inputs" in summary("mode")
    assert 'class="badge b-error"' in summary("geometry") and "ValueError: boom" in summary("geometry")
    assert 'class="probe error"' in html


def test_embedding_map_is_svg_with_hover_titles_and_named_items_ringed(chain, grid):
    report = _report(chain, grid)
    assert named_items(report.findings) == {("val", 3): ["GD103"], ("train", 5): ["GD103"], ("val", 30): ["GD103"],
                                            ("train", 1): ["GD103"]}  # fmt: skip
    html = report.render("html")
    section = html[html.index('id="map"') : html.index('id="probes"')]
    assert (
        section.count("<svg") == 2
        and "<title>val item 3 (id &lt;i&gt;23), identity 2; named by GD103</title>" in section
    )
    assert 'stroke="#000"' in section  # ringed
    assert "ringed: 3 of the 4 items findings name" in section  # val row 30 is not in the sample
    assert "<image" in section and "<i>" not in section


def test_every_table_scrolls_inside_its_box(chain, grid):
    html = _report(chain, grid).render("html")
    assert html.count("<table") == html.count('<div class="scroll"><table')


def test_html_has_no_script_and_no_network(chain, grid):
    html = _report(chain, grid).render("html")
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


def test_png_uri_is_a_valid_png():
    import base64
    import io

    from matplotlib.image import imread

    for img in (np.zeros((3, 5)), np.ones((4, 2, 3)) * 0.5):
        data = base64.b64decode(png_uri(img).split(",", 1)[1])
        assert imread(io.BytesIO(data), format="png").shape[:2] == img.shape[:2]


def test_an_unexplained_drop_larger_than_the_top_causes_share_is_said_beside_it(chain, grid, chain_parts):
    _, step = chain_parts
    assert 'id="larger-unexplained"' not in _report(chain, grid).render("html")  # GD101 owns 0.50, the most
    chain["steps"][1] = step("generalization", "from training items to validation items", "train_fresh",
                             "val_train_protocol", 0.6, 0.55, 0.65, None, ("GD305", "GD306", "GD202"))  # fmt: skip
    hero = _report(chain, grid).render("html").split('id="causes"')[0]
    note = re.search(r'id="larger-unexplained">(.*?)</p>', hero).group(1)
    assert "0.60 [0.55, 0.65] from training items to validation items" in note
    assert "the plain generalization gap" in note
