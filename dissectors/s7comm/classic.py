"""S7comm (protocol id 0x32): Job, Ack and Ack_Data paired by PDU reference, and Userdata, one operation a PDU.

``S7Classic`` holds what spans PDUs (an SZL answer over several userdata PDUs) and pairs answers with
their jobs through the connection's ``Session``; what one PDU says is read by the functions below it.
"""

from __future__ import annotations

import struct

from ..base import REQUEST, RESPONSE, Anomaly, Identity, Operation, Record
from ..layout import Layout
from .consts import (
    AREA_DB,
    AREA_DI,
    AREAS,
    BIT_LENGTHS,
    BLOCK_GROUP,
    BLOCK_TYPES,
    COUNTER_TIMER_AREAS,
    DBREAD,
    DRIVEESANY,
    ERROR_CLASSES,
    FUNCTIONS,
    LAST_DATA_UNIT_NO,
    MAX_ITEMS,
    MAX_REASSEMBLY,
    MODES,
    NCK_SYNTAX,
    PARAM_ERRORS,
    PI_BLOCK_LIST,
    PI_SERVICE,
    PI_SERVICES,
    PLC_SENT_JOBS,
    PLC_STOP,
    READ_SZL,
    READ_VAR,
    RETURN_CODES,
    RETURN_SUCCESS,
    ROSCTR,
    S7ANY,
    SIEMENS_MANUFACTURER_ID,
    SIZE_LETTERS,
    SYM1200,
    SYNTAX_IDS,
    SZL,
    SZL_COMPONENT_ID,
    SZL_COMPONENT_TEXTS,
    SZL_MODULE_ID,
    SZL_NAMES,
    TIME_GROUP,
    TRANSPORT_SIZES,
    USERDATA_GROUPS,
    USERDATA_TYPES,
    WRITE_VAR,
)
from .fields import Malformed, cstring, u8, u16
from .session import Session

HEADER = Layout("!", ("protocol_id", "B"), ("rosctr", "B"), ("redundancy_id", "H"), ("pdu_reference", "H"),
                ("parameter_length", "H"), ("data_length", "H"))  # fmt: skip
ACK_HEADER = HEADER + Layout("!", ("error_class", "B"), ("error_code", "B"))  # Ack and Ack_Data
VAR_PARAMETER = Layout("!", ("function", "B"), ("item_count", "B"))  # of a Read / Write Var job and its answer
DATA_ITEM = Layout("!", ("return_code", "B"), ("transport_size", "B"), ("length", "H"))  # the value follows
S7ANY_ITEM = Layout("!", ("transport_size", "B"), ("length", "H"), ("db", "H"), ("area", "B"))  # 3-byte address next
SZL_HEADER = Layout("!", ("szl_id", "H"), ("szl_index", "H"), ("entry_length", "H"), ("entry_count", "H"))
_U32 = struct.Struct("!I")
_BROKEN = (Malformed, IndexError, struct.error, ValueError)  # a field past the end, or not what its type says


