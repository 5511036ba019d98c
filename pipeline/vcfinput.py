"""Reading a VCF input before bcftools does: compression, header, undeclared ids, bad records.

htslib streams BGZF, plain gzip and uncompressed VCF alike; Python's gzip reads the first two
too (BGZF is multi-member gzip), which is all the header, the id scans and the diagnosis of a
failed run need. A BCF is read through pysam: its header is always complete.

Ids the records use but the header does not declare (issue 6 lists "an undefined FORMAT key"
as bad input; issue 5 requires files without ``##contig`` lines to load):

- a **contig** or a **FILTER** id is declared for htslib (``##contig=<ID=...>``,
  ``##FILTER=<ID=...>``) and the run goes on, with a warning in the manifest. Neither has a type:
  a contig only names ``reference_name`` and a FILTER id only lands in the ``filter`` list, so
  declaring them changes no column. ``FORMAT/GT`` is declared too: the specification fixes its
  Number and Type, so nothing is guessed.
- an **INFO** or **FORMAT** key is refused, naming the key and the record. Its declaration
  decides a column's type (Integer, Float, Flag, String) and whether it is repeated; guessing
  String, as htslib does, would load numbers as text and make a column that conflicts with the
  next file declaring the same key properly (a load into the shared table then fails, or
  worse, a Float column quietly becomes a String one in a new table).

The rule is one: an undeclared id is added when its declaration carries no type, refused when
it would decide one.
"""

from __future__ import annotations

import gzip
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from sovaudit.pipeline.errors import VcfInputError

Compression = Literal["bgzf", "gzip", "none"]
_COPY_CHUNK = 1 << 20
# Words in an htslib/bcftools message that mean the file ends early.
TRUNCATION_WORDS = ("truncat", "EOF", "decompress", "BGZF block", "GZIP stream")


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
                    duplicated = _duplicate_samples(line)
                    if duplicated:
                        # htslib refuses this header with a message that does not say why.
                        raise VcfInputError(str(path), f"sample name {duplicated!r} appears twice in the #CHROM "
                                            "line", record=f"line {len(lines)}",
                                            hint="every sample column needs its own name")
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


def variant_header(lines: list[str] | tuple[str, ...], workdir: Path, named: str) -> Any:
    """htslib's reading of a header (a ``pysam.VariantHeader``), the same one bcftools will use.

    ``named`` is what the user knows the header as (their file, or "the VEP output of their file"):
    htslib reads a copy in the task's temporary directory, and its errors name that copy as a Python
    bytes repr, which means nothing to the person who has to fix the file."""
    import pysam

    # ``workdir`` is the task's private temporary directory; the handle is closed before htslib reads.
    with tempfile.NamedTemporaryFile("w", suffix=".vcf", prefix="header-", dir=workdir, delete=False) as written:
        written.write("\n".join(lines) + "\n")
    header_path = Path(written.name)
    previous = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(str(header_path)) as handle:
            return handle.header.copy()
    except (OSError, ValueError) as error:
        raise VcfInputError(named, "htslib cannot read the header: "
                            f"{_without_internal_names(str(error), header_path)}",
                            hint="check each ## line is complete (<...> closed, quotes balanced) and every "
                                 "sample name is unique; `bcftools view -h FILE` shows the same error") from error
    finally:
        pysam.set_verbosity(previous)
        header_path.unlink(missing_ok=True)


def _duplicate_samples(chrom_line: str) -> str | None:
    """The first sample name the #CHROM line repeats (htslib refuses such a header without saying why)."""
    seen: set[str] = set()
    for name in chrom_line.split("\t")[9:]:
        if name in seen:
            return name
        seen.add(name)
    return None


def _without_internal_names(message: str, internal: Path) -> str:
    """pysam's message minus the temporary copy's name and Python reprs (``file `b'/tmp/..'` ``,
    ``(mode=`b'r'`)``): what is left is htslib's reason."""
    message = re.sub(r"file `b?'[^`]*'` ?", "", message)
    message = re.sub(r" ?\(mode=`b?'[^`]*'`\)", "", message)
    message = message.replace(str(internal), "the header")
    message = re.sub(r"\bb'([^']*)'", r"\1", message)
    return message.strip() or "not a valid VCF header"


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


@dataclass(frozen=True)
class UndeclaredIds:
    """What a pass over the records found the header lacks.

    ``added``: ``##contig``/``##FILTER`` lines to declare (they carry no type). ``refused``: the first
    INFO or FORMAT key used without a declaration, as ``(kind, key, record)``, or None.
    """

    added: tuple[str, ...]
    refused: tuple[str, str, str] | None = None

    def error(self, path: Path) -> VcfInputError:
        assert self.refused is not None
        kind, key, record = self.refused
        example = (f'##{kind}=<ID={key},Number=1,Type=String,Description="...">' if kind == "FORMAT"
                   else f'##{kind}=<ID={key},Number=1,Type=Integer,Description="...">')
        return VcfInputError(str(path), f"{kind} key {key!r} is not declared in the header; its type would "
                             "only be guessed (htslib assumes String)", record=record,
                             hint=f"declare it with its real Number and Type, e.g. {example}, or remove it "
                                  f"(`bcftools annotate -x {kind}/{key}`)")


