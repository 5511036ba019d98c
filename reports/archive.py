"""Bundles as received: a `run-<id>.tar.gz` (what `verify --bundle` writes) or a `run-<id>/` directory.

A regulator is handed the archive, not the directory, so `report verify` and `verify --evidence`
open it themselves. The archive is hostile input: every member is checked before anything is
written, and only regular files and directories with plain relative names are extracted, into a
private temporary directory that is removed afterwards whatever happens. Refused: absolute names,
`..`, symlinks, hardlinks, devices and FIFOs, more than MAX_MEMBERS members, more than MAX_BYTES of
content (a decompression bomb), and an archive that does not hold exactly one run-<id>/ directory.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

MAX_MEMBERS = 20000  # a 1000-VM run writes a few hundred evidence files
MAX_BYTES = 512 * 1024 * 1024  # uncompressed total; a real bundle is a few MB


class ArchiveError(Exception):
    """The archive is refused (bad input, exit 2); the message names the member and why."""


def is_archive(path: Path) -> bool:
    """True for a name the tool packs (`.tar.gz` / `.tgz`); the content is checked when opened."""
    return path.name.endswith((".tar.gz", ".tgz"))


def _member_refusal(member: tarfile.TarInfo) -> str:
    name = member.name
    if not name or "\x00" in name or "\\" in name:
        return "the name is empty or contains a NUL or a backslash"
    if name.startswith("/") or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return "the name contains '..' and could escape the extraction directory"
    if member.issym():
        return f"a symbolic link (to {member.linkname!r}); a bundle holds regular files only"
    if member.islnk():
        return f"a hard link (to {member.linkname!r}); a bundle holds regular files only"
    if member.isdev() or member.isfifo():
        return "a device or FIFO; a bundle holds regular files only"
    if not (member.isfile() or member.isdir()):
        return "not a regular file or directory"
    return ""


def _extract(archive_path: Path, into: Path) -> None:
    try:
        archive = tarfile.open(archive_path, mode="r:*")
    except FileNotFoundError as exc:
        raise ArchiveError(f"{archive_path} does not exist") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"{archive_path} is not a readable tar.gz archive: {exc}") from exc
    with archive:
        total = 0
        count = 0
        seen: set[str] = set()
        try:
            for member in archive:
                count += 1
                if count > MAX_MEMBERS:
                    raise ArchiveError(f"{archive_path}: more than {MAX_MEMBERS} members; refused as a possible "
                                       "decompression bomb")
                refusal = _member_refusal(member)
                if refusal:
                    raise ArchiveError(f"{archive_path}: member {member.name!r} refused: {refusal}")
                relative = "/".join(part for part in member.name.split("/") if part not in ("", "."))
                if relative in seen:
                    raise ArchiveError(f"{archive_path}: member {member.name!r} refused: it appears twice")
                seen.add(relative)
                destination = into.joinpath(*relative.split("/"))
                if member.isdir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                total += member.size
                if total > MAX_BYTES:
                    raise ArchiveError(f"{archive_path}: member {member.name!r} refused: the archive's content "
                                       f"exceeds {MAX_BYTES} bytes (a possible decompression bomb)")
                destination.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is None:
                    raise ArchiveError(f"{archive_path}: member {member.name!r} refused: no content")
                written = 0
                # O_EXCL-like: never follow or overwrite something already there.
                with source, destination.open("xb") as handle:
                    while chunk := source.read(1 << 20):
                        written += len(chunk)
                        if written > member.size:
                            raise ArchiveError(f"{archive_path}: member {member.name!r} refused: more content "
                                               "than its header declares")
                        handle.write(chunk)
        except (tarfile.TarError, OSError, EOFError) as exc:
            if isinstance(exc, FileExistsError):
                raise ArchiveError(f"{archive_path}: a member would overwrite another ({exc.filename})") from exc
            raise ArchiveError(f"{archive_path} is damaged: {exc}") from exc
    if count == 0:
        raise ArchiveError(f"{archive_path} is empty; it holds no bundle")


def _single_run_dir(archive_path: Path, into: Path) -> Path:
    tops = sorted(into.iterdir())
    if len(tops) != 1 or not tops[0].is_dir():
        names = ", ".join(p.name for p in tops) or "nothing"
        raise ArchiveError(f"{archive_path} must hold exactly one run-<id>/ directory; it holds {names}")
    return tops[0]


@contextmanager
def opened_bundle(path: Path) -> Iterator[Path]:
    """Yield the run directory of `path`: the directory itself, or a `.tar.gz` safely extracted into
    a temporary directory removed on exit (nothing is left behind, also on a refusal)."""
    path = Path(path)
    if not is_archive(path):
        yield path
        return
    if not path.is_file():
        raise ArchiveError(f"{path} does not exist or is not a file")
    temp = Path(tempfile.mkdtemp(prefix="sovaudit-bundle-"))
    try:
        _extract(path, temp)
        yield _single_run_dir(path, temp)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
