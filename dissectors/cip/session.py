"""CIP explicit messages: one ``cip`` operation per service, replies paired with their requests.

Every CIP message found in a SendRRData or SendUnitData item becomes one ``cip`` operation, and so does every
service embedded in a Multiple Service Packet or an Unconnected Send. ``CipSession`` is the per-flow state that
pairs replies with requests, since a CIP reply does not repeat the request path; ``Context`` is where the
EtherNet/IP dissector found the message.
"""

from __future__ import annotations

import struct
from collections import deque

from ..base import REQUEST, RESPONSE, Anomaly, Operation, Record
from ..layout import Layout
from .consts import CLASS_NAMES, CONNECTION_MANAGER, EXTENDED_STATUS, SYMBOL_CLASS
from .identity import identity_reply
from .names import general_status, service_info
from .path import Path, parse_path, request_path

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
# a message's first bytes: a request's service and path size; a reply's service (0x80 set), general status and
# additional status size (both sizes in 16-bit words)
REQUEST_HEAD = Layout("<", ("service", "B"), ("path_words", "B"))
REPLY_HEAD = Layout("<", ("service", "B"), ("reserved", "B"), ("general_status", "B"), ("status_words", "B"))
_TICKS = Layout("<", ("priority_tick", "B"), ("timeout_ticks", "B"))
_IDS = Layout("<", ("ot_connection_id", "I"), ("to_connection_id", "I"))
_CONNECTION = Layout("<", ("connection_serial", "H"), ("originator_vendor_id", "H"), ("originator_serial", "I"))
_FWD_OPEN = _TICKS + _IDS + _CONNECTION + Layout("<", ("timeout_multiplier", "B"), (None, "3x"), ("ot_rpi", "I"))
_FWD_OPEN_REPLY = _IDS + _CONNECTION + Layout("<", ("ot_api", "I"), ("to_api", "I"))
_FWD_CLOSE = _TICKS + _CONNECTION
_UCMM = _TICKS + Layout("<", ("message_size", "H"))  # Unconnected Send, up to the embedded message
MAX_DEPTH = 3  # containers in containers
MAX_PENDING = 512  # requests waiting for a reply, per flow
MAX_LIST = 64  # attribute ids kept in details


def _connection_id(value: int) -> str:
    return f"0x{value:08x}"


class _Request:
    """What a reply needs from its request: the service, the addressed class and path, the embedded requests."""

    __slots__ = (
        "attributes",
        "children",
        "class_id",
        "connection_routed",
        "fields",
        "inner",
        "routed",
        "service",
        "target",
    )  # fmt: skip

    def __init__(self, service: int, path: Path | None):
        self.service = service
        self.class_id = path.class_id if path is not None else None
        self.fields = path.fields if path is not None else {}
        self.target = path.text if path is not None else None
        self.children: list[_Request | None] | None = None  # Multiple Service Packet
        self.inner: _Request | None = None  # Unconnected Send
        self.routed = bool(path is not None and path.route)  # sent on to another module
        self.attributes: list[int] | None = None  # Get_Attribute_List
        self.connection_routed = True  # Forward Open: the connection path leaves the device (port segment)


class Context:
    """Where a CIP message was found: set by the ENIP dissector for each CPF data item."""

    __slots__ = ("command", "connected", "connection_id", "key", "routed", "sequence")

    def __init__(self, command: str, connected: bool, connection_id: str | None, sequence: int | None, key):
        self.command = command
        self.connected = connected
        self.connection_id = connection_id
        self.sequence = sequence
        self.key = key  # pairs a reply with its request: the CIP sequence count or the ENIP sender context
        self.routed = False  # inside an Unconnected Send with a route path, or on a routed connection


