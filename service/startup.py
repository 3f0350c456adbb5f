"""What a worker checks and loads before it answers its first request.

``import_served()`` imports every module a request can reach — each reader, writer and
discovery module — so that a running server never imports code from disk mid-request: an
upgrade or an editable reinstall that replaces the installed package under a running server
(modules renamed or moved) cannot turn a request into a 500 ``ModuleNotFoundError``. The
HDF5 reader processes (``rnnbridge.formats.hdf5.isolation``) are separate interpreters; each
imports its reader when it starts, and the first is started with the worker.

``check_spool(path)`` is the start-up check of ``RNNBRIDGE_TMP_DIR``: a missing or unwritable
spool directory stops the server with one line instead of answering every upload 500.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import tempfile
from pathlib import Path

from rnnbridge.errors import InvalidField

#: the packages whose every module a request may need (the service and schemas are imported already)
SERVED_PACKAGES = ("rnnbridge.formats", "rnnbridge.discovery", "rnnbridge.engine")
SERVED_MODULES = (
    "rnnbridge.pipeline",
    "rnnbridge.result",
    "rnnbridge.readback",
    "rnnbridge.options",
    "rnnbridge.inputs",
    "rnnbridge.outputs",
    "rnnbridge.output_sizes",
    "rnnbridge.filenames",
    "rnnbridge.describe",
    "rnnbridge.verbs",
)
#: optional compiled modules: absent where no C compiler was at hand, with a pure fallback
OPTIONAL = frozenset({"rnnbridge.engine._transpose"})


def import_served() -> list[str]:
    """Import every module a request may reach; their names, in import order."""
    names = list(SERVED_MODULES)
    for package in SERVED_PACKAGES:
        path = importlib.import_module(package).__path__
        names += [package] + [info.name for info in pkgutil.walk_packages(path, prefix=f"{package}.")]
    imported = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            if name not in OPTIONAL:
                raise
            continue
        imported.append(name)
    return imported


def check_spool(path: Path | None) -> Path:
    """The spool directory (``path`` or the system temp dir), checked by writing a file into it;
    ``InvalidField`` (one line: what is wrong and what to do) if it cannot hold uploads."""
    folder = Path(tempfile.gettempdir()) if path is None else path
    where = f"RNNBRIDGE_TMP_DIR={folder}" if path is not None else f"the temp directory {folder}"
    if not folder.exists():
        raise _invalid(f"{where} does not exist: create it, or point RNNBRIDGE_TMP_DIR at a writable directory")
    if not folder.is_dir():
        raise _invalid(f"{where} is not a directory: point RNNBRIDGE_TMP_DIR at a writable directory")
    try:
        with tempfile.TemporaryFile(prefix="rnnbridge-probe-", dir=folder) as probe:
            probe.write(b"\0")
            os.fsync(probe.fileno())
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _invalid(f"{where} is not writable ({reason}): give the server's user write access") from None
    return folder


def _invalid(message: str) -> InvalidField:
    return InvalidField(message, field="RNNBRIDGE_TMP_DIR")
