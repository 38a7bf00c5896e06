"""The zone file: a valid one loads, every invalid one names file, line and field, nesting resolves.

docs/zones.md describes the format; analyser/zones.py implements it.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
import yaml

from analyser import zones
from analyser.zones import ZoneFileError, known_protocols, load_zone_file, parse_zone_file
from tests.helpers.paths import ROOT

VALID = """\
site: Example Water Works
zones:
  - name: enterprise
    networks: [10.0.0.0/16]
    contact: true
  - name: supervisory
    networks: [10.20.1.0/24]
    security_level: 2
    consequence: major
  - name: control
    networks: [10.20.2.0/24, 10.20.3.5]
    security_level: 3
    consequence: catastrophic
conduits:
  - name: hmi-to-plc
    from: supervisory
    to: control
    allow:
      - {protocol: modbus, access: [read, write]}
      - {protocol: enip, access: [read]}
  - name: historian-pull
    from: enterprise
    to: supervisory
    allow:
      - {protocol: https, ports: [443]}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ZoneFileError) as info:
        parse_zone_file(text, "zones.yaml")
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def edit(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new, 1)


def test_issue_example_loads():
    zf = parse_zone_file(VALID, "zones.yaml")
    assert zf.site == "Example Water Works"
    assert [z.name for z in zf.zones] == ["enterprise", "supervisory", "control"]
    control = zf.zones[2]
    assert control.networks == [ipaddress.ip_network("10.20.2.0/24"), ipaddress.ip_network("10.20.3.5/32")]
    assert control.consequence == "catastrophic" and control.security_level == 3 and not control.contact
    assert zf.zones[0].contact and zf.zones[0].consequence is None and zf.zones[0].effective_consequence == "moderate"
    c = zf.conduits[0]
    assert (c.name, c.from_, c.to) == ("hmi-to-plc", "supervisory", "control")
    assert c.allow[0].protocol == "modbus" and c.allow[0].access == ["read", "write"] and c.allow[0].ports is None
    assert zf.conduits[1].allow[0].access is None and zf.conduits[1].allow[0].ports == [(443, 443)]


def test_documented_example_loads():
    """docs/zones.md carries a complete example; it must stay valid."""
    text = (ROOT / "docs" / "zones.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    complete = [b for b in blocks if b.startswith("site:")]
    assert complete, "docs/zones.md has no complete example starting with 'site:'"
    zf = parse_zone_file(complete[0], "docs/zones.md")
    assert len(zf.zones) >= 4 and len(zf.conduits) >= 3


def test_rule_matching_and_shorthands():
    zf = parse_zone_file(
        "zones:\n  - {name: a, networks: 10.1.0.0/16}\n  - {name: b, networks: [10.2.0.0/16]}\n"
        "conduits:\n  - name: c\n    from: a\n    to: b\n    allow:\n"
        "      - {protocol: Modbus, access: read, ports: 502}\n"
        "      - {protocol: opcua, ports: [4840, '5000-5100']}\n",
        "z.yaml",
    )
    modbus, opcua = zf.conduits[0].allow
    assert modbus.protocol == "modbus" and modbus.access == ["read"] and modbus.ports == [(502, 502)]
    assert modbus.matches("modbus", 502) and not modbus.matches("modbus", 503) and not modbus.matches("s7comm", 502)
    assert opcua.matches("opcua", 5050) and opcua.matches("opcua", 4840) and not opcua.matches("opcua", 5101)
    assert not opcua.matches("opcua", None)
    assert zf.zones[0].networks == [ipaddress.ip_network("10.1.0.0/16")]


def test_known_protocols_are_the_sensors_names():
    names = known_protocols()
    assert {
        "modbus",
        "dnp3",
        "https",
        "ssh",
        "rdp",
        "dns",
        "s7comm",
        "s7comm_plus",
        "enip",
        "cip_io",
        "unknown",
        "icmp",
    } <= names


# --- every validation error names file, line and field ------------------------------------------------------------


def test_unknown_zone_in_conduit():
    assert errors(edit("    to: control\n", "    to: contrl\n")) == [
        "zones.yaml:17: conduits[0].to: unknown zone 'contrl' in conduit 'hmi-to-plc'; did you mean 'control'?"
    ]
    assert errors(edit("    from: enterprise\n", "    from: dmz\n")) == [
        (
            "zones.yaml:22: conduits[1].from: unknown zone 'dmz' in conduit 'historian-pull'; "
            "the zones are enterprise, supervisory, control"
        )
    ]


def test_overlapping_networks_across_zones():
    assert errors(edit("[10.20.2.0/24, 10.20.3.5]", "[10.20.2.0/24, 10.20.1.0/24]")) == [
        (
            "zones.yaml:11: zones[2].networks[1]: overlapping networks: 10.20.1.0/24 is also in zone 'supervisory' "
            "(zones[1].networks[0]); two zones cannot share a network, nest a more specific one instead"
        )
    ]
    # an address and its /32 are the same network
    assert errors(edit("networks: [10.20.1.0/24]", "networks: [10.20.1.0/24, 10.20.3.5/32]")) == [
        (
            "zones.yaml:11: zones[2].networks[1]: overlapping networks: 10.20.3.5/32 is also in zone 'supervisory' "
            "(zones[1].networks[1]); two zones cannot share a network, nest a more specific one instead"
        )
    ]


def test_network_twice_in_one_zone():
    assert errors(edit("[10.20.2.0/24, 10.20.3.5]", "[10.20.2.0/24, 10.20.2.0/24]")) == [
        "zones.yaml:11: zones[2].networks[1]: network 10.20.2.0/24 is listed twice in zone 'control' (also networks[0])"
    ]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("10.20.2.0/33", "invalid network '10.20.2.0/33': expected CIDR notation (10.20.1.0/24) or an address"),
        ("10.20.2.1/24", "invalid network '10.20.2.1/24': host bits are set (did you mean 10.20.2.0/24?)"),
        ("10.20.2", "invalid network '10.20.2': expected CIDR notation (10.20.1.0/24) or an address"),
        ("plc-net", "invalid network 'plc-net': expected CIDR notation (10.20.1.0/24) or an address"),
    ],
)
def test_invalid_cidr(bad, message):
    assert errors(edit("[10.20.2.0/24, 10.20.3.5]", f"[10.20.2.0/24, {bad}]")) == [
        f"zones.yaml:11: zones[2].networks[1]: {message}"
    ]


