"""The local API and web page of `sorf serve` (docs/api.md): read-only, under /api/v1.

Answers come from the current State (analyser/serve.py): the analysis is computed once
per database change, and deltas, zones and conduits are served as the same JSON that
`sorf analyse --format json` writes (analyser/report.py). Flows and operations are
paged in SQL (analyser/queries.py), with constant SQL and parameters only.

Security: the CLI binds 127.0.0.1 unless told otherwise and refuses a non-loopback bind
without a token. With a token, every /api request needs `Authorization: Bearer <token>`
(compared in constant time); the page shell and its static files carry no data and are
served without it, so that the page can ask for the token. Every response carries a
Content-Security-Policy that allows only 'self'.
"""

from __future__ import annotations

import hmac
import importlib.util
import io
import ipaddress
import logging
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from sensor.schema import ACCESS_CLASSES, SCHEMA_VERSION

from . import queries, report, schema
from .model import CATEGORIES, SEVERITIES, severity_rank
from .queries import EVIDENCE_FLOWS, EVIDENCE_FRAMES
from .serve import Source, SourceClosed, State

log = logging.getLogger("sorf.api")
WEB = Path(__file__).parent / "web"
# Swagger UI's files as the fastapi-offline package ships them (a current Swagger UI, which reads OpenAPI 3.1)
_OFFLINE = importlib.util.find_spec("fastapi_offline")
assert _OFFLINE is not None and _OFFLINE.origin is not None, "fastapi-offline is a dependency (pyproject.toml)"
SWAGGER_UI = Path(_OFFLINE.origin).parent / "static"
PREFIX = "/api/v1"
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")  # Swagger UI sets inline styles
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Cache-Control": "no-store"}  # fmt: skip
MAX_LIMIT = 1000

# query parameter types: bounded, printable text; closed vocabularies as enums
Text = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
# a delta id (deltas.delta_id), loosely
DELTA_ID_MIN, DELTA_ID_MAX, DELTA_ID_PATTERN = 1, 64, r"^[0-9a-zA-Z_-]+$"
IdText = Annotated[str, StringConstraints(min_length=DELTA_ID_MIN, max_length=DELTA_ID_MAX, pattern=DELTA_ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"rows per page, 1-{MAX_LIMIT}")]
Offset = Annotated[int, Query(ge=0, le=2**40, description="rows to skip")]
Time = Annotated[datetime | None, Query(description="ISO 8601; without a zone, UTC")]
SeverityQ = Literal[SEVERITIES]  # type: ignore[valid-type]
CategoryQ = Literal[CATEGORIES]  # type: ignore[valid-type]
AccessQ = Literal[ACCESS_CLASSES]  # type: ignore[valid-type]
DirectionQ = Literal["request", "response"]
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": schema.Error} for s in (400, 401, 404, 409, 410, 422, 503)}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = " ".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path"))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid"))
    return "invalid request: " + "; ".join(parts)


def _utc(value: datetime | None, name: str) -> datetime | None:
    """A time in UTC, as the database keeps them; 422 for one whose offset takes it outside years 1-9999."""
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise HTTPException(422, f"{name}: {value.isoformat()} is outside years 1-9999 in UTC") from None


def _known_parameters(request: Request) -> None:
    """422 for a query parameter the endpoint does not take: a misspelt filter (`severty`) must not filter nothing."""
    route = request.scope.get("route")
    known = {p.alias for p in route.dependant.query_params} if route is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no parameters"
        raise HTTPException(
            422, f"unknown parameter {', '.join(repr(u[:40]) for u in unknown[:5])} (this takes: {takes})"
        )


