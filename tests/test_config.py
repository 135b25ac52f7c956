"""Settings: read from an ini file and overrides, validated once; every bad value is a ConfigError."""

import os
from decimal import Decimal

import pytest

from papertrader.config import ConfigError, Settings, load_settings


def write(tmp_path, text, name="papertrader.ini"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_no_file_and_no_overrides_gives_the_defaults():
    assert load_settings() == Settings()


def test_every_setting_is_read_from_the_file(tmp_path):
    path = write(tmp_path, """
[papertrader]
assets = aapl, MSFT ,tsla
workers = 3
log_memory_size = 50
update_interval = 0.25
starting_cash = 2500.50
commission = 0.99
bcrypt_rounds = 5
market_seed = 42
""")
    s = load_settings(path)
    assert s == Settings(
        assets=("AAPL", "MSFT", "TSLA"), workers=3, log_memory_size=50, update_interval=0.25,
        starting_cash=Decimal("2500.50"), commission=Decimal("0.99"), bcrypt_rounds=5, market_seed=42,
    )
    assert isinstance(s.starting_cash, Decimal) and isinstance(s.update_interval, float)


def test_keys_are_case_insensitive_and_unset_keys_keep_defaults(tmp_path):
    path = write(tmp_path, "[papertrader]\nWorkers = 4\n")
    s = load_settings(path)
    assert s.workers == 4
    assert s.assets == Settings().assets and s.starting_cash == Decimal("100000.00")


def test_overrides_win_over_the_file(tmp_path):
    path = write(tmp_path, "[papertrader]\nworkers = 3\nmarket_seed = 9\n")
    s = load_settings(path, {"workers": "5", "market_seed": None, "update_interval": "2"})
    assert s.workers == 5
    assert s.market_seed == 9  # an override of None means "not given"
    assert s.update_interval == 2.0


@pytest.mark.parametrize("text, value", [("0.5", 0.5), ("0.01", 0.01), ("1.75", 1.75), ("86400", 86400.0)])
def test_fractional_update_interval_is_allowed(text, value):
    assert load_settings(overrides={"update_interval": text}).update_interval == value


@pytest.mark.parametrize(
    "name, raw",
    [
        ("workers", "0"),
        ("workers", "65"),
        ("workers", "two"),
        ("workers", "2.5"),
        ("workers", ""),
        ("log_memory_size", "0"),
        ("log_memory_size", "-5"),
        ("update_interval", "0"),
        ("update_interval", "0.001"),
        ("update_interval", "-1"),
        ("update_interval", "86401"),
        ("update_interval", "nan"),
        ("update_interval", "inf"),
        ("update_interval", "fast"),
        ("starting_cash", "-1"),
        ("starting_cash", "1.001"),
        ("starting_cash", "lots"),
        ("starting_cash", "NaN"),
        ("starting_cash", "Infinity"),
        ("commission", "-0.01"),
        ("commission", "0.005"),
        ("bcrypt_rounds", "3"),
        ("bcrypt_rounds", "32"),
        ("market_seed", "-1"),
        ("market_seed", str(2**63 + 1)),
        ("assets", "AAPL,AAPL"),
        ("assets", "aapl,AAPL"),
        ("assets", "AA PL"),
        ("assets", "1ABC"),
        ("assets", "ABCDEFGHIJKLM"),
        ("assets", "AAPL;MSFT"),
        ("assets", ",".join(f"S{i}" for i in range(201))),
        ("max_connections_per_address", "0"),
        ("max_connections_per_address", "many"),
        ("handshake_timeout", "0"),
        ("handshake_timeout", "nan"),
        ("idle_timeout", "0.5"),
        ("idle_timeout", "inf"),
        ("max_unsent_bytes", "65535"),
        ("max_unsent_bytes", str(2**30 + 1)),
        ("calendar", "XNYZ"),
        ("calendar", "xnys"),
        ("oidc_issuer", "accounts.google.com"),
        ("oidc_issuer", "http://accounts.google.com"),
        ("oidc_issuer", "ftp://accounts.google.com"),
        ("oidc_issuer", "https://"),
        ("oidc_issuer", "https://id.example.com/?a=1"),
        ("margin_call_hours", "soon"),
        ("provider_timeout", "slow"),
    ],
)
def test_every_bad_value_is_a_config_error_naming_the_setting(tmp_path, name, raw):
    with pytest.raises(ConfigError) as excinfo:
        load_settings(overrides={name: raw})
    assert name in str(excinfo.value)
    # The same value in a file is refused the same way.
    path = write(tmp_path, f"[papertrader]\n{name} = {raw}\n")
    with pytest.raises(ConfigError):
        load_settings(path)


def test_limits_themselves_are_accepted():
    assets = ",".join(f"S{i}" for i in range(200))
    s = load_settings(overrides={"workers": "64", "bcrypt_rounds": "4", "log_memory_size": "1",
                                 "market_seed": "0", "commission": "0", "assets": assets})
    assert (s.workers, s.bcrypt_rounds, s.log_memory_size, s.market_seed) == (64, 4, 1, 0)
    assert s.commission == Decimal("0.00")
    assert len(s.assets) == 200


def test_unknown_key_in_the_file_is_refused(tmp_path):
    path = write(tmp_path, "[papertrader]\nworkers = 2\nupdate_intervall = 5\n")
    with pytest.raises(ConfigError, match="unknown setting 'update_intervall'"):
        load_settings(path)


def test_a_calendar_is_always_open_or_one_the_exchange_calendars_library_knows():
    for name in ("", "always_open", "XNYS", "XNAS", "XLON"):  # XNAS is the library's alias of XNYS
        assert load_settings(overrides={"calendar": name}).calendar == name
    with pytest.raises(ConfigError) as excinfo:
        load_settings(overrides={"calendar": "XNYZ"})
    message = str(excinfo.value)
    assert message.startswith("calendar: 'XNYZ' is not a calendar: always_open, or an exchange code: AIXK, ")
    assert ", XNAS, XNYS, " in message and "24/7" not in message


def test_the_worker_section_knows_region_only(tmp_path):
    assert load_settings(write(tmp_path, "[papertrader]\n[worker]\nregion = lab-zone\n")) == Settings()
    path = write(tmp_path, "[papertrader]\n[worker]\nregoin = lab-zone\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'regoin' in \[worker\] \(known: region\)"):
        load_settings(path)


def test_an_unknown_section_is_refused(tmp_path):
    path = write(tmp_path, "[papertrader]\nworkers = 2\n[wrker]\nregion = lab-zone\n")
    with pytest.raises(ConfigError, match=r"unknown section \[wrker\] \(known: \[papertrader\], \[worker\]\)"):
        load_settings(path)


def parse_options(options, argv, capsys):
    """The one line a usage mistake in ``argv`` prints (and its exit status, 2)."""
    with pytest.raises(SystemExit) as excinfo:
        options.parseOptions(argv)
    assert excinfo.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--replay-start", "2030-01-02"], "replay_start: 2030-01-02 is after the end of the history: the shipped history"
                                       " has days from 1962-01-02 to 2018-03-27"),
    (["--assets", "AAPL,NOPE"], "assets: no history for NOPE in the shipped history, which has AAPL, ABBV, "),
    (["--replay-start", "1961-01-03"], "replay_start: 1961-01-03 is before the beginning of the history: the shipped"
                                       " history has days from 1962-01-02 to 2018-03-27"),
    (["--calendar", "XTKS", "--replay-start", "1996-01-04", "--assets", "AAPL"],
     "replay_start: 1996-01-04 is before the first day of the XTKS calendar: the XTKS calendar begins on 1997-01-01"),
    (["--replay-end", "2009-12-31"], "replay_end: 2009-12-31 is before replay_start (2010-01-04)"),
    (["--provider", "alpaca"], "provider alpaca needs the environment variables APCA_API_KEY_ID and"),
])
def test_market_settings_naming_what_does_not_exist_are_usage_mistakes(tmp_path, capsys, monkeypatch, argv,
                                                                      message):
    from papertrader.options import SettingsOptions

    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    line = parse_options(SettingsOptions(), ["--data-dir", str(tmp_path), *argv], capsys)
    assert line.startswith(f"twistd papertrader: {message}") and line.count("\n") == 1, line
    assert not list(tmp_path.iterdir())  # found before anything starts


