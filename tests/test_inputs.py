"""Paths as people name their weights: str or os.PathLike, checkpoint prefixes, folders."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rnnbridge
from rnnbridge.inputs import input_files

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHECKPOINT = FIXTURES / "tf1_lstm_forget_bias_half"  # model.ckpt.{index,data-00000-of-00001,meta}, checkpoint
KERAS_CHECKPOINT = FIXTURES / "k2_tf_ckpt_lstm_bigru"
H5 = FIXTURES / "k2_lstm_relu" / "m.h5"


class Where(os.PathLike[str]):
    """An os.PathLike that is not a pathlib.Path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


def layers(model: rnnbridge.Model) -> dict[str, dict[str, np.ndarray]]:
    return {f"{layer.name}/{key}": cell for layer in model.layers for key, cell in layer.cells.items()}


@pytest.mark.parametrize(
    "path", [str(H5), H5, Where(H5), [H5], (str(H5),)], ids=["str", "Path", "PathLike", "list", "tuple"]
)
def test_a_path_is_str_or_pathlike_alone_or_in_a_sequence(path: object) -> None:
    model = rnnbridge.read(path)  # type: ignore[arg-type]
    assert [layer.name for layer in model.layers] == ["lstm_3"] and model.input_name == "m.h5"


@pytest.mark.parametrize("verb", ["read", "inspect", "split", "convert"])
def test_a_missing_path_is_file_not_found(verb: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.h5"
    args = (missing, "pytorch") if verb == "convert" else (missing,)
    with pytest.raises(FileNotFoundError) as raised:
        getattr(rnnbridge, verb)(*args)
    assert raised.value.filename == str(missing)


@pytest.mark.parametrize(
    "name", ["model.ckpt", "model.ckpt.index"], ids=["the prefix TensorFlow names", "the index file"]
)
def test_a_checkpoint_prefix_or_index_brings_its_shards(name: str) -> None:
    files = input_files(CHECKPOINT / name)
    assert sorted(f.name for f in files) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    explicit = rnnbridge.read([CHECKPOINT / "model.ckpt.index", CHECKPOINT / "model.ckpt.data-00000-of-00001"])
    assert layers(rnnbridge.read(CHECKPOINT / name)).keys() == layers(explicit).keys()


def test_a_checkpoint_folder_is_its_latest_checkpoint() -> None:
    files = input_files(KERAS_CHECKPOINT)
    assert sorted(f.name for f in files) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    assert len(rnnbridge.read(KERAS_CHECKPOINT).layers) == 2


def test_a_checkpoint_state_file_naming_an_absolute_path_is_read_inside_the_folder(tmp_path: Path) -> None:
    """``checkpoint`` files record the path where they were written; only the name counts."""
    folder = tmp_path / "moved"
    shutil.copytree(CHECKPOINT, folder)
    assert "/work/" in (folder / "checkpoint").read_text()
    assert {f.path.parent for f in input_files(folder)} == {folder}


def test_a_savedmodel_folder(tmp_path: Path) -> None:
    with zipfile.ZipFile(FIXTURES / "k2_savedmodel_lstm_bigru" / "saved_model.zip") as archive:
        archive.extractall(tmp_path / "saved_model")
    names = {f.name for f in input_files(tmp_path / "saved_model")}
    assert {"saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"} <= names
    from_folder = rnnbridge.read(tmp_path / "saved_model")
    from_archive = rnnbridge.read(FIXTURES / "k2_savedmodel_lstm_bigru" / "saved_model.zip")
    assert layers(from_folder).keys() == layers(from_archive).keys() and len(from_folder.layers) == 2


def test_links_inside_a_folder_are_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(H5, folder / "m.h5")
    (folder / "elsewhere.h5").symlink_to(H5)
    assert [f.name for f in input_files(folder)] == ["m.h5"]


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(rnnbridge.InvalidField, match="holds no file"):
        rnnbridge.read(tmp_path)
