"""A checkpoint's JSON, damaged or edited by hand, gives one UnitlensError naming the file and the field.

Never another exception: not in ``read_checkpoint``/``load_model``, nor in what ``unitlens visualize`` and
``unitlens.runs`` then read from the metadata.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

from unitlens.checkpoint import load_model, paths_for, read_checkpoint, save_checkpoint
from unitlens.commands.visualize import _recipe_of_old_checkpoint
from unitlens.errors import UnitlensError
from unitlens.models.classifier import StackClassifier
from unitlens.models.dae import DAE
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sdae import SDAE
from unitlens.runs import recorded_recipe

RUN_META: dict[str, Any] = {
    "seed": 3,
    "training_config": {"examples_per_layer": 60, "sgd": [{"learning_rate": 0.05, "batch_size": 20}]},
    "data": {
        "rho": 9.25,
        "kind": "real",
        "image_shape": [2, 3],
        "source": "test",
        "n_train": 100,
        "recipe": {"loader": "mnist", "n_train": 100},
    },
    "state": {
        "layer": 2,
        "examples_seen": 40,
        "history": [{"layer": 1.0, "examples": 20.0, "train_loss": 0.5}],
        "pending_loss": 1.5,
        "pending_count": 20,
    },
    "history": [{"layer": 1.0, "examples": 60.0, "heldout_reconstruction": 0.25}],
}
MODELS: dict[str, Callable[[], torch.nn.Module]] = {
    "dbn": lambda: DBN.build([6, 5, 4], generator=torch.Generator().manual_seed(1)),
    "sdae": lambda: SDAE.build([6, 5, 4], generator=torch.Generator().manual_seed(2)),
    "rbm": lambda: RBM(6, 3, generator=torch.Generator().manual_seed(3)),
    "dae": lambda: DAE(6, 3, generator=torch.Generator().manual_seed(4)),
    "classifier": lambda: StackClassifier.random([6, 5], 3, generator=torch.Generator().manual_seed(5)),
}


def _sign(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with ``meta_sha256`` recomputed (sha256 of the canonical JSON of the rest), as if a buggy
    writer had written it: the checks behind the hash are then what stops it."""
    rest = {k: v for k, v in meta.items() if k != "meta_sha256"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return {**rest, "meta_sha256": hashlib.sha256(canonical.encode("ascii")).hexdigest()}


def _consumers(path: Path) -> None:
    """Load ``path`` and read its metadata as visualize and runs do; only UnitlensError may come out."""
    read_checkpoint(path)
    _, ckpt = load_model(path)
    meta_path = paths_for(path)[1]
    recorded_recipe(ckpt.meta, meta_path) or _recipe_of_old_checkpoint(ckpt.meta, meta_path)
    data = ckpt.meta.get("data", {})
    if "rho" in data:
        float(data["rho"])
    for row in ckpt.meta.get("history", []) + ckpt.meta.get("state", {}).get("history", []):
        assert all(math.isfinite(float(v)) for v in row.values())


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A DBN checkpoint with the metadata a run records; the path of its stem."""
    save_checkpoint(tmp_path / "m", MODELS["dbn"](), meta=copy.deepcopy(RUN_META))
    return tmp_path / "m"


def _edit(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    meta_path = paths_for(path)[1]
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(_sign(meta)))


def _set(*keys: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        node: Any = meta
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_set("tensors", "model.layers.0.weight", value=[5, 6]), "tensors.model.layers.0.weight"),
        (_set("tensors", value=[["model.layers.0.weight", [5, 6]]]), "tensors"),
        (
            _set("tensors", "model.layers.0.weight", "shape", value=[5, "6"]),
            "tensors.model.layers.0.weight.shape",
        ),
        (_set("data", value="mnist"), "data"),
        (_set("data", value=[1, 2]), "data"),
        (_set("data", "rho", value="9.25"), "data.rho"),
        (_set("data", "rho", value=None), "data.rho"),
        (_set("data", "rho", value=-1.0), "data.rho"),
        (_set("data", "image_shape", value=["x"]), "data.image_shape"),
        (_set("data", "image_shape", value=[28, 0]), "data.image_shape"),
        (_set("data", "recipe", value={"loader": 7}), "data.recipe"),
        (_set("state", "layer", value="2"), "state.layer"),
        (_set("state", "history", value=[{"layer": "one"}]), "state.history"),
        (_set("history", value={"layer": 1}), "history"),
        (_set("seed", value="3"), "seed"),
        (_set("versions", value=["torch"]), "versions"),
        (_set("model_config", value=[6, 5, 4]), "model_config"),
        (_set("model_config", "layers", 0, "n_hidden", value="5"), "model_config"),
        (_set("model_config", "layers", value=None), "model_config"),
        (_set("tensor_sha256", value=12), "tensor_sha256"),
        (_set("tensor_file", value="../../elsewhere.safetensors"), "tensor_file"),
        (_set("tensor_file", value=17), "tensor_file"),
        (_set("format_version", value=True), "format_version"),
        (_set("model_kind", value=None), "model_kind"),
    ],
)
def test_a_mistyped_field_is_named(saved: Path, edit: Callable[[dict[str, Any]], None], field: str) -> None:
    _edit(saved, edit)
    for load in (read_checkpoint, load_model):
        with pytest.raises(UnitlensError) as error:
            load(saved)  # type: ignore[operator]
        assert "m.json" in str(error.value) and field in str(error.value), str(error.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nests 100000 levels"),
        (
            b'{"format": "unitlens-checkpoint", "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
            "nests 5001 levels",
        ),
        (b'{"format": "unitlens-checkpoint", "\xff\xfe": 1}', "not UTF-8"),
        (b"\xff\xfe\x00\x00", "not UTF-8"),
        (b"[1, 2, 3]", "not a unitlens checkpoint"),
        (b'"unitlens-checkpoint"', "not a unitlens checkpoint"),
        (b'{"format": "unitlens-checkpoint", "format_version": NaN}', "not valid JSON"),
        (b'{"format": "unitlens-checkpoint", "format_version": 1e999}', "not valid JSON"),
        (b'{"format": "unitlens-checkpoint", "format_version": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_unparseable_metadata_is_refused_before_it_is_used(saved: Path, content: bytes, message: str) -> None:
    paths_for(saved)[1].write_bytes(content)
    for load in (read_checkpoint, load_model):
        with pytest.raises(UnitlensError, match=message) as error:
            load(saved)  # type: ignore[operator]
        assert "m.json" in str(error.value)


def test_a_huge_metadata_file_is_refused_unread(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import unitlens.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "MAX_META_BYTES", 1000)
    with pytest.raises(UnitlensError, match=r"m\.json is \d+ bytes, more than the 1000"):
        load_model(saved)


def test_an_edited_json_is_detected(saved: Path) -> None:
    """Edited without re-signing: a value changed within its range (rho 9.25 -> 9.5) is still caught."""
    meta_path = paths_for(saved)[1]
    meta_path.write_text(meta_path.read_text().replace('"rho": 9.25', '"rho": 9.5'))
    with pytest.raises(UnitlensError, match=r"m\.json was edited or damaged.*'meta_sha256'"):
        load_model(saved)
    # Reformatting the JSON is no edit: the hash is of its canonical form.
    meta_path.write_text(json.dumps(json.loads(meta_path.read_text().replace("9.5", "9.25")), indent=7))
    load_model(saved)


# ------------------------------------------------------------------------------------------ properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
DELETE = object()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position in a JSON tree, as a path of keys and indices."""
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


@pytest.fixture(scope="module")
def originals() -> Iterator[dict[str, tuple[Path, dict[str, Any]]]]:
    """One checkpoint of every model kind (with a run's metadata): its stem and its parsed JSON."""
    with tempfile.TemporaryDirectory() as folder:
        out = {}
        for kind, make in MODELS.items():
            stem = Path(folder) / kind
            save_checkpoint(stem, make(), meta=copy.deepcopy(RUN_META))
            out[kind] = (stem, json.loads(paths_for(stem)[1].read_text()))
        yield out


def _only_unitlens_errors(path: Path) -> None:
    with contextlib.suppress(UnitlensError):
        _consumers(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(MODELS)), data=st.data())
