"""NetFlow v5 wire format: a 24-byte header and fixed 48-byte records.

Layouts are construct definitions (they also build test packets); the decoder reads
headers with the derived ``struct`` and whole record arrays with the derived dtype.
"""

from __future__ import annotations

from typing import Final

from construct import Int8ub, Int16ub, Int32ub, Struct

from parsers.fixed_layout import dtype_for, struct_for

VERSION: Final = 5

V5_HEADER = Struct(
    "version" / Int16ub,
    "count" / Int16ub,
    "sys_uptime_ms" / Int32ub,
    "unix_secs" / Int32ub,
    "unix_nsecs" / Int32ub,
    "flow_sequence" / Int32ub,
    "engine_type" / Int8ub,
    "engine_id" / Int8ub,
    "sampling" / Int16ub,  # top 2 bits: mode, low 14 bits: interval
)

V5_RECORD = Struct(
    "src_addr" / Int32ub,
    "dst_addr" / Int32ub,
    "next_hop" / Int32ub,
    "in_if" / Int16ub,
    "out_if" / Int16ub,
    "packets" / Int32ub,
    "bytes" / Int32ub,
    "first_uptime_ms" / Int32ub,
    "last_uptime_ms" / Int32ub,
    "src_port" / Int16ub,
    "dst_port" / Int16ub,
    "pad1" / Int8ub,
    "tcp_flags" / Int8ub,
    "proto" / Int8ub,
    "tos" / Int8ub,
    "src_as" / Int16ub,
    "dst_as" / Int16ub,
    "src_mask" / Int8ub,
    "dst_mask" / Int8ub,
    "pad2" / Int16ub,
)

V5_HEADER_STRUCT: Final = struct_for(V5_HEADER)
V5_RECORD_DTYPE: Final = dtype_for(V5_RECORD)
HEADER_SIZE: Final = V5_HEADER_STRUCT.size
RECORD_SIZE: Final = V5_RECORD_DTYPE.itemsize
#: NetFlow v5 exporters send at most 30 records per datagram (Cisco's limit)
MAX_RECORDS: Final = 30

#: record fields copied to columns of the same name (widened to the column types)
COPIED_FIELDS: Final = (
    "src_addr",
    "dst_addr",
    "next_hop",
    "in_if",
    "out_if",
    "packets",
    "bytes",
    "src_port",
    "dst_port",
    "tcp_flags",
    "proto",
    "tos",
    "src_as",
    "dst_as",
    "src_mask",
    "dst_mask",
)

SAMPLING_INTERVAL_MASK: Final = 0x3FFF