class S7Classic:
    """The S7comm PDUs of one flow."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.szl_frags: dict[bool, bytearray | None] = {True: None, False: None}  # SZL answer spanning PDUs

    def gap(self, from_orig: bool) -> None:
        self.szl_frags[from_orig] = None

    def pdu(self, pdu: bytes, from_orig: bool, from_client: bool) -> list[Record]:
        """One S7comm PDU (reassembled from its COTP DT units): its operation, with anomalies and identities."""
        n = len(pdu)
        if n < HEADER.size:
            return [Anomaly("s7comm", "bad_header", f"S7comm header truncated: {n} bytes")]
        _pid, rosctr, _redid, pduref, parlg, datlg = HEADER.unpack_from(pdu)
        if rosctr not in ROSCTR:
            return [Anomaly("s7comm", "bad_header", f"unknown S7comm ROSCTR 0x{rosctr:02x}")]
        hlen = ACK_HEADER.size if rosctr in (2, 3) else HEADER.size
        out: list[Record] = []
        if hlen + parlg + datlg != n:
            problem = f"S7comm lengths (header {hlen} + parameter {parlg} + data {datlg}) != PDU {n} bytes"
            out.append(Anomaly("s7comm", "bad_header", problem))
            if n < hlen:
                return out
        param = pdu[hlen : hlen + parlg]
        data = pdu[hlen + parlg : hlen + parlg + datlg]
        rosctr_name, direction = ROSCTR[rosctr]
        details: dict = {"rosctr": rosctr, "rosctr_name": rosctr_name, "pdu_reference": pduref}
        if rosctr == 7:
            op = self._userdata(param, data, details, from_orig, from_client, out)
        else:
            op = self._job(rosctr, direction, param, data, details, from_orig, out)
            if hlen == ACK_HEADER.size:
                *_header, errcls, errcod = ACK_HEADER.unpack_from(pdu)
                details["error_class"], details["error_code"] = errcls, errcod
                if errcls or errcod:
                    op.status = error_text(errcls << 8 | errcod)
        out.append(op)
        return out

    def _job(self, rosctr: int, direction: str, param: bytes, data: bytes, details: dict, from_orig: bool,
             out: list[Record]) -> Operation:  # fmt: skip
        """Job, Ack and Ack_Data: one operation per PDU, paired by PDU reference."""
        func = param[0] if param else None
        request = rosctr == 1
        key = (from_orig if request else not from_orig, details["pdu_reference"])
        paired = None if request else self.session.answer(key)
        if func is None and paired is not None:  # a bare Ack answers the job it acknowledges
            func = paired[0]
        if func is None:
            return Operation("s7comm", direction, None, details["rosctr_name"], "other", transaction_id=details[
                "pdu_reference"], details=details)  # fmt: skip
        name, access = FUNCTIONS.get(func, (f"UNKNOWN_0x{func:02x}", "other"))
        op = Operation(
            "s7comm", direction, func, name, access, transaction_id=details["pdu_reference"], details=details
        )
        try:
            if request:
                _job_request(func, param, data, op, details)
            else:
                _job_response(func, param, data, op, details)
        except _BROKEN:
            out.append(Anomaly("s7comm", "bad_header", f"{name} parameters truncated or malformed"))
        if request:
            self.session.remember(
                key, (func, op.target, op.access_class, details.get("pi_service"), op.address, op.quantity)
            )
        else:
            if paired is not None and paired[0] == func:  # the answer acts on what its job asked for
                op.target = op.target or paired[1]
                op.access_class = paired[2]
                if paired[3] is not None:
                    details["pi_service"] = paired[3]
                op.address, op.quantity = paired[4], paired[5]
            if func not in PLC_SENT_JOBS:
                self.session.plc("s7comm", from_orig, out)
        return op

    def _userdata(self, param: bytes, data: bytes, details: dict, from_orig: bool, from_client: bool,
                  out: list[Record]) -> Operation:  # fmt: skip
        """Userdata: function group and subfunction, SZL reads, clock, block functions."""
        if len(param) < 8:
            out.append(Anomaly("s7comm", "bad_header", f"userdata parameter of {len(param)} bytes"))
            if len(param) < 7 or param[0] == 0x01 or param[4] == 0x13:
                direction = REQUEST if from_client else RESPONSE
                return Operation("s7comm", direction, None, "USER_DATA", "other", details=details)
            # cut in the sequence number: type, group and subfunction are there, so is the operation
        kind, group, sub, seq, last_unit = _userdata_head(param, details)
        op = _userdata_operation(kind, group, sub, seq, details)
        if op.direction == RESPONSE:
            self.session.plc("s7comm", from_orig, out)
        if data and data[0] != RETURN_SUCCESS:  # 0x0a with no data is how many answers say "nothing to return"
            details["return_code"] = RETURN_CODES.get(data[0], f"0x{data[0]:02x}")
        try:
            if group == SZL and sub == READ_SZL:
                self._szl(data, kind, last_unit, op, details, from_orig, out)
            elif group == BLOCK_GROUP and kind == 1 and len(data) >= 6:
                _block_function(data, sub, op, details)
            elif group == TIME_GROUP and len(data) >= 14:
                stamp = s7_timestamp(data, 4)
                if stamp is not None:
                    details["timestamp"] = stamp
        except _BROKEN:
            out.append(Anomaly("s7comm", "bad_header", f"{op.function_name} data truncated or malformed"))
        return op

    def _szl(self, data: bytes, kind: int, last_unit: int, op: Operation, details: dict, from_orig: bool,
             out: list[Record]) -> None:  # fmt: skip
        """Read SZL: the id and index asked for; the module identity in the PLC's answer (SZL 0x0011, 0x001C)."""
        if len(data) < 4:
            return
        payload = data[4 : 4 + u16(data, 2)]
        frags = self.szl_frags
        if kind == 1:  # request; a follow-up request for the rest of a long answer carries no id
            if len(payload) >= 4:
                szl_id, index = u16(payload, 0), u16(payload, 2)
                details.update(szl_id=szl_id, szl_index=index, szl_id_name=SZL_NAMES.get(szl_id & 0xFF, "Unknown"))
                op.target = f"SZL 0x{szl_id:04x} index 0x{index:04x}"
            return
        held = frags[from_orig]
        if held is not None:  # the next part of an answer spanning several PDUs
            held += payload
            if len(held) > MAX_REASSEMBLY:
                frags[from_orig] = None
                out.append(Anomaly("s7comm", "buffer_overflow", "SZL answer over 64 KiB; dropped"))
                return
            if last_unit == LAST_DATA_UNIT_NO:
                return
            frags[from_orig] = None
            payload = bytes(held)
        elif last_unit == LAST_DATA_UNIT_NO and data[0] == RETURN_SUCCESS:
            frags[from_orig] = bytearray(payload)  # the SZL id and its records come with the last part
            details["fragment"] = True
            return
        if len(payload) < SZL_HEADER.size or data[0] != RETURN_SUCCESS:
            return
        szl_id, index, entry_len, count = SZL_HEADER.unpack_from(payload)
        details.update(szl_id=szl_id, szl_index=index, szl_id_name=SZL_NAMES.get(szl_id & 0xFF, "Unknown"),
                       list_length=entry_len, list_count=count)  # fmt: skip
        op.target = f"SZL 0x{szl_id:04x} index 0x{index:04x}"
        part = szl_id & 0xFF
        if part in (SZL_MODULE_ID, SZL_COMPONENT_ID) and entry_len >= 4:
            fields, records = _identity(payload, part, entry_len, count)
            if records:
                details["szl_records"] = records
            if fields:
                out.append(Identity("s7comm", fields, role="s7_plc"))


