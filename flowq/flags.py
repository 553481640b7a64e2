"""TCP flags as nfdump writes them: eight characters ``CEUAPRSF``, a ``.`` for each
flag not set (``...AP.SF``, ``......S.``).

nfdump shows flags only for TCP flows: any other protocol prints ``........`` whatever
the exporter put in the field. Only the low eight bits count (IPFIX's 16-bit
``tcpControlBits`` adds NS and header-length bits nfdump does not show).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa

#: the letters, most significant bit first (CWR, ECE, URG, ACK, PSH, RST, SYN, FIN)
FLAG_LETTERS: Final = "CEUAPRSF"
#: letter -> bit, for code that reads flags typed by a user (the filter's ``flags``)
FLAG_BITS: Final = {letter: 1 << (7 - i) for i, letter in enumerate(FLAG_LETTERS)}
TCP: Final = 6


def flags_text(flags: int) -> str:
    """``0x1b`` -> ``...AP.SF``."""
    return "".join(
        letter if flags & (1 << (7 - i)) else "." for i, letter in enumerate(FLAG_LETTERS)
    )


_TEXT_BY_VALUE: Final = np.array([flags_text(v) for v in range(256)], dtype=object)


def flags_texts(flags: np.ndarray, protocols: np.ndarray | None = None) -> pa.Array:
    """``flags_text`` for a column; with ``protocols``, non-TCP rows read ``........``
    like nfdump's."""
    values = np.asarray(flags, dtype=np.uint16) & np.uint16(0xFF)
    if protocols is not None:
        values = np.where(np.asarray(protocols) == TCP, values, 0)
    return pa.array(_TEXT_BY_VALUE[values], type=pa.string())
