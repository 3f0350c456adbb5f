"""Fixtures of the hostile-input tests: marker folders that must stay untouched."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hostile import make_corpus


def _atime_is_updated(folder: Path) -> bool:
    """Whether reading a file whose atime is older than its mtime updates the atime here."""
    probe = folder / "atime-probe"
    probe.write_bytes(b"probe")
    os.utime(probe, (0, probe.stat().st_mtime))
    probe.read_bytes()
    updated = probe.stat().st_atime != 0
    probe.unlink()
    return updated


@dataclass
class Markers:
    """A folder of read markers (``secret.*``) and of paths that must never be written.

    Every marker gets atime 0 (older than its mtime), so that on a filesystem that
    records access times at all (``relatime`` included) any read of it moves its atime.
    """

    dir: Path
    contents: dict[str, bytes] = field(default_factory=dict)
    tracks_reads: bool = False

    @classmethod
    def create(cls, dir: Path) -> Markers:
        dir.mkdir(parents=True, exist_ok=True)
        tracks_reads = _atime_is_updated(dir)
        contents = make_corpus.write_markers(dir)
        for name in contents:
            path = dir / name
            os.utime(path, (0, path.stat().st_mtime))
        return cls(dir, contents, tracks_reads)

    def assert_untouched(self, *responses: bytes) -> None:
        """No marker read, changed or added; no response carrying a marker's bytes."""
        assert sorted(p.name for p in self.dir.iterdir()) == sorted(self.contents)
        for name, data in self.contents.items():
            path = self.dir / name
            if self.tracks_reads:
                assert path.stat().st_atime == 0, f"{name} was read"
            assert path.read_bytes() == data
            if self.tracks_reads:
                os.utime(path, (0, path.stat().st_mtime))  # the check itself read it
        for body in responses:
            assert make_corpus.SECRET[:24] not in body
            assert make_corpus.SECRET_VALUES.tobytes()[:8] not in body


@pytest.fixture
def markers(tmp_path: Path) -> Markers:
    return Markers.create(tmp_path / "markers")
