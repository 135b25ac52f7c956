"""Live market data sources (Alpaca, Nasdaq) against a local HTTP server serving recorded answers.

Every test talks real HTTP to tests/provider_server.py on 127.0.0.1 (fixtures in
tests/fixtures/providers/, README there says where each came from).  Time -- back-off,
Retry-After, timeouts, request spacing -- is a task.Clock behind ClockedReactor; the one
test on the real reactor's clock bounds its wait.  No sleeps.
"""

import copy
import email.utils
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.logger import formatEvent, globalLogPublisher
from zope.interface.verify import verifyClass

from papertrader.market.alpaca import AlpacaSource
from papertrader.market.http import MAX_RATE_LIMIT_WAIT, RATE_LIMIT_FALLBACK, retry_after
from papertrader.market.nasdaq import NasdaqSource
from papertrader.market.sources import Asset, IMarketDataSource, SourceUnavailable
from papertrader.trading.corporate import Dividend, Split
from papertrader.trading.market import Bar
from tests.provider_server import HANG, WAIT, ClockedReactor, Partial, Provider, answer, fixture, fixture_json

UTC = timezone.utc
D = Decimal
T = datetime(2024, 5, 16, 19, 55, tzinfo=UTC)  # the minute of the first recorded Alpaca bar
KEY, SECRET = "PKTESTKEY7Q2W9E4R1T6Y", "s3cr3t-never-log-me-8f1d2c3b4a5e6f7a"


@pytest.fixture(autouse=True)
def no_tracebacks():
    """Nothing in these tests may log a failure anywhere (Twisted's own logs included)."""
    failures = []

    def observer(event):
        if event.get("log_failure") is not None or event.get("isError"):
            failures.append(event)
    globalLogPublisher.addObserver(observer)
    yield
    globalLogPublisher.removeObserver(observer)
    assert not failures, [formatEvent(e) + (e["log_failure"].getTraceback() if e.get("log_failure") else "")
                          for e in failures]


@pytest_twisted.async_yield_fixture
async def provider():
    p = Provider()
    p.url = await p.start()
    yield p
    await p.stop()


@pytest_twisted.async_yield_fixture
async def opened():
    """Sources made by a test, closed (their kept-alive connections) at its end."""
    sources = []
    yield sources
    for source in sources:
        await source.close()


@pytest.fixture
def alpaca(provider, opened, logs):
    def make(reactor=None, **kwargs):
        kwargs.setdefault("log", logs.logger("papertrader.market.alpaca"))
        source = AlpacaSource(provider.url, kwargs.pop("trading_url", provider.url), KEY, SECRET,
                              reactor=reactor, **kwargs)
        opened.append(source)
        return source
    return make


@pytest.fixture
def nasdaq(provider, opened, logs):
    def make(reactor=None, **kwargs):
        kwargs.setdefault("log", logs.logger("papertrader.market.nasdaq"))
        kwargs.setdefault("spacing", 0)
        source = NasdaqSource(provider.url, reactor=reactor, **kwargs)
        opened.append(source)
        return source
    return make


def messages(logs):
    return [e.message for e in logs.newest(None)]


async def unavailable(d):
    """The SourceUnavailable ``d`` fails with (the test fails if it succeeds or fails otherwise)."""
    try:
        result = await d
    except SourceUnavailable as e:
        return e
    pytest.fail(f"expected SourceUnavailable, got {result!r}")


def fired(d):
    """What ``d`` has fired with so far ([] if nothing), leaving its result in place."""
    out = []

    def seen(result):
        out.append(result)
        return result
    d.addBoth(seen)
    return out


# --- Alpaca: bars -----------------------------------------------------------------------------


def test_both_sources_provide_the_interface():
    assert verifyClass(IMarketDataSource, AlpacaSource) and verifyClass(IMarketDataSource, NasdaqSource)
    assert AlpacaSource.name == "alpaca" and NasdaqSource.name == "nasdaq"


@pytest_twisted.ensureDeferred
async def test_alpaca_folds_the_completed_minutes_into_one_bar_per_symbol(provider, alpaca):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_minutes.json")))
    source = alpaca()
    end = T + timedelta(minutes=3, seconds=30)  # 19:58 is not over yet

    bars = await source.fetch(["AAPL", "MSFT"], T, end)

    m = timedelta(minutes=1)
    assert bars == {
        "AAPL": Bar("AAPL", T, T + 3 * m, D("189.87"), D("190.02"), D("189.80"), D("189.99"), 5631 + 4120 + 7305),
        "MSFT": Bar("MSFT", T, T + 3 * m, D("420.20"), D("420.35"), D("419.98"), D("420.01"), 2210 + 1804),
    }
    aapl = bars["AAPL"]
    assert all(type(p) is Decimal for p in (aapl.open, aapl.high, aapl.low, aapl.close))
    assert str(aapl.open) == "189.8700" and type(aapl.volume) is int
    [request] = provider.requests()
    assert request.path == "/v2/stocks/bars"
    assert request.args == {"symbols": ["AAPL,MSFT"], "timeframe": ["1Min"], "start": ["2024-05-16T19:55:00Z"],
                            "end": ["2024-05-16T19:58:30Z"], "feed": ["iex"], "adjustment": ["raw"],
                            "sort": ["asc"], "limit": ["10000"]}
    assert request.headers["apca-api-key-id"] == [KEY]
    assert request.headers["apca-api-secret-key"] == [SECRET]
    assert request.headers["user-agent"][0].startswith("PaperTrader/")
    assert source.state == "ok"


