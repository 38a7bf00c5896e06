"""A CIP service's name and access class, a reply's status text: lookups over consts.py, memoised where hot."""

from __future__ import annotations

from .consts import COMMON_SERVICES, GENERAL_STATUS, OBJECT_FALLBACK, OBJECT_SERVICES, PROGRAM_CLASSES

_SERVICE_INFO: dict[tuple[int | None, int], tuple[str, str]] = {}  # memo of service_info


def service_info(class_id: int | None, service: int) -> tuple[str, str]:
    """(name, access class) of a CIP service (0x80 bit cleared) on an object class (None: unknown)."""
    found = _SERVICE_INFO.get((class_id, service))
    if found is None:
        if len(_SERVICE_INFO) >= 4096:
            _SERVICE_INFO.clear()
        found = _SERVICE_INFO[(class_id, service)] = _service_info(class_id, service)
    return found


def _service_info(class_id: int | None, service: int) -> tuple[str, str]:
    if service < 0x4B or service > 0x63:
        found = COMMON_SERVICES.get(service)
        if found is not None:
            if service in (0x08, 0x09) and class_id is not None:
                return OBJECT_SERVICES.get((class_id, service), found)
            return found
        kind = "VENDOR_SPECIFIC" if 0x32 <= service <= 0x4A else "RESERVED"
        return f"{kind}_0x{service:02X}", "other"
    if class_id is not None:
        found = OBJECT_SERVICES.get((class_id, service))
        if found is not None:
            return found
    found = OBJECT_FALLBACK.get(service)
    if found is None:
        found = (f"UNKNOWN_0x{service:02X}", "other")
    if class_id in PROGRAM_CLASSES:
        return found[0], "program"
    return found


def general_status(code: int) -> str | None:
    """The ``status`` of a reply with this general status code."""
    return GENERAL_STATUS.get(code, f"UNKNOWN_STATUS_0x{code:02X}") if code else None
