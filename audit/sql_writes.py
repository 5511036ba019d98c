"""What a BigQuery statement writes, read from its SQL text (GoogleSQL), failing closed.

A query job's audit entry carries the SQL (`queryConfig.query`) but, for `EXPORT DATA`, no field with
the destination: the `gs://` URI exists only inside the text (reference gcp-escape-routes §3.4), and
whether DML/DDL jobs set `queryConfig.destinationTable` is not confirmed. So SEC-04 reads the text.
This is not a SQL engine: it tokenizes (strings, quoted identifiers, comments) and classifies each
statement by its leading keywords. Anything it cannot place — dynamic SQL, a procedure call, an
unknown statement, an unterminated string — is reported as a problem, and SEC-04 turns a problem
into ERROR: an unread statement may be the one that exported the genomes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WORD = re.compile(r"[A-Za-z0-9_\-]+")
_SPACE = re.compile(r"\s+")
_STRING_PREFIX = re.compile(r"(?:[rRbB]|[rR][bB]|[bB][rR])(?=['\"])")


@dataclass(frozen=True)
class Token:
    kind: str     # "word", "ident" (backtick-quoted), "string", "punct"
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


class SqlParseError(ValueError):
    """The text could not be tokenized (an unterminated string, comment or quoted identifier)."""


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i = _SPACE.match(sql, i).end()  # type: ignore[union-attr]
        elif sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise SqlParseError("unterminated /* comment")
            i = end + 2
        elif ch == "`":
            end = sql.find("`", i + 1)
            if end < 0:
                raise SqlParseError("unterminated `quoted identifier`")
            tokens.append(Token("ident", sql[i + 1:end]))
            i = end + 1
        elif ch in "'\"" or _STRING_PREFIX.match(sql, i):
            prefix = _STRING_PREFIX.match(sql, i)
            raw = bool(prefix and "r" in prefix.group(0).lower())
            if prefix:
                i = prefix.end()
            value, i = _string(sql, i, raw)
            tokens.append(Token("string", value))
        elif _WORD.match(sql, i):
            match = _WORD.match(sql, i)
            assert match is not None
            tokens.append(Token("word", match.group(0)))
            i = match.end()
        else:
            tokens.append(Token("punct", ch))
            i += 1
    return tokens


def _string(sql: str, i: int, raw: bool) -> tuple[str, int]:
    quote = sql[i:i + 3] if sql[i:i + 3] in ("'''", '"""') else sql[i]
    j = i + len(quote)
    out = []
    while j < len(sql):
        if not raw and sql[j] == "\\" and j + 1 < len(sql):
            out.append(sql[j + 1])
            j += 2
            continue
        if sql.startswith(quote, j):
            return "".join(out), j + len(quote)
        out.append(sql[j])
        j += 1
    raise SqlParseError("unterminated string literal")


@dataclass(frozen=True)
class TableTarget:
    """A table a statement writes, as written: 1 to 3 dotted parts (project, dataset, table)."""

    parts: tuple[str, ...]
    statement: str        # INSERT, CREATE_TABLE_AS_SELECT, MERGE, ...
    temporary: bool = False


@dataclass(frozen=True)
class SqlWrites:
    """Every destination the text names: tables, export URIs, and load-from-files sources."""

    tables: tuple[TableTarget, ...] = ()
    export_uris: tuple[str, ...] = ()
    load_uris: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())


# Statements that write no table and send no data anywhere.
_NO_WRITE = {"SELECT", "WITH", "DECLARE", "SET", "BREAK", "LEAVE", "CONTINUE", "ITERATE", "RETURN", "COMMIT",
             "ROLLBACK", "RAISE", "ASSERT", "DROP", "ALTER", "GRANT", "REVOKE", "END", "UNDROP"}
# Block openers that may precede a statement inside a script: `IF c THEN INSERT ...`.
_OPENERS_UNTIL = {"IF": "THEN", "ELSEIF": "THEN", "WHILE": "DO", "FOR": "DO", "WHEN": "THEN",
                  "EXCEPTION": "THEN", "UNTIL": None}
