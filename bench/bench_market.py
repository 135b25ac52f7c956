#!/usr/bin/env python
"""Market data benchmarks: loading the shipped history, reading candles, one update from a live provider.

Three parts, in one run, each printed with a baseline measured in the same run:

1. Loading the shipped history at start (``--parts load``).  ``load_shipped()``
   (all 31 symbols) and ``build(Settings())`` (the default market: the replay of
   the shipped history, the XNYS calendar from exchange_calendars, the replay
   clock) are each run in a fresh interpreter (a child process of this script),
   so the first call is what a master pays at start: its time, the growth of the
   process's resident set (RSS) and, in a second fresh interpreter, the peak of
   ``tracemalloc``.  Then ``--repeat`` more calls in the same process (warm).
   Baseline: reading the bytes of the same files and decompressing the ``.bars``
   files, without building anything, measured the same way.
2. Reading candles (``--parts candles``), on the ``--database`` (a fresh schema,
   dropped at the end): the ``bars`` table gets 10,000 daily and 10,140 minute
   candles of one symbol and as many of ``--others`` more symbols (through the
   candle store's own upsert), then ``CandleStore.read`` of 10,000 daily
   candles in one call, the same 10,000 in pages of 1,000 (``start`` after the
   previous page), and 2,000 five-minute candles aggregated from 10,005 minutes.
   Baseline: the very same SELECTs (recorded from the store's calls) through
   ``db.query``, rows as the driver returns them.
3. One update of ``--symbols`` (500) symbols from a local HTTP provider
   (``--parts update``): a twisted.web stand-in (``tests/provider_server.py``)
   answers Alpaca's ``/v2/stocks/bars`` with realistic JSON of completed minute
   bars; ``AlpacaSource.fetch`` (100 symbols per request: 5 requests) is timed,
   then a whole ``MarketService.tick()`` (the fetch with its deadline, the bar
   checks, the quote board, the candle store on the ``--database``, no
   listeners).  Baseline: plain treq GETs of the same requests (the same
   bodies, as many, concurrently) and ``json.loads`` of each body.

SQLite (in a temporary data dir) by default; ``--database postgresql://...``
runs parts 2 and 3 against PostgreSQL in a fresh schema that is dropped at the end.

    .venv/bin/python bench/bench_market.py
    .venv/bin/python bench/bench_market.py --database postgresql://postgres@127.0.0.1:5432/test

The product code is not changed: the pieces of an update are timed by wrapping,
from this script, what ``MarketService`` calls.  Nothing sleeps inside a measured
loop: every loop is bounded in count, and every wait has a timeout.
"""

import argparse
import cProfile
import gc
import importlib
import io
import itertools
import json
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402
from twisted.logger import Logger  # noqa: E402

from papertrader.config import Settings  # noqa: E402
from papertrader.master.candles import CandleStore  # noqa: E402
from papertrader.master.db import Database  # noqa: E402
from papertrader.times import iso  # noqa: E402
from bench.harness import bench_database, drop_schema  # noqa: E402

#: Longest a child process of part 1 may take.
CHILD_TIMEOUT = 300.0
#: Longest any one call of parts 2 and 3 (a read, a fill transaction, a fetch, a tick) may take.
CALL_TIMEOUT = 120.0
MIB = 1024 * 1024


def median(values):
    return statistics.median(values)


def spread(seconds):
    """'median 12.3 ms (min 11.0, max 15.2, n 5)' of a list of seconds."""
    ms = [s * 1000 for s in seconds]
    return f"median {median(ms):.1f} ms (min {min(ms):.1f}, max {max(ms):.1f}, n {len(ms)})"


def ratio(a, b):
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def within(d, reactor, what):
    """``d`` (a Deferred), failing with RuntimeError after CALL_TIMEOUT seconds."""
    def late(failure):
        failure.trap(defer.TimeoutError)
        raise RuntimeError(f"{what}: no result within {CALL_TIMEOUT:.0f} s")
    return d.addTimeout(CALL_TIMEOUT, reactor).addErrback(late)


def profile_lines(profiler, top, what):
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats("tottime").print_stats(top)
    text = stream.getvalue()
    body = text[text.index("   ncalls"):] if "   ncalls" in text else text
    return [f"  profile of {what} (reactor thread), top {top} by own time:"] + \
        ["    " + line for line in body.rstrip().splitlines()]


# --- part 1: loading the shipped history (measured in child processes) ----------------------


