"""Archive expansion: real checkpoint folders round-trip; hostile members are refused."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput
from rnnbridge.formats import archive
from rnnbridge.formats.base import InputFile, Limits

from ..fixtures_index import SHARED_FIXTURES as FIXTURES

CKPT = ["model.ckpt.index", "model.ckpt.data-00000-of-00001", "checkpoint"]


@pytest.fixture
def ckpt_dir() -> Path:
    folder = FIXTURES / "tf1_lstm"
    if not folder.is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    return folder


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    out = tmp_path / "dest"
    out.mkdir()
    return out


def _zip(path: Path, members: dict[str, bytes], *, mode: int | None = None) -> InputFile:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.create_system, info.external_attr = 3, mode << 16
            z.writestr(info, data, zipfile.ZIP_DEFLATED)
    return InputFile(path.name, path)


def _tar(
    path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], gz: bool = False
) -> InputFile:
    with tarfile.open(path, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as t:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                t.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                t.addfile(info, io.BytesIO(member[1]))
    return InputFile(path.name, path)


def _special(name: str, kind: bytes, **fields: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _outside(tmp_path: Path, dest: Path) -> list[Path]:
    """Everything under ``tmp_path`` that is neither an input archive nor under ``dest``."""
    return [
        p
        for p in tmp_path.rglob("*")
        if p != dest and dest not in p.parents and not p.name.startswith("in.")
    ]


# ---------------------------------------------------------------------- round trips


ARCHIVE_KINDS = ["zip", "tar", "tar.gz"]


def _pack(kind: str, path: Path, members: dict[str, bytes]) -> InputFile:
    if kind == "zip":
        return _zip(path, members)
    return _tar(path, list(members.items()), gz=kind == "tar.gz")


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
def test_checkpoint_folder_round_trips(tmp_path, dest, ckpt_dir, kind):
    members = {f"run1/{name}": (ckpt_dir / name).read_bytes() for name in CKPT}
    packed = _pack(kind, tmp_path / f"in.{kind}", members)
    assert archive.is_archive(packed)
    out = archive.expand([packed], Limits(), dest)
    assert [f.name for f in out] == list(members)
    for f in out:
        assert f.path.read_bytes() == members[f.name]
        assert dest in f.path.parents


def test_expanded_checkpoint_is_readable(tmp_path, dest, ckpt_dir):
    from rnnbridge.formats.tf import checkpoint as tf_checkpoint

    packed = _zip(tmp_path / "in.zip", {f"a/{n}": (ckpt_dir / n).read_bytes() for n in CKPT})
    files = archive.expand([packed], Limits(), dest)
    assert set(tf_checkpoint.read(files, Limits()).tensors) == {
        "rnn/lstm_cell/kernel",
        "rnn/lstm_cell/bias",
    }


def test_non_archives_pass_through(tmp_path, dest, ckpt_dir):
    files = [InputFile(n, ckpt_dir / n) for n in CKPT]
    assert archive.expand(files, Limits(), dest) == files
    assert list(dest.iterdir()) == []


def test_archives_and_plain_files_mix(tmp_path, dest, ckpt_dir):
    plain = InputFile("notes.txt", ckpt_dir / "checkpoint")
    first = _zip(tmp_path / "in.1.zip", {"x/model.bin": b"1"})
    second = _tar(tmp_path / "in.2.tar", [("x/model.bin", b"2")])
    out = archive.expand([first, plain, second], Limits(), dest)
    assert [f.name for f in out] == ["x/model.bin", "notes.txt", "x/model.bin"]
    assert [f.path.read_bytes() for f in out] == [
        b"1",
        (ckpt_dir / "checkpoint").read_bytes(),
        b"2",
    ]


@pytest.mark.parametrize(
    ("member", "expected"),
    [("./a/./b.bin", "a/b.bin"), ("a//b.bin", "a/b.bin"), ("a\\b.bin", "a/b.bin")],
)
def test_member_paths_are_normalised(tmp_path, dest, member, expected):
    out = archive.expand([_zip(tmp_path / "in.zip", {member: b"x"})], Limits(), dest)
    assert [f.name for f in out] == [expected]
    assert out[0].path == dest / "0" / "a" / "b.bin"


def test_directories_are_not_returned(tmp_path, dest):
    directory = _special("d", tarfile.DIRTYPE, mode=0o755)
    out = archive.expand([_tar(tmp_path / "in.tar", [directory, ("d/f", b"f")])], Limits(), dest)
    assert [f.name for f in out] == ["d/f"]


# ------------------------------------------------------------------ what is an archive


WEIGHT_CONTAINERS = {
    "npz": {"a.npy": b"", "b.npy": b""},
    "keras": {"metadata.json": b"{}", "config.json": b"{}", "model.weights.h5": b""},
    "torch": {"model/data.pkl": b"", "model/version": b"3", "model/data/0": b""},
}


@pytest.mark.parametrize("members", WEIGHT_CONTAINERS.values(), ids=WEIGHT_CONTAINERS.keys())
def test_weight_container_zips_are_not_archives(tmp_path, dest, members):
    packed = _zip(tmp_path / "in.zip", members)
    assert not archive.is_archive(packed)
    assert archive.expand([packed], Limits(), dest) == [packed]


@pytest.mark.parametrize("fixture", ["k3_lstm/m.keras", "torch_lstm_1l/model.pt"])
def test_real_weight_containers_are_not_archives(fixture):
    path = FIXTURES / fixture
    if not path.is_file():
        pytest.skip(f"{path} not found")
    assert not archive.is_archive(InputFile(path.name, path))


@pytest.mark.parametrize(
    "content",
    [b"", b"PK", b"hello" * 200, gzip.compress(b"not a tar" * 100), b"\x1f\x8b garbage"],
    ids=["empty", "short", "text", "gzip-not-tar", "bad-gzip"],
)
def test_other_bytes_are_not_archives(tmp_path, content):
    (tmp_path / "f").write_bytes(content)
    assert not archive.is_archive(InputFile("f.zip", tmp_path / "f"))


# ------------------------------------------------------------------ hostile archives


UNSAFE_NAMES = ["../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt", "..\\evil.txt"]


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_paths_are_refused(tmp_path, dest, kind, name):
    packed = _pack(kind, tmp_path / f"in.{kind}", {"ok.txt": b"fine", name: b"evil"})
    with pytest.raises(UnsafeInput) as err:
        archive.expand([packed], Limits(), dest)
    assert repr(name) in err.value.detail
    assert _outside(tmp_path, dest) == []
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("mode", [stat.S_IFLNK | 0o777, stat.S_IFCHR | 0o644, stat.S_IFIFO | 0o644])
def test_zip_links_and_devices_are_refused(tmp_path, dest, mode):
    packed = _zip(tmp_path / "in.zip", {"link": b"/etc/passwd"}, mode=mode)
    with pytest.raises(UnsafeInput, match="'link'"):
        archive.expand([packed], Limits(), dest)
    assert list(dest.rglob("*")) == [dest / "0"]


TAR_SPECIALS = {
    "symlink": _special("link", tarfile.SYMTYPE, linkname="/etc/passwd"),
    "hardlink": _special("link", tarfile.LNKTYPE, linkname="ok.txt"),
    "char device": _special("link", tarfile.CHRTYPE, devmajor=1, devminor=3),
    "block device": _special("link", tarfile.BLKTYPE, devmajor=8, devminor=0),
    "fifo": _special("link", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("gz", [False, True], ids=["tar", "tar.gz"])
@pytest.mark.parametrize("member", TAR_SPECIALS.values(), ids=TAR_SPECIALS.keys())
def test_tar_links_and_devices_are_refused(tmp_path, dest, member, gz):
    packed = _tar(tmp_path / "in.tar", [("ok.txt", b"fine"), member], gz=gz)
    with pytest.raises(UnsafeInput, match="'link'"):
        archive.expand([packed], Limits(), dest)
    assert not (dest / "0" / "link").exists()
    assert _outside(tmp_path, dest) == []


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
def test_bomb_stops_at_the_limit(tmp_path, dest, kind):
    limit = 1 << 20
    packed = _pack(kind, tmp_path / f"in.{kind}", {"bomb.bin": bytes(10 << 20)})
    assert kind == "tar" or packed.path.stat().st_size < limit
    with pytest.raises(LimitExceeded, match="'bomb.bin'|declares"):
        archive.expand([packed], Limits(max_total_bytes=limit), dest)
    assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) <= limit


def test_zip_header_understating_the_size(tmp_path, dest):
    packed = _zip(tmp_path / "in.zip", {"bomb.bin": bytes(10 << 20)})
    data = bytearray(packed.path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + 22 : local + 26] = data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    packed.path.write_bytes(bytes(data))
    with pytest.raises(MalformedFile):
        archive.expand([packed], Limits(max_total_bytes=1 << 20), dest)
    assert (dest / "0" / "bomb.bin").stat().st_size <= 100


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
def test_total_over_several_members_and_archives(tmp_path, dest, kind):
    first = _pack(kind, tmp_path / f"in.1.{kind}", {"a": bytes(600_000)})
    second = _pack(kind, tmp_path / f"in.2.{kind}", {"b": bytes(300_000), "c": bytes(300_000)})
    with pytest.raises(LimitExceeded):
        archive.expand([first, second], Limits(max_total_bytes=1_000_000), dest)
    assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) <= 1_000_000


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
@pytest.mark.parametrize("extra", [0, 1])
def test_member_count_limit(tmp_path, dest, kind, extra, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBERS", 20)  # tar is counted while extracting
    members = {f"d/f{i}": b"" for i in range(20 + extra)}
    packed = _pack(kind, tmp_path / f"in.{kind}", members)
    if extra:
        with pytest.raises(LimitExceeded, match="more than 20 members"):
            archive.expand([packed], Limits(), dest)
    else:
        assert len(archive.expand([packed], Limits(), dest)) == 20


def test_ten_thousand_and_one_zip_members(tmp_path, dest):
    assert archive.MAX_MEMBERS == 10_000
    members = {f"f{i}": b"" for i in range(10_001)}
    with pytest.raises(LimitExceeded, match="more than 10000 members"):
        archive.expand([_zip(tmp_path / "in.zip", members)], Limits(), dest)
    assert list(dest.rglob("f*")) == []  # refused before extracting anything


def test_huge_pax_header_behind_gzip_is_bounded(tmp_path, dest):
    info = tarfile.TarInfo("f")
    info.pax_headers = {"comment": "x" * (archive._TAR_HEADER_BUDGET + 1024)}
    packed = _tar(tmp_path / "in.tar.gz", [info], gz=True)
    assert packed.path.stat().st_size < 1 << 20
    with pytest.raises(LimitExceeded, match="tar headers"):
        archive.expand([packed], Limits(), dest)


def test_duplicate_zip_members_collide(tmp_path, dest):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate
        packed = _zip(tmp_path / "in.zip", {"a": b"1", "a/b": b"2"})
        with zipfile.ZipFile(packed.path, "a") as z:
            z.writestr("a", b"3")
    with pytest.raises(MalformedFile, match="collides"):
        archive.expand([packed], Limits(), dest)


@pytest.mark.parametrize("kind", ARCHIVE_KINDS)
def test_truncated_archive_is_malformed(tmp_path, dest, kind):
    packed = _pack(kind, tmp_path / f"in.{kind}", {"a": bytes(range(256)) * 400})
    data = packed.path.read_bytes()
    packed.path.write_bytes(data[: len(data) // 2])
    assert archive.is_archive(packed)
    with pytest.raises(MalformedFile):
        archive.expand([packed], Limits(), dest)


def test_a_tar_of_a_folder_made_with_dot_as_root_expands(tmp_path: Path) -> None:
    """``tar czf x.tgz -C folder .`` writes the folder itself as member ``.`` first."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"abc")
    target = tmp_path / "x.tgz"
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder, arcname=".")
    dest = tmp_path / "out"
    dest.mkdir()
    members = archive.expand([InputFile("x.tgz", target)], Limits(), dest)
    assert [m.path.read_bytes() for m in members] == [b"abc"]
