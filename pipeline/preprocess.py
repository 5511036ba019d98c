"""One VCF → one load-ready Parquet file, with the counts INT-01 checks. No cloud here.

normalize (bcftools norm -m -any) → annotate (VEP, when configured and the input has no CSQ)
→ convert (norm's BCF → Arrow columns by the compiled decoder, ``native.py``; or, where it is
unavailable, bcftools query text → Arrow columns) → Parquet. The Parquet file appears under its
final name only when every step succeeded: a malformed input leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import pyarrow as pa

from sovaudit.pipeline import native
from sovaudit.pipeline.convert import BLOCK_BYTES, MAX_FIELD_BYTES, OversizedField, read_text, write_parquet
from sovaudit.pipeline.errors import ToolError, VcfInputError
from sovaudit.pipeline.normalize import (
    CheckRef,
    NormalizeOptions,
    NormalizeStats,
    RecordStream,
    normalize_to_file,
    split_stats,
    stream_bcf,
    stream_records,
    stream_unsplit,
)
from sovaudit.pipeline.readahead import read_ahead
from sovaudit.pipeline.schema import CSQ_TAGS, ORIGINAL_RECORD_TAG, VcfLayout, layout_from_header
from sovaudit.pipeline.vcfinput import (
    InputHeader,
    locate_oversized,
    locate_record,
    read_header,
    scan_contigs,
    scan_undeclared,
    variant_header,
)

_LIMIT_HINT = (f"a field value may hold at most {MAX_FIELD_BYTES >> 20} MiB; move bulky annotations out of "
               "the VCF or drop the field (`bcftools annotate -x INFO/KEY`)")
# Appended to the configured VEP command unless it already sets them (issue 5: VCF out,
# allele numbers so each CSQ entry names its allele, the offline cache).
VEP_REQUIRED_FLAGS = ("--vcf", "--allele_number", "--offline")


@dataclass(frozen=True)
class PreprocessOptions:
    reference: Path | None = None
    check_ref: CheckRef = "e"
    vep_command: tuple[str, ...] = ()
    block_bytes: int = BLOCK_BYTES


@dataclass(frozen=True)
class PreprocessResult:
    """What happened to one input: the counts INT-01 compares, and where the rows are."""

    source: Path
    parquet: Path
    sha256: str
    records_in: int
    records_normalized: int
    split: int
    mismatch_removed: int
    annotated: bool
    has_csq: bool
    warnings: tuple[str, ...]


def check_input_path(source: Path) -> None:
    """Refuse an input that is not a readable regular file, saying which it is."""
    if source.is_dir():
        raise VcfInputError(str(source), "is a directory, not a VCF file", hint="name the VCF files themselves")
    if not source.exists():
        raise VcfInputError(str(source), "no such file", hint="check the path")
    if not source.is_file():
        raise VcfInputError(str(source), "is not a regular file", hint="copy the data to a file first")
    if not os.access(source, os.R_OK):
        raise VcfInputError(str(source), "is not readable", hint="check the file's permissions")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def preprocess(source: Path, parquet: Path, options: PreprocessOptions = PreprocessOptions()) -> PreprocessResult:
    """Normalize, annotate and convert ``source`` into ``parquet`` (written atomically)."""
    source = Path(source)
    parquet = Path(parquet)
    check_input_path(source)
    digest: list[str] = []
    unreadable: list[OSError] = []

    def hash_source() -> None:
        # Beside the conversion; an input that vanishes (a caller cleaning up after a refused
        # header) is reported by whoever asks for the digest, not by a stray thread traceback.
        try:
            digest.append(file_sha256(source))
        except OSError as error:
            unreadable.append(error)

    hasher = threading.Thread(target=hash_source, daemon=True)
    hasher.start()
    try:
        header = read_header(source)
    except BaseException:
        hasher.join()
        raise
    partial = parquet.with_name(f".{parquet.name}.partial-{os.getpid()}")
    try:
        with tempfile.TemporaryDirectory(prefix="sovaudit-task-") as tmp:
            workdir = Path(tmp)
            # Files that declare no contigs are common: add them up front (a fast pass). Any other
            # undeclared id shows up as a failed first attempt (htslib cannot write a record whose id
            # its output header lacks). Then one pass over the text decides (vcfinput's docstring):
            # an undeclared INFO/FORMAT key is refused, naming it; contig and FILTER ids are declared
            # and the run is retried once.
            extra = scan_contigs(source, header) if not header.contigs else None
            try:
                stats, rows, annotated, layout = _run(source, header, partial, options, workdir, extra)
            except VcfInputError:
                undeclared = scan_undeclared(source, header)
                if undeclared.refused is not None:
                    raise undeclared.error(source) from None
                complete = list(undeclared.added)
                if not complete or complete == extra:
                    raise
                extra = complete
                stats, rows, annotated, layout = _run(source, header, partial, options, workdir, extra)
        os.replace(partial, parquet)
    finally:
        partial.unlink(missing_ok=True)
        hasher.join()
    added = (f"the input header did not declare {len(extra)} ids the records use; added: "
             + ", ".join(re.sub(r"^##(\w+)=<ID=([^,>]+).*$", r"\1 \2", line) for line in extra[:10]),) if extra else ()
    if unreadable:
        raise unreadable[0]
    return PreprocessResult(source=source, parquet=parquet, sha256=digest[0], records_in=stats.records_in,
                            records_normalized=rows, split=stats.split,
                            mismatch_removed=stats.mismatch_removed, annotated=annotated,
                            has_csq=layout.csq is not None, warnings=added + stats.warnings)


def indexed_reference(reference: Path, workdir: Path) -> Path:
    """The reference with a ``.fai`` beside it: indexed in place, or through a link in ``workdir``
    when its directory is read-only (a reference baked into an image)."""
    import pysam

    if not reference.is_file():
        raise ToolError(f"reference {reference} does not exist; check --reference / SOVAUDIT_REFERENCE")
    if Path(f"{reference}.fai").exists():
        return reference
    target = reference
    if not os.access(reference.parent, os.W_OK):
        target = workdir / reference.name
        target.symlink_to(reference.resolve())
    previous = pysam.set_verbosity(0)  # htslib's own "[E::fai_build_core]" line would repeat ours, unattributed
    try:
        pysam.faidx(str(target))
    except pysam.SamtoolsError as error:
        raise ToolError(f"cannot index reference {reference}: {_samtools_reason(error, target, reference)} "
                        "(is it a FASTA file? a compressed reference must be bgzip'ed)"
                        ) from error
    finally:
        pysam.set_verbosity(previous)
    return target


def _samtools_reason(error: Exception, used: Path, reference: Path) -> str:
    """samtools' own words from a ``SamtoolsError`` (whose str() is a Python repr of
    "samtools returned with error 1: stdout=, stderr=..."), naming the user's reference, not a link."""
    text = str(getattr(error, "value", error))
    text = text.split("stderr=", 1)[-1].strip()
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text.replace(str(used), str(reference)) or "samtools could not index it"