def test_replay_files_name_the_setting_and_which_symbols_they_have(tmp_path, capsys):
    from papertrader.options import SettingsOptions

    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "XYZ.csv").write_text("date,open,high,low,close,volume\n2024-03-04,1,2,1,1.5,10\n2024-03-05x,1,2,1,1,1\n")
    (prices / "events.csv").write_text("symbol,type,ex_date,pay_date,value\n")
    line = parse_options(SettingsOptions(), ["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices),
                                             "--assets", "XYZ,ABC"], capsys)
    assert f"assets: no history for ABC in replay_files {prices}, which has XYZ (" in line
    line = parse_options(SettingsOptions(), ["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices)], capsys)
    assert f"replay_files: {prices / 'XYZ.csv'}:3: '2024-03-05x' is not a date" in line


def test_a_relative_replay_files_path_that_is_missing_says_where_it_was_looked_for(tmp_path, capsys, monkeypatch):
    """`replay_files = prices` in DATA_DIR/papertrader.ini, the master started from another directory: "prices: no
    such file or directory", while DATA_DIR/prices was right there. The path is from the current directory."""
    from papertrader.options import SettingsOptions

    data = tmp_path / "d"
    (data / "prices").mkdir(parents=True)
    (data / "prices" / "XYZ.csv").write_text("date,open,high,low,close,volume\n2024-03-04,1,2,1,1.5,10\n")
    (data / "papertrader.ini").write_text("[papertrader]\nreplay_files = prices\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    line = parse_options(SettingsOptions(), ["--data-dir", str(data)], capsys)
    assert line == (f"twistd papertrader: replay_files: prices: no such file or directory ({elsewhere / 'prices'}:"
                    " a relative path is from the directory the daemon is started in, not the data dir's: give"
                    " the full path) (--help lists the options)\n")


def test_a_replay_of_intraday_files_only_is_planned_from_their_days(tmp_path, capsys):
    """Files of minute bars alone (the README's intraday format): their days bound the replay, and their symbols
    are its assets (a TypeError traceback before: only daily bars counted)."""
    from datetime import date

    from papertrader.options import SettingsOptions

    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "AAA.csv").write_text("time,open,high,low,close,volume\n2024-03-04T14:30:00+00:00,10,10.1,9.9,10,100\n"
                                    "2024-03-05T14:30:00+00:00,10,10.2,10,10.1,100\n")
    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices), "--replay-start",
                          "2024-03-04", "--replay-step", "1m"])
    plan = options.market_plan
    assert (plan.assets, plan.start, plan.end) == (("AAA",), date(2024, 3, 4), date(2024, 3, 5))
    line = parse_options(SettingsOptions(), ["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices),
                                             "--replay-start", "2024-03-06", "--replay-step", "1m"], capsys)
    assert f"replay_start: 2024-03-06 is after the end of the history: replay_files {prices} has days from" \
           " 2024-03-04 to 2024-03-05" in line


