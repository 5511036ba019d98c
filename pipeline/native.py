"""The compiled conversion path: ``bcftools norm -Ou`` → BCF → Arrow columns, without text.

The text path (``normalize.stream_records`` + ``convert.read_text``) has ``bcftools query``
print every value and Arrow parse it back; most of the task's CPU went there. Here the C
extension ``_bcfarrow`` reads norm's uncompressed BCF from the pipe and fills typed buffers,
and this module wraps them as Arrow arrays (``pa.Array.from_buffers``: no copy) and assembles
the same table ``convert.BatchConverter`` builds: same schema, same rows, same values. The
values follow the text path's rules exactly, because that is what the loaded tables already
hold:

- a Float is the float32 as ``bcftools query`` prints it (6 significant digits), read back;
- a single-valued field holding several values keeps the first; ``.`` or nothing is null;
- inside a list, a missing element is ``NULL_NUMERIC_REPLACEMENT`` (strings keep ``.``); a list
  of nothing but missing elements is null; a String list is the text split on commas;
- a Flag is true when the key is present; an INFO key stored without a value reads as ``1``;
- GT: ``.`` alleles are -1, phased when a separator is ``|``, no GT at all is ``[-1]``.

When it is used: the compiled module imports, ``SOVAUDIT_NO_NATIVE`` is unset (or ``0``), the
text block size is the default (a smaller one is a text-path setting, used by tests of the text
path's limits) and, when the file has samples, its header declares GT. Otherwise the text path
runs: same output. An import failure is said once on stderr, naming why.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from sovaudit.pipeline.convert import BatchConverter, OversizedField
from sovaudit.pipeline.schema import ORIGINAL_RECORD_TAG, FieldSpec, VcfLayout

DISABLE_ENV = "SOVAUDIT_NO_NATIVE"
# "0": normalize through `bcftools norm` even where the decoder could split multi-allelic records itself.
SPLIT_ENV = "SOVAUDIT_NATIVE_SPLIT"
# Records per batch, and BCF bytes per batch (whichever comes first): about the text path's 8 MiB
# blocks, so that memory stays flat whatever the file or sample count.
BATCH_ROWS = 64 * 1024
BATCH_BYTES = 8 << 20

_warned: list[str] = []
_ID_RE = re.compile(r"^##(FILTER|INFO|FORMAT|contig)=<ID=([^,>]+)")
_IDX_RE = re.compile(r",IDX=(\d+)>\s*$")


class SplitRefused(Exception):
    """The decoder met a record its own split does not reproduce (``csrc/split.h``): run norm instead."""


class NativeDecodeError(ValueError):
    """The BCF stream could not be decoded; ``where`` is ``(records decoded, chrom, 1-based pos)``."""

    def __init__(self, message: str, where: tuple[int, str | None, int]) -> None:
        self.where = where
        super().__init__(message)


def load() -> ModuleType | None:
    """The compiled module, or None (with one warning on stderr when it is missing, not when disabled)."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None
    try:
        from sovaudit.pipeline import _bcfarrow  # type: ignore[attr-defined]
    except ImportError as error:
        installed = _installed_copy()
        if installed is not None:
            return installed
        if not _warned:
            _warned.append(str(error))
            print(f"warning: the compiled BCF decoder is unavailable ({error}); converting through "
                  "bcftools query text instead (same output, slower). Reinstall with a C compiler to "
                  "build it.", file=sys.stderr, flush=True)
        return None
    return _bcfarrow


def _installed_copy() -> ModuleType | None:
    """The extension of the installed distribution, when `sovaudit` was imported from a checkout.

    `python -m pytest` in a clone (the README's test command) and a task started with the clone as
    its working directory put the checkout first on sys.path, so `sovaudit.pipeline` is the source
    folder, which holds no compiled file after a plain `pip install .`; the installed copy of the
    same package does. A test that blocks the module (sys.modules entry None) is respected.
    """
    import importlib.machinery
    import importlib.util
    from pathlib import Path

    name = "sovaudit.pipeline._bcfarrow"
    if name in sys.modules:
        return sys.modules[name]
    for entry in sys.path:
        folder = Path(entry or ".") / "sovaudit" / "pipeline"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = folder / f"_bcfarrow{suffix}"
            if not candidate.is_file():
                continue
            spec = importlib.util.spec_from_file_location(name, candidate)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except ImportError:
                continue
            sys.modules[name] = module
            return module
    return None


