"""A campaign's recipient rows as they arrive: from JSON or from a CSV stream, checked one by
one, each problem named by its row and field.

A CSV is read as it streams (never whole into memory): a ``phone`` column (``to`` is taken
too), an optional ``reference``, and one column per template variable, as Notify's jobs take.
A problem with the file itself (not UTF-8, no phone column, a row with more fields than the
header) is a ``FileProblem``: the caller writes nothing. A problem with one row's values is a
``RowError``, reported with the row's number, and the row is left out.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from app.domain.phones import InvalidPhoneNumber, to_e164_with_zone

MAX_REFERENCE = 200
MAX_VARIABLE_TEXT = 1000
PHONE_COLUMNS = ("phone", "to")


class FileProblem(Exception):
    """The upload as a whole cannot be read: 400 (or 422), naming the row and column."""

    def __init__(self, code: str, message: str, row: int | None = None, column: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.row = row
        self.column = column

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "row": self.row, "field": self.column}


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class Row:
    """A row that passed: its number in the upload, the number in E.164, and its values."""

    number: int
    phone: str
    variables: dict[str, Any]
    reference: str | None
    # The number's time zone ('' when it has none of its own), found while it is parsed.
    zone: str = ""


# Checks a row's variables against the campaign's template: the problems, each with its field.
VariableCheck = Callable[[dict[str, Any]], list[tuple[str, str, str]]]


@dataclass
class Checked:
    """What the check of an upload found so far: rows are yielded, errors kept (the first
    ``keep`` of them, and how many in all)."""

    keep: int = 100
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    rows_seen: int = 0

    def add(self, error: RowError) -> None:
        if len(self.errors) < self.keep:
            self.errors.append(error)

    def reject(self, errors: list[RowError]) -> None:
        self.error_count += 1
        for error in errors:
            self.add(error)


def check_row(
    number: int,
    phone: Any,
    variables: Any,
    reference: Any,
    check: VariableCheck | None,
) -> Row | list[RowError]:
    """One row, checked: the Row, or every problem it has."""
    errors: list[RowError] = []
    e164, zone = "", None
    if not isinstance(phone, str) or not phone.strip():
        errors.append(RowError(number, "phone", "required", "a phone number is required"))
    else:
        try:
            e164, zone = to_e164_with_zone(phone.strip())
        except InvalidPhoneNumber as exc:
            errors.append(RowError(number, "phone", "invalid_number", str(exc)))
    if reference is not None and (
        not isinstance(reference, str) or len(reference) > MAX_REFERENCE or "\x00" in reference
    ):
        errors.append(
            RowError(
                number, "reference", "invalid", f"a reference is text of at most {MAX_REFERENCE}"
            )
        )
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        errors.append(RowError(number, "variables", "invalid", "variables must be an object"))
        variables = {}
    if variables and check is None:
        errors.append(
            RowError(number, "variables", "unexpected", "variables go with a template campaign")
        )
    elif check is not None:
        for name, code, message in check(variables):
            errors.append(RowError(number, name, code, message))
    if errors:
        return errors
    return Row(number, e164, variables, reference or None, zone or "")


def json_rows(recipients: Any, check: VariableCheck | None, checked: Checked) -> Iterator[Row]:
    """The rows of ``{"recipients": [{"to", "variables", "reference"}, ...]}``."""
    if not isinstance(recipients, list):
        raise FileProblem("invalid", "recipients must be a list", column="recipients")
    for number, item in enumerate(recipients, start=1):
        checked.rows_seen += 1
        if not isinstance(item, dict):
            checked.reject(
                [RowError(number, "recipient", "invalid", "each recipient is an object")]
            )
            continue
        unknown = sorted(set(item) - {"to", "phone", "variables", "reference"})
        if unknown:
            checked.reject(
                [
                    RowError(
                        number, unknown[0], "unexpected", "a recipient has to, variables, reference"
                    )
                ]
            )
            continue
        result = check_row(
            number,
            item.get("to", item.get("phone")),
            item.get("variables"),
            item.get("reference"),
            check,
        )
        if isinstance(result, Row):
            yield result
        else:
            checked.reject(result)


class _Utf8Lines:
    """A byte stream read as UTF-8 text, a chunk at a time; a byte that is not UTF-8 is a
    FileProblem naming the line it is on."""

    def __init__(self, stream: IO[bytes], chunk: int = 64 * 1024) -> None:
        self._stream = stream
        self._chunk = chunk
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._line = 1
        self._done = False

    def _fill(self) -> None:
        raw = self._stream.read(self._chunk)
        try:
            text = self._decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            line = self._line + self._buffer.count("\n") + raw[: max(exc.start, 0)].count(b"\n")
            raise FileProblem("not_utf8", "the file is not UTF-8 text", row=line) from None
        if not raw:
            self._done = True
        if "\x00" in text:
            raise FileProblem("invalid_characters", "the file holds a NUL character")
        self._buffer += text

    def readline(self) -> str:
        while "\n" not in self._buffer and not self._done:
            self._fill()
        cut = self._buffer.find("\n")
        end = len(self._buffer) if cut < 0 else cut + 1
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        self._line += 1
        return line

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def csv_rows(
    stream: IO[bytes],
    check: VariableCheck | None,
    checked: Checked,
    variable_types: Callable[[str, str], Any] | None = None,
) -> Iterator[Row]:
    """The rows of a CSV upload, streamed. Columns other than phone and reference are the
    template's variables (``variable_types`` turns a cell's text into the variable's type)."""
    text = _Utf8Lines(stream)
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise FileProblem("empty", "the file is empty: it needs a header row", row=1) from None
    except csv.Error as exc:
        raise FileProblem("malformed_csv", f"the header row is not CSV: {exc}", row=1) from None
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]  # a byte-order mark, as spreadsheets save
    names = [h.strip() for h in header]
    phone_at = next((names.index(c) for c in PHONE_COLUMNS if c in names), None)
    if phone_at is None:
        raise FileProblem(
            "no_phone_column", "the header has no phone column", row=1, column="phone"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise FileProblem(
            "repeated_column",
            f"the column {repeated[0]!r} appears twice",
            row=1,
            column=repeated[0],
        )
    reference_at = names.index("reference") if "reference" in names else None
    variable_columns = [
        (i, n) for i, n in enumerate(names) if i not in (phone_at, reference_at) and n
    ]
    if variable_columns and check is None:
        raise FileProblem(
            "unexpected_column",
            f"the column {variable_columns[0][1]!r} is a variable: a body campaign takes none",
            row=1,
            column=variable_columns[0][1],
        )
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise FileProblem(
                "malformed_csv", f"row {number + 1} is not CSV: {exc}", row=number + 1
            ) from None
        number += 1
        if not any(c.strip() for c in cells):
            continue  # a blank line
        checked.rows_seen += 1
        if len(cells) > len(names):
            raise FileProblem(
                "too_many_fields",
                f"row {number} has {len(cells)} fields; the header has {len(names)}",
                row=number,
                column=None,
            )
        cells += [""] * (len(names) - len(cells))
        variables: dict[str, Any] = {}
        errors: list[RowError] = []
        for i, name in variable_columns:
            cell = cells[i]
            if cell == "":
                continue
            if len(cell) > MAX_VARIABLE_TEXT:
                errors.append(
                    RowError(number, name, "too_long", f"at most {MAX_VARIABLE_TEXT} characters")
                )
                continue
            try:
                variables[name] = variable_types(name, cell) if variable_types else cell
            except ValueError:
                variables[name] = cell  # as text: the template's check names what is wrong
        reference = (
            cells[reference_at] if reference_at is not None and cells[reference_at] else None
        )
        result = check_row(number, cells[phone_at], variables, reference, check)
        if isinstance(result, Row) and not errors:
            yield result
        else:
            found = [] if isinstance(result, Row) else result
            # A variable's problem names its column, as the file has it.
            checked.reject(errors + [_as_column(e) for e in found])


def _as_column(error: RowError) -> RowError:
    if error.field.startswith("variables."):
        return RowError(
            error.row, error.field.removeprefix("variables."), error.code, error.message
        )
    return error


def batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
