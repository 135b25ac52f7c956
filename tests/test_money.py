"""Money, prices and quantities: one rounding rule (cent, half-even), exact integer storage, readable text."""

from decimal import Decimal

import pytest

from papertrader.money import (
    MAX_QUANTITY,
    from_cents,
    from_price_units,
    from_quantity_units,
    money_text,
    parse_money,
    parse_quantity,
    price_text,
    quote_text,
    quantity_text,
    round_money,
    round_price,
    to_cents,
    to_price_units,
    to_quantity_units,
)

D = Decimal


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0.125", "0.12"),  # exactly half a cent: to the even cent (down)
        ("0.135", "0.14"),  # exactly half a cent: to the even cent (up)
        ("0.145", "0.14"),
        ("2.675", "2.68"),  # exact in Decimal, so no float surprise
        ("-0.125", "-0.12"),
        ("-0.135", "-0.14"),
        ("0.1250001", "0.13"),  # just above the half: up
        ("0.1249999", "0.12"),  # just below the half: down
        ("1234.5", "1234.50"),
        ("7", "7.00"),
    ],
)
def test_round_money_is_half_even_at_the_half_cent(value, expected):
    rounded = round_money(D(value))
    assert rounded == D(expected)
    assert str(rounded) == expected  # always exactly two decimals


def test_half_even_has_no_upward_bias_over_many_half_cents():
    # 0.005, 0.015, ..., 0.995: half-up would add half a cent each time.
    halves = [D(n) / 1000 for n in range(5, 1000, 10)]
    assert sum(round_money(h) for h in halves) == sum(halves)


def test_round_price_is_half_even_at_the_fourth_decimal():
    assert round_price(D("0.12345")) == D("0.1234")
    assert round_price(D("0.12355")) == D("0.1236")
    assert str(round_price(D("101.2"))) == "101.2000"


@pytest.mark.parametrize("text", ["0.00", "0.01", "-0.01", "1.50", "-1234.56", "99999999999.99", "123456789012345.67"])
def test_cents_round_trip_exactly(text):
    value = D(text)
    cents = to_cents(value)
    assert isinstance(cents, int)
    assert from_cents(cents) == value
    assert str(from_cents(cents)) == text


def test_to_cents_rounds_once_half_even():
    assert to_cents(D("0.005")) == 0
    assert to_cents(D("0.015")) == 2
    assert to_cents(D("-0.015")) == -2
    assert to_cents(D("10.004999")) == 1000
    assert from_cents(-150) == D("-1.50")
    assert str(from_cents(5)) == "0.05"


@pytest.mark.parametrize("text", ["0.0001", "1", "123.4567", "99999.9999", "0.0000"])
def test_price_units_round_trip_exactly(text):
    units = to_price_units(D(text))
    assert isinstance(units, int)
    assert units == int(D(text) * 10_000)
    assert from_price_units(units) == D(text)
    assert from_price_units(units).as_tuple().exponent == -4  # always at the 1e-4 step


def test_price_units_round_half_even():
    assert to_price_units(D("0.00005")) == 0
    assert to_price_units(D("0.00015")) == 2


@pytest.mark.parametrize("text", ["0.000001", "1", "0.5", "123.456789", "1000000000"])
def test_quantity_units_round_trip_exactly(text):
    units = to_quantity_units(D(text))
    assert isinstance(units, int)
    assert units == int(D(text) * 1_000_000)
    assert from_quantity_units(units) == D(text)


def test_largest_quantity_fits_in_a_bigint():
    assert to_quantity_units(MAX_QUANTITY) == 10**15 < 2**63


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10", "10"),
        (" 0.5 ", "0.5"),
        ("0.000001", "0.000001"),
        ("1000000000", "1000000000"),
        ("999999999.999999", "999999999.999999"),
        ("1E+3", "1000"),
        ("2.500000", "2.5"),
        ("2.5000000", "2.5"),  # trailing zeros beyond 6 decimals are not extra precision
    ],
)
def test_parse_quantity_accepts_positive_quantities(text, expected):
    value = parse_quantity(text)
    assert value == D(expected)
    assert value.as_tuple().exponent == -6  # always at the 1e-6 step


