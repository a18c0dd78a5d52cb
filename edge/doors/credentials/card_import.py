"""Tenants' cards from a file: a building manager's CSV (.csv) or JSON-lines (.jsonl, .ndjson) of
enrolments, checked row by row and handed to the credential store in one write.

The file is read whole, so it is capped (MAX_IMPORT_BYTES); what makes the whole file unusable
(format, encoding, header) raises CredentialImportError; a bad row is reported by its line and the
good rows are still written: one typo in a 300-tenant file must not lock 299 tenants out until it
is fixed. Errors never repeat a cell's value, which may be a serial, a PIN or an ID number.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.doors.credentials.store import CredentialStore, Enrolment

MAX_IMPORT_BYTES = 32 * 2**20  # ~300,000 cards: an estate, never one building; read whole, so capped
_CSV_REQUIRED = ("serial", "tenant", "valid_from", "valid_until", "paid_through")
_LIST_CELLS = ("doors", "door_groups")  # ';'-separated in a CSV cell

Row = tuple[int, dict[str, Any] | str]
"""(line number, fields), or (line number, why the line is not a row)."""


class CredentialImportError(ValueError):
    """The import file as a whole cannot be read (format, encoding, header)."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """Rows written and rows refused. Good rows are written even when others are bad:
    one typo in a 300-tenant file must not lock 299 tenants out until it is fixed."""

    imported: int
    errors: tuple[RowError, ...]


def import_cards(store: CredentialStore, path: str | os.PathLike[str]) -> ImportReport:
    """Import a CSV (.csv) or JSON-lines (.jsonl, .ndjson) file of enrolments into `store`.

    Every row is checked first; the good ones are then written in one transaction,
    the bad ones reported by line number. Rows upsert: cards not in the file stay.
    CSV columns: serial, tenant, valid_from, valid_until, paid_through (required),
    status, doors, door_groups (``;``-separated), schedule, pin, id_number.
    A PIN costs one scrypt run (~50 ms) to hash, so PINs are better set per card.
    """
    rows = read_rows(Path(path))
    refused: dict[int, str] = {}
    imported, not_taken = store.issue_all(_enrolments(rows, refused))
    refused |= not_taken
    return ImportReport(imported, tuple(RowError(line, refused[line]) for line in sorted(refused)))


def _enrolments(rows: list[Row], refused: dict[int, str]) -> Iterator[tuple[int, Enrolment]]:
    """Each row that is an enrolment, checked as the store takes it (one at a time, so 10,000 checked
    enrolments are never held at once); why the others are not, in `refused`."""
    for line, fields in rows:
        if isinstance(fields, str):
            refused[line] = fields
            continue
        try:
            yield line, Enrolment.model_validate(fields)
        except ValidationError as exc:
            refused[line] = _describe(exc)


def _describe(exc: ValidationError) -> str:
    """Pydantic errors without the input values (which may be serials or PINs)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'row'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )


def read_rows(path: Path) -> list[Row]:
    """The rows of an import file; a whole-file problem raises CredentialImportError."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):  # asked first: /dev/zero would never finish reading
        raise CredentialImportError(f"{path}: unknown import format {suffix!r}; use .csv, .jsonl or .ndjson")
    if path.exists() and not path.is_file():
        raise CredentialImportError(f"{path}: not a regular file")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise CredentialImportError(f"{path}: {exc.strerror}") from exc
    if len(data) > MAX_IMPORT_BYTES:
        raise CredentialImportError(f"{path}: larger than {MAX_IMPORT_BYTES // 2**20} MiB, more than an import takes; split it")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CredentialImportError(f"{path}:{line}: not UTF-8 text") from None
    return _csv_rows(path, text) if suffix == ".csv" else _jsonl_rows(text)


def _csv_rows(path: Path, text: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
    try:
        header = reader.fieldnames
        if header is None:
            raise CredentialImportError(f"{path}: empty file, expected a header row")
        columns = [name.strip() for name in header]
        allowed = set(Enrolment.model_fields)
        unknown = [name for name in columns if name not in allowed]
        missing = [name for name in _CSV_REQUIRED if name not in columns]
        if unknown or missing:
            problems = [f"unknown column {name!r}" for name in unknown]
            problems += [f"missing column {name!r}" for name in missing]
            raise CredentialImportError(
                f"{path}:1: {', '.join(problems)}; columns are {', '.join(sorted(allowed))}"
            )
        rows: list[Row] = []
        for raw in reader:
            if "\0extra" in raw:
                rows.append((reader.line_num, "more cells than the header has columns"))
                continue
            cells = {name.strip(): (value or "").strip() for name, value in raw.items()}
            if not any(cells.values()):
                continue
            fields: dict[str, Any] = {name: value for name, value in cells.items() if value}
            for name in _LIST_CELLS:
                if name in fields:
                    fields[name] = [item.strip() for item in fields[name].split(";") if item.strip()]
            rows.append((reader.line_num, fields))
        return rows
    except csv.Error as exc:
        raise CredentialImportError(f"{path}:{reader.line_num}: {exc}") from exc


def _jsonl_rows(text: str) -> list[Row]:
    rows: list[Row] = []
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            fields = json.loads(content)
        except json.JSONDecodeError as exc:
            rows.append((line, f"not valid JSON: {exc.msg} at column {exc.colno}"))
            continue
        rows.append((line, fields if isinstance(fields, dict) else "each line must be one JSON object"))
    return rows
