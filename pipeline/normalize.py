"""Normalization with pysam's bundled bcftools: ``norm -m -any`` (and ``-f REF --check-ref``).

Inputs may be BGZF, plain gzip or uncompressed: htslib streams all three, so nothing is
re-compressed. What htslib does not forgive is a record using a contig (or FILTER, INFO,
FORMAT id) the header does not declare: the output header is written before that record is
read. Real files often declare no contigs at all; such files are streamed through this
process with the missing meta lines added. Records come out as ``bcftools query`` text for the converter, from a chain of child
processes (norm → query) so that normalization and conversion overlap on separate cores.

Errors name the file and the record: htslib's own message when it gives one, otherwise a
second, diagnostic pass over the text finds the first line that is not a VCF record.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import tempfile
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from sovaudit.pipeline import bcftools
from sovaudit.pipeline.errors import VcfInputError
from sovaudit.pipeline.schema import ORIGINAL_RECORD_TAG

Compression = Literal["bgzf", "gzip", "none"]
CheckRef = Literal["e", "w", "x", "s"]

_STATS_RE = re.compile(r"Lines\s+total/split/joined/realigned/mismatch_removed/dup_removed/skipped:\s+"
                       r"(\d+)/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)")
_AT_RECORD_RE = re.compile(r"\bat ([^\s:]+:\d+)")
_MISSING_CONTIG_RE = re.compile(r"CONTIG id=\d+ not present|Invalid CONTIG id")
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class NormalizeOptions:
    """How to normalize: the reference to check REF against (optional) and what to do on mismatch."""

    reference: Path | None = None
    check_ref: CheckRef = "e"
    # Add INFO/SOVAUDIT_OLD_REC to split records so that CSQ entries can be matched to their allele.
    original_record_tag: bool = False

    def norm_args(self) -> list[str]:
        args = ["-m", "-any", "--no-version"]
        if self.reference is not None:
            args += ["-f", str(self.reference), "--check-ref", self.check_ref]
        if self.original_record_tag:
            args += ["--old-rec-tag", ORIGINAL_RECORD_TAG]
        return args


@dataclass(frozen=True)
class NormalizeStats:
    """bcftools norm's own accounting (its ``Lines total/split/...`` line)."""

    records_in: int
    split: int
    realigned: int
    mismatch_removed: int
    skipped: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputHeader:
    """The input's header lines as text, the contigs it declares and how the file is compressed."""

    path: Path
    lines: tuple[str, ...]
    contigs: tuple[str, ...]
    compression: Compression
    is_bcf: bool = False

    def with_lines(self, extra: list[str]) -> list[str]:
        """The header lines with ``extra`` meta lines inserted before ``#CHROM``."""
        return [*self.lines[:-1], *extra, self.lines[-1]]

    def declared(self) -> dict[str, set[str]]:
        """IDs the header declares, per kind (contig, FILTER, INFO, FORMAT)."""
        found: dict[str, set[str]] = {"contig": set(), "FILTER": {"PASS"}, "INFO": set(), "FORMAT": set()}
        for line in self.lines:
            match = _META_ID_RE.match(line)
            if match and match.group(1) in found:
                found[match.group(1)].add(match.group(2))
        return found


_META_ID_RE = re.compile(r"##(contig|FILTER|INFO|FORMAT)=<ID=([^,>]+)")


def detect_compression(path: Path) -> Compression:
    """BGZF (gzip with the ``BC`` extra field), plain gzip, or uncompressed text."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return "none"
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


def open_text(path: Path) -> IO[bytes]:
    """The file's uncompressed bytes (BGZF is multi-member gzip, so gzip reads both)."""
    if detect_compression(path) != "none":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # a GzipFile is a binary stream
    return open(path, "rb")


def _is_bcf(path: Path) -> bool:
    try:
        with open_text(path) as text:
            return text.read(3) == b"BCF"
    except (OSError, EOFError, zlib.error):
        return False


