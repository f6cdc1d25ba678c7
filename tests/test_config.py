from pathlib import Path

import pytest

from unitlens.atomic import write_text
from unitlens.config import apply_overrides, dumps_toml, load_toml, preset
from unitlens.errors import UnitlensError


def test_presets_differ_in_scale() -> None:
    quick, paper = preset("quick"), preset("paper")
    assert quick.mnist.hidden == (500, 500, 500)
    assert paper.mnist.hidden == (1000, 1000, 1000) and paper.mnist.examples_per_layer == 2_500_000
    assert paper.patches20 and not quick.patches20
    with pytest.raises(UnitlensError, match="unknown preset"):
        preset("huge")


def test_overrides_are_typed_and_checked() -> None:
    c = apply_overrides(
        preset("quick"),
        ["mnist.hidden=20,10", "study.restarts=3", "study.gtol=1e-4", "patches20=true", "mnist.data_dir=/x"],
    )
    assert c.mnist.hidden == (20, 10) and c.study.restarts == 3 and c.study.gtol == 1e-4
    assert c.patches20 is True and c.mnist.data_dir == "/x"
    with pytest.raises(UnitlensError, match="unknown setting 'restart'"):
        apply_overrides(c, ["study.restart=3"])
    with pytest.raises(UnitlensError, match=r"study\.restarts"):
        apply_overrides(c, ["study.restarts=many"])
    with pytest.raises(UnitlensError, match="key=value"):
        apply_overrides(c, ["study.restarts"])
    with pytest.raises(UnitlensError, match="preset"):
        apply_overrides(c, ["preset=medium"])


def test_toml_round_trip_and_bad_files(tmp_path: Path) -> None:
    c = apply_overrides(preset("paper"), ["seed=7", "mnist.hidden=30,20,10"])
    write_text(tmp_path / "c.toml", dumps_toml(c))
    assert load_toml(tmp_path / "c.toml") == c
    write_text(tmp_path / "bad.toml", "seed = [")
    with pytest.raises(UnitlensError, match=r"bad\.toml is not valid TOML"):
        load_toml(tmp_path / "bad.toml")
    write_text(tmp_path / "unknown.toml", "[mnist]\nwidth = 3\n")
    with pytest.raises(UnitlensError, match=r"unknown\.toml.mnist: unknown setting 'width'"):
        load_toml(tmp_path / "unknown.toml")


def test_stack_settings_reach_the_training_config() -> None:
    from unitlens.recipes import training_config

    c = apply_overrides(preset("quick"), ["mnist.dbn.weight_decay=0.001", "mnist.dbn.sparsity_cost=1"])
    dbn = training_config("dbn", c.mnist)
    sdae = training_config("sdae", c.mnist)
    assert dbn.sgd_for(1).weight_decay == 0.001 and dbn.sparsity_cost == 1.0
    assert sdae.sgd_for(1).weight_decay == 0.0 and sdae.sparsity_cost == 1.0
    assert sdae.sparsity_target_for(3) == 0.1
    assert training_config("sdae", c.patches).sparsity_cost == 0.0
    patches = training_config("dbn", c.patches)
    assert patches.examples_for(1) == 800_000 and patches.examples_for(2) == 200_000
    assert patches.sgd_for(1).learning_rate == 0.02 and patches.sgd_for(2).learning_rate == 0.05
    assert patches.sparsity_target_for(1) == 0.02 and patches.sparsity_target_for(3) == 0.1
    tuned = apply_overrides(c, ["mnist.dbn.upper_sparsity_target=0.2"])
    assert training_config("dbn", tuned.mnist).sparsity_target == (0.1, 0.2)


