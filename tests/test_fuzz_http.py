"""Fuzzing the HTTP API (hypothesis): hostile requests over raw sockets to a live worker, on both databases.

Methods, paths (the API's own with hostile segments, and random ones), query parameters (the API's names and
others, with wrong types, huge values, NaN, exponents, unicode, control characters), JSON bodies (wrong
types, deep nesting, NaN and Infinity, huge numbers and strings, unknown fields), headers (keys missing,
wrong or huge, odd content types, many).  Every answer is a correct 2xx with JSON, or a 4xx with the API's
JSON error whose code matches the status: never a 5xx, a traceback, an HTML page or a hang; nothing logs a
traceback; the worker answers a normal request afterwards.  The fixed cases are in test_http_bad_input.py.
"""

import json
import os
from urllib.parse import quote

import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_helpers import SPECIAL_TEXT, Tracebacks, run_in_thread
from tests.http_helpers import api  # noqa: F401 (a fixture)
from tests.test_http_bad_input import exchange

EXAMPLES = int(os.environ.get("PAPERTRADER_FUZZ_EXAMPLES", 500))
UUID = "61e69015-8549-4bfd-b9c3-01e75843f47d"

#: The API's paths; {} is a segment the fuzz fills.
PATHS = [
    "/v2/account", "/v2/clock", "/v2/positions", "/v2/positions/{}", "/v2/orders", "/v2/orders:by_client_order_id",
    "/v2/orders/{}", "/v2/calendar", "/v2/assets", "/v2/assets/{}", "/v2/account/portfolio/history",
    "/v2/account/activities", "/v2/account/activities/{}", "/v2/stocks/bars", "/v2/stocks/{}/bars",
    "/v2/stocks/bars/latest", "/v2/stocks/quotes/latest", "/v2/stocks/trades/latest", "/v2/stocks/snapshots",
    "/v1/{}", "/v2/{}", "/{}", "/v2/stocks/{}/quotes/latest", "/v2/watchlists", "/v2/watchlists/{}",
    "/v2/watchlists/{}/{}", "/v2/watchlists:by_name", "/v2/account/configurations", "/v1/corporate-actions",
]
METHODS = {"/v2/orders": ["GET", "POST", "POST", "DELETE"], "/v2/orders/{}": ["GET", "PATCH", "DELETE"],
           "/v2/positions": ["GET", "DELETE"], "/v2/positions/{}": ["GET", "DELETE"],
           "/v2/watchlists": ["GET", "POST"], "/v2/watchlists/{}": ["GET", "PUT", "POST", "DELETE"],
           "/v2/watchlists/{}/{}": ["DELETE"], "/v2/watchlists:by_name": ["GET", "PUT", "POST", "DELETE"],
           "/v2/account/configurations": ["GET", "PATCH"]}
QUERY_NAMES = ["symbols", "limit", "status", "after", "until", "direction", "nested", "side", "qty", "percentage",
               "timeframe", "start", "end", "page_token", "feed", "sort", "period", "date", "activity_types",
               "page_size", "category", "asset_class", "exchange", "cancel_orders", "client_order_id",
               "extended_hours", "intraday_reporting", "pnl_reset", "asof", "currency", "adjustment",
               "attributes", "date_end", "cashflow_types", "symbol_or_asset_id", "name", "types", "ids", "cusips"]
BODY_KEYS = ["symbol", "qty", "notional", "side", "type", "time_in_force", "limit_price", "stop_price",
             "trail_price", "trail_percent", "client_order_id", "extended_hours", "order_class", "position_intent",
             "trail", "take_profit", "stop_loss", "legs", "name", "symbols", "no_shorting", "suspend_trade",
             "fractional_trading", "dtbp_check", "max_margin_multiplier", "max_options_trading_level"]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

values = st.one_of(
    st.sampled_from(SPECIAL_TEXT + ["AAPL,MSFT", "1Min", "1Day", "asc", "desc", "open", "closed", "all", UUID,
                                    "2026-09-21", "2026-09-21T10:00:00Z", "true", "false", "50", "-5", "1e5"]),
    st.text(max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.builds(lambda ch, n: ch * n, st.sampled_from(["a", "é", "9", ","]), st.integers(1, 6000)),
)
segments = st.one_of(st.sampled_from(["AAPL", "aapl", UUID, UUID.upper(), "..", "%2e%2e", "%00", "%ff", "FILL",
                                      "DIV", "x" * 300, "%2F", "ÄÖ", "%E2%82%AC", ";", "AAPL;x=1"]),
                     st.text(max_size=20).map(lambda t: quote(t, safe="")))

json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(SPECIAL_TEXT), st.text(max_size=20),
    st.sampled_from(["1e999", "-1e-999", "0.000000001", "123456789012345678901234567890.5"]),
)
json_values = st.recursive(json_leaves, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=12)


