"""Table data for the simulated BigQuery: one in-memory DuckDB per simulator state.

BigQuery datasets become DuckDB schemas and tables keep their names, so `project.dataset.table` in
BigQuery SQL maps to `dataset.table` after sqlglot translates the dialect. The REST layer
(`api/bigquery.py`) owns the table metadata; this module owns rows, types and the translation
between BigQuery schemas, Arrow schemas (what Parquet files carry) and DuckDB types, and renders
rows in BigQuery's `{"f": [{"v": ...}]}` wire form.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import io
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

Field = dict[str, Any]  # a BigQuery TableFieldSchema as REST JSON


class BigQueryStoreError(Exception):
    """A request the store cannot honour; `reason` is BigQuery's error reason (invalid, notFound...)."""

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class QueryResult:
    """Rows of a finished statement with their BigQuery schema; DML carries the affected count."""

    schema: list[Field]
    rows: list[dict[str, Any]]      # Python values per column name; `encode_row` renders them
    statement_type: str
    affected_rows: int | None = None
    target: tuple[str, str] | None = None   # (dataset, table) a DML statement changed


_SCALAR_TO_DUCKDB = {
    "STRING": "VARCHAR", "BYTES": "BLOB", "INTEGER": "BIGINT", "INT64": "BIGINT", "FLOAT": "DOUBLE",
    "FLOAT64": "DOUBLE", "NUMERIC": "DECIMAL(38,9)", "BIGNUMERIC": "DECIMAL(38,9)", "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN", "TIMESTAMP": "TIMESTAMPTZ", "DATE": "DATE", "TIME": "TIME", "DATETIME": "TIMESTAMP",
    "JSON": "VARCHAR", "GEOGRAPHY": "VARCHAR",
}


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def duckdb_type(field: Field) -> str:
    """The DuckDB column type for one BigQuery field (RECORD → STRUCT, REPEATED → LIST)."""
    bq_type = str(field.get("type", "STRING")).upper()
    if bq_type in ("RECORD", "STRUCT"):
        members = ", ".join(f"{_quote(f['name'])} {duckdb_type(f)}" for f in field.get("fields") or [])
        if not members:
            raise BigQueryStoreError(f"Field {field.get('name')} is type RECORD but has no schema.")
        base = f"STRUCT({members})"
    elif bq_type in _SCALAR_TO_DUCKDB:
        base = _SCALAR_TO_DUCKDB[bq_type]
    else:
        raise BigQueryStoreError(f"Invalid field type {bq_type!r} for field {field.get('name')!r}.")
    return f"{base}[]" if str(field.get("mode", "NULLABLE")).upper() == "REPEATED" else base


def bq_fields_from_arrow(schema: pa.Schema, *, list_inference: bool = True) -> list[Field]:
    """BigQuery fields for an Arrow schema, as a Parquet load or a query result would report them."""
    return [_bq_field(f.name, f.type, list_inference) for f in schema]


def _bq_field(name: str, arrow_type: pa.DataType, list_inference: bool) -> Field:
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        if not list_inference:
            raise BigQueryStoreError(
                f"Column {name!r} is a Parquet LIST; without parquetOptions.enableListInference BigQuery "
                "loads it as a RECORD wrapping list.element, which the simulator does not model. Set "
                "parquetOptions.enableListInference=true (the variant schema needs REPEATED fields).")
        inner = _bq_field(name, arrow_type.value_type, list_inference)
        if inner.get("mode") == "REPEATED":
            raise BigQueryStoreError(f"Column {name!r} is a list of lists; BigQuery has no ARRAY<ARRAY<>>.")
        inner["mode"] = "REPEATED"
        return inner
    if pa.types.is_struct(arrow_type):
        fields = [_bq_field(arrow_type.field(i).name, arrow_type.field(i).type, list_inference)
                  for i in range(arrow_type.num_fields)]
        return {"name": name, "type": "RECORD", "mode": "NULLABLE", "fields": fields}
    return {"name": name, "type": _bq_scalar(name, arrow_type), "mode": "NULLABLE"}


def _is_integral_decimal(arrow_type: pa.DataType) -> bool:
    # DuckDB widens SUM(BIGINT) to HUGEINT, which Arrow carries as decimal(38, 0); BigQuery says INT64.
    return bool(pa.types.is_decimal(arrow_type) and arrow_type.scale == 0)


