"""Configs: built-in registry, pysot yaml files, clear errors."""

from pathlib import Path

import pytest

from siamtrt.config import CONFIGS, ModelConfig, get_config
from siamtrt.errors import ConfigError

DATA = Path(__file__).parents[1] / "data" / "pysot_configs"


@pytest.mark.parametrize("name", ["siamrpn_r50_l234_dwxcorr", "siamrpn_alex_dwxcorr"])
def test_pysot_yaml_equals_builtin(name):
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


def test_mask_yaml_refused(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("BACKBONE:\n  TYPE: resnet50\nMASK:\n  MASK: true\n")
    with pytest.raises(ConfigError, match="SiamMask"):
        get_config(p)


def test_not_a_pysot_yaml(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("foo: 1\n")
    with pytest.raises(ConfigError, match="not a pysot config"):
        get_config(p)