def split_enabled() -> bool:
    """Whether the decoder may split multi-allelic records itself (``SOVAUDIT_NATIVE_SPLIT``, on by default)."""
    return os.environ.get(SPLIT_ENV, "1") not in ("0", "")


_LINE_RE = re.compile(r"^##(INFO|FORMAT)=<(.*)>\s*$")
_NUMBERS = {"A": 1, "R": 2, "G": 3}
_TYPES = {"Flag": 1, "Integer": 2, "Float": 3, "String": 4, "Character": 4}


def _attribute(body: str, name: str) -> str | None:
    match = re.search(r"(?:^|,)" + name + r"=([^,>]*)", body)
    return match.group(1) if match else None


def split_tables(header_text: str, dicts: Dictionaries) -> tuple[list[int], list[int], list[int], list[int]]:
    """Per dictionary id: INFO Number kind, INFO Type, FORMAT Number kind, FORMAT Type (the codes of
    ``csrc/split.h``; 0 where the header does not declare the key in that section)."""
    size = dicts.size
    tables = {"INFO": ([0] * size, [0] * size), "FORMAT": ([0] * size, [0] * size)}
    for line in header_text.splitlines():
        match = _LINE_RE.match(line)
        if not match:
            continue
        body = match.group(2)
        key = _attribute(body, "ID")
        index = dicts.strings.get(key or "", -1)
        if index < 0 or index >= size:
            continue
        numbers, types = tables[match.group(1)]
        numbers[index] = _NUMBERS.get(_attribute(body, "Number") or "", 0)
        types[index] = _TYPES.get(_attribute(body, "Type") or "", 0)
    return tables["INFO"][0], tables["INFO"][1], tables["FORMAT"][0], tables["FORMAT"][1]


def supports(layout: VcfLayout) -> bool:
    """True when the compiled path produces this layout's table (see the module docstring)."""
    return not layout.samples or any(f.id == "GT" for f in layout.formats)


@dataclass(frozen=True)
class Dictionaries:
    """The BCF header's two dictionaries: strings (FILTER/INFO/FORMAT ids) and contigs."""

    strings: dict[str, int]
    contigs: dict[str, int]

    @property
    def size(self) -> int:
        return max(self.strings.values(), default=-1) + 1

    def names(self) -> pa.Array:
        by_index = [""] * self.size
        for name, index in self.strings.items():
            by_index[index] = name
        return pa.array(by_index, pa.string())

    def contig_names(self) -> pa.Array:
        by_index = [""] * (max(self.contigs.values(), default=-1) + 1)
        for name, index in self.contigs.items():
            by_index[index] = name
        return pa.array(by_index, pa.string())


def dictionaries(header_text: str) -> Dictionaries:
    """Read the dictionaries from BCF header text: ``IDX=`` where htslib wrote it (it does when it
    writes BCF), else order of first appearance, ``PASS`` first (htslib's own numbering)."""
    strings: dict[str, int] = {"PASS": 0}
    contigs: dict[str, int] = {}
    for line in header_text.splitlines():
        match = _ID_RE.match(line)
        if not match:
            continue
        table = contigs if match.group(1) == "contig" else strings
        explicit = _IDX_RE.search(line)
        name = match.group(2)
        if explicit:
            table[name] = int(explicit.group(1))
        elif name not in table:
            table[name] = max(table.values(), default=-1) + 1
    return Dictionaries(strings=strings, contigs=contigs)