def _bq_scalar(name: str, arrow_type: pa.DataType) -> str:
    checks = (
        (pa.types.is_boolean, "BOOLEAN"), (pa.types.is_integer, "INTEGER"), (pa.types.is_floating, "FLOAT"),
        (_is_integral_decimal, "INTEGER"), (pa.types.is_decimal, "NUMERIC"), (pa.types.is_string, "STRING"), (pa.types.is_large_string, "STRING"),
        (pa.types.is_binary, "BYTES"), (pa.types.is_large_binary, "BYTES"), (pa.types.is_date, "DATE"),
        (pa.types.is_time, "TIME"), (pa.types.is_null, "STRING"), (pa.types.is_dictionary, "STRING"),
    )
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP" if arrow_type.tz else "DATETIME"
    for check, bq_type in checks:
        if check(arrow_type):
            return bq_type
    if str(arrow_type) == "string_view":
        return "STRING"
    raise BigQueryStoreError(f"Column {name!r} has Arrow type {arrow_type} that BigQuery cannot load.")


# ---------------------------------------------------------------------------------------------
# schema rules (tables.insert, loads into existing tables)


def validate_fields(fields: Sequence[Field], where: str = "") -> None:
    """Names, modes and types as BigQuery checks them on tables.insert (recursively into RECORDs)."""
    seen: set[str] = set()
    for field in fields:
        name = str(field.get("name") or "")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$", name):
            raise BigQueryStoreError(f"Invalid field name \"{name}\". Fields must contain only letters, numbers, and "
                                     "underscores, start with a letter or underscore, and be at most 300 characters long.")
        if name.lower() in seen:
            raise BigQueryStoreError(f"Field {where}{name} already exists in schema")
        seen.add(name.lower())
        mode = str(field.get("mode", "NULLABLE")).upper()
        if mode not in ("NULLABLE", "REQUIRED", "REPEATED"):
            raise BigQueryStoreError(f"Invalid mode {mode} for field {where}{name}")
        duckdb_type(field)
        if str(field.get("type", "")).upper() in ("RECORD", "STRUCT"):
            validate_fields(list(field.get("fields") or []), f"{where}{name}.")


