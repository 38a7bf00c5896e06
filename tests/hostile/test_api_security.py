"""What `sorf serve` must never do, on the demo plant: answer without its token, drop its security headers,
turn a bad parameter into a 500 or a traceback, run request text as SQL, bind a network without a token, or
write anything.

Every API endpoint is taken from the app's own routes, so a new one is covered without editing this file.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import re
import socket
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from analyser import api
from analyser.api import CSP, PREFIX, create_app
from sensor.ingest import ingest
from sorf.cli import main as sorf
from tests.helpers.net import free_port
from tests.helpers.paths import ROOT

DEMO = ROOT / "captures" / "demo-plant.pcap"
ZONES = str(ROOT / "captures" / "demo-zones.yaml")
TOKEN = "s3cret"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
KB10 = "a" * 10_000
SQL_TEXTS = ("' OR 1=1 --", "x'); DROP TABLE flows; --")


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """The demo ingested afresh, and its sha256 before any app has seen it."""
    path = str(tmp_path_factory.mktemp("api-security") / "demo.duckdb")
    results = ingest([str(DEMO)], path)
    assert [r.status for r in results] == ["ok"]
    return path, _sha256(path)


@pytest.fixture(scope="module")
def client(db):
    """No token configured."""
    with TestClient(create_app(db[0], ZONES), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def locked(db):
    """token='s3cret'."""
    with TestClient(create_app(db[0], ZONES, token=TOKEN), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def delta_id(client) -> str:
    """A delta with frames behind it, so that its evidence.pcap exists."""
    items = client.get(f"{PREFIX}/deltas").json()["items"]
    return next(d["id"] for d in items if d["category"] != "unused_conduit")


@pytest.fixture(scope="module")
def endpoints(client, delta_id) -> list[str]:
    """Every GET route under /api/v1, with a real delta id in it."""
    paths = [r.path for r in client.app.routes if isinstance(r, APIRoute) and r.path.startswith(PREFIX + "/")]
    assert len(paths) >= 13, paths
    return [p.replace("{delta_id}", delta_id) for p in paths]


def _assert_error(r, status: int) -> str:
    """The error shape of every non-2xx answer; its message."""
    assert r.status_code == status, (r.request.url, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "message"}, body
    assert body["error"]["status"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    _assert_no_traceback(r)
    return body["error"]["message"]


def _assert_no_traceback(r) -> None:
    assert "Traceback" not in r.text and 'File "' not in r.text, r.text[:500]


# --- the token ----------------------------------------------------------------------------------------------------


def test_without_a_token_every_endpoint_answers(client, endpoints):
    for path in endpoints:
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])


def test_with_a_token_every_endpoint_needs_it(locked, endpoints):
    basic = "Basic " + base64.b64encode(f"sorf:{TOKEN}".encode()).decode()
    refused = {
        "none": {}, "wrong": {"Authorization": "Bearer nope"}, "longer": {"Authorization": f"Bearer {TOKEN}X"},
        "shorter": {"Authorization": f"Bearer {TOKEN[:-1]}"}, "basic": {"Authorization": basic},
        "no scheme": {"Authorization": TOKEN}, "empty bearer": {"Authorization": "Bearer "},
        "other header": {"X-Token": TOKEN},
    }  # fmt: skip
    for path in endpoints:
        for why, headers in refused.items():
            r = locked.get(path, headers=headers)
            message = _assert_error(r, 401)
            assert r.headers["WWW-Authenticate"].startswith("Bearer"), (path, why)
            assert "Authorization: Bearer" in message
        assert locked.get(path, params={"token": TOKEN}).status_code == 401, path  # never from the query string
        r = locked.get(path, headers=GOOD)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])


def test_paths_that_dodge_the_prefix_still_need_the_token(locked):
    """The guard looks at the decoded path the router sees: no spelling reaches the data without the token."""
    for path in ("/%61pi/v1/health", "/api/v1/health/", "/api//v1/health", "/api/v1/../v1/health", "//api/v1/health",
                 "/API/v1/health", "/static/../api/v1/health"):  # fmt: skip
        r = locked.get(path)
        assert r.status_code in (401, 404), (path, r.status_code)
        assert "items" not in r.text and "schema_version" not in r.text, path


def test_the_page_shell_is_served_without_the_token(locked):
    for path in ("/", "/openapi.json", *(f"/static/{f.name}" for f in sorted((ROOT / "analyser" / "web").iterdir()))):
        r = locked.get(path)
        assert r.status_code == 200, (path, r.status_code)
    # the shell carries no data: nothing of the site or its deltas is in it
    for path in ("/", "/static/app.js"):
        text = locked.get(path).text
        assert "Demo Water Works" not in text and "10.20.2." not in text, path


# --- headers --------------------------------------------------------------------------------------------------------


def test_the_csp_allows_only_self():
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    for source in " ".join(directives.values()).split():
        assert source in ("'self'", "'none'", "data:", "blob:"), source  # no host, no scheme, no unsafe-*


def test_every_answer_carries_the_security_headers(client, locked):
    answers = [  # (what, response, its status)
        ("page", client.get("/"), 200), ("static", client.get("/static/app.js"), 200),
        ("openapi", client.get("/openapi.json"), 200), ("api", client.get(f"{PREFIX}/health"), 200),
        ("api, no such delta", client.get(f"{PREFIX}/deltas/deadbeef0000"), 404),
        ("no such page", client.get("/nope"), 404),
        ("bad parameter", client.get(f"{PREFIX}/flows", params={"limit": 0}), 422),
        ("no token", locked.get(f"{PREFIX}/health"), 401), ("a write", client.post(f"{PREFIX}/health"), 405),
    ]  # fmt: skip
    for what, r, status in answers:
        assert r.status_code == status, what
        assert r.headers.get("Content-Security-Policy") == CSP, what
        assert r.headers.get("X-Content-Type-Options") == "nosniff", what
        assert r.headers.get("X-Frame-Options") == "DENY", what


def test_an_internal_error_is_plain_and_carries_the_headers(client, monkeypatch):
    """A 500 says what kind of error, never its text or a traceback, and keeps the headers of every answer."""

    def broken(*_args, **_kwargs):
        raise RuntimeError("detail that must not leave the server: /etc/sorf")

    monkeypatch.setattr(api.queries, "page", broken)
    r = client.get(f"{PREFIX}/flows")
    assert _assert_error(r, 500) == "internal error: RuntimeError"
    assert "/etc/sorf" not in r.text
    assert r.headers.get("Content-Security-Policy") == CSP
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert r.headers.get("X-Frame-Options") == "DENY"


# --- bad parameters ---------------------------------------------------------------------------------------------------

BAD = [  # (path, parameter, value): each must be refused with a 422 that names the parameter
    ("deltas", "severity", "hgh"), ("deltas", "min_severity", "hgh"), ("deltas", "category", "x"),
    ("deltas", "access", "writ"), ("operations", "access", "writ"), ("operations", "direction", "up"),
    *((p, "limit", v) for p in ("deltas", "flows", "operations", "assets") for v in (-1, 0, 1001, 10**12, "ten")),
    *((p, "offset", v) for p in ("deltas", "flows", "operations", "assets") for v in (-5, 2**40 + 1, "x")),
    *((p, t, v) for p in ("deltas", "flows", "operations") for t in ("since", "until")
      for v in ("yesterday", "2026-13-45", "2026-01-05T25:00:00", "")),
    ("flows", "port", 70000), ("flows", "port", -1), ("flows", "port", "http"),
    ("flows", "capture_id", -1), ("operations", "capture_id", -1), ("flows", "capture_id", 2**31 + 1),
    ("deltas", "host", "not-an-ip"), ("flows", "host", "10.0.0.300"), ("assets", "host", "' OR 1=1 --"),
]  # fmt: skip


def _text_parameters(client) -> list[tuple[str, str]]:
    """(path, name) of every free-text query parameter the document declares (string, no enum, no format)."""
    found = []
    for path, ops in client.get("/openapi.json").json()["paths"].items():
        for p in ops["get"].get("parameters", []):
            schemas = p["schema"].get("anyOf", [p["schema"]])
            schemas = [s.get("items", s) for s in schemas]
            if p["in"] == "query" and any(
                s.get("type") == "string" and not {"enum", "format"} & set(s) for s in schemas
            ):
                found.append((path, p["name"]))
    return found


@pytest.mark.parametrize(("path", "name", "value"), BAD, ids=[f"{p}-{n}={str(v)[:12]}" for p, n, v in BAD])
def test_a_bad_parameter_is_refused_by_name(client, path, name, value):
    r = client.get(f"{PREFIX}/{path}", params={name: value})
    message = _assert_error(r, 422)
    assert re.search(rf"\b{name}\b", message), message


def test_bad_text_is_refused_and_never_echoed_at_length(client):
    params = _text_parameters(client)
    names = {n for _, n in params}
    assert {"host", "zone", "from_zone", "to_zone", "protocol", "function"} <= names, names
    for path, name in params:
        for value in (KB10, "ab\x00cd", "ab\ncd", "ab\x1bcd", "\x7f"):
            r = client.get(path, params={name: value})
            message = _assert_error(r, 422)
            assert re.search(rf"\b{name}\b", message), message
            assert len(r.content) < 1000, (path, name, len(r.content))  # the 10 kB do not come back


def test_sql_text_is_only_a_value(client, db):
    params = _text_parameters(client)
    before = client.get(f"{PREFIX}/health").json()["rows"]
    for path, name in params:
        for value in SQL_TEXTS:
            r = client.get(path, params={name: value})
            if name == "host":
                assert "not an IP address" in _assert_error(r, 422)
            elif name == "id":  # a delta id has a pattern
                _assert_error(r, 422)
            else:
                assert r.status_code == 200, (path, name, r.status_code, r.text[:300])
                assert r.json()["total"] == 0, (path, name, value)
    assert client.get(f"{PREFIX}/health").json()["rows"] == before
    con = duckdb.connect(db[0], read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM flows").fetchone()[0] == before["flows"] == 17
    finally:
        con.close()


def test_a_bad_delta_id_is_refused(client):
    for bad in (*SQL_TEXTS, KB10, "x" * 65, "ab\x00", "ab\ncd", "../../etc/passwd"):
        for suffix in ("", "/evidence.pcap"):
            r = client.get(f"{PREFIX}/deltas/{quote(bad, safe='')}{suffix}")
            assert r.status_code in (404, 422), (bad[:20], suffix, r.status_code)
            _assert_error(r, r.status_code)
            assert len(r.content) < 1000
    message = _assert_error(client.get(f"{PREFIX}/deltas/deadbeef0000"), 404)
    assert "deadbeef0000" in message and "/deltas" in message


def test_edges_of_the_ranges_are_answered(client):
    """Values at the documented limits are valid: an answer, never a 500."""
    for path, params in [
        ("flows", {"limit": 1000, "offset": 2**40}), ("flows", {"port": 65535}), ("flows", {"port": 0}),
        ("flows", {"capture_id": 2**31}), ("operations", {"capture_id": 0}), ("deltas", {"offset": 10**12}),
        ("flows", {"since": "2026-01-05T08:00:30Z", "until": "2026-01-05T08:00:31+00:00"}),
        ("operations", {"since": "2026-01-05T09:00:30+01:00"}), ("deltas", {"until": "2026-01-05"}),
    ]:  # fmt: skip
        r = client.get(f"{PREFIX}/{path}", params=params)
        _assert_no_traceback(r)
        assert r.status_code == 200, (path, params, r.status_code, r.text[:200])


@pytest.mark.parametrize("path", ["flows", "operations", "deltas"])
def test_times_at_the_ends_of_the_calendar(client, path):
    """A valid ISO 8601 time with an offset whose UTC value falls outside year 1-9999: refused or answered."""
    for params in ({"since": "0001-01-01T00:00:00+01:00"}, {"until": "9999-12-31T23:59:59-01:00"}):
        r = client.get(f"{PREFIX}/{path}", params=params)
        _assert_no_traceback(r)
        assert r.status_code in (200, 422), (path, params, r.status_code, r.text[:200])


# --- read-only --------------------------------------------------------------------------------------------------------


def test_no_route_accepts_a_write(client, endpoints):
    for path in (*endpoints, "/"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            r = client.request(method, path, content=b"{}", headers={"Content-Type": "application/json"})
            _assert_error(r, 405)


# --- the lifespan -----------------------------------------------------------------------------------------------------


def test_lifespan_restart_serves(db):
    """An app whose lifespan ended and started again (a second `with TestClient(app)`, or schemathesis between two
    tests) must serve from a live state: Source.current() otherwise spins forever on the retired one."""
    app = create_app(db[0], ZONES)
    with TestClient(app) as c:
        assert c.get(f"{PREFIX}/health").status_code == 200
    with TestClient(app):
        state = app.state.source.state
        live = state.acquire()  # what Source.current() loops on; a request here would never return
        if live:
            state.release()
        assert live, "after a second startup the app serves a closed State: every request hangs at 100% CPU"


# --- `sorf serve` -----------------------------------------------------------------------------------------------------


@pytest.fixture
def no_serving(monkeypatch):
    """uvicorn.run replaced by a recorder: nothing listens."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    monkeypatch.delenv("SORF_TOKEN", raising=False)
    return calls


