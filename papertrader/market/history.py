"""Historical market data for the replay: daily (and intraday) bars, splits and dividends, asset names.

The history shipped with the package lives in ``papertrader/market/data/`` (see its
README for the source and licence): one ``daily/SYMBOL.bars`` file per symbol, in a
compact form that loads in milliseconds, plus ``events.csv`` and ``assets.csv``.

A ``.bars`` file is zlib-compressed: the magic line ``PTBARS1``, the row count (uint32,
little-endian), then six columns of that many int64 (little-endian), each stored as
its first value followed by the differences from one row to the next (small
numbers, which compress well): the day (``date.toordinal()``), open, high, low and
close in 1e-4 units, and the volume.  In memory a series stays six ``array('q')``;
Decimals are made only for the bars a step hands out.

Operators can replay their own CSV files instead (``replay_files``): a header row,
then ``date,open,high,low,close,volume`` (daily bars: ``date`` as YYYY-MM-DD) or
``time,open,high,low,close,volume`` (intraday bars: ``time`` in ISO 8601 with a UTC
offset, the bar's start; each bar lasts until the next one's start, at most
``bar_length``), one file per symbol named ``SYMBOL.csv``, prices as decimal numbers,
volume an integer.  Splits and dividends of such files come from an
``events.csv`` beside them (``symbol,type,ex_date,pay_date,value``; type ``split``
with value = new shares per old share, or ``dividend`` with value = cash per share).
"""

import bisect
import csv
import importlib.resources
import io
import itertools
import os
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from papertrader.money import from_price_units, to_price_units
from papertrader.market.sources import Asset
from papertrader.trading.corporate import Dividend, Split

MAGIC = b"PTBARS1\n"
COLUMNS = 6


class HistoryError(ValueError):
    """A history file cannot be read (its path and line say where)."""


@dataclass
class Series:
    """One symbol's bars: parallel arrays (day ordinals or start times in seconds; prices in 1e-4 units)."""

    symbol: str
    keys: array
    open: array
    high: array
    low: array
    close: array
    volume: array
    daily: bool = True

    def __len__(self):
        return len(self.keys)

    def between(self, low_key, high_key):
        """Indexes of the rows whose key is in [low_key, high_key)."""
        return range(bisect.bisect_left(self.keys, low_key), bisect.bisect_left(self.keys, high_key))

    def prices(self, i):
        return tuple(from_price_units(column[i]) for column in (self.open, self.high, self.low, self.close))

    def day(self, i):
        """The day of row ``i`` (an intraday bar's by its start, in UTC)."""
        key = self.keys[i]
        return date.fromordinal(key) if self.daily else datetime.fromtimestamp(key, timezone.utc).date()


def _native(column):
    if sys.byteorder != "little":  # pragma: no cover - the files are little-endian
        column.byteswap()
    return column


def pack(series):
    """A Series as the bytes of a .bars file."""
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(struct.pack("<I", len(series)))
    for column in (series.keys, series.open, series.high, series.low, series.close, series.volume):
        deltas = array("q", (b - a for a, b in zip(itertools.chain([0], column), column)))
        out.write(_native(deltas).tobytes())
    return zlib.compress(out.getvalue(), 9)


def unpack(symbol, blob):
    data = zlib.decompress(blob)
    if not data.startswith(MAGIC):
        raise HistoryError(f"{symbol}: not a .bars file")
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    offset = len(MAGIC) + 4
    columns = []
    for _ in range(COLUMNS):
        deltas = _native(array("q", data[offset:offset + 8 * n]))
        offset += 8 * n
        columns.append(array("q", itertools.accumulate(deltas)))
    return Series(symbol, *columns)


def _decimal(text, where):
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise HistoryError(f"{where}: {text!r} is not a number")
    if not value.is_finite():
        raise HistoryError(f"{where}: {text!r} is not a number")
    return value


def read_csv(symbol, lines, where):
    """A Series from CSV lines (daily: date,...; intraday: time,...); rows must go forward in time."""
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise HistoryError(f"{where}: empty file")
    if header not in (["date", "open", "high", "low", "close", "volume"],
                      ["time", "open", "high", "low", "close", "volume"]):
        raise HistoryError(f"{where}: the header must be date,open,high,low,close,volume (or time,...)")
    daily = header[0] == "date"
    columns = [array("q") for _ in range(COLUMNS)]
    for number, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        at = f"{where}:{number}"
        if len(row) != 6:
            raise HistoryError(f"{at}: 6 values expected")
        try:
            if daily:
                key = date.fromisoformat(row[0].strip()).toordinal()
            else:
                moment = datetime.fromisoformat(row[0].strip())
                if moment.tzinfo is None:
                    raise ValueError
                key = int(moment.timestamp())
        except ValueError:
            raise HistoryError(f"{at}: {row[0]!r} is not a date (YYYY-MM-DD) or a time with a UTC offset")
        o, h, l, c = (_decimal(v, at) for v in row[1:5])
        try:
            volume = int(row[5])
        except ValueError:
            raise HistoryError(f"{at}: volume {row[5]!r} is not a whole number")
        if min(o, h, l, c) <= 0 or h < l or not (l <= o <= h and l <= c <= h) or volume < 0:
            raise HistoryError(f"{at}: not a possible bar (prices positive, low <= open, close <= high)")
        if columns[0] and key <= columns[0][-1]:
            raise HistoryError(f"{at}: time goes backwards or repeats")
        for column, value in zip(columns, (key, to_price_units(o), to_price_units(h), to_price_units(l),
                                           to_price_units(c), volume)):
            column.append(value)
    return Series(symbol, *columns, daily=daily)