@pytest_twisted.ensureDeferred
async def test_alpaca_gives_the_sessions_minutes_only(provider, alpaca):
    """Told the session's hours, a fetch leaves out the minutes before its open (pre-market: they made the first
    bar of the day open, and orders fill, at a pre-market price, dated before the open) and from its close on
    (after-hours)."""
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_minutes.json")))
    source = alpaca()
    m = timedelta(minutes=1)
    # A session from 19:56 to 19:57 (the recorded minutes are 19:55, 19:56, 19:57).
    bars = await source.fetch(["AAPL", "MSFT"], T - 10 * m, T + 4 * m, session=(T + m, T + 2 * m))
    assert {s: (b.start, b.end) for s, b in bars.items()} == {"AAPL": (T + m, T + 2 * m)}  # (MSFT: no 19:56)
    assert (bars["AAPL"].open, bars["AAPL"].close, bars["AAPL"].volume) == (D("189.84"), D("189.9312"), 4120)
    [request] = provider.requests()
    assert (request.arg("start"), request.arg("end")) == ("2024-05-16T19:56:00Z", "2024-05-16T19:57:00Z")


@pytest_twisted.ensureDeferred
async def test_alpaca_never_gives_a_minute_twice_and_leaves_out_symbols_with_nothing_new(provider, alpaca):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_minutes.json")),
                answer(fixture("alpaca_bars_minutes_next.json")))
    source = alpaca()
    m = timedelta(minutes=1)
    await source.fetch(["AAPL", "MSFT"], T, T + 3 * m + timedelta(seconds=30))

    bars = await source.fetch(["AAPL", "MSFT"], T + 3 * m + timedelta(seconds=30), T + 5 * m)

    # AAPL: 19:57 was given already; 19:58 and 19:59 are new and complete.  MSFT: nothing new.
    assert bars == {"AAPL": Bar("AAPL", T + 3 * m, T + 5 * m, D("189.99"), D("190.11"), D("189.94"), D("189.96"),
                                2417 + 6620)}
    assert provider.requests()[1].arg("start") == "2024-05-16T19:58:00Z"  # after the newest minute given
    assert await source.fetch(["AAPL", "MSFT"], T + 5 * m, T + 6 * m) == {}


@pytest_twisted.ensureDeferred
async def test_alpaca_reads_a_recorded_answer_exactly(provider, alpaca):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_recorded.json")))
    start = datetime(2022, 3, 9, 5, 0, tzinfo=UTC)

    bars = await alpaca().fetch(["AAPL", "TSLA"], start, start + timedelta(minutes=1))

    assert bars["TSLA"].open == D("839") and str(bars["TSLA"].open) == "839.0000"  # a JSON integer
    assert str(bars["AAPL"].high) == "163.4100" and bars["AAPL"].volume == 88496480
    assert (bars["AAPL"].start, bars["AAPL"].end) == (start, start + timedelta(minutes=1))


@pytest_twisted.ensureDeferred
async def test_alpaca_prices_are_rounded_to_four_decimals_without_floats(provider, alpaca):
    body = {"bars": {"AAPL": [{"t": "2024-05-16T19:55:00Z", "o": 0.12345, "h": 0.12355, "l": 0.1, "c": 0.10005,
                               "v": 100, "n": 1, "vw": 0.11}]}, "next_page_token": None}
    provider.on("/v2/stocks/bars", answer(json.dumps(body).encode()))

    bar = (await alpaca().fetch(["AAPL"], T, T + timedelta(minutes=1)))["AAPL"]

    # Half-even at the 4th decimal, on the exact decimal text (a float would make 0.10005 -> 0.1)
    assert (str(bar.open), str(bar.high), str(bar.low), str(bar.close)) == ("0.1234", "0.1236", "0.1000", "0.1000")


@pytest_twisted.ensureDeferred
async def test_alpaca_empty_answer_gives_no_bars(provider, alpaca):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_empty.json")))
    assert await alpaca().fetch(["AAPL"], T, T + timedelta(minutes=2)) == {}


@pytest_twisted.ensureDeferred
async def test_alpaca_asks_for_many_symbols_in_a_few_requests(provider, alpaca):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_empty.json")))
    symbols = [f"S{i:03d}" for i in range(250)]

    await alpaca().fetch(symbols, T, T + timedelta(minutes=1))

    asked = [r.arg("symbols").split(",") for r in provider.requests()]
    assert sorted(len(a) for a in asked) == [50, 100, 100]
    assert sorted(s for a in asked for s in a) == symbols


@pytest_twisted.ensureDeferred
async def test_alpaca_follows_next_page_token(provider, alpaca):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_page1.json")), answer(fixture("alpaca_bars_page2.json")))

    bars = await alpaca().fetch(["AAPL", "MSFT"], T, T + timedelta(minutes=3))

    m = timedelta(minutes=1)
    assert bars == {
        "AAPL": Bar("AAPL", T, T + 3 * m, D("189.87"), D("190.02"), D("189.80"), D("189.99"), 5631 + 4120 + 7305),
        "MSFT": Bar("MSFT", T, T + m, D("420.20"), D("420.35"), D("420.10"), D("420.21"), 2210),
    }
    first, second = provider.requests()
    assert "page_token" not in first.args
    token = fixture_json("alpaca_bars_page1.json")["next_page_token"]
    assert second.arg("page_token") == token
    assert {k: v for k, v in second.args.items() if k != "page_token"} == first.args