def test_a_replay_starts_on_the_day_asked_however_early_and_own_files_on_their_first_day(tmp_path):
    """A replay_start before 1990 started in 1990 while `clock` said "from 1975-01-02" (the calendar was cut
    there); files of one's own, without replay_start, started on 2010-01-04 and played years without a price."""
    from datetime import date

    from papertrader.options import SettingsOptions

    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-start", "1975-01-02", "--assets", "GE"])
    plan = options.market_plan
    assert plan.start == date(1975, 1, 2) and plan.calendar.session_on(date(1975, 1, 2)) is not None
    assert plan.calendar.session_on(date(1969, 1, 2)) is not None  # six years before: the charts' history
    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "XYZ.csv").write_text("date,open,high,low,close,volume\n2024-03-05,1,2,1,1.5,10\n2024-03-06,1,2,1,1,1\n")
    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices)])
    assert (options.market_plan.start, options.market_plan.end) == (date(2024, 3, 5), date(2024, 3, 6))


def test_replay_files_with_a_header_and_no_bar_are_no_history_naming_the_files(tmp_path, capsys):
    """They said "no history in DIR", not which file lacked its bars."""
    from papertrader.options import SettingsOptions

    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "AAA.csv").write_text("date,open,high,low,close,volume\n")
    (prices / "BBB.csv").write_text("date,open,high,low,close,volume\n\n")
    line = parse_options(SettingsOptions(), ["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices)], capsys)
    assert f"replay_files: no bar in {prices / 'AAA.csv'}, {prices / 'BBB.csv'} (after the header row, one bar per" \
           " line: date,open,high,low,close,volume)" in line
    (prices / "AAA.csv").unlink(), (prices / "BBB.csv").unlink()
    (prices / "events.csv").write_text("symbol,type,ex_date,pay_date,value\n")
    line = parse_options(SettingsOptions(), ["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices)], capsys)
    assert f"replay_files: no history in {prices} (one SYMBOL.csv file per symbol" in line


def test_a_worker_does_not_check_the_market_settings_it_never_reads(tmp_path):
    from papertrader.worker.service import Options

    options = Options()
    options.parseOptions(["--data-dir", str(tmp_path), "--name", "w1", "--replay-files", str(tmp_path / "none"),
                          "--replay-start", "2030-01-02"])  # the replay's files may be on the master's machine only
    assert options.settings.replay_start == "2030-01-02"


def test_a_renamed_setting_is_read_under_its_old_name_but_not_beside_its_new_one(tmp_path):
    assert load_settings(write(tmp_path, "[papertrader]\nhash_threads = 3\n")).hash_processes == 3
    path = write(tmp_path, "[papertrader]\nhash_threads = 3\nhash_processes = 2\n")
    with pytest.raises(ConfigError, match="'hash_threads' is the old name of 'hash_processes'"):
        load_settings(path)


def test_the_old_command_line_option_of_a_renamed_setting_still_works(tmp_path):
    from papertrader.options import SettingsOptions

    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path), "--hash-threads", "3"])
    assert options.settings.hash_processes == 3


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown setting 'speed'"):
        load_settings(overrides={"speed": "11"})


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(str(tmp_path / "nope.ini"))


@pytest.mark.parametrize("text", ["workers = 2\n", "[papertrader]\nworkers = 2\nworkers = 3\n", "[papertrader\n"])
def test_malformed_file_is_a_config_error(tmp_path, text):
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, text))


def test_percent_sign_in_a_value_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, "[papertrader]\nstarting_cash = 100%\n"))


def test_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.ini"
    path.write_bytes(b"[papertrader]\n# caf\xe9\nworkers = 3\n")
    with pytest.raises(ConfigError):
        load_settings(str(path))


@pytest.mark.parametrize("name", ["starting_cash", "commission"])
def test_huge_amount_of_money_is_a_config_error(name):
    with pytest.raises(ConfigError):
        load_settings(overrides={name: "1e30"})