def _kind(module: ModuleType, spec: FieldSpec) -> tuple[int, int]:
    if spec.is_flag:
        return int(module.VT_FLAG), 0
    if pa.types.is_integer(spec.value_type):
        vtype = int(module.VT_INT)
    elif pa.types.is_floating(spec.value_type):
        vtype = int(module.VT_FLOAT)
    else:
        vtype = int(module.VT_STR)
    return vtype, int(spec.repeated)


class NativeReader:
    """Decodes one BCF stream (a readable file descriptor) into batches of column buffers."""

    def __init__(self, module: ModuleType, fd: int, layout: VcfLayout, max_field_bytes: int, *,
                 split: bool = False) -> None:
        self.layout = layout
        self.decoder = module.Decoder(fd)
        self.empty = False
        try:
            text = self.decoder.header()
        except ValueError as error:
            raise NativeDecodeError(str(error), (0, None, 0)) from None
        if text is None:
            self.empty = True
            return
        self.dicts = dictionaries(text.decode("utf-8", errors="replace"))
        self._contig_list = self.dicts.contig_names().to_pylist()
        strings = self.dicts.strings

        def specs(fields: tuple[FieldSpec, ...]) -> list[tuple[int, int, int]]:
            out = []
            for spec in fields:
                if spec.id not in strings:
                    raise NativeDecodeError(f"the normalized header lacks {spec.id}", (0, None, 0))
                out.append((strings[spec.id], *_kind(module, spec)))
            return out

        csq_id = strings.get(layout.csq.tag, -1) if layout.csq is not None else -1
        orig_id = strings.get(ORIGINAL_RECORD_TAG, -1) if layout.has_original_record_tag else -1
        self.decoder.configure(self.dicts.size, len(layout.samples), specs(layout.info), specs(layout.call_formats),
                               strings.get("GT", -1), csq_id, orig_id, max_field_bytes)
        if split:
            header_text = text.decode("utf-8", errors="replace")
            self.decoder.set_split(*split_tables(header_text, self.dicts), self._contig_list,
                                   layout.has_original_record_tag)

    def counts(self) -> tuple[int, int]:
        """Records read and records split (what norm would report as total/split)."""
        records, split = self.decoder.counts()
        return int(records), int(split)

    def where(self) -> tuple[int, str | None, int]:
        records, rid, pos = self.decoder.where()
        chrom = self._contig_list[rid] if 0 <= rid < len(self._contig_list) else None
        return int(records), chrom, int(pos) + 1

    def batches(self) -> Any:
        """Yield each batch's buffers (a dict, see ``_bcfarrow.Decoder.read``)."""
        if self.empty:
            return
        while True:
            try:
                batch = self.decoder.read(BATCH_ROWS, BATCH_BYTES)
            except ValueError as error:
                if error.args and error.args[0] == "oversized":
                    raise self._oversized(error.args) from None
                if error.args and error.args[0] == "refused":
                    raise SplitRefused(f"{error.args[1]} at {self.where()[1]}:{self.where()[2]}") from None
                raise NativeDecodeError(str(error), self.where()) from None
            if batch is None:
                return
            yield batch

    def _oversized(self, args: tuple[Any, ...]) -> OversizedField:
        _, kind, name, index, sample, size, row = args
        if kind == 1:
            field = f"INFO/{self.layout.info[index].id}"
        elif kind == 2:
            field = f"FORMAT/{self.layout.call_formats[index].id} of sample {sample + 1}"
        else:
            field = str(name)
        _, chrom, pos = self.where()
        return OversizedField(field, int(size), int(row), f"{chrom}:{pos}")


# -- buffers → Arrow ------------------------------------------------------------------------


def _validity(nulls: int, bitmap: bytes) -> pa.Buffer | None:
    return pa.py_buffer(bitmap) if nulls else None


