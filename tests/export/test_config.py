"""Configs: built-in registry, pysot yaml files, clear errors."""

from pathlib import Path

import pytest

from siamtrt.config import CONFIGS, ModelConfig, get_config
from siamtrt.errors import ConfigError

DATA = Path(__file__).parents[1] / "data" / "pysot_configs"


@pytest.mark.parametrize("name", ["siamrpn_r50_l234_dwxcorr", "siamrpn_r50_l234_dwxcorr_otb",
                                  "siamrpn_mobilev2_l234_dwxcorr", "siamrpn_alex_dwxcorr"])
def test_pysot_yaml_equals_builtin(name):
    """Each built-in equals pysot's own yaml (verbatim copies in tests/data): the OTB r50 has no learned fusion."""
    cfg = get_config(DATA / name / "config.yaml")
    builtin = CONFIGS[name]
    assert cfg.to_dict() | {"description": ""} == builtin.to_dict() | {"description": ""}


def test_score_sizes_and_hyperparameters():
    assert CONFIGS["siamrpn_r50_l234_dwxcorr"].score_size == 25
    assert CONFIGS["siamrpn_alex_dwxcorr"].score_size == 21
    assert CONFIGS["SiamRPNvot"].score_size == 19
    big = CONFIGS["SiamRPNBIG"].track
    assert big.instance_sizes == (271, 287) and big.score_size(8, 287) == 21
    r50 = CONFIGS["siamrpn_r50_l234_dwxcorr"].track
    assert (r50.penalty_k, r50.window_influence, r50.lr) == (0.05, 0.42, 0.38)


def test_roundtrip_dict():
    for cfg in CONFIGS.values():
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_name_suggests_closest():
    with pytest.raises(ConfigError) as e:
        get_config("siamrpn_alex_dwxcor")
    assert "siamrpn_alex_dwxcorr" in str(e.value) and "unknown model config" in str(e.value)


def test_mask_yaml_refused_naming_what_is_supported():
    with pytest.raises(ConfigError, match="SiamMask") as e:
        get_config(DATA / "siammask_r50_l3" / "config.yaml")
    assert "SiamRPNTracker" in e.value.evidence and "siamrpn_r50_l234_dwxcorr" in e.value.fix


def test_unsupported_type_names_the_supported_ones(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text((DATA / "siamrpn_alex_dwxcorr" / "config.yaml").read_text().replace('"alexnetlegacy"', '"alexnet"'))
    with pytest.raises(ConfigError, match="backbone type 'alexnet'") as e:
        get_config(p)
    assert "alexnetlegacy" in e.value.evidence and e.value.fix


def _edited(tmp_path, old, new, name="siamrpn_r50_l234_dwxcorr"):
    text = (DATA / name / "config.yaml").read_text()
    assert old in text
    p = tmp_path / name / "config.yaml"
    p.parent.mkdir()
    p.write_text(text.replace(old, new))
    return p


@pytest.mark.parametrize("old, new, key, close", [
    ("PENALTY_K: 0.05", "PENALTY_k: 0.05", "TRACK.PENALTY_k", "PENALTY_K"),  # typo: pysot's default 0.04 was used
    ("CONTEXT_AMOUNT: 0.5", "CONTEXT_AMOUNT: 0.5\n    SCORE_THRESHOLD: 0.9", "TRACK.SCORE_THRESHOLD", None),
    ("STRIDE: 8", "STRIDES: 8", "ANCHOR.STRIDES", "STRIDE"),
    ("TRACK:", "TRAK:\n    LR: 0.1\nTRACK:", "TRAK", "TRACK"),
    ("TRACK:", "track:", "track", "TRACK"),  # difflib is case-sensitive: it advised "remove it" (the whole section)
])
def test_key_pysot_does_not_know_is_refused(tmp_path, old, new, key, close):
    with pytest.raises(ConfigError, match=f"unknown key {key}") as e:
        get_config(_edited(tmp_path, old, new))
    assert "pysot itself refuses" in e.value.fix and (close is None or f"did you mean {close}?" in e.value.fix)


def test_first_release_yaml_refused_naming_the_current_file():
    with pytest.raises(ConfigError, match="first-release") as e:
        get_config(DATA / "first_release_siamrpn_r50_l234_dwxcorr" / "config.yaml")
    assert "github.com/STVIR/pysot" in e.value.fix and "experiments/" in e.value.fix


def test_yaml_is_named_after_its_experiment_folder(tmp_path):
    """pysot copies META_ARC between experiments (the _lt yaml says siamrpn_r50_l234_dwxcorr): the folder names it."""
    assert get_config(DATA / "siamrpn_r50_l234_dwxcorr_lt" / "config.yaml").name == "siamrpn_r50_l234_dwxcorr_lt"
    p = tmp_path / "r50_lt.yaml"
    p.write_text((DATA / "siamrpn_r50_l234_dwxcorr_lt" / "config.yaml").read_text())
    assert get_config(p).name == "r50_lt"


def test_not_a_pysot_yaml(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("foo: 1\n")
    with pytest.raises(ConfigError, match="not a pysot config"):
        get_config(p)


@pytest.mark.parametrize("old, new", [("ANCHOR_NUM: 5", "ANCHOR_NUM: 3"), ("SCALES: [8]", "SCALES: [8, 16]")])
def test_anchor_count_must_match_ratios_times_scales(tmp_path, old, new):
    """pysot's tracker takes len(RATIOS) × len(SCALES) anchors per position and its head outputs anchor_num: a
    yaml where they differ cannot run there (it was accepted)."""
    with pytest.raises(ConfigError, match="anchor count does not match") as e:
        get_config(_edited(tmp_path, old, new))
    assert "ratios ×" in e.value.evidence and "ANCHOR.ANCHOR_NUM" in e.value.fix
