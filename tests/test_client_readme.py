"""The README's client sections stay the contract: every code, exit status, command and option is in them."""

import argparse
import os
import re

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
