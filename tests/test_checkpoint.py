import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from unitlens.checkpoint import load_model, meta_digest, paths_for, read_checkpoint, save_checkpoint
from unitlens.errors import UnitlensError
from unitlens.models.classifier import StackClassifier
from unitlens.models.dae import DAE, Corruption
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


def _edit_meta(path: Path, edit: Callable[[dict[str, Any]], None], *, sign: bool = True) -> None:
    """Apply ``edit`` to checkpoint ``path``'s JSON; re-sign it (``meta_sha256`` recomputed, so the checks
    behind the hash are what is tested), or with ``sign=False`` drop the hash as unitlens <= 0.x wrote it."""
    meta_path = paths_for(path)[1]
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta.pop("meta_sha256", None)
    if sign:
        meta["meta_sha256"] = meta_digest(meta)
    meta_path.write_text(json.dumps(meta))


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
    _edit_meta(tmp_path / "m", lambda meta: meta["model_config"].update(n_hidden=4))
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


# ---------------------------------------------------------------------------------------------- round trip

KINDS = ("rbm", "dae", "dbn", "sdae", "classifier")
DTYPES = (torch.float32, torch.float64)


@st.composite
def models(draw: st.DrawFn) -> nn.Module:
    """Any model kind, with any visible type, decoder, corruption and dtype, and weights that a float32
    copy could not hold exactly (so a dtype lost on the way shows in the parameters too)."""
    kind = draw(st.sampled_from(KINDS))
    dtype = draw(st.sampled_from(DTYPES))
    sizes = draw(st.lists(st.integers(1, 5), min_size=2, max_size=2 if kind in ("rbm", "dae") else 4))
    visible = draw(st.sampled_from(("bernoulli", "gaussian")))
    decoder = draw(st.sampled_from(("sigmoid", "linear")))
    corruption = Corruption(
        kind=draw(st.sampled_from(("none", "zero", "salt_pepper"))),
        level=draw(st.floats(0.0, 1.0)),
        salt=draw(st.floats(-3.0, 3.0)),
        pepper=draw(st.floats(-3.0, 3.0)),
    )
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    model: nn.Module
    if kind == "rbm":
        model = RBM(sizes[0], sizes[1], visible, generator=g, dtype=dtype)
    elif kind == "dae":
        model = DAE(sizes[0], sizes[1], decoder, corruption, generator=g, dtype=dtype)
    elif kind == "dbn":
        model = DBN.build(sizes, visible, generator=g, dtype=dtype)
    elif kind == "sdae":
        model = SDAE.build(sizes, decoder, corruption, generator=g, dtype=dtype)
    else:
        model = StackClassifier(sizes, draw(st.integers(2, 4)), dtype=dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model


@settings(max_examples=60, deadline=None)
@given(model=models())
def test_every_model_round_trips_its_config_dtype_and_parameters(model: nn.Module) -> None:
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(Path(folder) / "m", model)
        loaded, ckpt = load_model(Path(folder) / "m")
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()  # type: ignore[operator]
    assert ckpt.meta["model_config"] == json.loads(json.dumps(model.config()))  # type: ignore[operator]
    own, back = model.state_dict(), loaded.state_dict()
    assert list(own) == list(back)
    for name in own:
        assert back[name].dtype == own[name].dtype, name
        assert torch.equal(back[name], own[name]), name


def test_a_float64_dbn_comes_back_float64(tmp_path: Path) -> None:
    dbn = DBN.build([6, 5, 4], "gaussian", generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    save_checkpoint(tmp_path / "m", dbn)
    loaded, _ = load_model(tmp_path / "m", kind="dbn")
    assert isinstance(loaded, DBN) and loaded.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in loaded.parameters())


def test_a_config_written_before_dtype_loads_as_float32(tmp_path: Path) -> None:
    dbn = DBN.build([6, 5, 4], generator=torch.Generator().manual_seed(0))
    save_checkpoint(tmp_path / "m", dbn)

    def drop_dtype(meta: dict[str, Any]) -> None:
        for layer in meta["model_config"]["layers"]:
            del layer["dtype"]  # as unitlens wrote RBM configs before the field existed

    _edit_meta(tmp_path / "m", drop_dtype, sign=False)  # nor did it write meta_sha256
    loaded, ckpt = load_model(tmp_path / "m")
    assert isinstance(loaded, DBN) and loaded.dtype == torch.float32
    assert ckpt.meta["model_config"] == dbn.config()  # filled in, so it compares equal to today's config
    for a, b in zip(dbn.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(a, b)


def test_weights_of_another_dtype_than_the_config_are_rejected(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", RBM(6, 3, dtype=torch.float64))
    _edit_meta(tmp_path / "m", lambda meta: meta["model_config"].update(dtype="float32"))
    with pytest.raises(UnitlensError, match=r"is torch.float64, but its config says torch.float32"):
        load_model(tmp_path / "m")


def test_bad_model_configs_are_named(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", MODELS["dbn"]())
    _edit_meta(tmp_path / "m", lambda meta: meta["model_config"]["layers"][1].update(n_hidden=0))
    with pytest.raises(UnitlensError, match=r"layers\[1\].*n_hidden must be a positive integer, got 0"):
        load_model(tmp_path / "m")