def test_finetune_sweep_rates_round_trip_and_are_checked(tmp_path: Path) -> None:
    quick = preset("quick")
    assert quick.finetune.sweep_hidden_rates == (0.2, 0.05, 0.02, 0.005)
    assert quick.finetune.hidden_learning_rate == 0.005
    c = apply_overrides(quick, ["finetune.sweep_hidden_rates=0.2, 0.05,1e-3"])
    assert c.finetune.sweep_hidden_rates == (0.2, 0.05, 0.001)
    assert all(type(r) is float for r in c.finetune.sweep_hidden_rates)
    write_text(tmp_path / "c.toml", dumps_toml(c))
    assert "sweep_hidden_rates = [0.2, 0.05, 0.001]" in (tmp_path / "c.toml").read_text()
    assert load_toml(tmp_path / "c.toml") == c
    # An empty sweep measures the judged rate alone; it round-trips too.
    empty = apply_overrides(c, ["finetune.sweep_hidden_rates="])
    assert empty.finetune.sweep_hidden_rates == ()
    write_text(tmp_path / "e.toml", dumps_toml(empty))
    assert load_toml(tmp_path / "e.toml") == empty
    for bad in ("0.2,0", "-0.1", "nan", "inf"):
        with pytest.raises(
            UnitlensError, match=r"finetune\.sweep_hidden_rates: learning rates must be finite"
        ):
            apply_overrides(c, [f"finetune.sweep_hidden_rates={bad}"])
    with pytest.raises(UnitlensError, match=r"setting finetune\.sweep_hidden_rates: expected a value like"):
        apply_overrides(c, ["finetune.sweep_hidden_rates=fast,slow"])
    with pytest.raises(UnitlensError, match=r"finetune\.hidden_learning_rate: learning rates must be finite"):
        apply_overrides(c, ["finetune.hidden_learning_rate=0"])
    write_text(tmp_path / "bad.toml", "[finetune]\nsweep_hidden_rates = [0.2, -1.0]\n")
    with pytest.raises(UnitlensError, match=r"finetune\.sweep_hidden_rates"):
        load_toml(tmp_path / "bad.toml")
    # Integer tuples stay integers.
    assert apply_overrides(c, ["mnist.hidden=20,10"]).mnist.hidden == (20, 10)
    with pytest.raises(UnitlensError, match=r"mnist\.hidden"):
        apply_overrides(c, ["mnist.hidden=20.5,10"])


def test_an_old_config_with_study_tol_says_what_replaced_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('preset = "quick"\n[study]\ntol = 1e-5\n', encoding="utf-8")
    with pytest.raises(UnitlensError, match=r"'tol' is gone: .*study\.gtol"):
        load_toml(path)


def test_an_old_flat_config_says_where_each_setting_moved(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('preset = "quick"\n[mnist]\ndbn_learning_rate = 0.05\n', encoding="utf-8")
    with pytest.raises(
        UnitlensError, match=r"'dbn_learning_rate' moved to mnist\.dbn\.learning_rate.*\[mnist\.dbn\]"
    ):
        load_toml(path)
    path.write_text('[patches]\ncorruption = "zero"\n', encoding="utf-8")
    with pytest.raises(UnitlensError, match=r"moved to patches\.sdae\.corruption"):
        load_toml(path)
    with pytest.raises(UnitlensError, match=r"moved to mnist\.units"):
        apply_overrides(preset("quick"), ["study.mnist_units=3"])


def test_nested_blocks_and_optional_settings_round_trip(tmp_path: Path) -> None:
    c = apply_overrides(
        preset("quick"),
        ["mnist.sdae.corruption=zero", "patches.dbn.weight_decay=0.01", "study.learning_rate=0.25"],
    )
    text = dumps_toml(c)
    assert "[mnist.sdae]" in text and "[patches.dbn]" in text
    write_text(tmp_path / "c.toml", text)
    back = load_toml(tmp_path / "c.toml")
    assert back == c and back.study.learning_rate == 0.25 and back.mnist.sdae.corruption == "zero"
    assert apply_overrides(c, ["study.learning_rate=none"]).study.learning_rate is None
    with pytest.raises(UnitlensError, match=r"study\.units: each data set names"):
        apply_overrides(c, ["study.units=5"])
    with pytest.raises(UnitlensError, match=r"mnist\.sdae: corruption: expected one of"):
        apply_overrides(c, ["mnist.sdae.corruption=gaussian"])
    with pytest.raises(UnitlensError, match=r"mnist\.dbn: upper_sparsity_target: expected a mean activation"):
        apply_overrides(c, ["mnist.dbn.upper_sparsity_target=1.5"])
    with pytest.raises(UnitlensError, match="is a setting, not a table"):
        apply_overrides(c, ["seed=1", "seed.x=2"])