def _array(col: tuple[Any, ...], value_type: pa.DataType, repeated: bool) -> pa.Array:
    """One column's buffers (n, nulls, validity, list offsets, values, string offsets, data) as Arrow."""
    n, nulls, valid, offsets, values, string_offsets, data = col
    if pa.types.is_boolean(value_type):
        return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(values)])
    if repeated:
        count = len(offsets) // 4 - 1
        items = int(np.frombuffer(offsets, dtype=np.int32)[-1]) if count >= 0 else 0
        child = _values(value_type, items, values, string_offsets, data)
        return pa.Array.from_buffers(pa.list_(value_type), n, [_validity(nulls, valid), pa.py_buffer(offsets)],
                                     null_count=nulls, children=[child])
    if pa.types.is_string(value_type):
        return pa.Array.from_buffers(pa.string(), n, [_validity(nulls, valid), pa.py_buffer(string_offsets),
                                                      pa.py_buffer(data)], null_count=nulls)
    return pa.Array.from_buffers(value_type, n, [_validity(nulls, valid), pa.py_buffer(values)], null_count=nulls)


def _values(value_type: pa.DataType, items: int, values: bytes, string_offsets: bytes, data: bytes) -> pa.Array:
    if pa.types.is_string(value_type):
        return pa.Array.from_buffers(pa.string(), items, [None, pa.py_buffer(string_offsets), pa.py_buffer(data)])
    return pa.Array.from_buffers(value_type, items, [None, pa.py_buffer(values)])


class NativeConverter:
    """One batch of native buffers → one batch of the output table (``convert.write_parquet``'s converter)."""

    def __init__(self, layout: VcfLayout, reader: NativeReader) -> None:
        self.layout = layout
        self.reader = reader
        self.text = BatchConverter(layout)  # the CSQ and allele assembly are shared with the text path
        self.schema = self.text.schema
        self._filters = reader.dicts.names() if not reader.empty else pa.array([], pa.string())
        self._contigs = reader.dicts.contig_names() if not reader.empty else pa.array([], pa.string())

    def convert(self, batch: dict[str, Any]) -> pa.Table:
        layout = self.layout
        n = int(batch["rows"])
        chrom = self._contigs.take(pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(batch["chrom"])]))
        pos0 = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(batch["pos0"])])
        end = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(batch["end"])])
        ref = _array(batch["ref"], pa.string(), False)
        alt = _array(batch["alt"], pa.string(), False)
        info = {spec.id: _array(col, spec.value_type, spec.repeated)
                for spec, col in zip(layout.info, batch["info"], strict=True)}
        col: dict[str, pa.Array] = {"ref": ref, "alt": alt}
        if layout.csq is not None:
            col["csq"] = _array(batch["csq"], pa.string(), False)
        if layout.has_original_record_tag:
            col["orig"] = _array(batch["orig"], pa.string(), False)
        alleles = self.text.alleles(col, [info[f.id] for f in layout.allele_info], n)
        filter_ids = _array(batch["filter"], pa.int64(), True)
        filters = pa.ListArray.from_arrays(filter_ids.offsets, self._filters.take(filter_ids.values),
                                           mask=filter_ids.is_null() if filter_ids.null_count else None)
        arrays: list[pa.Array] = [chrom, pos0, end, ref, alleles, _array(batch["names"], pa.string(), True),
                                  _array(batch["qual"], pa.float64(), False), filters]
        arrays += [info[f.id] for f in layout.row_info]
        arrays.append(self._calls(batch, n))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _calls(self, batch: dict[str, Any], n: int) -> pa.Array:
        layout = self.layout
        call_type = layout.call_type()
        n_samples = len(layout.samples)
        if n_samples == 0:
            return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], type=call_type))
        m = n * n_samples
        names = pa.DictionaryArray.from_arrays(pa.array(np.tile(np.arange(n_samples, dtype=np.int32), n)),
                                               self.text.sample_dictionary)
        genotype = _array(batch["gt"], pa.int64(), True)
        phased = pa.Array.from_buffers(pa.bool_(), m, [None, pa.py_buffer(batch["phased"])])
        children = [names, genotype, phased]
        children += [_array(col, spec.value_type, spec.repeated)
                     for spec, col in zip(layout.call_formats, batch["format"], strict=True)]
        struct = pa.StructArray.from_arrays(children, fields=list(call_type))
        offsets = np.arange(0, m + 1, n_samples, dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), struct)