def test_settings_as_text_for_display():
    text = load_settings(overrides={"assets": "aapl,msft", "update_interval": "0.5", "commission": "1.5"}).as_text()
    assert text["assets"] == "AAPL,MSFT"
    assert text["update_interval"] == "0.5"
    assert text["commission"] == "1.50"
    assert text["starting_cash"] == "100000.00"
    assert text["workers"] == "2"


def test_an_empty_asset_list_means_the_sources_own():
    assert load_settings(None, {"assets": ""}).assets == () == load_settings(None, {"assets": " , ,"}).assets


def test_connection_limits_are_settings():
    s = load_settings(overrides={"max_connections_per_address": "1", "handshake_timeout": "0.5",
                                 "idle_timeout": "86400", "max_unsent_bytes": "65536"})
    assert (s.max_connections_per_address, s.handshake_timeout, s.idle_timeout, s.max_unsent_bytes) == (
        1, 0.5, 86400.0, 65536)
    defaults = Settings()
    assert (defaults.max_connections_per_address, defaults.handshake_timeout, defaults.idle_timeout,
            defaults.max_unsent_bytes) == (64, 10.0, 300.0, 1_048_576)


# --- an operator's own history files (replay_files) ----------------------------------------


HEADER = "date,open,high,low,close,volume\n"
BARS = "2024-03-04,10,10.5,9.5,10.25,100\n2024-03-05,10.25,11,10,10.75,200\n"


def prices_dir(tmp_path, files):
    """A directory of replay files ({name: text}), written as UTF-8."""
    prices = tmp_path / "prices"
    prices.mkdir(exist_ok=True)
    for name, text in files.items():
        (prices / name).write_text(text, encoding="utf-8")
    return prices


def replay_plan(tmp_path, prices, *argv):
    from papertrader.options import SettingsOptions

    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices), *argv])
    return options.market_plan


def replay_mistake(tmp_path, capsys, prices, *argv):
    """The one line that replay files with a mistake make the master print at start."""
    from papertrader.options import SettingsOptions

    line = parse_options(SettingsOptions(), ["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices),
                                             *argv], capsys)
    assert line.startswith("twistd papertrader: replay_files: ") and line.count("\n") == 1, line
    assert line.endswith(" (--help lists the options)\n"), line
    return line[len("twistd papertrader: replay_files: "):-len(" (--help lists the options)\n")]


def test_files_excel_saved_with_a_byte_order_mark_and_trailing_commas_are_read(tmp_path):
    """Excel's "CSV UTF-8" starts the file with a byte order mark, and a sheet with an empty column leaves a
    comma at the end of every line: both gave "the header must be date,open,high,low,close,volume" for a
    header that looked exactly like it."""
    bom = "\ufeff"
    prices = prices_dir(tmp_path, {
        "AAA.csv": bom + HEADER + BARS,
        "BBB.csv": "date,open,high,low,close,volume,\n2024-03-04,20,21,19,20.5,5,\n2024-03-05,20.5,21,20,21,6,\n",
        "events.csv": bom + "symbol,type,ex_date,pay_date,value,\nAAA,dividend,2024-03-05,,0.10,\n",
        "assets.csv": bom + "symbol,name,exchange,class,fractionable\nBBB,Bee Corp,NYSE,us_equity,TRUE\n",
    })
    plan = replay_plan(tmp_path, prices)
    assert plan.assets == ("AAA", "BBB")
    assert plan.history.series["BBB"].prices(1) == (Decimal("20.5"), 21, 20, 21)
    assert plan.history.series["BBB"].volume[1] == 6
    assert [(e.symbol, e.amount) for e in plan.history.events] == [("AAA", Decimal("0.10"))]
    assert plan.history.assets["BBB"].name == "Bee Corp" and plan.history.assets["BBB"].fractionable


