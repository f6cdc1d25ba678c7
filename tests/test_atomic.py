from pathlib import Path

import pytest

from unitlens.atomic import atomic_path, write_bytes, write_text


def test_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "f.txt"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    write_bytes(target, b"old")

    def crash() -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        crash()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_a_folder_where_a_file_goes_is_one_clear_error(tmp_path: Path) -> None:
    from unitlens.checkpoint import save_checkpoint
    from unitlens.errors import UnitlensError
    from unitlens.models.rbm import RBM

    (tmp_path / "log.jsonl").mkdir()
    with pytest.raises(UnitlensError, match=r"log\.jsonl is a folder where unitlens keeps a file"):
        write_text(tmp_path / "log.jsonl", "x")
    (tmp_path / "ck.safetensors").mkdir()
    with pytest.raises(UnitlensError, match=r"ck\.safetensors is a folder where unitlens keeps a checkpoint"):
        save_checkpoint(tmp_path / "ck", RBM(3, 2))
    assert not list(tmp_path.glob("ck.*.safetensors")) and not (tmp_path / "ck.json").exists()
