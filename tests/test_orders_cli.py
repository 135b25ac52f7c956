"""Order types from the command line, end to end: limit, stop, trailing, notional, cancel, replace, clock,
order events pushed to `watch --orders` and to `buy --wait`, paging."""

import json
import re
from dataclasses import replace
from decimal import Decimal as D

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from papertrader.client import cli, output
from tests.test_e2e import register_and_login


def j(text):
    return json.loads(text)


async def last_price(d, symbol="AAPL"):
    return d.master.board.get(symbol).price


@pytest_twisted.ensureDeferred
async def test_a_limit_order_waits_then_is_canceled_and_a_market_order_fills(deployment):
    d = deployment
    await register_and_login(d)
    price = await last_price(d)
    far = f"{(price / 2).quantize(D('0.01'))}"
    status, out, err = await d.cli("buy", "AAPL", "3", "--limit", far, "--tif", "gtc", user="alice")
    assert status == 0, err
    order = j(out)
    assert (order["type"], order["time_in_force"], order["limit_price"], order["status"]) == ("limit", "gtc", far,
                                                                                            "new")
    await d.tick()
    status, out, _ = await d.cli("orders", "--status", "open", user="alice")
    assert [o["id"] for o in j(out)] == [order["id"]]
    portfolio = j((await d.cli("portfolio", user="alice"))[1])
    assert D(portfolio["buying_power"]) == D("100000") - D(far) * 3  # reserved at its limit
    status, out, err = await d.cli("cancel", str(order["id"]), user="alice")
    assert status == 0, err
    assert j(out)["status"] == "canceled"
    status, out, err = await d.cli("cancel", str(order["id"]), user="alice")
    assert status == 1 and j(out)["error"] == "order_not_open" and "already canceled" in j(out)["message"]
    status, out, _ = await d.cli("orders", "--status", "open", user="alice")
    assert j(out) == []

    status, out, err = await d.cli("buy", "AAPL", "3", user="alice")
    market = j(out)
    await d.tick()
    status, out, err = await d.cli("order", str(market["id"]), user="alice")
    assert status == 0, err
    filled = j(out)
    assert filled["status"] == "filled" and len(filled["fills"]) == 1
    assert filled["fills"][0]["model"].startswith("bar(") and filled["worker"] in ("worker1", "worker2")


def test_a_close_held_by_one_share_of_open_orders_says_what_to_do():
    """The trading core says '1 is held' for one share (not '1 are'): the close's words follow it."""
    from types import SimpleNamespace

    args = SimpleNamespace(cancel_orders=False, all=False, symbol="aapl", portfolio=None)
    said = cli.close_refusal("insufficient position: selling 5 AAPL but 4 shares are available (1 is held for your"
                             " open sell orders); short selling is not allowed", args)
    assert said == ("1 share is held for your open sell orders; cancel them first, or close with 'papertrader close"
                    " AAPL --cancel-orders'"), said


