"""Portfolios end to end, on both databases: the `papertrader portfolio` commands and --portfolio through a real
cluster over TLS; an API key of a margin portfolio trading it with the real alpaca-py (multiplier 2, shorting)."""

import json
import re
from decimal import Decimal as D

import pytest
import pytest_twisted

from tests.http_helpers import api, in_thread, start_api  # noqa: F401 (a fixture)
from tests.test_e2e import register_and_login


def j(out):
    return json.loads(out)


@pytest_twisted.ensureDeferred
async def test_portfolios_from_the_command_line(tmp_path, settings, database_url, clock):
    from dataclasses import replace

    from tests.conftest import start_cluster

    d = await start_cluster(tmp_path, replace(settings, fill_model="ideal"), database_url, clock)
    try:
        await register_and_login(d)
        status, out, err = await d.cli("portfolio", "create", "Swing", "--cash", "2500", user="alice")
        assert status == 0, err
        assert (j(out)["name"], j(out)["cash"], j(out)["kind"]) == ("Swing", "2500.00", "cash")
        status, out, err = await d.cli("portfolio", "create", "levered", "--margin", user="alice")
        assert (status, j(out)["error"]) == (1, "invalid_input")  # the operator did not allow margin accounts
        status, out, _ = await d.cli("portfolio", "list", user="alice")
        assert [(p["name"], p["default"]) for p in j(out)] == [("default", True), ("Swing", False)]

        status, out, err = await d.cli("buy", "AAPL", "1", "--portfolio", "swing", user="alice")
        assert status == 0, err
        await d.tick()
        status, out, _ = await d.cli("portfolio", user="alice")
        assert (j(out)["portfolio"], j(out)["positions"]) == ("default", [])
        # 'use' remembers the portfolio: the commands after it trade it.
        status, out, err = await d.cli("portfolio", "use", "SWING", user="alice")
        assert (status, j(out)) == (0, {"portfolio": "Swing"}), err
        status, out, _ = await d.cli("portfolio", user="alice")
        assert j(out)["portfolio"] == "Swing" and j(out)["positions"][0]["symbol"] == "AAPL"
        status, out, _ = await d.cli("portfolio", "close", "Swing", user="alice")
        assert status == 1 and j(out)["error"] == "portfolio_not_empty"
        assert "close its 1 position first" in j(out)["message"]

        # Reset: the history is archived, still readable.
        status, out, err = await d.cli("portfolio", "reset", "Swing", "--yes", user="alice")
        assert status == 0 and (j(out)["generation"], j(out)["cash"]) == (1, "2500.00"), err
        status, out, _ = await d.cli("history", user="alice")
        assert j(out) == []
        status, out, _ = await d.cli("history", "--archived", user="alice")
        assert [(t["symbol"], t["quantity"]) for t in j(out)] == [("AAPL", "1")]
        status, out, _ = await d.cli("orders", "--generation", "0", user="alice")
        assert [o["symbol"] for o in j(out)] == ["AAPL"]

        status, out, _ = await d.cli("portfolio", "rename", "swing", "Long term", user="alice")
        assert j(out)["name"] == "Long term"
        status, out, _ = await d.cli("portfolio", user="alice")  # 'use' followed the rename
        assert j(out)["portfolio"] == "Long term"
        status, out, _ = await d.cli("portfolio", "use", "--default", user="alice")
        assert j(out) == {"portfolio": None}
        status, out, _ = await d.cli("portfolio", "close", "Long term", user="alice")
        assert status == 0 and j(out)["closed"]
        status, out, _ = await d.cli("buy", "AAPL", "1", "--portfolio", "Long term", user="alice")
        assert (status, j(out)["error"]) == (1, "unknown_portfolio")
        status, out, _ = await d.cli("portfolio", "rename", "default", user="alice")
        assert (status, j(out)["error"]) == (2, "usage")
    finally:
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_an_api_key_of_a_margin_portfolio_sells_short_through_alpaca_py(tmp_path, settings, database_url, clock):
    from alpaca.trading.enums import OrderSide, PositionIntent, PositionSide
    from alpaca.trading.requests import MarketOrderRequest

    api = await start_api(tmp_path, settings, database_url, clock, fill_model="ideal", api_rate_limit=100_000,
                          margin_accounts=True)
    d = api.d
    try:
        status, out, err = await d.cli("portfolio", "create", "shorts", "--margin", "--cash", "10000", user="alice")
        assert status == 0 and j(out)["kind"] == "margin", err
        status, out, err = await d.cli("api-key", "create", "--portfolio", "shorts", user="alice")
        assert status == 0 and j(out)["portfolio"] == "shorts", err
        client = api.trading()
        from alpaca.trading.client import TradingClient

        margin = TradingClient(j(out)["key_id"], j(out)["secret"], paper=True, url_override=api.url)
        cash_account = await in_thread(client.get_account)  # the first key: the default (cash) portfolio
        assert (cash_account.multiplier, cash_account.shorting_enabled) == ("1", False)
        account = await in_thread(margin.get_account)
        assert (account.multiplier, account.shorting_enabled, D(account.cash)) == ("2", True, D("10000.00"))
        assert D(account.buying_power) == D("20000.00")
        assert account.id != cash_account.id
        asset = await in_thread(margin.get_asset, "AAPL")
        assert asset.shortable and asset.marginable and asset.easy_to_borrow

        short = await in_thread(margin.submit_order, MarketOrderRequest(symbol="AAPL", qty=10, side=OrderSide.SELL,
                                                                        time_in_force="day"))
        assert short.position_intent == PositionIntent.SELL_TO_OPEN  # a short sale opens a position
        await d.tick()
        [position] = await in_thread(margin.get_all_positions)
        assert (position.side, D(position.qty)) == (PositionSide.SHORT, -10)
        # The price moves: the short's profit or loss in percent has the profit's sign, counted from its size (its
        # cost is negative), at Alpaca and in the command line's portfolio alike.
        await d.tick()
        [position] = await in_thread(margin.get_all_positions)
        pl, cost = D(position.unrealized_pl), D(position.cost_basis)
        assert pl != 0 and cost < 0
        assert D(position.unrealized_plpc) == (pl / -cost).quantize(D("0.000001"))
        status, out, err = await d.cli("portfolio", "--portfolio", "shorts", user="alice")
        [held] = j(out)["positions"]
        assert D(held["unrealized_percent"]) == (100 * pl / -cost).quantize(D("0.01")), err
        # Its fill is a short sale in the account's activities, as Alpaca says it.
        [fill] = await in_thread(margin.get, "/account/activities/FILL")
        assert (fill["side"], fill["order_id"], fill["qty"]) == ("sell_short", str(short.id), "10")
        cover = await in_thread(margin.submit_order, MarketOrderRequest(symbol="AAPL", qty=4, side=OrderSide.BUY,
                                                                        time_in_force="day"))
        assert cover.position_intent == PositionIntent.BUY_TO_CLOSE
        account = await in_thread(margin.get_account)
        price = d.master.board.get("AAPL").price
        assert D(account.short_market_value) < 0
        assert D(account.maintenance_margin) == (D("0.30") * 10 * price).quantize(D("0.01"))
        await d.tick()
        # The rest of the short, bought back by an OCO from the command line: a take-profit below the price, a
        # stop-loss above it.
        price = d.master.board.get("AAPL").price
        status, out, err = await d.cli("buy", "AAPL", "6", "--oco", "--take-profit", str((price * D("0.9")).quantize(
            D("0.01"))), "--stop-loss", str((price * D("1.1")).quantize(D("0.01"))), "--portfolio", "shorts",
            user="alice")
        assert status == 0, err
        oco = j(out)
        assert (oco["order_class"], oco["side"], oco["type"]) == ("oco", "buy", "limit")
        assert [(leg["leg"], leg["side"], leg["type"]) for leg in oco["legs"]] == [("stop_loss", "buy", "stop")]
        # The OCO covers all 6: closing the position is refused, saying what holds them.
        from alpaca.common.exceptions import APIError

        with pytest.raises(APIError) as excinfo:
            await in_thread(margin.close_position, "AAPL")
        assert "6 are covered by your open buys" in str(excinfo.value) and "go long" not in str(excinfo.value)
        # The other portfolio of the same user saw none of it; there a sale closes, a buy opens.
        assert await in_thread(client.get_all_positions) == []
        bought = await in_thread(client.submit_order, MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY,
                                                                         time_in_force="day"))
        assert bought.position_intent == PositionIntent.BUY_TO_OPEN
    finally:
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_the_trade_stream_of_a_key_hears_only_its_portfolio(api):
    """alpaca-py's TradingStream with the default portfolio's key: an order in the user's other portfolio is not
    sent to it; the next one in its own portfolio is."""
    from alpaca.trading.enums import OrderSide
    from alpaca.trading.requests import MarketOrderRequest

    from tests.conftest import wait_for_log
    from tests.test_http_streams import trading_stream

    runner = trading_stream(api)
    seen = wait_for_log(api.d.cluster.workers[0].logs, "listens to trade_updates")
    runner.start()
    try:
        await seen
        status, out, err = await api.d.cli("portfolio", "create", "other", user="alice")
        assert status == 0, err
        status, out, err = await api.d.cli("buy", "AAPL", "1", "--portfolio", "other", "--client-order-id",
                                           "elsewhere", user="alice")
        assert status == 0, err
        await api.d.tick()  # its fill too
        mine = await in_thread(api.trading().submit_order, MarketOrderRequest(
            symbol="AAPL", qty=2, side=OrderSide.BUY, time_in_force="day", client_order_id="here"))
        first = await runner.inbox.get()  # the first update it hears is its own order's
        assert first.event == "new" and str(first.order.id) == str(mine.id)
    finally:
        await runner.stop(api.d.cluster.workers[0].streams)


