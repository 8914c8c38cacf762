"""The portal: the fleet page and a page per job, served by every master beside /metrics.

Read-only: every request but GET and HEAD is refused (405) before any page sees it. Pages
are Jinja2 templates; htmx (when installed, `scheduler.devstack.htmx`) refreshes the part of
a page that holds data while its tab is visible, and keeps the fleet's filters in the URL.
Without htmx the pages are the same, refreshed by the reader's own hand.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from ruamel.yaml import YAML
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from common.durations import format_duration
from scheduler.portal.reading import NoSuchJob, PortalReader, Reading
from scheduler.portal.views import FleetQuery, fleet_page, job_page, when

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
HTMX = STATIC / "htmx.min.js"  # written by `python -m scheduler.devstack.htmx`
REFRESH_SECONDS = 5  # how often a visible page refreshes its data
SECURITY_HEADERS = {
    # No inline script and no eval: htmx is told so too (its config in base.html).
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class ReadOnly:
    """Refuses every request that is not GET or HEAD before the application sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
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
               master_id: str = "") -> ASGIApp:
    """The portal's ASGI application, reading through `reader`. `links`: label → URL pattern
    with $job, $cluster and $attempt (metrics, logs) shown on each job's page."""
    patterns = dict(links or {})
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
        return render(body, name=name, page=page, fresh=_freshness(reading, now))

    app = Starlette(routes=[
        Route("/", fleet, methods=["GET", "HEAD"]),
        Route("/jobs/{name}", job, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])
    return ReadOnly(app)