_PREFIX_WORDS = {"BEGIN", "ELSE", "LOOP", "REPEAT", "DO", "THEN"}
# CREATE kinds that hold data; routines, policies, indexes, schemas hold none.
_DATA_OBJECTS = {"TABLE", "VIEW", "MATERIALIZED", "SNAPSHOT", "EXTERNAL", "MODEL"}
_NON_DATA_OBJECTS = {"FUNCTION", "PROCEDURE", "AGGREGATE", "ROW", "SEARCH", "VECTOR", "SCHEMA", "CAPACITY",
                     "RESERVATION", "ASSIGNMENT", "CONNECTION"}


def _split_statements(tokens: list[Token]) -> list[list[Token]]:
    statements: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "punct" and token.text in "([":
            depth += 1
        elif token.kind == "punct" and token.text in ")]":
            depth -= 1
        if token.kind == "punct" and token.text == ";" and depth <= 0:
            statements.append([])
            continue
        statements[-1].append(token)
    return [s for s in statements if s]


def _name_at(tokens: list[Token], i: int) -> tuple[tuple[str, ...], int]:
    """A dotted name starting at tokens[i] (`p.d.t`, `` `p.d.t` ``, `` `p`.d.`t` ``, `my-project.d.t`)."""
    parts: list[str] = []
    while i < len(tokens):
        token = tokens[i]
        if token.kind == "ident":
            parts.extend(token.text.split("."))
        elif token.kind == "word":
            parts.append(token.text)
        else:
            break
        i += 1
        if i < len(tokens) and tokens[i].kind == "punct" and tokens[i].text == ".":
            i += 1
            continue
        break
    return tuple(parts), i


def _skip_words(tokens: list[Token], i: int, *words: str) -> int:
    for word in words:
        if i < len(tokens) and tokens[i].upper == word:
            i += 1
    return i


def _options(tokens: list[Token], i: int) -> tuple[dict[str, Token], int]:
    """`OPTIONS ( key = value, ... )` starting at the OPTIONS keyword; nested values are skipped."""
    if i >= len(tokens) or tokens[i].upper != "OPTIONS":
        raise SqlParseError("expected OPTIONS(...)")
    i += 1
    if i >= len(tokens) or tokens[i].text != "(":
        raise SqlParseError("expected ( after OPTIONS")
    i += 1
    found: dict[str, Token] = {}
    depth = 1
    while i < len(tokens) and depth:
        token = tokens[i]
        if token.kind == "punct" and token.text in "([":
            depth += 1
        elif token.kind == "punct" and token.text in ")]":
            depth -= 1
        elif depth == 1 and token.kind == "word" and i + 2 < len(tokens) and tokens[i + 1].text == "=":
            found[token.text.lower()] = tokens[i + 2]
            i += 3
            continue
        i += 1
    if depth:
        raise SqlParseError("unbalanced parentheses in OPTIONS(...)")
    return found, i


def _file_uris(tokens: list[Token], i: int) -> tuple[str, ...]:
    """The `uris = [...]` (or `uris = '...'`) of a LOAD DATA ... FROM FILES(...) clause."""
    uris: list[str] = []
    for j in range(i, len(tokens) - 2):
        if tokens[j].upper == "URIS" and tokens[j + 1].text == "=":
            k = j + 2
            while k < len(tokens) and tokens[k].text != ")":
                if tokens[k].kind == "string":
                    uris.append(tokens[k].text)
                k += 1
    return tuple(uris)


def _strip_script_prefix(tokens: list[Token]) -> tuple[list[Token], str | None]:
    """Drop block openers (`BEGIN`, `IF cond THEN`, `WHILE cond DO`, ...) before a statement."""
    while tokens:
        head = tokens[0].upper
        if head in _PREFIX_WORDS and not (head == "BEGIN" and len(tokens) > 1
                                           and tokens[1].upper in ("TRANSACTION", "TRAN")):
            tokens = tokens[1:]
        elif head in _OPENERS_UNTIL:
            until = _OPENERS_UNTIL[head]
            if until is None:
                return [], None
            stop = next((k for k, t in enumerate(tokens) if t.upper == until), None)
            if stop is None:
                return [], f"cannot find {until} after {head}"
            tokens = tokens[stop + 1:]
        else:
            break
    return tokens, None