def column(text, name):
    """The cells of column ``name`` (a left-aligned one) of the client's text table ``text``, row by row."""
    header, *lines = text.splitlines()
    cell = re.search(rf"(?<!\S){name.upper()}( +|$)", header)  # up to where the next column starts
    return [line[cell.start():cell.end()].strip() for line in lines]


@pytest_twisted.ensureDeferred
async def test_a_reset_without_a_terminal_needs_yes_and_without_it_changes_nothing(deployment):
    d = deployment
    await register_and_login(d)
    status, out, err = await d.cli("portfolio", "create", "Swing", "--cash", "2500", user="alice")
    assert status == 0, err
    status, out, err = await d.cli("buy", "AAPL", "1", "--limit", "1.00", "--tif", "gtc", "--portfolio", "Swing",
                                   user="alice")
    assert status == 0, err
    order = j(out)

    # No terminal to ask on (d.cli's standard input is not one): a usage error, even with "y" on standard input.
    for stdin in ("", "y\n"):
        status, out, err = await d.cli("portfolio", "reset", "Swing", stdin=stdin, user="alice")
        assert (status, j(out)["error"]) == (2, "usage"), out
        assert j(out)["message"] == "portfolio reset needs --yes when not run in a terminal"
    status, out, err = await d.cli("portfolio", "reset", "Swing", user="alice", json=False)
    assert (status, out) == (2, "")
    assert err == "papertrader: portfolio reset needs --yes when not run in a terminal\n"
    # Nothing changed: the open order is still open, the portfolio still in its first generation.
    status, out, _ = await d.cli("orders", "--status", "open", "--portfolio", "Swing", user="alice")
    assert [o["id"] for o in j(out)] == [order["id"]]
    status, out, _ = await d.cli("portfolio", "list", user="alice")
    assert [(p["name"], p["generation"]) for p in j(out)] == [("default", 0), ("Swing", 0)]

    # --yes: done, without a question. The other actions ignore --yes.
    status, out, err = await d.cli("portfolio", "reset", "Swing", "--yes", user="alice", json=False)
    assert status == 0, err
    assert out.startswith("Portfolio 'Swing' reset: 1 open order canceled, 2500.00 cash, generation 1") and "?" not in err
    # The command it gives for the history before the reset is Swing's, though commands trade the default portfolio.
    hint = re.search(r"\(the history before it: '(.*)'\)\.$", out.strip())
    assert hint and hint.group(1) == "papertrader history --archived --portfolio Swing", out
    status, out, err = await d.cli(*hint.group(1).split()[1:], user="alice")
    assert (status, j(out)) == (0, []), (out, err)
    status, out, _ = await d.cli("orders", "--status", "open", "--portfolio", "Swing", user="alice")
    assert j(out) == []
    status, out, _ = await d.cli("portfolio", "list", "--yes", user="alice")
    assert status == 0 and [p["generation"] for p in j(out)] == [0, 1]