def rss():
    """The resident set size of this process in bytes (Linux: /proc; elsewhere the peak, from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def read_shipped_bytes():
    """The baseline: the bytes of the files ``load_shipped`` reads, the .bars ones decompressed; nothing built."""
    import importlib.resources
    import zlib

    from papertrader.market.history import SHIPPED

    root = importlib.resources.files(SHIPPED)
    blobs = [zlib.decompress(entry.read_bytes()) for entry in sorted((root / "daily").iterdir(), key=lambda e: e.name)
             if entry.name.endswith(".bars")]
    return blobs, (root / "events.csv").read_bytes(), (root / "assets.csv").read_bytes()


def child(what, mode, repeat):
    """Runs in a fresh interpreter: one first call of ``what`` (and ``repeat`` warm ones), as a JSON line."""
    import papertrader.market.calendar as calendars
    import papertrader.market.setup as setup
    from papertrader.market import history

    pieces = {}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                pieces[name] = pieces.get(name, 0.0) + time.perf_counter() - started
        return wrapper

    if what == "build":  # where build's time goes, wrapped from here
        setup.load_shipped = timed("history", setup.load_shipped)
        calendars.load = timed("calendar", calendars.load)
    settings = Settings()
    function = {"bytes": read_shipped_bytes, "load": history.load_shipped,
                "build": lambda: setup.build(settings, clock=None),
                "import": lambda: importlib.import_module("exchange_calendars")}[what]
    out = {}
    gc.collect()
    if mode == "memory":
        tracemalloc.start()
        result = function()
        out["kept"], out["peak"] = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    else:
        before = rss()
        started = time.perf_counter()
        result = function()
        out["first"] = time.perf_counter() - started
        out["rss"] = rss() - before
        out["first_pieces"] = dict(pieces)
        out["exchange_calendars_imported"] = "exchange_calendars" in sys.modules
        if what == "bytes":
            blobs, events, assets = result
            out["described"] = dict(files=len(blobs) + 2, decompressed=sum(map(len, blobs)) + len(events) + len(assets))
        elif what == "import":
            out["described"] = {}
            repeat = 0  # a module is imported once
        elif what == "load":
            out["described"] = dict(symbols=len(result.series), bars=sum(len(s) for s in result.series.values()),
                                    events=len(result.events), assets=len(result.assets))
        else:
            out["described"] = dict(assets=len(result.assets), symbols=len(result.source.history.series),
                                    sessions=len(result.calendar._sessions), start=result.clock.now().isoformat())
        del result
        again, warm_pieces = [], []
        for _ in range(repeat):
            gc.collect()
            pieces.clear()
            started = time.perf_counter()
            result = function()
            again.append(time.perf_counter() - started)
            warm_pieces.append(dict(pieces))
            del result
        out["again"] = again
        out["again_pieces"] = {k: median([p.get(k, 0.0) for p in warm_pieces]) for k in pieces} if warm_pieces else {}
        gc.collect()
        tracemalloc.start()
        result = function()
        out["again_kept"], out["again_peak"] = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(json.dumps(out))


def run_child(what, mode, repeat):
    command = [sys.executable, os.path.abspath(__file__), "--child", f"{what}:{mode}", "--repeat", str(repeat)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"part 1: measuring {what} ({mode}) took longer than {CHILD_TIMEOUT:.0f} s")
    if done.returncode != 0:
        raise RuntimeError(f"part 1: measuring {what} ({mode}) failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def shipped_size():
    import importlib.resources

    from papertrader.market.history import SHIPPED

    root = importlib.resources.files(SHIPPED)
    files = [e for e in (root / "daily").iterdir() if e.name.endswith(".bars")] + [root / "events.csv",
                                                                                    root / "assets.csv"]
    return len(files), sum(len(f.read_bytes()) for f in files)


def bench_load(args):
    figures = {}
    for what in ("bytes", "load", "build", "import"):
        figures[what] = run_child(what, "time", args.repeat)
        figures[what].update(run_child(what, "memory", 0))
    n_files, on_disk = shipped_size()

    def memory(f):
        return (f"RSS +{f['rss'] / MIB:.1f} MiB, tracemalloc peak {f['peak'] / MIB:.1f} MiB (kept"
                f" {f['kept'] / MIB:.1f} MiB)")

    def line(label, f):
        return (f"{label}: first call {f['first'] * 1000:.0f} ms, {memory(f)}; again (same process)"
                f" {spread(f['again'])}, tracemalloc peak {f['again_peak'] / MIB:.1f} MiB")

    b, loaded, built = figures["bytes"], figures["load"], figures["build"]
    d = b["described"]
    print(line(f"baseline read+decompress ({d['files']} files, {on_disk / MIB:.1f} MiB on disk ->"
               f" {d['decompressed'] / MIB:.1f} MiB)", b), flush=True)
    d = loaded["described"]
    print(line(f"load_shipped() ({d['symbols']} symbols, {d['bars']} daily bars, {d['events']} splits and"
               f" dividends, {d['assets']} assets)", loaded), flush=True)
    d = built["described"]
    print(line(f"build(Settings()) (replay of {d['symbols']} symbols, {d['assets']} traded; XNYS calendar of"
               f" {d['sessions']} sessions; market time {d['start']})", built), flush=True)
    first, warm = built["first_pieces"], built["again_pieces"]
    rest_first = built["first"] - sum(first.values())
    rest_warm = median(built["again"]) - sum(warm.values())
    print(f"  split of build: history {first.get('history', 0) * 1000:.0f} ms first /"
          f" {warm.get('history', 0) * 1000:.0f} ms again, calendar {first.get('calendar', 0) * 1000:.0f} ms first"
          f" (importing exchange_calendars and pandas included) / {warm.get('calendar', 0) * 1000:.0f} ms again,"
          f" the rest (replay clock and source) {max(0.0, rest_first) * 1000:.0f} ms /"
          f" {max(0.0, rest_warm) * 1000:.0f} ms", flush=True)
    f = figures["import"]
    print(f"  of which importing exchange_calendars (with pandas and numpy), alone in a fresh interpreter:"
          f" {f['first'] * 1000:.0f} ms, {memory(f)}", flush=True)
    for label, f in (("load_shipped", loaded), ("build", built)):
        print(f"ratio {label}/baseline: first call {ratio(f['first'], b['first'])}, again"
              f" {ratio(median(f['again']), median(b['again']))}, RSS {ratio(f['rss'], b['rss'])}, tracemalloc peak"
              f" {ratio(f['peak'], b['peak'])}", flush=True)


# --- part 2: reading candles ----------------------------------------------------------------

SYMBOL = "MSFT"
DAILY = 10_000
#: 26 sessions of 390 minutes: 10,140 minutes, enough for 2,000 five-minute candles (10,005 rows are read).
SESSIONS, SESSION_MINUTES = 26, 390
PAGE = 1_000
FIVE_MINUTE_CANDLES = 2_000
LAST_DAY = date(2018, 3, 27)


def weekdays_back(last, n):
    """The ``n`` weekdays up to ``last``, oldest first."""
    days, d = [], last
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d -= timedelta(days=1)
    return days[::-1]


def walk(rng, n):
    """``n`` (open, high, low, close, volume) rows of a random walk, prices in 1e-4 units."""
    out, price = [], rng.randint(200_000, 5_000_000)
    for _ in range(n):
        close = max(10_000, price + rng.randint(-price // 50, price // 50))
        high = max(price, close) + rng.randint(0, price // 100)
        low = max(5_000, min(price, close) - rng.randint(0, price // 100))
        out.append((price, high, low, close, rng.randint(1_000, 5_000_000)))
        price = close
    return out


def candle_rows(symbol, seed):
    """The bucket rows of ``symbol``: DAILY daily candles (weekdays, opening 14:30 UTC) and SESSIONS x
    SESSION_MINUTES minute candles (the last SESSIONS of those days, from 14:30 UTC)."""
    rng = random.Random(seed)
    days = weekdays_back(LAST_DAY, DAILY)
    rows = [(symbol, "1d", iso(datetime(d.year, d.month, d.day, 14, 30, tzinfo=timezone.utc))) + bar
            for d, bar in zip(days, walk(rng, DAILY))]
    minutes = [datetime(d.year, d.month, d.day, 14, 30, tzinfo=timezone.utc) + timedelta(minutes=m)
               for d in days[-SESSIONS:] for m in range(SESSION_MINUTES)]
    rows += [(symbol, "1m", iso(t)) + bar for t, bar in zip(minutes, walk(rng, len(minutes)))]
    return rows


class Recorder:
    """A Database as the store sees it, recording every query (SQL and parameters) made through it."""

    def __init__(self, db):
        self.db = db
        self.queries = []

    def __getattr__(self, name):
        return getattr(self.db, name)

    def query(self, sql, params=()):
        self.queries.append((sql, list(params)))
        return self.db.query(sql, params)


async def timed_calls(reactor, call, repeat, what):
    """One warm-up call, then ``repeat`` timed ones: (seconds of each, the last result)."""
    result = await within(defer.ensureDeferred(call()), reactor, what)
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = await within(defer.ensureDeferred(call()), reactor, what)
        seconds.append(time.perf_counter() - started)
    return seconds, result


async def query_plan(db, sql, params):
    if db.dialect == "sqlite":
        rows = await db.query("EXPLAIN QUERY PLAN " + sql, params)
        return "; ".join(str(r[-1]) for r in rows)
    rows = await db.query("EXPLAIN (COSTS OFF) " + sql, params)
    return "; ".join(r[0].strip() for r in rows)


async def bench_candles(reactor, args, db, label):
    store = CandleStore(db)
    symbols = [SYMBOL] + [f"Q{i:03d}" for i in range(args.others)]
    started = time.perf_counter()
    total = 0
    for n, symbol in enumerate(symbols):
        rows = candle_rows(symbol, n)
        for first in range(0, len(rows), 10_000):  # one transaction per 10,000 rows
            await within(db.run(store.write, rows[first:first + 10_000]), reactor, "filling bars")
            total += len(rows[first:first + 10_000])
    elapsed = time.perf_counter() - started
    if db.dialect == "postgresql":
        await within(db.execute("ANALYZE bars"), reactor, "ANALYZE")  # what autovacuum does after such a fill
    counts = dict(await db.query("SELECT interval, COUNT(*) FROM bars WHERE symbol = ? GROUP BY interval",
                                 (SYMBOL,)))
    everything = (await db.query("SELECT COUNT(*) FROM bars"))[0][0]
    print(f"fill ({label}): {total} rows of {len(symbols)} symbols ({SYMBOL} and {args.others} others, each"
          f" {DAILY} daily + {SESSIONS * SESSION_MINUTES} minute candles) through CandleStore.write (its upsert),"
          f" 10,000 rows a transaction, in {elapsed:.1f} s ({total / elapsed:.0f} rows/s); bars table now"
          f" {everything} rows, {SYMBOL}: {counts.get('1d', 0)} daily, {counts.get('1m', 0)} minute"
          f"{'; then ANALYZE bars' if db.dialect == 'postgresql' else ''}", flush=True)
    if counts.get("1d") != DAILY or counts.get("1m") != SESSIONS * SESSION_MINUTES:
        raise RuntimeError(f"expected {DAILY} daily and {SESSIONS * SESSION_MINUTES} minute rows of {SYMBOL}")
    first_day = weekdays_back(LAST_DAY, DAILY)[0]
    first_time = datetime(first_day.year, first_day.month, first_day.day, 14, 30, tzinfo=timezone.utc)

    async def daily():
        return await store.read(SYMBOL, "1d", DAILY)

    async def paged():
        candles, start = [], first_time
        for _ in range(DAILY // PAGE):  # bounded: 10 pages
            page = await store.read(SYMBOL, "1d", PAGE, start=start)
            candles += page
            if len(page) < PAGE:
                break
            start = page[-1]["time"] + timedelta(microseconds=1)
        return candles

    async def five_minutes():
        return await store.read(SYMBOL, "5m", FIVE_MINUTE_CANDLES)

    cases = (("daily, one call", daily, DAILY, f"read('{SYMBOL}', '1d', {DAILY})"),
             ("daily, pages of 1000", paged, DAILY,
              f"{DAILY // PAGE} x read('{SYMBOL}', '1d', {PAGE}, start=after the previous page)"),
             ("5m from minutes", five_minutes, FIVE_MINUTE_CANDLES, f"read('{SYMBOL}', '5m', {FIVE_MINUTE_CANDLES})"))
    for name, call, expected, what in cases:
        recorder = Recorder(db)
        store.db = recorder
        result = await within(defer.ensureDeferred(call()), reactor, name)  # records the queries it makes
        store.db = db
        queries = recorder.queries
        if len(result) != expected:
            raise RuntimeError(f"{name}: {len(result)} candles, expected {expected}")
        if call is daily:
            daily_times = [c["time"] for c in result]
        elif call is paged and [c["time"] for c in result] != daily_times:
            raise RuntimeError(f"{name}: the pages do not hold the candles of the one-call read")
        seconds, result = await timed_calls(reactor, call, args.repeat, name)

        async def raw():
            rows = []
            for sql, params in queries:
                rows += await db.query(sql, params)
            return rows

        base, rows = await timed_calls(reactor, raw, args.repeat, name + " (baseline)")
        print(f"candles {name}: {what} -> {len(result)} candles, {spread(seconds)}", flush=True)
        print(f"  baseline raw SELECT: the same {len(queries)} quer{'y' if len(queries) == 1 else 'ies'} through"
              f" db.query -> {len(rows)} rows, {spread(base)}", flush=True)
        print(f"  ratio read/baseline: {ratio(median(seconds), median(base))}; beyond the query (turning rows"
              f" into candles, in the reactor thread) {(median(seconds) - median(base)) * 1000:.1f} ms", flush=True)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await within(defer.ensureDeferred(call()), reactor, name)
            profiler.disable()
            for line in profile_lines(profiler, args.profile, f"candles {name}"):
                print(line, flush=True)
    recorder = Recorder(db)
    store.db = recorder
    await within(defer.ensureDeferred(daily()), reactor, "the daily read")
    store.db = db
    sql, params = recorder.queries[0]
    print(f"  query plan of the daily read ({db.dialect}): {await query_plan(db, sql, params)}", flush=True)


# --- part 3: one update from a local HTTP provider -------------------------------------------

#: A Monday, 10:00 in New York: the market is open.
T0 = datetime(2024, 5, 13, 14, 0, tzinfo=timezone.utc)
#: Market time of an update: this far into its minute.
INTO_MINUTE = timedelta(seconds=5)
MINUTE = timedelta(minutes=1)


def tickers(n):
    """``n`` made-up symbols: AAA, AAB, ... (distinct from the ones of part 2)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return ["".join(t) for t in itertools.islice(itertools.product(letters, repeat=3), n)]


