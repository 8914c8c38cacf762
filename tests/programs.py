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


def sql_program(marker: Path, jar: Path) -> dict[str, Any]:
    """The SQL example's aggregation, through the example jar's failure-injecting function."""
    return {"sql": f"""\
CREATE TEMPORARY FUNCTION fail_on_marker AS 'dev.flinksched.examples.FailOnMarker'
  USING JAR '{jar.as_uri()}';
CREATE TABLE clicks (user_id BIGINT) WITH (
  'connector' = 'datagen', 'rows-per-second' = '20',
  'fields.user_id.min' = '1', 'fields.user_id.max' = '8');
CREATE TABLE clicks_per_user (user_id BIGINT, clicks BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO clicks_per_user
SELECT user_id, COUNT(*) FROM (
  SELECT fail_on_marker(user_id, '{marker}') AS user_id FROM clicks) GROUP BY user_id;
"""}