def test_unknown_protocol():
    assert errors(edit("{protocol: enip, access: [read]}", "{protocol: modbsu, access: [read]}")) == [
        (
            "zones.yaml:20: conduits[0].allow[1].protocol: unknown protocol 'modbsu' "
            "(did you mean 'modbus'? the names are sorf's app_protocol values, see docs/zones.md)"
        )
    ]


def test_unknown_access_class():
    assert errors(edit("{protocol: enip, access: [read]}", "{protocol: enip, access: [read, writ]}")) == [
        (
            "zones.yaml:20: conduits[0].allow[1].access[1]: unknown access class 'writ' "
            "(expected read, write, control, program, diagnostic, session, other)"
        )
    ]


def test_unknown_consequence():
    assert errors(edit("consequence: major", "consequence: severe")) == [
        (
            "zones.yaml:9: zones[1].consequence: unknown consequence 'severe' "
            "(expected negligible, minor, moderate, major, catastrophic)"
        )
    ]


def test_duplicate_zone_name():
    assert errors(edit("conduits:\n", "  - {name: control, networks: [10.30.0.0/16]}\nconduits:\n")) == [
        "zones.yaml:14: zones[3].name: duplicate zone name 'control' (also zones[2])"
    ]


def test_duplicate_conduit_name():
    assert errors(edit("  - name: historian-pull\n", "  - name: hmi-to-plc\n")) == [
        "zones.yaml:21: conduits[1].name: duplicate conduit name 'hmi-to-plc' (also conduits[0])"
    ]


def test_missing_required_fields():
    assert errors(edit("    allow:\n      - {protocol: https, ports: [443]}\n", "")) == [
        "zones.yaml:21: conduits[1].allow: required field missing"
    ]
    assert errors(edit("    networks: [10.20.1.0/24]\n", "")) == [
        "zones.yaml:6: zones[1].networks: required field missing"
    ]
    assert errors(edit("      - {protocol: https, ports: [443]}", "      - {ports: [443]}")) == [
        "zones.yaml:25: conduits[1].allow[0].protocol: required field missing"
    ]
    assert errors("site: nothing\n") == ["zones.yaml:1: zones: required field missing"]