def _run(source: Path, header: InputHeader, out: Path, options: PreprocessOptions, workdir: Path,
         extra_header: list[str] | None) -> tuple[NormalizeStats, int, bool, VcfLayout]:
    if options.reference is not None:
        options = replace(options, reference=indexed_reference(Path(options.reference), workdir))
    lines = header.with_lines(extra_header or [])
    input_header = variant_header(lines, workdir, str(source))
    already_annotated = any(tag in input_header.info for tag in CSQ_TAGS)
    norm_options = NormalizeOptions(reference=options.reference, check_ref=options.check_ref)
    if options.vep_command and not already_annotated:
        normalized = workdir / "normalized.vcf.gz"
        stats = normalize_to_file(source, normalized, norm_options, workdir, header, extra_header=extra_header)
        annotated = run_vep(options.vep_command, normalized, workdir / "annotated.vcf.gz")
        vep_header = read_header(annotated)
        layout = layout_from_header(variant_header(vep_header.lines, workdir, f"the VEP output for {source}"))
        stream = stream_records(annotated, None, layout.query_format(), workdir, vep_header)
        rows = _convert(stream, layout, out, options, csq_from_row=True)
        return stats, rows, True, layout
    tag = already_annotated and any(_csq_has_format(input_header, t) for t in CSQ_TAGS)
    norm_options = NormalizeOptions(reference=options.reference, check_ref=options.check_ref,
                                    original_record_tag=tag)
    layout = layout_from_header(input_header, original_record_tag=tag)
    module = native.load() if options.block_bytes == BLOCK_BYTES and native.supports(layout) else None
    if module is not None and norm_options.reference is None and native.split_enabled() \
            and ORIGINAL_RECORD_TAG not in input_header.info:
        done = _convert_split(module, source, header, layout, out, workdir, extra_header)
        if done is not None:
            return done[0], done[1], False, layout
    if module is not None:
        stream = stream_bcf(source, norm_options, workdir, header, extra_header=extra_header)
        rows = _convert_native(module, stream, layout, out)
    else:
        stream = stream_records(source, norm_options, layout.query_format(), workdir, header,
                                extra_header=extra_header)
        rows = _convert(stream, layout, out, options)
    final = stream.finish()
    assert final is not None
    return final, rows, False, layout


