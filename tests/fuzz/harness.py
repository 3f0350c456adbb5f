"""Fuzzing every reader: seed uploads, byte mutations, and the one property that must hold.

The property: ``rnnbridge.pipeline.read`` (sniffing, the reader, the layer finders) followed
by ``pipeline.inspect`` either returns or raises an ``RnnBridgeError`` other than
``VerificationFailed``; anything else (an ``IndexError``, a ``struct.error``, a
``MemoryError``, a NumPy warning turned error) is a bug. ``outcome`` returns the error
code, or ``"ok"``, and lets any other exception through.

Used by ``tests/fuzz/test_readers.py`` (a CI-sized hypothesis run) and by
``tools/fuzz.py`` (long runs).
"""

from __future__ import annotations

import functools
import io
import json
import random
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnbridge import pipeline
from rnnbridge.errors import RnnBridgeError, VerificationFailed
from rnnbridge.formats.base import InputFile, Limits

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "tests" / "fixtures"
SHARED = LOCAL / "shared"  # the committed copy of the shared fixtures
#: bounds that make a lying size fail fast (far above every seed)
LIMITS = Limits(max_tensor_elements=2**20, max_total_bytes=16 << 20)

Upload = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Seed:
    """A valid upload for one reader; ``victims`` are the indexes of the files to mutate."""

    reader: str
    files: Callable[[], Upload]
    victims: tuple[int, ...] = (0,)
    source: str | None = None


def _first(*paths: Path) -> Path:
    return next(p for p in paths if p.is_file())


def _read(*paths: Path) -> Callable[[], Upload]:
    return lambda: [(p.name, p.read_bytes()) for p in paths]


def _state_dict() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "rnn.weight_ih_l0": rng.uniform(-1, 1, (12, 2)).astype(np.float32),
        "rnn.weight_hh_l0": rng.uniform(-1, 1, (12, 3)).astype(np.float32),
        "rnn.bias_ih_l0": rng.uniform(-1, 1, 12).astype(np.float32),
    }


def _npz() -> Upload:
    buffer = io.BytesIO()
    np.savez(buffer, **_state_dict())
    return [("w.npz", buffer.getvalue())]


def _json() -> Upload:
    arrays = {
        k: {"dtype": "float32", "shape": list(v.shape), "data": v.ravel().tolist()} for k, v in _state_dict().items()
    }
    return [("w.json", json.dumps({"arrays": arrays}).encode())]


def seeds() -> dict[str, Seed]:
    """One seed per reader of ``rnnbridge.formats.FORMATS``, from the real fixtures."""
    tf1 = SHARED / "tf1_lstm"
    return {
        "keras_zip": Seed("keras_zip", _read(SHARED / "k3_lstm" / "m.keras")),
        "torch": Seed(
            "torch", _read(_first(LOCAL / "torch_lstm_no_bias" / "model.pt", SHARED / "torch_lstm_1l" / "model.pt"))
        ),
        "npz": Seed("npz", _npz, source="pytorch"),
        "tf_checkpoint": Seed(
            "tf_checkpoint", _read(tf1 / "model.ckpt.index", tf1 / "model.ckpt.data-00000-of-00001"), victims=(0, 1)
        ),
        "keras_h5": Seed("keras_h5", _read(SHARED / "k2_lstm_seq" / "m.h5")),
        "safetensors": Seed(
            "safetensors",
            _read(
                _first(
                    LOCAL / "torch_lstm_no_bias" / "model.safetensors", SHARED / "torch_lstm_1l" / "model.safetensors"
                )
            ),
        ),
        "onnx": Seed("onnx", _read(SHARED / "onnx_lstm_forward" / "model.onnx")),
        "json": Seed("json", _json, source="pytorch"),
    }


