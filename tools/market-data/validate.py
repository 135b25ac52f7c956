#!/usr/bin/env python3
"""Check the staged files against the PaperTrader data contract. Exit 1 on any violation."""
import csv, glob, os, re, sys
from decimal import Decimal
base = sys.argv[1] if len(sys.argv) > 1 else "."  # the converter's --out directory
bad = []
price = re.compile(r"^\d+(\.\d{1,4})?$")
syms = set()
for f in sorted(glob.glob(os.path.join(base, "daily", "*.csv"))):
    s = os.path.basename(f)[:-4]; syms.add(s)
    rows = list(csv.reader(open(f, newline="")))
    if rows[0] != ["date", "open", "high", "low", "close", "volume"]: bad.append((s, "header"))
    prev = ""
    for r in rows[1:]:
        d, o, h, l, c, v = r
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", d) or d <= prev: bad.append((s, d, "date order/format"))
        prev = d
        if not all(price.match(x) for x in (o, h, l, c)): bad.append((s, d, "price format"))
        if not v.isdigit(): bad.append((s, d, "volume format"))
        O, H, L, C = map(Decimal, (o, h, l, c))
        if min(O, H, L, C) <= 0 or H < L or not (L <= O <= H and L <= C <= H): bad.append((s, d, "ohlc"))
ev = list(csv.reader(open(os.path.join(base, "events.csv"), newline="")))
if ev[0] != ["symbol", "type", "ex_date", "pay_date", "value"]: bad.append(("events", "header"))
dates = {s: {r[0] for r in csv.reader(open(os.path.join(base, "daily", s + ".csv")))} for s in syms}
for r in ev[1:]:
    s, t, ex, pay, val = r
    if s not in syms or t not in ("split", "dividend") or Decimal(val) <= 0: bad.append(("events", r))
    if ex not in dates[s]: bad.append(("events", r, "ex_date is not a session of the daily file"))
a = list(csv.reader(open(os.path.join(base, "assets.csv"), newline="")))
if a[0] != ["symbol", "name", "exchange", "class", "fractionable"]: bad.append(("assets", "header"))
if {r[0] for r in a[1:]} != syms: bad.append(("assets", "symbol set differs from daily/"))
for r in a[1:]:
    if r[2] not in ("NYSE", "NASDAQ", "ARCA") or r[3] != "us_equity" or r[4] != "true": bad.append(("assets", r))
for b in bad[:50]: print("VIOLATION", b)
print("%d symbols, %d events, %d violations" % (len(syms), len(ev) - 1, len(bad)))
sys.exit(1 if bad else 0)
