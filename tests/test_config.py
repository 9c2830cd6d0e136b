import pytest

from gapdiag import Config, ConfigError, load_config
from gapdiag.probes.registry import check_config


def test_defaults_and_overrides():
    cfg = Config.from_mapping(
        {"seed": 3, "ignore": "gd204, GD205", "probes": {"protocol_mismatch": {"min_protocol_share": 0.4}}}
    )
    assert cfg.seed == 3 and list(cfg.ignore) == ["GD204", "GD205"]
    assert cfg.params_for("protocol_mismatch") == {"min_protocol_share": 0.4}
    assert cfg.with_overrides(fail_on="warn").fail_on == "warn"


@pytest.mark.parametrize(
    ("mapping", "needle"),
    [
        ({"sede": 1}, "unknown option 'sede'"),
        ({"fail_on": "error"}, "fail_on must be"),
        ({"ignore": ["GD999"]}, "Unknown finding code"),
        ({"probes": {"nope": {}}}, "unknown probe 'nope'"),
        ({"probes": {"protocol_mismatch": {"min_share": 1}}}, "Valid options"),
        ({"n_boot": 3}, "n_boot"),
        ({"train_protocol": "pairs"}, "train_protocol must be 'auto', 'pairwise' or 'n-way'"),
        ({"probes": {"protocol_mismatch": {"min_protocol_share": "x"}}}, "must be a number"),
        ({"probes": {"shortcut": {"max_pairs": 2.5}}}, "must be an integer"),
        ({"probes": {"reliance": {"interventions": {"redness": "paint"}}}}, "unknown intervention 'paint'"),
    ],
)
def test_bad_config_names_the_problem(mapping, needle):
    with pytest.raises(ConfigError, match=needle):
        check_config(Config.from_mapping(mapping))


def test_pyproject_table_and_toml_file(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gapdiag]\nseed = 7\nfail_on = "warn"\n[tool.gapdiag.probes.geometry]\ncollapse_ratio = 0.2\n'
    )
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg.seed == 7 and cfg.fail_on == "warn" and cfg.params_for("geometry") == {"collapse_ratio": 0.2}
    (tmp_path / "g.toml").write_text("seed = 2\n")
    assert load_config(tmp_path / "g.toml").seed == 2
    (tmp_path / "bad.toml").write_text("seed = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