def _host(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise HTTPException(422, f"host: {text!r} is not an IP address") from None


def create_app(db: str, zones: str, token: str | None = None, source: Source | None = None) -> FastAPI:
    """The app for one database and zone file; raises ZoneFileError or DatabaseError before serving anything."""
    src = source or Source(db, zones)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        src.start()
        yield
        src.close()

    app = FastAPI(
        dependencies=[Depends(_known_parameters)],
        title="sorf", version=str(report.VERSION), lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Observed conduits between IEC 62443 zones, the deltas from the declared ones, and the "
        "frames that prove them. Read-only. docs/api.md describes every endpoint.",
    )  # fmt: skip
    app.state.source = src
    _protect(app, token)
    _errors(app)
    _pages(app)
    _analysis_routes(app, src)
    _row_routes(app, src)
    _delta_routes(app, src)
    return app


# --- middleware and errors ----------------------------------------------------------------------------------------


def _protect(app: FastAPI, token: str | None) -> None:
    expected = token.encode() if token else None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        if expected is not None and path.startswith("/api/") and not _authorized(request, expected):
            response = _error(401, "this server needs its token: send 'Authorization: Bearer <token>'")
            response.headers["WWW-Authenticate"] = "Bearer"
            return _secure(response, path)
        return _secure(await call_next(request), path)


def _authorized(request: Request, expected: bytes) -> bool:
    """`Authorization: Bearer <token>` (the scheme in any case, RFC 9110), the token compared in constant time."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected)


def _secure(response: Response, path: str) -> Response:
    response.headers["Content-Security-Policy"] = DOCS_CSP if path.startswith("/docs") else CSP
    for k, v in HEADERS.items():
        response.headers.setdefault(k, v)
    return response


def _errors(app: FastAPI) -> None:
    """Every error is `{"error": {"status", "message"}}`, with the security headers: the handler of an unexpected
    exception answers outside the middleware that adds them."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _secure(_error(422, _validation_message(exc)), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # 405's Allow, 401's WWW-Authenticate
        return _secure(response, request.url.path)

    @app.exception_handler(SourceClosed)
    async def closed(request: Request, exc: SourceClosed):
        return _secure(_error(503, str(exc)), request.url.path)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # logged here, never shown as a traceback
        log.exception("internal error")
        return _secure(_error(500, f"internal error: {type(exc).__name__}"), request.url.path)


# --- the page, and the API's own documentation ------------------------------------------------------------------------

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sorf API</title>
<link rel="stylesheet" href="/docs/swagger/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger/swagger-ui-bundle.js"></script><script src="/docs/init.js"></script></body></html>
"""
DOCS_INIT = "window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui', validatorUrl: null});\n"


def _pages(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(WEB / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return HTMLResponse(DOCS_HTML)

    @app.get("/docs/init.js", include_in_schema=False)
    def docs_init():
        return Response(DOCS_INIT, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.mount("/docs/swagger", StaticFiles(directory=SWAGGER_UI), name="swagger")


# --- the analysis -----------------------------------------------------------------------------------------------------


def _health(src: Source, s: State) -> dict:
    a = s.analysis
    size = src.stored_bytes()
    return {
        "status": "ok" if s.source is not None else "waiting",
        "schema_version": SCHEMA_VERSION,
        "site": a.site,
        "database": src.db,
        "database_bytes": size,
        "zone_file": a.zone_file,
        "statement": report.STATEMENT,
        "window": report.window_json(a.window),
        "summary": s.summary,
        "rows": s.rows,
        "last_capture_at": report.iso(s.last_capture_at),
        "data_as_of": report.iso(s.data_as_of),
        "analysed_at": report.iso(s.analysed_at),
        "problems": list(src.problems),
        "sensors": [{**x, "last_interval_at": report.iso(x["last_interval_at"])} for x in s.sensors],
    }


def _analysis_routes(app: FastAPI, src: Source) -> None:
    @app.get(f"{PREFIX}/health", response_model=schema.Health, responses=ERRORS, tags=["analysis"])
    def health():
        """Schema version, database size and row counts, the observation window, and how fresh the data is."""
        with src.current() as s:
            return _health(src, s)

    @app.get(f"{PREFIX}/zones", response_model=schema.ZoneList, responses=ERRORS, tags=["analysis"])
    def zones():
        """The declared zones, with the hosts observed in each."""
        with src.current() as s:
            items = [report.zone_json(z) for z in s.analysis.zones]
            return {"site": s.analysis.site, "total": len(items), "items": items}

    def listing(path: str, model, items_of, summary: str):
        @app.get(f"{PREFIX}/{path}", response_model=model, responses=ERRORS, tags=["analysis"], summary=summary)
        def handler():
            with src.current() as s:
                items = items_of(s)
                return {"total": len(items), "items": items}

    listing("conduits/declared", schema.DeclaredList, lambda s: [report.conduit_json(c) for c in s.analysis.conduits],
            "Declared conduits, and whether traffic they allow was observed")  # fmt: skip
    listing("conduits/observed", schema.ObservedList, lambda s: [report.observed_json(o) for o in s.analysis.observed],
            "Observed crossings: initiator zone -> responder zone, protocol, port, access classes")  # fmt: skip
    listing("intra-zone", schema.IntraList, lambda s: [report.intra_json(i) for i in s.analysis.intra_zone],
            "Traffic inside each zone, by protocol")  # fmt: skip

    @app.get(f"{PREFIX}/picture.svg", responses={200: {"content": {"image/svg+xml": {}}}, **ERRORS}, tags=["analysis"])
    def picture():
        """The zone picture: zones, declared conduits, observed crossings coloured by their worst delta."""
        with src.current() as s:
            return Response(s.picture(), media_type="image/svg+xml")


def _row_routes(app: FastAPI, src: Source) -> None:
    @app.get(f"{PREFIX}/captures", response_model=schema.CaptureList, responses=ERRORS, tags=["data"])
    def captures():
        """The capture files ingested, in ingest order."""
        with src.current() as s:
            cur = s.cursor()
            cur.execute("SELECT * EXCLUDE (first_ts, last_ts), first_ts, last_ts FROM captures ORDER BY capture_id")
            names = [d[0] for d in cur.description]
            items = [queries.row_json(names, r) for r in cur.fetchall()]
            return {"total": len(items), "items": items}

    @app.get(f"{PREFIX}/assets", response_model=schema.AssetPage, responses=ERRORS, tags=["data"])
    def assets(host: Text = None, zone: Text = None, limit: Limit = 100, offset: Offset = 0):
        """Every address seen, with its zone (none: in no declared zone), MACs, VLANs, roles and identity."""
        with src.current() as s:
            return queries.page(
                s.cursor(), "assets", {"host": _host(host), "zone": zone}, limit, offset, s.totals
            ).json()

    @app.get(f"{PREFIX}/flows", response_model=schema.FlowPage, responses=ERRORS, tags=["data"])
    def flows(
        host: Text = None, zone: Text = None, from_zone: Text = None, to_zone: Text = None, protocol: Text = None,
        port: Annotated[int | None, Query(ge=0, le=65535)] = None,
        capture_id: Annotated[int | None, Query(ge=0, le=2**31)] = None,
        since: Time = None, until: Time = None, limit: Limit = 100, offset: Offset = 0,
    ):  # fmt: skip
        """Flows (docs/schema.md) with the zone of each end, filtered, earliest first."""
        values = {"host": _host(host), "zone": zone, "from_zone": from_zone, "to_zone": to_zone, "protocol": protocol,
                  "port": port, "capture_id": capture_id,
                  "since": _utc(since, "since"), "until": _utc(until, "until")}  # fmt: skip
        with src.current() as s:
            return queries.page(s.cursor(), "flows", values, limit, offset, s.totals).json()

    @app.get(f"{PREFIX}/operations", response_model=schema.OperationPage, responses=ERRORS, tags=["data"])
    def operations(
        host: Text = None, zone: Text = None, from_zone: Text = None, to_zone: Text = None, protocol: Text = None,
        function: Text = None, access: AccessQ | None = None, direction: DirectionQ | None = None,
        capture_id: Annotated[int | None, Query(ge=0, le=2**31)] = None, since: Time = None, until: Time = None,
        limit: Limit = 100, offset: Offset = 0,
    ):  # fmt: skip
        """Decoded operations (docs/schema.md) with their flow's ends and zones, filtered, earliest first.
        `function` is a function name (case-insensitive) or code."""
        values = {"host": _host(host), "zone": zone, "from_zone": from_zone, "to_zone": to_zone, "protocol": protocol,
                  "function": function, "access": access, "direction": direction, "capture_id": capture_id,
                  "since": _utc(since, "since"), "until": _utc(until, "until")}  # fmt: skip
        with src.current() as s:
            return queries.page(s.cursor(), "operations", values, limit, offset, s.totals).json()


# --- deltas -----------------------------------------------------------------------------------------------------------


def _matches(d: dict, f: dict) -> bool:
    """Does a delta (its JSON) pass the filters of GET /deltas?"""
    if f["id"] and d["id"] not in f["id"]:
        return False
    if f["category"] and d["category"] not in f["category"]:
        return False
    if f["severity"] and d["severity"] not in f["severity"]:
        return False
    if f["min_severity"] and severity_rank(d["severity"]) < severity_rank(f["min_severity"]):
        return False
    if f["zone"] and f["zone"] not in (d["from_zone"], d["to_zone"], *d["peer_zones"]):
        return False
    if f["protocol"] and f["protocol"] != d["protocol"] and f["protocol"] not in d["protocols"]:
        return False
    if f["access"] and f["access"] not in d["access"]:
        return False
    host = f["host"]
    if host and host != d["host"] and not any(host in (p["initiator"], p["responder"]) for p in d["host_pairs"]):
        return False
    if f["since"] and (d["last_seen"] is None or d["last_seen"] < f["since"]):
        return False
    return not (f["until"] and (d["first_seen"] is None or d["first_seen"] > f["until"]))


def _delta_routes(app: FastAPI, src: Source) -> None:
    @app.get(f"{PREFIX}/deltas", responses={200: {"model": schema.DeltaPage}, **ERRORS}, tags=["deltas"])
    def deltas(
        category: Annotated[list[CategoryQ] | None, Query()] = None,
        severity: Annotated[list[SeverityQ] | None, Query()] = None, min_severity: SeverityQ | None = None,
        zone: Text = None, protocol: Text = None, access: AccessQ | None = None, host: Text = None,
        since: Time = None, until: Time = None, id: Annotated[list[IdText] | None, Query(max_length=500)] = None,
        limit: Limit = 100, offset: Offset = 0,
    ):  # fmt: skip
        """Deltas, worst first. `category` and `severity` may repeat; `zone` matches either end (or, for a host in no
        zone, a zone it talked to); `host` the host or one of the host pairs listed; `id` (may repeat) these deltas."""
        f = {"id": set(id) if id else None, "category": category, "severity": severity, "min_severity": min_severity,
             "zone": zone, "protocol": protocol, "access": access, "host": _host(host),
             "since": report.iso(_utc(since, "since")), "until": report.iso(_utc(until, "until"))}  # fmt: skip
        with src.current() as s:
            chosen = [i for i, d in enumerate(s.deltas) if _matches(d, f)]
            items = b",".join(s.delta_bytes[i] for i in chosen[offset : offset + limit])
        head = orjson.dumps({"total": len(chosen), "limit": limit, "offset": offset})[:-1]
        return Response(head + b',"items":[' + items + b"]}", media_type="application/json")

    @app.get(f"{PREFIX}/deltas/{{delta_id}}", response_model=schema.DeltaDetail, responses=ERRORS, tags=["deltas"])
    def delta(delta_id: Annotated[str, _DeltaId], limit: Limit = 100, offset: Offset = 0):
        """One delta, with the rows behind it (the operations or flows it counts), paginated."""
        with src.current() as s:
            d, body = _find(s, delta_id)
            kind, rows = queries.evidence_page(s.cursor(), d, limit, offset, s.totals)
        ends = {k: f"frame.number == {e.frame}" for k, e in (("first", d.traffic.first), ("last", d.traffic.last)) if e}
        return {"delta": body, "evidence": {"kind": kind, **rows.json()}, "wireshark": ends,
                "pcap": f"{PREFIX}/deltas/{d.id}/evidence.pcap" if d.traffic.flows else None}  # fmt: skip

    @app.get(
        f"{PREFIX}/deltas/{{delta_id}}/evidence.pcap", tags=["deltas"],
        responses={200: {"content": {"application/x-pcapng": {}}}, **ERRORS}, response_class=Response,
    )  # fmt: skip
    def evidence_pcap(delta_id: Annotated[str, _DeltaId]):
        """The frames behind a delta, copied from the original capture files (pcapng, original timestamps): its
        evidence frames, then the frames of its flows. 404 or 409 if a capture file has moved or changed, 410 if it
        was a ring file that rotated away."""
        with src.current() as s:
            d, _ = _find(s, delta_id)
            data = export(s, d)
        headers = {"Content-Disposition": f'attachment; filename="sorf-evidence-{d.id}.pcapng"'}
        return Response(data, media_type="application/x-pcapng", headers=headers)


_DeltaId = PathParam(min_length=DELTA_ID_MIN, max_length=DELTA_ID_MAX, pattern=DELTA_ID_PATTERN)


def _find(s: State, delta_id: str):
    found = s.delta_by_id.get(delta_id)
    if found is None:
        raise HTTPException(404, f"no delta {delta_id!r} in the current analysis (GET {PREFIX}/deltas lists them)")
    return found


def export(s: State, d) -> bytes:
    """The evidence pcap of one delta, as bytes; HTTPException 404/409 when a capture file moved or changed."""
    from sensor import evidence  # reads capture files: only for this endpoint

    found = queries.delta_evidence(s.cursor(), d, EVIDENCE_FLOWS, EVIDENCE_FRAMES)
    if found is None:
        raise HTTPException(404, f"delta {d.id} has no frames: {d.message}")
    out = io.BytesIO()
    try:
        evidence.write_rows(found.captures, found.flows, found.frames, out, found.max_frames)
    except (
        evidence.EvidenceError
    ) as exc:  # a capture file that cannot be read conflicts with its record, as a changed one
        raise HTTPException(409 if exc.status >= 500 else exc.status, str(exc)) from None
    return out.getvalue()