@pytest_twisted.ensureDeferred
async def test_close_sells_a_whole_position_its_stop_loss_canceled_first_if_asked(deployment):
    d = deployment
    await register_and_login(d)
    price = await last_price(d)
    for argv in (("buy", "AAPL", "4"), ("buy", "MSFT", "2")):
        assert (await d.cli(*argv, user="alice"))[0] == 0
    await d.tick()
    below = f"{(price / 2).quantize(D('0.01'))}"
    stop = j((await d.cli("sell", "AAPL", "4", "--stop", below, "--tif", "gtc", user="alice"))[1])
    status, out, _ = await d.cli("close", "AAPL", user="alice")
    assert status == 1 and j(out)["error"] == "insufficient_position"  # the stop-loss holds the shares
    # The refusal says what to do (not that short selling is not allowed: a close never sells short).
    status, out, err = await d.cli("close", "AAPL", user="alice", json=False)
    assert status == 1 and err == ("papertrader: cannot close AAPL: 4 shares are held for your open sell orders;"
                                   " cancel them first, or close with 'papertrader close AAPL --cancel-orders'\n"), err
    status, out, err = await d.cli("close", "--all", user="alice", json=False)
    assert status == 0 and out.endswith("AAPL: not closed: 4 shares are held for your open sell orders; cancel them"
                                        " first, or close with 'papertrader close --all --cancel-orders'\n"), out
    status, out, err = await d.cli("close", "aapl", "--portfolio", "default", user="alice", json=False)
    assert status == 1 and err.endswith("close with 'papertrader close AAPL --cancel-orders --portfolio default'\n"), err
    await d.tick()  # (the close --all sold MSFT: bought back, to go on as before)
    assert (await d.cli("buy", "MSFT", "2", user="alice"))[0] == 0
    await d.tick()
    status, out, err = await d.cli("close", "AAPL", "--cancel-orders", user="alice", json=False)
    assert status == 0, err
    assert re.fullmatch(r"1 open order of AAPL canceled, then order [0-9]+: sell 4 AAPL at the market \(new\)\.\n",
                        out), out
    assert j((await d.cli("order", str(stop["id"]), user="alice"))[1])["status"] == "canceled"
    await d.tick()
    assert (await d.cli("buy", "MSFT", "1", "--limit", below, "--tif", "gtc", user="alice"))[0] == 0
    status, out, err = await d.cli("close", "--all", "--cancel-orders", user="alice")
    assert status == 0 and [(o["symbol"], o["quantity"]) for o in j(out)["orders"]] == [("MSFT", "2")], (out, err)
    assert j(out)["canceled"] == 1  # (the open buy, canceled before the sale)
    await d.tick()
    assert j((await d.cli("portfolio", user="alice"))[1])["positions"] == []
    status, out, _ = await d.cli("close", user="alice")
    assert status == 2 and "close takes a SYMBOL or --all" in j(out)["message"]


@pytest_twisted.ensureDeferred
async def test_closing_a_position_you_do_not_hold_says_so(deployment):
    """'close XOM' with no XOM held answered 'unknown_order' (no order was named): now the refusal of a position
    not held, saying which portfolio holds none."""
    d = deployment
    await register_and_login(d)
    status, out, err = await d.cli("close", "msft", user="alice")
    assert status == 1 and j(out) == {"error": "insufficient_position",
                                      "message": "no MSFT position in portfolio 'default': nothing to close"}, out
    assert (await d.cli("portfolio", "create", "swing", "--cash", "5000", user="alice"))[0] == 0
    status, out, err = await d.cli("close", "MSFT", "--portfolio", "swing", user="alice", json=False)
    assert (status, out, err) == (1, "", "papertrader: no MSFT position in portfolio 'swing': nothing to close\n")


@pytest_twisted.ensureDeferred
async def test_positions_shows_the_portfolio_s_positions(deployment):
    """People coming from Alpaca type 'positions': it was an unknown command; it is the positions of 'portfolio'."""
    d = deployment
    await register_and_login(d)
    status, out, err = await d.cli("positions", user="alice", json=False)
    assert (status, out) == (0, "No positions in portfolio 'default'.\n"), err
    assert (await d.cli("positions", user="alice"))[1] == "[]\n"
    assert (await d.cli("buy", "AAPL", "2", user="alice"))[0] == 0
    await d.tick()
    status, out, err = await d.cli("positions", user="alice")
    assert status == 0, err
    assert j(out) == j((await d.cli("portfolio", user="alice"))[1])["positions"]
    assert [(p["symbol"], p["quantity"]) for p in j(out)] == [("AAPL", "2")]
    status, out, err = await d.cli("positions", user="alice", json=False)
    shown = (await d.cli("portfolio", user="alice", json=False))[1]
    assert status == 0 and out.startswith("SYMBOL") and out in shown, (out, shown)  # the same table
    assert (await d.cli("positions", "--portfolio", "nope", user="alice"))[0] == 1


def test_how_an_order_ended_reads_as_english_and_says_what_filled():
    def order(status, filled="0"):
        return {"id": 25, "status": status, "filled_quantity": D(filled)}

    assert [cli.ended_words(order(s)) for s in ("expired", "canceled", "rejected")] == [
        "order 25 expired", "order 25 was canceled", "order 25 was rejected"]
    assert cli.ended_words(order("expired", "3")) == "order 25 expired after filling 3"
    assert cli.ended_words(order("canceled", "2.5")) == "order 25 was canceled after filling 2.5"


