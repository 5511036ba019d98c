"""Normalization with pysam's bundled bcftools: ``norm -m -any`` (and ``-f REF --check-ref``).

Inputs may be BGZF, plain gzip or uncompressed: htslib streams all three, so nothing is
re-compressed. What htslib does not forgive is a record using a contig (or FILTER, INFO,
FORMAT id) the header does not declare: the output header is written before that record is
read. Real files often declare no contigs at all; such files are fed through this process
with the missing meta lines added (``vcfinput.scan_contigs``). Records come out as
``bcftools query`` text for the converter, from a chain of child processes (norm → query)
so that normalization and conversion overlap on separate cores.

Errors name the file and the record: htslib's own message when it gives one, otherwise a
second, diagnostic pass over the text (``vcfinput.locate_record``) finds the first bad line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from sovaudit.pipeline import bcftools
from sovaudit.pipeline.errors import VcfInputError
from sovaudit.pipeline.schema import ORIGINAL_RECORD_TAG
from sovaudit.pipeline.vcfinput import TRUNCATION_WORDS, InputHeader, locate_record, open_text

CheckRef = Literal["e", "w", "x", "s"]

_STATS_RE = re.compile(r"Lines\s+total/split/joined/realigned/mismatch_removed/dup_removed/skipped:\s+"
                       r"(\d+)/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)")
_AT_RECORD_RE = re.compile(r"\bat ([^\s:]+:\d+)")
_MISSING_CONTIG_RE = re.compile(r"CONTIG id=\d+ not present|Invalid CONTIG id")
_COPY_CHUNK = 1 << 20
# BGZF's end-of-file marker: an empty block, the last 28 bytes of every complete BGZF file.
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# What a stage says when the process reading its output went away first.
_READER_GONE = ("cannot write", "close failed", "Broken pipe")


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

    def finish(self, *, reader_stopped: bool = False) -> NormalizeStats | None:
        """Wait for the chain; raise ``VcfInputError`` naming the record when normalization failed.

        Returns norm's counts (None when the chain had no norm stage). A stage that failed only
        because its reader stopped early (``cannot write``, ``close failed``, a broken pipe) is not
        an input error; with ``reader_stopped`` (the converter gave up on the text) the last stage's
        failure is not one either, and only an earlier stage's own error is reported.
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
        norm_text = self.stages[0].stderr() if self.stages[0].name in ("norm", "view") else ""
        if self.feeder_errors:
            raise _input_error(self.source, f"cannot decompress: {self.feeder_errors[0]}", norm_text)
        for position, stage in enumerate(self.stages):
            text = stage.stderr()
            if reader_stopped and position == len(self.stages) - 1:
                continue
            if stage.process.returncode != 0 and not any(word in text for word in _READER_GONE):
                raise _input_error(self.source, _first_error(text) or f"bcftools {stage.name} failed", text)
        if self.stages[0].name not in ("norm", "view"):
            return None
        if "No BGZF EOF marker" in norm_text:
            raise _input_error(self.source, "no BGZF end-of-file marker: the file is truncated", norm_text)
        if self.stages[0].name == "view":  # no split in the child: the decoder counts (split_stats)
            return None
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


def stream_bcf(source: Path, options: NormalizeOptions, workdir: Path, header: InputHeader, *,
               extra_header: list[str] | None = None) -> RecordStream:
    """Start ``bcftools norm ... -Ou`` alone: its uncompressed BCF on ``stdout``, for the compiled
    decoder (``native.py``), which replaces the ``query`` stage and the text parse."""
    inflate = _fast_inflate() if extra_header is None and not header.is_bcf and _complete_bgzf(source) else None
    return _stream_one("norm", ("norm", *options.norm_args(), "-Ou", "-o", "/dev/stdout"), source,
                       workdir / "norm.stderr", header, extra_header, inflate)


def stream_unsplit(source: Path, workdir: Path, header: InputHeader, *,
                   extra_header: list[str] | None = None) -> RecordStream:
    """Start ``bcftools view -Ou`` alone: the input's records as uncompressed BCF, not split, for
    the compiled decoder's own multi-allelic split (``native.py``, ``csrc/split.h``). view parses
    and encodes as norm does but skips the split, which costs norm about as much CPU again. Fed
    as ``stream_bcf`` feeds norm: ISA-L inflate, and the header lines the input lacks."""
    inflate = _fast_inflate() if not header.is_bcf and _complete_bgzf(source) else None
    return _stream_one("view", ("view", "--no-version", "-Ou", "-o", "/dev/stdout"), source,
                       workdir / "view.stderr", header, extra_header, inflate)


