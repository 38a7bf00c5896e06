"""The zone file: zones, conduits and what each conduit allows (docs/zones.md).

The YAML is parsed once with PyYAML's composer, which keeps the start mark of
every node, and then validated with pydantic. Every problem, from a YAML syntax
error to a conduit naming an unknown zone, is reported as ``file:line: field:
message``; all problems are reported together, not just the first one.
"""

from __future__ import annotations

import difflib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import ErrorDetails

from sensor.ports import APP_PROTOCOLS
from sensor.schema import ACCESS_CLASSES

CONSEQUENCES = ("negligible", "minor", "moderate", "major", "catastrophic")
DEFAULT_CONSEQUENCE = "moderate"  # what severity assumes for a zone that does not state one

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # LibYAML when PyYAML has it: 4x faster on big files


def known_protocols() -> frozenset[str]:
    """Every app_protocol name the sensor can write (and so a zone file may name)."""
    return APP_PROTOCOLS


class ZoneFileError(ValueError):
    """The zone file is not valid: one ``file:line: field: message`` line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# --- field types -----------------------------------------------------------------------------------------------


def _listify(value: Any) -> Any:
    """A single value where a list is expected is a list of one (``access: read``)."""
    return [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value


def _network(value: Any) -> IPNetwork:
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a network in CIDR notation (10.20.1.0/24) or an address, got {value!r}")  # noqa: TRY004 (pydantic reports ValueError)
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"invalid network {value!r}: expected CIDR notation (10.20.1.0/24) or an address") from None
    raise ValueError(f"invalid network {value!r}: host bits are set (did you mean {loose}?)")


def _one_of(choices: tuple[str, ...], what: str):
    """A validator for a closed vocabulary: case-insensitive, the choices named in the error."""

    def check(value: str) -> str:
        v = value.strip().lower()
        if v not in choices:
            raise ValueError(f"unknown {what} {value!r} (expected {', '.join(choices)})")
        return v

    return check


def _protocol(value: str) -> str:
    v = value.strip().lower()
    known = known_protocols()
    if v in known or v.isdigit():  # a bare number is an IP protocol sorf has no name for
        return v
    close = difflib.get_close_matches(v, sorted(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown protocol {value!r} ({hint}the names are sorf's app_protocol values, see docs/zones.md)")


def _port_range(value: Any) -> tuple[int, int]:
    """A port (502) or an inclusive range ("5000-5100")."""
    if isinstance(value, bool):
        raise ValueError(f"invalid port {value!r}")  # noqa: TRY004 (pydantic reports ValueError)
    if isinstance(value, int):
        lo = hi = value
    elif isinstance(value, str) and value.count("-") == 1 and all(p.strip().isdigit() for p in value.split("-")):
        lo, hi = (int(p) for p in value.split("-"))
    elif isinstance(value, str) and value.strip().isdigit():
        lo = hi = int(value)
    else:
        raise ValueError(f"invalid port {value!r}: expected a number (502) or a range ('5000-5100')")
    if not (0 <= lo <= hi <= 65535):
        raise ValueError(f"invalid port {value!r}: ports are 0-65535, a range low-high")
    return lo, hi


def _name(value: str) -> str:
    v = value.strip()
    if not v:
        raise ValueError("a name cannot be empty")
    return v


Name = Annotated[str, AfterValidator(_name)]
Network = Annotated[IPNetwork, PlainValidator(_network)]
Access = Annotated[str, AfterValidator(_one_of(ACCESS_CLASSES, "access class"))]
Protocol = Annotated[str, AfterValidator(_protocol)]
Consequence = Annotated[str, AfterValidator(_one_of(CONSEQUENCES, "consequence"))]
Port = Annotated[tuple[int, int], PlainValidator(_port_range)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Zone(_Model):
    name: Name
    networks: Annotated[list[Network], BeforeValidator(_listify), Field(min_length=1)]
    contact: bool = False
    security_level: Annotated[int, Field(ge=0, le=4)] | None = None
    consequence: Consequence | None = None
    description: str | None = None

    @property
    def effective_consequence(self) -> str:
        return self.consequence or DEFAULT_CONSEQUENCE


class AllowRule(_Model):
    protocol: Protocol
    access: Annotated[list[Access], BeforeValidator(_listify), Field(min_length=1)] | None = None
    ports: Annotated[list[Port], BeforeValidator(_listify), Field(min_length=1)] | None = None

    def matches(self, protocol: str, port: int | None) -> bool:
        """Does a flow of this protocol to this responder port fall under the rule?"""
        if protocol != self.protocol:
            return False
        if self.ports is None:
            return True
        return port is not None and any(lo <= port <= hi for lo, hi in self.ports)

    def describe(self) -> str:
        out = self.protocol
        if self.ports:
            out += " port " + ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)
        out += " " + ("/".join(self.access) if self.access else "any access")
        return out


class Conduit(_Model):
    name: Name
    from_: Name = Field(alias="from")
    to: Name
    allow: Annotated[list[AllowRule], Field(min_length=1)]
    description: str | None = None


class ZoneFile(_Model):
    site: str | None = None
    zones: Annotated[list[Zone], Field(min_length=1)]
    conduits: list[Conduit] = Field(default_factory=list)
    path: str = Field(default="", exclude=True)  # set by load_zone_file, for messages

    def zone(self, name: str) -> Zone:
        return next(z for z in self.zones if z.name == name)

    def index(self) -> ZoneIndex:
        return ZoneIndex(self)


FIELDS = {  # model fields by where they sit, for "unknown field" messages
    "root": ("site", "zones", "conduits"),
    "zone": tuple(n for n in Zone.model_fields),
    "conduit": ("name", "from", "to", "allow", "description"),
    "allow": tuple(AllowRule.model_fields),
}


# --- longest-prefix match ----------------------------------------------------------------------------------------


class ZoneIndex:
    """Address -> zone, the most specific network winning (a /32 inside a /24 inside a /16)."""

    def __init__(self, zf: ZoneFile):
        # per IP version: [(prefixlen, {network int: zone name})], longest prefix first
        tables: dict[int, dict[int, dict[int, str]]] = {4: {}, 6: {}}
        for z in zf.zones:
            for net in z.networks:
                tables[net.version].setdefault(net.prefixlen, {})[int(net.network_address)] = z.name
        self.tables = {
            v: [
                (plen, (~((1 << (bits - plen)) - 1)) & ((1 << bits) - 1), nets)
                for plen, nets in sorted(t.items(), reverse=True)
            ]
            for v, t, bits in ((4, tables[4], 32), (6, tables[6], 128))
        }
        self.networks = {net: z.name for z in zf.zones for net in z.networks}

    def lookup(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        n = int(ip)
        for _plen, mask, nets in self.tables[ip.version]:
            zone = nets.get(n & mask)
            if zone is not None:
                return zone
        return None

    def network_of(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> IPNetwork | None:
        """The most specific declared network holding ip."""
        n = int(ip)
        for plen, mask, nets in self.tables[ip.version]:
            if (n & mask) in nets:
                return ipaddress.ip_network((n & mask, plen))
        return None


# --- loading and error reporting ---------------------------------------------------------------------------------


@dataclass
class _Lines:
    """Line (1-based) of every path in the YAML document: mapping keys and sequence items."""

    lines: dict[tuple, int]
    duplicates: list[tuple[tuple, int]]

    def line(self, loc: tuple) -> int:
        loc = tuple(loc)
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return self.lines.get(loc, 1)


def _walk(node: yaml.Node, path: tuple, out: _Lines) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else None
            if (*path, k) in out.lines:
                out.duplicates.append(((*path, k), key.start_mark.line + 1))
            else:
                out.lines[(*path, k)] = key.start_mark.line + 1
            _walk(value, (*path, k), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), out)


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(loc: tuple) -> str:
    """Which model a loc's last element is a field of."""
    if len(loc) == 1:
        return "root"
    if loc[0] == "zones" and len(loc) == 3:
        return "zone"
    if loc[0] == "conduits" and len(loc) == 3:
        return "conduit"
    if loc[0] == "conduits" and len(loc) == 5 and loc[2] == "allow":
        return "allow"
    return ""