@pytest_twisted.ensureDeferred
async def test_portfolio_list_marks_the_one_in_use_and_closing_it_goes_back_to_the_default(deployment):
    d = deployment
    await register_and_login(d)
    await d.cli("portfolio", "create", "Swing", user="alice")
    # None chosen: the default portfolio is the one in use.
    status, out, err = await d.cli("portfolio", "list", user="alice")
    assert status == 0, err
    assert [(p["name"], p["in_use"]) for p in j(out)] == [("default", True), ("Swing", False)]
    status, out, _ = await d.cli("portfolio", "list", user="alice", json=False)
    assert column(out, "in_use") == ["yes", ""] and column(out, "name") == ["default", "Swing"]

    await d.cli("portfolio", "use", "swing", user="alice")
    status, out, _ = await d.cli("portfolio", "list", user="alice")
    assert [(p["name"], p["in_use"]) for p in j(out)] == [("default", False), ("Swing", True)]
    status, out, _ = await d.cli("portfolio", "list", user="alice", json=False)
    assert column(out, "in_use") == ["", "yes"]

    # Closed elsewhere (alice's other machine, with its own config directory; or the website): a command that
    # trades says what happened and what to do.
    status, out, err = await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="alice-laptop")
    assert status == 0, err
    status, out, err = await d.cli("portfolio", "close", "Swing", user="alice-laptop")
    assert status == 0 and j(out)["closed"] and j(out)["was_in_use"] is False, err
    status, out, err = await d.cli("buy", "AAPL", "1", user="alice")
    assert (status, j(out)["error"]) == (1, "unknown_portfolio")
    assert j(out)["message"] == (
        "no portfolio 'Swing' on your account: it is the portfolio 'papertrader portfolio use' chose, closed or"
        " renamed since; run 'papertrader portfolio use --default' to trade your default portfolio, or"
        " 'papertrader portfolio use NAME' for another (see 'papertrader portfolio list')")
    status, out, err = await d.cli("portfolio", user="alice", json=False)
    assert status == 1 and "run 'papertrader portfolio use --default'" in err
    status, out, err = await d.cli("buy", "AAPL", "1", "--portfolio", "Swing", user="alice")  # named: no such hint
    assert (status, j(out)["message"]) == (1, "no portfolio 'Swing' on your account")
    status, out, err = await d.cli("portfolio", "list", "--closed", user="alice")
    assert status == 0 and [(p["name"], p["in_use"]) for p in j(out)] == [("default", False), ("Swing", False)]
    assert "is not open any more" in err and "papertrader portfolio use --default" in err
    status, out, _ = await d.cli("portfolio", "use", "--default", user="alice")
    status, out, err = await d.cli("portfolio", user="alice")
    assert status == 0 and j(out)["portfolio"] == "default"

    # Closed here: the client forgets the choice, and says so.
    for name, as_json in (("Momentum", True), ("Value", False)):
        await d.cli("portfolio", "create", name, user="alice")
        await d.cli("portfolio", "use", name, user="alice")
        status, out, err = await d.cli("portfolio", "close", name.lower(), user="alice", json=as_json)
        assert status == 0, err
        if as_json:
            assert (j(out)["name"], j(out)["was_in_use"]) == (name, True)
        else:
            assert out == (f"Portfolio {name!r} closed (its API keys no longer work). It was the one 'portfolio use'"
                           " chose. Commands now trade your default portfolio.\n")
        status, out, err = await d.cli("portfolio", user="alice")
        assert status == 0 and j(out)["portfolio"] == "default", err
        status, out, err = await d.cli("portfolio", "list", user="alice")
        assert [(p["name"], p["in_use"]) for p in j(out)] == [("default", True)] and err == ""


