"""Validation of client input: typed errors (papertrader.errors) with messages a person can read."""

from decimal import Decimal

import pytest

from papertrader import errors
from papertrader.errors import InvalidInput, NotLoggedIn, UnknownSymbol, WeakPassword
from papertrader.master import validation

ASSETS = ("AAPL", "MSFT", "TSLA")
USERNAME_MESSAGE = "username must be 3-24 characters: letters, digits, '_', '.', '-'"


@pytest.mark.parametrize("name", ["abc", "a" * 24, "Alice", "al.ice_9-x", "123", "..."])
def test_valid_usernames_are_kept_as_given(name):
    assert validation.username(name) == name


@pytest.mark.parametrize(
    "name", ["ab", "a" * 25, "", None, "al ice", "alice!", "alice@x", "ålice", "al/ice", " alice", "alice "]
)
def test_invalid_usernames_are_refused(name):
    with pytest.raises(InvalidInput) as excinfo:
        validation.username(name)
    assert excinfo.value.code == "invalid_input"
    assert excinfo.value.message == USERNAME_MESSAGE


def test_username_with_a_trailing_newline_is_refused():
    with pytest.raises(InvalidInput):
        validation.username("alice\n")


@pytest.mark.parametrize("address", ["a@b.co", "alice.smith+tag@example.com", "x" * 64 + "@example.com"])
def test_valid_email_addresses(address):
    assert validation.email(address) == address


def test_email_is_stripped():
    assert validation.email("  alice@example.com \n") == "alice@example.com"


@pytest.mark.parametrize(
    "address",
    ["", None, "alice", "alice@", "@example.com", "alice@example", "a@@b.com", "a b@c.com", "a@b c.com",
     "x" * 65 + "@example.com", "a@" + "b" * 250 + ".com"],
)
def test_invalid_email_addresses_are_refused(address):
    with pytest.raises(InvalidInput, match="^email address is not valid$"):
        validation.email(address)


def test_password_length_limits():
    assert validation.password("kq7!vz2m") == "kq7!vz2m"
    assert validation.password("kq7!vz2m" * 128) == "kq7!vz2m" * 128
    assert validation.password("éàüöçñøå") == "éàüöçñøå"  # counted in characters
    with pytest.raises(WeakPassword, match="^password must be at least 8 characters$"):
        validation.password("x" * 7)
    with pytest.raises(WeakPassword, match="^password must be at least 8 characters$"):
        validation.password(None)
    with pytest.raises(InvalidInput, match="^password must be at most 1024 characters$"):
        validation.password("x" * 1025)


@pytest.mark.parametrize("value", ["a", "A" * 128, "order-1_B", "0123456789", "sma:MSFT:2024-01-02T09:30:00.000123",
                                   "entry MSFT 1", "order.1", "order/1", "ordér", "é" * 128])
def test_valid_client_order_ids(value):
    """Any printable text of up to 128 characters, as Alpaca's API takes (strategies build them from symbols
    and times)."""
    assert validation.client_order_id(value) == value


@pytest.mark.parametrize("value", ["", None, "a" * 129, " order", "order ", "order\t1", "order\x001", "order\u20281",
                                   5])
def test_invalid_client_order_ids_are_refused(value):
    """Up to 128 characters, as Alpaca's API allows; no control character, no surrounding space."""
    with pytest.raises(InvalidInput, match="^client_order_id must be 1-128 printable characters, not beginning or ending with a space$"):
        validation.client_order_id(value)


def test_client_order_id_with_a_trailing_newline_is_refused():
    with pytest.raises(InvalidInput):
        validation.client_order_id("order-1\n")


def test_limit_bounds():
    assert validation.limit(1, 100) == 1
    assert validation.limit(100, 100) == 100
    for bad in (0, -1, 101):
        with pytest.raises(InvalidInput, match="^limit must be between 1 and 100$"):
            validation.limit(bad, 100)


@pytest.mark.parametrize("given", ["AAPL", "aapl", "Msft", " tsla ", "TsLa\n"])
def test_symbol_is_case_insensitive_and_normalised_to_upper_case(given):
    assert validation.symbol(given, ASSETS) == given.strip().upper()


def test_unknown_symbol_names_the_traded_symbols():
    with pytest.raises(UnknownSymbol) as excinfo:
        validation.symbol("goog", ASSETS)
    assert excinfo.value.code == "unknown_symbol"
    assert excinfo.value.message == "unknown symbol 'GOOG': traded symbols are AAPL, MSFT, TSLA"
    # A typo is answered with what was meant first (the list of every symbol may be long).
    with pytest.raises(UnknownSymbol) as excinfo:
        validation.symbol("APPL", ASSETS)
    assert excinfo.value.message == "unknown symbol 'APPL': did you mean AAPL? traded symbols are AAPL, MSFT, TSLA"


def test_unknown_symbol_message_is_bounded():
    with pytest.raises(UnknownSymbol) as excinfo:
        validation.symbol("x" * 10_000, ASSETS)
    assert "'XXXXXXXXXXXXXXXX...'" in excinfo.value.message
    assert len(excinfo.value.message) < 100


def test_missing_symbol_is_unknown():
    with pytest.raises(UnknownSymbol):
        validation.symbol(None, ASSETS)
    with pytest.raises(UnknownSymbol):
        validation.symbol("", ASSETS)