def test_any_field_replaced_by_any_json_raises_only_unitlens_error(
    originals: dict[str, tuple[Path, dict[str, Any]]], kind: str, data: st.DataObject
) -> None:
    stem, original = originals[kind]
    meta = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        where = data.draw(st.sampled_from(list(_paths(meta))), label="where")
        value = data.draw(json_values | st.just(DELETE), label="value")
        parent: Any = meta
        for key in where[:-1]:
            parent = parent[key]
        if value is DELETE:
            del parent[where[-1]]
        else:
            parent[where[-1]] = value
    sign = data.draw(st.booleans(), label="sign")
    meta_path = paths_for(stem)[1]
    try:
        meta_path.write_text(json.dumps(_sign(meta) if sign else meta))
        _only_unitlens_errors(stem)
    finally:
        meta_path.write_text(json.dumps(original))


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_any_json_value_as_metadata_raises_only_unitlens_error(
    originals: dict[str, tuple[Path, dict[str, Any]]], value: Any
) -> None:
    stem, original = originals["rbm"]
    meta_path = paths_for(stem)[1]
    try:
        meta_path.write_text(json.dumps(value))
        _only_unitlens_errors(stem)
        meta_path.write_text(json.dumps(_sign({**original, "extra": value})))  # anything in a free field
        _consumers(stem)
    finally:
        meta_path.write_text(json.dumps(original))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_metadata_raise_only_unitlens_error(
    originals: dict[str, tuple[Path, dict[str, Any]]], raw: bytes
) -> None:
    stem, original = originals["rbm"]
    meta_path = paths_for(stem)[1]
    try:
        meta_path.write_bytes(raw)
        _only_unitlens_errors(stem)
    finally:
        meta_path.write_text(json.dumps(original))