@pytest_twisted.ensureDeferred
async def test_a_mistyped_portfolio_name_is_named_with_the_one_meant(deployment):
    """A mistyped symbol or option is named with the one meant; a mistyped --portfolio NAME was not."""
    d = deployment
    await register_and_login(d)
    assert (await d.cli("portfolio", "create", "Swing trades", user="alice"))[0] == 0
    status, out, err = await d.cli("buy", "AAPL", "1", "--portfolio", "swing trade", user="alice", json=False)
    assert (status, err) == (1, "papertrader: no portfolio 'swing trade' on your account: did you mean"
                                " 'Swing trades'?\n"), err
    status, out, _ = await d.cli("portfolio", "use", "Swnig trades", user="alice")
    assert (status, j(out)) == (1, {"error": "unknown_portfolio", "message": "no portfolio 'Swnig trades' on your"
                                                                            " account: did you mean 'Swing trades'?"})
    status, out, _ = await d.cli("portfolio", "reset", "defualt", "--yes", user="alice")
    assert j(out)["message"] == "no portfolio 'defualt' on your account: did you mean 'default'?"
    status, out, _ = await d.cli("orders", "--portfolio", "crypto", user="alice")  # like none: as before
    assert (status, j(out)["message"]) == (1, "no portfolio 'crypto' on your account")
    # The one 'portfolio use' chose, renamed elsewhere: the hint of what to do follows the name meant.
    assert (await d.cli("portfolio", "use", "swing trades", user="alice"))[0] == 0
    assert (await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="alice-laptop"))[0] == 0
    assert (await d.cli("portfolio", "rename", "Swing trades", "Swing trades 2", user="alice-laptop"))[0] == 0
    status, out, _ = await d.cli("portfolio", user="alice")
    assert (status, j(out)["message"]) == (1, "no portfolio 'Swing trades' on your account: did you mean 'Swing"
                                              " trades 2'? It is the portfolio 'papertrader portfolio use' chose,"
                                              " closed or renamed since; run 'papertrader portfolio use --default' to"
                                              " trade your default portfolio, or 'papertrader portfolio use NAME' for"
                                              " another (see 'papertrader portfolio list')")
