"""Build the market a deployment's settings choose: its source, its calendar, its clock, its assets."""

import os
from dataclasses import dataclass
from datetime import date

from papertrader.market import calendar as calendars
from papertrader.market.clock import MarketClock
from papertrader.market.history import HistoryError, load_files, load_shipped
from papertrader.market.replay import ReplayClock, ReplayError, ReplaySource
from papertrader.market.simulated import SimulatedSource

#: What the simulated market trades unless ``assets`` says otherwise.
SIMULATED_ASSETS = ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA")
#: Live providers trade these unless ``assets`` says otherwise.
LIVE_ASSETS = ("AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "TSLA", "JPM", "XOM", "KO", "SPY", "QQQ")


class MarketSetupError(ValueError):
    """The market cannot be built as configured (the message says which setting and why)."""


@dataclass
class Market:
    source: object
    clock: object
    calendar: object
    assets: tuple


def build(settings, clock, reactor=None, log=None):
    """The Market of ``settings`` (``clock`` gives wall time; ``reactor`` does HTTP for live providers)."""
    provider = settings.provider
    name = settings.calendar or ("always_open" if provider == "simulated" else "XNYS")
    try:
        if provider == "replay":
            return _replay(settings, name)
        cal = calendars.load(name)
        if provider == "simulated":
            source = SimulatedSource(settings.market_seed)
            assets = settings.assets or SIMULATED_ASSETS
        else:
            from papertrader.market.http import ClockedReactor

            io = reactor or clock
            source = _live(settings, provider, io if clock is None or clock is io else ClockedReactor(clock, io), log)
            assets = settings.assets or LIVE_ASSETS
        return Market(source, MarketClock(cal, clock, settings.update_interval), cal, tuple(assets))
    except (calendars.CalendarError, HistoryError, ReplayError) as e:
        raise MarketSetupError(str(e))


def _replay(settings, name):
    start = date.fromisoformat(settings.replay_start)
    end = date.fromisoformat(settings.replay_end) if settings.replay_end else None
    if settings.replay_files:
        paths = [p.strip() for p in settings.replay_files.split(",") if p.strip()]
        history = load_files([os.path.expanduser(p) for p in paths], set(settings.assets) or None)
    else:
        history = load_shipped(settings.assets or None)
    if not history.series:
        raise MarketSetupError("replay: no history for these assets" + (f" in {settings.replay_files}"
                                                                        if settings.replay_files else ""))
    last = history.last_day()
    if start > last:
        raise MarketSetupError(f"replay_start {start} is after the end of the history ({last})")
    end = min(end, last) if end else last
    if end < start:
        raise MarketSetupError(f"replay_end {end} is before replay_start {start}")
    cal = calendars.load(name, first_year=max(1990, start.year - 6), last_year=end.year + 1)
    if settings.assets:
        missing = sorted(set(settings.assets) - set(history.series))
        if missing:
            raise MarketSetupError(f"replay: no history for {', '.join(missing)}")
        assets = tuple(settings.assets)
    else:
        # Every symbol whose history lasts to the end of the replay (some start later: their IPO).
        assets = tuple(s for s in history.symbols if history.series[s].daily and
                       date.fromordinal(history.series[s].keys[-1]) >= end)
    return Market(ReplaySource(history, cal), ReplayClock(cal, start, end, settings.replay_step, settings.replay_loop),
                  cal, assets)


def _live(settings, provider, reactor, log):
    if provider == "alpaca":
        key, secret = os.environ.get("APCA_API_KEY_ID"), os.environ.get("APCA_API_SECRET_KEY")
        if not key or not secret:
            raise MarketSetupError("provider alpaca needs the environment variables APCA_API_KEY_ID and"
                                   " APCA_API_SECRET_KEY (your Alpaca API key)")
        from papertrader.market.alpaca import AlpacaSource

        return AlpacaSource(settings.alpaca_data_url, settings.alpaca_trading_url, key, secret,
                            feed=settings.alpaca_feed, timeout=settings.provider_timeout, reactor=reactor, log=log)
    from papertrader.market.nasdaq import NasdaqSource

    return NasdaqSource(settings.nasdaq_url, timeout=settings.provider_timeout, reactor=reactor, log=log)
