"""S7comm and S7comm-plus over ISO-on-TCP (RFC 1006: TPKT + ISO 8073 COTP class 0), TCP 102.

The package along its seams: ``consts`` (the tables), ``cotp`` (TPKT/COTP framing and the COTP
TPDUs), ``classic`` (S7comm), ``s7plus`` (S7comm-plus), ``session`` (what a connection remembers
across PDUs), ``bulk`` (the numpy decoder of Read / Write Var polling) and ``dissector`` (``S7comm``,
which frames, reassembles and dispatches to them).
"""

from .classic import error_text
from .consts import MAX_REASSEMBLY, S7P_DIGEST_LEN, S7P_FUNCTIONS
from .dissector import S7comm
from .s7plus import S7P_FUNCTION_END

__all__ = ["MAX_REASSEMBLY", "S7P_DIGEST_LEN", "S7P_FUNCTION_END", "S7P_FUNCTIONS", "S7comm", "error_text"]
