"""What the CSV import and export scripts share: reading a file with line numbers,
checking cells, reporting every bad row at once, and finding the database.

An import reads and checks the whole file first; any problem is reported with its
line number and nothing is written (exit status 1). Only a clean file is written,
in one transaction.
"""

import argparse
import csv
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine

from scripts.check_invariants import describe, resolve_database_url

# A course code: CS101, MA-201, HIST.310 ...
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,19}$")


@dataclass(frozen=True, order=True)
class Problem:
    line: int  # 1 is the header
    reason: str


class BadFile(Exception):
    """The file has problems; nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = sorted(problems)


@dataclass
class Table:
    """A CSV file's rows as {column: stripped cell}, each with the line it starts on."""

    columns: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # rows that could not be read as cells


def read_table(path: Path, *, required: Sequence[str], optional: Sequence[str]) -> Table:
    """Read the whole file; BadFile when the header lacks a required column or names an unknown one.
    A row that cannot be read as cells is a problem in `Table.problems`; the caller adds its own."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise BadFile([Problem(0, f"cannot read {path}: {error.strerror}")]) from error
    with handle:
        reader = csv.reader(handle)
        try:
            header = [column.strip().lower() for column in next(reader, [])]
        except (csv.Error, UnicodeDecodeError) as error:
            raise BadFile([Problem(1, f"not a CSV header: {error}")]) from error
        problems = [Problem(1, f"missing column {column!r}") for column in required if column not in header]
        known = {*required, *optional}
        problems += [Problem(1, f"unknown column {column!r}") for column in header if column not in known]
        duplicated = sorted({column for column in header if header.count(column) > 1})
        problems += [Problem(1, f"column {column!r} appears twice") for column in duplicated]
        if not header:
            problems = [Problem(1, "the file is empty: no header")]
        if problems:
            raise BadFile(problems)
        table = Table(columns=header)
        start = reader.line_num + 1
        try:
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(cell.strip() for cell in cells):
                    continue  # a blank line
                if len(cells) != len(header):
                    problems.append(Problem(line, f"{len(cells)} cells, the header has {len(header)}"))
                    continue
                table.rows.append((line, {column: cell.strip() for column, cell in zip(header, cells, strict=True)}))
        except (csv.Error, UnicodeDecodeError) as error:
            problems.append(Problem(reader.line_num, f"unreadable: {error}"))
    table.problems = problems
    return table


class Cells:
    """One row's cells, read with checks: each bad cell adds a reason instead of raising."""

    def __init__(self, line: int, values: dict[str, str]) -> None:
        self.line, self.values = line, values
        self.reasons: list[str] = []

    def text(self, column: str, *, max_length: int, required: bool = True) -> str:
        value = self.values.get(column, "")
        if required and not value:
            self.reasons.append(f"{column} is empty")
        elif len(value) > max_length:
            self.reasons.append(f"{column} is longer than {max_length} characters")
        return value

    def integer(self, column: str, *, low: int, high: int | None = None, default: int | None = None) -> int | None:
        value = self.values.get(column, "")
        if not value:
            if default is None:
                self.reasons.append(f"{column} is empty")
            return default
        try:
            number = int(value)
        except ValueError:
            self.reasons.append(f"{column} {value!r} is not a whole number")
            return default
        if number < low or (high is not None and number > high):
            allowed = f"{low}-{high}" if high is not None else f"at least {low}"
            self.reasons.append(f"{column} {number} is out of range ({allowed})")
        return number

    def codes(self, column: str) -> list[str]:
        """`CS101;MA101`: course codes, each once."""
        codes = split_list(self.values.get(column, ""))
        for code in codes:
            if not CODE.match(code):
                self.reasons.append(f"{column}: {code!r} is not a course code")
        if len(set(codes)) != len(codes):
            self.reasons.append(f"{column} names a course twice")
        return codes

    def problems(self) -> list[Problem]:
        return [Problem(self.line, reason) for reason in self.reasons]


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


def report(path: Path, problems: Sequence[Problem]) -> None:
    """Every problem, `FILE:LINE: reason`, on stderr."""
    for problem in problems:
        where = f"{path}:{problem.line}" if problem.line else str(path)
        print(f"{where}: {problem.reason}", file=sys.stderr)
    print(f"{len(problems)} problem(s) in {path}: nothing was written", file=sys.stderr)


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="the database (default: DATABASE_URL, else the running `make run` database, else .env)",
    )


def engine_for(explicit: str | None) -> tuple[Engine, str]:
    """The engine and a description of where it points (never credentials)."""
    url, _source = resolve_database_url(explicit)
    if url is None:
        raise SystemExit("no database: pass --database-url or set DATABASE_URL")
    return create_engine(url), describe(url)


def batches(rows: Sequence[dict[str, object]], size: int = 1000) -> Iterator[Sequence[dict[str, object]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
