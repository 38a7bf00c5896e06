"""Protocol dissectors: sans-IO, one module per protocol, found through REGISTRY."""

from .base import ACCESS_CLASSES, IDENTITY_FIELDS, Anomaly, Dissector, Identity, Operation, Record, Registry
from .modbus import ModbusTCP

REGISTRY = Registry([ModbusTCP])

__all__ = [
    "ACCESS_CLASSES", "IDENTITY_FIELDS", "Anomaly", "Dissector", "Identity", "Operation", "Record", "Registry",
    "REGISTRY", "ModbusTCP",
]  # fmt: skip
