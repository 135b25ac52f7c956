"""A portfolio's configuration (papertrader/trading/configuration.py, Alpaca's account configurations): the core's
rules without a reactor; through the real alpaca-py (get/set_account_configurations) on a margin portfolio, where
long-only mode, a suspended portfolio and whole-share trading change what is accepted; and on the command line,
on both databases."""

import json
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
import pytest_twisted

from papertrader.errors import InsufficientPosition, InvalidInput, TradingSuspended
from papertrader.trading import configuration as c
from papertrader.trading.books import Book
from papertrader.trading.orders import Order, OrderType, Side, Status, TimeInForce
from tests.http_helpers import in_thread, start_api


def an_order(side=Side.SELL, quantity=D("2"), notional=None, opens=True):
    now = datetime(2024, 1, 2, 15, tzinfo=timezone.utc)
    return Order(id=None, account_id=1, client_order_id="x", symbol="AAPL", side=side, type=OrderType.MARKET,
                 time_in_force=TimeInForce.DAY, status=Status.NEW, created=now, quantity=quantity, notional=notional,
                 opens=opens)


def test_the_configuration_core():
    default = c.DEFAULT
    assert c.stored(default) is None and c.from_stored(None) == default
    assert c.view(default, margin=True)["max_margin_multiplier"] == "2"
    assert c.view(default, margin=False)["max_margin_multiplier"] == "1"

    long_only = c.changed(default, {"no_shorting": True, "pdt_check": "both", "suspend_trade": None}, margin=True)
    assert (long_only.no_shorting, long_only.pdt_check, long_only.suspend_trade) == (True, "both", False)
    assert json.loads(c.stored(long_only)) == {"no_shorting": True, "pdt_check": "both"}
    assert c.from_stored(c.stored(long_only)) == long_only
    assert c.from_stored('{"no_shorting": true, "from_a_newer_release": 1}') == replace(default, no_shorting=True)
    assert c.changed(default, {"max_margin_multiplier": "2.0"}, margin=True) == default  # its own: unchanged

    for changes, margin, words in (
            ({"no_shorting": "yes"}, True, "no_shorting is true or false"),
            ({"dtbp_check": "never"}, True, "dtbp_check is one of entry, exit, both"),
            ({"max_options_trading_level": 4}, True, "from 0 to 3"),
            ({"max_margin_multiplier": "4"}, True, "max_margin_multiplier is 2 in a margin portfolio"),
            ({"max_margin_multiplier": "2"}, False, "make a margin portfolio for 2"),
            ({"no_shortin": True}, True, "unknown configuration 'no_shortin'")):
        with pytest.raises(InvalidInput) as refused:
            c.changed(default, changes, margin=margin)
        assert words in refused.value.message

    c.check_trading(default)
    with pytest.raises(TradingSuspended):
        c.check_trading(replace(default, suspend_trade=True))
    c.check_order(long_only, an_order(opens=False))  # a sale of shares held
    c.check_order(long_only, an_order(side=Side.BUY))  # a buy opens a long position
    with pytest.raises(InsufficientPosition, match="short selling is turned off"):
        c.check_order(long_only, an_order(opens=True))  # a short sale
    whole = replace(default, fractional_trading=False)
    c.check_order(whole, an_order(quantity=D("3")))
    with pytest.raises(InvalidInput, match="0.5 is not a whole number of shares"):
        c.check_order(whole, an_order(quantity=D("0.5")))
    with pytest.raises(InvalidInput, match="not a notional"):
        c.check_order(whole, an_order(side=Side.BUY, quantity=None, notional=D("100")))
    # A sale that closes may sell a fraction (a split leaves them; shares bought before the switch stay sellable).
    c.check_order(whole, an_order(quantity=D("0.5"), opens=False))
    c.check_order(whole, an_order(quantity=D("0.5"), opens=True), opens=False)  # a request, told by the caller
    c.check_order(None, an_order())  # a book without a configuration: the defaults


def test_a_book_carries_its_configuration():
    assert Book(1, D("10")).configuration is None


def alpaca_error(excinfo):
    e = excinfo.value
    return e.status_code, e.code, e.message