@pytest_twisted.ensureDeferred
async def test_an_order_that_ended_unfilled_says_how_in_plain_words(tmp_path, settings, database_url, clock):
    """'order 25 was expired' is not English: 'order 25 expired'."""
    import os

    from tests.conftest import start_cluster

    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "replay")
    d = await start_cluster(tmp_path, replace(settings, provider="replay", assets=(), replay_files=fixture,
                                              replay_start="2024-03-04", fill_model="ideal"), database_url, clock)
    try:
        await register_and_login(d)
        day = j((await d.cli("buy", "XYZ", "1", "--limit", "1.00", user="alice"))[1])  # a day order, far below
        status, out, err = await d.cli("buy", "XYZ", "1", "--limit", "1.00", "--tif", "ioc", user="alice",
                                       json=False)
        ioc = int(re.search(r"^id: +([0-9]+)$", out, re.M).group(1))
        await d.tick()  # the whole session: the ioc is canceled, the day order expires at its close
        status, out, err = await d.cli("order", str(day["id"]), user="alice", json=False)
        assert status == cli.ORDER_ENDED and re.fullmatch(f"papertrader: order {day['id']} expired: [^\n]+\n", err), err
        status, out, err = await d.cli("order", str(ioc), user="alice", json=False)
        assert status == cli.ORDER_ENDED and err.startswith(f"papertrader: order {ioc} was canceled: "), err
    finally:
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_replace_links_the_orders(deployment):
    d = deployment
    await register_and_login(d)
    price = await last_price(d)
    low = f"{(price * D('0.5')).quantize(D('0.01'))}"
    lower = f"{(price * D('0.4')).quantize(D('0.01'))}"
    order = j((await d.cli("buy", "AAPL", "2", "--limit", low, "--tif", "gtc", user="alice"))[1])
    status, out, err = await d.cli("replace", str(order["id"]), "--limit", lower, "--quantity", "4", user="alice")
    assert status == 0, err
    new = j(out)
    assert (new["replaces"], new["limit_price"], new["quantity"], new["time_in_force"]) == (order["id"], lower, "4",
                                                                                         "gtc")
    old = j((await d.cli("order", str(order["id"]), user="alice"))[1])
    assert (old["status"], old["replaced_by"]) == ("replaced", new["id"])
    # A replace that changes nothing is refused: no copy takes the order's place.
    status, out, err = await d.cli("replace", str(new["id"]), user="alice")
    assert status == 1 and j(out)["error"] == "invalid_input" and "nothing to replace" in j(out)["message"]
    assert j((await d.cli("order", str(new["id"]), user="alice"))[1])["status"] == "new"
    assert (await d.master.db.query("SELECT COUNT(*) FROM orders"))[0][0] == 2


@pytest_twisted.ensureDeferred
async def test_buy_wait_hears_the_pushed_fill(deployment):
    d = deployment
    await register_and_login(d)
    waiting = defer.ensureDeferred(d.cli("buy", "MSFT", "2", "--wait", "--timeout", "30", user="alice"))
    # Fill it as soon as the order exists (the client then waits for the event on its worker).
    while not (await d.master.db.query("SELECT COUNT(*) FROM orders"))[0][0]:
        await deferLater(0.01)
    await d.tick()
    status, out, err = await waiting
    assert status == 0, err
    order = j(out)
    assert order["status"] == "filled"
    # shown with its fills, as 'papertrader order ID' shows it
    assert order["fills"] and sum(D(f["quantity"]) for f in order["fills"]) == D("2")


