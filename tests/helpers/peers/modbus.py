"""A Modbus/TCP server and client from pymodbus: `python -m tests.helpers.peers.modbus server|client HOST`.

The client performs a fixed list of reads and writes (REQUESTS, as sorf records them), pausing halfway so that a
sensor committing every second writes the connection's flow while it is open and again once it has closed, and
exits 0.
"""

from __future__ import annotations

import sys
import time

from pymodbus.client import ModbusTcpClient
from pymodbus.server import StartTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

PORT = 502
DEVICE = 1
PAUSE_S = 1.5
# the client's requests, as sorf records them: (protocol, function_name)
REQUESTS = {("modbus", name) for name in (
    "READ_COILS", "READ_DISCRETE_INPUTS", "READ_HOLDING_REGISTERS", "READ_INPUT_REGISTERS", "WRITE_SINGLE_COIL",
    "WRITE_SINGLE_REGISTER", "WRITE_MULTIPLE_COILS", "WRITE_MULTIPLE_REGISTERS",
)}  # fmt: skip


def serve(host: str) -> None:
    bits = [SimData(address=0, count=64, values=False, datatype=DataType.BITS)]
    registers = [SimData(address=0, count=64, values=7, datatype=DataType.REGISTERS)]
    device = SimDevice(id=DEVICE, simdata=(bits, bits, registers, registers))
    StartTcpServer(device, address=(host, PORT))


def client(host: str) -> None:
    with ModbusTcpClient(host, port=PORT, timeout=3) as c:
        calls = (
            lambda: c.read_coils(0, count=8, device_id=DEVICE),
            lambda: c.read_discrete_inputs(0, count=8, device_id=DEVICE),
            lambda: c.read_holding_registers(0, count=4, device_id=DEVICE),
            lambda: c.read_input_registers(0, count=4, device_id=DEVICE),
            lambda: c.write_coil(3, True, device_id=DEVICE),
            lambda: c.write_register(5, 1234, device_id=DEVICE),
            lambda: c.write_coils(8, [True, False, True], device_id=DEVICE),
            lambda: c.write_registers(10, [1, 2, 3], device_id=DEVICE),
        )
        for n, call in enumerate(calls):
            if n == len(calls) // 2:
                time.sleep(PAUSE_S)
            reply = call()
            assert not reply.isError(), reply


if __name__ == "__main__":
    {"server": serve, "client": client}[sys.argv[1]](sys.argv[2])