class CipSession:
    """Per-flow CIP state: pending requests (to pair replies) and the running container index."""

    def __init__(self) -> None:
        self.problems: list[Record] = []  # malformed parts found while decoding the current message
        self.pending: dict[object, deque[_Request]] = {}
        self.n_pending = 0
        self.index = 0
        self.routed_connections: dict[str, bool] = {}  # connection id -> opened through a route (port segment)

    # pairing -------------------------------------------------------------------------------------------------
    def _remember(self, key, req: _Request) -> None:
        queue = self.pending.get(key)
        if queue is None:
            queue = self.pending[key] = deque()
        queue.append(req)
        self.n_pending += 1
        if self.n_pending > MAX_PENDING:  # drop the oldest waiting request
            oldest = next(iter(self.pending))
            q = self.pending[oldest]
            q.popleft()
            self.n_pending -= 1
            if not q:
                del self.pending[oldest]

    def _pair(self, key) -> _Request | None:
        queue = self.pending.get(key)
        if not queue:
            return None
        req = queue.popleft()
        self.n_pending -= 1
        if not queue:
            del self.pending[key]
        return req

    # parsing -------------------------------------------------------------------------------------------------
    def _bad(self, details: dict | None, text: str) -> None:
        """A length that does not fit: noted on the row and reported as an anomaly."""
        if details is not None:
            details["malformed"] = text
        self.problems.append(Anomaly("cip", "malformed_pdu", text))

    def message(self, b: bytes, start: int, end: int, ctx: Context) -> list[Record]:
        """Records for the CIP message in b[start:end] (a CPF data item's payload)."""
        out: list[Record] = []
        if end - start < 2 and (end <= start or b[start] & 0x80):  # a request's service byte alone is kept
            out.append(Anomaly("cip", "malformed_pdu", f"CIP message of {end - start} bytes in {ctx.command}"))
            return out
        if b[start] & 0x80:
            req = self._pair(ctx.key) if ctx.key is not None else None
            self._reply(b, start, end, ctx, req, out, None, 0)
        else:
            req = self._request(b, start, end, ctx, out, None, 0)
            if req is not None and ctx.key is not None:
                self._remember(ctx.key, req)
        if self.problems:
            out.extend(self.problems)
            self.problems = []
        return out

    def _base_details(self, ctx: Context, container: int | None, position: int, is_container: bool) -> dict:
        """The first fields of a row. Only containers get a running number (``cip_index``, which their embedded
        rows' ``container_index`` refers to): a plain message leaves no trace in the session once its reply is
        paired, so that request/reply pairs can be decoded in bulk (EtherNetIP.bulk) without the session."""
        details: dict = {}
        if is_container:
            self.index += 1
            details["cip_index"] = self.index
        if container is not None:
            details["container_index"] = container
            details["service_index"] = position
        details["enip_command"] = ctx.command
        if ctx.connection_id is not None:
            details["connection_id"] = ctx.connection_id
        return details

    def _request(self, b: bytes, start: int, end: int, ctx: Context, out: list[Record], container: int | None,
                 position: int, depth: int = 0) -> _Request | None:  # fmt: skip
        if end - start < 2 and (container is not None or end <= start):
            out.append(Anomaly("cip", "malformed_pdu", f"embedded CIP request of {end - start} bytes"))
            return None
        # a message cut after its service byte still says what was asked (docs/protocols/enip.md, damaged PDUs)
        service, words = REQUEST_HEAD.unpack_from(b, start) if end - start >= 2 else (b[start], 1)
        path_end = start + 2 + 2 * words
        truncated = path_end > end
        if truncated:
            path_end = end
        path = request_path(b, start + 2, path_end)
        class_id = path.class_id
        if class_id is None and path.tag:
            class_id = SYMBOL_CLASS  # a tag path addresses the Logix Symbol object
        is_container = service == 0x0A or (class_id == CONNECTION_MANAGER and service == 0x52)
        details = self._base_details(ctx, container, position, is_container)
        if truncated:
            self._bad(details, "request path longer than the message")
        name, access = service_info(class_id, service)
        details.update(path.fields)
        cname = CLASS_NAMES.get(path.class_id) if path.class_id is not None else None
        if cname:
            details["class_name"] = cname
        if not path.complete and "malformed" not in details:
            details["path_undecoded"] = True  # a segment type sorf does not decode; the rest of the path is skipped
        op = Operation("cip", REQUEST, service, name, access, transaction_id=ctx.sequence, target=path.text,
                       details=details)  # fmt: skip
        if ctx.sequence is not None:
            details["cip_sequence_count"] = ctx.sequence
        out.append(op)
        req = _Request(service, path)
        req.class_id = class_id
        req.routed = req.routed or ctx.routed
        data = path_end
        if service == 0x0A:
            req.children = self._msp(b, data, end, ctx, out, details["cip_index"], True, depth, op, None)
        elif class_id == CONNECTION_MANAGER:
            if service in (0x54, 0x5B):
                req.connection_routed = self._forward_open(b, data, end, service == 0x5B, details)
            elif service == 0x4E:
                self._forward_close(b, data, end, details)
            if "connection_path" in details:  # the reply is about the same connection
                req.fields = {**req.fields, "connection_path": details["connection_path"]}
            elif service == 0x52:
                req.inner = self._unconnected_send(b, data, end, ctx, out, details["cip_index"], depth, details)
        elif class_id == SYMBOL_CLASS and service in (0x4C, 0x4D, 0x52, 0x53, 0x4E):
            self._tag_request(b, data, end, service, op, details)
        elif service == 0x03 and data + 2 <= end:  # Get_Attribute_List: count, attribute ids
            count = _U16.unpack_from(b, data)[0]
            op.quantity = count
            n = min(count, (end - data - 2) // 2, MAX_LIST)
            req.attributes = list(struct.unpack_from(f"<{n}H", b, data + 2))
            details["attribute_list"] = req.attributes
        return req

    def _msp(self, b: bytes, data: int, end: int, ctx: Context, out: list[Record], index: int, request: bool,
             depth: int, op: Operation, req: _Request | None) -> list[_Request | None] | None:  # fmt: skip
        """Multiple Service Packet: count, offsets (from the count field), embedded services."""
        if data + 2 > end:
            self._bad(op.details, "Multiple Service Packet without a service count")
            return None
        count = _U16.unpack_from(b, data)[0]
        op.quantity = count
        if data + 2 + 2 * count > end:
            self._bad(op.details, f"Multiple Service Packet claims {count} services in {end - data} bytes")
            return None
        offsets = struct.unpack_from(f"<{count}H", b, data + 2)
        children: list[_Request | None] = []
        for i, off in enumerate(offsets):
            s = data + off
            e = data + offsets[i + 1] if i + 1 < count else end
            if off < 2 + 2 * count or s > end or e > end or e < s:
                self._bad(None, f"Multiple Service Packet service {i + 1}: offset {off} outside the message")
                children.append(None)
                continue
            if depth >= MAX_DEPTH:
                children.append(None)
                continue
            if request:
                children.append(self._request(b, s, e, ctx, out, index, i + 1, depth + 1))
            else:
                known = req.children if req is not None and req.children is not None else ()
                child = known[i] if i < len(known) else None
                self._reply(b, s, e, ctx, child, out, index, i + 1, depth + 1)
        return children

    def _unconnected_send(self, b: bytes, data: int, end: int, ctx: Context, out: list[Record], index: int,
                          depth: int, details: dict) -> _Request | None:  # fmt: skip
        """Unconnected Send: priority/tick, timeout ticks, message size, message, pad, route path."""
        if data + 4 > end:
            self._bad(details, "Unconnected Send too short")
            return None
        _tick, _ticks, size = _UCMM.unpack_from(b, data)
        msg = data + 4
        route = msg + size + (size & 1)
        if route + 2 <= end:
            path = parse_path(b, route + 2, min(end, route + 2 + 2 * b[route]))
            if path.route:
                details["route"] = ", ".join(path.route)
        if msg + size > end:
            self._bad(details, "Unconnected Send message longer than the request")
            return None
        if depth >= MAX_DEPTH:
            return None
        saved = ctx.routed
        ctx.routed = saved or "route" in details
        try:
            return self._request(b, msg, msg + size, ctx, out, index, 1, depth + 1)
        finally:
            ctx.routed = saved

    def _forward_open(self, b: bytes, data: int, end: int, large: bool, details: dict) -> bool:
        """Forward Open request fields; True when the connection path routes on to another module."""
        n = _FWD_OPEN.size
        if data + n + (8 if large else 4) + 6 > end:
            self._bad(details, "Forward Open too short")
            return True
        _tick, _ticks, ot_id, to_id, serial, vendor, orig_serial, _mult, ot_rpi = _FWD_OPEN.unpack_from(b, data)
        pos = data + n
        if large:
            ot_params, to_rpi, to_params = struct.unpack_from("<III", b, pos)
            pos += 12
        else:
            ot_params, to_rpi, to_params = struct.unpack_from("<HIH", b, pos)
            pos += 8
        transport, words = b[pos], b[pos + 1]
        details.update({
            "ot_connection_id": _connection_id(ot_id), "to_connection_id": _connection_id(to_id),
            "connection_serial": serial, "originator_vendor_id": vendor, "originator_serial": f"0x{orig_serial:08x}",
            "ot_rpi": ot_rpi, "to_rpi": to_rpi, "ot_net_params": ot_params, "to_net_params": to_params,
            "transport_type_trigger": transport,
        })  # fmt: skip
        path = parse_path(b, pos + 2, min(end, pos + 2 + 2 * words))
        text = path.target()
        if text:
            details["connection_path"] = text  # what the connection reaches (target stays the request path)
        if path.route:
            details["connection_route"] = ", ".join(path.route)
        if path.tag:
            details["connection_symbol"] = path.tag
        return bool(path.route) or not path.complete

    def _forward_close(self, b: bytes, data: int, end: int, details: dict) -> None:
        if data + _FWD_CLOSE.size + 2 > end:
            self._bad(details, "Forward Close too short")
            return
        _tick, _ticks, serial, vendor, orig_serial = _FWD_CLOSE.unpack_from(b, data)
        details.update({"connection_serial": serial, "originator_vendor_id": vendor,
                        "originator_serial": f"0x{orig_serial:08x}"})  # fmt: skip
        pos = data + _FWD_CLOSE.size
        path = parse_path(b, pos + 2, min(end, pos + 2 + 2 * b[pos]))
        text = path.target()
        if text:
            details["connection_path"] = text

    @staticmethod
    def _tag_request(b: bytes, data: int, end: int, service: int, op: Operation, details: dict) -> None:
        """Logix tag services: element count (quantity), data type, fragment offset."""
        if service in (0x4C, 0x52):  # Read Tag (Fragmented): elements [, offset]
            if data + 2 <= end:
                op.quantity = _U16.unpack_from(b, data)[0]
            if service == 0x52 and data + 6 <= end:
                details["offset"] = _U32.unpack_from(b, data + 2)[0]
        elif service in (0x4D, 0x53):  # Write Tag (Fragmented): type [, struct handle], elements [, offset]
            if data + 4 > end:
                return
            dtype = _U16.unpack_from(b, data)[0]
            pos = data + 2
            if dtype == 0x02A0 and pos + 2 <= end:  # structure: followed by the structure handle
                details["structure_handle"] = _U16.unpack_from(b, pos)[0]
                pos += 2
            details["data_type"] = f"0x{dtype:04x}"
            if pos + 2 <= end:
                op.quantity = _U16.unpack_from(b, pos)[0]
            if service == 0x53 and pos + 6 <= end:
                details["offset"] = _U32.unpack_from(b, pos + 2)[0]
        elif data + 2 <= end:  # Read Modify Write Tag: mask size, OR mask, AND mask
            details["mask_size"] = _U16.unpack_from(b, data)[0]

    def _reply(self, b: bytes, start: int, end: int, ctx: Context, req: _Request | None, out: list[Record],
               container: int | None, position: int, depth: int = 0) -> None:  # fmt: skip
        if end - start < 4:
            out.append(Anomaly("cip", "malformed_pdu", f"CIP reply of {end - start} bytes"))
            return
        raw, _reserved, general, words = REPLY_HEAD.unpack_from(b, start)
        service = raw & 0x7F
        if req is not None and req.service != service:
            # the target's reply to the request an Unconnected Send carried; else no request's (the path stays empty)
            req = req.inner if req.inner is not None and req.inner.service == service else None
        details = self._base_details(ctx, container, position, service == 0x0A)
        class_id = req.class_id if req is not None else None
        if req is None and not ctx.connected and service in (0x4E, 0x52, 0x54, 0x5B) and container is None:
            class_id = CONNECTION_MANAGER  # unpaired unconnected reply: these codes are the Connection Manager's
        name, access = service_info(class_id, service)
        target = None
        if req is not None:
            details.update(req.fields)
            target = req.target
            cname = CLASS_NAMES.get(req.fields.get("class_id"))  # type: ignore[arg-type]
            if cname:
                details["class_name"] = cname
        elif class_id is not None:
            details["class_id"] = class_id
        details["cip_status_code"] = general
        data = start + 4 + 2 * words
        if words:
            n = min(words, (end - start - 4) // 2)
            extra = list(struct.unpack_from(f"<{n}H", b, start + 4))
            if extra:
                details["cip_extended_status_code"] = extra[0]
                text = EXTENDED_STATUS.get(extra[0])
                if text:
                    details["cip_extended_status"] = text
                if len(extra) > 1:
                    details["additional_status"] = extra
        status = general_status(general)
        if ctx.sequence is not None:
            details["cip_sequence_count"] = ctx.sequence
        op = Operation("cip", RESPONSE, service, name, access, status, transaction_id=ctx.sequence, target=target,
                       details=details)  # fmt: skip
        out.append(op)
        if data > end:
            self._bad(details, "additional status longer than the reply")
            return
        if service == 0x0A:
            if general in (0, 0x1E) and depth < MAX_DEPTH:
                self._msp(b, data, end, ctx, out, details["cip_index"], False, depth, op, req)
            return
        if class_id == CONNECTION_MANAGER and service in (0x54, 0x5B, 0x4E):
            self._connection_reply(b, data, end, service, general, details)
            if service != 0x4E and general == 0:
                self._remember_connection(details, req.connection_routed if req is not None else True)
            return
        if req is not None and req.class_id == 0x01 and general == 0 and not (ctx.routed or req.routed):
            attribute = req.fields.get("attribute_id")
            identity = identity_reply(b, data, end, service, attribute, req.attributes)  # type: ignore[arg-type]
            if identity is not None:
                out.append(identity)

    def _connection_reply(self, b: bytes, data: int, end: int, service: int, general: int, details: dict) -> None:
        if service != 0x4E and general == 0:
            if data + _FWD_OPEN_REPLY.size > end:
                self._bad(details, "Forward Open reply too short")
                return
            ot_id, to_id, serial, vendor, orig_serial, ot_api, to_api = _FWD_OPEN_REPLY.unpack_from(b, data)
            details.update({
                "ot_connection_id": _connection_id(ot_id), "to_connection_id": _connection_id(to_id),
                "connection_serial": serial, "originator_vendor_id": vendor,
                "originator_serial": f"0x{orig_serial:08x}", "ot_api": ot_api, "to_api": to_api,
            })  # fmt: skip
            return
        if data + _CONNECTION.size > end:
            return
        serial, vendor, orig_serial = _CONNECTION.unpack_from(b, data)
        details.update({"connection_serial": serial, "originator_vendor_id": vendor,
                        "originator_serial": f"0x{orig_serial:08x}"})  # fmt: skip

    def _remember_connection(self, details: dict, routed: bool) -> None:
        """Remember whether a connection reaches past the device (its replies then come from another module)."""
        for key in ("ot_connection_id", "to_connection_id"):
            cid = details.get(key)
            if cid is not None:
                self.routed_connections[cid] = routed
                if len(self.routed_connections) > MAX_PENDING:
                    del self.routed_connections[next(iter(self.routed_connections))]