def scan_undeclared(path: Path, header: InputHeader) -> UndeclaredIds:
    """One pass over the text: contig and FILTER ids to declare, or the first undeclared INFO or
    FORMAT key (with its line and chrom:pos), which stops the pass. A BCF cannot use an undeclared id."""
    if header.is_bcf:
        return UndeclaredIds(added=())
    declared = header.declared()
    contigs: dict[str, None] = {}
    filters: dict[str, None] = {}
    genotype = False  # GT's Number and Type are fixed by the VCF specification: declared, never guessed
    line_number = 0
    try:
        with open_text(path) as text:
            for raw in text:
                line_number += 1
                if raw.startswith(b"#"):
                    continue
                fields = raw.rstrip(b"\r\n").decode("utf-8", errors="replace").split("\t", 9)
                where = f"line {line_number} ({fields[0]}:{fields[1]})" if len(fields) > 1 else f"line {line_number}"
                _note(contigs, declared["contig"], fields[0:1])
                if len(fields) > 6 and fields[6] != ".":
                    _note(filters, declared["FILTER"], fields[6].split(";"))
                if len(fields) > 7 and fields[7] != ".":
                    for item in fields[7].split(";"):
                        key = item.partition("=")[0].strip()
                        if key and key not in declared["INFO"]:
                            return UndeclaredIds(added=(), refused=("INFO", key, where))
                if len(fields) > 8 and fields[8] != ".":
                    for key in fields[8].split(":"):
                        key = key.strip()
                        if key == "GT" and key not in declared["FORMAT"]:
                            genotype = True
                        elif key and key not in declared["FORMAT"]:
                            return UndeclaredIds(added=(), refused=("FORMAT", key, where))
    except (OSError, EOFError, zlib.error):
        pass  # the normalization itself reports the truncation, with the record
    lines = [f"##contig=<ID={name}>" for name in contigs]
    lines += [f'##FILTER=<ID={name},Description="Not declared in the input header">' for name in filters]
    if genotype:
        lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype (not declared in the input header)">')
    return UndeclaredIds(added=tuple(lines))


def _note(seen: dict[str, None], declared: set[str], names: list[str]) -> None:
    for name in names:
        name = name.strip()
        if name and name not in declared:
            seen.setdefault(name)


_FIXED_NAMES = ("CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT")


def locate_oversized(source: Path, limit: int) -> tuple[str, str] | None:
    """The first field longer than ``limit`` bytes: ``("line N (chrom:pos)", "INFO/KEY value is X MiB")``.

    A diagnostic pass for a conversion that failed on a huge value: it names the column (CHROM..
    FORMAT), the INFO key, or the FORMAT key and sample column. None when no field is that long.
    """
    line_number = 0
    try:
        with open_text(source) as text:
            for raw in text:
                line_number += 1
                if raw.startswith(b"#") or len(raw) <= limit:
                    continue
                fields = raw.rstrip(b"\r\n").split(b"\t")
                where = (f"line {line_number} ({fields[0].decode(errors='replace')}:"
                         f"{fields[1].decode(errors='replace') if len(fields) > 1 else '?'})")
                name, size = _oversized_field(fields, limit)
                if name is not None:
                    return where, f"{name} value is {size / (1 << 20):.1f} MiB"
                return where, f"the record is {len(raw) / (1 << 20):.1f} MiB"
    except (OSError, EOFError, zlib.error):
        return None
    return None


def _oversized_field(fields: list[bytes], limit: int) -> tuple[str | None, int]:
    keys = fields[8].split(b":") if len(fields) > 8 else []
    for index, value in enumerate(fields):
        if len(value) <= limit:
            continue
        if index == 7:
            for item in value.split(b";"):
                if len(item) > limit:
                    key, _, data = item.partition(b"=")
                    return f"INFO/{key.decode(errors='replace')}", len(data)
        if index > 8:
            for key, item in zip(keys, value.split(b":"), strict=False):
                if len(item) > limit:
                    return f"FORMAT/{key.decode(errors='replace')} of sample column {index - 8}", len(item)
        return _FIXED_NAMES[index] if index < len(_FIXED_NAMES) else f"column {index + 1}", len(value)
    return None, 0


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
    truncated = any(word in reason for word in TRUNCATION_WORDS)
    return f"after {last_good}" if last_good and truncated else None
