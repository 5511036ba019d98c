"""Normalized VCF records → the variant table (Parquet), built column by column.

This is the text path, the fallback of the compiled one (``native.py``, which decodes norm's BCF
straight into Arrow buffers and reuses ``BatchConverter.alleles`` and ``write_parquet`` from here);
it also converts VEP's output. Both give the same table.

``bcftools query`` prints one tab-separated line per normalized record (layout in
``schema.VcfLayout.query_format``); ``pyarrow.csv`` parses that text in streaming blocks on
all cores; each block becomes a table by whole-column operations (split, cast, take,
interleave) — never a Python object per record, which measured 20× slower than the
normalization it follows. Memory is bounded by the block size, whatever the file size.

Limits: one field value (REF, ALT, an INFO value, one sample's FORMAT value...) may hold at most
``MAX_FIELD_BYTES`` (1 MiB); a longer one is refused naming the record and the field
(``OversizedField``). No real annotation comes near it, BigQuery's 100 MB row limit would refuse
a record made of a few of them anyway, and a value longer than the text block (``BLOCK_BYTES``)
cannot be parsed at all: ``pyarrow.csv`` then fails with "straddling object straddles two block
boundaries", and the caller locates the record with ``vcfinput.locate_oversized``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sovaudit.pipeline.csq import split_per_allele
from sovaudit.pipeline.schema import (
    NULL_NUMERIC_REPLACEMENT,
    SAMPLE_SEPARATOR,
    FieldSpec,
    VcfLayout,
)

# Rows of text per Arrow block: about 1-2 s of work, a few tens of MB of memory.
BLOCK_BYTES = 8 << 20
ROW_GROUP_ROWS = 128 * 1024
ROW_GROUP_BYTES = 32 << 20
# The longest field value accepted (module docstring); well below BLOCK_BYTES.
MAX_FIELD_BYTES = 1 << 20


class OversizedField(ValueError):
    """A field value above ``MAX_FIELD_BYTES``: ``field`` (``INFO/NOTE``, ``FORMAT/AD``, ``REF``...),
    ``size`` in bytes and ``chrom_pos`` of the normalized record (1-based)."""

    def __init__(self, field: str, size: int, row: int, chrom_pos: str | None = None) -> None:
        self.field, self.size, self.row, self.chrom_pos = field, size, row, chrom_pos
        super().__init__(f"{field} value is {size / (1 << 20):.1f} MiB, above the limit of "
                         f"{MAX_FIELD_BYTES >> 20} MiB per field value")



def use_fast_allocator() -> str:
    """Make jemalloc Arrow's default pool when this build has it; returns the pool in use.

    Measured on the 1M-record benchmark: mimalloc (pyarrow's default here) hands memory back to
    the system after every batch and spends ~0.9 s in the kernel re-faulting it; jemalloc ~0.45 s.
    Called by the task's entry points (a process-wide choice), not by library code.
    """
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowException):
        pass
    return str(pa.default_memory_pool().backend_name)


@dataclass(frozen=True)
class ConvertResult:
    rows: int
    row_groups: int
    path: Path


def read_text(stream: IO[bytes] | str, layout: VcfLayout, block_bytes: int = BLOCK_BYTES
              ) -> Iterator[pa.RecordBatch]:
    """Parse ``bcftools query`` output (see ``VcfLayout.query_format``) into record batches."""
    columns = layout.text_columns()
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=[name for name, _ in columns], block_size=block_bytes,
                                           use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False,
                                             escape_char=False, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(column_types=dict(columns), null_values=["."],
                                                 strings_can_be_null=True, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as error:
        if "Empty CSV" in str(error):
            return  # a VCF with a header and no records: zero rows, still a valid (empty) table
        raise
    yield from reader


class BatchConverter:
    """Turns one parsed text batch into one batch of the output table."""

    def __init__(self, layout: VcfLayout, *, csq_from_row: bool = False) -> None:
        self.layout = layout
        self.schema = layout.arrow_schema()
        # True when VEP ran on the split records: every CSQ entry then belongs to the row itself.
        self.csq_from_row = csq_from_row
        samples = layout.samples
        self.sample_dictionary = pa.array(samples, pa.string())

    def convert(self, batch: pa.RecordBatch) -> pa.Table:
        col = {name: batch.column(i) for i, name in enumerate(batch.schema.names)}
        try:
            _check_sizes(col)
            return self._convert(col, batch.num_rows)
        except OversizedField as error:
            raise OversizedField(error.field, error.size, error.row,
                                 f"{col['chrom'][error.row].as_py()}:{col['pos0'][error.row].as_py() + 1}") from None

    def _convert(self, col: dict[str, pa.Array], n: int) -> pa.Table:
        layout = self.layout
        arrays: list[pa.Array] = [
            col["chrom"], col["pos0"], col["end"], col["ref"], self._alternate_bases(col, n),
            pc.split_pattern(col["id"], ";"), col["qual"], pc.split_pattern(col["filter"], ";"),
        ]
        arrays += [_field_values(col[f"info:{f.id}"], f) for f in layout.row_info]
        arrays.append(self._calls(col, n))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    # -- alternate_bases -------------------------------------------------------------------

    def _alternate_bases(self, col: dict[str, pa.Array], n: int) -> pa.Array:
        return self.alleles(col, [_field_values(col[f"info:{f.id}"], f) for f in self.layout.allele_info], n)

    def alleles(self, col: dict[str, pa.Array], allele_values: list[pa.Array], n: int) -> pa.Array:
        """``alternate_bases`` from the ALT column, the typed Number=A values and, with CSQ, the
        ``csq``/``orig``/``ref`` columns (shared by the text and the compiled path)."""
        layout = self.layout
        alt = col["alt"]
        children = [alt, *allele_values]
        if layout.csq is not None:
            allele_num, allele = self._csq_keys(col, n)
            children.append(split_per_allele(layout.csq, col["csq"], allele_num, allele, alt))
        struct = pa.StructArray.from_arrays(children, fields=list(layout.allele_type()))
        present = pc.is_valid(alt)
        counts = present.to_numpy(zero_copy_only=False).astype(np.int32)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        values = struct if offsets[-1] == n else struct.filter(present)
        return pa.ListArray.from_arrays(pa.array(offsets), values)

    def _csq_keys(self, col: dict[str, pa.Array], n: int) -> tuple[pa.Array, pa.Array]:
        """Per row: the 1-based index of its allele in the original ALT list, and VEP's Allele string.

        The original record comes from bcftools' ``--old-rec-tag`` on split rows; a row that was
        not split is its own original. Computed only for rows that carry CSQ.
        """
        orig = col.get("orig")
        use_original = orig is not None and not self.csq_from_row and orig.null_count < n
        present = pc.is_valid(col["csq"])
        present_np = present.to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(present_np)
        ref, alt = col["ref"].filter(present).fill_null(""), col["alt"].filter(present).fill_null("")
        m = len(rows)
        if use_original:
            assert orig is not None
            sub = orig.filter(present)
            # "CHR|POS|REF|ALT|ALT_INDEX" on split records; realigned-only records carry no index.
            parts = pc.split_pattern(pc.binary_join_element_wise(sub.fill_null("||||"), "|1", ""), "|")
            has = pc.is_valid(sub)
            original_ref = pc.if_else(has, pc.list_element(parts, 2), ref)
            original_alts = pc.if_else(has, pc.list_element(parts, 3), alt)
            index = pc.cast(pc.if_else(has, pc.list_element(parts, 4), "1"), pa.int64())
        else:
            original_ref, original_alts, index = ref, alt, pa.array(np.ones(m, dtype=np.int64))
        alts = pc.split_pattern(original_alts, ",")
        flat = alts.values
        parent = pc.list_parent_indices(alts).to_numpy(zero_copy_only=False)
        first = pc.utf8_slice_codeunits(original_ref, 0, 1)
        starts_same = pc.equal(pc.utf8_slice_codeunits(flat, 0, 1), first.take(parent))
        other_length = pc.not_equal(pc.utf8_length(flat), pc.utf8_length(original_ref).take(parent))
        mismatched = np.bincount(parent[~starts_same.to_numpy(zero_copy_only=False)], minlength=m)
        length_changes = np.bincount(parent[other_length.to_numpy(zero_copy_only=False)], minlength=m)
        has_first = pc.utf8_length(first).to_numpy(zero_copy_only=False) > 0
        strip = (mismatched == 0) & (length_changes > 0) & has_first
        picked = np.clip(alts.offsets.to_numpy()[:-1] + index.to_numpy(zero_copy_only=False) - 1, 0,
                         max(len(flat) - 1, 0))
        allele = flat.take(pa.array(picked)) if len(flat) else pa.nulls(m, pa.string())
        stripped = pc.utf8_slice_codeunits(allele, 1)
        stripped = pc.if_else(pc.equal(stripped, ""), "-", stripped)
        vep_allele = pc.if_else(pa.array(strip), stripped, allele)
        position = np.zeros(n, dtype=np.int64)
        position[rows] = np.arange(m)
        scatter = pa.array(position, mask=~present_np)
        return index.take(scatter), vep_allele.take(scatter)

    # -- call ------------------------------------------------------------------------------

    def _calls(self, col: dict[str, pa.Array], n: int) -> pa.Array:
        layout = self.layout
        call_type = layout.call_type()
        n_samples = len(layout.samples)
        if n_samples == 0:
            empty = pa.array([], type=call_type)
            return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), empty)
        gt = _per_sample(col["gt"], n, n_samples, "GT", dot_is_null=False)
        genotype, phased = _genotypes(gt)
        names = pa.DictionaryArray.from_arrays(
            pa.array(np.tile(np.arange(n_samples, dtype=np.int32), n)), self.sample_dictionary)
        children = [names, genotype, phased]
        for spec in layout.call_formats:
            values = _per_sample(col[f"fmt:{spec.id}"], n, n_samples, spec.id, dot_is_null=True)
            children.append(_field_values(values, spec))
        struct = pa.StructArray.from_arrays(children, fields=list(call_type))
        offsets = np.arange(0, n * n_samples + 1, n_samples, dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), struct)


_TEXT_NAMES = {"chrom": "CHROM", "id": "ID", "ref": "REF", "alt": "ALT", "filter": "FILTER", "csq": "INFO/CSQ"}


def _check_sizes(col: dict[str, pa.Array]) -> None:
    """Refuse a row-level text value above ``MAX_FIELD_BYTES`` (per-sample values: ``_per_sample``).
    Read from the offsets alone, so it costs one pass over the row count, not the text."""
    for name, values in col.items():
        if not pa.types.is_string(values.type) or name == "gt" or name.startswith("fmt:") or not len(values):
            continue
        lengths = pc.binary_length(values)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > MAX_FIELD_BYTES:
            row = pc.index(pc.greater(lengths, MAX_FIELD_BYTES), True).as_py()
            field = _TEXT_NAMES.get(name) or name.replace("info:", "INFO/").replace("orig", "INFO/orig")
            raise OversizedField(field, int(longest), int(row))


def _per_sample(column: pa.Array, n: int, n_samples: int, field_id: str, *, dot_is_null: bool) -> pa.Array:
    """``a␟b␟c␟`` per row (one value per sample, each ended by the separator) → a row-major array
    of ``n * n_samples`` strings: row 0's samples, then row 1's. ``.`` becomes null when asked.

    Built from buffers: the split leaves one empty string after each row's last sample, and
    dropping a zero-length value only means dropping its offset, so no text is copied again.
    """
    lists = pc.split_pattern(column.fill_null("") if column.null_count else column, SAMPLE_SEPARATOR)
    counts = pc.list_value_length(lists)
    if pc.min(counts).as_py() != n_samples + 1 or pc.max(counts).as_py() != n_samples + 1:
        raise ValueError(f"FORMAT/{field_id}: expected {n_samples} sample values per record")
    values = lists.values
    if values.offset:
        values = pa.concat_arrays([values])  # a fresh, unsliced copy so that the buffers line up
    m = n * (n_samples + 1)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=m + 1)
    keep = np.ones(m + 1, dtype=bool)
    keep[n_samples:m:n_samples + 1] = False  # the start offset of each trailing empty value
    kept_offsets = offsets[keep]
    validity = None
    nulls = 0
    lengths = np.diff(kept_offsets)
    if len(lengths) and int(lengths.max()) > MAX_FIELD_BYTES:
        at = int(np.argmax(lengths > MAX_FIELD_BYTES))
        raise OversizedField(f"FORMAT/{field_id} of sample {at % n_samples + 1}", int(lengths[at]), at // n_samples)
    if dot_is_null:
        data = np.frombuffer(values.buffers()[2], dtype=np.uint8) if values.buffers()[2] else np.zeros(0, np.uint8)
        first = data[np.minimum(kept_offsets[:-1], max(len(data) - 1, 0))] if len(data) else np.zeros(0, np.uint8)
        missing = (lengths == 1) & (first == ord("."))
        nulls = int(missing.sum())
        if nulls:
            validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.StringArray.from_buffers(n * n_samples, pa.py_buffer(kept_offsets), values.buffers()[2],
                                       validity, nulls)


def _genotypes(gt: pa.Array) -> tuple[pa.Array, pa.Array]:
    """``0/1``, ``1|0``, ``./.``, ``1`` → ([0, 1], False), ([1, 0], True), ([-1, -1], False), ([1], False)."""
    fast = _diploid_genotypes(gt)
    if fast is not None:
        return fast
    gt = gt.fill_null(".")
    phased = pc.match_substring(gt, "|")
    alleles = pc.split_pattern(pc.replace_substring(gt, "|", "/"), "/")
    flat = pc.list_flatten(alleles)
    numbers = pc.cast(pc.if_else(pc.equal(flat, "."), "-1", flat), pa.int64())
    return pa.ListArray.from_arrays(alleles.offsets, numbers), phased


def _diploid_genotypes(gt: pa.Array) -> tuple[pa.Array, pa.Array] | None:
    """The common case read straight from the string bytes: every GT is ``a/b`` or ``a|b`` with one
    character per allele (after the split, alleles are 0, 1 or missing). None when any is not."""
    m = len(gt)
    if m == 0 or gt.null_count or gt.offset:
        return None
    offsets = np.frombuffer(gt.buffers()[1], dtype=np.int32, count=m + 1)
    if offsets[0] != 0 or offsets[-1] != 3 * m or not np.array_equal(np.diff(offsets), np.full(m, 3, np.int32)):
        return None
    chars = np.frombuffer(gt.buffers()[2], dtype=np.uint8, count=3 * m).reshape(m, 3)
    alleles = chars[:, [0, 2]]
    separator = chars[:, 1]
    digits = (alleles >= ord("0")) & (alleles <= ord("9"))
    missing = alleles == ord(".")
    if not ((digits | missing).all() and ((separator == ord("/")) | (separator == ord("|"))).all()):
        return None
    values = np.where(missing, -1, alleles.astype(np.int64) - ord("0")).ravel()
    list_offsets = np.arange(0, 2 * m + 1, 2, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(list_offsets), pa.array(values)), pa.array(separator == ord("|"))


def _field_values(values: pa.Array, spec: FieldSpec) -> pa.Array:
    """One INFO/FORMAT column as parsed text → its output type."""
    if spec.is_flag:
        return pc.is_valid(values)
    if not spec.repeated:
        return _scalar(values, spec.value_type)
    lists = pc.split_pattern(values, ",")
    flat = lists.values
    missing = pc.equal(flat, ".")
    if pa.types.is_string(spec.value_type):
        items = flat  # a missing element stays "." (NULL_STRING_REPLACEMENT): BigQuery refuses NULL in arrays
    else:
        text = pc.if_else(missing, pa.scalar(None, pa.string()), flat) if pc.any(missing).as_py() else flat
        typed = _number(text, spec.value_type)
        items = typed.fill_null(pa.scalar(NULL_NUMERIC_REPLACEMENT).cast(spec.value_type)) if typed.null_count \
            else typed
    mask = pc.is_null(values) if values.null_count else None
    if pc.any(missing).as_py():
        # bcftools writes a missing Number=R value of a split record as ".,.": that is missing, not
        # a list of missing values.
        all_missing = pc.fill_null(pc.match_substring_regex(values, r"^\.(,\.)*$"), False)
        mask = all_missing if mask is None else pc.or_(mask, all_missing)
    return pa.ListArray.from_arrays(lists.offsets, items, mask=mask)


def _scalar(values: pa.Array, value_type: pa.DataType) -> pa.Array:
    """A single-valued field. A file that breaks its own header (two values where Number=1 or A
    allows one) keeps the first value rather than failing the whole file."""
    if pa.types.is_string(value_type):
        return values
    try:
        return pc.cast(values, value_type)
    except pa.ArrowInvalid:
        first = pc.replace_substring_regex(values, ",.*$", "")
        first = pc.if_else(pc.equal(first, "."), pa.scalar(None, pa.string()), first)
        return _number(first, value_type)


def _number(values: pa.Array, value_type: pa.DataType) -> pa.Array:
    """Text → numbers; anything htslib printed that is not a number becomes null."""
    try:
        return pc.cast(values, value_type)
    except pa.ArrowInvalid:
        pattern = r"^[-+]?[0-9]+$" if pa.types.is_integer(value_type) else \
            r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?(nan|NaN|inf|Inf|infinity|Infinity)$"
        valid = pc.fill_null(pc.match_substring_regex(values, pattern), False)
        return pc.cast(pc.if_else(valid, values, pa.scalar(None, pa.string())), value_type)


def write_parquet(batches: Iterator[Any], layout: VcfLayout, path: Path,
                  *, csq_from_row: bool = False, converter: Any = None) -> ConvertResult:
    """Convert every batch and write them to one Parquet file (snappy).

    Encoding nested Parquet costs as much as building the columns, and Arrow releases the GIL
    for it: a writer thread encodes while this thread builds the next batch. The queue holds at
    most two converted batches, and the writer gathers batches into row groups of about
    ``ROW_GROUP_ROWS`` rows or ``ROW_GROUP_BYTES`` (a file with thousands of samples makes
    batches of a few hundred rows, and thousands of tiny row groups slow every reader down).
    """
    if converter is None:  # the text path; the compiled path brings its own (native.NativeConverter)
        converter = BatchConverter(layout, csq_from_row=csq_from_row)
    # Dictionary pages only where values repeat; statistics cost a fifth of the write and
    # BigQuery does not read them.
    dictionary_columns = ["reference_name", "filter.list.element", "call.list.element.name"]
    pending: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    written = {"rows": 0, "groups": 0}

    def drain(writer: pq.ParquetWriter) -> None:
        gathered: list[pa.Table] = []
        size = count = 0

        def flush() -> None:
            nonlocal gathered, size, count
            if gathered and not failure:
                group = pa.concat_tables(gathered)
                writer.write_table(group, row_group_size=group.num_rows)
                written["rows"] += group.num_rows
                written["groups"] += 1
            gathered, size, count = [], 0, 0

        try:
            while (table := pending.get()) is not None:
                if failure:
                    continue
                gathered.append(table)
                count += table.num_rows
                size += table.nbytes
                if count >= ROW_GROUP_ROWS or size >= ROW_GROUP_BYTES:
                    flush()
            flush()
        except BaseException as error:  # reported by the producer below
            failure.append(error)
            while pending.get() is not None:  # let the producer finish putting
                pass

    with pq.ParquetWriter(str(path), converter.schema, compression="snappy", write_statistics=False,
                          use_dictionary=dictionary_columns) as writer:
        worker = threading.Thread(target=drain, args=(writer,), name="parquet-writer", daemon=True)
        worker.start()
        try:
            for batch in batches:
                if failure:
                    break
                if not _rows(batch):
                    continue
                pending.put(converter.convert(batch))
        finally:
            pending.put(None)
            worker.join()
            # A generator that reads ahead in a thread (readahead.py) stops it here, before the
            # caller closes the stream it reads; a plain generator just ends.
            close = getattr(batches, "close", None)
            if close is not None:
                close()
    if failure:
        raise failure[0]
    return ConvertResult(rows=written["rows"], row_groups=written["groups"], path=path)


def _rows(batch: Any) -> int:
    """Rows in a text batch (a RecordBatch) or a native one (a dict of buffers)."""
    return int(batch["rows"]) if isinstance(batch, dict) else int(batch.num_rows)
