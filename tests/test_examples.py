"""Every example runs and shows what its docstring promises."""

import importlib.util
from pathlib import Path

import gapdiag
from gapdiag import Severity
from gapdiag.probes.registry import registered_probes, unregister_probe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inverted_similarity_example(tmp_path):
    report = _load("inverted_similarity").main(str(tmp_path))
    if "score_direction" in registered_probes():
        assert "GD302" in report.codes(min_severity=Severity.FAIL)
    assert (tmp_path / "report.html").exists()


def test_precomputed_embeddings_example(tmp_path):
    report = _load("precomputed_embeddings").main(str(tmp_path))
    assert (tmp_path / "train.npz").exists() and report.meta["embedding"]["unique_items_embedded"] == 0


def test_custom_probe_example():
    try:
        report = _load("custom_probe").main()
        assert report.result("score_spread").status == "ok"
    finally:
        unregister_probe("score_spread")


def test_ci_target_example_returns_model_and_splits():
    model, train, val = _load("ci_target").make()
    assert isinstance(model, gapdiag.SiameseModel) and train.pairs is not None and val.pairs is not None


def test_open_set_example_reports_the_class_gap(tmp_path):
    report = _load("open_set_identities").main(str(tmp_path))
    assert "GD202" in report.codes(min_severity=Severity.WARN)
    overlap = report.by_code("GD104")
    assert overlap and "open" in overlap[0].message.lower()