@pytest_twisted.ensureDeferred
async def test_alpaca_daily_bars_of_the_days_before_a_fresh_start(provider, alpaca):
    """What a fresh live data dir reads at start: each symbol's days, oldest first, split-adjusted, over pages."""
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_daily_page1.json")),
                answer(fixture("alpaca_bars_daily_page2.json")))
    start, end = datetime(2024, 5, 14, 4, tzinfo=timezone.utc), datetime(2024, 5, 17, 12, tzinfo=timezone.utc)

    days = await alpaca().daily_bars(["AAPL", "MSFT"], start, end)

    day = timedelta(days=1)
    assert [(b.start, b.end - b.start, b.close) for b in days["AAPL"]] == [
        (start, day, D("187.43")), (start + day, day, D("189.72")), (start + 2 * day, day, D("189.84"))]
    assert days["MSFT"][-1] == Bar("MSFT", start + 2 * day, start + 3 * day, D("421.80"), D("425.42"), D("420.35"),
                                   D("420.99"), 17530092)
    first, second = provider.requests()
    assert (first.arg("timeframe"), first.arg("adjustment"), first.arg("start"), first.arg("end")) == (
        "1Day", "split", "2024-05-14T04:00:00Z", "2024-05-17T12:00:00Z")
    assert second.arg("page_token") == fixture_json("alpaca_bars_daily_page1.json")["next_page_token"]


@pytest_twisted.ensureDeferred
async def test_alpaca_daily_bars_cut_by_max_pages_leave_out_the_symbol_read_in_part(provider, alpaca):
    """Pages hold one symbol's days, then the next one's: cut at max_pages, the symbol being read has only its
    oldest days, and its months-old close would become its price (found by review)."""
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_daily_page1.json")),
                answer(fixture("alpaca_bars_daily_page2.json")))
    start, end = datetime(2024, 5, 14, 4, tzinfo=timezone.utc), datetime(2024, 5, 17, 12, tzinfo=timezone.utc)
    assert await alpaca(max_pages=1).daily_bars(["AAPL", "MSFT"], start, end) == {}


@pytest_twisted.ensureDeferred
async def test_alpaca_stops_after_max_pages(provider, alpaca, logs):
    page = fixture_json("alpaca_bars_page1.json")

    def endless(seen):
        return answer(dict(page, next_page_token=f"token-{len(provider.seen)}"))
    provider.on("/v2/stocks/bars", endless)

    bars = await alpaca(max_pages=3).fetch(["AAPL"], T, T + timedelta(minutes=3))

    assert len(provider.requests()) == 3
    assert bars["AAPL"].end == T + timedelta(minutes=2)  # what the pages held is used
    assert sum("more than 3 pages" in m for m in messages(logs)) == 1


@pytest_twisted.ensureDeferred
async def test_alpaca_a_repeated_page_token_is_malformed(provider, alpaca):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_page1.json")))
    e = await unavailable(alpaca().fetch(["AAPL"], T, T + timedelta(minutes=3)))
    assert "repeats a next_page_token" in str(e)
    assert len(provider.requests()) == 2


@pytest_twisted.ensureDeferred
async def test_alpaca_unknown_symbol_is_left_out_and_logged_once(provider, alpaca, logs):
    body = fixture_json("alpaca_bars_minutes.json")
    body["bars"]["ZZZZ"] = copy.deepcopy(body["bars"]["MSFT"])
    provider.on("/v2/stocks/bars", answer(body))
    source = alpaca()

    first = await source.fetch(["AAPL", "MSFT"], T, T + timedelta(minutes=2))
    second = await source.fetch(["AAPL", "MSFT"], T + timedelta(minutes=2), T + timedelta(minutes=4))

    assert "ZZZZ" not in first and "ZZZZ" not in second
    assert set(first) == {"AAPL", "MSFT"}
    assert sum("ZZZZ" in m for m in messages(logs)) == 1


@pytest_twisted.ensureDeferred
async def test_alpaca_missing_symbol_is_simply_absent(provider, alpaca, logs):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_minutes.json")))

    bars = await alpaca().fetch(["AAPL", "MSFT", "NVDA"], T, T + timedelta(minutes=2))

    assert set(bars) == {"AAPL", "MSFT"}
    assert not any("NVDA" in m for m in messages(logs))


MINUTE = {"t": "2024-05-16T19:55:00Z", "o": 189.87, "h": 189.9, "l": 189.8, "c": 189.84, "v": 5631}


def bars_body(**changes):
    bar = dict(MINUTE, **changes)
    for key in [k for k, v in changes.items() if v is None]:
        del bar[key]
    return json.dumps({"bars": {"AAPL": [bar]}, "next_page_token": None}).encode()