def deferLater(seconds):
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_watch_orders_prints_each_event_as_it_happens(deployment):
    d = deployment
    await register_and_login(d)
    watching = defer.ensureDeferred(d.cli("watch", "--orders", "--count", "3", user="alice"))
    # Wait until a worker holds the subscription (the master knows who watches alice).
    while not any("alice" in w.watching for w in d.master.workers.linked.values()):
        await deferLater(0.01)
    await d.cli("buy", "AAPL", "1", user="alice")
    await d.tick()
    price = await last_price(d)
    order = j((await d.cli("sell", "AAPL", "1", "--limit", f"{(price * 2).quantize(D('0.01'))}",
                           user="alice"))[1])
    status, out, err = await watching
    assert status == 0, err
    events = [j(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["accepted", "fill", "accepted"]
    fill = events[1]
    assert fill["quantity"] == "1" and fill["position_quantity"] == "1" and fill["order"]["status"] == "filled"
    assert events[2]["order"]["id"] == order["id"]


@pytest_twisted.ensureDeferred
async def test_notional_stop_and_trailing_orders_from_the_client(deployment):
    d = deployment
    await register_and_login(d)
    status, out, err = await d.cli("buy", "AAPL", "--notional", "500", user="alice")
    assert status == 0, err
    notional = j(out)
    assert notional["notional"] == "500.00" and notional.get("quantity") is None
    await d.tick()
    filled = j((await d.cli("order", str(notional["id"]), user="alice"))[1])
    assert filled["status"] == "filled" and D(filled["quantity"]) * D(filled["average_price"]) <= 500
    held = filled["quantity"]
    stop = j((await d.cli("sell", "AAPL", held, "--stop", "1.00", user="alice"))[1])
    assert (stop["type"], stop["stop_price"]) == ("stop", "1.00")
    await d.cli("cancel", str(stop["id"]), user="alice")
    # A fractional quantity is a day order, and not a trailing stop (as at Alpaca: a strategy run here runs there).
    status, out, err = await d.cli("sell", "AAPL", held, "--trail-percent", "50", user="alice")
    assert status != 0 and "a fractional quantity takes time in force 'day'" in err
    status, out, err = await d.cli("sell", "AAPL", held, "--limit", "100000", "--tif", "gtc", user="alice")
    assert status != 0 and "a fractional quantity takes time in force 'day'" in err
    whole = str(int(D(held)))
    trailing = j((await d.cli("sell", "AAPL", whole, "--trail-percent", "50", user="alice"))[1])
    # (its percent with two decimals, as the order is read back: it answered '50', and 'order' said '50.00')
    assert trailing["type"] == "trailing_stop" and trailing["trail_percent"] == "50.00"
    assert j((await d.cli("order", str(trailing["id"]), user="alice"))[1])["trail_percent"] == "50.00"
    assert D(trailing["stop_level"]) < await last_price(d)
    # The orders table's STOP_PRICE cell of a trailing stop says its stop now (it was empty).
    status, out, err = await d.cli("orders", user="alice", json=False)
    header, *rows = out.splitlines()
    [row] = [r for r in rows if r.split()[0] == str(trailing["id"])]
    column = header.index("STOP_PRICE")
    assert row[column:column + len("STOP_PRICE")].strip() == output.plain(dict(stop_price=D(trailing["stop_level"])))["stop_price"], out


@pytest_twisted.ensureDeferred
async def test_the_orders_table_shows_a_notional_order_s_dollars_until_it_fills(deployment):
    d = deployment
    await register_and_login(d)
    notional = j((await d.cli("buy", "AAPL", "--notional", "500", user="alice"))[1])
    limit = j((await d.cli("buy", "MSFT", "2", "--limit", "1.00", "--tif", "gtc", user="alice"))[1])
    status, out, err = await d.cli("orders", user="alice", json=False)
    assert status == 0, err
    header, *rows = out.splitlines()
    # QUANTITY shows the notional, as dollars, right-aligned with the quantities of the other orders.
    end = header.index("QUANTITY") + len("QUANTITY")
    [row] = [r for r in rows if r.split()[0] == str(notional["id"])]
    assert row[:end].endswith(" $500.00") and row.split()[1:5] == ["buy", "AAPL", "$500.00", "market"]
    [row] = [r for r in rows if r.split()[0] == str(limit["id"])]
    assert row[:end].endswith(" 2") and row.split()[1:5] == ["buy", "MSFT", "2", "limit"]
    # JSON keeps the order as it is: no quantity yet, and its notional.
    [shown] = [o for o in j((await d.cli("orders", user="alice"))[1]) if o["id"] == notional["id"]]
    assert (shown.get("quantity"), shown["notional"]) == (None, "500.00")

    await d.tick()  # it fills: its quantity is fixed, and shown
    filled = j((await d.cli("order", str(notional["id"]), user="alice"))[1])
    assert filled["status"] == "filled"
    status, out, err = await d.cli("orders", user="alice", json=False)
    [row] = [r for r in out.splitlines() if r.split()[0] == str(notional["id"])]
    assert row.split()[1:5] == ["buy", "AAPL", filled["quantity"], "market"] and "$" not in row


@pytest_twisted.ensureDeferred
async def test_clock_and_paging(deployment):
    d = deployment
    await register_and_login(d)
    status, out, err = await d.cli("clock", user="alice")
    assert status == 0, err
    clock = j(out)
    assert clock["is_open"] is True and clock["calendar"] == "always_open" and clock["next_close"] > clock["time"]
    ids = [j((await d.cli("buy", "AAPL", "1", "--limit", "1.00", "--tif", "gtc", user="alice"))[1])["id"]
           for _ in range(5)]
    seen, before = [], []
    while True:
        status, out, _ = await d.cli("orders", "--limit", "2", *before, user="alice")
        page = j(out)
        if not page:
            break
        seen = [o["id"] for o in page] + seen
        before = ["--before", str(page[0]["id"])]
    assert seen == ids
    status, out, err = await d.cli("cancel", "--all", user="alice")
    assert status == 0 and len(j(out)) == 5


@pytest_twisted.ensureDeferred
async def test_order_options_that_do_not_go_together_are_usage_errors(deployment):
    d = deployment
    await register_and_login(d)
    for argv in (["buy", "AAPL"], ["buy", "AAPL", "1", "--notional", "10"],
                 ["sell", "AAPL", "1", "--trail-price", "1", "--limit", "2"], ["cancel"], ["cancel", "3", "--all"],
                 ["watch"], ["buy", "AAPL", "1", "--tif", "week"]):
        status, out, err = await d.cli(*argv, user="alice")
        assert status == cli.USAGE_STATUS, argv
        assert j(out)["error"] == "usage"
    for argv, message in ((["buy", "AAPL", "1", "--stop", "5", "--tif", "ioc"], "takes time in force"),
                          (["buy", "AAPL", "1", "--limit", "10.005"], "not a valid tick"),
                          (["buy", "AAPL", "--notional", "10", "--tif", "gtc"], "market order with time in force")):
        status, out, err = await d.cli(*argv, user="alice")
        assert status == 1 and j(out)["error"] == "invalid_input" and message in j(out)["message"], (argv, out)


@pytest_twisted.ensureDeferred
async def test_a_bracket_order_from_the_command_line_and_an_oco_on_the_shares_it_bought(deployment):
    d = deployment
    await register_and_login(d)
    price = await last_price(d)
    above, below = (price * D("1.5")).quantize(D("0.01")), (price * D("0.5")).quantize(D("0.01"))
    bracket = ["buy", "AAPL", "5", "--tif", "gtc", "--take-profit", str(above), "--client-order-id", "br-1"]
    status, out, err = await d.cli(*bracket, "--stop-loss", str(below), user="alice")
    assert status == 0, err
    entry = j(out)
    # Sent again, the same bracket is the same order; with another stop-loss, the id is already used.
    assert j((await d.cli(*bracket, "--stop-loss", str(below), user="alice"))[1]) == entry
    status, out, _ = await d.cli(*bracket, "--stop-loss", str(below + 1), user="alice")
    assert status == 1 and j(out)["error"] == "duplicate_order"
    assert entry["order_class"] == "bracket" and entry["status"] == "new"
    take, stop = entry["legs"]
    assert (take["leg"], take["side"], take["limit_price"], take["status"]) == ("take_profit", "sell", str(above),
                                                                               "held")
    assert (stop["leg"], stop["type"], stop["stop_price"], stop["parent_id"]) == ("stop_loss", "stop", str(below),
                                                                                 entry["id"])
    status, out, _ = await d.cli("cancel", str(stop["id"]), user="alice")
    assert status == 1 and j(out)["error"] == "order_not_open" and "held until its entry" in j(out)["message"]
    await d.tick()
    # The entry filled: its exits are open, and the table says whose exits they are.
    status, out, err = await d.cli("orders", "--status", "open", user="alice", json=False)
    assert status == 0, err
    header, *rows = out.splitlines()
    assert "EXIT_OF" in header
    assert sorted(r.split()[0] for r in rows) == sorted([str(take["id"]), str(stop["id"])])
    assert f"take-profit of {entry['id']}" in out and f"stop-loss of {entry['id']}" in out
    shown = (await d.cli("order", str(entry["id"]), user="alice", json=False))[1]
    assert "order class:" in shown and "bracket" in shown and "exits:" in shown
    # Its fill, with the model that priced it (as the README says `order ID` shows).
    fill = j((await d.cli("order", str(entry["id"]), user="alice"))[1])["fills"][0]
    assert re.search(r"^TIME .* MODEL$", shown, re.M) and shown.rstrip().endswith(fill["model"]), shown
    # Cancelling one exit cancels the other; then an OCO sells the 5 shares at either price.
    assert j((await d.cli("cancel", str(take["id"]), user="alice"))[1])["status"] == "canceled"
    assert j((await d.cli("order", str(stop["id"]), user="alice"))[1])["status"] == "canceled"
    oco_command = ["sell", "AAPL", "5", "--oco", "--tif", "gtc", "--take-profit", str(above), "--stop-loss",
                   str(below), "--client-order-id", "oco-1"]
    status, out, err = await d.cli(*oco_command, user="alice")
    assert status == 0, err
    oco = j(out)
    assert j((await d.cli(*oco_command, user="alice"))[1]) == oco
    assert (oco["order_class"], oco["type"], oco["limit_price"], oco["leg"]) == ("oco", "limit", str(above),
                                                                                 "take_profit")
    assert [(leg["leg"], leg["status"]) for leg in oco["legs"]] == [("stop_loss", "new")]
    # Both cover the same shares: none are left for another sale.
    status, out, _ = await d.cli("sell", "AAPL", "1", user="alice")
    assert status == 1 and j(out)["error"] == "insufficient_position"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_people_read_times_in_the_markets_zone_programs_in_utc(tmp_path, settings, database_url, clock,
                                                                    monkeypatch):
    """On a New York market the text shows times as the website does, in New York time with its abbreviation
    (the open at 09:30 EDT, not 13:30+00:00); --json keeps ISO 8601 in UTC.  The zone comes with the master's list
    of workers, which every command asks for first: no command asks anything more for it."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from papertrader.client import connection
    from tests.conftest import start_cluster

    new_york = ZoneInfo("America/New_York")
    d = await start_cluster(tmp_path, replace(settings, calendar="XNYS"), database_url, clock)
    try:
        await register_and_login(d)
        status, out, err = await d.cli("clock", user="alice")
        assert status == 0, err
        answer = j(out)
        assert answer["timezone"] == "America/New_York" and answer["next_close"].endswith("+00:00")
        close = datetime.fromisoformat(answer["next_close"])
        assert close.astimezone(new_york).strftime("%H:%M") == "16:00"
        status, out, err = await d.cli("clock", user="alice", json=False)
        assert f"next close: {close.astimezone(new_york):%Y-%m-%d} 16:00:00 E" in out, out
        assert re.search(r"^time: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[DS]T$", out, re.M), out

        order = j((await d.cli("buy", "AAPL", "2", user="alice"))[1])
        await d.tick()
        status, out, err = await d.cli("order", str(order["id"]), user="alice")
        filled = j(out)
        assert filled["status"] == "filled" and filled["created"].endswith("+00:00")  # programs: UTC
        created = datetime.fromisoformat(filled["created"]).astimezone(new_york)
        fill_time = datetime.fromisoformat(filled["fills"][0]["time"]).astimezone(new_york)

        sent = []
        real_call = connection.call
        monkeypatch.setattr(connection, "call", lambda reactor, proto, command, what, **kw: (
            sent.append(command.__name__), real_call(reactor, proto, command, what, **kw))[1])
        status, out, err = await d.cli("order", str(order["id"]), user="alice", json=False)
        assert status == 0, err
        assert sent == ["ListWorkers", "GetOrder"]  # the zone cost no question of its own
        assert re.search(rf"^created: +{created:%Y-%m-%d %H:%M:%S} {created:%Z}$", out, re.M), out
        assert created.tzname() in ("EDT", "EST") and "+00:00" not in out
        assert re.search(rf"^{fill_time:%Y-%m-%d %H:%M:%S %Z} +2 ", out, re.M), out  # the fills' table
        status, out, err = await d.cli("history", user="alice", json=False)
        assert f"{fill_time:%Y-%m-%d %H:%M:%S %Z}" in out and "+00:00" not in out, out
        status, out, err = await d.cli("history", user="alice")
        assert j(out)[-1]["time"] == filled["fills"][0]["time"]  # JSON: as it was
        status, out, err = await d.cli("sessions", user="alice", json=False)
        assert re.search(r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[DS]T ", out) and "+00:00" not in out, out
    finally:
        await d.cluster.stopService()
