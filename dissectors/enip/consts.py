"""EtherNet/IP tables: encapsulation commands and their access classes, statuses, Common Packet Format item ids.

Command and status names follow Zeek ICSNPP's enip.log in upper snake case.
"""

from __future__ import annotations

# Encapsulation commands (CIP Vol. 2 Table 2-3.2) -> (name, access class). Codes not listed are reserved for
# future expansion; the legacy ranges are Rockwell's pre-standard commands, still seen on the wire.
COMMANDS: dict[int, tuple[str, str]] = {
    0x0000: ("NOP", "other"),
    0x0004: ("LIST_SERVICES", "diagnostic"),
    0x0063: ("LIST_IDENTITY", "diagnostic"),
    0x0064: ("LIST_INTERFACES", "diagnostic"),
    0x0065: ("REGISTER_SESSION", "session"),
    0x0066: ("UNREGISTER_SESSION", "session"),
    0x006F: ("SEND_RR_DATA", "other"),  # carries CIP: the cip rows say what it does
    0x0070: ("SEND_UNIT_DATA", "other"),
    0x0072: ("INDICATE_STATUS", "diagnostic"),
    0x0073: ("CANCEL", "other"),
    0x00C8: ("START_DTLS", "session"),  # Wireshark's name; added in later editions of the spec
    **{c: (f"LEGACY_0x{c:04X}", "other") for c in (0x0001, 0x0002, 0x0003, 0x0005, *range(0x0067, 0x006F), 0x0071,
                                                    *range(0x0074, 0x00C8))},
}  # fmt: skip

# encapsulation status (Vol. 2 Table 2-3.3), named as ICSNPP does; 0 (success) is None
STATUSES: dict[int, str] = {
    0x0001: "INVALID_UNSUPPORTED_COMMAND",
    0x0002: "INSUFFICIENT_MEMORY_RESOURCES",
    0x0003: "MALFORMED_OR_INCORRECT_DATA",
    0x0064: "INVALID_SESSION_HANDLE",
    0x0065: "INVALID_LENGTH",
    0x0069: "UNSUPPORTED_PROTOCOL_VERSION",
    0x006A: "CIP_SERVICE_NOT_ALLOWED",
}

# Common Packet Format item type ids
NULL_ADDRESS, CIP_IDENTITY, CONNECTED_ADDRESS, CONNECTED_DATA, UNCONNECTED_DATA = 0x0000, 0x000C, 0x00A1, 0x00B1, 0x00B2
LIST_SERVICES_ITEM, SEQUENCED_ADDRESS = 0x0100, 0x8002
MAX_LENGTH = 65511  # the largest encapsulated data length the spec allows
