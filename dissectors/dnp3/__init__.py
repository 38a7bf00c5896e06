"""DNP3 (IEEE 1815) over TCP and UDP: link frames, transport reassembly, application layer.

Layers, as the sensor sees them:

- Link frames (0x05 0x64, LEN, CTRL, DST, SRC, header CRC, then user data in
  16-byte blocks each followed by its CRC). Over TCP they are framed with
  FramedStream (several per segment, split across segments); over UDP each
  datagram may hold several. Every CRC is checked (CRC-16/DNP); a frame with a
  bad CRC is reported as an ``bad_crc`` anomaly and not used further.
- Transport segments (FIN, FIR, 6-bit sequence), reassembled into application
  fragments per direction and per (source, destination) link address pair, up
  to MAX_FRAGMENT bytes.
- Application fragments: one Operation each, with function code, IIN on
  responses, object headers, and the contents of control (CROB, analog output),
  file and authentication objects where they tell what was done.

Function names are Zeek ICSNPP's (consts.zeek); control-block field names are
those of ICSNPP's dnp3_control.log, object names those of dnp3_objects.log.

The package: ``consts`` (the tables), ``crc`` (CRC-16/DNP), ``link`` (the link
frame's layout and length), ``objects`` (the object walk), ``dissector`` (the
flow's state machine, ``DNP3``) and ``bulk`` (the polling exchange in bulk).
"""

from .consts import FUNCTIONS, OBJECT_NAMES, OBJECT_SIZES, PACKED_BITS
from .crc import crc_dnp
from .dissector import DNP3, MAX_FRAGMENT
from .link import frame_length

__all__ = [
    "DNP3",
    "FUNCTIONS",
    "MAX_FRAGMENT",
    "OBJECT_NAMES",
    "OBJECT_SIZES",
    "PACKED_BITS",
    "crc_dnp",
    "frame_length",
]