MALFORMED = {
    "html instead of JSON": b"<!DOCTYPE html><html><body>Service temporarily down</body></html>",
    "cut off": b'{"bars": {"AAPL": [{"t": "2024-05-16T19:55:00Z", "o": 189.8',
    "not an object": b'[{"t": "2024-05-16T19:55:00Z"}]',
    "bars not a mapping": b'{"bars": [], "next_page_token": null}',
    "bars of a symbol not a list": b'{"bars": {"AAPL": {"t": "2024-05-16T19:55:00Z"}}}',
    "missing close": bars_body(c=None),
    "price as a string": bars_body(o="189.87"),
    "price as a boolean": bars_body(h=True),
    "negative price": bars_body(l=-189.8),
    "zero price": bars_body(o=0),
    "high below low": bars_body(h=189.7),
    "close above high": bars_body(c=190.5),
    "NaN": bars_body().replace(b'"o": 189.87', b'"o": NaN'),
    "time not a time": bars_body(t="yesterday"),
    "fractional volume": bars_body(v=10.5),
    "negative volume": bars_body(v=-1),
    "page token a number": b'{"bars": {}, "next_page_token": 7}',
    "not UTF-8": b'{"bars": {"\xff": []}}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
@pytest_twisted.ensureDeferred
async def test_alpaca_malformed_answer_fails_the_fetch_cleanly(provider, alpaca, logs, body):
    provider.on("/v2/stocks/bars", answer(body))
    source = alpaca()

    e = await unavailable(source.fetch(["AAPL"], T, T + timedelta(minutes=2)))

    assert type(e) is SourceUnavailable and str(e).startswith("alpaca: unavailable: ")
    assert source.state.startswith("unavailable: ")
    logged = messages(logs)
    assert len(logged) == 1 and logged[0].startswith("alpaca: unavailable: ")
    assert not any("Traceback" in m for m in logged)


@pytest_twisted.ensureDeferred
async def test_alpaca_answer_larger_than_the_limit_is_refused(provider, alpaca):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_bars_minutes.json")))
    source = alpaca()
    source.data.max_body = 200
    e = await unavailable(source.fetch(["AAPL"], T, T + timedelta(minutes=2)))
    assert "larger than 200 bytes" in str(e)


# --- shared HTTP behaviour: rate limits, back-off, timeouts, credentials ---------------------


def rate_limit_headers(kind, now):
    if kind == "seconds":
        return {"Retry-After": "30"}
    if kind == "http date":
        return {"Retry-After": email.utils.formatdate(now + 30, usegmt=True)}
    return {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 30)}


@pytest.mark.parametrize("kind", ["seconds", "http date", "x-ratelimit-reset"])
@pytest_twisted.ensureDeferred
async def test_429_stops_requests_until_it_says_then_recovers(provider, alpaca, clock, logs, kind):
    provider.on("/v2/stocks/bars",
                answer(fixture("alpaca_429.json"), 429, rate_limit_headers(kind, clock.seconds())),
                answer(fixture("alpaca_bars_minutes.json")))
    source = alpaca(ClockedReactor(clock))
    end = T + timedelta(minutes=2)
    until = datetime.fromtimestamp(clock.seconds() + 30, UTC)

    e = await unavailable(source.fetch(["AAPL", "MSFT"], T, end))
    assert "HTTP 429" in str(e)
    assert source.state == f"rate limited until {until:%Y-%m-%d %H:%M:%S} UTC"
    for wait in (0, 10, 19):  # 29 s after the 429: still nothing is sent
        clock.advance(wait)
        e = await unavailable(source.fetch(["AAPL", "MSFT"], T, end))
        assert "rate limited until" in str(e)
    assert len(provider.requests()) == 1

    clock.advance(1)
    bars = await source.fetch(["AAPL", "MSFT"], T, end)

    assert set(bars) == {"AAPL", "MSFT"} and len(provider.requests()) == 2
    assert source.state == "ok"
    assert messages(logs) == [
        f"alpaca: rate limited until {until:%Y-%m-%d %H:%M:%S} UTC "
        "(HTTP 429 Too Many Requests for /v2/stocks/bars: rate limit exceeded)",
        "alpaca: back after 30 s"]


def test_retry_after_is_bounded_and_falls_back(clock):
    from twisted.web.http_headers import Headers
    now = clock.seconds()
    assert retry_after(Headers({}), now) == now + RATE_LIMIT_FALLBACK
    assert retry_after(Headers({"Retry-After": ["soon, honest"]}), now) == now + RATE_LIMIT_FALLBACK
    assert retry_after(Headers({"Retry-After": ["99999999"]}), now) == now + MAX_RATE_LIMIT_WAIT
    assert retry_after(Headers({"Retry-After": ["0"]}), now) == now + 1
    past = email.utils.formatdate(now - 3600, usegmt=True)
    assert retry_after(Headers({"Retry-After": [past]}), now) == now + 1
    # Retry-After wins over X-RateLimit-Reset
    both = Headers({"Retry-After": ["5"], "X-RateLimit-Reset": [str(int(now) + 50)]})
    assert retry_after(both, now) == now + 5


@pytest_twisted.ensureDeferred
async def test_server_errors_back_off_exponentially_to_a_minute_then_recover(provider, alpaca, clock, logs):
    failures = 8

    def answers(seen):
        if len(provider.seen) <= failures:
            return answer(b"<html><title>503 Service Unavailable</title></html>", 503, content_type="text/html")
        return answer(fixture("alpaca_bars_minutes.json"))
    provider.on("/v2/stocks/bars", answers)
    source = alpaca(ClockedReactor(clock))
    end = T + timedelta(minutes=2)

    e = await unavailable(source.fetch(["AAPL", "MSFT"], T, end))
    assert str(e) == "alpaca: unavailable: HTTP 503 Service Unavailable for /v2/stocks/bars: 503 Service Unavailable"
    down = clock.seconds()
    for n, delay in enumerate([1, 2, 4, 8, 16, 32, 60, 60], start=1):
        assert len(provider.requests()) == n
        clock.advance(delay - 0.5)
        e = await unavailable(source.fetch(["AAPL", "MSFT"], T, end))  # backing off: fails at once
        assert "next try in" in str(e)
        assert len(provider.requests()) == n
        clock.advance(0.5)
        d = source.fetch(["AAPL", "MSFT"], T, end)
        if n < failures:
            await unavailable(d)
    assert set(await d) == {"AAPL", "MSFT"}
    assert source.state == "ok"
    back = round(clock.seconds() - down)
    assert back == 1 + 2 + 4 + 8 + 16 + 32 + 60 + 60
    logged = messages(logs)
    assert logged == ["alpaca: unavailable: HTTP 503 Service Unavailable for /v2/stocks/bars: 503 Service Unavailable",
                      f"alpaca: back after {back} s"]