@pytest_twisted.ensureDeferred
async def test_account_configurations_through_alpaca_py(tmp_path, settings, database_url, clock):
    from alpaca.common.exceptions import APIError
    from alpaca.trading import requests as r
    from alpaca.trading.enums import OrderSide, TimeInForce

    api = await start_api(tmp_path, settings, database_url, clock, fill_model="ideal", api_rate_limit=100_000,
                          margin_accounts=True)
    try:
        d = api.d
        status, _, err = await d.cli("portfolio", "create", "Shorts", "--margin", user="alice")
        assert status == 0, err
        status, out, err = await d.cli("api-key", "create", "--name", "shorts", "--portfolio", "Shorts", user="alice")
        assert status == 0, err
        key = json.loads(out)
        api.key_id, api.secret = key["key_id"], key["secret"]
        client = api.trading()

        conf = await in_thread(client.get_account_configurations)
        assert (conf.no_shorting, conf.suspend_trade, conf.fractional_trading, conf.max_margin_multiplier) == \
            (False, False, True, "2")
        account = await in_thread(client.get_account)
        assert account.shorting_enabled is True and account.trade_suspended_by_user is False

        # Long only: as alpaca-py sets it, the whole model sent back with one field changed.
        conf.no_shorting = True
        changed = await in_thread(client.set_account_configurations, conf)
        assert changed.no_shorting is True and changed.pdt_check == conf.pdt_check
        assert (await in_thread(client.get_account)).shorting_enabled is False
        with pytest.raises(APIError) as e:
            await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=2, side=OrderSide.SELL,
                                                                      time_in_force=TimeInForce.DAY))
        assert alpaca_error(e)[:2] == (403, 40310000) and "short selling is turned off" in alpaca_error(e)[2]
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=5, side=OrderSide.BUY,
                                                                  time_in_force=TimeInForce.DAY))
        await d.tick()
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=2, side=OrderSide.SELL,
                                                                  time_in_force=TimeInForce.DAY))  # shares held

        # Suspended: no new order and no replacement; canceling still works; the refusal wrote nothing.
        resting = await in_thread(client.submit_order, r.LimitOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1))
        await in_thread(client.set_account_configurations, changed.model_copy(update={"suspend_trade": True}))
        assert (await in_thread(client.get_account)).trade_suspended_by_user is True
        orders_before = await d.master.db.query("SELECT COUNT(*) FROM orders")
        with pytest.raises(APIError) as e:
            await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY,
                                                                      time_in_force=TimeInForce.DAY))
        assert alpaca_error(e)[:2] == (403, 40310000) and "trading is suspended" in alpaca_error(e)[2]
        with pytest.raises(APIError) as e:
            await in_thread(client.replace_order_by_id, resting.id, r.ReplaceOrderRequest(limit_price=2))
        assert alpaca_error(e)[0] == 403
        assert await d.master.db.query("SELECT COUNT(*) FROM orders") == orders_before
        await in_thread(client.cancel_order_by_id, resting.id)
        assert (await in_thread(client.get_order_by_id, resting.id)).status.value == "canceled"

        # Whole shares only.
        await in_thread(client.patch, "/account/configurations", {"suspend_trade": False,
                                                                  "fractional_trading": False})
        with pytest.raises(APIError) as e:
            await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=0.5, side=OrderSide.BUY,
                                                                      time_in_force=TimeInForce.DAY))
        assert alpaca_error(e)[:2] == (422, 42210000) and "0.5 is not a whole number" in alpaca_error(e)[2]
        with pytest.raises(APIError) as e:
            await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", notional=100,
                                                                      side=OrderSide.BUY,
                                                                      time_in_force=TimeInForce.DAY))
        assert alpaca_error(e)[0] == 422
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY,
                                                                  time_in_force=TimeInForce.DAY))

        # Bad values: 422 naming the field, nothing changed.
        for patch, words in (({"no_shorting": "false"}, "no_shorting must be true or false"),
                             ({"max_margin_multiplier": "4"}, "max_margin_multiplier is 2"),
                             ({"trade_confirm_email": "sometimes"}, "trade_confirm_email is one of all, none")):
            with pytest.raises(APIError) as e:
                await in_thread(client.patch, "/account/configurations", patch)
            assert alpaca_error(e)[:2] == (422, 42210000) and words in alpaca_error(e)[2]
        final = await in_thread(client.get_account_configurations)
        assert (final.no_shorting, final.suspend_trade, final.fractional_trading) == (True, False, False)

        # The account's other portfolio (the key of the default one) is not touched.
        api.key_id, api.secret = (await _default_key(d))
        assert (await in_thread(api.trading().get_account_configurations)).no_shorting is False
    finally:
        await api.d.cluster.stopService()


async def _default_key(d):
    status, out, err = await d.cli("api-key", "create", "--name", "default", user="alice")
    assert status == 0, err
    key = json.loads(out)
    return key["key_id"], key["secret"]


