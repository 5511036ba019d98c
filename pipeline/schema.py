"""The variant table's layout, derived from a VCF header.

One row per alternate allele (the input is split with ``bcftools norm -m -any`` first),
modelled on Google's Variant Transforms so that existing queries carry over:

=================== ============================================================================
reference_name      STRING, the contig
start_position      INTEGER, 0-based start
end_position        INTEGER, 0-based exclusive end (from REF length or INFO/END)
reference_bases     STRING
alternate_bases     REPEATED RECORD: ``alt`` and the INFO fields with Number=A, plus ``CSQ``
                    (REPEATED RECORD, one per VEP entry of this allele, fields named from the
                    header's ``Format:``). Empty for a reference-only record (ALT ``.``).
names               REPEATED STRING (ID split on ``;``)
quality             FLOAT (null when ``.``)
filter              REPEATED STRING (``PASS`` kept)
<INFO fields>       typed from the header: Integer → INTEGER, Float → FLOAT, Flag → BOOLEAN,
                    String/Character → STRING; REPEATED when Number is not 1 (R, G, ., n > 1)
call                REPEATED RECORD per sample: ``name``, ``genotype`` (REPEATED INTEGER, -1 =
                    no-call), ``phased``, then the FORMAT fields typed like INFO
=================== ============================================================================

BigQuery refuses NULL elements inside a repeated field, so a missing value inside a
multi-valued numeric field is written as -2147483648 (Variant Transforms' default
``null_numeric_value_replacement``) and inside a string list as ``.``.

Column names are made BigQuery-safe (``[A-Za-z_][A-Za-z0-9_]*``), unique case-insensitively
at each level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sovaudit.pipeline.csq import CsqLayout, column_name, parse_layout

NULL_NUMERIC_REPLACEMENT = -2147483648
NULL_STRING_REPLACEMENT = "."
# INFO tag bcftools adds to split records (``--old-rec-tag``): CHROM|POS|REF|ALT|ALT_INDEX of the
# original record, which is how a row finds its CSQ entries after the split.
ORIGINAL_RECORD_TAG = "SOVAUDIT_OLD_REC"
CSQ_TAGS = ("CSQ",)
# Ends each sample's value inside a FORMAT column of the query text: the ASCII unit separator,
# which no VCF value contains (a comma or semicolon can appear inside String values).
SAMPLE_SEPARATOR = "\x1f"

_FIXED_COLUMNS = ("reference_name", "start_position", "end_position", "reference_bases", "alternate_bases",
                  "names", "quality", "filter", "call")
_ARROW_TYPES: dict[str, pa.DataType] = {"Integer": pa.int64(), "Float": pa.float64(), "String": pa.string(),
                                        "Character": pa.string(), "Flag": pa.bool_()}


@dataclass(frozen=True)
class FieldSpec:
    """One INFO or FORMAT field: its VCF id, Number, Type and the column it becomes."""

    id: str
    number: str
    type: str
    column: str

    @property
    def value_type(self) -> pa.DataType:
        return _ARROW_TYPES.get(self.type, pa.string())

    @property
    def is_flag(self) -> bool:
        return self.type == "Flag"

    @property
    def per_allele(self) -> bool:
        return self.number == "A"

    @property
    def repeated(self) -> bool:
        """True when a value is a list after the split (Number R, G, ., or a fixed n > 1)."""
        return not self.is_flag and self.number not in ("1", "A", "0")

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.list_(self.value_type) if self.repeated else self.value_type


@dataclass(frozen=True)
class VcfLayout:
    """Everything the converter needs to know about one file's header."""

    samples: tuple[str, ...]
    info: tuple[FieldSpec, ...]
    formats: tuple[FieldSpec, ...]
    csq: CsqLayout | None
    contigs: tuple[str, ...]
    has_original_record_tag: bool = False

    @property
    def row_info(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.info if not f.per_allele)

    @property
    def allele_info(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.info if f.per_allele)

    @property
    def call_formats(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.formats if f.id != "GT")

    # -- the text bcftools query prints, and how Arrow reads it back -------------------------

    def query_format(self) -> str:
        """The ``bcftools query -f`` format: fixed columns, INFO, then FORMAT per sample."""
        parts = ["%CHROM", "%POS0", "%END", "%ID", "%REF", "%ALT", "%QUAL", "%FILTER"]
        parts += [f"%INFO/{f.id}" for f in self.info]
        if self.csq is not None:
            parts.append(f"%INFO/{self.csq.tag}")
        if self.has_original_record_tag:
            parts.append(f"%INFO/{ORIGINAL_RECORD_TAG}")
        if self.samples:
            # One column per FORMAT field holding every sample's value, row-major, each ended by
            # SAMPLE_SEPARATOR: a few wide text cells parse far faster than one cell per sample.
            parts += [f"[%{name}{SAMPLE_SEPARATOR}]" for name in ("GT", *(f.id for f in self.call_formats))]
        return "\\t".join(parts) + "\\n"

    def text_columns(self) -> list[tuple[str, pa.DataType]]:
        """The query output's columns in order, with the type Arrow parses each as."""
        columns: list[tuple[str, pa.DataType]] = [
            ("chrom", pa.string()), ("pos0", pa.int64()), ("end", pa.int64()), ("id", pa.string()),
            ("ref", pa.string()), ("alt", pa.string()), ("qual", pa.float64()), ("filter", pa.string())]
        columns += [(f"info:{f.id}", _text_type(f)) for f in self.info]
        if self.csq is not None:
            columns.append(("csq", pa.string()))
        if self.has_original_record_tag:
            columns.append(("orig", pa.string()))
        if self.samples:
            columns.append(("gt", pa.string()))
            columns += [(f"fmt:{f.id}", pa.string()) for f in self.call_formats]
        return columns

    # -- the output table -------------------------------------------------------------------

    def allele_type(self) -> pa.StructType:
        fields = [pa.field("alt", pa.string())]
        fields += [pa.field(f.column, f.value_type) for f in self.allele_info]
        if self.csq is not None:
            fields.append(pa.field(self.csq.tag, self.csq.arrow_type()))
        return pa.struct(fields)

    def call_type(self) -> pa.StructType:
        fields = [pa.field("name", pa.dictionary(pa.int32(), pa.string())),
                  pa.field("genotype", pa.list_(pa.int64())), pa.field("phased", pa.bool_())]
        fields += [pa.field(f.column, f.arrow_type) for f in self.call_formats]
        return pa.struct(fields)

    def arrow_schema(self) -> pa.Schema:
        # Every record has a contig and a position: REQUIRED columns, as Variant Transforms declares them.
        fields = [pa.field("reference_name", pa.string(), nullable=False),
                  pa.field("start_position", pa.int64(), nullable=False),
                  pa.field("end_position", pa.int64(), nullable=False), pa.field("reference_bases", pa.string()),
                  pa.field("alternate_bases", pa.list_(self.allele_type())),
                  pa.field("names", pa.list_(pa.string())), pa.field("quality", pa.float64()),
                  pa.field("filter", pa.list_(pa.string()))]
        fields += [pa.field(f.column, f.arrow_type) for f in self.row_info]
        fields.append(pa.field("call", pa.list_(self.call_type())))
        return pa.schema(fields)