@pytest.mark.parametrize("files, where, message", [
    ({"AAA.csv": "date,open,high,low,close,volume,adj_close\n" + BARS}, "AAA.csv:1",
     "7 columns, expected 6: the header must be date,open,high,low,close,volume (or time,...), not"
     " 'date,open,high,low,close,volume,adj_close'"),
    ({"AAA.csv": "Date;Open;High;Low;Close;Volume\n" + BARS}, "AAA.csv:1",
     "1 column, expected 6: the header must be date,open,high,low,close,volume (or time,...), not"
     " 'Date;Open;High;Low;Close;Volume' (values must be separated by commas)"),
    ({"AAA.csv": "day,open,high,low,close,volume\n" + BARS}, "AAA.csv:1",
     "the header must be date,open,high,low,close,volume (or time,...), not 'day,open,high,low,close,volume'"),
    ({"AAA.csv": ""}, "AAA.csv:1", "empty file (the header row must be date,open,high,low,close,volume)"),
    ({"AAA.csv": HEADER + BARS + "2024-03-06,10,11,9,10,100,7\n"}, "AAA.csv:4",
     "7 values, expected 6 (date,open,high,low,close,volume): '2024-03-06,10,11,9,10,100,7'"),
    ({"AAA.csv": HEADER + "2024-03-04,10,10.5,9.5,10.25,-100\n"}, "AAA.csv:2",
     "volume must be a whole number >= 0, not '-100'"),
    ({"AAA.csv": HEADER + "2024-03-04,10,10.5,9.5,10.25,1.5\n"}, "AAA.csv:2",
     "volume must be a whole number >= 0, not '1.5'"),
    ({"AAA.csv": HEADER + "2024-03-04,10,10.5,9.5,,100\n"}, "AAA.csv:2", "close is empty"),
    ({"AAA.csv": HEADER + "2024-03-04,10,10.5,9.5,10.25,\n"}, "AAA.csv:2", "volume is empty"),
    ({"AAA.csv": HEADER + "2024-03-04,10,10.5,n/a,10.25,100\n"}, "AAA.csv:2", "low 'n/a' is not a number"),
    ({"AAA.csv": HEADER + "2024-03-04,10,1e30,9.5,10.25,100\n"}, "AAA.csv:2", "high 1e30 is larger than 1000000000000"),
    ({"AAA.csv": HEADER + "2024-03-04,0,10.5,0,10.25,100\n"}, "AAA.csv:2", "open must be positive, not 0"),
    ({"AAA.csv": HEADER + "2024-03-04,10,10.5,9.5,10.75,100\n"}, "AAA.csv:2",
     "not a possible bar (low <= open, close <= high)"),
    ({"AAA.csv": HEADER + BARS, "events.csv": "symbol,type,ex_date,pay_date,value\nAAA,dividend,2024-03-05,"
                                              "2024-03-01,0.10\n"},
     "events.csv:2", "pay_date 2024-03-01 is before ex_date 2024-03-05"),
    ({"AAA.csv": HEADER + BARS, "events.csv": "symbol,type,ex_date,pay_date,value\nAAA,split,2024-03-05,,2\n"
                                              "ZZZ,dividend,2024-03-05,,0.10\n"},
     "events.csv:3", "no ZZZ.csv for this dividend of ZZZ (the files have AAA)"),
    ({"AAA.csv": HEADER + BARS, "events.csv": "symbol,type,ex_date,value\n"}, "events.csv:1",
     "4 columns, expected 5: the header must be symbol,type,ex_date,pay_date,value, not"
     " 'symbol,type,ex_date,value'"),
    # Downloads often come newest first: "time goes backwards or repeats" said neither which rows nor what to do.
    ({"AAA.csv": HEADER + "2024-03-05,10,11,9,10,100\n2024-03-04,10,11,9,10,100\n"}, "AAA.csv:3",
     "time goes backwards (2024-03-04 after 2024-03-05): rows must be in time order, oldest first (sort a file"
     " saved newest first)"),
    ({"AAA.csv": HEADER + "2024-03-04,10,11,9,10,100\n2024-03-04,10,11,9,10,100\n"}, "AAA.csv:3",
     "2024-03-04 is the time of the row before too: one row per bar"),
    # A browser's second download of AAA.csv, a file named for what it holds: the replay traded "AAA (1)" and
    # "MY PRICES", symbols no order, quote or chart could ever name.
    ({"AAA (1).csv": HEADER + BARS}, "AAA (1).csv",
     "'AAA (1)' is not a symbol: name each file SYMBOL.csv, the symbol it holds (a letter, then up to 11"
     " letters, digits, '.' or '-': AAPL.csv, BRK.B.csv)"),
    ({"AAA.csv": HEADER + BARS, "my prices.csv": HEADER + BARS}, "my prices.csv",
     "'MY PRICES' is not a symbol: name each file SYMBOL.csv, the symbol it holds (a letter, then up to 11"
     " letters, digits, '.' or '-': AAPL.csv, BRK.B.csv)"),
    ({"AAA.csv": HEADER + BARS, "assets.csv": "symbol,name,exchange,class,fractionable\n"
                                              "AAA,A Corp,NYSE,us_equity,maybe\n"},
     "assets.csv:2", "fractionable must be true or false, not 'maybe'"),
])
def test_a_mistake_in_replay_files_names_the_file_the_line_and_what_is_wrong(tmp_path, capsys, files, where,
                                                                              message):
    prices = prices_dir(tmp_path, files)
    assert replay_mistake(tmp_path, capsys, prices) == f"{prices / where}: {message}"


def test_an_event_of_a_symbol_left_out_by_assets_is_ignored(tmp_path):
    prices = prices_dir(tmp_path, {"AAA.csv": HEADER + BARS, "BBB.csv": HEADER + BARS,
                                   "events.csv": "symbol,type,ex_date,pay_date,value\nBBB,split,2024-03-05,,2\n"})
    plan = replay_plan(tmp_path, prices, "--assets", "AAA")
    assert plan.assets == ("AAA",) and plan.history.events == []


def start_warnings(plan, settings):
    """The warnings the master logs at start as it builds the market of ``plan`` (each a line)."""
    from twisted.internet.task import Clock
    from twisted.logger import Logger, formatEvent

    from papertrader.market.setup import build

    events = []
    build(settings, Clock(), log=Logger(observer=events.append), plan=plan)
    lines = [formatEvent(e) for e in events if e["log_level"].name == "warn"]
    assert all("\n" not in line for line in lines)
    return lines


