import json
from pathlib import Path

import pytest
import torch

from unitlens.checkpoint import load_model, paths_for, read_checkpoint, save_checkpoint
from unitlens.errors import UnitlensError
from unitlens.models.classifier import StackClassifier
from unitlens.models.dae import DAE
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sdae import SDAE

MODELS = {
    "dbn": lambda: DBN.build([6, 5, 4], "gaussian", generator=torch.Generator().manual_seed(1)),
    "sdae": lambda: SDAE.build([6, 5, 4], generator=torch.Generator().manual_seed(2)),
    "rbm": lambda: RBM(6, 3, generator=torch.Generator().manual_seed(3)),
    "dae": lambda: DAE(6, 3, "linear", generator=torch.Generator().manual_seed(4)),
    "classifier": lambda: StackClassifier.random([6, 5], 3, generator=torch.Generator().manual_seed(5)),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_round_trip_restores_weights_config_and_metadata(tmp_path: Path, kind: str) -> None:
    model = MODELS[kind]()
    extra = {"data.pixel_mean": torch.arange(6.0), "generator": torch.Generator().get_state()}
    save_checkpoint(tmp_path / "m", model, extra=extra, meta={"seed": 7, "data": {"rho": 9.3}})
    loaded, ckpt = load_model(tmp_path / "m.json", kind=kind)
    assert type(loaded) is type(model)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert ckpt.meta["seed"] == 7 and ckpt.meta["data"]["rho"] == 9.3
    assert set(ckpt.meta["versions"]) >= {"unitlens", "torch", "numpy", "python"}
    assert torch.equal(ckpt.section("data")["pixel_mean"], torch.arange(6.0))
    assert torch.equal(ckpt.tensors["generator"], extra["generator"])


def test_wrong_kind_is_rejected(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", MODELS["dbn"]())
    with pytest.raises(UnitlensError, match="holds a 'dbn' model, but a 'sdae'"):
        load_model(tmp_path / "m", kind="sdae")


def test_truncated_tensor_file_is_rejected(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", MODELS["sdae"]())
    tensors, _ = paths_for(tmp_path / "m")
    tensors.write_bytes(tensors.read_bytes()[:-10])
    with pytest.raises(UnitlensError, match=r"m\.safetensors does not match"):
        read_checkpoint(tmp_path / "m")


def test_tensor_file_from_another_checkpoint_is_rejected(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "a", MODELS["rbm"]())
    save_checkpoint(tmp_path / "b", RBM(6, 3, generator=torch.Generator().manual_seed(9)))
    paths_for(tmp_path / "a")[0].write_bytes(paths_for(tmp_path / "b")[0].read_bytes())
    with pytest.raises(UnitlensError, match="SHA-256"):
        load_model(tmp_path / "a")


def test_config_that_does_not_fit_the_weights_is_rejected(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", MODELS["rbm"]())
    meta_path = paths_for(tmp_path / "m")[1]
    meta = json.loads(meta_path.read_text())
    meta["model_config"]["n_hidden"] = 4
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(UnitlensError, match="shape"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not a unitlens checkpoint"),
        ("[]", "not a unitlens"),
    ],
)
def test_damaged_metadata_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    save_checkpoint(tmp_path / "m", MODELS["rbm"]())
    paths_for(tmp_path / "m")[1].write_text(text)
    with pytest.raises(UnitlensError, match=message):
        load_model(tmp_path / "m")


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(UnitlensError, match="does not exist"):
        load_model(tmp_path / "nothing")
    save_checkpoint(tmp_path / "m", MODELS["rbm"]())
    paths_for(tmp_path / "m")[0].unlink()
    with pytest.raises(UnitlensError, match="missing"):
        load_model(tmp_path / "m")


def test_a_pickle_in_place_of_the_tensors_is_never_unpickled(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", MODELS["rbm"]())
    torch.save({"weight": torch.zeros(3, 6)}, paths_for(tmp_path / "m")[0])
    with pytest.raises(UnitlensError):
        load_model(tmp_path / "m")


def test_metadata_must_be_plain_json(tmp_path: Path) -> None:
    with pytest.raises(UnitlensError, match="not plain JSON"):
        save_checkpoint(tmp_path / "m", MODELS["rbm"](), meta={"rho": float("nan")})
    assert not any(tmp_path.iterdir())
