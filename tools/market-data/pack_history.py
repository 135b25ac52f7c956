#!/usr/bin/env python
"""Pack daily CSV files (date,open,high,low,close,volume) into the package's compact .bars files.

    python tools/market-data/pack_history.py CSV_DIR papertrader/market/data/daily

Each CSV_DIR/SYMBOL.csv becomes DEST/SYMBOL.bars (see papertrader/market/history.py for the
format); the script reads each result back and checks it equals the CSV.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from papertrader.market.history import pack, read_csv, unpack  # noqa: E402


def main(source, dest):
    os.makedirs(dest, exist_ok=True)
    total = 0
    for name in sorted(os.listdir(source)):
        if not name.endswith(".csv"):
            continue
        symbol = name[:-4]
        with open(os.path.join(source, name), encoding="utf-8") as f:
            series = read_csv(symbol, f.read().splitlines(), name)
        blob = pack(series)
        again = unpack(symbol, blob)
        assert all(getattr(again, c) == getattr(series, c) for c in ("keys", "open", "high", "low", "close",
                                                                    "volume")), symbol
        with open(os.path.join(dest, symbol + ".bars"), "wb") as f:
            f.write(blob)
        total += len(blob)
        print(f"{symbol}: {len(series)} rows, {len(blob)} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:3])
