"""The simulator's HTTP side (aiohttp): Flink's REST paths and shapes, plus /_sim controls.

    python -m bench.flinksim --port 8081 [--latency-ms 5] [--checkpoint-ms 1000]
                             [--flink-version 1.20.3]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bench.flinksim.state import TERMINAL, Cluster, Job, now_ms
from scheduler.devstack.flinkhome import DEFAULT_VERSION

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLUSTER = web.AppKey("cluster", Cluster)


def _error(status: int, *messages: str) -> web.Response:
    return web.json_response({"errors": list(messages)}, status=status)


def _server_side(message: str) -> web.Response:
    """How Flink reports an exception from a handler: 500, the trace in `errors`."""
    return _error(500, "Internal server error.", f"<Exception on server side:\n{message}\n"
                                                 "\tat org.apache.flink.runtime.rest.handler."
                                                 "AbstractHandler.respondAsLeader(...)\n\nEnd "
                                                 "of exception on server side>")


def _not_found(job_id: str) -> web.Response:
    return _error(404, f"Job {job_id} not found", "org.apache.flink.runtime.messages."
                  f"FlinkJobNotFoundException: Could not find Flink job ({job_id})")


@web.middleware
async def _behaviour(request: web.Request, handler: Handler) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    route = request.match_info.route.resource
    name = route.canonical if route is not None else request.path
    cluster.requests[name] = cluster.requests.get(name, 0) + 1
    cluster.apply_due()
    if request.path.startswith("/_sim"):
        return await handler(request)
    cluster.in_flight += 1
    cluster.peak_in_flight = max(cluster.peak_in_flight, cluster.in_flight)
    try:
        if cluster.latency_ms:
            await asyncio.sleep(cluster.latency_ms / 1000)
        if cluster.error_status:
            return _error(cluster.error_status, "simulated error")
        return await handler(request)
    finally:
        cluster.in_flight -= 1


def _job(request: web.Request) -> Job | None:
    return request.app[CLUSTER].jobs.get(request.match_info["job_id"])


async def jobmanager_config(request: web.Request) -> web.Response:
    return web.json_response([{"key": key, "value": value} for key, value in
                              request.app[CLUSTER].jobmanager_config().items()])


async def config(request: web.Request) -> web.Response:
    return web.json_response({"refresh-interval": 3000, "timezone-name": "UTC",
                              "timezone-offset": 0,
                              "flink-version": str(request.app[CLUSTER].flink_version),
                              "flink-revision": "flinksim", "features": {}})


async def jars(request: web.Request) -> web.Response:
    files = list(request.app[CLUSTER].jars.values())
    return web.json_response({"address": f"http://{request.host}", "files": files})


async def upload(request: web.Request) -> web.Response:
    reader = await request.multipart()
    part = await reader.next()
    name = getattr(part, "filename", None) or "job.jar"
    if part is not None:
        while await part.read_chunk():  # type: ignore[union-attr]
            pass
    jar_id = request.app[CLUSTER].upload(name)
    return web.json_response({"filename": f"/tmp/flink-web-sim/flink-web-upload/{jar_id}",
                              "status": "success"})


async def run(request: web.Request) -> web.Response:
    cluster = request.app[CLUSTER]
    jar_id = request.match_info["jar_id"]
    body = await request.json() if request.can_read_body else {}
    try:
        return web.json_response({"jobid": cluster.run(jar_id, body)})
    except KeyError:
        return _server_side("org.apache.flink.runtime.rest.handler.RestHandlerException: Jar "
                            f"file /tmp/flink-web-sim/flink-web-upload/{jar_id} does not exist")
    except ValueError:
        return _server_side("org.apache.flink.runtime.client.DuplicateJobSubmissionException: "
                            "Job has already been submitted.")


async def jobs(request: web.Request) -> web.Response:
    return web.Response(body=request.app[CLUSTER].listing(), content_type="application/json")


def _overview(job: Job) -> dict[str, Any]:
    end = job.ended
    return {"jid": job.id, "name": job.name, "start-time": job.started, "end-time": end,
            "duration": (end if end > 0 else now_ms()) - job.started, "state": job.state,
            "last-modification": max(job.timestamps.values()),
            "tasks": {"running": job.parallelism if job.state == "RUNNING" else 0,
                      "total": job.parallelism}}


async def jobs_overview(request: web.Request) -> web.Response:
    return web.json_response({"jobs": [_overview(j) for j in request.app[CLUSTER].jobs.values()]})


async def job_details(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None:
        return _not_found(request.match_info["job_id"])
    overview = _overview(job)
    return web.json_response({
        "jid": job.id, "name": job.name, "isStoppable": False, "state": job.state,
        "job-type": "STREAMING", "start-time": job.started, "end-time": job.ended,
        "duration": overview["duration"], "maxParallelism": -1, "now": now_ms(),
        "timestamps": job.timestamps,
        "vertices": [{"id": "sim-vertex", "name": "Source: simulated", "parallelism":
                      job.parallelism, "status": job.state}],
        "status-counts": {job.state: 1}, "plan": {"jid": job.id, "name": job.name, "nodes": []},
    })


async def job_status(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None:
        return _not_found(request.match_info["job_id"])
    return web.json_response({"status": job.state})


async def cancel(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None:
        return _not_found(request.match_info["job_id"])
    if job.state in TERMINAL:
        return _error(409, "org.apache.flink.runtime.rest.handler.RestHandlerException: Job "
                      "cancellation failed because the job has already reached another "
                      f"terminal state ({job.state}).")
    request.app[CLUSTER].cancel(job.id)
    return web.json_response({}, status=202)


async def checkpoints(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None:
        return _not_found(request.match_info["job_id"])
    completed = job.completed_checkpoints()
    latest = None
    if completed:
        finished = job.started + completed * job.checkpoint_ms
        latest = {"id": completed, "status": "COMPLETED", "is_savepoint": False,
                  "trigger_timestamp": finished - 10, "latest_ack_timestamp": finished,
                  "external_path": job.checkpoint_path(completed), "discarded": False}
    return web.json_response({
        "counts": {"restored": 1 if job.restored else 0, "total": completed, "in_progress": 0,
                   "completed": completed, "failed": 0},
        "summary": {}, "history": [latest] if latest else [],
        "latest": {"completed": latest, "savepoint": None, "failed": None,
                   "restored": job.restored},
    })


async def exceptions(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None:
        return _not_found(request.match_info["job_id"])
    entries = []
    if job.failure:
        entries.append({"exceptionName": job.failure.split(":", 1)[0],
                        "stacktrace": job.failure, "timestamp": job.ended,
                        "taskName": "Source: simulated", "concurrentExceptions": []})
    return web.json_response({"exceptionHistory": {"entries": entries, "truncated": False}})


async def metrics(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None:
        return _not_found(request.match_info["job_id"])
    wanted = request.query.get("get", "")
    return web.json_response([{"id": name, "value": "0"} for name in wanted.split(",") if name])


async def savepoint(request: web.Request) -> web.Response:
    return await _operation(request, "savepoint")


async def stop(request: web.Request) -> web.Response:
    return await _operation(request, "stop")


async def _operation(request: web.Request, kind: str) -> web.Response:
    if _job(request) is None:
        return _not_found(request.match_info["job_id"])
    trigger = request.app[CLUSTER].start_operation(request.match_info["job_id"], kind)
    return web.json_response({"request-id": trigger}, status=202)


async def operation_status(request: web.Request) -> web.Response:
    operation = request.app[CLUSTER].operation(request.match_info["trigger"])
    if operation is None:
        return _error(404, "Operation not found under key")
    if not operation.done():
        return web.json_response({"status": {"id": "IN_PROGRESS"}, "operation": None})
    if operation.failure:
        return web.json_response({"status": {"id": "COMPLETED"}, "operation": {
            "failure-cause": {"class": operation.failure.split(":", 1)[0],
                              "stack-trace": operation.failure,
                              "serialized-throwable": ""}}})
    result = {"location": operation.location} if operation.location else {}
    return web.json_response({"status": {"id": "COMPLETED"}, "operation": result})


async def disposal(request: web.Request) -> web.Response:
    trigger = request.app[CLUSTER].start_operation("", "disposal")
    return web.json_response({"request-id": trigger}, status=202)


# -- simulation controls -----------------------------------------------------------------
def _after_ms(request: web.Request) -> int | None:
    """`?afterMs=N`: the fault happens N ms from now instead of at once."""
    value = request.query.get("afterMs")
    return int(value) if value is not None else None


async def sim_fail(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None or job.state in TERMINAL:
        return _error(404, "no running job")
    after = _after_ms(request)
    if after is not None:
        request.app[CLUSTER].schedule("fail", job.id, after)
        return web.json_response({"failing": job.id, "afterMs": after})
    request.app[CLUSTER].fail(job.id)
    return web.json_response({"failed": job.id})


async def sim_lose(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    after = _after_ms(request)
    if after is not None:
        request.app[CLUSTER].schedule("lose", job_id, after)
        return web.json_response({"losing": job_id, "afterMs": after})
    request.app[CLUSTER].lose(job_id)
    return web.json_response({"lost": job_id})


async def sim_behaviour(request: web.Request) -> web.Response:
    cluster = request.app[CLUSTER]
    body = await request.json()
    cluster.latency_ms = int(body.get("latencyMs", cluster.latency_ms))
    cluster.error_status = int(body.get("errorStatus", cluster.error_status))
    if body.get("resetPeak"):
        cluster.peak_in_flight = cluster.in_flight
    return web.json_response({"latencyMs": cluster.latency_ms,
                              "errorStatus": cluster.error_status})


async def sim_stats(request: web.Request) -> web.Response:
    cluster = request.app[CLUSTER]
    states: dict[str, int] = {}
    for job in cluster.jobs.values():
        states[job.state] = states.get(job.state, 0) + 1
    return web.json_response({"requests": cluster.requests, "jobs": states,
                              "peakInFlight": cluster.peak_in_flight})


def make_app(cluster: Cluster | None = None) -> web.Application:
    app = web.Application(middlewares=[_behaviour], client_max_size=512 * 1024 * 1024)
    app[CLUSTER] = cluster or Cluster()
    routes = [
        ("GET", "/config", config), ("GET", "/jobmanager/config", jobmanager_config),
        ("GET", "/jars", jars), ("POST", "/jars/upload", upload),
        ("POST", "/jars/{jar_id}/run", run), ("GET", "/jobs", jobs),
        ("GET", "/jobs/overview", jobs_overview), ("GET", "/jobs/{job_id}", job_details),
        ("PATCH", "/jobs/{job_id}", cancel), ("GET", "/jobs/{job_id}/status", job_status),
        ("GET", "/jobs/{job_id}/checkpoints", checkpoints),
        ("GET", "/jobs/{job_id}/exceptions", exceptions),
        ("GET", "/jobs/{job_id}/metrics", metrics),
        ("POST", "/jobs/{job_id}/savepoints", savepoint), ("POST", "/jobs/{job_id}/stop", stop),
        ("GET", "/jobs/{job_id}/savepoints/{trigger}", operation_status),
        ("POST", "/savepoint-disposal", disposal),
        ("GET", "/savepoint-disposal/{trigger}", operation_status),
        ("POST", "/_sim/jobs/{job_id}/fail", sim_fail),
        ("POST", "/_sim/jobs/{job_id}/lose", sim_lose),
        ("POST", "/_sim/behaviour", sim_behaviour), ("GET", "/_sim/stats", sim_stats),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="A Flink REST simulator for scale runs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--checkpoint-ms", type=int, default=1000,
                        help="Checkpoint interval of jobs that do not set one.")
    parser.add_argument("--operation-ms", type=int, default=200,
                        help="How long a savepoint, stop or disposal takes.")
    parser.add_argument("--flink-version", default=DEFAULT_VERSION,
                        help="The Flink release it answers as (1.20.x or 2.x).")
    args = parser.parse_args()
    cluster = Cluster(args.checkpoint_ms, args.operation_ms, args.flink_version)
    cluster.latency_ms = args.latency_ms
    # A large accept backlog: dozens of workers open their connections in the same second.
    web.run_app(make_app(cluster), host=args.host, port=args.port, print=None, backlog=2048,
                access_log=None)