def _bcf_header(path: Path) -> InputHeader:
    """A BCF carries a complete binary-indexed header; htslib renders it as text."""
    import pysam

    previous = pysam.set_verbosity(0)  # no "could not retrieve index" noise: nothing here seeks
    try:
        with pysam.VariantFile(str(path)) as handle:
            lines = tuple(str(handle.header).rstrip("\n").splitlines())
            contigs = tuple(str(name) for name in handle.header.contigs)
    except (OSError, ValueError) as error:
        raise VcfInputError(str(path), f"htslib cannot read the BCF header: {error}") from error
    finally:
        pysam.set_verbosity(previous)
    return InputHeader(path=path, lines=lines, contigs=contigs, compression=detect_compression(path), is_bcf=True)


def read_header(path: Path) -> InputHeader:
    """Read the header lines up to and including ``#CHROM``; refuse what is not a VCF (or BCF)."""
    if _is_bcf(path):
        return _bcf_header(path)
    lines: list[str] = []
    contigs: list[str] = []
    try:
        with open_text(path) as text:
            for raw in text:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not lines and not line.startswith("##fileformat=VCF"):
                    raise VcfInputError(str(path), "not a VCF: the first line must be ##fileformat=VCFv4.x",
                                        record="line 1", hint="is this the right file?")
                lines.append(line)
                if line.startswith("##contig=<"):
                    match = re.search(r"ID=([^,>]+)", line)
                    if match:
                        contigs.append(match.group(1))
                if line.startswith("#CHROM"):
                    break
                if not line.startswith("##"):
                    raise VcfInputError(str(path), "the header ends without a #CHROM line",
                                        record=f"line {len(lines)}")
    except (OSError, EOFError, zlib.error) as error:
        raise VcfInputError(str(path), f"cannot decompress the header: {error}",
                            hint="the file is truncated or not gzip/BGZF") from error
    if not lines:
        raise VcfInputError(str(path), "the file is empty")
    if not lines[-1].startswith("#CHROM"):
        raise VcfInputError(str(path), "the file ends inside the header (no #CHROM line)",
                            record=f"line {len(lines)}", hint="the file looks truncated")
    return InputHeader(path=path, lines=tuple(lines), contigs=tuple(contigs), compression=detect_compression(path))


def variant_header(lines: list[str] | tuple[str, ...], workdir: Path) -> Any:
    """htslib's reading of a header (a ``pysam.VariantHeader``), the same one bcftools will use."""
    import pysam

    header_path = Path(tempfile.mkstemp(suffix=".vcf", dir=workdir)[1])
    header_path.write_text("\n".join(lines) + "\n")
    previous = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(str(header_path)) as handle:
            return handle.header.copy()
    except (OSError, ValueError) as error:
        raise VcfInputError(str(header_path), f"htslib cannot read the header: {error}") from error
    finally:
        pysam.set_verbosity(previous)
        header_path.unlink(missing_ok=True)


_CHROM_RE = re.compile(rb"^([^#\t\n][^\t\n]*)\t", re.MULTILINE)


def scan_contigs(path: Path, header: InputHeader) -> list[str]:
    """``##contig`` lines for the contigs the records use and the header lacks: the fast pass
    (a regular expression over decompressed blocks) for the common case of a file that
    declares no contigs at all. ``scan_undeclared`` covers FILTER/INFO/FORMAT as well."""
    if header.is_bcf:
        return []
    declared = header.declared()["contig"]
    seen: dict[bytes, None] = {}
    tail = b""
    try:
        with open_text(path) as text:
            while chunk := text.read(_COPY_CHUNK * 4):
                block = tail + chunk
                cut = block.rfind(b"\n") + 1
                block, tail = block[:cut], block[cut:]
                seen.update(dict.fromkeys(_CHROM_RE.findall(block)))
            seen.update(dict.fromkeys(_CHROM_RE.findall(tail)))
    except (OSError, EOFError, zlib.error):
        pass  # the normalization itself reports the truncation, with the record
    names = [name.decode("utf-8", errors="replace").strip() for name in seen]
    return [f"##contig=<ID={name}>" for name in names if name and name not in declared]


