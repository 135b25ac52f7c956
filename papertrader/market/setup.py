"""Build the market a deployment's settings choose: its source, its calendar, its clock, its assets."""

import bisect
import os
from dataclasses import dataclass
from decimal import Decimal
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from papertrader.market import calendar as calendars
from papertrader.market.clock import MarketClock
from papertrader.market.history import HistoryError, file_symbols, load_files, load_shipped, shipped_symbols
from papertrader.market.replay import ReplayClock, ReplayError, ReplaySource
from papertrader.market.simulated import SimulatedSource
from papertrader.money import from_price_units
from papertrader.trading.corporate import Split

#: What the simulated market trades unless ``assets`` says otherwise.
SIMULATED_ASSETS = ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA")
#: Live providers trade these unless ``assets`` says otherwise.
LIVE_ASSETS = ("AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "TSLA", "JPM", "XOM", "KO", "SPY", "QQQ")


class MarketSetupError(ValueError):
    """The market cannot be built as configured (the message names the setting and says what is accepted)."""


@dataclass
class Market:
    source: object
    clock: object
    calendar: object
    assets: tuple


@dataclass
class Plan:
    """What the settings choose, checked against what exists, with what was read to check it: the calendar,
    the assets and, for the replay, its history and first and last days.  It needs no clock or reactor, so
    a daemon makes it while it reads its options, before anything starts."""

    calendar: object
    assets: tuple
    history: object = None
    start: date = None
    end: date = None
    #: What the master logs as warnings at start, a line each: what of the replay's own files it leaves out, a
    #: replay_end after the history's last day.
    warnings: tuple = ()


def build(settings, clock, reactor=None, log=None, plan=None):
    """The Market of ``settings`` (``clock`` gives wall time; ``reactor`` does HTTP for live providers), from
    ``plan`` (what check() made of the same settings) or checked now."""
    plan = plan or check(settings)
    provider = settings.provider
    for warning in plan.warnings if log is not None else ():
        log.warn("{warning}", warning=warning)
    if provider == "replay":
        try:
            market_time = ReplayClock(plan.calendar, plan.start, plan.end, settings.replay_step, settings.replay_loop)
            if settings.replay_paused:
                market_time.pause()  # a data dir whose replay has run restores its own state over this
        except (calendars.CalendarError, ReplayError) as e:
            raise MarketSetupError(str(e))
        return Market(ReplaySource(plan.history, plan.calendar), market_time, plan.calendar, plan.assets)
    if provider == "simulated":
        source = SimulatedSource(settings.market_seed)
    else:
        from papertrader.market.http import ClockedReactor

        io = reactor or clock
        source = _live(settings, provider, io if clock is None or clock is io else ClockedReactor(clock, io), log)
    return Market(source, MarketClock(plan.calendar, clock, settings.update_interval), plan.calendar, plan.assets)


def check(settings):
    """The Plan of the market ``settings`` choose, checked against what exists (the calendar, the replay's files,
    days and symbols, a live provider's keys): a MarketSetupError names the setting and says what is accepted.
    Give it to build() (the master's), so that the replay's history is read once, however large its files."""
    provider = settings.provider
    name = settings.calendar or ("always_open" if provider == "simulated" else "XNYS")
    if provider == "replay":
        return _replay(settings, name)
    if provider == "alpaca":
        _alpaca_keys()
    assets = settings.assets or (SIMULATED_ASSETS if provider == "simulated" else LIVE_ASSETS)
    return Plan(_calendar(name), tuple(assets))


def _calendar(name, **years):
    try:
        return calendars.load(name, **years)
    except calendars.CalendarError as e:
        raise MarketSetupError(f"calendar: {e}")


#: Where a replay of the shipped history starts when replay_start is not set.
SHIPPED_START = date(2010, 1, 4)


def _replay(settings, name):
    end = date.fromisoformat(settings.replay_end) if settings.replay_end else None
    history = _history(settings)
    first, last = history.first_day(), history.last_day()
    if settings.replay_start:
        start = date.fromisoformat(settings.replay_start)
    else:
        start = first if settings.replay_files else SHIPPED_START
    where = f"replay_files {settings.replay_files}" if settings.replay_files else "the shipped history"
    of = f" of {', '.join(settings.assets)}" if settings.assets else ""
    if not first <= start <= last:
        side = "after the end of" if start > last else "before the beginning of"
        raise MarketSetupError(f"replay_start: {start} is {side} the history: {where} has days{of} from {first}"
                               f" to {last}")
    warnings = ()
    if end and end > last:  # (a backtest runs to the end of its data: the replay too, but it says so)
        warnings = (f"replay_end: {end} is after the end of the history ({where} has days{of} to {last}): the replay"
                    f" ends on {last}",)
    end = min(end, last) if end else last
    if end < start:
        raise MarketSetupError(f"replay_end: {end} is before replay_start ({start})")
    cal = _replay_calendar(name, start, end)
    if settings.assets:
        assets = tuple(settings.assets)
    else:
        # Every symbol whose history lasts to the end of the replay (some start later: their IPO).
        assets = tuple(s for s in history.symbols if len(history.series[s]) and history.series[s].day(-1) >= end)
    if settings.replay_files:
        warnings += _left_out(settings, history, cal, assets, end)
    return Plan(cal, assets, history, start, end, warnings)


#: How many days a warning names before it only counts them.
SHOWN_DAYS = 5


def _left_out(settings, history, cal, assets, end):
    """What of an operator's files the replay leaves out, a line each: files without a bar, rows on days the
    calendar has no session, and (unless ``assets`` names them) symbols whose history ends before the replay."""
    lines = []
    empty = [history.files[s] for s in history.symbols if not len(history.series[s])]
    if empty:
        lines.append(f"replay_files: no bar in {', '.join(empty)} (only a header row): left out")
    counted = []
    for symbol in assets:
        rows = _rows_without_session(history.series[symbol], cal, end)
        if rows:
            days = sorted(rows)
            shown = ", ".join(map(str, days[:SHOWN_DAYS])) + (f"... ({len(days)} days)" if len(days) > SHOWN_DAYS
                                                               else "")
            count = sum(rows.values())
            counted.append(f"{history.files[symbol]} has {count} ({shown})")
    if counted:
        lines.append(f"replay_files: rows on days {cal.name} has no session are left out: {', '.join(counted)}")
    lines += _splits_not_in_prices(history, assets, end)
    if not settings.assets:
        early = [(s, history.series[s].day(-1)) for s in history.symbols
                 if len(history.series[s]) and history.series[s].day(-1) < end]
        if len(early) == 1:
            lines.append(f"replay: {early[0][0]}'s history ends {early[0][1]}, before the replay's end ({end}): not"
                         " traded; name it in assets to trade it until then")
        elif early:
            ends = ", ".join(f"{s} (to {last})" for s, last in early)
            lines.append(f"replay: the histories of {ends} end before the replay's end ({end}): not traded; name"
                         " them in assets to trade them until then")
    return tuple(lines)


def _splits_not_in_prices(history, assets, end):
    """A line for each split of ``assets`` (up to ``end``) that the prices do not show: the first open on or after
    its day is nearer the close before it than that close divided by the ratio (split-adjusted files, or a split
    on the wrong day or with the wrong ratio): the split would multiply every holder's shares at an unchanged
    price."""
    lines = []
    for event in history.events:
        if not isinstance(event, Split) or event.symbol not in assets or event.date > end:
            continue
        series = history.series[event.symbol]
        # The first row on or after its day (an intraday row's day is its start's, in UTC, as Series.day says).
        key = (event.date.toordinal() if series.daily
               else int(datetime.combine(event.date, time(0), timezone.utc).timestamp()))
        at = bisect.bisect_left(series.keys, key)
        if at == 0 or at == len(series):
            continue  # no day before it, or none from it on: nothing to compare
        close, opened = series.close[at - 1], series.open[at]
        expected = Decimal(close) * event.old / event.new
        # Nearer (as a ratio) to the unchanged price than to the split one: the prices do not show the split.
        if (opened / Decimal(close)).ln().copy_abs() < (opened / expected).ln().copy_abs():
            lines.append(
                f"replay_files: {history.files[event.symbol]}: {event.symbol}'s prices do not fall at its"
                f" {event.new.normalize():f}-for-{event.old.normalize():f} split of {event.date} (close"
                f" {from_price_units(close)} on {series.day(at - 1)}, open {from_price_units(opened)} on"
                f" {series.day(at)}, about {from_price_units(round(expected))} expected): prices must be as traded,"
                " not adjusted for splits, or the split's date or ratio in events.csv is wrong; as it is, every"
                " holder's equity jumps at the split")
    return lines


def _rows_without_session(series, cal, end):
    """{day: how many rows of ``series`` fall on it} for the days up to ``end`` (within the calendar's years) on
    which ``cal`` has no session: the replay never plays them."""
    if isinstance(cal, calendars.AlwaysOpen):
        return {}  # a session every day
    covered = cal.sessions(datetime(1, 1, 2, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc))
    if not covered or not len(series):
        return {}
    first = cal.date_of(covered[0])
    out = {}
    if series.daily:
        keys = series.keys
        for i in range(bisect.bisect_left(keys, first.toordinal()), bisect.bisect_right(keys, end.toordinal())):
            if cal.session_on(date.fromordinal(keys[i])) is None:
                out[date.fromordinal(keys[i])] = 1
        return out
    zone = ZoneInfo(cal.timezone)

    def midnight(day):
        return int(datetime.combine(day, time(0), zone).timestamp())

    keys, i, stop = series.keys, bisect.bisect_left(series.keys, midnight(first)), bisect.bisect_left(
        series.keys, midnight(end + timedelta(days=1)))
    while i < stop:  # a day at a time: the rows of a day are found by bisection
        day = datetime.fromtimestamp(keys[i], zone).date()
        following = bisect.bisect_left(keys, midnight(day + timedelta(days=1)), i, stop)
        if cal.session_on(day) is None:
            out[day] = following - i
        i = following
    return out


def _replay_calendar(name, start, end):
    """The calendar from six years before ``start`` (the charts' history before it), or from ``start`` if the
    exchange's calendar begins later; one that cannot cover ``start`` is a mistake of replay_start."""
    try:
        return calendars.load(name, first_year=start.year - 6, last_year=end.year + 1)
    except calendars.CalendarBounds as e:
        if e.earliest > start:
            raise MarketSetupError(f"replay_start: {start} is before the first day of the {name} calendar: {e}")
        return _calendar(name, first_year=e.earliest.year, last_year=end.year + 1)
    except calendars.CalendarError as e:
        raise MarketSetupError(f"calendar: {e}")


def _history(settings):
    """The replay's history of the assets (all it has if none are named); every asset must have one."""
    if not settings.replay_files:
        _check_assets(settings, shipped_symbols(), "the shipped history")
        return load_shipped(settings.assets or None)
    paths = [os.path.expanduser(p.strip()) for p in settings.replay_files.split(",") if p.strip()]
    try:
        _check_assets(settings, file_symbols(paths), f"replay_files {settings.replay_files}")
        history = load_files(paths, set(settings.assets) or None)
    except HistoryError as e:
        raise MarketSetupError(f"replay_files: {e}")
    if history.series and not any(len(series) for series in history.series.values()):
        raise MarketSetupError(f"replay_files: no bar in {', '.join(history.files[s] for s in history.symbols)}"
                               " (after the header row, one bar per line: date,open,high,low,close,volume)")
    if not history.series:
        raise MarketSetupError(f"replay_files: no history in {settings.replay_files} (one SYMBOL.csv file per"
                               " symbol, with a header row and then one bar per line)")
    return history


def _check_assets(settings, available, where):
    """Refuse assets the replay has no history for, saying which it has (before reading any of it)."""
    missing = sorted(set(settings.assets) - set(available))
    if missing:
        raise MarketSetupError(f"assets: no history for {', '.join(missing)} in {where}, which has"
                               f" {', '.join(available) or 'none'}")


def _alpaca_keys():
    """Alpaca's API key, from the environment (never a setting: it would reach command lines and logs)."""
    key, secret = os.environ.get("APCA_API_KEY_ID"), os.environ.get("APCA_API_SECRET_KEY")
    if not key or not secret:
        raise MarketSetupError("provider alpaca needs the environment variables APCA_API_KEY_ID and"
                               " APCA_API_SECRET_KEY (your Alpaca API key)")
    return key, secret


def _live(settings, provider, reactor, log):
    if provider == "alpaca":
        key, secret = _alpaca_keys()
        from papertrader.market.alpaca import AlpacaSource

        return AlpacaSource(settings.alpaca_data_url, settings.alpaca_trading_url, key, secret,
                            feed=settings.alpaca_feed, timeout=settings.provider_timeout, reactor=reactor, log=log)
    from papertrader.market.nasdaq import NasdaqSource

    return NasdaqSource(settings.nasdaq_url, timeout=settings.provider_timeout, reactor=reactor, log=log)