def _message(err: ErrorDetails) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "missing":
        return "required field missing"
    if kind == "extra_forbidden":
        where = _where(loc)
        expected = f" (expected {', '.join(FIELDS[where])})" if where else ""
        return f"unknown field{expected}"
    if kind == "too_short":
        return "must not be empty"
    if kind in ("dict_type", "model_type"):
        return f"expected a mapping, got {err['input']!r}"
    if kind == "list_type":
        return f"expected a list, got {err['input']!r}"
    return f"{err['msg'][0].lower()}{err['msg'][1:]}, got {err['input']!r}"


def _items(data: dict, key: str) -> list[tuple[int, dict]]:
    value = data.get(key)
    return [(i, x) for i, x in enumerate(value) if isinstance(x, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _semantic(data: dict) -> list[tuple[tuple, str]]:
    """Problems across fields: duplicate names, unknown zones, shared networks. Works on
    the raw document, so that they are reported together with the field-level ones;
    a value that is itself invalid is skipped here (pydantic reports it)."""
    problems: list[tuple[tuple, str]] = []
    zones: dict[str, int] = {}
    owner: dict[IPNetwork, tuple[int, int]] = {}
    for i, z in _items(data, "zones"):
        name = _text(z.get("name"))
        if name is None:
            continue
        if name in zones:
            problems.append((("zones", i, "name"), f"duplicate zone name {name!r} (also zones[{zones[name]}])"))
            continue
        zones[name] = i
        nets = _listify(z.get("networks"))
        for j, raw in enumerate(nets if isinstance(nets, list) else []):
            try:
                net = _network(raw)
            except ValueError:
                continue
            if net in owner:
                oi, oj = owner[net]
                if oi == i:
                    msg = f"network {net} is listed twice in zone {name!r} (also networks[{oj}])"
                else:
                    other = data["zones"][oi]["name"].strip()
                    msg = (
                        f"overlapping networks: {net} is also in zone {other!r} (zones[{oi}].networks[{oj}]); "
                        "two zones cannot share a network, nest a more specific one instead"
                    )
                problems.append((("zones", i, "networks", j), msg))
            else:
                owner[net] = (i, j)
    names: dict[str, int] = {}
    for i, c in _items(data, "conduits"):
        name = _text(c.get("name")) or f"conduits[{i}]"
        if name in names:
            problems.append(
                (("conduits", i, "name"), f"duplicate conduit name {name!r} (also conduits[{names[name]}])")
            )
        else:
            names[name] = i
        ends = {key: _text(c.get(key)) for key in ("from", "to")}
        for key, zone in ends.items():
            if zone is not None and zone not in zones:
                close = difflib.get_close_matches(zone, list(zones), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                if not close and 0 < len(zones) <= 10:
                    hint = f"; the zones are {', '.join(zones)}"
                problems.append((("conduits", i, key), f"unknown zone {zone!r} in conduit {name!r}{hint}"))
        if ends["from"] is not None and ends["from"] == ends["to"]:
            problems.append(
                (("conduits", i, "to"), f"a conduit joins two different zones, not {ends['to']!r} to itself")
            )
    return problems


def parse_zone_file(text: str, path: str = "zones.yaml") -> ZoneFile:
    """Validate zone-file text; raises ZoneFileError naming path, line and field of every problem."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or "invalid YAML"
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            what += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        elif exc.context:
            what += f" ({exc.context})"
        raise ZoneFileError([f"{path}:{line}: YAML syntax error: {what}"]) from None
    except yaml.YAMLError as exc:
        raise ZoneFileError([f"{path}:1: YAML error: {exc}"]) from None
    finally:
        loader.dispose()
    if node is None or data is None:  # data is None whenever node is
        raise ZoneFileError([f"{path}:1: the zone file is empty (expected site, zones and conduits)"])
    if not isinstance(data, dict):
        raise ZoneFileError(
            [f"{path}:1: expected a mapping with site, zones and conduits, got a {type(data).__name__}"]
        )

    lines = _Lines({(): 1}, [])
    _walk(node, (), lines)
    problems: list[tuple[int, str]] = [(line, f"{_field(loc)}: duplicate key") for loc, line in lines.duplicates]
    zf: ZoneFile | None = None
    try:
        zf = ZoneFile.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append((lines.line(loc), f"{_field(loc)}: {_message(err)}" if loc else _message(err)))
    problems += [(lines.line(loc), f"{_field(loc)}: {msg}") for loc, msg in _semantic(data)]
    if problems or zf is None:  # zf is None only with a validation problem
        problems.sort(key=lambda p: p[0])
        raise ZoneFileError([f"{path}:{line}: {msg}" for line, msg in problems])
    return zf.model_copy(update={"path": path})


def load_zone_file(path: str | Path) -> ZoneFile:
    """Read and validate a zone file; OSError if it cannot be read, ZoneFileError if it is not valid."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ZoneFileError([f"{path}:1: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return parse_zone_file(text, str(path))