def _userdata_head(param: bytes, details: dict) -> tuple[int, int, int, int | None, int]:
    """Type, function group, subfunction, sequence number and last data unit of a userdata parameter; the
    data unit reference and error code of a response into details."""
    if param[0] == 0x01:  # mode transition indication (newer Wireshark): 4 unknown bytes, then the mode
        return 0, 0, param[6], None, 0
    if param[4] == 0x13:  # PBC USEND indication: no type/group byte
        return 0, 0x06, 0, None, 0
    kind, group, sub, last_unit = param[5] >> 6, param[5] & 0x3F, param[6], 0
    seq = param[7] if len(param) > 7 else None
    if param[4] == 0x12 and len(param) >= 12:
        details["data_unit_reference"], last_unit = param[8], param[9]
        details["last_data_unit"] = last_unit == 0
        err = u16(param, 10)
        if err:
            details["error_code"] = err
    return kind, group, sub, seq, last_unit


def _userdata_operation(kind: int, group: int, sub: int, seq: int | None, details: dict) -> Operation:
    """The operation of a userdata PDU: its function group and subfunction, named and classed."""
    group_name, subs, default = USERDATA_GROUPS.get(group, (f"UNKNOWN_GROUP_0x{group:02x}", {}, "other"))
    if group == 0:
        name, access = "MODE_TRANSITION", default
        details["mode"] = MODES.get(sub, f"0x{sub:02x}")
    else:
        name, access = subs.get(sub) or (f"{group_name}_0x{sub:02x}", default)
    type_name = USERDATA_TYPES[kind]
    direction = REQUEST if type_name == "request" else RESPONSE
    details.update(type=type_name, function_group=group, function_group_name=group_name, subfunction=sub,
                   subfunction_name=name)  # fmt: skip
    if seq is not None:
        details["sequence_number"] = seq
    op = Operation("s7comm", direction, userdata_code(group, sub), name, access, transaction_id=details[
        "pdu_reference"], details=details)  # fmt: skip
    if "error_code" in details:
        op.status = error_text(details["error_code"])
    return op