def test_what_the_replay_leaves_out_of_its_files_is_one_warning_line_each_at_start(tmp_path):
    """Rows on a Saturday or a holiday were dropped, and a symbol whose file ended early left out of the replay
    (later "unknown symbol"), without a word. Real data has such quirks: the replay still starts, and says so."""
    from papertrader.options import SettingsOptions

    prices = prices_dir(tmp_path, {
        # 2024-03-23 is a Saturday and 2024-03-29 Good Friday: XNYS has no session.
        "AAA.csv": HEADER + "2024-03-22,10,11,9,10,100\n2024-03-23,10,11,9,10,100\n2024-03-28,10,11,9,10,100\n"
                            "2024-03-29,10,11,9,10,100\n2024-04-01,10,11,9,10,100\n",
        "BBB.csv": HEADER + "2024-03-22,10,11,9,10,100\n2024-03-25,10,11,9,10,100\n2024-04-01,10,11,9,10,100\n",
        "EEE.csv": HEADER + "2024-03-22,10,11,9,10,100\n2024-03-25,10,11,9,10,100\n",
        "MIN.csv": "time,open,high,low,close,volume\n2024-03-23T14:30:00+00:00,10,11,9,10,1\n"
                   "2024-03-23T14:31:00+00:00,10,11,9,10,1\n2024-04-01T13:30:00+00:00,10,11,9,10,1\n",
        "NIL.csv": HEADER,
    })
    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices)])
    plan = options.market_plan
    assert plan.assets == ("AAA", "BBB", "MIN")
    assert start_warnings(plan, options.settings) == [
        f"replay_files: no bar in {prices / 'NIL.csv'} (only a header row): left out",
        f"replay_files: rows on days XNYS has no session are left out: {prices / 'AAA.csv'} has 2 (2024-03-23,"
        f" 2024-03-29), {prices / 'MIN.csv'} has 2 (2024-03-23)",
        "replay: EEE's history ends 2024-03-25, before the replay's end (2024-04-01): not traded; name it in assets"
        " to trade it until then",
    ]
    (prices / "FFF.csv").write_text(HEADER + "2024-03-22,10,11,9,10,100\n2024-03-28,10,11,9,10,100\n")
    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices)])
    assert start_warnings(options.market_plan, options.settings)[-1] == (
        "replay: the histories of EEE (to 2024-03-25), FFF (to 2024-03-28) end before the replay's end (2024-04-01):"
        " not traded; name them in assets to trade them until then")
    # Named in assets, a symbol whose file ends early trades until then, without a warning.
    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices), "--assets", "BBB,EEE"])
    assert options.market_plan.assets == ("BBB", "EEE")
    assert start_warnings(options.market_plan, options.settings) == []


def test_a_replay_end_after_the_data_is_a_warning_at_start_and_the_replay_ends_with_the_data(tmp_path):
    """replay_end = 2030-01-02 with history to 2018-03-27 was taken without a word: the replay then ended in 2018
    (as a backtest runs to the end of its data) and the user learnt it only when it stopped.  It still starts (a
    later end is a common "up to now"), and says so; clock shows the replay's days up to the data's last."""
    from papertrader.options import SettingsOptions

    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-end", "2030-01-02"])
    assert options.market_plan.end.isoformat() == "2018-03-27"
    assert start_warnings(options.market_plan, options.settings) == [
        "replay_end: 2030-01-02 is after the end of the history (the shipped history has days to 2018-03-27): the"
        " replay ends on 2018-03-27"]
    prices = prices_dir(tmp_path, {"AAA.csv": HEADER + "2024-03-22,10,11,9,10,100\n2024-03-25,10,11,9,10,100\n"})
    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices), "--replay-end",
                          "2024-03-26"])
    assert start_warnings(options.market_plan, options.settings) == [
        f"replay_end: 2024-03-26 is after the end of the history (replay_files {prices} has days to 2024-03-25):"
        " the replay ends on 2024-03-25"]
    options = SettingsOptions()  # up to the data's last day: nothing to say
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices), "--replay-end",
                          "2024-03-25"])
    assert start_warnings(options.market_plan, options.settings) == []


