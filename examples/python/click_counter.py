"""flinksched's Python example and test job: clicks from Flink's datagen source counted per
user in a keyed aggregation (state Flink checkpoints), with a failure that can be injected
from outside, as the jar example's.

Arguments: --rate N (rows per second), --keys K (distinct users), --fail-marker PATH (the job
fails once when the file exists; a Python function deletes it and raises).

Run by Flink's PythonDriver: the table environment it creates is the one of the submission,
which carries the job id flinksched gives the attempt and the checkpoint it restores.
"""

from __future__ import annotations

import argparse
import os

from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import udf


@udf(result_type=DataTypes.BIGINT())
def fail_on_marker(value: int, marker: str) -> int:
    """The value, unless the marker file is there: then the job fails (once: it is deleted)."""
    if marker and os.path.exists(marker):
        try:
            os.remove(marker)
        except FileNotFoundError:
            return value  # another subtask took it
        raise RuntimeError(f"injected failure: {marker} was present")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--fail-marker", default="")
    args = parser.parse_args()

    tables = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    tables.create_temporary_function("fail_on_marker", fail_on_marker)
    tables.execute_sql(f"""
        CREATE TABLE clicks (user_id BIGINT) WITH (
          'connector' = 'datagen',
          'rows-per-second' = '{args.rate}',
          'fields.user_id.min' = '1',
          'fields.user_id.max' = '{args.keys}'
        )""")
    tables.execute_sql("""
        CREATE TABLE clicks_per_user (user_id BIGINT, clicks BIGINT)
        WITH ('connector' = 'blackhole')""")
    marker = args.fail_marker.replace("'", "''")
    # Submitted, not waited for: the driver ends once the job runs.
    tables.execute_sql(f"""
        INSERT INTO clicks_per_user
        SELECT user_id, COUNT(*) FROM (
          SELECT fail_on_marker(user_id, '{marker}') AS user_id FROM clicks
        ) GROUP BY user_id""")


if __name__ == "__main__":
    main()