def _csq_has_format(header: object, tag: str) -> bool:
    info = header.info  # type: ignore[attr-defined]
    return tag in info and "Format:" in (info[tag].description or "")


def _convert(stream, layout: VcfLayout, out: Path, options: PreprocessOptions,  # type: ignore[no-untyped-def]
             *, csq_from_row: bool = False) -> int:
    source = Path(stream.source)
    limit_hint = _LIMIT_HINT
    try:
        result = write_parquet(read_text(stream.stdout, layout, options.block_bytes), layout, out,
                               csq_from_row=csq_from_row)
    except OversizedField as error:
        stream.finish(reader_stopped=True)
        record = locate_record(source, error.chrom_pos, str(error)) if error.chrom_pos else None
        raise VcfInputError(str(source), str(error), record=record, hint=limit_hint) from None
    except pa.ArrowInvalid as error:
        stream.finish(reader_stopped=True)
        if "straddl" not in str(error):
            raise VcfInputError(str(source), f"cannot convert the normalized records: {error}") from error
        # A value longer than the text block: Arrow cannot say which; one pass over the input can.
        found = locate_oversized(source, MAX_FIELD_BYTES)
        if found is not None:
            raise VcfInputError(str(source), f"{found[1]}, above the limit of {MAX_FIELD_BYTES >> 20} MiB per "
                                "field value", record=found[0], hint=limit_hint) from None
        # No single value is too long, but the record's text outgrows a block (many samples, many fields).
        found = locate_oversized(source, options.block_bytes // 2)
        record, what = found if found else (None, "a record")
        raise VcfInputError(str(source), f"{what}: the normalized record is longer than the converter's text block "
                            f"of {options.block_bytes / (1 << 20):.1f} MiB", record=record,
                            hint="split the file's samples into several files (`bcftools view -s`)") from None
    except (pa.ArrowException, OSError, ValueError) as error:
        # The chain's own failure (a bad record, a truncation) explains this better when there is one.
        stream.finish()
        raise VcfInputError(str(stream.source), f"cannot convert the normalized records: {error}") from error
    stream.finish()
    return result.rows


def _convert_native(module: ModuleType, stream: RecordStream, layout: VcfLayout, out: Path) -> int:
    """The compiled path (``native.py``): norm's BCF decoded straight into Arrow buffers.

    Errors as the text path gives them: norm's own failure (a bad or truncated input) names the
    record; a value above the limit names the record and the field; a stream the decoder cannot
    read names the user's file and the last record decoded, never the pipe."""
    source = Path(stream.source)
    assert stream.stdout is not None
    try:
        reader = native.NativeReader(module, stream.stdout.fileno(), layout, MAX_FIELD_BYTES)
        # Decode in a thread of its own, ahead of the table build, so the child never waits on us (readahead.py).
        batches = read_ahead(reader.batches(), name="bcf-decoder")
        result = write_parquet(batches, layout, out, converter=native.NativeConverter(layout, reader))
    except OversizedField as error:
        stream.finish(reader_stopped=True)
        record = locate_record(source, error.chrom_pos, str(error)) if error.chrom_pos else None
        raise VcfInputError(str(source), str(error), record=record, hint=_LIMIT_HINT) from None
    except native.NativeDecodeError as error:
        _prefer_norm_error(stream)
        _, chrom, pos = error.where
        raise VcfInputError(str(source), f"cannot convert the normalized records: {error}",
                            record=f"after {chrom}:{pos}" if chrom else None) from None
    except (pa.ArrowException, OSError, ValueError) as error:
        _prefer_norm_error(stream)
        raise VcfInputError(str(source), f"cannot convert the normalized records: {error}") from error
    stream.finish()
    return result.rows


def _convert_split(module: ModuleType, source: Path, header: InputHeader, layout: VcfLayout, out: Path,
                   workdir: Path, extra_header: list[str] | None) -> tuple[NormalizeStats, int] | None:
    """The compiled path with the decoder's own multi-allelic split, fed by ``bcftools view -Ou``
    (half of norm's CPU): the same table as norm's split gives (``csrc/split.h``).

    None whenever anything is not as expected -- a record the split refuses, a bad input, a value
    above the limit, a decoding error: the caller then runs the task through norm from the start,
    which writes the same output or gives the user its own clear error. Bad input costs a second
    start; good input never depends on the split guessing."""
    stream = stream_unsplit(source, workdir, header, extra_header=extra_header)
    assert stream.stdout is not None
    try:
        reader = native.NativeReader(module, stream.stdout.fileno(), layout, MAX_FIELD_BYTES, split=True)
        # Decode in a thread of its own, ahead of the table build, so the child never waits on us (readahead.py).
        batches = read_ahead(reader.batches(), name="bcf-decoder")
        result = write_parquet(batches, layout, out, converter=native.NativeConverter(layout, reader))
    except (native.SplitRefused, OversizedField, pa.ArrowException, OSError, ValueError):
        try:
            stream.finish(reader_stopped=True)
        except VcfInputError:
            pass
        return None
    try:
        stream.finish()
    except VcfInputError:
        return None
    if stream.stages[0].process.returncode != 0:  # even "cannot write" (finish forgives it): view did not finish
        return None
    records, split = reader.counts()
    return split_stats(stream, records, split), result.rows


def _prefer_norm_error(stream: RecordStream) -> None:
    """Raise norm's own error when it has one: a bad input explains a cut stream better than the
    decoder can. Its missing counts alone (it was cut off because we stopped reading) are not one."""
    try:
        stream.finish()
    except VcfInputError as error:
        if "reported no record counts" not in error.reason:
            raise


def run_vep(command: tuple[str, ...], source: Path, dest: Path) -> Path:
    """Run the configured VEP command (argument list, no shell) on a normalized VCF."""
    args = [*command]
    for flag in VEP_REQUIRED_FLAGS:
        if flag not in args:
            args.append(flag)
    args += ["--input_file", str(source), "--output_file", str(dest), "--compress_output", "bgzip",
             "--force_overwrite", "--no_stats"]
    try:
        completed = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as error:
        raise ToolError(f"cannot start VEP ({args[0]}): {error}; check the configured VEP command") from error
    if completed.returncode != 0 or not dest.exists():
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
        raise ToolError(f"VEP failed on {source.name} (exit {completed.returncode}): {' | '.join(tail)}")
    return dest
