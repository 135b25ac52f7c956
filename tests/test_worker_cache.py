"""The worker's caches stay bounded however clients ask (pure: no reactor, no network)."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from twisted.internet.task import Clock

from papertrader.logs import MAX_MEMORY_MESSAGE, MemoryLog
from papertrader.worker.cache import CandleCache, QuoteCache, SessionCache


def answer(n):
    return {"candles": [{"close": Decimal(i)} for i in range(n)], "interval": "1m"}


def test_candle_cache_holds_at_most_max_candles_in_all():
    cache = CandleCache(size=1000, max_candles=2500)
    for i in range(10):
        cache.put(("AAPL", 1000, "1m", i, None), answer(1000))
        assert cache.candles <= 2500
        assert sum(len(a["candles"]) for a in cache._answers.values()) == cache.candles
    assert cache.get(("AAPL", 1000, "1m", 9, None))["candles"][999]["close"] == 999  # the newest is kept


def test_candle_cache_replacing_an_answer_counts_it_once_and_too_large_answers_are_not_kept():
    cache = CandleCache(size=10, max_candles=500)
    cache.put("k", answer(300))
    cache.put("k", answer(200))
    assert cache.candles == 200 and len(cache) == 1
    cache.put("big", answer(501))
    assert cache.get("big") is None and cache.candles == 200
    cache.clear()
    assert cache.candles == 0 and cache.get("k") is None


def test_candle_cache_of_size_zero_keeps_nothing():
    cache = CandleCache(max_candles=0)
    cache.put("k", answer(1))
    assert cache.get("k") is None


def test_candle_cache_still_bounds_the_number_of_answers():
    cache = CandleCache(size=3, max_candles=100)
    for i in range(7):
        cache.put(i, answer(1))
        assert len(cache) <= 3


def test_session_cache_keeps_at_most_its_size():
    clock = Clock()
    cache = SessionCache(clock, size=50)
    expires = datetime.now(timezone.utc) + timedelta(days=1)
    for i in range(200):
        cache.put(f"token-{i}", f"user{i}", expires)
    assert len(cache) == 50
    assert cache.get("token-199").username == "user199" and cache.get("token-0") is None


def test_quote_answers_are_one_per_quote_and_renewed_by_each_update():
    quotes = QuoteCache()
    time = datetime(2026, 1, 2, tzinfo=timezone.utc)
    quotes.update([dict(symbol="AAPL", price=Decimal("10.00"), time=time)])
    first = quotes.answer("AAPL")
    assert b"10.00" in first and quotes.answer("AAPL") is first
    assert quotes.answer("MSFT") is None
    quotes.update([dict(symbol="AAPL", price=Decimal("11.00"), time=time)])
    assert b"11.00" in quotes.answer("AAPL") and len(quotes._answers) == 1


def test_quotes_replaced_by_the_master_leave_no_symbol_it_no_longer_prices():
    """Market time moved back (a seek, a loop): a company not listed yet then has no price on the worker either."""
    quotes = QuoteCache()
    time = datetime(2026, 1, 2, tzinfo=timezone.utc)
    quotes.update([dict(symbol="AAPL", price=Decimal("10.00"), time=time),
                   dict(symbol="FB", price=Decimal("38.00"), time=time)])
    assert quotes.answer("FB") is not None
    quotes.update([dict(symbol="AAPL", price=Decimal("9.00"), time=time)], replace=True)
    assert [q["symbol"] for q in quotes.all()] == ["AAPL"] and quotes.get("FB") is None
    assert quotes.answer("FB") is None and b"9.00" in quotes.answer("AAPL")


def test_memory_log_keeps_size_entries_each_message_capped():
    log = MemoryLog(5)
    for i in range(20):
        log({"log_format": "{text}", "text": "x" * (MAX_MEMORY_MESSAGE * 2), "log_time": 0})
    entries = log.newest(None)
    assert len(entries) == 5
    assert all(len(e.message) <= MAX_MEMORY_MESSAGE + 6 for e in entries)


def test_a_session_heard_to_end_is_not_brought_back_by_an_answer_asked_before():
    """The master's answer that a session is live, asked before its end was pushed, arrives after it: the end is
    the newer news (Gateway.session refuses to cache or serve that answer)."""
    sessions = SessionCache(Clock())
    mark = sessions.forgets  # a command asks the master about "tok" ...
    sessions.forget(SessionCache.key("tok"))  # ... the master pushes SessionEnded for it meanwhile
    assert sessions.ended_since("tok", mark)
    assert not sessions.ended_since("other", mark)
    assert not sessions.ended_since("tok", sessions.forgets)  # asked after the end: the master's answer stands