def _block_function(data: bytes, sub: int, op: Operation, details: dict) -> None:
    """A block function request: the block type it lists, and the block of a Get Block Info."""
    btype = BLOCK_TYPES.get(data[4:6].upper())
    if btype is not None:
        details["block_type"] = btype
        op.target = btype
        if sub == 0x03 and len(data) >= 12:
            _t, num = block_name(data[4:11])
            details["block_number"], details["filesystem"] = num, chr(data[11])
            op.target = f"{btype}{num}" if num is not None else btype


def error_text(code: int) -> str:
    """Status text for an S7 error code (header class << 8 | code, or the parameter error code)."""
    text = PARAM_ERRORS.get(code)
    if text is None:
        text = ERROR_CLASSES.get(code >> 8, "Unknown error")
    return f"{text} (0x{code:04x})"


def s7any_address(area: int, db: int, address: int, tsize: int, length: int) -> str:
    """An S7ANY item in S7 notation: DB1.DBW4, M0.0, IB3, C5; a range as an ANY pointer: P#DB1.DBX0.0 BYTE 10."""
    tname = TRANSPORT_SIZES.get(tsize, f"0x{tsize:02x}")
    if area in COUNTER_TIMER_AREAS:
        single = f"{AREAS[area]}{address}"
        return single if length == 1 else f"P#{single} {tname} {length}"
    byte, bit = address >> 3, address & 7
    if area == AREA_DB:
        word, bitword = f"DB{db}.DB", f"DB{db}.DBX"
    elif area == AREA_DI:
        word, bitword = f"DI{db}.DI", f"DI{db}.DIX"
    else:
        word = bitword = AREAS.get(area, f"AREA_0x{area:02x}_")
    letter = SIZE_LETTERS.get(tsize)
    if length == 1 and letter is not None:
        return f"{bitword}{byte}.{bit}" if letter == "X" else f"{word}{letter}{byte}"
    return f"P#{bitword}{byte}.{bit} {tname} {length}"


def block_name(raw: bytes) -> tuple[str | None, int | None]:
    """('DB', 1) from the block type and number of a PLC file name ('0A' '00001')."""
    btype = BLOCK_TYPES.get(raw[:2].upper())
    num = raw[2:7]
    return btype, int(num) if len(num) == 5 and num.isdigit() else None


def bcd(b: int) -> int:
    return (b >> 4) * 10 + (b & 0x0F)


def s7_timestamp(b: bytes, off: int) -> str | None:
    """S7 DATE_AND_TIME (BCD, 8 bytes after a reserved byte and the year's high byte) as ISO 8601."""
    if off + 10 > len(b):
        return None
    year, month, day, hour, minute, sec, ms_hi = (bcd(x) for x in b[off + 2 : off + 9])
    year += 2000 if year < 90 else 1900
    ms = ms_hi * 10 + (b[off + 9] >> 4)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and sec < 60):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{sec:02d}.{ms:03d}"


