"""Today's change of a portfolio (papertrader/trading/valuation.py ``day_start``): equity now less equity when the
day began.  Pure: no reactor, no database."""

from decimal import Decimal as D

from papertrader.trading.valuation import day_start


def test_shares_bought_today_count_from_what_they_cost_not_from_yesterdays_close():
    """A class's dashboard showed -103.60 for an all-cash portfolio that bought 50 XOM and 40 JPM today and was
    down 31.73: each position counted from yesterday's close, as if held since."""
    cash_then = D("100000.00")
    xom_cost, jpm_cost = D("4102.50"), D("2418.80")  # what the fills took, commissions included
    cash = cash_then - xom_cost - jpm_cost
    values = {"XOM": D("4090.00"), "JPM": D("2399.57")}
    start = day_start(cash, {"XOM": D(50), "JPM": D(40)}, values, {"XOM": D("83.10"), "JPM": D("61.20")},
                      {"XOM": D(0), "JPM": D(0)}, [("fill", "XOM", -xom_cost), ("fill", "JPM", -jpm_cost)])
    equity = cash + sum(values.values())
    assert start.last_equity == cash_then
    assert equity - start.last_equity == D("-31.73")
    assert start.bases == {"XOM": xom_cost, "JPM": jpm_cost}  # each position's change: its value less its cost


def test_held_shares_count_from_the_previous_close_and_a_sale_or_dividend_today_counts_too():
    # 10 AAPL held since yesterday (close 100.00); 4 sold today at 103.00 (commission 1.00); a 2.00 MSFT dividend.
    cash = D("1000.00") + D("411.00") + D("2.00")
    values = {"AAPL": D("630.00")}  # 6 x 105.00
    start = day_start(cash, {"AAPL": D(6)}, values, {"AAPL": D("100.00"), "MSFT": D("50.00")}, {"AAPL": D(10)},
                      [("fill", "AAPL", D("411.00")), ("dividend", "MSFT", D("2.00"))])
    assert start.last_equity == D("1000.00") + D("1000.00")
    equity = cash + values["AAPL"]
    # 6 x (105 - 100) = 30 on the shares kept, 4 x (103 - 100) - 1 = 11 on the ones sold, 2 of dividend.
    assert equity - start.last_equity == D("43.00")
    # The position's day: the 30 of the shares kept and the 11 of those sold (the dividend is the account's).
    assert values["AAPL"] - start.bases["AAPL"] == D("41.00")


def test_a_split_today_is_no_change_and_an_untraded_symbol_or_one_without_a_price_does_not_move():
    # 10 shares at yesterday's close of 400.00 split 4 for 1; now 40 at 101.00 (+ 1%).  GE has no price today yet
    # (its reference is its last price), XYZ has no quote at all (valued at its cost).
    values = {"AAPL": D("4040.00"), "GE": D("250.00"), "XYZ": D("10.00")}
    start = day_start(D("0.00"), {"AAPL": D(40), "GE": D(10), "XYZ": D(1)}, values,
                      {"AAPL": D("400.00"), "GE": D("25.00")}, {"AAPL": D(10)}, [("split", "AAPL", D("0.00"))])
    assert start.last_equity == D("4000.00") + D("250.00") + D("10.00")
    assert {s: values[s] - start.bases[s] for s in values} == {"AAPL": D("40.00"), "GE": D(0), "XYZ": D(0)}


def test_a_split_whose_previous_close_is_not_a_whole_step_counts_from_yesterdays_value_to_the_cent():
    """A backtest's check: 33.819 AAPL held into its 7-for-1 split (236.733 shares) after a close of 645.57 was
    worth 21,832.53 at that close; counted from the shown previous close (645.57 / 7 = 92.2243, a price's step)
    the day began at 21,832.54, a cent off yesterday's equity.  The quote keeps the unrounded reference too."""
    from datetime import date, datetime, timezone

    from datetime import timedelta

    from papertrader.market.board import QuoteBoard
    from papertrader.trading.corporate import Split
    from papertrader.trading.market import Bar

    def bar(close, start):
        return Bar("AAPL", start, start + timedelta(hours=6, minutes=30), close, close, close, close, 100)

    utc = timezone.utc
    friday, monday = datetime(2014, 6, 6, 13, 30, tzinfo=utc), datetime(2014, 6, 9, 13, 30, tzinfo=utc)
    board = QuoteBoard(["AAPL"])
    board.update_bars({"AAPL": bar(D("645.57"), friday)}, friday)
    board.update_bars({"AAPL": bar(D("92.70"), monday)}, monday, splits=[Split("AAPL", date(2014, 6, 9), D(7))])
    board.update_bars({"AAPL": bar(D("92.80"), monday + timedelta(hours=1))}, monday)  # later in the session
    quote = board.get("AAPL")
    assert quote.previous_close == D("92.2243")  # shown to a price's step
    cash = D("80000.00")
    start = day_start(cash, {"AAPL": D("236.733")}, {"AAPL": D("21945.15")}, {"AAPL": quote.reference}, {}, [])
    assert start.last_equity == cash + D("21832.53")  # 33.819 x 645.57 = 21,832.5318..., as yesterday's equity
    assert start.bases["AAPL"] == D("21832.53")