def read_events(lines, where):
    """Splits and dividends from events.csv lines."""
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != ["symbol", "type", "ex_date",
                                                                               "pay_date", "value"]:
        raise HistoryError(f"{where}: the header must be symbol,type,ex_date,pay_date,value")
    events = []
    for number, row in enumerate(reader, start=2):
        at = f"{where}:{number}"
        try:
            ex_date = date.fromisoformat(row["ex_date"].strip())
            pay_date = date.fromisoformat(row["pay_date"].strip()) if row["pay_date"].strip() else None
        except ValueError:
            raise HistoryError(f"{at}: dates must be YYYY-MM-DD")
        value = _decimal(row["value"], at)
        if value <= 0:
            raise HistoryError(f"{at}: the value must be positive")
        symbol = row["symbol"].strip().upper()
        if row["type"].strip() == "split":
            events.append(Split(symbol, ex_date, *_fraction(value)))
        elif row["type"].strip() == "dividend":
            events.append(Dividend(symbol, ex_date, value.quantize(Decimal("0.000001")), pay_date))
        else:
            raise HistoryError(f"{at}: type must be split or dividend")
    return events


def _fraction(value):
    """A split ratio as (new, old) shares: 1.3333333 -> (4, 3), 0.1 -> (1, 10), 7 -> (7, 1)."""
    for denominator in range(1, 21):
        numerator = (value * denominator).to_integral_value()
        if numerator and abs(value * denominator - numerator) < Decimal("0.0001"):
            return numerator, Decimal(denominator)
    return value, Decimal(1)


def read_assets(lines, where):
    assets = {}
    for number, row in enumerate(csv.DictReader(lines), start=2):
        try:
            symbol = row["symbol"].strip().upper()
            assets[symbol] = Asset(symbol, row["name"].strip(), row["exchange"].strip(), row["class"].strip(),
                                   True, row["fractionable"].strip().lower() == "true")
        except (KeyError, AttributeError):
            raise HistoryError(f"{where}:{number}: symbol,name,exchange,class,fractionable expected")
    return assets


class History:
    """Bars, events and asset names of a set of symbols, loaded once and read by the replay."""

    def __init__(self, series, events=(), assets=None):
        self.series = dict(series)
        self.events = sorted(events, key=lambda e: (getattr(e, "date", None) or e.ex_date, e.symbol))
        self.assets = dict(assets or {})

    @property
    def symbols(self):
        return sorted(self.series)

    def first_day(self):
        days = [s.day(0) for s in self.series.values() if len(s)]
        return min(days) if days else None

    def last_day(self):
        days = [s.day(-1) for s in self.series.values() if len(s)]
        return max(days) if days else None


SHIPPED = "papertrader.market.data"


def shipped_symbols():
    files = importlib.resources.files(SHIPPED) / "daily"
    return sorted(entry.name[:-5] for entry in files.iterdir() if entry.name.endswith(".bars"))


def load_shipped(symbols=None):
    """The history shipped with the package (all of it, or only ``symbols``); unknown symbols are left out."""
    root = importlib.resources.files(SHIPPED)
    available = set(shipped_symbols())
    wanted = sorted(available if symbols is None else set(symbols) & available)
    series = {s: unpack(s, (root / "daily" / f"{s}.bars").read_bytes()) for s in wanted}
    events = [e for e in read_events((root / "events.csv").read_text("utf-8").splitlines(), "events.csv")
              if e.symbol in series]
    assets = read_assets((root / "assets.csv").read_text("utf-8").splitlines(), "assets.csv")
    return History(series, events, {s: a for s, a in assets.items() if s in series})


def csv_files(paths):
    """The files of ``paths``: each file, and the .csv files of each directory."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += [os.path.join(path, name) for name in sorted(os.listdir(path)) if name.lower().endswith(".csv")]
        elif os.path.exists(path):
            files.append(path)
        else:
            raise HistoryError(f"{path}: no such file or directory")
    return files


def file_symbols(paths):
    """The symbols whose history ``paths`` hold (SYMBOL.csv), without reading the files: what a setting that
    names a symbol they lack is told exists."""
    names = (os.path.basename(path)[:-4] for path in csv_files(paths))
    return sorted({name.upper() for name in names if name.lower() not in ("events", "assets")})


def load_files(paths, symbols=None):
    """An operator's own history: SYMBOL.csv files (and events.csv, assets.csv) from ``paths`` (files or
    directories)."""
    series, events, assets = {}, [], {}
    for path in csv_files(paths):
        name = os.path.basename(path)[:-4]
        try:
            with open(path, encoding="utf-8", newline="") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise HistoryError(f"{path}: cannot be read ({type(e).__name__})")
        if name.lower() == "events":
            events += read_events(lines, path)
        elif name.lower() == "assets":
            assets.update(read_assets(lines, path))
        else:
            symbol = name.upper()
            if symbols is None or symbol in symbols:
                series[symbol] = read_csv(symbol, lines, path)
    return History(series, [e for e in events if e.symbol in series],
                   {s: a for s, a in assets.items() if s in series})


def day(moment):
    """The calendar day (New York) a UTC moment falls on, as an ordinal — the key of daily rows."""
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo("America/New_York")).date().toordinal()


def as_date(ordinal):
    return date.fromordinal(ordinal)


ONE_DAY = timedelta(days=1)