def test_parse_quantity_accepts_numbers_not_only_text():
    assert parse_quantity(3) == D(3)
    assert parse_quantity(D("0.25")) == D("0.25")


@pytest.mark.parametrize(
    "text, message",
    [
        ("0", "quantity must be positive"),
        ("-1", "quantity must be positive"),
        ("-0", "quantity must be positive"),
        ("0.000000", "quantity must be positive"),
        ("0.0000001", "quantity has more than 6 decimals"),
        ("1.0000001", "quantity has more than 6 decimals"),
        ("1000000000.000001", "quantity is larger than 1000000000"),
        ("1000000001", "quantity is larger than 1000000000"),
        ("NaN", "quantity must be a finite number"),
        ("nan", "quantity must be a finite number"),
        ("sNaN", "quantity must be a finite number"),
        ("Infinity", "quantity must be a finite number"),
        ("-Infinity", "quantity must be a finite number"),
        ("inf", "quantity must be a finite number"),
        ("abc", "is not a number"),
        ("", "is not a number"),
        ("1,5", "is not a number"),
        ("1 2", "is not a number"),
        ("0x10", "is not a number"),
        (None, "is not a number"),
    ],
)
def test_parse_quantity_rejects_with_a_readable_message(text, message):
    with pytest.raises(ValueError) as excinfo:
        parse_quantity(text)
    assert message in str(excinfo.value)


@pytest.mark.parametrize("text", ["1e22", "1e30", "99999999999999999999999"])
def test_parse_quantity_rejects_huge_quantities_as_too_large(text):
    with pytest.raises(ValueError, match="larger than"):
        parse_quantity(text)


def test_parse_money_requires_exact_cents():
    assert parse_money("100000") == D("100000.00")
    assert parse_money(" 0.99 ") == D("0.99")
    for bad in ("1.001", "-0.01", "NaN", "Infinity", "ten"):
        with pytest.raises(ValueError):
            parse_money(bad)


@pytest.mark.parametrize(
    "value, text",
    [
        ("1234.5", "1234.50"),
        ("0", "0.00"),
        ("0.125", "0.12"),
        ("0.135", "0.14"),
        ("-12.3", "-12.30"),
        ("1E+3", "1000.00"),  # never an exponent
        ("100000.00", "100000.00"),
    ],
)
def test_money_text_has_exactly_two_decimals(value, text):
    assert money_text(D(value)) == text


@pytest.mark.parametrize(
    "value, text",
    [
        ("10", "10"),
        ("10.000000", "10"),
        ("0.5", "0.5"),
        ("2.500000", "2.5"),
        ("0.000001", "0.000001"),
        ("1E+3", "1000"),
        ("100", "100"),  # trailing zeros of the integer part are kept
        ("1000000000", "1000000000"),
    ],
)
def test_quantity_text_has_no_trailing_zeros_or_exponent(value, text):
    assert quantity_text(D(value)) == text


@pytest.mark.parametrize(
    "value, text",
    [
        ("101.25", "101.25"),
        ("100", "100.00"),
        ("101.2", "101.20"),
        ("101.123", "101.123"),
        ("0.1234", "0.1234"),
        ("0.12345", "0.1234"),  # half-even at the 4th decimal
        ("1E+2", "100.00"),
        ("250.0000", "250.00"),
    ],
)
def test_price_text_has_two_to_four_decimals(value, text):
    assert price_text(D(value)) == text


@pytest.mark.parametrize(
    "value, text",
    [
        ("187.2551", "187.26"),  # from $1 up, to the cent by the one rule
        ("187.2450", "187.24"),  # half-even
        ("100", "100.00"),
        ("0.1234", "0.1234"),  # below $1, to 1/100 of a cent
        ("0.5", "0.50"),
        ("0.99996", "1.00"),  # the 1e-4 step first: a dollar, with two decimals
        ("-187.2551", "-187.26"),
    ],
)
def test_a_quoted_price_is_shown_to_the_cent_from_a_dollar_up(value, text):
    assert quote_text(D(value)) == text
