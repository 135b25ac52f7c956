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
``bar_length``), one file per symbol named ``SYMBOL.csv``, prices as decimal numbers
(rounded to 4 decimals, the price step), volume an integer >= 0.  Files are UTF-8 (a byte
order mark, as Excel writes, is allowed) and empty cells after the last column (a trailing
comma) are ignored.  Splits and dividends of such files come from an
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

from papertrader.config import SYMBOL_RE
from papertrader.money import MAX_MONEY, from_price_units, to_price_units
from papertrader.market.sources import Asset
from papertrader.trading.corporate import Dividend, Split
from papertrader.times import read_time

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


#: The header rows of a SYMBOL.csv file: daily bars, or intraday bars.
BAR_HEADERS = (("date", "open", "high", "low", "close", "volume"), ("time", "open", "high", "low", "close", "volume"))
EVENT_HEADER = ("symbol", "type", "ex_date", "pay_date", "value")
ASSET_HEADER = ("symbol", "name", "exchange", "class", "fractionable")
#: The largest price a file may give (the largest amount of money the server counts).
MAX_PRICE = MAX_MONEY
MAX_VOLUME = 2 ** 63 - 1


def _shown(cells, limit=80):
    text = ",".join(cells)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _header(reader, where, accepted):
    """The header row (line 1) as lower-case names, without a byte order mark or the empty cells a trailing comma
    leaves; HistoryError naming line 1 and saying what it must be."""
    try:
        cells = next(reader)
    except StopIteration:
        raise HistoryError(f"{where}:1: empty file (the header row must be {','.join(accepted[0])})")
    names = [c.strip().lower() for c in cells]
    if names:
        names[0] = names[0].lstrip("\ufeff").strip()
    while names and not names[-1]:
        names.pop()
    if tuple(names) not in accepted:
        expected = ",".join(accepted[0]) + (f" (or {accepted[1][0]},...)" if len(accepted) > 1 else "")
        count = ""
        if len(names) != len(accepted[0]):
            count = f"{len(names)} column{'s' if len(names) != 1 else ''}, expected {len(accepted[0])}: "
        hint = " (values must be separated by commas)" if len(names) == 1 and ";" in names[0] else ""
        raise HistoryError(f"{where}:1: {count}the header must be {expected}, not {_shown(cells)}{hint}")
    return names


def _cells(row, names, at):
    """The values of a row, one per column of ``names`` (empty cells after them, a trailing comma, are left out)."""
    if len(row) > len(names) and not "".join(row[len(names):]).strip():
        row = row[:len(names)]
    if len(row) != len(names):
        raise HistoryError(f"{at}: {len(row)} values, expected {len(names)} ({','.join(names)}): {_shown(row)}")
    return [cell.strip() for cell in row]


def _blank(row):
    return not row or not "".join(row).strip()


def _decimal(text, where, name="value"):
    """The number ``text`` of column ``name``; HistoryError naming the column if it is empty or not a number."""
    text = (text or "").strip()
    if not text:
        raise HistoryError(f"{where}: {name} is empty")
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise HistoryError(f"{where}: {name} {text!r} is not a number")
    return value


def _price_units(text, name, at):
    """A price in 1e-4 units (rounded to 4 decimals: the price step)."""
    value = _decimal(text, at, name)
    if value <= 0:
        raise HistoryError(f"{at}: {name} must be positive, not {text}")
    if value > MAX_PRICE:
        raise HistoryError(f"{at}: {name} {text} is larger than {MAX_PRICE}")
    units = to_price_units(value)
    if not units:
        raise HistoryError(f"{at}: {name} {text} is 0 once rounded to 4 decimals (the price step)")
    return units


def _key_text(key, daily):
    """A row's key as its file may write it: a day (YYYY-MM-DD), or a bar's start in UTC (ISO 8601)."""
    if daily:
        return date.fromordinal(key).isoformat()
    return datetime.fromtimestamp(key, timezone.utc).isoformat()