#: the structural bombs of issue 13 as seeds, each just past the cap it exercises (so
#: that mutations land on both sides of it) and small enough to read in well under a second
BOMB_SIZES: dict[str, dict[str, int]] = {
    "json_unterminated_escapes": {"pairs": 20_000},
    "keras_unterminated_escapes": {"pairs": 200_000},
    "npz_meta_bomb": {"lists": 300_000},
    "sstable_prefix_bomb": {"entries": 1_100},
    "torch_empty_sets": {"opcodes": 600_000},
    "keras_config_lists": {"lists": 300_000},
    "onnx_empty_nodes": {"nodes": 70_000},
    "json_floats": {"values": 50_000},
    "keras_zero_weights": {"mib": 70},
    "pickle_echo": {"items": 2_000},
    "onnx_many_dims": {"dims": 1_000},
    "safetensors_huge_empty_shape": {},
    "json_huge_empty_shape": {},
}


def bomb_seeds() -> dict[str, Seed]:
    """One seed per structural bomb (``tests.hostile.bombs``), named ``bomb-<name>``."""
    from tests.hostile import bombs

    out = {}
    for name, sizes in BOMB_SIZES.items():
        made = functools.cache(functools.partial(bombs.BOMBS[name], **sizes))
        file_name = made()[0]
        source = "pytorch" if file_name.endswith((".json", ".npz")) else None
        out[f"bomb-{name}"] = Seed(f"bomb-{name}", lambda made=made: [made()], source=source)
    return out


def available_seeds(with_bombs: bool = False) -> dict[str, Seed]:
    """The seeds whose files exist here (and the bombs' with ``with_bombs``)."""
    out = {}
    candidates = {**seeds(), **(bomb_seeds() if with_bombs else {})}
    for name, seed in candidates.items():
        try:
            seed.files()
        except (OSError, StopIteration):
            continue
        out[name] = seed
    return out


# ------------------------------------------------------------------------ mutations

#: (kind, position in [0, 1), payload) — kinds: flip, set, insert, delete, truncate, splice
Op = tuple[str, float, bytes]
KINDS = ("flip", "set", "insert", "delete", "truncate", "splice")
INTERESTING = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x80",
    b"\xff" * 8,
    b"\x01\x00\x00\x00\x00\x00\x00\x00",
]


def mutate(data: bytes, ops: Sequence[Op]) -> bytes:
    """Apply ``ops`` to ``data`` in order."""
    buf = bytearray(data)
    for kind, where, payload in ops:
        pos = int(where * len(buf)) if buf else 0
        if kind == "flip" and buf:
            buf[pos] ^= 1 << (payload[0] % 8 if payload else 0)
        elif kind == "set" and buf:
            buf[pos : pos + len(payload)] = payload
        elif kind == "insert":
            buf[pos:pos] = payload
        elif kind == "delete":
            del buf[pos : pos + max(1, len(payload))]
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "splice" and buf:  # copy a slice of the file elsewhere (repeats structures)
            start = int((payload[0] if payload else 0) / 256 * len(buf))
            buf[pos:pos] = buf[start : start + 64]
    return bytes(buf)


def random_ops(rng: random.Random, max_ops: int = 6) -> list[Op]:
    """Random mutation ops, for runs without hypothesis."""
    ops = []
    for _ in range(rng.randint(1, max_ops)):
        payload = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 8))
        ops.append((rng.choice(KINDS), rng.random(), payload))
    return ops


# ------------------------------------------------------------------------ property


def outcome(files: Upload, folder: Path, source: str | None = None) -> str:
    """Write ``files`` into ``folder`` (which must be empty), read and inspect them."""
    inputs = []
    for i, (name, data) in enumerate(files):
        path = folder / f"{i}-{name}"
        path.write_bytes(data)
        inputs.append(InputFile(name, path))
    try:
        model = pipeline.read(inputs, source=source, limits=LIMITS)
        pipeline.inspect(model)
        return "ok"
    except VerificationFailed:
        raise
    except RnnBridgeError as exc:
        return exc.code


def mutated(seed: Seed, victim: int, ops: Sequence[Op]) -> Upload:
    files = seed.files()
    name, data = files[victim]
    files[victim] = (name, mutate(data, ops))
    return files


def as_zip(files: Upload) -> bytes:
    """The upload as one zip archive (the archive path of ``rnnbridge.formats``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files:
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()
