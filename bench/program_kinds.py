"""Python and SQL jobs beside a jar job on the session cluster: first start → RUNNING and
FAILED → RUNNING for each kind of program, while a jar job runs throughout.

Times as in `bench.own_clusters`: Flink's RUNNING of the new attempt minus the job's file
written (first start) or Flink's FAILED of the attempt before (the example programs fail
once on a marker file: the jar and the Python example by their own code, the SQL script
through the example jar's function `USING JAR`). A Python run
request also holds the cluster alone (`common.store.runrequests`): its first start includes
starting Python, which builds the job graph in the JobManager.

    python -m bench.program_kinds --runs 5
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.own_clusters import Program, failovers, first_starts, summarize
from bench.stackutil import exit_on_sigterm, local_stack, write_results, zk_store
from scheduler.devstack.flinkhome import FLINK_VERSION
from tests.programs import python_program, sql_program
from tests.waiting import wait_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the logs and state")
    parser.add_argument("--kinds", nargs="+", default=["jar", "python", "sql"],
                        choices=["jar", "python", "sql"])
    args = parser.parse_args()
    exit_on_sigterm()
    report: dict[str, Any] = {"runs": args.runs, "flink_version": FLINK_VERSION}
    measured: dict[str, dict[str, list[float]]] = {}
    with local_stack(keep=args.keep) as (cluster, control), \
            zk_store(cluster.zk_hosts, control.root) as store:
        control.start_master("master-a", "--removal-grace", "0")
        control.start_worker("worker-a", slots=4)
        control.write_job("bench-beside")  # the jar job every measurement runs beside
        wait_until(lambda: store.status("bench-beside")[0].phase == "Running", 120,
                   "the jar job beside RUNNING")

        def sql(marker: Path) -> dict[str, Any]:
            return sql_program(marker, cluster.example_jar)

        kinds: dict[str, Program | None] = {"jar": None, "python": python_program, "sql": sql}
        for kind in args.kinds:
            program = kinds[kind]
            measured[kind] = {
                "first_start": first_starts(control, store, args.runs, False, program, kind),
                "failed_to_running": failovers(control, store, args.runs, False,
                                               program=program, label=kind)}
    for kind, figures in measured.items():
        report[kind] = {figure: summarize(values) for figure, values in figures.items()}
    if "jar" in measured:
        report["over_jar"] = {
            kind: {figure: report[kind][figure]["median"] / report["jar"][figure]["median"]
                   for figure in ("first_start", "failed_to_running")}
            for kind in measured if kind != "jar"}
    write_results("program-kinds", report)


if __name__ == "__main__":
    main()
