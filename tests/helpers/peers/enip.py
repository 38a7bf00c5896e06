"""An EtherNet/IP server and client from cpppo: `python -m tests.helpers.peers.enip server|client HOST`.

The server is cpppo's simulated Logix controller with one tag (TAG, ten INTs). The client sends List Identity,
registers a session, reads the tag, writes an element, reads it back (each in an Unconnected Send), and gets
the Identity object's product name (Get Attribute Single); cpppo's clients return 0 only when every reply says
success.
"""

from __future__ import annotations

import sys

from cpppo.server.enip import client as tag_client
from cpppo.server.enip import get_attribute
from cpppo.server.enip import main as enip_server

PORT = 44818
TAG = "Tank1_Level"
# the client's requests, as sorf records them: (protocol, function_name), encapsulation commands and CIP services
REQUESTS = {("enip", "LIST_IDENTITY"), ("enip", "REGISTER_SESSION"), ("enip", "SEND_RR_DATA")} | {
    ("cip", name) for name in ("UNCONNECTED_SEND", "READ_DATA", "WRITE_DATA", "GET_ATTRIBUTES_SINGLE")
}


def serve(host: str) -> None:
    enip_server.main(["--no-config", "--no-udp", "--address", f"{host}:{PORT}", f"{TAG}=INT[10]"])


def client(host: str) -> None:
    address = f"{host}:{PORT}"
    tags = [f"{TAG}[0-3]", f"{TAG}[1]=(INT)42", f"{TAG}[1]"]
    assert tag_client.main(["--address", address, "--list-identity", *tags]) == 0
    assert get_attribute.main(["--address", address, "@1/1/7"]) == 0


if __name__ == "__main__":
    {"server": serve, "client": client}[sys.argv[1]](sys.argv[2])