def scan_undeclared(path: Path, header: InputHeader) -> list[str]:
    """Header lines for every contig, FILTER, INFO and FORMAT id the records use but the header
    does not declare (one pass over the text; the types follow htslib's own guesses: a
    valueless INFO is a Flag, anything else a String). A BCF cannot use an undeclared id."""
    if header.is_bcf:
        return []
    declared = header.declared()
    seen: dict[str, dict[str, str]] = {"contig": {}, "FILTER": {}, "INFO": {}, "FORMAT": {}}
    try:
        with open_text(path) as text:
            for raw in text:
                if raw.startswith(b"#"):
                    continue
                fields = raw.rstrip(b"\r\n").decode("utf-8", errors="replace").split("\t", 9)
                _note(seen["contig"], declared["contig"], fields[0:1], "")
                if len(fields) > 6 and fields[6] != ".":
                    _note(seen["FILTER"], declared["FILTER"], fields[6].split(";"), "")
                if len(fields) > 7 and fields[7] != ".":
                    for item in fields[7].split(";"):
                        key, has_value, _ = item.partition("=")
                        if key and key not in declared["INFO"] and key not in seen["INFO"]:
                            seen["INFO"][key] = "Number=.,Type=String" if has_value else "Number=0,Type=Flag"
                if len(fields) > 8 and fields[8] != ".":
                    _note(seen["FORMAT"], declared["FORMAT"], fields[8].split(":"), "Number=.,Type=String")
    except (OSError, EOFError, zlib.error):
        pass  # the normalization itself reports the truncation, with the record
    lines = [f"##contig=<ID={name}>" for name in seen["contig"]]
    lines += [f'##FILTER=<ID={name},Description="Not declared in the input header">' for name in seen["FILTER"]]
    lines += [f'##INFO=<ID={name},{spec},Description="Not declared in the input header">'
              for name, spec in seen["INFO"].items()]
    lines += [f'##FORMAT=<ID={name},{"Number=1,Type=String" if name == "GT" else spec},'
              'Description="Not declared in the input header">' for name, spec in seen["FORMAT"].items()]
    return lines


def _note(seen: dict[str, str], declared: set[str], names: list[str], spec: str) -> None:
    for name in names:
        name = name.strip()
        if name and name not in declared and name not in seen:
            seen[name] = spec


def parse_stats(stderr_text: str) -> NormalizeStats | None:
    match = _STATS_RE.search(stderr_text)
    if not match:
        return None
    total, split, _joined, realigned, mismatch, _dup, skipped = (int(g) for g in match.groups())
    warnings = tuple(line for line in stderr_text.splitlines() if line.startswith("[W::"))
    return NormalizeStats(records_in=total, split=split, realigned=realigned, mismatch_removed=mismatch,
                          skipped=skipped, warnings=warnings[:20])


