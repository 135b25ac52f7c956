"""Bad input to the HTTP API over raw HTTP (a socket in a thread, so nothing is cleaned up on the way): malformed
JSON, wrong types, unknown fields, a body over 64 kB, path tricks, missing or wrong keys, wrong methods, query
values too long, requests twisted.web itself refuses.  Each gets a JSON error with the right status: never a
traceback, an HTML page, a redirect or a hang."""

import base64
import json
import socket

import pytest
import pytest_twisted

from tests.http_helpers import api, in_thread  # noqa: F401 (a fixture)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def exchange(port, raw, timeout=10):
    """Send ``raw`` bytes (a request with ``Connection: close``) and read the whole answer: (status, headers,
    body).  Every read is bounded by ``timeout``: a server that hangs fails the test."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        received = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        decoded = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            size = int(size, 16)
            if size == 0:
                break
            decoded, body = decoded + rest[:size], rest[size + 2:]
        body = decoded
    return status, headers, body


class Raw:
    def __init__(self, api):
        self.port = api.port
        self.key = {"APCA-API-KEY-ID": api.key_id, "APCA-API-SECRET-KEY": api.secret}

    def request(self, method, path, body=None, headers=None, auth=True):
        """(status, headers, body) of one request, sent as raw bytes (``path`` exactly as given)."""
        all_headers = dict(self.key if auth else {}, **(headers or {}))
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
            if "Transfer-Encoding" not in all_headers:
                all_headers.setdefault("Content-Length", str(len(body)))
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in all_headers.items()) + "\r\n"
        raw = (head.encode("latin-1") if isinstance(path, str) else head) + (body or b"")
        return in_thread(exchange, self.port, raw, what=f"{method} {str(path)[:60]}")

    async def error(self, status, method, path, body=None, **kw):
        """The request's answer must be the API's JSON error with ``status``; its message."""
        got, headers, raw = await self.request(method, path, body, **kw)
        assert got == status, (method, str(path)[:80], got, raw[:300])
        assert headers["content-type"].startswith("application/json"), headers
        assert "location" not in headers
        error = json.loads(raw)
        assert isinstance(error["code"], int) and error["code"] // 100_000 == status, error
        assert isinstance(error["message"], str) and "Traceback" not in error["message"], error
        return error["message"]


def order(**fields):
    base = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}
    return json.dumps({k: v for k, v in dict(base, **fields).items() if v is not ...}).encode()


@pytest_twisted.ensureDeferred
async def test_bad_bodies(api):
    raw = Raw(api)
    assert "not valid JSON" in await raw.error(400, "POST", "/v2/orders", b'{"symbol": ')
    assert "not valid JSON" in await raw.error(400, "POST", "/v2/orders", b'{"qty": NaN}')
    assert "not valid JSON" in await raw.error(400, "POST", "/v2/orders", b"\xff\xfe{}")
    assert "not valid JSON" in await raw.error(400, "POST", "/v2/orders", b"[" * 10_000 + b"]" * 10_000)
    assert "JSON object" in await raw.error(422, "POST", "/v2/orders", b"[1, 2]")
    assert "qty" in await raw.error(422, "POST", "/v2/orders", order(qty="abc"))
    assert "qty" in await raw.error(422, "POST", "/v2/orders", order(qty=[1]))
    assert "qty" in await raw.error(422, "POST", "/v2/orders", order(qty=True))
    assert "qty" in await raw.error(422, "POST", "/v2/orders", order(qty={"n": 1}))
    assert "qty" in await raw.error(422, "POST", "/v2/orders", b'{"symbol": "AAPL", "qty": 1e400, "side": "buy"}')
    assert await raw.error(422, "POST", "/v2/orders", order(qty=0.0000001)) == "qty has more than 6 decimals"
    assert "side" in await raw.error(422, "POST", "/v2/orders", order(side=5))
    assert "side" in await raw.error(422, "POST", "/v2/orders", order(side="short"))
    assert "symbol" in await raw.error(422, "POST", "/v2/orders", order(symbol=None))
    assert "order type" in await raw.error(422, "POST", "/v2/orders", order(type="iceberg"))
    assert "qty or notional" in await raw.error(422, "POST", "/v2/orders", order(notional=10))
    assert "'foo'" in await raw.error(422, "POST", "/v2/orders", order(foo=1))
    assert "bracket" in await raw.error(422, "POST", "/v2/orders", order(take_profit={"limit_price": 1}))
    assert "client_order_id" in await raw.error(422, "POST", "/v2/orders", order(client_order_id="x" * 129))
    assert "client_order_id" in await raw.error(422, "POST", "/v2/orders", order(client_order_id="a\tb"))
    assert "'bar'" in await raw.error(422, "PATCH", "/v2/orders/61e69015-8549-4bfd-b9c3-01e75843f47d",
                                      b'{"bar": 1}')
    big = b'{"symbol": "AAPL", "pad": "' + b"x" * 70_000 + b'"}'
    assert "too large" in await raw.error(413, "POST", "/v2/orders", big)
    chunks = b"".join(b"%x\r\n%s\r\n" % (10_000, b"y" * 10_000) for _ in range(8)) + b"0\r\n\r\n"
    assert "too large" in await raw.error(413, "POST", "/v2/orders", chunks, headers={
        "Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    # Nothing of all that made an order.
    assert await api.d.master.db.query("SELECT COUNT(*) FROM orders") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_bad_paths_methods_and_queries(api):
    raw = Raw(api)
    status, headers, body = await raw.request("GET", "/v2/account")
    assert status == 200 and json.loads(body)["status"] == "ACTIVE"
    for path in ("/v2/orders/../account", "/v2/orders/%2e%2e/account", "/v2/orders/%2e%2e", "/v2/nothing",
                 "/v1/account", "/v2//account", "/v2/account/", "/v2/orders/abc", "/v2/orders/%00",
                 "/v2/orders/" + "a" * 12_000, "/v2/positions/%2F", "/v2/orders/61e69015-8549-4bfd-b9c3-01e75843f47d"):
        await raw.error(404, "GET", path)
    assert "UTF-8" in await raw.error(400, "GET", "/v2/orders/%ff")
    for bad in (b"GET /v2/acc\x00ount HTTP/1.1", b"GET /v2/orders/" + b"a" * 20_000 + b" HTTP/1.1",
                b"GET /v2/account HTTP/9.9 extra"):
        status, headers, body = await in_thread(exchange, raw.port, bad + b"\r\nConnection: close\r\n\r\n")
        assert status == 400 and json.loads(body)["code"] == 40010000
    many = "".join(f"X-Filler-{i}: {'z' * 100}\r\n" for i in range(200))
    status, headers, body = await in_thread(exchange, raw.port, (
        f"GET /v2/account HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n").encode())
    assert status == 400 and json.loads(body)["code"] == 40010000

    assert await raw.error(405, "PUT", "/v2/orders", b"{}") == "method not allowed"
    await raw.error(405, "POST", "/v2/account", b"{}")
    await raw.error(405, "DELETE", "/v2/clock")

    for query, what in (("status=" + "o" * 5000, "too long"), ("status=sideways", "status"), ("limit=abc", "limit"),
                        ("limit=501", "limit"), ("limit=0", "limit"), ("after=yesterday", "after"),
                        ("until=2024-13-45", "until"), ("nested=maybe", "nested"), ("direction=up", "direction"),
                        ("symbols=" + ",".join(["A"] * 201), "at most"),
                        ("symbols=AA%00PL", "control"), ("symbols=%E2%82%AC", "symbol"), ("side=%ff", "UTF-8")):
        assert what in await raw.error(422, "GET", f"/v2/orders?{query}"), query
    assert "timeframe" in await raw.error(422, "GET", "/v2/stocks/bars?symbols=AAPL&timeframe=7Min")
    assert "symbols" in await raw.error(422, "GET", "/v2/stocks/bars?timeframe=1Min")
    assert "page_token" in await raw.error(422, "GET", "/v2/stocks/bars?symbols=AAPL&timeframe=1Min&page_token=%%%")
    assert "limit" in await raw.error(422, "GET", "/v2/stocks/bars?symbols=AAPL&timeframe=1Min&limit=10001")
    assert "percentage" in await raw.error(422, "DELETE", "/v2/positions/AAPL?qty=1&percentage=5")
    assert "date" in await raw.error(422, "GET", "/v2/account/activities?date=2024-01-01&after=2024-01-01")
    assert "activity_types" in await raw.error(422, "GET", "/v2/account/activities?activity_types=FILL"
                                                           "&category=trade_activity")
    assert "end" in await raw.error(422, "GET", "/v2/calendar?start=2024-02-01&end=2024-01-01")
    await raw.error(422, "GET", "/v2/calendar?start=someday")
    await raw.error(422, "GET", "/v2/account/portfolio/history?timeframe=3D")
    await raw.error(422, "GET", "/v2/account/portfolio/history?period=forever")
    await raw.error(422, "GET", "/v2/orders:by_client_order_id")

    # Nothing above reached the worker's last-resort handler (an unexpected exception is logged there).
    failures = [e for e in api.d.cluster.workers[0].logs.newest(500) if "HTTP" in e.message and "failed" in e.message]
    assert failures == []


@pytest_twisted.ensureDeferred
async def test_missing_and_wrong_keys(api):
    raw = Raw(api)
    assert "APCA-API-KEY-ID" in await raw.error(401, "GET", "/v2/account", auth=False)
    await raw.error(401, "GET", "/v2/account", auth=False, headers={"APCA-API-KEY-ID": api.key_id})
    await raw.error(401, "GET", "/v2/account", auth=False,
                    headers={"APCA-API-KEY-ID": api.key_id, "APCA-API-SECRET-KEY": "wrong"})
    await raw.error(401, "GET", "/v2/account", auth=False,
                    headers={"APCA-API-KEY-ID": "PK" + "9" * 18, "APCA-API-SECRET-KEY": api.secret})
    await raw.error(401, "GET", "/v2/account", auth=False,
                    headers={"APCA-API-KEY-ID": "x" * 5000, "APCA-API-SECRET-KEY": api.secret})
    await raw.error(401, "GET", "/v2/account", auth=False, headers={"Authorization": "Basic !!!notbase64"})
    await raw.error(401, "GET", "/v2/account", auth=False, headers={"Authorization": "Bearer abc"})
    await raw.error(401, "POST", "/v2/orders", order(), auth=False)
    basic = base64.b64encode(f"{api.key_id}:{api.secret}".encode()).decode()
    status, _, body = await raw.request("GET", "/v2/account", auth=False, headers={"Authorization": f"Basic {basic}"})
    assert status == 200 and json.loads(body)["currency"] == "USD"
    assert await api.d.master.db.query("SELECT COUNT(*) FROM orders") == [(0,)]


def tracebacks(api):
    """The entries with a traceback the master and the worker logged (an unexpected failure: a bug)."""
    return [e.message for logs in (api.d.cluster.master.logs, api.d.cluster.workers[0].logs)
            for e in logs.newest(500) if "Traceback" in e.message]


@pytest_twisted.ensureDeferred
async def test_times_past_the_years_python_has_are_a_422_or_what_exists_never_a_500(api):
    """Found by a user with curl: 9999-12-31 was a 500 (OverflowError adding a day to it) in the calendar and
    portfolio history.  Every time or day parameter is checked the same way: a 422 saying the range, as
    ``until`` was; the calendar, which lists the days of a range that exist, lists those (the always-open
    calendar's: 1970-2029)."""
    raw = Raw(api)

    async def answer(path):
        status, _, body = await raw.request("GET", path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    assert [d["date"] for d in await answer("/v2/calendar?start=2029-12-30&end=9999-12-31")] == [
        "2029-12-30", "2029-12-31"]
    assert await answer("/v2/calendar?start=9999-12-31") == []
    assert await answer("/v2/calendar?start=9999-12-30&end=9999-12-31") == []
    assert await answer("/v2/calendar?start=0001-01-01&end=0001-01-02") == []
    assert [d["date"] for d in await answer("/v2/calendar?start=0001-01-01&end=1970-01-02")] == [
        "1970-01-01", "1970-01-02"]

    times = "give a time from 1900-01-01 to 2200-01-01"
    days = "give a day from 1900-01-01 to 2199-12-31"
    for path, name in (("/v2/orders?", "until"), ("/v2/orders?", "after"),
                       ("/v2/account/activities?", "after"), ("/v2/account/activities?", "until"),
                       ("/v2/stocks/bars?symbols=AAPL&timeframe=1Day&", "start"),
                       ("/v2/stocks/bars?symbols=AAPL&timeframe=1Day&", "end"),
                       ("/v2/stocks/AAPL/bars?timeframe=1Min&", "start"),
                       ("/v2/account/portfolio/history?", "start"), ("/v2/account/portfolio/history?", "end")):
        for value in ("9999-12-31T23:59:59Z", "9999-12-31", "0001-01-01", "0001-01-01T00:00:00%2B01:00",
                      "9999-12-31T23:00:00-05:00", "2200-01-01T00:00:01Z", "1899-12-31T23:59:59Z"):
            message = await raw.error(422, "GET", f"{path}{name}={value}")
            assert message == f"{name} is out of range: {times}", (path, name, value)
    for path, name in (("/v2/account/portfolio/history?", "date_end"), ("/v2/account/activities?", "date"),
                       ("/v2/account/activities/FILL?", "date")):
        for value in ("9999-12-31", "0001-01-01", "2200-01-01", "1899-12-31"):
            assert await raw.error(422, "GET", f"{path}{name}={value}") == f"{name} is out of range: {days}"
    # The edges are in range.
    assert await answer("/v2/account/activities?date=2199-12-31") == []
    assert await answer("/v2/account/activities?date=1900-01-01&direction=asc") == []
    assert (await answer("/v2/account/portfolio/history?date_end=2199-12-31"))["timeframe"] == "1D"
    assert await answer("/v2/orders?status=all&after=1900-01-01&until=2200-01-01T00:00:00Z") == []
    for period in ("100000D", "0D", "99999A", "1Y"):
        assert await raw.error(422, "GET", f"/v2/account/portfolio/history?period={period}") == \
            "period must be a number from 1 to 9999 and D, W, M or A (e.g. 1M)"
    assert (await answer("/v2/account/portfolio/history?period=9999A"))["timeframe"] == "1D"
    # A page token made up with a time no bar can have (or none of its offset) is not an earlier page's.
    import base64 as b64

    for made_up in ("AAPL|9999-12-31T23:59:59.999999+00:00", "AAPL|0001-01-01T00:00:00+01:00", "AAPL|2026-09-21"):
        token = b64.urlsafe_b64encode(made_up.encode()).decode()
        assert await raw.error(422, "GET", f"/v2/stocks/bars?symbols=AAPL&timeframe=1Min&page_token={token}") == \
            "page_token: the next_page_token of an earlier page"
    assert tracebacks(api) == []


@pytest_twisted.ensureDeferred
async def test_a_failure_of_the_server_is_one_500_message_whichever_side_failed(api, monkeypatch):
    """The worker's last resort and the master's ServerError said it in two ways; one now."""
    from papertrader.errors import ServerError
    from papertrader.worker.http import alpaca

    raw = Raw(api)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug on the worker")

    monkeypatch.setattr(alpaca, "clock", broken)
    assert await raw.error(500, "GET", "/v2/clock") == ServerError().message == \
        "The server failed to process the request; it has been logged."
    monkeypatch.undo()
    monkeypatch.setitem(api.d.cluster.master.app._handlers, "clock", broken)  # the master's Clock command
    assert await raw.error(500, "GET", "/v2/clock") == ServerError().message
    assert len(tracebacks(api)) == 2


@pytest_twisted.ensureDeferred
async def test_numbers_are_refused_naming_the_field_as_the_request_did_and_saying_the_limit(api):
    """Found by a user: 1e35 shares was "qty must be a finite number" and 1e30 "quantity is larger than
    1000000000", a limit price of 1e300 "must be a finite number", -5 shares "qty must be positive" and 0
    "quantity must be positive".  Each now says what is wrong in the request's words, and the limit."""
    raw = Raw(api)
    for fields, message in (
            (dict(qty="99999999999999999999999999999999999"), "qty must be at most 1000000000"),
            (dict(qty="1e30"), "qty must be at most 1000000000"),
            (dict(qty=1e300), "qty must be at most 1000000000"),
            (dict(qty="1000000000.000001"), "qty must be at most 1000000000"),
            (dict(qty="-5"), "qty must be positive"),
            (dict(qty="0"), "qty must be positive"),
            (dict(qty=0), "qty must be positive"),
            (dict(qty="-0"), "qty must be positive"),
            (dict(qty="0.0000001"), "qty has more than 6 decimals"),
            (dict(qty="1e-999999999"), "qty has more than 6 decimals"),
            (dict(qty="Infinity"), "qty must be a finite number"),
            (dict(qty="abc"), "qty must be a number"),
            (dict(qty=..., notional="0"), "notional must be positive"),
            (dict(qty=..., notional="1e13"), "notional must be at most 1000000000"),
            (dict(qty=..., notional="1.001"), "notional has more than 2 decimals"),
            (dict(type="limit", limit_price="1e300"), "limit_price must be at most 1000000"),
            (dict(type="limit", limit_price="1e999999999"), "limit_price must be at most 1000000"),
            (dict(type="limit", limit_price="1000000.01"), "limit_price must be at most 1000000"),
            (dict(type="limit", limit_price="0"), "limit_price must be positive"),
            (dict(type="limit", limit_price="-1"), "limit_price must be positive"),
            (dict(type="limit", limit_price="1.00001"), "limit_price has more than 4 decimals"),
            (dict(type="limit", limit_price="10.123"), "limit_price 10.123 is not a valid tick: prices from $1 are in"
                                                       " whole cents, below $1 in steps of 0.0001"),
            (dict(type="stop", stop_price="10.125"), "stop_price 10.125 is not a valid tick: prices from $1 are in"
                                                     " whole cents, below $1 in steps of 0.0001"),
            (dict(type="limit", limit_price="10", order_class="bracket", take_profit={"limit_price": "11.001"},
                  stop_loss={"stop_price": "9"}), "take_profit.limit_price 11.001 is not a valid tick: prices from"
                                                   " $1 are in whole cents, below $1 in steps of 0.0001"),
            (dict(type="stop", stop_price="1e12"), "stop_price must be at most 1000000"),
            (dict(type="trailing_stop", trail_price="0"), "trail_price must be positive"),
            (dict(type="trailing_stop", trail_percent="0.001"), "trail_percent has more than 2 decimals"),
            (dict(type="trailing_stop", trail_percent="1e3"), "trail_percent must be at most 100")):
        assert await raw.error(422, "POST", "/v2/orders", order(**fields)) == message, fields
    some = "61e69015-8549-4bfd-b9c3-01e75843f47d"
    assert await raw.error(422, "PATCH", f"/v2/orders/{some}", b'{"qty": "0"}') == "qty must be positive"
    assert await raw.error(422, "PATCH", f"/v2/orders/{some}", b'{"trail": "1e40"}') == \
        "trail must be at most 1000000"
    assert await raw.error(422, "DELETE", "/v2/positions/AAPL?qty=-5") == "qty must be positive"
    assert await raw.error(422, "DELETE", "/v2/positions/AAPL?qty=1e10") == "qty must be at most 1000000000"
    assert await raw.error(422, "DELETE", "/v2/positions/AAPL?percentage=0") == "percentage must be positive"
    assert await raw.error(422, "DELETE", "/v2/positions/AAPL?percentage=1e5") == "percentage must be at most 100"
    # Text holding NUL is refused naming the field, not a command of the worker's (StampedPlaceOrder).
    assert await raw.error(422, "POST", "/v2/orders", order(symbol="AA\x00PL")) == "symbol contains a NUL character"
    assert await api.d.master.db.query("SELECT COUNT(*) FROM orders") == [(0,)]
    # At the limits, an order.
    status, _, body = await raw.request("POST", "/v2/orders", order(type="limit", limit_price="1000000",
                                                                    qty="0.000001", time_in_force="day"))
    assert status == 200, body
    assert tracebacks(api) == []


@pytest_twisted.ensureDeferred
async def test_numbers_are_ascii_decimal_text_only(api):
    """Found by a user: Python's Decimal reads more than a number as JSON or Alpaca writes it, and the API took
    it: qty "1_0" (a digit separator) was an order of 10 shares, "١٢" (Arabic-Indic digits) one of 12, and a
    limit price of "1_50" was 150.  A number given as text is ASCII digits with an optional sign, point and
    exponent, as a JSON number is (``1e3`` stays 1000, as before); anything else is refused, naming the field."""
    raw = Raw(api)
    for fields, message in (
            (dict(qty="1_0"), "qty must be a number"),
            (dict(qty="\u0661\u0662"), "qty must be a number"),
            (dict(qty="\uff11"), "qty must be a number"),  # a fullwidth 1
            (dict(qty=..., notional="1_00"), "notional must be a number"),
            (dict(type="limit", limit_price="1_50"), "limit_price must be a number"),
            (dict(type="stop", stop_price="\u0661\u0665\u0660"), "stop_price must be a number"),
            (dict(type="trailing_stop", trail_percent="1_0"), "trail_percent must be a number")):
        assert await raw.error(422, "POST", "/v2/orders", order(**fields)) == message, fields
    some = "61e69015-8549-4bfd-b9c3-01e75843f47d"
    assert await raw.error(422, "PATCH", f"/v2/orders/{some}", b'{"qty": "1_0"}') == "qty must be a number"
    assert await raw.error(422, "DELETE", "/v2/positions/AAPL?qty=1_0") == "qty must be a number"
    assert await raw.error(422, "DELETE", "/v2/positions/AAPL?percentage=5_0") == "percentage must be a number"
    assert await api.d.master.db.query("SELECT COUNT(*) FROM orders") == [(0,)]
    # What JSON and Alpaca write is still taken: a sign, an exponent, surrounding spaces.
    for qty in ("1e0", "+1", " 1 ", "1.", "1.0E+0"):
        status, _, body = await raw.request("POST", "/v2/orders", order(qty=qty))
        assert status == 200, (qty, body)
        assert json.loads(body)["qty"] == "1"
    assert tracebacks(api) == []


@pytest_twisted.ensureDeferred
async def test_a_day_parameter_given_a_time_or_another_form_says_it_wants_a_day(api):
    """Found by a user: a time where a day is asked for (``/v2/calendar?start=2010-02-01T00:00:00Z``, the
    activities' ``date``, portfolio history's ``date_end``) was refused as "start is too long (at most 16
    characters)", which says nothing of what to send; and ``date.fromisoformat`` took forms no one means as a day
    (``20100201``, the ISO week date ``2010-W05-1``), which the message says are not one.  Each is now the
    message of a day that does not parse: ``... must be a day, YYYY-MM-DD``."""
    raw = Raw(api)
    for path, name in (("/v2/calendar?", "start"), ("/v2/calendar?", "end"),
                       ("/v2/account/portfolio/history?", "date_end"), ("/v2/account/activities?", "date"),
                       ("/v2/account/activities/FILL?", "date")):
        for value in ("2010-02-01T00:00:00Z", "2010-02-01T00:00:00.000000%2B00:00", "20100201", "2010-W05-1",
                      "2010-2-1", "yesterday"):
            assert await raw.error(422, "GET", f"{path}{name}={value}") == f"{name} must be a day, YYYY-MM-DD", \
                (path, name, value)
    status, _, body = await raw.request("GET", "/v2/calendar?start=2024-03-01&end=2024-03-01")
    assert status == 200 and [d["date"] for d in json.loads(body)] == ["2024-03-01"], body


@pytest_twisted.ensureDeferred
async def test_a_whole_number_choice_or_boolean_too_long_says_what_it_takes(api):
    """Found by a user: ``/v2/orders?limit=99999999999999`` was "limit is too long (at most 12 characters)" and
    ``page_size=1000000000000`` "page_size is too long", where ``limit=600`` says the range, "must be a whole
    number from 1 to 500"; so were a ``direction`` or ``nested`` of a few characters too many.  Each now says
    what it takes, whatever the length (up to the 4,096 characters of any query value)."""
    raw = Raw(api)
    for path, message in (
            ("/v2/orders?limit=99999999999999", "limit must be a whole number from 1 to 500"),
            ("/v2/orders?limit=" + "9" * 100, "limit must be a whole number from 1 to 500"),
            ("/v2/account/activities?page_size=1000000000000", "page_size must be a whole number from 1 to 100"),
            ("/v2/stocks/bars?symbols=AAPL&timeframe=1Day&limit=100000000000000",
             "limit must be a whole number from 1 to 10000"),
            ("/v2/orders?nested=not-at-all", "nested must be true or false"),
            ("/v2/positions?cancel_orders=definitely", "cancel_orders must be true or false"),
            ("/v2/orders?direction=" + "descending" * 4, "direction must be one of asc, desc"),
            ("/v2/orders?status=" + "open" * 10, "status must be one of open, closed, all")):
        method = "DELETE" if path.startswith("/v2/positions") else "GET"
        assert await raw.error(422, method, path) == message, path
    assert await raw.error(422, "GET", "/v2/orders?limit=" + "9" * 5000) == "limit is too long (at most 4096 characters)"
