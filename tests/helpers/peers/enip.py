"""An EtherNet/IP server (cpppo) and clients (cpppo, pycomm3): `python -m tests.helpers.peers.enip server|client HOST`.

The server is cpppo's simulated Logix controller with one tag (TAG, ten INTs). cpppo's client sends List Identity,
registers a session, reads the tag, writes an element and reads it back, each in an Unconnected Send (it returns 0
only when every reply says success); pycomm3's then opens a connection (Large Forward Open), gets the Identity
object's product name over it (Get Attribute Single in Send Unit Data), closes it and unregisters its session.
"""

from __future__ import annotations

import sys

from cpppo.server.enip import client as tag_client
from cpppo.server.enip import main as enip_server
from pycomm3 import CIPDriver, Services

PORT = 44818
TAG = "Tank1_Level"
# the client's requests, as sorf records them: (protocol, function_name), encapsulation commands and CIP services
ENIP = ("LIST_IDENTITY", "REGISTER_SESSION", "SEND_RR_DATA", "SEND_UNIT_DATA", "UNREGISTER_SESSION")
CIP = ("UNCONNECTED_SEND", "READ_DATA", "WRITE_DATA", "LARGE_FORWARD_OPEN", "GET_ATTRIBUTES_SINGLE", "FORWARD_CLOSE")
REQUESTS = {("enip", name) for name in ENIP} | {("cip", name) for name in CIP}


def serve(host: str) -> None:
    enip_server.main(["--no-config", "--no-udp", "--address", f"{host}:{PORT}", f"{TAG}=INT[10]"])


def client(host: str) -> None:
    address = f"{host}:{PORT}"
    tags = [f"{TAG}[0-3]", f"{TAG}[1]=(INT)42", f"{TAG}[1]"]
    assert tag_client.main(["--address", address, "--list-identity", *tags]) == 0
    with CIPDriver(host) as connection:
        name = connection.generic_message(
            service=Services.get_attribute_single, class_code=1, instance=1, attribute=7, connected=True
        )
        assert name.error is None, name.error


if __name__ == "__main__":
    {"server": serve, "client": client}[sys.argv[1]](sys.argv[2])