@dataclass
class _Stage:
    name: str
    process: subprocess.Popen[bytes]
    stderr_path: Path

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class RecordStream:
    """A running ``norm | query`` chain; read ``stdout``, then call ``finish()``."""

    source: Path
    stdout: IO[bytes] | None
    stages: list[_Stage]
    feeder: threading.Thread | None = None
    feeder_errors: list[BaseException] = field(default_factory=list)

    def finish(self) -> NormalizeStats | None:
        """Wait for the chain; raise ``VcfInputError`` naming the record when normalization failed.

        Returns norm's counts (None when the chain had no norm stage). A stage that failed only
        because the reader stopped early (``cannot write``) is not an input error.
        """
        if self.stdout is not None:
            try:
                self.stdout.close()
            except OSError:
                pass
        for stage in self.stages:
            stage.process.wait()
        if self.feeder is not None:
            self.feeder.join()
        norm_text = self.stages[0].stderr() if self.stages[0].name == "norm" else ""
        if self.feeder_errors:
            raise _input_error(self.source, f"cannot decompress: {self.feeder_errors[0]}", norm_text)
        for stage in self.stages:
            text = stage.stderr()
            if stage.process.returncode != 0 and "cannot write" not in text:
                raise _input_error(self.source, _first_error(text) or f"bcftools {stage.name} failed", text)
        if self.stages[0].name != "norm":
            return None
        if "No BGZF EOF marker" in norm_text:
            raise _input_error(self.source, "no BGZF end-of-file marker: the file is truncated", norm_text)
        stats = parse_stats(norm_text)
        if stats is None:
            raise _input_error(self.source, "bcftools norm reported no record counts", norm_text)
        return stats


def stream_records(source: Path, options: NormalizeOptions | None, query_format: str, workdir: Path,
                   header: InputHeader, *, extra_header: list[str] | None = None) -> RecordStream:
    """Start ``bcftools norm ... | bcftools query -f FORMAT`` on one input.

    ``options=None``: the input is already normalized (VEP's output); only query runs.
    With ``extra_header`` the input is fed through this process with those meta lines added to
    its header: htslib writes the output header before it meets a record using an undeclared
    contig, FILTER, INFO or FORMAT id, and the next reader then refuses that record.
    """
    stages: list[_Stage] = []
    feeder: threading.Thread | None = None
    errors: list[BaseException] = []
    upstream: IO[bytes] | None = None
    if options is not None:
        norm_err = workdir / "norm.stderr"
        with open(norm_err, "wb") as norm_log:
            if extra_header is None:
                norm = bcftools.spawn("norm", *options.norm_args(), "-Ou", "-o", "/dev/stdout", str(source),
                                      stderr=norm_log)
            else:
                norm = bcftools.spawn("norm", *options.norm_args(), "-Ou", "-o", "/dev/stdout", "-",
                                      stdin=subprocess.PIPE, stderr=norm_log)
                assert norm.stdin is not None
                feeder = threading.Thread(target=_feed, daemon=True,
                                          args=(source, header.with_lines(extra_header), norm.stdin, errors))
        stages.append(_Stage("norm", norm, norm_err))
        upstream = norm.stdout
    query_err = workdir / "query.stderr"
    query_input = "-" if upstream is not None else str(source)
    with open(query_err, "wb") as query_log:
        query = bcftools.spawn("query", "-f", query_format, "-o", "/dev/stdout", query_input,
                               stdin=upstream, stderr=query_log)
    stages.append(_Stage("query", query, query_err))
    if upstream is not None:
        upstream.close()  # the query process holds the read end now
    if feeder is not None:
        feeder.start()
    assert query.stdout is not None
    return RecordStream(source=source, stdout=query.stdout, stages=stages, feeder=feeder, feeder_errors=errors)


def normalize_to_file(source: Path, dest: Path, options: NormalizeOptions, workdir: Path,
                      header: InputHeader, *, extra_header: list[str] | None = None) -> NormalizeStats:
    """``bcftools norm`` into a file (BGZF VCF), for a tool such as VEP that reads files."""
    norm_err = workdir / "norm-file.stderr"
    errors: list[BaseException] = []
    with open(norm_err, "wb") as norm_log:
        if extra_header is None:
            norm = bcftools.spawn("norm", *options.norm_args(), "-Oz", "-o", str(dest), str(source),
                                  stdout=subprocess.DEVNULL, stderr=norm_log)
            feeder = None
        else:
            norm = bcftools.spawn("norm", *options.norm_args(), "-Oz", "-o", str(dest), "-",
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=norm_log)
            feeder = threading.Thread(target=_feed, args=(source, header.with_lines(extra_header), norm.stdin,
                                                          errors), daemon=True)
            feeder.start()
    stream = RecordStream(source=source, stdout=None, stages=[_Stage("norm", norm, norm_err)], feeder=feeder,
                          feeder_errors=errors)
    stats = stream.finish()
    assert stats is not None
    return stats