@pytest_twisted.ensureDeferred
async def test_a_provider_that_never_answers_times_out(provider, alpaca, clock):
    provider.on("/v2/stocks/bars", HANG)
    source = alpaca(ClockedReactor(clock), timeout=5)

    d = source.fetch(["AAPL"], T, T + timedelta(minutes=2))
    request = await provider.wait_for_requests(1)
    clock.advance(4.9)
    assert fired(d) == []
    clock.advance(0.1)

    e = await unavailable(d)
    assert "no answer for /v2/stocks/bars within 5 s" in str(e)
    assert await request.lost.addTimeout(WAIT, reactor) == "lost"  # closed, not left hanging


@pytest_twisted.ensureDeferred
async def test_timeout_on_the_real_clock_is_bounded(provider, alpaca):
    provider.on("/v2/stocks/bars", HANG)
    source = alpaca(timeout=0.3)
    started = reactor.seconds()

    e = await unavailable(source.fetch(["AAPL"], T, T + timedelta(minutes=2)).addTimeout(WAIT, reactor))

    assert "within 0.3 s" in str(e)
    assert 0.29 <= reactor.seconds() - started < 3  # the source's deadline, not this test's guard (WAIT)


@pytest_twisted.ensureDeferred
async def test_a_body_that_stops_halfway_times_out(provider, alpaca):
    # The deadline covers the whole exchange, not only the wait for the headers (treq's own timeout).
    provider.on("/v2/stocks/bars", Partial(b'{"bars": {"AAPL": [', 5000))
    source = alpaca(timeout=0.5)
    started = reactor.seconds()

    e = await unavailable(source.fetch(["AAPL"], T, T + timedelta(minutes=2)).addTimeout(WAIT, reactor))

    assert "within 0.5 s" in str(e)
    assert reactor.seconds() - started < 3  # the source's deadline, not this test's guard (WAIT)
    assert await provider.requests()[0].lost.addTimeout(WAIT, reactor) == "lost"


@pytest_twisted.ensureDeferred
async def test_a_refused_connection_is_unavailable(logs):
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.protocol import Factory
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory())
    closed = f"http://127.0.0.1:{port.getHost().port}"
    await port.stopListening()
    source = AlpacaSource(closed, closed, KEY, SECRET, log=logs.logger("papertrader.market.alpaca"))
    try:
        e = await unavailable(source.fetch(["AAPL"], T, T + timedelta(minutes=1)))
    finally:
        await source.close()
    assert "cannot connect for /v2/stocks/bars" in str(e)
    assert messages(logs) == [f"alpaca: {source.state}"]


@pytest_twisted.ensureDeferred
async def test_credentials_are_sent_on_every_request_and_never_said(provider, alpaca, clock, logs):
    echo = json.dumps({"message": f"key {KEY} with secret {SECRET} is not allowed"}).encode()
    provider.on("/v2/stocks/bars",
                answer(echo, 403), answer(echo, 500), answer(b'{"bars": {"AAPL": "' + SECRET.encode() + b'"}}'),
                answer(echo, 429, {"Retry-After": "5"}), HANG)
    provider.on("/v2/assets", answer(echo, 401))
    provider.on("/v1/corporate-actions", answer(echo, 404))
    source = alpaca(ClockedReactor(clock), timeout=5)
    said = []
    for _ in range(4):
        said.append(str(await unavailable(source.fetch(["AAPL"], T, T + timedelta(minutes=1)))))
        said.append(source.state)
        clock.advance(61)
    d = source.fetch(["AAPL"], T, T + timedelta(minutes=1))
    await provider.wait_for_requests(5)
    clock.advance(5)
    said.append(str(await unavailable(d)))
    said.append(str(await unavailable(source.assets(["AAPL"]))))
    clock.advance(61)
    said.append(str(await unavailable(source.corporate_actions(["AAPL"], date(2024, 5, 1), date(2024, 6, 1)))))
    said += messages(logs) + [repr(source), repr(source.data), repr(source.trading)]

    assert "is not allowed" in said[0]  # the provider's message is shown, with the credentials blanked
    for text in said:
        assert KEY not in text and SECRET not in text, text
    for request in provider.requests():
        assert request.headers["apca-api-key-id"] == [KEY] and request.headers["apca-api-secret-key"] == [SECRET]
    assert len(provider.requests()) == 7


@pytest_twisted.ensureDeferred
async def test_alpaca_bad_keys_are_unavailable_with_the_reason(provider, alpaca):
    provider.on("/v2/stocks/bars", answer(fixture("alpaca_403.json"), 403))
    e = await unavailable(alpaca().fetch(["AAPL"], T, T + timedelta(minutes=1)))
    assert str(e) == ("alpaca: unavailable: HTTP 403 Forbidden for /v2/stocks/bars: forbidden. (check the master's"
                      " APCA_API_KEY_ID and APCA_API_SECRET_KEY: a paper account's keys, from Alpaca's dashboard)")


