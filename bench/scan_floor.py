"""The floor under a flowq query: its imports and its Parquet scan, nothing else.

``python -m bench.scan_floor FLOWQ-ARGS...`` parses the arguments as ``flowq`` does,
then reads exactly what that query reads (the same files, projected columns and
filter, pushed down the same way) and throws the batches away: no statistics, no
output. ``bench query`` times it beside each query, so a ratio target can be judged
against what reading the flows alone costs in Python and Arrow on this machine.
"""

from __future__ import annotations

import sys

from flowq.cli import build_parser
from flowq.output import Summary
from flowq.query import Query


def main(argv: list[str] | None = None) -> int:
    query = Query(build_parser().parse_args(argv))
    rows = sum(batch.num_rows for batch in query.batches(Summary()))
    print(f"rows {rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
