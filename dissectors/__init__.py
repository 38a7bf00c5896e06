"""Protocol dissectors: sans-IO, one module per protocol, found through REGISTRY."""

from .base import ACCESS_CLASSES, IDENTITY_FIELDS, Anomaly, Dissector, Identity, Operation, Record, Registry
from .dnp3 import DNP3
from .enip import CipIO, EtherNetIP
from .modbus import ModbusTCP
from .s7comm import S7comm

REGISTRY = Registry([ModbusTCP, DNP3, S7comm, EtherNetIP, CipIO])

__all__ = [
    "ACCESS_CLASSES", "IDENTITY_FIELDS", "Anomaly", "Dissector", "Identity", "Operation", "Record", "Registry",
    "REGISTRY", "ModbusTCP", "DNP3", "S7comm", "EtherNetIP", "CipIO",
]  # fmt: skip
