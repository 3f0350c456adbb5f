"""Truncated and bit-flipped versions of every real fixture: a clean 4xx or a result.

The sweep is seeded (``random.Random(name)``), so a failure names a reproducible
mutation. Every upload of every fixture (``tests/fixtures_index.FIXTURE_LAYERS``: the
shared fixtures and the local ones; a TF checkpoint is its index and data shards
together) is damaged in each of its files:

* truncated to 0, 1, 17 bytes, half, and all but one byte;
* one random byte XOR-ed with a random non-zero value, four times, and one bit flipped
  in the first 64 bytes (where the headers are).

Each damaged upload is read, inspected and converted with ``rnnbridge.pipeline`` (every
``RnnBridgeError`` except ``VerificationFailed`` is a clean 4xx); one truncation and one
flip per upload also go through the real app, which must answer below 500 with
problem+json for errors.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnnbridge import pipeline
from rnnbridge.errors import RnnBridgeError, VerificationFailed
from rnnbridge.formats.base import InputFile, Limits
from tests.fixtures_index import BARE_ARRAY_SOURCES, FIXTURE_LAYERS

#: small enough that a lying size is refused fast, larger than every fixture
LIMITS = Limits(max_tensor_elements=2**22, max_total_bytes=64 << 20)
_SIDE_FILES = ("checkpoint", "object_graph.pb")  # not uploads: a TF state file, a copy of a bundle entry


def uploads() -> dict[str, list[Path]]:
    """Every upload the fixtures make: ``{id: [files]}``."""
    out: dict[str, list[Path]] = {}
    for fixture in FIXTURE_LAYERS:
        files = [f for f in fixture.files() if f.name not in _SIDE_FILES and f.suffix != ".meta"]
        bundle = [f for f in files if f.name.endswith(".index") or ".data-" in f.name]
        if bundle:
            out[f"{fixture.fixture['id']}/ckpt"] = bundle
        for f in files:
            if f.is_dir():
                continue  # an Orbax checkpoint folder, refused as a whole (tests/formats/test_flax_msgpack.py)
            if f.suffix == ".xml" and f.with_suffix(".bin").is_file():
                out[f"{fixture.fixture['id']}/{f.name}"] = [f, f.with_suffix(".bin")]  # an OpenVINO IR
            elif f not in bundle and not (f.suffix == ".bin" and f.with_suffix(".xml").is_file()):
                out[f"{fixture.fixture['id']}/{f.name}"] = [f]
            if f.suffix == ".npz":
                SOURCES[f"{fixture.fixture['id']}/{f.name}"] = BARE_ARRAY_SOURCES.get(fixture.fixture["source"])
    return dict(sorted(out.items()))


#: the ``source=`` of the uploads of bare arrays (npz) written by a known framework
SOURCES: dict[str, str | None] = {}


UPLOADS = uploads()


def mutations(data: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """``(label, damaged bytes)`` for one file."""
    for keep in sorted({0, 1, 17, len(data) // 2, len(data) - 1}):
        if keep < len(data):
            yield f"truncate@{keep}", data[:keep]
    for _ in range(4):
        pos, value = rng.randrange(len(data)), rng.randrange(1, 256)
        yield f"xor@{pos}^{value}", data[:pos] + bytes([data[pos] ^ value]) + data[pos + 1 :]
    pos, bit = rng.randrange(min(64, len(data))), rng.randrange(8)
    yield f"bit@{pos}.{bit}", data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1 :]


def damaged(upload: list[Path], folder: Path, seed: str) -> Iterator[tuple[str, list[InputFile]]]:
    """Copies of ``upload`` in ``folder``, one file damaged at a time."""
    rng = random.Random(seed)
    for victim in upload:
        for label, data in mutations(victim.read_bytes(), rng):
            case = folder / f"{victim.name}-{label}"
            case.mkdir()
            files = []
            for f in upload:
                target = case / f.name
                if f == victim:
                    target.write_bytes(data)
                else:
                    shutil.copyfile(f, target)
                files.append(InputFile(f.name, target))
            yield f"{victim.name} {label}", files


def run(files: list[InputFile], source: str | None = None) -> str:
    """Read, inspect and convert ``files``; the outcome as ``ok`` or the error code."""
    try:
        model = pipeline.read(files, source=source, limits=LIMITS)
        pipeline.inspect(model)
        target = "onnx" if model.format != "onnx" else "keras"
        for layer in model.layers:
            try:
                pipeline.convert(model, target, layer=layer.name)
            except RnnBridgeError as exc:
                if isinstance(exc, VerificationFailed):
                    raise
        return "ok"
    except VerificationFailed:
        raise
    except RnnBridgeError as exc:
        return exc.code


def needs_source(upload: list[Path]) -> bool:
    return upload[0].suffix in (".npz", ".json")


@pytest.mark.skipif(not UPLOADS, reason="no fixtures")
@pytest.mark.parametrize("name", list(UPLOADS))
def test_damaged_fixture_reads_cleanly_or_refuses(name, tmp_path):
    source = SOURCES.get(name)
    outcomes = {label: run(files, source) for label, files in damaged(UPLOADS[name], tmp_path, name)}
    assert outcomes  # every outcome is "ok" or an error code: anything else raised above
    intact = [InputFile(f.name, f) for f in UPLOADS[name]]
    assert run(intact, source) == "ok"


@pytest.mark.skipif(not UPLOADS, reason="no fixtures")
@pytest.mark.parametrize("name", list(UPLOADS))
def test_damaged_fixture_over_http(name, client, tmp_path, test_settings):
    cases = list(damaged(UPLOADS[name], tmp_path, name))
    for label, files in (cases[len(cases) // 3], cases[-1]):
        upload = [("file", (f.name, f.path.read_bytes())) for f in files]
        response = client.post("/convert", files=upload, data={"target": "onnx"})
        assert response.status_code < 500, (label, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
            assert b"Traceback" not in response.content
    assert list(test_settings.tmp_dir.iterdir()) == []
