"""The README's client sections stay the contract: every code, exit status, command and option is in them."""

import argparse
import io
import json
import os
import re
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from papertrader.client import cli
from papertrader.client.errors import CLIENT_ERRORS, INTERRUPTED, USAGE
from papertrader.errors import ALL_ERRORS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def table(header):
    """The rows (lists of cells) of the README table whose header line is ``header``."""
    lines = README.split(header + "\n", 1)[1].splitlines()[1:]  # after the | --- | line
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_the_error_table_lists_every_code_the_client_can_print_and_no_other():
    listed = [re.fullmatch(r"`([a-z_]+)`", row[0]).group(1) for row in table("| code | meaning |")]
    codes = {cls.code for cls in ALL_ERRORS} | {cls.code for cls in CLIENT_ERRORS} | {USAGE, INTERRUPTED}
    assert sorted(listed) == sorted(codes)
    assert all(row[1] for row in table("| code | meaning |"))


def test_the_exit_status_table_lists_every_status():
    listed = {int(row[0]) for row in table("| exit status | meaning |")}
    statuses = {cli.OK, cli.FAILED, cli.USAGE_STATUS, cli.ORDER_ENDED, cli.ORDER_OPEN, cli.OUTPUT_CLOSED,
                130, 143}
    assert listed == statuses


def test_every_command_and_option_of_papertrader_is_in_the_readme():
    parser = cli.build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = []
    for name, sub in commands.choices.items():
        if f"papertrader {name}" not in README and f"`{name}" not in README:
            missing.append(name)
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and f"`{option}" not in README:
                    missing.append(f"{name} {option}")
    assert not missing


def example(command):
    """What the README's example shows after ``$ COMMAND`` (its first one), up to the next blank line."""
    block = README.split(f"    $ {command}\n", 1)[1].split("\n\n", 1)[0]
    return "\n".join(line[4:] for line in block.splitlines())


def utc(*fields):
    return datetime(*fields, tzinfo=timezone.utc)


def printed(argv, show):
    """What ``papertrader ARGV`` prints on stdout when ``show(cli)`` shows its answer."""
    out = io.StringIO()
    show(cli.CLI(None, cli.parse(argv), {}, None, out, io.StringIO()))
    return out.getvalue().rstrip("\n")


#: The clock the game example starts from (the shipped replay from 2016-03-01, one update played).
CLOCK = {"time": utc(2016, 3, 2, 14, 30), "is_open": True, "next_open": utc(2016, 3, 3, 14, 30),
         "next_close": utc(2016, 3, 2, 21), "calendar": "XNYS", "mode": "replay", "state": "running",
         "source": "replay", "step": "1d", "start": utc(2016, 3, 1), "end": utc(2018, 3, 27),
         "timezone": "America/New_York"}


def test_the_readme_s_clock_is_what_the_client_prints_in_the_market_s_time_with_json_in_utc():
    assert printed(["clock"], lambda c: c._show_clock(CLOCK)) == example("papertrader clock    # as teacher")
    shown = json.loads(printed(["clock", "--json"], lambda c: c._show_clock(CLOCK)))
    assert (shown["time"], shown["next_close"]) == ("2016-03-02T14:30:00+00:00", "2016-03-02T21:00:00+00:00")


def test_the_readme_s_game_shows_its_days_as_days_and_its_times_in_the_market_s_time():
    # (its days as the master keeps them: midnights in New York)
    game = {"name": "Spring Cup", "creator": "teacher", "status": "ended", "start": utc(2016, 3, 1, 5),
            "end": utc(2016, 3, 12, 5), "starting_cash": Decimal("100000.00"), "private": True, "players": 3,
            "commission": "per_order:1.00", "margin": False, "allow_short": False,
            "assets": ["AAPL", "JPM", "MSFT"], "max_position": Decimal("50.00"), "is_creator": False,
            "playing": True, "portfolio": "Spring Cup", "board_updated": utc(2016, 3, 11, 21),
            "show_portfolios": False}
    shown = cli.CLI._game_text(game, ZoneInfo("America/New_York"))
    assert shown == example('papertrader game show "Spring Cup"    # as carol')


def test_the_readme_warns_that_a_shell_turns_an_unquoted_dollar_amount_into_another():
    """'--limit $180.50' reaches papertrader as '--limit 80.50' (the shell expands $1, empty): an order at a price
    nobody meant, which papertrader cannot tell. Where the README shows amounts typed, it says so."""
    import subprocess

    shell = lambda line: subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=10).stdout
    assert shell('printf %s $180.50') == shell('printf %s "$180.50"') == "80.50"  # what the README says
    assert shell("printf %s '$180.50'") == "$180.50"
    warning = "`$180.50` unquoted (or in double quotes) reaches papertrader as `80.50`"
    orders = README.split("\n## Orders\n", 1)[1].split("\n### ", 1)[0]
    assert warning in orders and "'$180.50'" in orders
    codes = {row[0]: row[1] for row in table("| code | meaning |")}
    assert "'$180.50'" in codes["`invalid_input`"] and "80.50" in codes["`invalid_input`"]
    [buy] = [row[1] for row in table("| command | arguments and options |") if row[0].startswith("`buy`")]
    assert "no `$`" in buy
