"""Reading an import file: CSV, UTF-8, a header naming its columns, one account per row.

Columns (by header name, any order and case; others are ignored): `encoded_account_id` or
`login_name` (at least one of the two columns; the id wins when a row has both), `wish`
(`approved` or `billing_approved`, optional) and `note` (why; required with
`billing_approved`). A row that breaks a rule is kept, with its problem, and refused; a file
that is not such a CSV at all is a 400 problem naming what is wrong.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from app.clients.schemas import ACCOUNT_ID, ACCOUNT_ID_RULE, NOTE_MAX
from app.errors import FieldError, ValidationFailed
from app.imports.models import Wish

ID = "encoded_account_id"
LOGIN = "login_name"
WISH = "wish"
NOTE = "note"
COLUMNS = (ID, LOGIN, WISH, NOTE)
LOGIN_MAX = 200
_WISHES = {"approved": Wish.APPROVED, "billing_approved": Wish.BILLING_APPROVED}


@dataclass(frozen=True)
class RowIn:
    """One row as the file gives it (`problem` set when the row cannot be used)."""

    line: int
    encoded_account_id: str | None
    login_name: str | None
    wish: Wish | None
    note: str | None
    problem: str | None = None


class FileRejected(ValidationFailed):
    """The file as a whole cannot be read as an import."""

    def __init__(self, message: str) -> None:
        super().__init__([FieldError("file", message)], detail=f"The import file: {message}")


def _header(row: list[str]) -> dict[str, int]:
    names = [name.strip().lower().replace("-", "_").replace(" ", "_") for name in row]
    positions: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in COLUMNS:
            if name in positions:
                raise FileRejected(f"the header names {name!r} twice")
            positions[name] = index
    if ID not in positions and LOGIN not in positions:
        raise FileRejected(
            f"the header must name {ID!r} or {LOGIN!r} (and may name {WISH!r} and {NOTE!r})"
        )
    return positions


def _cell(row: list[str], positions: dict[str, int], column: str) -> str | None:
    index = positions.get(column)
    if index is None or index >= len(row):
        return None
    value = row[index].strip()
    return value or None


def _row(line: int, row: list[str], positions: dict[str, int]) -> RowIn:
    account_id = _cell(row, positions, ID)
    login = _cell(row, positions, LOGIN)
    raw_wish = _cell(row, positions, WISH)
    note = _cell(row, positions, NOTE)
    wish = _WISHES.get(raw_wish.lower().replace("-", "_")) if raw_wish else None

    def refused(problem: str) -> RowIn:
        return RowIn(line, account_id, login, wish, note, problem)

    if account_id is None and login is None:
        return refused(f"needs an {ID} or a {LOGIN}")
    if account_id is not None and ACCOUNT_ID.fullmatch(account_id) is None:
        return refused(f"{ID} {ACCOUNT_ID_RULE}")
    if login is not None and len(login) > LOGIN_MAX:
        return refused(f"{LOGIN} must be at most {LOGIN_MAX} characters")
    if raw_wish is not None and wish is None:
        return refused(f"{WISH} must be approved or billing_approved, not {raw_wish[:40]!r}")
    if note is not None and len(note) > NOTE_MAX:
        return refused(f"{NOTE} must be at most {NOTE_MAX} characters")
    if wish is Wish.BILLING_APPROVED and note is None:
        return refused("billing_approved needs a note saying why (a person's decision)")
    return RowIn(line, account_id, login, wish, note)


def parse(data: bytes, *, max_rows: int) -> list[RowIn]:
    """Every non-blank row of the file, in order; `FileRejected` if it is not a usable CSV."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRejected("is not UTF-8 text") from None
    if "\x00" in text:
        raise FileRejected("is not a text file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[RowIn] = []
    try:
        header = next(reader, None)
        if header is None:
            raise FileRejected("is empty")
        positions = _header(header)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(rows) >= max_rows:
                raise FileRejected(f"has more than {max_rows} rows (IMPORTS_MAX_ROWS)")
            rows.append(_row(reader.line_num, row, positions))
    except csv.Error as exc:
        raise FileRejected(f"is not valid CSV at line {reader.line_num}: {exc}") from None
    if not rows:
        raise FileRejected("has a header but no rows")
    return rows
