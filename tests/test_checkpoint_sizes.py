"""Sizes are checked before anything is allocated: the config's shapes against the tensor file's header,
and what loading takes against the machine's memory."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from unitlens.checkpoint import load_model, paths_for, read_checkpoint, save_checkpoint
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM

LARGE = 10**7  # elements: more than any parameter of these tests' models, far less than the claims below


@pytest.fixture
def no_large_allocations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail (without allocating) on any torch.randn/zeros/empty of more than LARGE elements off the meta
    device: a model built from a config before its sizes were checked."""
    for name in ("randn", "zeros", "empty"):
        real = getattr(torch, name)

        def guarded(*size: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> torch.Tensor:
            dims = size[0] if len(size) == 1 and isinstance(size[0], tuple | list) else size
            device = kwargs.get("device") or torch.get_default_device()
            if math.prod(int(d) for d in dims) > LARGE and torch.device(device).type != "meta":
                raise AssertionError(f"torch.{_name}{tuple(dims)} allocated before the sizes were checked")
            return _real(*size, **kwargs)

        monkeypatch.setattr(torch, name, guarded)


def _sign(meta: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in meta.items() if k != "meta_sha256"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return {**rest, "meta_sha256": hashlib.sha256(canonical.encode("ascii")).hexdigest()}


def _edit(path: Path, **layer0: Any) -> None:
    meta_path = paths_for(path)[1]
    meta = json.loads(meta_path.read_text())
    config = meta["model_config"]
    (config["layers"][0] if "layers" in config else config).update(layer0)
    meta_path.write_text(json.dumps(_sign(meta)))


@pytest.mark.usefixtures("no_large_allocations")
@pytest.mark.parametrize(
    ("n_hidden", "message"),
    [
        (
            10**9,
            r"m\.safetensors: weight '\w+' has shape \(3,.*m\.json .* implies \(1000000000,",
        ),
        (
            10**12,
            r"m\.safetensors: weight '\w+' has shape \(3,.*m\.json .* implies \(1000000000000,",
        ),
        (10**30, r"m\.json: field 'model_config' does not describe a rbm that can be built"),
    ],
)
def test_a_config_claiming_huge_layers_is_refused_before_building(
    tmp_path: Path, n_hidden: int, message: str
) -> None:
    save_checkpoint(tmp_path / "m", RBM(6, 3))
    _edit(tmp_path / "m", n_hidden=n_hidden)
    for load in (read_checkpoint, load_model):
        with pytest.raises(UnitlensError, match=message):
            load(tmp_path / "m")  # type: ignore[operator]


@pytest.mark.usefixtures("no_large_allocations")
def test_a_stack_config_claiming_a_huge_layer_is_refused_before_building(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", DBN.build([6, 5, 4]))
    meta_path = paths_for(tmp_path / "m")[1]
    meta = json.loads(meta_path.read_text())
    meta["model_config"]["layers"][0]["n_hidden"] = 10**9
    meta["model_config"]["layers"][1]["n_visible"] = 10**9  # a stack that is consistent in itself
    meta_path.write_text(json.dumps(_sign(meta)))
    with pytest.raises(
        UnitlensError, match=r"weight 'layers\.0\.\w+' has shape \(5,.* implies \(1000000000,"
    ):
        load_model(tmp_path / "m")


@pytest.mark.usefixtures("no_large_allocations")
def test_a_tensor_header_claiming_more_than_the_file_holds_is_refused_unread(tmp_path: Path) -> None:
    """A header (and metadata list) claiming a 10^12-element tensor in a file of a few hundred bytes."""
    save_checkpoint(tmp_path / "m", RBM(6, 3))
    tensor_path, meta_path = paths_for(tmp_path / "m")
    header = {"model.weight": {"dtype": "F32", "shape": [10**12, 6], "data_offsets": [0, 24 * 10**12]}}
    raw = json.dumps(header).encode()
    blob = len(raw).to_bytes(8, "little") + raw + b"\0" * 64
    tensor_path.write_bytes(blob)
    meta = json.loads(meta_path.read_text())
    meta["tensors"] = {"model.weight": {"dtype": "float32", "shape": [10**12, 6]}}
    meta["tensor_sha256"] = hashlib.sha256(blob).hexdigest()
    meta_path.write_text(json.dumps(_sign(meta)))
    for load in (read_checkpoint, load_model):
        with pytest.raises(
            UnitlensError, match=r"m\.safetensors does not match .*does not fit the file's 64"
        ):
            load(tmp_path / "m")  # type: ignore[operator]


def test_a_checkpoint_larger_than_memory_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import unitlens.checkpoint as checkpoint

    save_checkpoint(tmp_path / "m", DBN.build([60, 50, 40]))
    size = paths_for(tmp_path / "m")[0].stat().st_size
    monkeypatch.setattr(checkpoint, "_memory_bytes", lambda: size)  # the file fits, reading it does not
    read = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: read.append(p) or real_read(p))
    for load in (read_checkpoint, load_model):
        with pytest.raises(
            UnitlensError, match=r"m\.safetensors: loading this checkpoint needs about .* GiB of memory"
        ):
            load(tmp_path / "m")  # type: ignore[operator]
    assert not [p for p in read if tmp_path in p.parents]


def test_the_memory_limit_is_this_machines() -> None:
    import unitlens.checkpoint as checkpoint

    limit = checkpoint._memory_bytes()
    assert limit is None or limit > 2**28


def test_a_finished_checkpoint_failing_its_hash_says_how_to_recover(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", RBM(6, 3))
    tensor_path = paths_for(tmp_path / "m")[0]
    blob = bytearray(tensor_path.read_bytes())
    blob[-1] ^= 1
    tensor_path.write_bytes(bytes(blob))
    with pytest.raises(UnitlensError) as error:
        load_model(tmp_path / "m")
    message = str(error.value)
    assert str(tensor_path) in message and "SHA-256" in message
    assert f"delete the checkpoint pair (m.safetensors and m.json in {tmp_path})" in message
    assert "run the command that made it again: it retrains that stage" in message