def userdata_code(group: int, subfunction: int) -> int:
    """function_code of a userdata operation: 0x07GGSS (ROSCTR 7, function group, subfunction)."""
    return 0x070000 | group << 8 | subfunction


def _job_request(func: int, param: bytes, data: bytes, op: Operation, details: dict) -> None:
    if func in (READ_VAR, WRITE_VAR):
        count = details["item_count"] = u8(param, 1)
        items, pos = [], 2
        for i in range(count):
            item, size = _item(param, pos)
            pos += size + (1 if size % 2 and i < count - 1 else 0)
            if i < MAX_ITEMS:
                items.append(item)
            if i == 0:
                op.target = item.get("address")
                op.address, op.quantity = item.get("byte", item.get("number")), item.get("length")
        details["items"] = items
        if count > 1 and op.target:
            op.target += f" (+{count - 1} items)"
        if func == WRITE_VAR and data:
            _write_values(data, count, items)
    elif func == 0xF0:
        details["max_amq_calling"], details["max_amq_called"] = u16(param, 2), u16(param, 4)
        details["pdu_length"] = u16(param, 6)
    elif func in (0x1A, 0x1B, 0x1C, 0x1D):  # function status, 2 unknown, 4 (upload id / unknown), file name
        if func == 0x1C:
            details["error_code"] = u16(param, 2)
        if func == 0x1D:
            details["session_id"] = _U32.unpack_from(param, 4)[0]
        _filename(param, 8, op, details)
        if func == 0x1A and len(param) > 18:  # length part 2: '1', load memory length (6), MC7 length (6)
            p = 9 + param[8]
            details["load_memory_length"] = cstring(param[p + 2 : p + 8])
            details["mc7_code_length"] = cstring(param[p + 8 : p + 14])
    elif func == 0x1E:  # upload: function status, 2 unknown, upload id
        details["session_id"] = _U32.unpack_from(param, 4)[0]
    elif func == 0x1F:  # end upload: function status, error code, upload id
        details["error_code"] = u16(param, 2)
        details["session_id"] = _U32.unpack_from(param, 4)[0]
    elif func == PI_SERVICE:
        _pi_service(param, op, details)
    elif func == PLC_STOP:  # 5 unknown bytes, then the service name
        length = u8(param, 6)
        service = cstring(param[7 : 7 + length])
        details["pi_service"] = service
        op.target = service or None


def _job_response(func: int, param: bytes, data: bytes, op: Operation, details: dict) -> None:
    if func == READ_VAR and len(param) >= 2:  # read var: per item return code, transport size, length, data
        count = details["item_count"] = param[1]
        errors, pos = [], 0
        for i in range(count):
            if pos + 4 > len(data):
                break
            rc, tsize, length = data[pos], data[pos + 1], u16(data, pos + 2)
            if tsize in BIT_LENGTHS:
                length = (length + 7) >> 3
            if rc != RETURN_SUCCESS:
                errors.append({"item": i + 1, "return_code": RETURN_CODES.get(rc, f"0x{rc:02x}")})
            pos += 4 + length + (1 if length % 2 and i < count - 1 else 0)
        _item_errors(errors, op, details)
    elif func == WRITE_VAR and len(param) >= 2:  # write var: one return code per item
        count = details["item_count"] = param[1]
        errors = [{"item": i + 1, "return_code": RETURN_CODES.get(rc, f"0x{rc:02x}")}
                  for i, rc in enumerate(data[:count]) if rc != RETURN_SUCCESS]  # fmt: skip
        _item_errors(errors, op, details)
    elif func == 0xF0 and len(param) >= 8:
        details["max_amq_calling"], details["max_amq_called"] = u16(param, 2), u16(param, 4)
        details["pdu_length"] = u16(param, 6)
    elif func in (0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F) and len(param) >= 2:
        details["function_status"] = param[1]  # bit 0: more data follows
        if func == 0x1D and len(param) > 8:  # start upload: upload id, then the block length as text
            details["session_id"] = _U32.unpack_from(param, 4)[0]
            length = param[8]
            text = cstring(param[9 : 9 + length])
            details["blocklength"] = int(text) if text.isdigit() else text
        elif func in (0x1B, 0x1E) and len(data) >= 4:
            details["data_length"] = u16(data, 0)