def test_side_is_buy_or_sell():
    assert validation.side("buy") == "buy"
    assert validation.side("sell") == "sell"
    for bad in ("short", "", None, "buy "):
        with pytest.raises(InvalidInput, match="^side must be 'buy' or 'sell'$"):
            validation.side(bad)


def test_quantity_is_parsed_to_a_decimal():
    assert validation.quantity("2.5") == Decimal("2.5")


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "quantity must be positive"),
        ("0.000000", "quantity must be positive"),
        ("-3", "quantity '-3' is not a plain positive number (digits and one point)"),
        ("1.1234567", "quantity has more than 6 decimals"),
        ("1000000001", "quantity must be at most 1000000000"),
        ("1000000000.000001", "quantity must be at most 1000000000"),
        ("NaN", "quantity 'NaN' is not a plain positive number (digits and one point)"),
        ("Infinity", "quantity 'Infinity' is not a plain positive number (digits and one point)"),
        ("ten", "quantity 'ten' is not a plain positive number (digits and one point)"),
        ("", "quantity '' is not a plain positive number (digits and one point)"),
        ("1" * 70, "quantity must be at most 1000000000"),
        ("0." + "0" * 70 + "1", "quantity '0." + "0" * 30 + "...' is too long"),
    ],
)
def test_bad_quantities_are_invalid_input(value, message):
    with pytest.raises(InvalidInput) as excinfo:
        validation.quantity(value)
    assert excinfo.value.message == message


@pytest.mark.parametrize("value", ["1e3", "1E2", "1e30", "1e-3", "+5", "5.", ".5", "1_000", "1,5", "1 2", "0x10",
                                   "\uff15", "\u0665"])
def test_a_quantity_is_written_as_a_price_is_digits_and_one_point(value):
    # 'buy AAPL 1e3' was 1000 shares while '--limit 1e2' was refused: a quantity now has the price's shape.
    with pytest.raises(InvalidInput) as excinfo:
        validation.quantity(value)
    assert excinfo.value.message == f"quantity {value!r} is not a plain positive number (digits and one point)"
    with pytest.raises(InvalidInput) as excinfo:
        validation.decimal("amount", value, 6)
    assert "is not a plain positive number (digits and one point)" in excinfo.value.message


@pytest.mark.parametrize("value, expected", [("10", "10"), ("2.5", "2.5"), ("0.000001", "0.000001"),
                                             (" 5 ", "5"), ("2.5000000", "2.5"), ("007", "7")])
def test_plain_quantities_are_accepted_and_surrounding_spaces_ignored_as_for_a_price(value, expected):
    assert validation.quantity(value) == Decimal(expected)
    assert validation.decimal("amount", value, 6) == Decimal(expected)


def test_numbers_are_refused_in_one_wording_naming_the_field_as_the_client_did_and_saying_the_limit():
    """The HTTP API names a quantity qty and a limit price limit_price; every refusal names the field so, in the
    same words as the command line's, with the limit (a limit price's is the trading core's MAX_PRICE)."""
    for check, message in (
            (lambda: validation.quantity("0", "qty"), "qty must be positive"),
            (lambda: validation.quantity("1000000001", "qty"), "qty must be at most 1000000000"),
            (lambda: validation.quantity("0.0000001", "qty"), "qty has more than 6 decimals"),
            (lambda: validation.quantity("-5", "qty"),
             "qty '-5' is not a plain positive number (digits and one point)"),
            (lambda: validation.price("limit price", "0"), "limit price must be positive"),
            (lambda: validation.price("limit_price", "1000000.01"), "limit_price must be at most 1000000"),
            (lambda: validation.price("limit price", "1" * 300), "limit price must be at most 1000000"),
            (lambda: validation.price("limit price", "1.00001"), "limit price has more than 4 decimals"),
            (lambda: validation.percent("trail percent", "100.01"), "trail percent must be at most 100"),
            (lambda: validation.percent("trail percent", "100"), "trail percent must be less than 100"),
            (lambda: validation.money_amount("notional", "1000000000.01", Decimal(10**9)),
             "notional must be at most 1000000000"),
            (lambda: validation.money_amount("cash", "1000000000000.01"), "cash must be at most 1000000000000")):
        with pytest.raises(InvalidInput) as excinfo:
            check()
        assert excinfo.value.message == message
    assert validation.price("limit price", "1000000") == Decimal(1000000)
    assert validation.quantity("1000000000", "qty") == Decimal(1000000000)
    with pytest.raises(InvalidInput, match="^limit price has more than 4 decimals$"):
        validation.price("limit price", "1." + "0" * 1000 + "1")


def test_token_shape():
    token = "A" * 43
    assert validation.token(token) == token
    for bad in ("", None, "short", "x" * 129, "a" * 42 + "!", "a" * 20 + " " + "a" * 20):
        with pytest.raises(NotLoggedIn):
            validation.token(bad)


def test_every_error_has_a_distinct_code_and_a_readable_default_message():
    classes = list(errors.ALL_ERRORS)
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes)
    assert len(set(errors.ALL_ERRORS.values())) == len(classes)
    for cls in classes:
        error = cls()
        assert issubclass(cls, errors.PaperTraderError)
        assert error.message and error.message[0].isupper() and error.message.endswith(".")
        assert errors.ALL_ERRORS[cls] == cls.code.upper().encode("ascii")
    assert errors.InsufficientFunds().message == "Not enough cash for this order."
    assert errors.InsufficientFunds("only 3.00 left").message == "only 3.00 left"
