"""The portal: the fleet page and a page per job, served by every master beside /metrics.

Read-only by default: every request but GET and HEAD is refused (405) before any page sees
it, but for an installation that turns actions on (`scheduler.portal.actions`): then its
sign-in and each job's action form are the two paths that take a POST. Pages
are Jinja2 templates; htmx (when installed, `scheduler.devstack.htmx`) refreshes the part of
a page that holds data while its tab is visible, and keeps the fleet's filters in the URL.
Without htmx the pages are the same, refreshed by the reader's own hand.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from ruamel.yaml import YAML
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from common.durations import format_duration
from common.errors import FlinkschedError
from common.store import operations
from scheduler.portal.actions import COOKIE, ActionPolicy, refusal
from scheduler.portal.actions import Request as ActionRequest
from scheduler.portal.reading import NoSuchJob, PortalReader, Reading
from scheduler.portal.views import FleetQuery, fleet_page, job_page, when

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
HTMX = STATIC / "htmx.min.js"  # written by `python -m scheduler.devstack.htmx`
VIA = "portal"  # what the events of its actions name as their source, beside who
REFRESH_SECONDS = 5  # how often a visible page refreshes its data
SECURITY_HEADERS = {
    # No inline script and no eval: htmx is told so too (its config in base.html).
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class ReadOnly:
    """Refuses every request that is not GET or HEAD before the application sees it, but a
    POST to a path `writable` names."""

    def __init__(self, app: ASGIApp, writable: Callable[[str], bool]) -> None:
        self.app = app
        self.writable = writable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD") and not (
                scope["method"] == "POST" and self.writable(scope["path"])):
            response = PlainTextResponse(
                f"{scope['method']} refused: the portal is read-only\n", status_code=405,
                headers={"allow": "GET, HEAD", **SECURITY_HEADERS})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _freshness(reading: Reading[Any], now: float) -> dict[str, Any]:
    """What the page's banner says about its data."""
    return {"stale": reading.stale, "error": reading.error, "leader": reading.leader,
            "read_at": when(reading.read_at) if reading.read_at else "never",
            "age": format_duration(now - reading.read_at) if reading.read_at else "",
            "never": reading.data is None}


def _yaml(value: Any) -> str:
    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(value, out)
    return out.getvalue()


def portal_app(reader: PortalReader, links: Mapping[str, str] | None = None,
               master_id: str = "", policy: ActionPolicy | None = None) -> ASGIApp:
    """The portal's ASGI application, reading through `reader`. `links`: label → URL pattern
    with $job, $cluster and $attempt (metrics, logs) shown on each job's page. `policy`:
    whether it acts, and for whom (read-only without one)."""
    patterns = dict(links or {})
    policy = policy or ActionPolicy()
    templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                            autoescape=select_autoescape(default=True), trim_blocks=True,
                            lstrip_blocks=True)
    common = {"refresh": REFRESH_SECONDS, "htmx": HTMX.is_file(), "master_id": master_id,
              "when": when}

    def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = templates.get_template(template).render(**common, **context)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def fleet(request: Request) -> Response:
        query, problems = FleetQuery.from_params(request.query_params)
        now = time.time()
        reading = reader.fleet()
        page = fleet_page(reading.data.rows, query, now, reading.data.versions) \
            if reading.data else None
        body = "fleet_body.html" if request.headers.get("hx-request") else "fleet.html"
        response = render(body, page=page, problems=problems, query=query,
                          fresh=_freshness(reading, now))
        if request.headers.get("hx-trigger") == "filters":  # the address bar: only what is set
            response.headers["hx-push-url"] = query.url()
        return response

    def job(request: Request) -> Response:
        name = request.path_params["name"]
        now = time.time()
        who = policy.identify(request.headers, request.cookies)
        acting = {"enabled": policy.enabled, "who": who, "sign_in": bool(policy.tokens),
                  "csrf": policy.csrf_token(who) if who else "",
                  "done": request.query_params.get("requested", "")}
        try:
            reading = reader.job(name)
        except NoSuchJob:
            return render("missing.html", status=404, name=name)
        page = None
        if reading.data is not None:
            data = reading.data
            spec = _yaml({"cluster": data.record.cluster, "spec": data.record.spec})
            page = job_page(data, now, patterns, spec)
        body = "job_body.html" if request.headers.get("hx-request") else "job.html"
        return render(body, name=name, page=page, fresh=_freshness(reading, now),
                      acting=acting)

    async def act(request: Request) -> Response:
        name = request.path_params["name"]
        form = _form(await request.body())
        who = policy.identify(request.headers, request.cookies)
        asked = refusal(policy, who, name, form, request.headers.get("origin", ""),
                        request.headers.get("host", ""))
        if not isinstance(asked, ActionRequest):
            code, why = asked
            return render("refused.html", status=code, name=name, why=why)
        assert who is not None
        try:
            await asyncio.wait_for(asyncio.to_thread(_carry_out, reader, name, who, asked),
                                   timeout=reader.deadline)
        except (TimeoutError, FlinkschedError) as exc:
            why = str(exc) or f"ZooKeeper did not answer within {reader.deadline:g}s"
            return render("refused.html", status=503, name=name,
                          why=f"not requested: {why}; nothing was changed")
        except LookupError:
            return render("missing.html", status=404, name=name)
        return RedirectResponse(f"/jobs/{quote(name)}?requested={asked.action}",
                                status_code=303, headers=SECURITY_HEADERS)

    def sign_in_page(request: Request) -> Response:
        return render("login.html", failed=False)

    async def sign_in(request: Request) -> Response:
        token = _form(await request.body()).get("token", "")
        if not policy.who_has(token):
            return render("login.html", status=401, failed=True)
        response = RedirectResponse("/", status_code=303, headers=SECURITY_HEADERS)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    routes = [
        Route("/", fleet, methods=["GET", "HEAD"]),
        Route("/jobs/{name}", job, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if policy.enabled:
        routes += [Route("/jobs/{name}/actions", act, methods=["POST"])]
        if policy.tokens:
            routes += [Route("/login", sign_in_page, methods=["GET", "HEAD"]),
                       Route("/login", sign_in, methods=["POST"])]

    def writable(path: str) -> bool:
        return policy.enabled and (path == "/login" or (
            path.startswith("/jobs/") and path.endswith("/actions")))

    return ReadOnly(Starlette(routes=routes), writable)


def _form(body: bytes) -> dict[str, str]:
    """A urlencoded form's fields (the first of each), without a multipart parser."""
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _carry_out(reader: PortalReader, job: str, who: str, asked: ActionRequest) -> None:
    """The action through the CLI's own operations, as `who` through the portal."""
    store = reader.store
    if store.job(job) is None:
        raise LookupError(job)
    if asked.action == "restart":
        operations.request_restart(store, job, who, VIA)
    elif asked.action == "savepoint":
        operations.request_savepoint(store, job, who, VIA)
    elif asked.action == "suspend":
        operations.suspend(store, job, who, VIA, asked.reason)
    elif not operations.resume(store, job, who, VIA):
        raise FlinkschedError(f"{job} has no suspension of an operator's to lift")
