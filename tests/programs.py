"""The example Python and SQL programs as the end-to-end tests run them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.stack import REPO

PYTHON_EXAMPLE = REPO / "examples" / "python" / "click_counter.py"
SQL_EXAMPLE = REPO / "examples" / "sql" / "clicks_per_user.sql"


def python_program(marker: Path) -> dict[str, Any]:
    """The Python example, failing once when `marker` exists."""
    return {"pyFile": PYTHON_EXAMPLE.as_uri(), "args": ["--rate", "20", "--keys", "8",
                                                         "--fail-marker", str(marker)]}


def sql_example() -> dict[str, Any]:
    """The script of `configs/sql-clicks-per-user.yaml`, from its file."""
    return {"sqlFile": SQL_EXAMPLE.as_uri()}