def _text_type(spec: FieldSpec) -> pa.DataType:
    # Everything but the fixed columns is read as text and typed by the converter: real files put
    # two values in Number=1/A fields (ExAC's AC=2,1 on a biallelic site), which a typed CSV
    # column would refuse mid-stream.
    return pa.string()


def _number(raw: Any) -> str:
    return str(raw)


def layout_from_header(header: Any, *, original_record_tag: bool = False) -> VcfLayout:
    """Build the layout from a ``pysam.VariantHeader`` (htslib's reading of the header)."""
    # "alt" and "csq" live beside the Number=A fields inside alternate_bases.
    info_taken = {name.lower() for name in _FIXED_COLUMNS} | {"alt", "csq"}
    csq: CsqLayout | None = None
    info: list[FieldSpec] = []
    for name, meta in header.info.items():
        if name == ORIGINAL_RECORD_TAG:
            continue
        if name in CSQ_TAGS and csq is None:
            csq = parse_layout(name, meta.description or "")
            if csq is not None:
                continue
        info.append(FieldSpec(id=name, number=_number(meta.number), type=str(meta.type),
                              column=column_name(name, info_taken)))
    call_taken = {"name", "genotype", "phased"}
    formats = [FieldSpec(id=name, number=_number(meta.number), type=str(meta.type),
                         column=column_name(name, call_taken) if name != "GT" else "GT")
               for name, meta in header.formats.items()]
    return VcfLayout(samples=tuple(header.samples), info=tuple(info), formats=tuple(formats), csq=csq,
                     contigs=tuple(header.contigs), has_original_record_tag=original_record_tag)