@pytest_twisted.ensureDeferred
async def test_configure_on_the_command_line(deployment):
    from tests.test_e2e import register_and_login

    d = deployment
    await register_and_login(d)
    status, out, err = await d.cli("portfolio", "configure", json=False, user="alice")
    assert status == 0, err
    assert out.splitlines()[0] == "Portfolio 'default':" and "suspend trade" in out and "off" in out
    status, out, err = await d.cli("portfolio", "configure", "--suspend-trade", "on", user="alice")
    assert status == 0 and json.loads(out)["suspend_trade"] is True
    await d.tick()
    status, out, _ = await d.cli("buy", "AAPL", "1", user="alice")
    assert status == 1 and json.loads(out)["error"] == "trading_suspended"
    assert json.loads(out)["message"].endswith("papertrader portfolio configure --suspend-trade off")
    status, out, _ = await d.cli("portfolio", json=False, user="alice")
    assert "Trading is suspended in this portfolio" in out
    status, out, _ = await d.cli("portfolio", "configure", "--suspend-trade", "off", "--fractional-trading", "off",
                                 json=False, user="alice")
    assert "now:" in out.splitlines()[0] and "fractional trading   off" in out
    status, out, _ = await d.cli("buy", "AAPL", "1.5", user="alice")
    assert status == 1 and "not a whole number of shares" in json.loads(out)["message"]
    status, out, _ = await d.cli("buy", "AAPL", "1", user="alice")
    assert status == 0, out


@pytest_twisted.ensureDeferred
async def test_long_only_and_suspended_in_every_way_an_order_is_made(tmp_path, settings, database_url, clock):
    """No short sale in long-only mode, however it is made (a short bracket's entry, the replacement of a short
    sale placed before); a suspended portfolio's "close all positions" cancels nothing (its exits stay) and closes
    nothing; with whole shares only, a fractional position (a split's) is still sold."""
    from alpaca.common.exceptions import APIError
    from alpaca.trading import requests as r
    from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce

    api = await start_api(tmp_path, settings, database_url, clock, fill_model="ideal", api_rate_limit=100_000,
                          margin_accounts=True)
    try:
        d = api.d
        assert (await d.cli("portfolio", "create", "Shorts", "--margin", user="alice"))[0] == 0
        status, out, err = await d.cli("api-key", "create", "--name", "shorts", "--portfolio", "Shorts", user="alice")
        key = json.loads(out)
        api.key_id, api.secret = key["key_id"], key["secret"]
        client = api.trading()
        price = d.master.board.get("MSFT").price
        short = await in_thread(client.submit_order, r.LimitOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
            limit_price=float((price * 2).quantize(D("0.01")))))  # a short sale, resting
        await in_thread(client.patch, "/account/configurations", {"no_shorting": True})
        with pytest.raises(APIError) as e:
            await in_thread(client.submit_order, r.MarketOrderRequest(
                symbol="TSLA", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY, order_class=OrderClass.BRACKET,
                take_profit=r.TakeProfitRequest(limit_price=1), stop_loss=r.StopLossRequest(stop_price=100000)))
        assert "short selling is turned off" in e.value.message
        with pytest.raises(APIError) as e:
            await in_thread(client.replace_order_by_id, short.id, r.ReplaceOrderRequest(qty=2))
        assert "short selling is turned off" in e.value.message
        await in_thread(client.cancel_order_by_id, short.id)  # canceling it is fine

        # A long position with its protective stop; suspended, closing everything is refused whole.
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=4, side=OrderSide.BUY,
                                                                  time_in_force=TimeInForce.DAY))
        await d.tick()
        stop = await in_thread(client.submit_order, r.StopOrderRequest(
            symbol="AAPL", qty=4, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
            stop_price=float((d.master.board.get("AAPL").price / 2).quantize(D("0.01")))))
        await in_thread(client.patch, "/account/configurations", {"suspend_trade": True})
        with pytest.raises(APIError) as e:
            await in_thread(client.close_all_positions, True)
        assert e.value.status_code == 403 and "trading is suspended" in e.value.message
        assert (await in_thread(client.get_order_by_id, stop.id)).status.value == "new"  # still protecting

        # Whole shares only: 1.5 shares (as a split would leave) are still sold; buying 0.5 more is not.
        await in_thread(client.patch, "/account/configurations", {"suspend_trade": False, "no_shorting": False})
        await in_thread(client.cancel_order_by_id, stop.id)
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol="TSLA", qty=1.5, side=OrderSide.BUY,
                                                                  time_in_force=TimeInForce.DAY))
        await d.tick()
        await in_thread(client.patch, "/account/configurations", {"fractional_trading": False})
        with pytest.raises(APIError) as e:
            await in_thread(client.submit_order, r.MarketOrderRequest(symbol="TSLA", qty=0.5, side=OrderSide.BUY,
                                                                      time_in_force=TimeInForce.DAY))
        assert "not a whole number of shares" in e.value.message
        closing = await in_thread(client.close_position, "TSLA")
        assert D(closing.qty) == D("1.5")
    finally:
        await api.d.cluster.stopService()