def test_a_split_the_prices_do_not_show_is_a_warning_at_start_naming_the_symbol_the_day_and_the_fix(tmp_path):
    """Files of split-adjusted prices (what most downloads give) with their splits in events.csv: at the 3-for-1
    split every holder had three times the shares at the same price, and their equity tripled, without a word.
    The replay still starts (the split may be right and the file wrong, or the other way), and says so."""
    from papertrader.options import SettingsOptions

    prices = prices_dir(tmp_path, {
        # AAA: adjusted (no drop at its split); BBB: as traded (the price falls by the ratio), a reverse split too.
        "AAA.csv": HEADER + "2024-03-01,48,49,47,48,100\n2024-03-04,47.9,49,47,48.5,100\n",
        "BBB.csv": HEADER + "2024-03-01,48,49,47,48,100\n2024-03-04,16.1,16.5,15.8,16.2,100\n"
                            "2024-03-05,16.2,16.4,16,16.1,100\n2024-03-06,32.5,33,32,32.4,100\n",
        "events.csv": "symbol,type,ex_date,pay_date,value\nAAA,split,2024-03-04,,3\nBBB,split,2024-03-04,,3\n"
                      "BBB,split,2024-03-06,,0.5\n",
    })
    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices), "--assets", "AAA,BBB"])
    assert start_warnings(options.market_plan, options.settings) == [
        f"replay_files: {prices / 'AAA.csv'}: AAA's prices do not fall at its 3-for-1 split of 2024-03-04"
        " (close 48.0000 on 2024-03-01, open 47.9000 on 2024-03-04, about 16.0000 expected): prices must be as"
        " traded, not adjusted for splits, or the split's date or ratio in events.csv is wrong; as it is, every"
        " holder's equity jumps at the split",
    ]


def test_a_split_intraday_prices_do_not_show_is_a_warning_at_start_too(tmp_path):
    """Minute bars adjusted for a split listed in events.csv: the same jump in every holder's equity, unsaid."""
    from papertrader.options import SettingsOptions

    prices = prices_dir(tmp_path, {
        "MIN.csv": "time,open,high,low,close,volume\n2024-03-01T20:59:00+00:00,40,41,39,40,100\n"
                   "2024-03-04T14:30:00+00:00,40.5,41,40,40.2,100\n2024-03-04T14:31:00+00:00,40.2,41,40,40.2,100\n",
        "events.csv": "symbol,type,ex_date,pay_date,value\nMIN,split,2024-03-04,,4\n",
    })
    options = SettingsOptions()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--replay-files", str(prices), "--replay-step", "1m"])
    assert start_warnings(options.market_plan, options.settings) == [
        f"replay_files: {prices / 'MIN.csv'}: MIN's prices do not fall at its 4-for-1 split of 2024-03-04"
        " (close 40.0000 on 2024-03-01, open 40.5000 on 2024-03-04, about 10.0000 expected): prices must be as"
        " traded, not adjusted for splits, or the split's date or ratio in events.csv is wrong; as it is, every"
        " holder's equity jumps at the split",
    ]


def test_prices_of_replay_files_are_rounded_to_4_decimals_as_the_readme_says(tmp_path):
    prices = prices_dir(tmp_path, {"AAA.csv": HEADER + "2024-03-04,104.123456789,105,104.00005,104.00015,100\n"})
    assert replay_plan(tmp_path, prices).history.series["AAA"].prices(0) == (
        Decimal("104.1235"), Decimal("105.0000"), Decimal("104.0000"), Decimal("104.0002"))
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    own = readme[readme.index("**Your own history**"):readme.index("**Splits and dividends**")]
    assert "prices are rounded to 4 decimals" in own


def test_a_workers_file_may_hold_its_worker_section_alone(tmp_path):
    """The README's '[worker] region = eu-west' written alone in a worker's file was refused ('no [papertrader]
    section'): the settings are then the defaults."""
    assert load_settings(write(tmp_path, "[worker]\nregion = eu-west\n")) == Settings()
    with pytest.raises(ConfigError, match="unknown section"):
        load_settings(write(tmp_path, "[workers]\nregion = eu-west\n"))


def test_an_issuer_is_https_or_http_on_loopback_and_needed_once_a_client_id_is_set():
    for issuer in ("https://accounts.google.com", "https://id.example.com/realms/school/", "http://127.0.0.1:9999",
                   "http://localhost:8080/issuer", ""):
        assert load_settings(overrides={"oidc_issuer": issuer}).oidc_issuer == issuer
    assert load_settings(overrides={"oidc_client_id": "abc"}).oidc_issuer == "https://accounts.google.com"
    with pytest.raises(ConfigError, match="^oidc_issuer: empty, while oidc_client_id is set"):
        load_settings(overrides={"oidc_client_id": "abc", "oidc_issuer": ""})


@pytest.mark.parametrize("name, raw, message", [
    ("market_seed", "x", "market_seed: 'x' is not a whole number: must be between 0 and 9223372036854775808"),
    ("workers", "2.5", "workers: '2.5' is not a whole number: must be between 1 and 64"),
    ("update_interval", "fast", "update_interval: 'fast' is not a number: must be between 0.01 and 86400 seconds"),
    ("session_idle_timeout", "week", "session_idle_timeout: 'week' is not a number: must be between 60 seconds and a"
                                     " year"),
    ("margin_call_hours", "-1", "margin_call_hours: must be between 0 and 8760 hours"),
])
def test_a_value_that_is_not_a_number_says_what_the_setting_accepts(name, raw, message):
    with pytest.raises(ConfigError) as excinfo:
        load_settings(overrides={name: raw})
    assert str(excinfo.value) == message


