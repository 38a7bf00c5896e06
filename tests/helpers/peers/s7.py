"""An S7comm server and client from python-snap7: `python -m tests.helpers.peers.s7 server|client HOST`.

The client connects (COTP, then S7 setup communication), reads and writes DB1 and the merkers, reads the CPU's
identity and order code (SZL) and exits 0. The server listens on port 102, so it runs as root in its namespace.
"""

from __future__ import annotations

import sys
import threading

from snap7.client import Client
from snap7.server import Server
from snap7.type import SrvArea

PORT = 102
DB = 1
# the client's requests, as sorf records them: (protocol, function_name)
REQUESTS = {("cotp", "CONNECTION_REQUEST"), ("cotp", "DISCONNECT_REQUEST")} | {
    ("s7comm", name) for name in ("SETUP_COMMUNICATION", "READ_VARIABLE", "WRITE_VARIABLE", "READ_SZL")
}


def serve(host: str) -> None:
    server = Server(log=False)
    areas = {SrvArea.DB: bytearray(64), SrvArea.MK: bytearray(16)}
    for area, data in areas.items():
        server.register_area(area, DB if area == SrvArea.DB else 0, data)
    server.start_to(host, PORT)
    threading.Event().wait()  # the server thread serves until the process is stopped


def client(host: str) -> None:
    c = Client()
    c.connect(host, 0, 1, PORT)
    c.db_write(DB, 4, bytearray(b"\x12\x34"))
    assert c.db_read(DB, 4, 2) == bytearray(b"\x12\x34")
    c.mb_write(2, 1, bytearray(b"\x01"))
    assert c.mb_read(2, 1) == bytearray(b"\x01")
    c.db_write_bool(DB, 8, 3, True)
    assert c.db_read_bool(DB, 8, 3)
    assert c.get_cpu_info().ModuleName  # SZL reads (userdata), which name the CPU
    assert c.get_order_code().OrderCode
    c.disconnect()


if __name__ == "__main__":
    {"server": serve, "client": client}[sys.argv[1]](sys.argv[2])
