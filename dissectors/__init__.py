"""Protocol dissectors: sans-IO, one module per protocol, found through REGISTRY."""

from .base import ACCESS_CLASSES, IDENTITY_FIELDS, Anomaly, Dissector, Identity, Operation, Record, Registry
from .dnp3 import DNP3
from .modbus import ModbusTCP

REGISTRY = Registry([ModbusTCP, DNP3])

__all__ = [
    "ACCESS_CLASSES", "IDENTITY_FIELDS", "Anomaly", "Dissector", "Identity", "Operation", "Record", "Registry",
    "REGISTRY", "ModbusTCP", "DNP3",
]  # fmt: skip