# --- Alpaca: assets and corporate actions -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_alpaca_assets_come_from_the_trading_host(provider, alpaca):
    trading = Provider()
    trading_url = await trading.start()
    try:
        trading.on("/v2/assets", answer(fixture("alpaca_assets.json")))
        source = alpaca(trading_url=trading_url)

        assets = await source.assets(["AAPL", "BRK.B", "GBTC", "NOPE"])

        [request] = trading.requests()
        assert request.args == {"status": ["active"], "asset_class": ["us_equity"]}
        assert request.headers["apca-api-key-id"] == [KEY]
        assert provider.requests() == []
    finally:
        await trading.stop()
    assert assets == [
        Asset("AAPL", "Apple Inc. Common Stock", "NASDAQ", "us_equity", True, True),
        Asset("BRK.B", "Berkshire Hathaway Inc. Class B", "NYSE", "us_equity", True, True),
        Asset("GBTC", "", "OTC", "us_equity", False, False),
    ]


@pytest_twisted.ensureDeferred
async def test_alpaca_malformed_assets_are_unavailable(provider, alpaca):
    assets = fixture_json("alpaca_assets.json")
    assets[0]["tradable"] = "yes"
    provider.on("/v2/assets", answer(assets))
    e = await unavailable(alpaca().assets(["AAPL"]))
    assert "'tradable' is a str" in str(e)


@pytest_twisted.ensureDeferred
async def test_alpaca_corporate_actions_become_splits_and_dividends(provider, alpaca, logs):
    provider.on("/v1/corporate-actions", answer(fixture("alpaca_corporate_actions.json")))

    actions = await alpaca().corporate_actions(["NVDA", "ZVZZT", "AAPL", "MSFT"], date(2024, 5, 1), date(2024, 7, 1))

    assert actions == [
        Dividend("AAPL", date(2024, 5, 10), D("0.25"), date(2024, 5, 16)),
        Dividend("MSFT", date(2024, 5, 15), D("0.75"), date(2024, 6, 13)),
        Split("ZVZZT", date(2024, 5, 20), D(1), D(10)),
        Split("NVDA", date(2024, 6, 10), D(10), D(1)),
    ]  # the AAPL dividend of 2024-08-12 is outside the dates asked for; name changes were not asked for
    assert all(type(a.new) is Decimal and type(a.old) is Decimal for a in actions if isinstance(a, Split))
    [request] = provider.requests()
    assert request.args == {"symbols": ["NVDA,ZVZZT,AAPL,MSFT"], "types": ["forward_split,reverse_split,cash_dividend"],
                            "start": ["2024-05-01"], "end": ["2024-09-28"], "limit": ["1000"], "sort": ["asc"]}
    assert messages(logs) == []


@pytest_twisted.ensureDeferred
async def test_alpaca_recorded_corporate_actions(provider, alpaca):
    provider.on("/v1/corporate-actions", answer(fixture("alpaca_corporate_actions_recorded.json")))

    actions = await alpaca().corporate_actions(["SRE", "FCF"], date(2023, 5, 1), date(2023, 9, 1))

    assert actions == [Dividend("FCF", date(2023, 5, 4), D("0.125"), date(2023, 5, 19)),
                       Split("SRE", date(2023, 8, 22), D(2), D(1))]


@pytest_twisted.ensureDeferred
async def test_alpaca_corporate_action_with_a_negative_rate_is_malformed(provider, alpaca):
    body = fixture_json("alpaca_corporate_actions.json")
    body["corporate_actions"]["cash_dividends"][0]["rate"] = -0.25
    provider.on("/v1/corporate-actions", answer(body))
    e = await unavailable(alpaca().corporate_actions(["AAPL"], date(2024, 5, 1), date(2024, 7, 1)))
    assert "rate is not positive" in str(e)


# --- Nasdaq: bars from last prices ------------------------------------------------------------

P = datetime(2026, 10, 6, 18, 41, 10, tzinfo=UTC)  # 14:41:10 in New York
THREE = ["AAPL", "BRK.B", "SPY"]


@pytest_twisted.ensureDeferred
async def test_nasdaq_first_poll_gives_honest_bars_from_the_last_price(provider, nasdaq):
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_watchlist.json")))
    source = nasdaq(etfs=["SPY"])

    bars = await source.fetch(THREE, P - timedelta(minutes=1), P)

    start = P - timedelta(minutes=1)
    assert bars == {
        "AAPL": Bar("AAPL", start, P, D("229.87"), D("229.87"), D("229.87"), D("229.87"), 0),
        "BRK.B": Bar("BRK.B", start, P, D("505.92"), D("505.92"), D("505.92"), D("505.92"), 0),
        "SPY": Bar("SPY", start, P, D("1012.40"), D("1012.40"), D("1012.40"), D("1012.40"), 0),
    }
    assert str(bars["SPY"].close) == "1012.4000"
    [request] = provider.requests()
    assert request.args == {"symbol": ["aapl|stocks", "brk.b|stocks", "spy|etf"]}
    assert "Mozilla/5.0" in request.headers["user-agent"][0] and "PaperTrader" in request.headers["user-agent"][0]
    assert not {"origin", "referer", "apca-api-key-id"} & set(request.headers)