def _item_errors(errors: list, op: Operation, details: dict) -> None:
    if errors:
        details["item_errors"] = errors[:MAX_ITEMS]
        if op.status is None:
            op.status = f"item {errors[0]['item']}: {errors[0]['return_code']}"


def _item(param: bytes, pos: int) -> tuple[dict, int]:
    """One variable specification of a read/write var request; returns (item, its size)."""
    spec, vlen, syntax = u8(param, pos), u8(param, pos + 1), u8(param, pos + 2)
    if pos + 2 + vlen > len(param):
        raise Malformed
    item: dict = {"syntax_id": SYNTAX_IDS.get(syntax, f"0x{syntax:02x}")}
    if spec == 0x12 and syntax == S7ANY and vlen == 10:
        tsize, length, db, area = S7ANY_ITEM.unpack_from(param, pos + 3)
        addr = param[pos + 9] << 16 | param[pos + 10] << 8 | param[pos + 11]
        item["area"] = AREAS.get(area, f"0x{area:02x}")
        if area in (AREA_DB, AREA_DI):
            item["db"] = db
        if area in COUNTER_TIMER_AREAS:
            item["number"] = addr
        else:
            item["byte"], item["bit"] = addr >> 3, addr & 7
        item["transport_size"] = TRANSPORT_SIZES.get(tsize, f"0x{tsize:02x}")
        item["length"] = length
        item["address"] = s7any_address(area, db, addr, tsize, length)
    elif spec == 0x12 and syntax == DBREAD and vlen >= 7:
        count = param[pos + 3]
        areas, p = [], pos + 4
        for _ in range(count):
            length, db, start = param[p], u16(param, p + 1), u16(param, p + 3)
            areas.append(f"P#DB{db}.DBX{start}.0 BYTE {length}")
            p += 5
        item["areas"] = areas
        item["address"] = areas[0] if areas else None
    elif spec == 0x12 and syntax in NCK_SYNTAX and vlen == 8:
        au, column, line, module, lines = param[pos + 3], u16(param, pos + 4), u16(param, pos + 6), \
            param[pos + 8], param[pos + 9]  # fmt: skip
        item.update(nck_area=au >> 5, nck_unit=au & 0x1F, nck_column=column, nck_line=line, nck_module=module,
                    nck_linecount=lines)  # fmt: skip
        item["address"] = f"NCK area {au >> 5} unit {au & 0x1F} module 0x{module:02x} column {column} line {line}"
    elif spec == 0x12 and syntax == DRIVEESANY and vlen == 10:
        nr, idx = u16(param, pos + 8), u16(param, pos + 10)
        item["parameter_number"], item["parameter_index"] = nr, idx
        item["address"] = f"DriveES parameter {nr}[{idx}]"
    elif spec == 0x12 and syntax == SYM1200:
        item["address"] = "S7-1200 symbolic"
    return item, 2 + vlen


def _write_values(data: bytes, count: int, items: list) -> None:
    """The values of a write var request, as hex (the first 32 bytes of each)."""
    pos = 0
    for i in range(min(count, len(items))):
        if pos + 4 > len(data):
            break
        tsize, length = data[pos + 1], u16(data, pos + 2)
        if tsize in BIT_LENGTHS:
            length = (length + 7) >> 3
        items[i]["value"] = data[pos + 4 : pos + 4 + min(length, 32)].hex()
        pos += 4 + length + (1 if length % 2 and i < count - 1 else 0)


