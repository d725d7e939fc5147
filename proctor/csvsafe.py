"""CSV for spreadsheet programs without formula injection: a text cell that a spreadsheet
would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return; a candidate's short answer, a roster name, a reviewer's note) is written with a
leading apostrophe, which Excel, LibreOffice and Sheets show as text. Numbers stay
numbers. Every CSV export goes through here."""

from __future__ import annotations

import csv
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Writer:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def writerow(self, row: Any) -> Any:
        if isinstance(row, dict):
            return self._inner.writerow({k: cell(v) for k, v in row.items()})
        return self._inner.writerow([cell(v) for v in row])

    def writerows(self, rows: Any) -> None:
        for row in rows:
            self.writerow(row)

    def writeheader(self) -> Any:
        return self._inner.writeheader()


def writer(out: Any, **kwargs: Any) -> _Writer:
    return _Writer(csv.writer(out, **kwargs))


def dict_writer(out: Any, fieldnames: list[str], **kwargs: Any) -> _Writer:
    return _Writer(csv.DictWriter(out, fieldnames=fieldnames, **kwargs))
