"""Loading users' networks: factories by module or file, safetensors weights, exported programs, refusals."""

from __future__ import annotations

import json
import os
import pickle
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file, save_model
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.models.user import load_user_model

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyNet(nn.Module):
    """conv1 -> ReLU -> features (ReLU, conv) -> fc: a conv layer, a nested one ("features.1"), a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.features = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 2, 3))
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        """x (batch, 1, 6, 6) -> logits (batch, 3)."""
        return self.fc(self.features(torch.relu(self.conv1(x))).flatten(1))


class Evil:
    """Unpickling this makes a folder: proof, by its absence, that nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return os.mkdir, (str(self.marker),)


NET_SOURCE = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

    @staticmethod
    def small():
        return Net()

def build():
    return Net()

def broken():
    raise ValueError("no weights for you\\nsecond line")

def not_a_model():
    return {"fc1": 1}

constant = 3
instance = Net()
"""


def _write_net(folder: Path, name: str = "user_net.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(NET_SOURCE))
    return path


def _error(spec: str, weights: str | Path | None = None) -> str:
    with pytest.raises(UnitlensError) as info:
        load_user_model(spec, weights)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------ factories


def test_a_factory_in_an_installed_module_is_imported_and_returned_in_eval_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_net(tmp_path, "unitlens_test_pkg_net.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    model, description = load_user_model("unitlens_test_pkg_net:build")
    assert isinstance(model, nn.Module)
    assert not model.training
    assert [name for name, _ in model.named_children()] == ["fc1", "fc2"]
    assert "Net" in description
    assert "unitlens_test_pkg_net:build" in description
    assert "23 parameters" in description  # 4*3 + 3 + 3*2 + 2


def test_a_factory_may_be_a_dotted_attribute(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    model, _ = load_user_model(f"{path}:Net.small")
    assert type(model).__name__ == "Net"


def test_a_factory_in_a_python_file_is_loaded_from_that_file(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    model, description = load_user_model(f"{path}:build")
    assert not model.training
    assert model(torch.zeros(5, 4)).shape == (5, 2)
    assert str(path) in description
    # The file runs afresh on each call: two loads give two independent models.
    again, _ = load_user_model(f"{path}:build")
    assert again is not model


def test_a_missing_module_is_named(tmp_path: Path) -> None:
    message = _error("unitlens_no_such_module_xyz:build")
    assert "no module named 'unitlens_no_such_module_xyz'" in message
    assert "pkg.module:factory" in message


def test_a_module_whose_own_import_fails_is_told_apart_from_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "unitlens_test_needs_dep.py").write_text("import unitlens_absent_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = _error("unitlens_test_needs_dep:build")
    assert "importing unitlens_test_needs_dep raised ModuleNotFoundError" in message
    assert "unitlens_absent_dependency_xyz" in message


def test_a_missing_python_file_and_a_file_that_fails_to_run_are_named(tmp_path: Path) -> None:
    assert "is not a file" in _error(f"{tmp_path / 'absent.py'}:build")
    bad = tmp_path / "bad.py"
    bad.write_text("def build(:\n")
    message = _error(f"{bad}:build")
    assert str(bad) in message
    assert "SyntaxError" in message
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('at import')\n")
    assert "raised RuntimeError: at import" in _error(f"{raising}:build")


def test_a_missing_attribute_is_named(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    message = _error(f"{path}:make_model")
    assert "has no attribute 'make_model'" in message
    assert "has no attribute 'tiny'" in _error(f"{path}:Net.tiny")


def test_an_attribute_that_is_not_callable_or_is_already_a_model_is_refused(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    assert "constant is a int, not callable" in _error(f"{path}:constant")
    assert "nn.Module instance" in _error(f"{path}:instance")


def test_an_exception_in_the_factory_is_wrapped_naming_the_spec(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    spec = f"{path}:broken"
    with pytest.raises(UnitlensError) as info:
        load_user_model(spec)
    message = str(info.value)
    assert spec in message
    assert "broken() raised ValueError: no weights for you" in message
    assert "second line" not in message
    assert isinstance(info.value.__cause__, ValueError)


def test_a_factory_that_returns_something_else_than_a_module_is_refused(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    assert "returned a dict; expected a torch.nn.Module" in _error(f"{path}:not_a_model")


@pytest.mark.parametrize("spec", ["", "   ", "just_a_name", "pkg.module:", "pkg.module:not-a-name"])
def test_malformed_specs_say_what_is_expected(spec: str) -> None:
    assert "expected" in _error(spec)


def test_a_spec_naming_an_absent_file_says_so(tmp_path: Path) -> None:
    assert "no file" in _error(str(tmp_path / "model.pth"))
    assert "does not exist" in _error(str(tmp_path / "model.pt2"))


def test_a_python_file_without_a_factory_name_asks_for_one(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    assert f"{path}:build" in _error(str(path))


# -------------------------------------------------------------------------------------------- weights


def test_safetensors_weights_are_loaded_strictly(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    source, _ = load_user_model(f"{path}:build")
    with torch.no_grad():
        for i, p in enumerate(source.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) + 10 * i)
    weights = tmp_path / "net.safetensors"
    save_file(source.state_dict(), weights)
    model, description = load_user_model(f"{path}:build", weights)
    assert not model.training
    for key, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert f"4 tensors from {weights}" in description


def test_tied_weights_saved_once_are_filled_in(tmp_path: Path) -> None:
    factory = tmp_path / "tied.py"
    factory.write_text(
        textwrap.dedent(
            """
            from torch import nn

            class Tied(nn.Module):  # one tensor under two names, like an embedding tied to its output layer
                def __init__(self):
                    super().__init__()
                    self.embed = nn.Linear(3, 3, bias=False)
                    self.out = nn.Linear(3, 3, bias=False)
                    self.out.weight = self.embed.weight
            """
        )
    )
    source, _ = load_user_model(f"{factory}:Tied")
    weights = tmp_path / "tied.safetensors"
    save_model(source, str(weights))  # stores the shared tensor under one of its names only
    model, _ = load_user_model(f"{factory}:Tied", weights)
    torch.testing.assert_close(model.embed.weight, source.embed.weight, rtol=0, atol=0)
    assert model.out.weight is model.embed.weight


def test_missing_and_unexpected_keys_and_shapes_are_one_error_naming_the_file(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    weights = tmp_path / "other.safetensors"
    save_file(
        {
            "fc1.weight": torch.zeros(3, 5),  # shape mismatch: the model's is (3, 4)
            "fc1.bias": torch.zeros(3),
            "head.weight": torch.zeros(2, 3),  # unexpected; fc2.weight and fc2.bias are missing
        },
        weights,
    )
    message = _error(f"{path}:build", weights)
    assert str(weights) in message
    assert "2 missing keys (fc2.weight, fc2.bias)" in message
    assert "1 unexpected key (head.weight)" in message
    assert "1 shape mismatch (fc1.weight: file (3, 5), model (3, 4))" in message


def test_a_long_list_of_keys_is_cut_short(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    weights = tmp_path / "many.safetensors"
    save_file({f"extra{i}": torch.zeros(1) for i in range(10)}, weights)
    message = _error(f"{path}:build", weights)
    assert "10 unexpected keys (extra0, extra1, extra2, extra3 and 6 more)" in message
    assert "extra9" not in message


def test_keys_of_a_wrapped_model_get_a_hint(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    source, _ = load_user_model(f"{path}:build")
    weights = tmp_path / "wrapped.safetensors"
    save_file({f"module.{k}": v for k, v in source.state_dict().items()}, weights)
    assert "starts with 'module.'" in _error(f"{path}:build", weights)


def test_a_missing_weights_file_is_named(tmp_path: Path) -> None:
    path = _write_net(tmp_path)
    message = _error(f"{path}:build", tmp_path / "absent.safetensors")
    assert "absent.safetensors does not exist" in message


@pytest.mark.parametrize(
    "content", [b"", b"hello, not a safetensors file", b"\x08" + b"\x00" * 7 + b"{}garbage"]
)
def test_a_file_that_is_not_safetensors_is_refused(tmp_path: Path, content: bytes) -> None:
    path = _write_net(tmp_path)
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(content)
    message = _error(f"{path}:build", weights)
    assert str(weights) in message
    assert "not a safetensors file" in message


# ------------------------------------------------------------------------------------------- refusals


def _pickled_files(folder: Path) -> dict[str, Path]:
    """Every pickled format torch or Python writes, each in a file of its usual name."""
    model = nn.Linear(2, 2)
    files = {
        "torch.save(model)": folder / "model.pt",
        "torch.save(state_dict)": folder / "state.pth",
        "legacy torch.save": folder / "legacy.pt",
        "torch.jit.save": folder / "scripted.pt",
        "pickle": folder / "model.pkl",
    }
    torch.save(model, files["torch.save(model)"])
    torch.save(model.state_dict(), files["torch.save(state_dict)"])
    torch.save(model.state_dict(), files["legacy torch.save"], _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(model), files["torch.jit.save"])
    files["pickle"].write_bytes(pickle.dumps(Evil(folder / "unpickled")))
    return files


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_pickles_and_torchscript_are_refused_unread_with_how_to_convert(tmp_path: Path) -> None:
    factory = _write_net(tmp_path)
    for what, path in _pickled_files(tmp_path).items():
        for message in (_error(str(path)), _error(f"{factory}:build", path)):
            assert str(path) in message, what
            assert "never unpickles" in message, what
            assert 'torch.export.save(torch.export.export(model, (example,)), "model.pt2")' in message, what
            assert 'safetensors.torch.save_file(model.state_dict(), "model.safetensors")' in message, what
            assert "--model pkg.module:factory --weights model.safetensors" in message, what
    assert "TorchScript" in _error(str(tmp_path / "scripted.pt"))
    assert "torch.save" in _error(str(tmp_path / "model.pt"))
    assert "pickle stream" in _error(str(tmp_path / "legacy.pt"))
    assert not (tmp_path / "unpickled").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_a_pickle_renamed_to_pt2_or_safetensors_is_still_refused(tmp_path: Path) -> None:
    factory = _write_net(tmp_path)
    renamed = tmp_path / "model.pt2"
    renamed.write_bytes((_pickled_files(tmp_path)["torch.save(model)"]).read_bytes())
    assert "torch.save" in _error(str(renamed))
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(pickle.dumps(Evil(tmp_path / "unpickled")))
    assert "pickle" in _error(f"{factory}:build", disguised)
    assert not (tmp_path / "unpickled").exists()


def test_a_safetensors_file_as_the_model_asks_for_the_factory(tmp_path: Path) -> None:
    weights = tmp_path / "net.safetensors"
    save_file({"w": torch.zeros(2)}, weights)
    assert f"--model pkg.module:factory --weights {weights}" in _error(str(weights))


def test_an_unknown_file_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "model.pt2"
    path.write_bytes(b"not a zip at all")
    assert "not a .pt2 archive" in _error(str(path))


# ---------------------------------------------------------------------------------- exported programs


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path, Path]:
    """A TinyNet and two .pt2 exports of it: with a dynamic batch size and with a fixed one."""
    torch.manual_seed(0)
    model = TinyNet().eval()
    folder = tmp_path_factory.mktemp("exported")
    example = torch.randn(2, 1, 6, 6)
    dynamic, fixed = folder / "dynamic.pt2", folder / "fixed.pt2"
    batch = ({0: torch.export.Dim.DYNAMIC},)
    torch.export.save(torch.export.export(model, (example,), dynamic_shapes=batch), dynamic)
    torch.export.save(torch.export.export(model, (example,)), fixed)
    return model, dynamic, fixed


def _output_of(module: nn.Module, model: nn.Module, x: Tensor) -> Tensor:
    """What a forward hook on ``module`` sees while ``model(x)`` runs (and that it fires exactly once)."""
    seen: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model(x)
    handle.remove()
    assert len(seen) == 1
    return seen[0]


def test_an_exported_program_keeps_its_submodule_names_and_hooks_on_them_fire(
    exported: tuple[nn.Module, Path, Path],
) -> None:
    original, dynamic, _ = exported
    model, description = load_user_model(str(dynamic))
    assert not model.training
    names = {name for name, _ in model.named_modules()}
    assert {"conv1", "features", "features.1", "fc"} <= names
    x = torch.randn(5, 1, 6, 6)  # another batch size than the export's example
    for name in ("conv1", "features.1"):
        seen = {
            key: _output_of(m.get_submodule(name), m, x)
            for m, key in ((original, "original"), (model, "loaded"))
        }
        torch.testing.assert_close(seen["loaded"], seen["original"])
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x))
    assert "exported program" in description
    assert "x: (N, 1, 6, 6) float32" in description
    assert "fixed batch" not in description


def test_gradients_reach_the_input_of_an_exported_program(exported: tuple[nn.Module, Path, Path]) -> None:
    model, _ = load_user_model(str(exported[1]))
    x = torch.randn(3, 1, 6, 6, requires_grad=True)
    model(x)[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_fixed_batch_size_is_said_in_the_description(exported: tuple[nn.Module, Path, Path]) -> None:
    _, description = load_user_model(str(exported[2]))
    assert "x: (2, 1, 6, 6) float32" in description
    assert "fixed batch size" in description


def test_weights_beside_an_exported_program_are_refused(
    exported: tuple[nn.Module, Path, Path], tmp_path: Path
):
    weights = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(1)}, weights)
    message = _error(str(exported[1]), weights)
    assert "carries its own weights" in message
    factory = _write_net(tmp_path)
    assert "pass it as --model" in _error(f"{factory}:build", exported[1])


def _rewrite(source: Path, target: Path, changes: dict[str, bytes]) -> None:
    """Copy the zip ``source`` to ``target``, replacing or adding the members in ``changes`` (by suffix)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        root = old.namelist()[0].partition("/")[0]
        for name in old.namelist():
            new.writestr(name, changes.pop(name.partition("/")[2], old.read(name)))
        for name, data in changes.items():
            new.writestr(f"{root}/{name}", data)