def test_serve_refuses_a_network_without_a_token(db, no_serving, capsys, monkeypatch):
    for host in ("0.0.0.0", "::", "10.20.1.5"):
        assert sorf(["serve", "--db", db[0], "--zones", ZONES, "--host", host, "--port", str(free_port())]) == 2
        err = capsys.readouterr().err
        assert f"refusing to serve on {host} without a token" in err and "SORF_TOKEN" in err and "--token" in err
    monkeypatch.setenv("SORF_TOKEN", "")  # empty is no token
    assert sorf(["serve", "--db", db[0], "--zones", ZONES, "--host", "0.0.0.0"]) == 2
    assert "without a token" in capsys.readouterr().err
    assert no_serving == []


def test_serve_with_sorf_token_binds_and_needs_it(db, no_serving, capsys, monkeypatch):
    monkeypatch.setenv("SORF_TOKEN", "from-env")
    port = free_port()
    assert sorf(["serve", "--db", db[0], "--zones", ZONES, "--host", "0.0.0.0", "--port", str(port)]) == 0
    [(app, kwargs)] = no_serving
    assert kwargs["host"] == "0.0.0.0" and kwargs["port"] == port
    assert "token required" in capsys.readouterr().out
    c = TestClient(app)  # no lifespan: nothing polls
    try:
        assert c.get(f"{PREFIX}/health").status_code == 401
        assert c.get(f"{PREFIX}/health", headers={"Authorization": "Bearer from-env"}).status_code == 200
    finally:
        app.state.source.close()