def _stream_one(stage: str, args: tuple[str, ...], source: Path, err: Path, header: InputHeader,
                extra_header: list[str] | None, inflate: Callable[[Path], IO[bytes]] | None) -> RecordStream:
    """One bcftools process writing BCF to its stdout. It reads the file itself, unless the input
    needs header lines added or can be inflated here: then a thread feeds it the text (for a
    complete BGZF file with ISA-L's inflate, a third of the CPU of the zlib pysam's htslib links,
    overlapping bcftools' own work)."""
    errors: list[BaseException] = []
    feeder: threading.Thread | None = None
    with open(err, "wb") as log:
        if extra_header is None and inflate is None:
            process = bcftools.spawn(*args, str(source), stderr=log)
        else:
            process = bcftools.spawn(*args, "-", stdin=subprocess.PIPE, stderr=log)
            assert process.stdin is not None
            lines = header.with_lines(extra_header or [])
            feeder = threading.Thread(target=_feed, daemon=True, args=(source, lines, process.stdin, errors),
                                      kwargs={"opener": inflate} if inflate is not None else {})
    if feeder is not None:
        feeder.start()
    assert process.stdout is not None
    return RecordStream(source=source, stdout=process.stdout, stages=[_Stage(stage, process, err)], feeder=feeder,
                        feeder_errors=errors)


def split_stats(stream: RecordStream, records: int, split: int) -> NormalizeStats:
    """The counts norm would have printed for a stream the decoder split itself (no reference:
    nothing realigned, removed or skipped), with htslib's warnings from view's stderr."""
    text = stream.stages[0].stderr()
    warnings = tuple(line for line in text.splitlines() if line.startswith("[W::"))
    return NormalizeStats(records_in=records, split=split, realigned=0, mismatch_removed=0, skipped=0,
                          warnings=warnings[:20])


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


def _complete_bgzf(source: Path) -> bool:
    """A BGZF file that starts as one and ends with BGZF's end-of-file block. Anything else (plain
    gzip, text, BCF, a truncated file) is left to htslib, whose messages name what is wrong."""
    try:
        with open(source, "rb") as handle:
            start = handle.read(4)
            handle.seek(0, os.SEEK_END)
            if handle.tell() < len(_BGZF_EOF) + 4:
                return False
            handle.seek(-len(_BGZF_EOF), os.SEEK_END)
            return start == _BGZF_EOF[:4] and handle.read() == _BGZF_EOF
    except OSError:
        return False


def _fast_inflate() -> Callable[[Path], IO[bytes]] | None:
    """ISA-L's gzip reader (the ``isal`` package) when it is installed, else None (htslib decompresses)."""
    try:
        from isal import igzip
    except ImportError:
        return None
    return lambda path: igzip.open(path, "rb")  # type: ignore[no-any-return]


def _feed(source: Path, header_lines: list[str], sink: IO[bytes], errors: list[BaseException], *,
          opener: Callable[[Path], IO[bytes]] = open_text) -> None:
    try:
        with opener(source) as text:
            sink.write(("\n".join(header_lines) + "\n").encode())
            for raw in text:
                if raw.startswith(b"#CHROM"):
                    break
            shutil.copyfileobj(text, sink, _COPY_CHUNK)
    except BrokenPipeError:
        pass  # norm stopped early; its own error says why
    except (OSError, EOFError, zlib.error) as error:
        errors.append(error)
    except Exception as error:  # ISA-L's own error types: a failed inflate must fail the run, never cut it short
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


def _input_error(source: Path, reason: str, stderr_text: str) -> VcfInputError:
    """The error for a failed run, with the record located as precisely as we can."""
    if _MISSING_CONTIG_RE.search(stderr_text):
        reason = "a record's contig is not declared in the header: " + reason
    match = _AT_RECORD_RE.search(reason)
    located = locate_record(source, match.group(1) if match else None, reason)
    truncated = any(word in reason for word in TRUNCATION_WORDS)
    hint = "the file looks truncated; copy it again" if truncated else \
        "fix the record or regenerate the file; `bcftools view` shows the same error"
    return VcfInputError(str(source), reason, record=located, hint=hint)