@pytest_twisted.ensureDeferred
async def test_nasdaq_bar_only_on_a_new_trade_with_the_volume_traded_since(provider, nasdaq):
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_watchlist.json")),
                answer(fixture("nasdaq_watchlist_next.json")))
    source = nasdaq(etfs=["SPY"])
    await source.fetch(THREE, P - timedelta(minutes=1), P)
    later = P + timedelta(seconds=90)

    bars = await source.fetch(THREE, P, later)

    assert bars == {  # BRK.B did not trade again: no bar
        "AAPL": Bar("AAPL", P, later, D("229.91"), D("229.91"), D("229.91"), D("229.91"), 41_250_002 - 41_208_337),
        "SPY": Bar("SPY", P, later, D("1011.95"), D("1011.95"), D("1011.95"), D("1011.95"), 38_802_515 - 38_771_020),
    }
    assert await source.fetch(THREE, later, later + timedelta(minutes=1)) == {}  # nothing new


@pytest_twisted.ensureDeferred
async def test_nasdaq_bar_starts_at_the_latest_poll_that_saw_no_trade(provider, nasdaq):
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_watchlist.json")),
                answer(fixture("nasdaq_watchlist.json")), answer(fixture("nasdaq_watchlist_next.json")))
    source = nasdaq(etfs=["SPY"])
    p2, p3 = P + timedelta(seconds=30), P + timedelta(seconds=80)
    await source.fetch(["AAPL"], P - timedelta(minutes=1), P)
    assert await source.fetch(["AAPL"], P, p2) == {}

    bars = await source.fetch(["AAPL"], p2, p3)

    assert (bars["AAPL"].start, bars["AAPL"].end, bars["AAPL"].volume) == (p2, p3, 41_250_002 - 41_208_337)


@pytest_twisted.ensureDeferred
async def test_nasdaq_a_sale_outside_the_session_is_not_its_price(provider, nasdaq):
    """The first poll after the open still shows the last pre-market sale (its time before the open): not the
    session's price; once a sale of the session is there, it is."""
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_watchlist.json")),
                answer(fixture("nasdaq_watchlist.json")))
    source = nasdaq(etfs=["SPY"])
    sale = datetime(2026, 10, 6, 18, 41, tzinfo=UTC)  # the recorded sales' minute
    assert await source.fetch(["AAPL"], P - timedelta(minutes=1), P, session=(sale + timedelta(minutes=1),
                                                                               sale + timedelta(hours=2))) == {}
    bars = await source.fetch(["AAPL"], P - timedelta(minutes=1), P, session=(sale, sale + timedelta(hours=2)))
    assert bars["AAPL"].close == D("229.87")


@pytest_twisted.ensureDeferred
async def test_nasdaq_first_poll_of_a_day_has_no_volume(provider, nasdaq):
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_watchlist.json")),
                answer(fixture("nasdaq_watchlist_next_day.json")))
    source = nasdaq()
    await source.fetch(["AAPL"], P - timedelta(minutes=1), P)
    morning = datetime(2026, 10, 7, 13, 41, 30, tzinfo=UTC)

    bars = await source.fetch(["AAPL"], morning - timedelta(minutes=1), morning)

    assert bars == {"AAPL": Bar("AAPL", P, morning, D("231.02"), D("231.02"), D("231.02"), D("231.02"), 0)}


@pytest_twisted.ensureDeferred
async def test_nasdaq_first_poll_with_an_old_trade_gives_no_bar(provider, nasdaq):
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_watchlist.json")),
                answer(fixture("nasdaq_watchlist_next.json")))
    source = nasdaq()
    late = P + timedelta(minutes=1, seconds=20)  # the 14:41 trade happened before this interval

    assert await source.fetch(["AAPL"], late - timedelta(seconds=10), late) == {}
    bars = await source.fetch(["AAPL"], late, late + timedelta(seconds=30))  # 14:42 is a new trade
    assert bars["AAPL"].start == late and bars["AAPL"].volume == 41_250_002 - 41_208_337


@pytest_twisted.ensureDeferred
async def test_nasdaq_missing_and_unpriced_symbols_are_absent_and_unknown_ones_logged_once(provider, nasdaq, logs):
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_watchlist_unknown.json")),
                answer(fixture("nasdaq_watchlist.json")))
    source = nasdaq()

    bars = await source.fetch(["AAPL", "ZZZZ", "QQQQ"], P, P + timedelta(minutes=1))
    assert set(bars) == {"AAPL"}
    assert messages(logs) == []  # "N/A" and a missing row are ordinary: nothing to log

    for _ in range(2):  # BRK.B and SPY are in the answer but were not asked for
        await source.fetch(["AAPL"], P, P + timedelta(minutes=1))
    logged = messages(logs)
    assert sum("BRK.B" in m for m in logged) == 1 and sum("SPY" in m for m in logged) == 1


@pytest_twisted.ensureDeferred
async def test_nasdaq_a_refused_batch_leaves_its_symbols_out_and_is_logged_once(provider, nasdaq, logs):
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_watchlist_refused.json")))
    source = nasdaq()
    for _ in range(2):
        assert await source.fetch(["AAPL", "ZZZZ"], P, P + timedelta(minutes=1)) == {}
    assert source.state == "ok"
    assert messages(logs) == ["nasdaq: a batch was answered with code 400 (Symbol not exists.); "
                              "its symbols are left out"]


