"""EtherNet/IP: encapsulation on TCP/UDP 44818 (with the CIP it carries) and implicit I/O on UDP 2222.

One ``enip`` operation per encapsulation PDU (24-byte header + data), one ``cip`` operation per CIP message in
its SendRRData/SendUnitData items (dissectors/cip/), one ``cip_io`` operation per implicit I/O datagram.
ListIdentity replies (and Identity object attributes read directly from the device) become Identity records.

consts.py holds the tables, wire.py the wire layouts and the CPF item list, encapsulation.py the EtherNetIP
dissector, io.py CipIO, and bulk.py the bulk decoder of Logix tag polling.
"""

from .encapsulation import EtherNetIP
from .io import CipIO

__all__ = ["EtherNetIP", "CipIO"]