def test_unknown_field_and_wrong_types():
    assert errors(edit("    contact: true\n", "    contact: true\n    sl: 2\n")) == [
        (
            "zones.yaml:6: zones[0].sl: unknown field "
            "(expected name, networks, contact, security_level, consequence, description)"
        )
    ]
    assert errors(edit("security_level: 2", "security_level: 7")) == [
        "zones.yaml:8: zones[1].security_level: input should be less than or equal to 4, got 7"
    ]
    assert errors(edit("ports: [443]", "ports: [443, 70000]")) == [
        "zones.yaml:25: conduits[1].allow[0].ports[1]: invalid port 70000: ports are 0-65535, a range low-high"
    ]


def test_a_conduit_joins_two_zones():
    assert errors(edit("    to: control\n", "    to: supervisory\n")) == [
        "zones.yaml:17: conduits[0].to: a conduit joins two different zones, not 'supervisory' to itself"
    ]


def test_duplicate_yaml_key():
    assert errors(edit("    consequence: major\n", "    consequence: major\n    consequence: minor\n")) == [
        "zones.yaml:10: zones[1].consequence: duplicate key"
    ]


@pytest.mark.parametrize("loader", ["libyaml", "python"])
def test_yaml_syntax_error_has_its_line(loader, monkeypatch):
    """The line is the same with either PyYAML parser; the wording differs a little."""
    if loader == "python":
        monkeypatch.setattr(zones, "Loader", yaml.SafeLoader)
    else:
        assert yaml.__with_libyaml__, "PyYAML's wheels ship LibYAML: the install lost it"
    # the parser notices the unclosed list on the next line, and says where it started
    (problem,) = errors(edit("[10.20.2.0/24, 10.20.3.5]", "[10.20.2.0/24, 10.20.3.5"))
    assert re.fullmatch(
        r"zones\.yaml:12: YAML syntax error: .*expected ',' or '\]'.* "
        r"\(while parsing a flow sequence started at line 11\)",
        problem,
    )
    (problem,) = errors(edit("    security_level: 3\n", "    security_level: 3\n   bad: indentation\n"))
    assert re.fullmatch(
        r"zones\.yaml:13: YAML syntax error: .* \(while parsing a block collection started at line 3\)", problem
    )
    (problem,) = errors("zones:\n\t- name: a\n")
    assert re.fullmatch(r"zones\.yaml:2: YAML syntax error: found character .*that cannot start any token.*", problem)


def test_not_a_zone_file():
    assert errors("") == ["zones.yaml:1: the zone file is empty (expected site, zones and conduits)"]
    assert errors("- a\n- b\n") == ["zones.yaml:1: expected a mapping with site, zones and conduits, got a list"]


def test_every_problem_is_reported_at_once(tmp_path):
    bad = (
        VALID.replace("consequence: major", "consequence: huge")
        .replace("    to: control\n", "    to: contrl\n")
        .replace("{protocol: enip, access: [read]}", "{protocol: enip, access: [writ]}")
    )
    path = tmp_path / "plant-zones.yaml"
    path.write_text(bad)
    with pytest.raises(ZoneFileError) as info:
        load_zone_file(path)
    assert [p.split(": ")[0] for p in info.value.problems] == [f"{path}:9", f"{path}:17", f"{path}:20"]


# --- nesting ----------------------------------------------------------------------------------------------------------


def test_most_specific_network_wins():
    zf = parse_zone_file(
        "zones:\n"
        "  - {name: plant, networks: [10.20.0.0/16, 'fd00:20::/48']}\n"
        "  - {name: control, networks: [10.20.2.0/24, 'fd00:20:2::/64']}\n"
        "  - {name: sis, networks: [10.20.2.99, 'fd00:20:2::99']}\n"
        "  - {name: everything, networks: [0.0.0.0/0]}\n",
        "nested.yaml",
    )
    index = zf.index()

    def zone(ip: str) -> str | None:
        return index.lookup(ipaddress.ip_address(ip))

    assert zone("10.20.2.99") == "sis"  # a /32 inside a /24 inside a /16
    assert zone("10.20.2.98") == "control"
    assert zone("10.20.9.9") == "plant"
    assert zone("192.168.1.1") == "everything"
    assert zone("fd00:20:2::99") == "sis"
    assert zone("fd00:20:2::1") == "control"
    assert zone("fd00:20:0:9::1") == "plant"
    assert zone("fe80::1") is None  # no IPv6 default