@pytest_twisted.ensureDeferred
async def test_nasdaq_blocked_by_the_site_backs_off(provider, nasdaq, clock, logs):
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_blocked.html"), 403, content_type="text/html"),
                answer(fixture("nasdaq_watchlist.json")))
    source = nasdaq(ClockedReactor(clock))

    e = await unavailable(source.fetch(THREE, P - timedelta(minutes=1), P))
    assert str(e) == "nasdaq: unavailable: HTTP 403 Forbidden for /api/quote/watchlist: Access Denied"
    await unavailable(source.fetch(THREE, P - timedelta(minutes=1), P))
    assert len(provider.requests()) == 1
    clock.advance(1)
    assert set(await source.fetch(THREE, P - timedelta(minutes=1), P)) == set(THREE)
    assert messages(logs) == ["nasdaq: unavailable: HTTP 403 Forbidden for /api/quote/watchlist: Access Denied",
                              "nasdaq: back after 1 s"]


def watchlist_row(**changes):
    body = fixture_json("nasdaq_watchlist.json")
    body["data"] = [dict(body["data"][0], **changes)]
    return json.dumps(body).encode()


NASDAQ_MALFORMED = {
    "html with status 200": b'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><noscript>'
                            b'This site requires JavaScript to verify your browser.</noscript></body></html>',
    "negative price": watchlist_row(lastSalePrice="-$229.87"),
    "zero price": watchlist_row(lastSalePrice="$0.00"),
    "price not a price": watchlist_row(lastSalePrice="$229.8.7"),
    "price a number": watchlist_row(lastSalePrice=229.87),
    "volume not a count": watchlist_row(volume="lots"),
    "time not a time": watchlist_row(lastTradeTimestampDateTime="14:41", lastTradeTimestamp="soon"),
    "no status": b'{"data": []}',
    "data not a list": b'{"data": {"AAPL": {}}, "status": {"rCode": 200}}',
}


@pytest.mark.parametrize("body", NASDAQ_MALFORMED.values(), ids=NASDAQ_MALFORMED.keys())
@pytest_twisted.ensureDeferred
async def test_nasdaq_malformed_answer_fails_the_fetch_cleanly(provider, nasdaq, logs, body):
    provider.on("/api/quote/watchlist", answer(body))
    source = nasdaq()
    e = await unavailable(source.fetch(["AAPL"], P - timedelta(minutes=1), P))
    assert type(e) is SourceUnavailable and str(e).startswith("nasdaq: unavailable: ")
    logged = messages(logs)
    assert len(logged) == 1 and not any("Traceback" in m for m in logged)


@pytest_twisted.ensureDeferred
async def test_nasdaq_asks_twenty_symbols_at_a_time_spaced_out(provider, nasdaq, clock):
    provider.on("/api/quote/watchlist", answer({"data": [], "message": None, "status": {"rCode": 200}}))
    clocked = ClockedReactor(clock)
    source = nasdaq(clocked, spacing=1.0, etfs=["S000"])
    symbols = [f"S{i:03d}" for i in range(45)]

    spaced = clocked.wait_for_call(1.0)
    d = source.fetch(symbols, P, P + timedelta(minutes=1))
    await spaced  # the first answer is in; the next request waits its turn
    clock.advance(0.9)
    assert len(provider.requests()) == 1 and fired(d) == []
    spaced = clocked.wait_for_call(1.0)
    clock.advance(0.1)
    await provider.wait_for_requests(2)
    await spaced
    clock.advance(1)
    await provider.wait_for_requests(3)

    assert await d == {}
    asked = [r.args["symbol"] for r in provider.requests()]
    assert [len(a) for a in asked] == [20, 20, 5]
    assert asked[0][0] == "s000|etf" and asked[0][1] == "s001|stocks"


@pytest_twisted.ensureDeferred
async def test_nasdaq_learns_which_symbols_are_etfs(provider, nasdaq):
    rows = {row["symbol"]: row for row in fixture_json("nasdaq_watchlist.json")["data"]}
    served = {"aapl|stocks": rows["AAPL"], "spy|etf": rows["SPY"]}

    def by_class(seen):  # as the site does: a symbol asked with the wrong class gets no row
        found = [served[asked] for asked in seen.args["symbol"] if asked in served]
        return answer({"data": found, "message": None, "status": {"rCode": 200}})
    provider.on("/api/quote/watchlist", by_class)
    source = nasdaq()

    first = await source.fetch(["AAPL", "SPY"], P - timedelta(minutes=1), P)
    second = await source.fetch(["AAPL", "SPY"], P - timedelta(minutes=1), P)
    third = await source.fetch(["AAPL", "SPY"], P - timedelta(minutes=1), P)

    assert set(first) == {"AAPL"} and set(second) == {"SPY"} and third == {}
    assert [r.args["symbol"] for r in provider.requests()] == [
        ["aapl|stocks", "spy|stocks"], ["aapl|stocks", "spy|etf"], ["aapl|stocks", "spy|etf"]]


@pytest_twisted.ensureDeferred
async def test_nasdaq_assets_give_names(provider, nasdaq):
    provider.on("/api/quote/watchlist", answer(fixture("nasdaq_watchlist.json")))
    assets = await nasdaq(etfs=["SPY"]).assets(THREE)
    assert assets == [Asset("AAPL", "Apple Inc. Common Stock"), Asset("BRK.B", "Berkshire Hathaway Inc. Class B"),
                      Asset("SPY", "SPDR S&P 500 ETF Trust")]


@pytest_twisted.ensureDeferred
async def test_nasdaq_has_no_corporate_actions(provider, nasdaq):
    assert await nasdaq().corporate_actions(THREE, date(2026, 1, 1), date(2026, 12, 31)) == []
    assert provider.requests() == []
