"""What every framework's layer finder shares."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnbridge.engine.facts import keras_activation
from rnnbridge.engine.model import NativeLayer

__all__ = ["Found", "count_other", "keras_activation", "make_names_safe", "safe_name"]


@dataclass
class Found:
    layers: list[NativeLayer] = field(default_factory=list)
    other_tensors: int = 0
    notes: list[str] = field(default_factory=list)
    unsupported: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, name: str, kind: str, reason: str) -> None:
        """List a recurrent layer rnnbridge finds but does not convert, with the reason."""
        self.unsupported.append({"name": name, "kind": kind, "reason": reason})


_MAX_NAME = 128


#: characters no output name keeps: those Windows refuses in file names (``/`` separates segments)
_UNSAFE_IN_FILE_NAMES = frozenset('<>:"|?*')


def _unsafe(c: str) -> bool:
    """Control and format characters (bidi overrides such as U+202E included), and ``<>:"|?*``."""
    return c in _UNSAFE_IN_FILE_NAMES or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def safe_name(name: str) -> str:
    """A name from a file, made safe to become part of an output name, a zip member name
    or a header: relative ``/``-separated segments, no ``.``/``..`` segments, no control or
    format characters (bidi overrides such as U+202E would make a name display as another),
    none of ``<>:"|?*`` (refused in Windows file names), at most 128 characters (a longer
    one keeps a hash of the rest)."""
    cleaned = "".join("_" if _unsafe(c) else c for c in name.replace("\\", "/"))
    segments = ["__" if s == ".." else s for s in cleaned.split("/") if s not in ("", ".")]
    safe = "/".join(segments) or "layer"
    if len(safe) > _MAX_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        safe = f"{safe[: _MAX_NAME - 13]}~{digest}"
    return safe


def make_names_safe(found: Found) -> None:
    """Give every layer a safe, unique name; say which names changed."""
    taken: set[str] = set()
    for layer in found.layers:
        safe = candidate = safe_name(layer.name)
        n = 1
        while candidate in taken:
            n += 1
            candidate = f"{safe}~{n}"
        taken.add(candidate)
        if candidate != layer.name:
            found.notes.append(f"layer name {layer.name[:200]!r} is used as {candidate!r}")
            layer.name = candidate


def count_other(arrays: dict[str, np.ndarray], used: set[str]) -> int:
    """How many arrays belong to no recurrent layer."""
    return sum(1 for name in arrays if name not in used)