def _filename(param: bytes, off: int, op: Operation, details: dict) -> None:
    """The file name of an upload/download job: _0A00001P is block DB1 in the passive file system."""
    length = u8(param, off)
    raw = param[off + 1 : off + 1 + length]
    if len(raw) < length:
        raise Malformed
    details["filename"] = raw.decode("latin-1")
    if length == 9 and raw[:1] in (b"_", b"$"):
        btype, num = block_name(raw[1:8])
        if btype is not None:
            details["block_type"] = btype
            details["block_number"] = num
            details["destination_filesystem"] = chr(raw[8])
            op.target = f"{btype}{num}" if num is not None else btype


def _pi_service(param: bytes, op: Operation, details: dict) -> None:
    """PI service: 7 unknown bytes, parameter block (length-prefixed), service name (length-prefixed)."""
    plen = u16(param, 8)
    block = param[10 : 10 + plen]
    nlen = u8(param, 10 + plen)
    service = cstring(param[11 + plen : 11 + plen + nlen])
    details["pi_service"] = service
    op.access_class = PI_SERVICES.get(service, "program")
    if service in PI_BLOCK_LIST and len(block) >= 2:
        blocks = []
        for i in range(min(block[0], (len(block) - 2) // 8)):
            raw = block[2 + 8 * i : 10 + 8 * i]
            btype, num = block_name(raw)
            blocks.append(f"{btype}{num}" if btype and num is not None else raw.decode("latin-1"))
        details["blocks"] = blocks
        if blocks:
            op.target = blocks[0] if len(blocks) == 1 else f"{blocks[0]} (+{len(blocks) - 1} blocks)"
    elif service.startswith("_N_"):
        args, p = [], 0
        while p < len(block):  # length-prefixed strings, each padded to an even length
            length = block[p]
            args.append(block[p + 1 : p + 1 + length].decode("latin-1"))
            p += 1 + length + (length % 2 == 0)
        details["arguments"] = args
        op.target = service
    else:
        if block:
            details["argument"] = block.decode("latin-1")
        op.target = service or None


def _identity(payload: bytes, part: int, entry_len: int, count: int) -> tuple[dict, dict]:
    """Identity fields from SZL 0x0011 (module identification) and 0x001C (component identification)."""
    fields: dict = {}
    records: dict = {}
    for i in range(count):
        e = 8 + i * entry_len
        entry = payload[e : e + entry_len]
        if len(entry) < entry_len:
            break
        index = (entry[0] << 8) | entry[1]
        if part == SZL_MODULE_ID and entry_len >= 28:  # index, MlfB (20), BGTyp, Ausbg, Ausbe
            order = cstring(entry[2:22])
            ausbg, ausbe = (entry[24] << 8) | entry[25], (entry[26] << 8) | entry[27]
            if index == 0x0001 and order:
                fields["order_number"] = records["order_number"] = order
            elif index == 0x0006:
                if order:
                    fields.setdefault("order_number", order)
                fields["hardware"] = records["hardware"] = str(ausbg)
            elif index == 0x0007 and ausbg >> 8 == ord("V"):
                fields["firmware"] = records["firmware"] = f"V{ausbg & 0xFF}.{ausbe >> 8}.{ausbe & 0xFF}"
        elif part == SZL_COMPONENT_ID:
            value = entry[2:]
            if index in SZL_COMPONENT_TEXTS:
                field, key, width = SZL_COMPONENT_TEXTS[index]
                records[key] = text = cstring(value[:width])
                if field is not None:
                    fields[field] = text
            elif index == 0x0009 and len(value) >= 6:
                vendor_id = (value[0] << 8) | value[1]
                fields["vendor_id"] = records["manufacturer_id"] = vendor_id
                if vendor_id == SIEMENS_MANUFACTURER_ID:
                    fields["vendor"] = "Siemens"
    return {k: v for k, v in fields.items() if v not in ("", None)}, records