def _feed(source: Path, header_lines: list[str], sink: IO[bytes], errors: list[BaseException]) -> None:
    try:
        with open_text(source) as text:
            sink.write(("\n".join(header_lines) + "\n").encode())
            for raw in text:
                if raw.startswith(b"#CHROM"):
                    break
            shutil.copyfileobj(text, sink, _COPY_CHUNK)
    except BrokenPipeError:
        pass  # norm stopped early; its own error says why
    except (OSError, EOFError, zlib.error) as error:
        errors.append(error)
    finally:
        try:
            sink.close()
        except OSError:
            pass


def _first_error(stderr_text: str) -> str | None:
    """htslib's first error line, else bcftools' own (pysam wraps it as ``... stderr=Error: ...``)."""
    for line in stderr_text.splitlines():
        if line.startswith("[E::"):
            return re.sub(r"^\[E::[^\]]*\]\s*", "", line).strip()
    for line in stderr_text.splitlines():
        if "stderr=" in line:
            message = line.split("stderr=", 1)[1].strip().strip("'\"").replace("\\n", " ").strip()
            if message and message != "None":
                return re.sub(r"^Error:\s*", "", message)
    for line in stderr_text.splitlines():
        if "rror" in line:
            return re.sub(r"^Error:\s*", "", line.strip())
    return None


_TRUNCATION_WORDS = ("truncat", "EOF", "decompress", "BGZF block", "GZIP stream")


def _input_error(source: Path, reason: str, stderr_text: str) -> VcfInputError:
    """The error for a failed run, with the record located as precisely as we can."""
    if _MISSING_CONTIG_RE.search(stderr_text):
        reason = "a record's contig is not declared in the header: " + reason
    match = _AT_RECORD_RE.search(reason)
    located = locate_record(source, match.group(1) if match else None, reason)
    truncated = any(word in reason for word in _TRUNCATION_WORDS)
    hint = "the file looks truncated; copy it again" if truncated else \
        "fix the record or regenerate the file; `bcftools view` shows the same error"
    return VcfInputError(str(source), reason, record=located, hint=hint)


def locate_record(source: Path, chrom_pos: str | None, reason: str) -> str | None:
    """A second pass over the text: the line number (and chrom:pos) of the first bad record.

    Checks, in order: the record htslib named; a line with the wrong number of columns; a
    POS that is not a number; a decompression failure (reported after the last whole line).
    """
    expected: int | None = None
    line_number = 0
    last_good: str | None = None
    try:
        with open_text(source) as text:
            for raw in text:
                line_number += 1
                if raw.startswith(b"##"):
                    continue
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                fields = line.split("\t")
                if line.startswith("#CHROM"):
                    expected = len(fields)
                    continue
                where = f"{fields[0]}:{fields[1]}" if len(fields) > 1 else fields[0]
                if chrom_pos is not None and where == chrom_pos:
                    return f"line {line_number} ({where})"
                if chrom_pos is None:
                    if expected is not None and len(fields) != expected and not (expected == 8 and len(fields) > 8):
                        return (f"line {line_number} ({where}): {len(fields)} columns where the header has "
                                f"{expected}")
                    if len(fields) > 1 and not fields[1].isdigit():
                        return f"line {line_number} ({where}): POS {fields[1]!r} is not a number"
                last_good = where
    except (OSError, EOFError, zlib.error):
        after = f" after {last_good}" if last_good else ""
        return f"line {line_number + 1}{after}"
    if chrom_pos is not None:
        return chrom_pos
    truncated = any(word in reason for word in _TRUNCATION_WORDS)
    return f"after {last_good}" if last_good and truncated else None