class OffsetClock:
    """The reactor's time moved by ``offset`` seconds (market time in a session; waits still really wait)."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.offset = 0.0

    def seconds(self):
        return self.reactor.seconds() + self.offset

    def callLater(self, delay, f, *args, **kwargs):
        return self.reactor.callLater(delay, f, *args, **kwargs)

    def getDelayedCalls(self):
        return self.reactor.getDelayedCalls()

    def set(self, moment):
        self.offset = moment.timestamp() - self.reactor.seconds()


class Answers:
    """The provider's answers to /v2/stocks/bars, made before any clock starts: for every batch of symbols and
    every round k, the ``minutes`` completed minute bars before T_k = T0 + k x minutes (Alpaca's JSON: t, o, h,
    l, c, v, n, vw; prices with 2-4 decimals)."""

    def __init__(self, symbols, batch_size, minutes, rounds):
        self.minutes = minutes
        self.bodies = {}
        self.misses = 0
        rng = random.Random(10)
        price = {s: rng.randint(500, 50_000) / 100 for s in symbols}
        for k in range(rounds):
            end = self.moment(k)
            for first in range(0, len(symbols), batch_size):
                batch = symbols[first:first + batch_size]
                bars = {}
                for s in batch:
                    items = []
                    for m in range(minutes, 0, -1):
                        o = price[s]
                        c = round(max(0.5, o * (1 + rng.uniform(-0.002, 0.002))), 4)
                        h = round(max(o, c) * (1 + rng.uniform(0, 0.001)), 4)
                        lo = round(min(o, c) * (1 - rng.uniform(0, 0.001)), 4)
                        items.append({"t": (end - m * MINUTE).strftime("%Y-%m-%dT%H:%M:%SZ"), "o": o, "h": h,
                                      "l": lo, "c": c, "v": rng.randint(100, 200_000), "n": rng.randint(1, 900),
                                      "vw": round((h + lo + c) / 3, 6)})
                        price[s] = c
                    bars[s] = items
                self.bodies[(",".join(batch), end)] = json.dumps({"bars": bars, "next_page_token": None}).encode()

    def moment(self, k):
        """T_k: the minute that ends round k's bars (its market time is INTO_MINUTE later)."""
        return T0 + k * self.minutes * MINUTE

    def respond(self, seen):
        from tests.provider_server import answer

        end = datetime.strptime(seen.arg("end") or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        body = self.bodies.get((seen.arg("symbols"), end.replace(second=0)))
        if body is None:
            self.misses += 1
            return answer({"message": "the benchmark has no answer for this request"}, status=500)
        return answer(body)


class Counted:
    """Counts the connections a server accepts (wraps its factory's buildProtocol)."""

    def __init__(self, factory):
        self.count = 0
        original = factory.buildProtocol

        def buildProtocol(addr):
            self.count += 1
            return original(addr)

        factory.buildProtocol = buildProtocol


class TickPieces:
    """Times the pieces of ``MarketService.tick()`` by wrapping, on its objects, what it calls."""

    def __init__(self, service):
        self.pieces = {}

        def timed_deferred(name, function):
            def wrapper(*args, **kwargs):
                started = time.perf_counter()

                def done(result):
                    self.pieces[name] = self.pieces.get(name, 0.0) + time.perf_counter() - started
                    return result

                return defer.maybeDeferred(function, *args, **kwargs).addBoth(done)
            return wrapper

        def timed(name, function):
            def wrapper(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    self.pieces[name] = self.pieces.get(name, 0.0) + time.perf_counter() - started
            return wrapper

        service.source.fetch = timed_deferred("fetch", service.source.fetch)
        service._checked = timed("check", service._checked)
        service.board.update_bars = timed("board", service.board.update_bars)
        service.candles.store = timed_deferred("candles", service.candles.store)
        service._prune = timed_deferred("prune", service._prune)


async def bench_update(reactor, args, db, label):
    import treq.client
    from twisted.web.client import Agent, HTTPConnectionPool

    from papertrader.market import calendar as calendars
    from papertrader.market.alpaca import AlpacaSource
    from papertrader.market.board import QuoteBoard
    from papertrader.market.clock import MarketClock
    from papertrader.market.http import ClockedReactor
    from papertrader.market.service import MarketService
    from tests.provider_server import Provider

    settings = Settings()
    interval = args.interval if args.interval is not None else settings.update_interval
    symbols = tickers(args.symbols)
    batch_size = 100
    rounds = args.rounds + 1  # a warm-up round each
    started = time.perf_counter()
    answers = Answers(symbols, batch_size, args.minutes, 3 * rounds)
    body_bytes = sum(len(b) for b in answers.bodies.values()) / (3 * rounds)
    print(f"update: {len(symbols)} symbols, {args.minutes} completed minute bar(s) each per update, answers of"
          f" {body_bytes / 1024:.0f} KiB per update ({len(answers.bodies) // (3 * rounds)} bodies) made in"
          f" {time.perf_counter() - started:.1f} s; update_interval {interval:g} s", flush=True)
    provider = Provider()
    url = await provider.start()
    connections = Counted(provider.port.factory)
    provider.on("/v2/stocks/bars", answers.respond)
    clock = OffsetClock(reactor)
    log = Logger(namespace="bench.market")
    sources = []

    def source():
        made = AlpacaSource(url, url, "bench-key-id", "bench-secret-key", feed="iex", timeout=settings.provider_timeout,
                            reactor=ClockedReactor(clock, reactor), log=log, batch_size=batch_size)
        sources.append(made)
        return made

    baseline_pool = None
    try:
        # (i) AlpacaSource.fetch: rounds 0 .. rounds-1 of the answers.
        alpaca = source()
        seconds, requests, opened, bodies_seen = [], [], [], []
        profiler = cProfile.Profile() if args.profile else None
        for k in range(rounds):
            end = answers.moment(k) + INTO_MINUTE
            clock.set(end)
            before_requests, before_connections = len(provider.seen), connections.count
            if profiler is not None and k == rounds - 1:
                profiler.enable()
            t = time.perf_counter()
            bars = await within(alpaca.fetch(symbols, answers.moment(k) - args.minutes * MINUTE, end), reactor,
                                "AlpacaSource.fetch")
            elapsed = time.perf_counter() - t
            if profiler is not None and k == rounds - 1:
                profiler.disable()
            if len(bars) != len(symbols):
                raise RuntimeError(f"fetch round {k}: bars of {len(bars)} symbols, expected {len(symbols)}"
                                   f" (answers missed: {answers.misses}; source state: {alpaca.state})")
            if k > 0:
                seconds.append(elapsed)
                requests.append(len(provider.seen) - before_requests)
                opened.append(connections.count - before_connections)
                bodies_seen.append([s.args for s in provider.seen[before_requests:]])
        pool = alpaca.data.pool
        print(f"AlpacaSource.fetch ({len(symbols)} symbols, batch_size {batch_size}): {len(bars)} bars per update,"
              f" {median(requests):.0f} requests, {spread(seconds)}; new connections per update"
              f" {median(opened):.0f} (its pool keeps {pool.maxPersistentPerHost} per host)", flush=True)

        # Baseline: plain treq GETs of the same requests (as recorded), concurrently, and json.loads.
        baseline_pool = HTTPConnectionPool(reactor, persistent=True)
        baseline_pool.maxPersistentPerHost = int(max(pool.maxPersistentPerHost, median(requests)))
        client = treq.client.HTTPClient(Agent(reactor, pool=baseline_pool))
        target = f"{url}/v2/stocks/bars"

        async def get(params):
            response = await client.get(target, params=params)
            if response.code != 200:
                raise RuntimeError(f"baseline: HTTP {response.code}")
            return json.loads(await response.content())

        base, base_opened = [], []
        for k, recorded in enumerate([bodies_seen[0]] + bodies_seen):  # the first is a warm-up
            before_connections = connections.count
            t = time.perf_counter()
            loaded = await within(defer.gatherResults([defer.ensureDeferred(get(p)) for p in recorded],
                                                      consumeErrors=True), reactor, "baseline GETs")
            elapsed = time.perf_counter() - t
            if sum(len(x["bars"]) for x in loaded) != len(symbols):
                raise RuntimeError("baseline: the answers do not hold every symbol")
            if k > 0:
                base.append(elapsed)
                base_opened.append(connections.count - before_connections)
        print(f"  baseline treq GET + json.loads: the same {median(requests):.0f} requests concurrently,"
              f" {spread(base)};"
              f" new connections per update {median(base_opened):.0f} (pool keeps"
              f" {baseline_pool.maxPersistentPerHost} per host)", flush=True)
        print(f"  ratio fetch/baseline: {ratio(median(seconds), median(base))}", flush=True)
        if profiler is not None:
            for line in profile_lines(profiler, args.profile, "one AlpacaSource.fetch"):
                print(line, flush=True)

        # (ii) MarketService.tick(), on answers rounds `rounds` .. 2*rounds.  Two warm-up ticks: the first opens
        # the connections and prunes, and gets at most one minute (a fresh source keeps only minutes that start
        # after the one before its first update); the second puts the first quotes on the board.
        calendar = calendars.load("XNYS", first_year=T0.year - 1, last_year=T0.year + 1)
        board = QuoteBoard(symbols)
        service = MarketService(source(), board, MarketClock(calendar, clock, interval), CandleStore(db), interval,
                                clock, log)
        pieces = TickPieces(service)
        tick_seconds, tick_pieces = [], []
        if profiler is not None:
            profiler = cProfile.Profile()
        for i in range(rounds + 1):
            k = rounds + i
            clock.set(answers.moment(k) + INTO_MINUTE)
            pieces.pieces.clear()
            if profiler is not None and i == rounds:
                profiler.enable()
            t = time.perf_counter()
            await within(service.tick(), reactor, "MarketService.tick")
            elapsed = time.perf_counter() - t
            if profiler is not None and i == rounds:
                profiler.disable()
            if i >= 2:  # the first two ticks warm up: connections, the first prune, the first quotes
                fresh = sum(1 for q in board.all() if q.time == answers.moment(k))
                if "fetch" not in pieces.pieces or fresh != len(symbols):
                    raise RuntimeError(f"tick {i}: {fresh} quotes from this update's bars, expected {len(symbols)}"
                                       f" (answers missed: {answers.misses}; source state: {service.source.state})")
                tick_seconds.append(elapsed)
                tick_pieces.append(dict(pieces.pieces))
        marks = ", ".join("?" for _ in symbols)
        stored = dict(await db.query(f"SELECT interval, COUNT(*) FROM bars WHERE symbol IN ({marks}) GROUP BY"
                                     " interval", symbols))
        split = {k: median([p.get(k, 0.0) for p in tick_pieces]) for k in ("fetch", "check", "board", "candles",
                                                                             "prune")}
        rest = median(tick_seconds) - sum(split.values())
        goal = "within" if max(tick_seconds) < interval else "NOT within"
        print(f"MarketService.tick() ({len(symbols)} symbols, candles on {label}, no listeners): {spread(tick_seconds)}"
              f" ({goal} the {interval:g} s update_interval); candles of these symbols after all the ticks:"
              f" {stored.get('1m', 0)} minute (a bar of one minute only), {stored.get('1d', 0)} daily", flush=True)
        kinds = "1m and 1d" if args.minutes == 1 else "1d"  # a minute row only from a bar of one minute
        print(f"  split (medians): fetch {split['fetch'] * 1000:.1f} ms, check {split['check'] * 1000:.1f} ms, board"
              f" {split['board'] * 1000:.1f} ms, candles store {split['candles'] * 1000:.1f} ms (one transaction,"
              f" {len(symbols) * len(kinds.split(' and '))} rows: {kinds}), prune {split['prune'] * 1000:.1f} ms,"
              f" the rest {rest * 1000:.1f} ms", flush=True)
        print(f"  ratio tick/baseline: {ratio(median(tick_seconds), median(base))}", flush=True)
        if profiler is not None:
            for line in profile_lines(profiler, args.profile, "one MarketService.tick()"):
                print(line, flush=True)
        if answers.misses:
            print(f"WARNING: {answers.misses} requests had no prepared answer", flush=True)
    finally:
        for made in sources:
            await within(defer.ensureDeferred(_close(made)), reactor, "closing the source")
        if baseline_pool is not None:
            await within(baseline_pool.closeCachedConnections(), reactor, "closing the baseline pool")
        await within(defer.ensureDeferred(provider.stop()), reactor, "stopping the provider")


async def _close(source):
    await source.close()


# --- main ------------------------------------------------------------------------------------


async def main(reactor, args):
    total = time.perf_counter()
    database, schema, label = bench_database(args.database)
    data_dir = tempfile.mkdtemp(prefix="ptbench-")
    db = None
    try:
        print(f"database: {label}; parts {','.join(p for p in ('load', 'candles', 'update') if p in args.parts)};"
              f" {os.cpu_count()} CPUs", flush=True)
        if "load" in args.parts:
            bench_load(args)
        if args.parts & {"candles", "update"}:
            db = Database(database or Database.default_url(data_dir), data_dir)
            await within(db.migrate(), reactor, "migrating the database")
            short = "PostgreSQL" if db.dialect == "postgresql" else "SQLite"
            if "candles" in args.parts:
                await bench_candles(reactor, args, db, short)
            if "update" in args.parts:
                await bench_update(reactor, args, db, short)
    finally:
        if db is not None:
            db.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        if schema is not None:
            drop_schema(args.database, schema)
            print(f"dropped schema {schema}", flush=True)
        print(f"total run time {time.perf_counter() - total:.1f} s", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="load,candles,update",
                        help="any of load, candles, update, comma-separated (default: all three)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed calls of each load and read after the first (default 5)")
    parser.add_argument("--others", type=int, default=20,
                        help="other symbols in the bars table besides the one read (default 20)")
    parser.add_argument("--symbols", type=int, default=500, help="symbols of the update (default 500)")
    parser.add_argument("--minutes", type=int, default=1,
                        help="completed minute bars per symbol per update (default 1; at most 15)")
    parser.add_argument("--rounds", type=int, default=5, help="timed updates after a warm-up (default 5)")
    parser.add_argument("--interval", type=float, default=None,
                        help="update_interval of the market service (default: Settings' default)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after the figures, profile one more read / fetch / tick (reactor thread, cProfile)"
                             " and print the top N functions by own time")
    parser.add_argument("--database", default=None,
                        help="postgresql://... (a fresh schema is made and dropped) or sqlite:///PATH;"
                             " default: SQLite in a temporary data dir")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None:
        for name in ("repeat", "symbols", "rounds"):
            if getattr(args, name) < 1:
                parser.error(f"--{name} must be at least 1")
        if args.others < 0 or args.profile < 0:
            parser.error("--others and --profile must be 0 or more")
        if not 1 <= args.minutes <= 15:
            parser.error("--minutes must be 1 to 15 (the source never asks for more than 15 minutes back)")
        if args.interval is not None and args.interval <= 0:
            parser.error("--interval must be positive")
        args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
        if not args.parts or not args.parts <= {"load", "candles", "update"}:
            parser.error("--parts takes load, candles and update, comma-separated")
        if args.database and urlsplit(args.database).scheme not in ("sqlite", "postgresql", "postgres"):
            parser.error("--database takes sqlite:///PATH or postgresql://...")
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    if arguments.child is not None:
        what, mode = arguments.child.split(":")
        child(what, mode, arguments.repeat)
    else:
        task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, arguments)))