def read_csv(symbol, lines, where):
    """A Series from CSV lines (daily: date,...; intraday: time,...); rows must go forward in time."""
    reader = csv.reader(lines)
    names = _header(reader, where, BAR_HEADERS)
    daily = names[0] == "date"
    columns = [array("q") for _ in range(COLUMNS)]
    for number, row in enumerate(reader, start=2):
        if _blank(row):
            continue
        at = f"{where}:{number}"
        row = _cells(row, names, at)
        if not row[0]:
            raise HistoryError(f"{at}: {names[0]} is empty")
        try:
            if daily:
                key = date.fromisoformat(row[0]).toordinal()
            else:
                moment = read_time(row[0])
                if moment is None or moment.tzinfo is None:
                    raise ValueError
                key = int(moment.timestamp())
        except ValueError:
            raise HistoryError(f"{at}: {row[0]!r} is not a date (YYYY-MM-DD) or a time with a UTC offset")
        o, h, l, c = (_price_units(text, name, at) for text, name in zip(row[1:5], names[1:5]))
        if not row[5]:
            raise HistoryError(f"{at}: volume is empty")
        try:
            volume = int(row[5])
        except ValueError:
            volume = None
        if volume is None or volume < 0:
            raise HistoryError(f"{at}: volume must be a whole number >= 0, not {row[5]!r}")
        if volume > MAX_VOLUME:
            raise HistoryError(f"{at}: volume {row[5]} is larger than {MAX_VOLUME}")
        if not (l <= o <= h and l <= c <= h):
            raise HistoryError(f"{at}: not a possible bar (low <= open, close <= high)")
        if columns[0] and key <= columns[0][-1]:
            previous = _key_text(columns[0][-1], daily)
            if key == columns[0][-1]:
                raise HistoryError(f"{at}: {previous} is the time of the row before too: one row per bar")
            raise HistoryError(f"{at}: time goes backwards ({_key_text(key, daily)} after {previous}): rows"
                               " must be in time order, oldest first (sort a file saved newest first)")
        for column, value in zip(columns, (key, o, h, l, c, volume)):
            column.append(value)
    return Series(symbol, *columns, daily=daily)


def read_events(lines, where, symbols=None, seen=None):
    """Splits and dividends from events.csv lines.  With ``symbols`` (those that have a SYMBOL.csv file), an event
    of any other symbol is refused: it would never happen.  A split of a symbol and day already listed (or a
    dividend row listed as it is), here or in the files ``seen`` ({key: "file:line"}, shared by the caller), is
    refused: it would be applied twice."""
    seen = {} if seen is None else seen
    reader = csv.reader(lines)
    names = _header(reader, where, (EVENT_HEADER,))
    events = []
    for number, row in enumerate(reader, start=2):
        if _blank(row):
            continue
        at = f"{where}:{number}"
        symbol, kind, ex_text, pay_text, value_text = _cells(row, names, at)
        symbol = symbol.upper()
        if not symbol:
            raise HistoryError(f"{at}: symbol is empty")
        if kind not in ("split", "dividend"):
            raise HistoryError(f"{at}: type must be split or dividend, not {kind!r}")
        try:
            ex_date = date.fromisoformat(ex_text)
            pay_date = date.fromisoformat(pay_text) if pay_text else None
        except ValueError:
            raise HistoryError(f"{at}: dates must be YYYY-MM-DD")
        if pay_date is not None and pay_date < ex_date:
            raise HistoryError(f"{at}: pay_date {pay_date} is before ex_date {ex_date}")
        value = _decimal(value_text, at, "value")
        if value <= 0:
            raise HistoryError(f"{at}: the value must be positive")
        if value > MAX_PRICE:
            raise HistoryError(f"{at}: value {value_text} is larger than {MAX_PRICE}")
        if symbols is not None and symbol not in symbols:
            raise HistoryError(f"{at}: no {symbol}.csv for this {kind} of {symbol} (the files have"
                               f" {', '.join(sorted(symbols)) or 'no symbol'})")
        if kind == "split":
            event = Split(symbol, ex_date, *_fraction(value))
            key, said = ("split", symbol, ex_date), f"{symbol}'s split of {ex_date}"
            rule = "one row per split (one ratio for the day)"
        else:
            event = Dividend(symbol, ex_date, value.quantize(Decimal("0.000001")), pay_date)
            key, said, rule = event, f"this dividend of {symbol}", "one row per dividend"
        if key in seen:
            raise HistoryError(f"{at}: {said} is listed twice (also at {seen[key]}): {rule}")
        seen[key] = at
        events.append(event)
    return events


def _fraction(value):
    """A split ratio as (new, old) shares: 1.3333333 -> (4, 3), 0.1 -> (1, 10), 7 -> (7, 1)."""
    for denominator in range(1, 21):
        numerator = (value * denominator).to_integral_value()
        if numerator and abs(value * denominator - numerator) < Decimal("0.0001"):
            return numerator, Decimal(denominator)
    return value, Decimal(1)