@settings(max_examples=200, deadline=None)
@given(header=json_values, body=st.binary(max_size=64), prefix=st.sampled_from(["exact", "long", "short"]))
def test_any_tensor_file_header_raises_only_unitlens_error(
    originals: dict[str, tuple[Path, dict[str, Any]]], header: Any, body: bytes, prefix: str
) -> None:
    """A tensor file with any header (its hash recorded, so the header itself is what is parsed)."""
    stem, original = originals["rbm"]
    tensor_path, meta_path = paths_for(stem)
    saved_tensors = tensor_path.read_bytes()
    raw = json.dumps(header).encode()
    n = len(raw) + {"exact": 0, "long": 10**6, "short": -1}[prefix]
    blob = max(n, 0).to_bytes(8, "little") + raw + body
    try:
        tensor_path.write_bytes(blob)
        meta = {
            **original,
            "tensor_sha256": hashlib.sha256(blob).hexdigest(),
            "tensor_file": tensor_path.name,
        }
        meta_path.write_text(json.dumps(_sign(meta)))
        _only_unitlens_errors(stem)
    finally:
        tensor_path.write_bytes(saved_tensors)
        meta_path.write_text(json.dumps(original))


def test_a_valid_header_with_other_tensors_is_named(saved: Path) -> None:
    """A sound safetensors file, hashed in the JSON, but holding other tensors than the JSON lists."""
    tensor_path, _ = paths_for(saved)
    blob = st_save({"model.layers.0.weight": torch.zeros(5, 6)})
    tensor_path.write_bytes(blob)
    _edit(saved, _set("tensor_sha256", value=hashlib.sha256(blob).hexdigest()))
    with pytest.raises(
        UnitlensError, match=r"m\.safetensors: the stored tensors differ from the list in .*'tensors'"
    ):
        load_model(saved)