def test_every_setting_but_the_secret_has_a_command_line_option():
    """A setting added without its option (max_master_wait, for a moment) could only be set in a file, though the
    README's table names its option.  The OpenID Connect client secret has none on purpose: a command line is
    visible to every user of the machine (ps)."""
    from papertrader.config import NAMES
    from papertrader.options import SettingsOptions

    options = {name.replace("-", "_") for name in SettingsOptions._SETTINGS}
    assert set(NAMES) - options == {"oidc_client_secret"}


@pytest.mark.parametrize("name", ["alpaca_data_url", "alpaca_trading_url", "nasdaq_url"])
def test_a_provider_url_in_plain_http_is_refused_off_loopback(name):
    """`alpaca_data_url = http://data.alpaca.markets` (an 's' left out) was taken: every update sent the Alpaca key
    (APCA-API-SECRET-KEY) across the network in clear text, and prices came back that anyone on the way could
    change. Plain http stays for a test server of one's own on this machine."""
    with pytest.raises(ConfigError) as excinfo:
        load_settings(overrides={name: "http://data.alpaca.markets"})
    assert str(excinfo.value) == (
        f"{name}: 'http://data.alpaca.markets' is not https: a provider is reached over https, so that its prices"
        " and an API key are not open to anyone on the way (http only on loopback, for a test server of your own)")
    for url in ("https://data.alpaca.markets", "http://127.0.0.1:8080", "http://localhost:9999/base",
                "http://[::1]:8080"):
        assert getattr(load_settings(overrides={name: url}), name) == url


def test_the_readme_says_which_symbols_an_empty_assets_trades_in_a_replay(tmp_path):
    """The configuration table said "for replay, every symbol of its history", while a symbol whose history ends
    before the replay's is not traded (a start warning says so)."""
    prices = prices_dir(tmp_path, {"AAA.csv": HEADER + BARS, "OLD.csv": HEADER + "2024-03-04,10,10.5,9.5,10.25,100\n"})
    assert replay_plan(tmp_path, prices).assets == ("AAA",)
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    [row] = [line for line in readme.splitlines() if line.startswith("| `assets` | `--assets` |")]
    assert "for `replay`, every symbol whose history lasts to the replay's end (see \"Market data\")" in row, row


def test_two_files_of_one_symbol_in_replay_files_stop_the_master_naming_both(tmp_path, capsys):
    """History kept a directory a year (replay_files = prices/2023,prices/2024), each with its AAA.csv: the replay
    silently took the last one read, and 2023 never played. Nothing says which one is meant: refused at start."""
    first, second = tmp_path / "2023", tmp_path / "2024"
    for directory, day in ((first, "2023-03-06"), (second, "2024-03-04")):
        directory.mkdir()
        (directory / "AAA.csv").write_text(HEADER + f"{day},10,11,9,10,100\n")
    assert replay_mistake(tmp_path, capsys, f"{first},{second}") == (
        f"AAA has two files, {first / 'AAA.csv'} and {second / 'AAA.csv'}: one file per symbol (join them, oldest"
        " rows first)")
    # A file named twice, by itself and by its directory, is one file.
    plan = replay_plan(tmp_path, f"{first / 'AAA.csv'},{first}")
    assert plan.assets == ("AAA",) and len(plan.history.series["AAA"]) == 1


def test_a_split_listed_twice_stops_the_master_naming_both_lines(tmp_path, capsys):
    """A split's row copied twice (in one events.csv, or in the events.csv of two directories) was applied twice:
    10 shares became 40 at a 2-for-1 split. Two splits of one symbol on one day are never meant (one ratio says
    it), nor are two identical dividend rows: refused at start, naming both lines. Two different dividends of one
    day (a regular and a special one) are both paid."""
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    (first / "AAA.csv").write_text(HEADER + BARS)
    (second / "BBB.csv").write_text(HEADER + BARS)
    split = "AAA,split,2024-03-05,,2\n"
    (first / "events.csv").write_text("symbol,type,ex_date,pay_date,value\n" + split)
    (second / "events.csv").write_text("symbol,type,ex_date,pay_date,value\n" + split)
    assert replay_mistake(tmp_path, capsys, f"{first},{second}") == (
        f"{second / 'events.csv'}:2: AAA's split of 2024-03-05 is listed twice (also at {first / 'events.csv'}:2):"
        " one row per split (one ratio for the day)")
    (second / "events.csv").write_text("symbol,type,ex_date,pay_date,value\nBBB,dividend,2024-03-05,,0.10\n"
                                       "BBB,dividend,2024-03-05,,1.00\nBBB,dividend,2024-03-05,,0.10\n")
    assert replay_mistake(tmp_path, capsys, second) == (
        f"{second / 'events.csv'}:4: this dividend of BBB is listed twice (also at {second / 'events.csv'}:2):"
        " one row per dividend")
    (second / "events.csv").write_text("symbol,type,ex_date,pay_date,value\nBBB,dividend,2024-03-05,,0.10\n"
                                       "BBB,dividend,2024-03-05,,1.00\n")
    assert [e.amount for e in replay_plan(tmp_path, second).history.events] == [Decimal("0.10"), Decimal("1.00")]