def test_serve_on_loopback_needs_no_token(db, no_serving):
    port = free_port()
    assert sorf(["serve", "--db", db[0], "--zones", ZONES, "--port", str(port)]) == 0
    [(app, kwargs)] = no_serving
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == port
    app.state.source.close()


def test_serve_says_when_the_port_is_taken(db, no_serving, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert sorf(["serve", "--db", db[0], "--zones", ZONES, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert no_serving == []


def test_serve_reports_a_bad_zone_file_by_line(db, no_serving, capsys, tmp_path):
    text = Path(ZONES).read_text()
    assert "{protocol: https, ports: [443]}" in text
    bad = tmp_path / "zones.yaml"
    bad.write_text(text.replace("{protocol: https, ports: [443]}", "{protocol: https, ports: [443], access: [writ]}"))
    line = next(i for i, s in enumerate(bad.read_text().splitlines(), 1) if "writ]" in s)
    assert sorf(["serve", "--db", db[0], "--zones", str(bad), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:{line}:" in err and "writ" in err, err
    assert no_serving == []


# --- the SQL text ---------------------------------------------------------------------------------------------------

SQL_CALLS = {"execute", "executemany", "sql", "query"}  # DuckDB connection and cursor methods that take SQL text
SQL_SOURCES = [ROOT / "analyser" / "queries.py", ROOT / "analyser" / "api.py"]
TABLES = {"KINDS", "PAGES"}  # module constants whose entries hold SQL fragments (table, filters, order, select)


class _Opaque(ast.AST):
    """A binding the check cannot see through: a function parameter, a loop variable, an unpacked value."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what


class _SqlCheck(ast.NodeVisitor):
    """The SQL text passed to a DuckDB call is a literal, or an f-string that interpolates only:
    - a module-level constant (built at import from literals and the store's column lists: no request in it);
    - `where`, bound only by `queries._where(...)` (constant clauses; values go in as $parameters);
    - an entry of a constant table (`k.table` with `k = KINDS[kind]`, `KINDS['flows'].order`);
    - a local bound only to text of these kinds (`rows = f"SELECT ... {k.table}{where} ..."`).
    A function parameter, a `.format()`, a `+` or a `%` never build SQL text."""

    def __init__(self, tree: ast.Module, filename: str):
        self.tree = tree
        self.filename = filename
        self.constants = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                          for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                          if isinstance(t, ast.Name)}  # fmt: skip
        self.problems: list[str] = []
        self.checked = 0
        self.function: ast.FunctionDef | ast.AsyncFunctionDef | None = None

    def run(self) -> _SqlCheck:
        self.visit(self.tree)
        return self

    def visit_FunctionDef(self, node):
        outer, self.function = self.function, node
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        if isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS and node.args:
            self.checked += 1
            self._text(node.args[0], f"{self.filename}:{node.lineno}", frozenset())
        self.generic_visit(node)

    def _bindings(self, name: str, seen: frozenset) -> list[ast.AST]:
        """What `name` is bound to in the current function (none if it is being checked already)."""
        scope = self.function
        if name in seen:
            return []
        if scope is None:
            return [_Opaque(f"{name} (unbound)")]
        args = scope.args
        found: list[ast.AST] = []
        if name in {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a}:
            found.append(_Opaque(f"{name} (a parameter)"))
        for n in ast.walk(scope):
            if isinstance(n, ast.Assign):
                for t in n.targets:
                    if isinstance(t, ast.Name) and t.id == name:
                        found.append(n.value)
                    elif isinstance(t, ast.Tuple) and any(isinstance(e, ast.Name) and e.id == name for e in t.elts):
                        whole = isinstance(n.value, (ast.Call, ast.Subscript))  # where, params = _where(); PAGES[k]
                        found.append(n.value if whole else _Opaque(f"{name} (unpacked)"))
            elif isinstance(n, (ast.AugAssign, ast.AnnAssign, ast.For, ast.NamedExpr, ast.comprehension, ast.With)):
                targets = [i.optional_vars for i in n.items] if isinstance(n, ast.With) else [n.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found.append(_Opaque(f"{name} ({type(n).__name__})"))
        return found or [_Opaque(f"{name} (unbound)")]

    def _text(self, node: ast.AST, at: str, seen: frozenset) -> None:
        """SQL text: a literal, a module constant, an f-string of allowed fields, or a local bound to these."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return
        if isinstance(node, ast.JoinedStr):
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    self._field(part.value, at, seen)
            return
        if isinstance(node, ast.Name) and node.id in self.constants:
            return
        if isinstance(node, ast.Name):
            for value in self._bindings(node.id, seen):
                self._text(value, at, seen | {node.id})
            return
        what = node.what if isinstance(node, _Opaque) else ast.unparse(node)[:60]
        self.problems.append(f"{at}: SQL text built from {what}")

    def _field(self, node: ast.AST, at: str, seen: frozenset) -> None:
        """One replacement field of an f-string of SQL."""
        if isinstance(node, ast.Name) and node.id in self.constants:
            return
        if isinstance(node, (ast.Attribute, ast.Subscript)) and self._table_entry(node, seen):
            return
        if isinstance(node, ast.Name):  # `where` from _where(); any local: SQL text, or an entry of a table
            for value in self._bindings(node.id, seen):
                from_where = (node.id == "where" and isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                              and value.func.id == "_where")  # fmt: skip
                if not from_where and not self._table_entry(value, seen):
                    self._text(value, at, seen | {node.id})
            return
        self.problems.append(f"{at}: f-string field {{{ast.unparse(node)[:60]}}} is not constant SQL")

    def _table_entry(self, node: ast.AST, seen: frozenset) -> bool:
        """TABLE[...] or TABLE[...].attr (any index), or the same through a local bound only to one."""
        if isinstance(node, (ast.Subscript, ast.Attribute)):
            return (isinstance(node.value, ast.Name) and node.value.id in TABLES) or self._table_entry(node.value, seen)
        if isinstance(node, ast.Name) and node.id not in self.constants:
            values = self._bindings(node.id, seen)
            return all(isinstance(v, ast.Subscript) and self._table_entry(v, seen | {node.id}) for v in values)
        return False


@pytest.mark.parametrize("source", SQL_SOURCES, ids=lambda p: p.name)
def test_sql_text_comes_only_from_constants(source):
    check = _SqlCheck(ast.parse(source.read_text()), source.name).run()
    assert check.checked > 0, "no DuckDB call found: the check no longer sees the SQL"
    assert check.problems == []


def test_the_sql_check_catches_request_text():
    """The check itself: SQL built from a request value, however it is spelled, is found."""
    code = """
KINDS = {}
def ok(cur, kind, values):
    k = KINDS[kind]
    where, params = _where(k, values)
    rows = f"SELECT {k.alias}.rowid FROM {k.table}{where}"
    cur.execute(f"SELECT * FROM ({rows}) ORDER BY {KINDS['flows'].order}", params)
def bad1(cur, zone):
    cur.execute(f"SELECT * FROM flows WHERE zone = '{zone}'")
def bad2(cur, zone):
    where = f" WHERE zone = '{zone}'"
    cur.execute(f"SELECT * FROM flows{where}")
def bad3(cur, zone):
    cur.execute("SELECT * FROM flows WHERE zone = '%s'" % zone)
def bad4(cur, zone):
    cur.sql("SELECT * FROM flows WHERE zone = '{}'".format(zone))
def bad5(cur, request):
    cur.execute(f"SELECT * FROM {request.table}")
"""
    check = _SqlCheck(ast.parse(code), "x.py").run()
    assert check.checked == 6
    assert sorted({int(p.split(":")[1]) for p in check.problems}) == [9, 12, 14, 16, 18], check.problems


# --- last: nothing above wrote to the database ------------------------------------------------------------------------


def test_zz_the_database_is_unchanged(db, client, locked):
    """Run last in this module (pytest keeps file order): every request above read, none wrote."""
    path, before = db
    assert client.get(f"{PREFIX}/health").status_code == 200
    assert _sha256(path) == before
    assert not Path(path + ".wal").exists()
    assert json.loads(client.get(f"{PREFIX}/health").text)["rows"]["flows"] == 17
