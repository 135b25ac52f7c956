"""The HTTP API driven by the real alpaca-py 0.44 against a running cluster (url_override), both databases."""

from decimal import Decimal as D

import pytest
import pytest_twisted

from tests.http_helpers import api, in_thread  # noqa: F401 (a fixture)


@pytest_twisted.ensureDeferred
async def test_account_clock_and_a_market_order_through_alpaca_py(api):
    from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    client = api.trading()
    account = await in_thread(client.get_account)
    assert account.status.value == "ACTIVE" and D(account.cash) == D("100000.00")
    assert D(account.buying_power) == D("100000.00") and account.currency == "USD"
    clock = await in_thread(client.get_clock)
    assert clock.is_open is True
    order = await in_thread(client.submit_order, MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY,
                                                                    time_in_force=TimeInForce.DAY,
                                                                    client_order_id="first"))
    assert order.status == OrderStatus.NEW and order.client_order_id == "first" and D(order.qty) == 3
    await api.d.tick()
    filled = await in_thread(client.get_order_by_id, order.id)
    assert filled.status == OrderStatus.FILLED and D(filled.filled_qty) == 3
    assert filled.filled_avg_price is not None


@pytest_twisted.ensureDeferred
async def test_errors_are_alpaca_json_with_the_right_status(api):
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient

    wrong = TradingClient(api.key_id, "x" * 40, paper=True, url_override=api.url)
    with pytest.raises(APIError) as excinfo:
        await in_thread(wrong.get_account)
    assert excinfo.value.status_code == 401 and excinfo.value.code == 40110000
