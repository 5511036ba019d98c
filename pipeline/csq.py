"""VEP ``CSQ`` annotations: the field layout from the header, and the split of entries per allele.

VEP writes one ``CSQ`` INFO value per site: comma-separated entries, each a ``|``-separated
record whose field names only the header knows (``Description="... Format: Allele|Gene|..."``).
After ``bcftools norm -m -any`` every split record still carries all the entries of the
original site, so each row must keep only the entries of its own allele: by ``ALLELE_NUM``
(1-based index into the *original* ALT list) when VEP was run with ``--allele_number``, else
by VEP's ``Allele`` string, which drops the base shared by all alleles of an indel site.
When neither field exists the entries cannot be told apart and every allele keeps them all.

Everything here works on whole Arrow columns; no Python object is made per record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_FORMAT_RE = re.compile(r"Format:\s*([^\"']+)")
_NAME_RE = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class CsqLayout:
    """Where CSQ lives and what its fields are called (raw header names and column names)."""

    tag: str
    fields: tuple[str, ...]
    columns: tuple[str, ...]

    @property
    def allele_num_index(self) -> int | None:
        return self.fields.index("ALLELE_NUM") if "ALLELE_NUM" in self.fields else None

    @property
    def allele_index(self) -> int | None:
        return self.fields.index("Allele") if "Allele" in self.fields else None

    def arrow_type(self) -> pa.DataType:
        return pa.list_(pa.struct([pa.field(name, pa.string()) for name in self.columns]))


def column_name(raw: str, taken: set[str] | None = None) -> str:
    """A BigQuery-safe column name for a VCF/VEP field (letters, digits, underscores; no leading digit).

    BigQuery compares column names case-insensitively, so a clash with a name already taken
    at the same level gets a numeric suffix rather than failing the load.
    """
    name = _NAME_RE.sub("_", raw.strip()) or "field"
    if name[0].isdigit():
        name = "field_" + name
    if taken is not None:
        base, n = name, 2
        while name.lower() in taken:
            name = f"{base}_{n}"
            n += 1
        taken.add(name.lower())
    return name


def parse_layout(tag: str, description: str) -> CsqLayout | None:
    """The CSQ layout from an INFO header Description, or None when it names no ``Format:``."""
    match = _FORMAT_RE.search(description)
    if not match:
        return None
    fields = tuple(part.strip() for part in match.group(1).strip().split("|"))
    if not fields or not all(fields):
        return None
    taken: set[str] = set()
    return CsqLayout(tag=tag, fields=fields, columns=tuple(column_name(f, taken) for f in fields))


def vep_allele(ref: str, alts: list[str], alt: str) -> str:
    """VEP's ``Allele`` for one ALT of a site.

    VEP drops the first base when every allele of the site starts with it and the site has
    an allele of another length (an indel); an allele left empty is written ``-``.
    """
    first = ref[:1]
    alleles = [ref, *alts]
    if first and all(a[:1] == first for a in alleles) and any(len(a) != len(ref) for a in alts):
        return alt[1:] or "-"
    return alt


def split_per_allele(layout: CsqLayout, csq: pa.Array, allele_num: pa.Array | None,
                     allele: pa.Array | None, alt: pa.Array | None = None) -> pa.Array:
    """Parse one CSQ string per row into the list of entries that belong to that row's allele.

    Per row: ``allele_num``, its 1-based index in the original ALT list; ``allele``, its allele
    as VEP writes it; ``alt``, its ALT as is. Entries are matched in tiers, the first tier that
    matches any entry of the row deciding: ``ALLELE_NUM`` and ``Allele`` both agree; ``Allele``
    agrees (files split before release, such as ExAC, keep the other alleles' entries with
    their original numbers, so the number alone would mislead); ``Allele`` equals the plain
    ALT (VEP did not trim a mixed SNV/indel site). With only ``ALLELE_NUM`` the number decides;
    with neither field every entry is kept.
    Rows without CSQ get an empty list; an entry shorter than the header is padded with nulls;
    an empty field is null.
    """
    n = len(csq)
    present = pc.is_valid(csq)
    rows = np.flatnonzero(present.to_numpy(zero_copy_only=False))
    if len(rows) == 0:
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)),
                                        pa.array([], layout.arrow_type().value_type))
    entries = pc.split_pattern(csq.filter(present) if len(rows) < n else csq, ",")
    parent = rows[pc.list_parent_indices(entries).to_numpy(zero_copy_only=False)]
    flat = entries.values
    n_fields = len(layout.fields)
    parts = pc.split_pattern(flat, "|")
    regular = pc.all(pc.equal(pc.list_value_length(parts), n_fields)).as_py()
    columns: list[pa.Array | None]
    if regular:
        # Every entry has exactly the header's fields: field k is every n-th value. Only the two
        # fields the matching reads are taken for every entry here; the others are taken once,
        # for the kept entries only, below (no copy of every entry's strings to filter away).
        values = parts.values
        stride = np.arange(len(flat), dtype=np.int64) * n_fields
        columns = [None] * n_fields
        for k in (layout.allele_index, layout.allele_num_index):
            if k is not None:
                columns[k] = _nonempty(values.take(pa.array(stride + k)))
    else:
        padded = pc.split_pattern(pc.binary_join_element_wise(flat, pa.scalar("|" * n_fields), ""), "|")
        columns = []
        for k in range(n_fields):
            columns.append(_nonempty(pc.list_element(padded, k)))
    keep_np = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    parent_index = pa.array(parent)
    by_allele = by_number = by_alt = None
    if layout.allele_index is not None and allele is not None:
        by_allele = _matches(columns[layout.allele_index], allele.take(parent_index))
        if alt is not None:
            by_alt = _matches(columns[layout.allele_index], alt.take(parent_index))
    if layout.allele_num_index is not None and allele_num is not None:
        by_number = _matches(_to_int(columns[layout.allele_num_index]), allele_num.take(parent_index))
    tiers: list[np.ndarray] = []
    if by_allele is not None:
        if by_number is not None:
            tiers.append(by_allele & by_number)
        tiers.append(by_allele)
        if by_alt is not None:
            tiers.append(by_alt)
    elif by_number is not None:
        tiers.append(by_number)
    if tiers:
        chosen = np.zeros(len(flat), dtype=bool)
        decided = np.zeros(n, dtype=bool)
        for tier in tiers:
            take = tier & keep_np & ~decided[parent]
            chosen |= take
            decided |= np.bincount(parent[take], minlength=n) > 0
        keep_np = chosen
    every = bool(keep_np.all())
    if regular:
        kept = stride if every else stride[keep_np]
        kept_columns = []
        for k, column in enumerate(columns):
            if column is None:
                kept_columns.append(_nonempty(values.take(pa.array(kept + k))))
            else:
                kept_columns.append(column if every else column.filter(pa.array(keep_np)))
        kept_struct = pa.StructArray.from_arrays(kept_columns, names=list(layout.columns))
    else:
        struct = pa.StructArray.from_arrays(columns, names=list(layout.columns))
        kept_struct = struct if every else struct.filter(pa.array(keep_np))
    lengths = np.bincount(parent[keep_np], minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), kept_struct)


def _nonempty(values: pa.Array) -> pa.Array:
    """An empty field is null."""
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _matches(left: pa.Array, right: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.equal(left, right), False).to_numpy(zero_copy_only=False)


def _to_int(values: pa.Array) -> pa.Array:
    # ALLELE_NUM is digits or empty; anything else cannot match a row and is treated as missing.
    valid = pc.match_substring_regex(values, r"^[0-9]+$")
    cleaned = pc.if_else(pc.fill_null(valid, False), values, pa.scalar(None, pa.string()))
    return pc.cast(cleaned, pa.int64())