def validate_layout(table: Mapping[str, Any], fields: list[Field]) -> None:
    """Partitioning and clustering must name top-level, non-repeated columns of the right type."""
    by_name = {f["name"]: f for f in fields}
    ranged = table.get("rangePartitioning")
    if ranged:
        column = by_name.get(ranged.get("field", ""))
        if column is None or str(column.get("type")).upper() not in ("INTEGER", "INT64") or \
                str(column.get("mode", "NULLABLE")).upper() == "REPEATED":
            raise BigQueryStoreError(f"The field specified for partitioning must be a top-level INTEGER field: "
                                     f"{ranged.get('field')}")
        bounds = ranged.get("range") or {}
        try:
            start, end, interval = int(bounds["start"]), int(bounds["end"]), int(bounds["interval"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BigQueryStoreError("rangePartitioning.range needs integer start, end and interval.") from exc
        if interval <= 0 or end <= start or (end - start) // interval > 10000:
            raise BigQueryStoreError("rangePartitioning.range must have end > start, a positive interval and at most "
                                     "10000 partitions.")
    timed = table.get("timePartitioning")
    if timed and timed.get("field"):
        column = by_name.get(timed["field"])
        if column is None or str(column.get("type")).upper() not in ("DATE", "TIMESTAMP", "DATETIME"):
            raise BigQueryStoreError(f"The field specified for time partitioning can only be of type TIMESTAMP, DATE "
                                     f"or DATETIME: {timed['field']}")
    clustering = (table.get("clustering") or {}).get("fields") or []
    if len(clustering) > 4:
        raise BigQueryStoreError("Too many clustering fields: at most 4 are allowed.")
    for name in clustering:
        column = by_name.get(name)
        if column is None:
            raise BigQueryStoreError(f"The field specified for clustering cannot be found in the schema: {name}")
        if str(column.get("mode", "NULLABLE")).upper() == "REPEATED" or \
                str(column.get("type")).upper() in ("RECORD", "STRUCT", "FLOAT", "FLOAT64", "JSON"):
            raise BigQueryStoreError(f"Field {name} is of an unsupported type or mode for clustering.")



def merge_fields(table_fields: list[Field], file_fields: list[Field], table_name: str, *,
                 column_path: tuple[str, ...], dotted: str
                 ) -> tuple[list[Field], list[tuple[tuple[str, ...], Field, str]]]:
    """The table's fields with the file's new ones appended (recursively), and each addition as
    (DuckDB column path, field, dotted BigQuery name). A REPEATED record's children sit under the
    list's `element` in DuckDB."""
    merged = [copy.deepcopy(f) for f in table_fields]
    by_name = {f["name"].lower(): f for f in merged}
    additions: list[tuple[tuple[str, ...], Field, str]] = []
    for field in file_fields:
        path_name = f"{dotted}{field['name']}"
        target = by_name.get(field["name"].lower())
        if target is None:
            added = {**copy.deepcopy(field), "mode": field.get("mode", "NULLABLE")}
            merged.append(added)
            additions.append(((*column_path, field["name"]), added, path_name))
            continue
        table_mode = str(target.get("mode", "NULLABLE")).upper()
        file_mode = str(field.get("mode", "NULLABLE")).upper()
        if (table_mode == "REPEATED") != (file_mode == "REPEATED"):
            raise BigQueryStoreError(f"Provided Schema does not match Table {table_name}. Field {path_name} has "
                                     f"changed mode from {table_mode} to {file_mode}")
        table_record = str(target.get("type", "")).upper() in ("RECORD", "STRUCT")
        file_record = str(field.get("type", "")).upper() in ("RECORD", "STRUCT")
        if table_record != file_record:
            raise BigQueryStoreError(f"Provided Schema does not match Table {table_name}. Field {path_name} has "
                                     f"changed type from {target.get('type')} to {field.get('type')}")
        if table_record:
            inner_path = (*column_path, target["name"], *(("element",) if table_mode == "REPEATED" else ()))
            target["fields"], inner = merge_fields(list(target.get("fields") or []), list(field.get("fields") or []),
                                                    table_name, column_path=inner_path, dotted=f"{path_name}.")
            additions.extend(inner)
    return merged, additions


# ---------------------------------------------------------------------------------------------
# wire encoding of values


def encode_value(field: Field, value: Any, *, int64_timestamp: bool = False) -> Any:
    """One cell in BigQuery's JSON row form: scalars as strings, RECORD as {"f"}, REPEATED as [{"v"}]."""
    if str(field.get("mode", "NULLABLE")).upper() == "REPEATED":
        scalar_field = {**field, "mode": "NULLABLE"}
        return [{"v": encode_value(scalar_field, v, int64_timestamp=int64_timestamp)} for v in (value or [])]
    if value is None:
        return None
    bq_type = str(field.get("type", "STRING")).upper()
    if bq_type in ("RECORD", "STRUCT"):
        return encode_row(field.get("fields") or [], value, int64_timestamp=int64_timestamp)
    if bq_type in ("BOOLEAN", "BOOL"):
        return "true" if value else "false"
    if bq_type in ("BYTES",):
        return base64.b64encode(bytes(value)).decode("ascii")
    if bq_type == "TIMESTAMP":
        if isinstance(value, dt.datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            micros = (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
            return str(micros) if int64_timestamp else _float_seconds(micros)
        return str(value)
    if bq_type == "DATETIME" and isinstance(value, dt.datetime):
        return value.isoformat()
    if bq_type in ("FLOAT", "FLOAT64") and isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else (
            "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _float_seconds(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}".rstrip("0").rstrip(".") if micros % 1_000_000 else f"{micros // 1_000_000}.0"


def encode_row(fields: Sequence[Field], row: dict[str, Any], *, int64_timestamp: bool = False) -> dict[str, Any]:
    return {"f": [{"v": encode_value(f, row.get(f["name"]), int64_timestamp=int64_timestamp)} for f in fields]}


def select_fields(fields: Sequence[Field], selected: str | None) -> list[Field]:
    """`selectedFields=a,b.c`: top-level columns only (nested selection keeps the whole record)."""
    if not selected:
        return list(fields)
    wanted = {s.strip().split(".")[0] for s in selected.split(",") if s.strip()}
    return [f for f in fields if f["name"] in wanted]


# ---------------------------------------------------------------------------------------------
# the store


class BigQueryStore:
    """DuckDB tables behind the simulated BigQuery; every call holds one lock (DuckDB connections are
    not safe to share across the server's request threads)."""

    def __init__(self) -> None:
        self._db = duckdb.connect(":memory:")
        self._lock = threading.RLock()
        # Finished query results by job id, and open resumable upload sessions (api/bigquery.py).
        self.results: dict[str, QueryResult] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        # insertIds seen per table (tabledata.insertAll de-duplication).
        self.insert_ids: dict[tuple[str, str], set[str]] = {}
        # Rows a seeded table reports (numRows) without holding them: the seed writes counts, not data.
        self.phantom_rows: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # datasets and tables

    def create_dataset(self, dataset: str) -> None:
        with self._lock:
            self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(dataset)}")

    def drop_dataset(self, dataset: str) -> None:
        with self._lock:
            self._db.execute(f"DROP SCHEMA IF EXISTS {_quote(dataset)} CASCADE")

    def create_table(self, dataset: str, table: str, fields: Sequence[Field]) -> None:
        if not fields:
            # BigQuery allows schemaless tables until the first load; DuckDB needs a column.
            return
        # REQUIRED is enforced on top-level columns (DuckDB has no NOT NULL inside a STRUCT).
        columns = ", ".join(f"{_quote(f['name'])} {duckdb_type(f)}"
                            + (" NOT NULL" if str(f.get("mode", "")).upper() == "REQUIRED" else "") for f in fields)
        with self._lock:
            self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(dataset)}")
            self._db.execute(f"CREATE OR REPLACE TABLE {self._name(dataset, table)} ({columns})")

    def add_field(self, dataset: str, table: str, column_path: Sequence[str], field: Field) -> None:
        """Add a column, or a field inside a STRUCT column (`("call", "element", "DP")` reaches into
        the records of a list), as BigQuery's ALLOW_FIELD_ADDITION does."""
        path = ".".join(part if part == "element" else _quote(part) for part in column_path)
        with self._lock:
            self._db.execute(f"ALTER TABLE {self._name(dataset, table)} ADD COLUMN {path} {duckdb_type(field)}")

    def drop_table(self, dataset: str, table: str) -> None:
        with self._lock:
            self._db.execute(f"DROP TABLE IF EXISTS {self._name(dataset, table)}")

    def has_table(self, dataset: str, table: str) -> bool:
        with self._lock:
            found = self._db.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [dataset, table]).fetchall()
        return bool(found and found[0][0])

    def row_count(self, dataset: str, table: str) -> int:
        if not self.has_table(dataset, table):
            return 0
        with self._lock:
            found = self._db.execute(f"SELECT count(*) FROM {self._name(dataset, table)}").fetchall()
        return int(found[0][0]) if found else 0

    @staticmethod
    def _name(dataset: str, table: str) -> str:
        return f"{_quote(dataset)}.{_quote(table)}"

    # loads

    @staticmethod
    def read_parquet(blobs: Iterable[bytes]) -> pa.Table:
        """One Arrow table from several Parquet files (a load job's source URIs)."""
        tables = []
        for index, blob in enumerate(blobs):
            try:
                tables.append(pq.read_table(io.BytesIO(blob)))
            except (pa.ArrowInvalid, OSError) as exc:
                raise BigQueryStoreError(f"Error while reading data, error message: source file {index + 1} "
                                         f"is not a valid Parquet file: {exc}") from exc
        if not tables:
            raise BigQueryStoreError("No source data to load.", "notFound")
        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise BigQueryStoreError(f"Source files have incompatible schemas: {exc}") from exc

    def append_arrow(self, dataset: str, table: str, data: pa.Table, fields: Sequence[Field], *,
                     truncate: bool) -> int:
        """Insert Arrow rows by column name (as BigQuery matches Parquet columns); returns rows written."""
        known = {f["name"] for f in fields}
        unknown = [c for c in data.column_names if c not in known]
        if unknown:
            raise BigQueryStoreError(f"Provided Schema does not match Table {dataset}.{table}. Cannot add "
                                     f"fields (field: {unknown[0]})")
        required = [f["name"] for f in fields if str(f.get("mode")).upper() == "REQUIRED"
                    and f["name"] not in data.column_names]
        if required:
            raise BigQueryStoreError(f"Provided Schema does not match Table {dataset}.{table}. "
                                     f"Field {required[0]} is missing in new schema")
        with self._lock:
            self._db.register("_sim_load", data)
            # A load is atomic on BigQuery: a failed WRITE_TRUNCATE leaves the old rows in place.
            self._db.execute("BEGIN TRANSACTION")
            try:
                if truncate:
                    self._db.execute(f"DELETE FROM {self._name(dataset, table)}")
                if data.num_rows:
                    columns = ", ".join(_quote(c) for c in data.column_names)
                    self._db.execute(f"INSERT INTO {self._name(dataset, table)} ({columns}) "
                                     f"SELECT {columns} FROM _sim_load")
                self._db.execute("COMMIT")
            except duckdb.Error as exc:
                self._db.execute("ROLLBACK")
                raise BigQueryStoreError(_load_error_message(exc, dataset, table)) from exc
            finally:
                self._db.unregister("_sim_load")
        return int(data.num_rows)

    def insert_json_rows(self, dataset: str, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """tabledata.insertAll rows (JSON values, numbers often as strings); DuckDB casts to the
        column types by name, and a value that does not cast fails the whole request."""
        if not rows:
            return 0
        columns = sorted({key for row in rows for key in row})
        try:
            data = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise BigQueryStoreError(f"Rows do not share one shape: {exc}") from exc
        names = ", ".join(_quote(c) for c in columns)
        with self._lock:
            self._db.register("_sim_rows", data)
            try:
                self._db.execute(f"INSERT INTO {self._name(dataset, table)} ({names}) SELECT {names} FROM _sim_rows")
            except duckdb.Error as exc:
                raise BigQueryStoreError(_query_error_message(exc)) from exc
            finally:
                self._db.unregister("_sim_rows")
        return len(rows)

    # reads

    def read_rows(self, dataset: str, table: str, fields: Sequence[Field], start: int, limit: int,
                  *, int64_timestamp: bool = False) -> list[dict[str, Any]]:
        if not fields or not self.has_table(dataset, table):
            return []
        columns = ", ".join(_quote(f["name"]) for f in fields)
        with self._lock:
            arrow = self._db.sql(
                f"SELECT {columns} FROM {self._name(dataset, table)} ORDER BY rowid LIMIT ? OFFSET ?",
                params=[limit, start]).to_arrow_table()
        return [encode_row(fields, row, int64_timestamp=int64_timestamp) for row in _pylist(arrow)]

    def read_arrow(self, dataset: str, table: str) -> pa.Table:
        """Every row of a table (copy and extract jobs), in insertion order."""
        if not self.has_table(dataset, table):
            return pa.table({})
        with self._lock:
            arrow = self._db.sql(f"SELECT * FROM {self._name(dataset, table)} ORDER BY rowid").to_arrow_table()
        return arrow.read_all() if hasattr(arrow, "read_all") else arrow

    # queries

    def query(self, sql: str, *, default_project: str, default_dataset: str | None,
              dataset_locations: Mapping[str, str], location: str | None = None,
              parameters: Sequence[dict[str, Any]] = ()) -> QueryResult:
        """Run one BigQuery statement; tables resolve to `dataset.table` in this store."""
        statement, target = translate(sql, default_project=default_project, default_dataset=default_dataset,
                                      dataset_locations=dataset_locations, location=location)
        kind = statement_type(sql)
        values = [_parameter_value(p) for p in parameters]
        named = {p["name"]: v for p, v in zip(parameters, values, strict=True) if p.get("name")}
        with self._lock:
            try:
                params = named or values or None
                arrow, affected = None, None
                if kind == "SELECT":
                    arrow = self._db.sql(statement, params=params).to_arrow_table()
                else:
                    counted = self._db.execute(statement, params).fetchall()
                    affected = int(counted[0][0]) if counted else 0
            except duckdb.Error as exc:
                raise BigQueryStoreError(_query_error_message(exc)) from exc
        if arrow is None:
            return QueryResult(schema=[], rows=[], statement_type=kind, affected_rows=affected, target=target)
        return QueryResult(schema=bq_fields_from_arrow(arrow.schema), rows=_pylist(arrow), statement_type=kind)


def _pylist(arrow: Any) -> list[dict[str, Any]]:
    table = arrow.read_all() if hasattr(arrow, "read_all") else arrow
    return list(table.to_pylist())


def _load_error_message(exc: Exception, dataset: str, table: str) -> str:
    if isinstance(exc, duckdb.ConstraintException):
        column = re.search(r'NOT NULL constraint failed: [^.]+\.(\S+)', str(exc))
        return f"Required field {column.group(1) if column else ''} cannot be null".replace("  ", " ")
    return f"Provided Schema does not match Table {dataset}.{table}: {_query_error_message(exc)}"


def _query_error_message(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace("Catalog Error: ", "").replace("Binder Error: ", "").replace("Parser Error: ", "Syntax error: ")


_PARAM_CASTS = {"INT64": int, "INTEGER": int, "FLOAT64": float, "FLOAT": float, "BOOL": None, "BOOLEAN": None}


def _parameter_value(parameter: dict[str, Any]) -> Any:
    """A scalar or array query parameter as a Python value for DuckDB."""
    ptype = parameter.get("parameterType") or {}
    pvalue = parameter.get("parameterValue") or {}
    if ptype.get("type") == "ARRAY":
        inner = {"parameterType": ptype.get("arrayType") or {}}
        return [_parameter_value({**inner, "parameterValue": v}) for v in pvalue.get("arrayValues") or []]
    raw = pvalue.get("value")
    if raw is None:
        return None
    kind = str(ptype.get("type", "STRING")).upper()
    if kind in ("BOOL", "BOOLEAN"):
        return str(raw).lower() == "true"
    cast = _PARAM_CASTS.get(kind)
    return cast(raw) if cast else raw


def statement_type(sql: str) -> str:
    try:
        parsed = sqlglot.parse_one(sql, read="bigquery")
    except sqlglot.errors.ParseError:
        return "SELECT"
    mapping = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE", exp.Merge: "MERGE",
               exp.Create: "CREATE_TABLE", exp.Drop: "DROP_TABLE", exp.Alter: "ALTER_TABLE"}
    for node_type, name in mapping.items():
        if isinstance(parsed, node_type):
            return name
    return "SELECT"


def _parse_one(sql: str) -> Any:
    try:
        expressions = sqlglot.parse(sql, read="bigquery")
    except sqlglot.errors.ParseError as exc:
        raise BigQueryStoreError(f"Syntax error: {exc.errors[0]['description'] if exc.errors else exc}") from exc
    statements = [e for e in expressions if e is not None]
    if len(statements) != 1:
        raise BigQueryStoreError("The simulator runs one statement per query job (no scripts).")
    return statements[0]


def _table_refs(tree: Any, default_project: str,
                default_dataset: str | None) -> Iterator[tuple[exp.Table, str, str]]:
    """Every real table a statement names, with its (project, dataset); CTEs and UNNEST are skipped."""
    cte_names = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not table.name or (not table.db and table.name in cte_names):
            continue
        if isinstance(table.this, exp.Func) or isinstance(table.parent, exp.Unnest):
            continue
        dataset = table.db or default_dataset
        if not dataset:
            raise BigQueryStoreError(f'Table "{table.name}" must be qualified with a dataset '
                                     "(e.g. dataset.table).")
        yield table, table.catalog or default_project, dataset


def referenced_tables(sql: str, *, default_project: str, default_dataset: str | None) -> list[tuple[str, str, str]]:
    """(project, dataset, table) of each table the statement reads or writes, in order of appearance."""
    tree = _parse_one(sql)
    return [(project, dataset, table.name)
            for table, project, dataset in _table_refs(tree, default_project, default_dataset)]


def translate(sql: str, *, default_project: str, default_dataset: str | None,
              dataset_locations: Mapping[str, str], location: str | None = None
              ) -> tuple[str, tuple[str, str] | None]:
    """BigQuery SQL → DuckDB SQL, with every table reference rewritten to `dataset.table`.

    Returns the DuckDB statement and, for DML, the (store dataset, table) it writes. A table in a
    dataset `dataset_locations` does not name (another project's is keyed `project:dataset`), or in a dataset outside the job's location is refused as
    BigQuery refuses it ("Not found: Dataset P:D was not found in location L").
    """
    tree = _parse_one(sql)
    if isinstance(tree, (exp.Create, exp.Drop, exp.Alter)):
        raise BigQueryStoreError("DDL statements are not supported by the simulator; use tables.insert "
                                 "and tables.delete.")
    target: tuple[str, str] | None = None
    for table, project, dataset in list(_table_refs(tree, default_project, default_dataset)):
        key = store_dataset(project, dataset, default_project)
        found = dataset_locations.get(key)
        if found is None or (location is not None and found != location):
            where = f" was not found in location {location}" if location else ""
            raise BigQueryStoreError(f"Not found: Dataset {project}:{dataset}{where}", "notFound")
        table.set("catalog", None)
        table.set("db", exp.to_identifier(key, quoted=True))
        table.set("this", exp.to_identifier(table.name, quoted=True))
        if target is None and isinstance(tree, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
            target = (key, table.name)
    return tree.sql(dialect="duckdb"), target


def store_dataset(project: str, dataset: str, node_project: str) -> str:
    """The DuckDB schema of a dataset: its id for the node's, `project:dataset` for another project's
    (a dataset the node file declares under `foreign_datasets`)."""
    return dataset if project == node_project else f"{project}:{dataset}"