def test_an_exported_program_with_pickled_weights_is_refused(
    exported: tuple[nn.Module, Path, Path], tmp_path: Path
) -> None:
    with zipfile.ZipFile(exported[1]) as archive:
        root = archive.namelist()[0].partition("/")[0]
        config = json.loads(archive.read(f"{root}/data/weights/model_weights_config.json"))
    config["config"]["fc.bias"]["use_pickle"] = True
    tampered = tmp_path / "tampered.pt2"
    _rewrite(exported[1], tampered, {"data/weights/model_weights_config.json": json.dumps(config).encode()})
    message = _error(str(tampered))
    assert "'fc.bias' as a pickled object" in message
    assert "never unpickles" in message


def test_an_exported_program_with_compiled_code_is_refused(
    exported: tuple[nn.Module, Path, Path], tmp_path: Path
) -> None:
    tampered = tmp_path / "compiled.pt2"
    _rewrite(exported[1], tampered, {"data/aotinductor/model/model.so": b"\x7fELF"})
    assert "compiled code" in _error(str(tampered))


def test_example_inputs_that_need_a_full_unpickle_are_never_unpickled(
    exported: tuple[nn.Module, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.pt"
    torch.save(((Evil(marker),), {}), evil)
    tampered = tmp_path / "evil.pt2"
    _rewrite(exported[1], tampered, {"data/sample_inputs/model.pt": evil.read_bytes()})
    message = _error(str(tampered))
    assert "could not read it" in message
    assert not marker.exists()
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ  # restored after the load


def test_a_truncated_exported_program_is_one_clear_error(
    exported: tuple[nn.Module, Path, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.pt2"
    with zipfile.ZipFile(exported[1]) as old, zipfile.ZipFile(broken, "w") as new:
        for name in old.namelist():
            if not name.endswith("model.json"):
                new.writestr(name, old.read(name))
    assert "models/model.json" in _error(str(broken))
