"""The paths a user names, as the files of one upload.

A path on disk says more than an HTTP upload can, and people name weights the way their
framework does:

* a file is itself; a TensorFlow checkpoint index ``model.ckpt.index`` brings the data
  shards beside it (``model.ckpt.data-00000-of-00002``, ...);
* a TensorFlow checkpoint *prefix* ``model.ckpt``, which is no file, is the index
  ``model.ckpt.index`` and its shards;
* a folder is every regular file below it, named by its path inside the folder (a
  SavedModel: ``saved_model.pb``, ``variables/variables.index``, ...); a checkpoint
  folder with a ``checkpoint`` state file is the latest checkpoint it names.

A path that is none of these is ``FileNotFoundError``. Symbolic links inside a folder are
not followed, and a folder of more than ``MAX_FOLDER_FILES`` files is refused.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from rnnbridge.errors import InvalidField
from rnnbridge.formats.base import InputFile

PathLike = str | os.PathLike[str]
#: one path, one file already named, or several of either: what the API verbs accept
Inputs = PathLike | InputFile | Sequence[PathLike | InputFile]

MAX_FOLDER_FILES = 10_000
_SHARD = re.compile(r"\.data-\d{5}-of-\d{5}$")
_LATEST = re.compile(r'^model_checkpoint_path:\s*"([^"]+)"\s*$', re.MULTILINE)


def input_files(inputs: Inputs) -> list[InputFile]:
    """The files of one upload, from paths (see the module) or ``InputFile``\\ s."""
    if isinstance(inputs, (str, os.PathLike, InputFile)):
        inputs = [inputs]
    files: list[InputFile] = []
    for item in inputs:
        found = [item] if isinstance(item, InputFile) else _expand(Path(os.fspath(item)))
        files += [f for f in found if f not in files]
    return files


def _expand(path: Path) -> list[InputFile]:
    if path.is_dir():
        return _folder(path)
    if path.is_file():
        if path.name.endswith(".index"):
            return [_file(path), *_shards(path.with_name(path.name.removesuffix(".index")))]
        return [_file(path)]
    index = path.with_name(path.name + ".index")
    if path.name and index.is_file():
        return [_file(index), *_shards(path)]
    raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(path))


def _file(path: Path, name: str | None = None) -> InputFile:
    return InputFile(name or path.name, path)


def _shards(prefix: Path) -> list[InputFile]:
    """The data shards ``<prefix>.data-NNNNN-of-NNNNN`` beside a checkpoint index."""
    folder = prefix.parent if str(prefix.parent) else Path(".")
    start = prefix.name + ".data-"
    return [
        _file(entry)
        for entry in sorted(folder.iterdir())
        if entry.name.startswith(start) and _SHARD.search(entry.name) and entry.is_file()
    ]


def _folder(folder: Path) -> list[InputFile]:
    latest = _latest_checkpoint(folder)
    if latest is not None:
        return [_file(latest), *_shards(latest.with_name(latest.name.removesuffix(".index")))]
    files = [
        _file(path, path.relative_to(folder).as_posix()) for path in _walk(folder) if not path.name.startswith(".")
    ]
    if not files:
        raise InvalidField(f"the folder {folder} holds no file", field="file")
    return files


def _latest_checkpoint(folder: Path) -> Path | None:
    """The index named by a TensorFlow ``checkpoint`` state file, if it is in ``folder``."""
    state = folder / "checkpoint"
    if not state.is_file() or state.stat().st_size > 1 << 20:
        return None
    found = _LATEST.search(state.read_text(errors="replace"))
    if found is None:
        return None
    name = found.group(1)
    index = folder / (Path(name).name + ".index")
    return index if index.is_file() else None


def _walk(folder: Path) -> Iterable[Path]:
    count = 0
    for root, dirs, names in os.walk(folder):  # os.walk does not follow links to folders
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if path.is_symlink() or not path.is_file():
                continue
            count += 1
            if count > MAX_FOLDER_FILES:
                raise InvalidField(f"the folder {folder} holds more than {MAX_FOLDER_FILES} files", field="file")
            yield path
