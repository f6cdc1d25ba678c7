"""The generic config pair: every model config round-trips through JSON, and bad dicts are named."""

from __future__ import annotations

import json

import pytest

from unitlens.errors import UnitlensError
from unitlens.models import (
    ClassifierConfig,
    Corruption,
    DAEConfig,
    DBNConfig,
    RBMConfig,
    SDAEConfig,
    config_from_dict,
    config_to_dict,
)

CONFIGS = [
    RBMConfig(7, 5, "gaussian", "float64"),
    DAEConfig(7, 5, "linear", Corruption("zero", 0.3), "float64"),
    DBNConfig((RBMConfig(7, 5, "gaussian"), RBMConfig(5, 3))),
    SDAEConfig((DAEConfig(7, 5, "linear"), DAEConfig(5, 3, corruption=Corruption(level=0.1)))),
    ClassifierConfig((7, 5, 3), 4, "float64"),
    Corruption("salt_pepper", 0.5, 2.0, -2.0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_round_trip_through_json(config: object) -> None:
    d = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(type(config), d) == config


def test_stack_dicts_are_tagged_with_their_kind() -> None:
    d = config_to_dict(CONFIGS[2])
    assert d["kind"] == "dbn" and isinstance(d["layers"], list) and d["layers"][1]["visible"] == "bernoulli"
    with pytest.raises(UnitlensError, match=r"DBN config\.kind is 'sdae', expected 'dbn'"):
        config_from_dict(DBNConfig, {**d, "kind": "sdae"}, where="DBN config")
    assert config_from_dict(DBNConfig, {"layers": d["layers"]}) == CONFIGS[2]  # the tag may be left out


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], r"cfg must be a table/dict of fields, got list"),
        ({"n_visible": 3}, r"cfg is missing required fields \['n_hidden'\]"),
        ({"n_visible": 3, "n_hidden": 2, "hidden": 5}, r"cfg has unknown fields \['hidden'\]"),
        ({"n_visible": 3, "n_hidden": 2, "visible": "poisson"}, r"cfg: RBMConfig\.visible must be one of"),
        ({"n_visible": 3.0, "n_hidden": 2}, r"RBMConfig\.n_visible must be an integer, got 3\.0"),
        ({"n_visible": 3, "n_hidden": False}, r"RBMConfig\.n_hidden must be an integer, got False"),
    ],
)
def test_bad_dicts_name_the_field(data: object, message: str) -> None:
    with pytest.raises(UnitlensError, match=message):
        config_from_dict(RBMConfig, data, where="cfg")


def test_nested_errors_say_where() -> None:
    layers = [{"n_visible": 7, "n_hidden": 5}, {"n_visible": 5, "n_hidden": 0}]
    with pytest.raises(UnitlensError, match=r"m\.layers\[1\]: RBMConfig\.n_hidden must be a positive"):
        config_from_dict(DBNConfig, {"layers": layers}, where="m")
    with pytest.raises(UnitlensError, match=r"m\.layers must be a list of RBMConfigs, got 3"):
        config_from_dict(DBNConfig, {"layers": 3}, where="m")
    with pytest.raises(UnitlensError, match=r"m\.corruption must be a table/dict"):
        config_from_dict(DAEConfig, {"n_visible": 3, "n_hidden": 2, "corruption": "zero"}, where="m")


def test_configs_built_in_code_are_validated_too() -> None:
    with pytest.raises(UnitlensError, match=r"RBMConfig\.n_visible must be an integer, got '7'"):
        RBMConfig("7", 5)  # type: ignore[arg-type]
    with pytest.raises(UnitlensError, match=r"layer 2 expects 4 inputs but layer 1 has 5 units"):
        DBNConfig((RBMConfig(7, 5), RBMConfig(4, 3)))
    with pytest.raises(UnitlensError, match="one dtype"):
        DBNConfig((RBMConfig(7, 5), RBMConfig(5, 3, dtype="float64")))
    with pytest.raises(UnitlensError, match="DBN layer 2 must have bernoulli visible units"):
        DBNConfig((RBMConfig(7, 5), RBMConfig(5, 3, "gaussian")))
    with pytest.raises(UnitlensError, match="SDAE layer 2 codes lie in"):
        SDAEConfig((DAEConfig(7, 5), DAEConfig(5, 3, "linear")))
    with pytest.raises(UnitlensError, match="at least one layer"):
        SDAEConfig(())
    with pytest.raises(UnitlensError, match="n_classes must be at least 2"):
        ClassifierConfig((3, 2), 1)
    with pytest.raises(UnitlensError, match=r"sizes must be a list of integers"):
        ClassifierConfig([3, 2], 3)  # type: ignore[arg-type]
