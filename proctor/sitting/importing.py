"""What the importers (question banks, rosters) share: line-numbered errors, all-or-nothing
failure, text decoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proctor.errors import Invalid

MAX_LISTED = 200


@dataclass(frozen=True)
class LineError:
    line: int  # line of the file (the header is line 1), item number for JSON; 0: the file
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}

    def text(self, unit: str = "line") -> str:
        where = f"{unit} {self.line}" if self.line else "file"
        return f"{where}{f' ({self.field})' if self.field else ''}: {self.message}"


class ImportFailed(Invalid):
    """Nothing was imported; ``errors`` says what to fix, line by line."""

    def __init__(self, errors: list[LineError], unit: str = "line") -> None:
        self.errors = sorted(errors, key=lambda e: (e.line, e.field))
        self.unit = unit
        shown = "; ".join(e.text(unit) for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(
            "import_failed",
            f"导入失败，未导入任何数据。 Nothing was imported: {len(self.errors)} problem(s). "
            f"{shown}{more}",
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "unit": self.unit,
                "errors": [e.as_dict() for e in self.errors[:MAX_LISTED]],
                "error_count": len(self.errors),
            }
        }


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GB18030 (what Chinese Excel writes as "CSV")."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportFailed(
        [LineError(0, "", "the file is neither UTF-8 nor GB18030 text; save it as UTF-8 CSV")]
    )