def read_assets(lines, where):
    """Asset names from assets.csv lines (symbol,name,exchange,class,fractionable; fractionable true or false)."""
    reader = csv.reader(lines)
    names = _header(reader, where, (ASSET_HEADER,))
    assets = {}
    for number, row in enumerate(reader, start=2):
        if _blank(row):
            continue
        at = f"{where}:{number}"
        symbol, name, exchange, asset_class, fractionable = _cells(row, names, at)
        if not symbol:
            raise HistoryError(f"{at}: symbol is empty")
        if fractionable.lower() not in ("true", "false"):
            raise HistoryError(f"{at}: fractionable must be true or false, not {fractionable!r}")
        symbol = symbol.upper()
        assets[symbol] = Asset(symbol, name, exchange, asset_class, True, fractionable.lower() == "true")
    return assets


class History:
    """Bars, events and asset names of a set of symbols, loaded once and read by the replay."""

    def __init__(self, series, events=(), assets=None, files=None):
        self.series = dict(series)
        #: {symbol: the file its bars were read from} (an operator's own files; empty for the shipped history).
        self.files = dict(files or {})
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
        elif os.path.isabs(path):
            raise HistoryError(f"{path}: no such file or directory")
        else:
            raise HistoryError(f"{path}: no such file or directory ({os.path.abspath(path)}: a relative path is from"
                               " the directory the daemon is started in, not the data dir's: give the full path)")
    seen = set()  # a file named twice (itself and its directory) is read once
    return [f for f in files if not (os.path.realpath(f) in seen or seen.add(os.path.realpath(f)))]


def _symbol_of(path):
    """The symbol of a SYMBOL.csv file (None for events.csv and assets.csv); HistoryError if its name is not a
    symbol (a symbol the replay traded but no order, quote or chart could name)."""
    name = os.path.basename(path)[:-4]
    if name.lower() in ("events", "assets"):
        return None
    if not SYMBOL_RE.fullmatch(name.upper()):
        raise HistoryError(f"{path}: {name.upper()!r} is not a symbol: name each file SYMBOL.csv, the symbol it"
                           " holds (a letter, then up to 11 letters, digits, '.' or '-': AAPL.csv, BRK.B.csv)")
    return name.upper()


def file_symbols(paths):
    """The symbols whose history ``paths`` hold (SYMBOL.csv), without reading the files: what a setting that
    names a symbol they lack is told exists."""
    return sorted({s for s in map(_symbol_of, csv_files(paths)) if s is not None})


def _read_lines(path):
    """The lines of a file of UTF-8 text, with or without the byte order mark Excel's "CSV UTF-8" writes."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read().splitlines()
    except UnicodeDecodeError:
        raise HistoryError(f"{path}: not UTF-8 text (save it as CSV UTF-8)")
    except OSError as e:
        raise HistoryError(f"{path}: cannot be read ({e.strerror or type(e).__name__})")


def load_files(paths, symbols=None):
    """An operator's own history: SYMBOL.csv files (and events.csv, assets.csv) from ``paths`` (files or
    directories).  Only the files of ``symbols`` are read if given; an event of a symbol that has no file is
    refused, one of a symbol left out is ignored."""
    files = csv_files(paths)
    first_file = {}
    for path in files:
        symbol = _symbol_of(path)
        if symbol is not None and symbol in first_file:
            raise HistoryError(f"{symbol} has two files, {first_file[symbol]} and {path}: one file per symbol (join"
                               " them, oldest rows first)")
        first_file.setdefault(symbol, path)
    have = {s for s in first_file if s is not None}
    series, events, assets, sources, seen = {}, [], {}, {}, {}
    for path in files:
        symbol = _symbol_of(path)
        if symbol is not None and symbols is not None and symbol not in symbols:
            continue
        lines = _read_lines(path)
        name = os.path.basename(path)[:-4].lower()
        if symbol is not None:
            series[symbol] = read_csv(symbol, lines, path)
            sources[symbol] = path
        elif name == "events":
            events += read_events(lines, path, have, seen)
        else:
            assets.update(read_assets(lines, path))
    return History(series, [e for e in events if e.symbol in series],
                   {s: a for s, a in assets.items() if s in series}, sources)


def day(moment):
    """The calendar day (New York) a UTC moment falls on, as an ordinal — the key of daily rows."""
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo("America/New_York")).date().toordinal()


def as_date(ordinal):
    return date.fromordinal(ordinal)


ONE_DAY = timedelta(days=1)