def sql_writes(sql: str) -> SqlWrites:
    """Classify every statement of `sql`; problems name what could not be read."""
    try:
        tokens = tokenize(sql)
    except SqlParseError as exc:
        return SqlWrites(problems=(f"the query text cannot be read: {exc}",))
    tables: list[TableTarget] = []
    exports: list[str] = []
    loads: list[str] = []
    kinds: list[str] = []
    problems: list[str] = []
    for raw in _split_statements(tokens):
        statement, problem = _strip_script_prefix(raw)
        if problem:
            problems.append(problem)
        if not statement:
            continue
        head = statement[0]
        word = head.upper or head.text
        try:
            kind = _classify(statement, tables, exports, loads)
        except SqlParseError as exc:
            problems.append(f"{word} statement cannot be read: {exc}")
            continue
        if kind is None:
            preview = " ".join(t.text for t in statement[:4])
            problems.append(f"statement {preview!r} is not one SEC-04 can classify (dynamic SQL, a procedure "
                            "call or an unknown statement may write anywhere)")
            continue
        kinds.append(kind)
    if not kinds and not problems:
        problems.append("the query text holds no statement")
    return SqlWrites(tables=tuple(tables), export_uris=tuple(exports), load_uris=tuple(loads),
                     statements=tuple(kinds), problems=tuple(problems))


def _classify(statement: list[Token], tables: list[TableTarget], exports: list[str],
              loads: list[str]) -> str | None:
    head = statement[0]
    word = head.upper
    if head.kind == "punct" and head.text == "(":
        return "SELECT"
    if word == "BEGIN" or word in _NO_WRITE:
        return word or None
    if word in ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE"):
        i = _skip_words(statement, 1, {"INSERT": "INTO", "DELETE": "FROM", "MERGE": "INTO",
                                       "TRUNCATE": "TABLE"}.get(word, ""))
        parts, _ = _name_at(statement, i)
        if not parts:
            raise SqlParseError("no target table")
        statement_type = "TRUNCATE_TABLE" if word == "TRUNCATE" else word
        tables.append(TableTarget(parts, statement_type))
        return statement_type
    if word == "CREATE":
        i = _skip_words(statement, 1, "OR", "REPLACE")
        temporary = i < len(statement) and statement[i].upper in ("TEMP", "TEMPORARY")
        if temporary:
            i += 1
        kind = statement[i].upper if i < len(statement) else ""
        following = statement[i + 1].upper if i + 1 < len(statement) else ""
        if kind in _NON_DATA_OBJECTS or (kind == "TABLE" and following == "FUNCTION"):
            return f"CREATE_{kind}"
        if kind not in _DATA_OBJECTS:
            raise SqlParseError(f"unknown CREATE {kind or '?'}")
        i = _skip_words(statement, i + 1, "VIEW", "TABLE")
        i = _skip_words(statement, i, "IF", "NOT", "EXISTS")
        parts, _ = _name_at(statement, i)
        if not parts:
            raise SqlParseError("no name after CREATE")
        tables.append(TableTarget(parts, f"CREATE_{kind}", temporary=temporary))
        return f"CREATE_{kind}"
    if word == "EXPORT":
        what = statement[1].upper if len(statement) > 1 else ""
        if what not in ("DATA", "MODEL"):
            raise SqlParseError("expected EXPORT DATA or EXPORT MODEL")
        i = 2
        if what == "MODEL":
            _, i = _name_at(statement, 2)
        if i < len(statement) and statement[i].upper == "WITH":   # WITH CONNECTION `p.region.conn`
            _, i = _name_at(statement, _skip_words(statement, i + 1, "CONNECTION"))
        options, _ = _options(statement, i)
        uri = options.get("uri")
        if uri is None or uri.kind != "string":
            raise SqlParseError("OPTIONS has no uri string literal")
        exports.append(uri.text)
        return f"EXPORT_{what}"
    if word == "LOAD" and len(statement) > 1 and statement[1].upper == "DATA":
        i = _skip_words(statement, 2, "INTO", "OVERWRITE")
        temporary = i < len(statement) and statement[i].upper in ("TEMP", "TEMPORARY")
        i = _skip_words(statement, i, "TEMP", "TEMPORARY", "TABLE")
        parts, _ = _name_at(statement, i)
        if not parts:
            raise SqlParseError("no target table after LOAD DATA")
        tables.append(TableTarget(parts, "LOAD_DATA", temporary=temporary))
        uris = _file_uris(statement, i)
        if not uris:
            raise SqlParseError("LOAD DATA names no FILES(uris=...)")
        loads.extend(uris)
        return "LOAD_DATA"
    return None