@st.composite
def bodies(draw):
    kind = draw(st.sampled_from(["order", "order", "json", "raw", "special"]))
    if kind == "order":
        fields = {key: draw(json_values) for key in draw(st.lists(st.sampled_from(BODY_KEYS), max_size=8))}
        if draw(st.booleans()):  # mostly well-formed orders, with one hostile field
            base = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
            fields = dict(base, **dict(list(fields.items())[:1]))
        return json.dumps(fields).encode()
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "special":
        return draw(st.sampled_from([
            b'{"qty": NaN, "symbol": "AAPL", "side": "buy"}', b'{"qty": Infinity}', b'{"qty": -Infinity}',
            b'{"qty": 1e999999}', b'{"qty": 1' + b"0" * 5000 + b"}", b"[" * 5000, b'{"a":' * 3000,
            b'{"symbol": "AAPL", "symbol": "MSFT"}', b'{"side": "\\ud800"}', b"\xef\xbb\xbf{}", b"null", b"",
            b'"just a string"', b"1", b'{"qty": "1", "side": "buy", "symbol": "AAPL", "type": "limit",'
                                       b' "limit_price": "1e-7"}']))
    return draw(st.binary(max_size=200))


@st.composite
def requests(draw, key):
    path = draw(st.sampled_from(PATHS))
    if draw(st.integers(0, 3)):  # mostly a method the path has
        method = draw(st.sampled_from(METHODS.get(path, ["GET"])))
    else:
        method = draw(st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "TRACE", "BREW"]))
    if "{}" in path:
        path = path.replace("{}", draw(segments))
    query = [(name, draw(values)) for name in draw(st.lists(st.sampled_from(QUERY_NAMES), max_size=4))]
    if draw(st.integers(0, 4)) == 0:
        query.append((draw(st.text(min_size=1, max_size=10)), draw(values)))
    if query:
        path += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe=',')}" for k, v in query)
    headers = {}
    auth = draw(st.sampled_from(["key", "key", "key", "none", "wrong", "huge", "basic-garbage"]))
    if auth == "key":
        headers.update(key)
    elif auth == "wrong":
        headers.update({"APCA-API-KEY-ID": key["APCA-API-KEY-ID"], "APCA-API-SECRET-KEY": "x" * 40})
    elif auth == "huge":
        headers.update({"APCA-API-KEY-ID": "K" * 9000, "APCA-API-SECRET-KEY": "S" * 5000})
    elif auth == "basic-garbage":
        headers["Authorization"] = "Basic " + draw(st.text(alphabet="abcdefghij=+/!:", max_size=40))
    body = None
    if method in ("POST", "PATCH", "PUT") or draw(st.integers(0, 9)) == 0:
        body = draw(bodies())
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "application/json; charset=latin-1",
                                                        "text/plain", "multipart/form-data; boundary=x",
                                                        "application/x-www-form-urlencoded"]))
        headers["Content-Length"] = str(len(body))
    for name in draw(st.lists(st.sampled_from(["Accept", "Accept-Encoding", "Cookie", "Origin", "X-Forwarded-For",
                                               "Expect", "Range", "If-None-Match", "Upgrade"]), max_size=3)):
        headers[name] = draw(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60))
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1", "replace") + (body or b"")


def check(status, headers, body, request):
    shown = request[:300]
    assert status < 500, (status, body[:300], shown)
    assert b"Traceback" not in body, shown
    target = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
    if not target.startswith((b"/v1/", b"/v2/")) or status == 400 and body.startswith(b"{\"code\":40010000"):
        return  # the website's pages (HTML), or a request twisted.web itself refused (JSON, checked above)
    if 200 <= status < 300:
        if body:
            json.loads(body)
        return
    assert 400 <= status < 500, (status, shown)
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:200], shown)
    error = json.loads(body)
    assert isinstance(error["code"], int) and error["code"] // 100_000 == status, (error, shown)
    assert isinstance(error["message"], str) and "Traceback" not in error["message"], (error, shown)


@pytest_twisted.ensureDeferred
async def test_hostile_requests_get_json_errors_or_answers(api):
    key = {"APCA-API-KEY-ID": api.key_id, "APCA-API-SECRET-KEY": api.secret}
    seen = {}

    @FUZZ
    @given(requests(key))
    def fuzz(request):
        status, headers, body = exchange(api.port, request)
        seen[status] = seen.get(status, 0) + 1
        check(status, headers, body, request)
        ok = b"GET /v2/clock HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in key.items()).encode() + b"\r\n"
        assert exchange(api.port, ok)[0] == 200

    with Tracebacks() as tracebacks:
        await run_in_thread(fuzz)
    print(seen)
    assert tracebacks.failures == []
    # Nothing reached the worker's last-resort handler.
    failures = [e for e in api.d.cluster.workers[0].logs.newest(1000) if "HTTP" in e.message and "failed" in
                e.message]
    assert failures == []
