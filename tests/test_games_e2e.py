"""Games end to end: a real master and workers on loopback, the real CLI over TLS AMP, and papertrader-admin
as a process, on SQLite and PostgreSQL.  The master computes the leaderboard after each market step."""

import json
import os
import re
import sys
from dataclasses import replace

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.conftest import WatchedProcess, start_cluster
from tests.test_e2e import register_and_login

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def j(text):
    return json.loads(text)


@pytest_twisted.ensureDeferred
async def test_a_game_from_creation_to_its_leaderboard_through_the_cli(deployment):
    d = deployment
    for user in ("teacher", "alice", "eve"):
        await register_and_login(d, user)
    status, out, err = await d.cli("game", "create", "Class 7B", "--start", "2026-09-01", "--end", "2026-12-31",
                                   "--cash", "25000", "--commission", "per_order:1", "--assets", "aapl,msft",
                                   "--max-position", "40%", "--private", user="teacher")
    assert status == 0, err
    game = j(out)
    assert (game["name"], game["private"], game["starting_cash"], game["assets"], game["max_position"]) == (
        "Class 7B", True, "25000.00", ["AAPL", "MSFT"], "40.00")
    assert game["end"].startswith("2027-01-01T00:00:00")  # --end DAY: through that day
    code = game["invite_code"]

    # Outsiders see nothing of a private game: the same answer as for a game that does not exist.
    for argv in (("game", "show", "Class 7B"), ("game", "leaderboard", "Class 7B"), ("game", "join", "Class 7B"),
                 ("game", "show", "Nothing Here")):
        status, out, err = await d.cli(*argv, user="eve")
        assert status == 1 and j(out)["error"] == "unknown_game", (argv, out)
    status, out, _ = await d.cli("game", "list", user="eve")
    assert j(out) == []
    # Joining without a code says how a private game is joined, the same words whether it exists or not.
    for name in ("Class 7B", "Nothing Here"):
        status, out, err = await d.cli("game", "join", name, user="eve", json=False)
        assert status == 1 and err == (f"papertrader: no game named '{name}', or it is private: a private game is"
                                       " joined with the invite code its creator gives, papertrader game join"
                                       f" '{name}' --code CODE\n"), err

    status, out, err = await d.cli("game", "join", "class 7b", "--code", code, user="alice")
    assert status == 0, err
    assert j(out)["portfolio"] == "Class 7B" and j(out)["playing"]
    status, out, err = await d.cli("game", "join", "Class 7B", "--code", code, user="alice")
    assert status == 1 and j(out)["error"] == "invalid_input"
    status, out, err = await d.cli("game", "remove", "Class 7B", "teacher", "--yes", user="alice")
    assert j(out)["error"] == "not_game_creator"

    # Before any update the teacher sees who joined: not ranked yet.
    status, out, _ = await d.cli("game", "leaderboard", "Class 7B", user="teacher")
    assert (j(out)["standings"], j(out)["unranked"], j(out)["players"]) == ([], ["alice"], 1)
    status, out, _ = await d.cli("game", "leaderboard", "Class 7B", user="teacher", json=False)
    assert "Not ranked yet (the next market update ranks them): alice" in out, out

    await d.tick()  # the master's update: step, then leaderboards
    status, out, err = await d.cli("game", "leaderboard", "Class 7B", user="alice")
    board = j(out)
    assert board["unranked"] == []
    assert status == 0, err
    assert board["standings"] == [{"rank": 1, "username": "alice", "equity": "25000.00",
                                   "return_percent": "0.0000", "sharpe": None}]
    assert board["updated"] and not board["final"]
    status, out, _ = await d.cli("game", "leaderboard", "Class 7B", user="alice", json=False)
    assert "alice" in out and "0.0000%" in out and "@" not in out  # usernames only, never an email
    # One daily return has no Sharpe ratio: the table says so, and why (the cell was blank).
    header, row = out.split("\n\n")[1].splitlines()[:2]
    assert header.split()[-1] == "SHARPE" and row.split()[-1] == "n/a", out
    assert out.rstrip().endswith("SHARPE n/a: a Sharpe ratio needs 20 daily returns (about a month of market days),"
                                 " not all the same"), out

    status, out, _ = await d.cli("game", "show", "Class 7B", user="teacher", json=False)
    assert "max position:" in out and "40.00%" in out and "AAPL, MSFT" in out
    assert "2026-12-31 (its last day: trading closes at 2027-01-01 00:00:00 UTC)" in out  # as --end gave it
    status, out, _ = await d.cli("game", "list", user="teacher", json=False)
    assert "2026-12-31" in out and "2027-01-01" not in out, out  # the list names the last day too

    status, out, err = await d.cli("game", "end", "Class 7B", "--yes", user="teacher")
    assert status == 0 and j(out)["status"] == "ended", err
    # Final at once, as `game end` says (with a daily update interval the next update is a day away).
    status, out, _ = await d.cli("game", "leaderboard", "Class 7B", user="alice", json=False)
    assert out.startswith("Class 7B: final ranking by return"), out
    await d.tick()
    status, out, _ = await d.cli("game", "leaderboard", "Class 7B", user="alice")
    assert j(out)["final"]


@pytest_twisted.ensureDeferred
async def test_a_game_not_started_yet_says_which_update_ranks_its_players(deployment):
    """A teacher who makes a game ahead of its first day was told its leaderboard was 'not computed yet (the next
    market update does it)', and after that update, the same: no update ranks a game before its start.  The board
    says when it starts, and that the first update after it ranks the players."""
    d = deployment
    for user in ("teacher", "alice"):
        await register_and_login(d, user)
    status, out, err = await d.cli("game", "create", "Next Week", "--start", "2026-09-28", "--end", "2026-12-31",
                                   "--cash", "10000", user="teacher")
    assert status == 0 and j(out)["status"] == "upcoming", err
    assert (await d.cli("game", "join", "Next Week", user="alice"))[0] == 0
    await d.tick()  # an update before the start: it ranks nobody
    status, out, _ = await d.cli("game", "leaderboard", "Next Week", user="teacher")
    board = j(out)
    assert (board["standings"], board["unranked"], board["updated"]) == ([], ["alice"], None)
    assert board["starts"] == "2026-09-28T00:00:00+00:00"
    status, out, _ = await d.cli("game", "leaderboard", "Next Week", user="teacher", json=False)
    assert ", not computed yet (the first market update after the game starts (2026-09-28) does it)" in out, out
    assert "Not ranked yet (the first market update after the game starts (2026-09-28) ranks them): alice" in out
    assert "next market update" not in out
    # A game that has started: the next update ranks them, and the board says nothing of a start.
    status, out, err = await d.cli("game", "create", "This Week", "--start", "2026-09-21", "--end", "2026-12-31",
                                   "--cash", "10000", user="teacher")
    assert status == 0 and j(out)["status"] == "open", err
    assert (await d.cli("game", "join", "This Week", user="alice"))[0] == 0
    status, out, _ = await d.cli("game", "leaderboard", "This Week", user="teacher")
    assert j(out)["starts"] is None
    status, out, _ = await d.cli("game", "leaderboard", "This Week", user="teacher", json=False)
    assert "Not ranked yet (the next market update ranks them): alice" in out, out


async def games_of_teacher(d, names, joined):
    """'teacher' and 'alice' registered; the games ``names`` made by teacher (2026-09-01 to 2026-12-31, $10,000),
    alice playing in those ``joined``."""
    for user in ("teacher", "alice"):
        await register_and_login(d, user)
    for name in names:
        status, _, err = await d.cli("game", "create", name, "--start", "2026-09-01", "--end", "2026-12-31",
                                     "--cash", "10000", user="teacher")
        assert status == 0, err
    for name in joined:
        assert (await d.cli("game", "join", name, user="alice"))[0] == 0


@pytest_twisted.ensureDeferred
async def test_a_game_ended_before_any_update_ranked_it_says_when_its_final_ranking_comes(deployment):
    """Ended by its creator before any market update, `game leaderboard` said "final ranking ..., not computed yet
    (the next market update does it)", as if a final ranking stood there: it says that no update ranked the game
    while it ran and that the next one makes its final ranking (or, nobody having played, that it has none)."""
    d = deployment
    await games_of_teacher(d, ("Short Cup", "Empty Cup"), joined=("Short Cup",))
    for name in ("Short Cup", "Empty Cup"):
        assert (await d.cli("game", "end", name, "--yes", user="teacher"))[0] == 0
    status, out, _ = await d.cli("game", "leaderboard", "Short Cup", user="teacher", json=False)
    assert status == 0 and out.splitlines()[0] == (
        "Short Cup: ended before any market update ranked it, 1 player, starting cash 10000.00: the next market"
        " update makes its final ranking (by return)"), out
    assert "Not ranked yet (the next market update ranks them, in the final ranking): alice" in out, out
    assert "not computed yet" not in out
    status, out, _ = await d.cli("game", "leaderboard", "Empty Cup", user="teacher", json=False)
    assert out.strip() == ("Empty Cup: ended, 0 players, starting cash 10000.00: nobody played in it, so it has no"
                           " ranking")
    await d.tick()  # the next update makes it, as said
    status, out, _ = await d.cli("game", "leaderboard", "Short Cup", user="alice", json=False)
    assert out.startswith("Short Cup: final ranking by return, 1 player, starting cash 10000.00, as of "), out
    assert "alice" in out and "Not ranked yet" not in out


@pytest_twisted.ensureDeferred
async def test_ending_a_game_no_update_ranked_yet_says_when_its_final_ranking_comes(deployment):
    """`game end` said "its final ranking is the last market update's" of a game no update had ranked: there was
    none.  It says that the next market update makes it, as `game leaderboard` then does."""
    d = deployment
    await games_of_teacher(d, ("Quick Cup", "Ranked Cup"), joined=("Quick Cup", "Ranked Cup"))
    status, out, err = await d.cli("game", "end", "Quick Cup", "--yes", user="teacher", json=False)
    assert status == 0, err
    assert out.strip() == ("Quick Cup ended before any market update ranked it: the next market update makes its"
                           " final ranking."), out
    await d.tick()
    status, out, err = await d.cli("game", "end", "Ranked Cup", "--yes", user="teacher", json=False)
    assert out.strip() == "Ranked Cup ended; its final ranking is the last market update's.", out


@pytest_twisted.ensureDeferred
async def test_the_operator_sets_up_a_game_for_a_class(deployment, tmp_path):
    d = deployment
    for user in ("teacher", "ann", "ben"):
        await register_and_login(d, user)
    roster = tmp_path / "class.txt"
    roster.write_text("# class 8, spring\nann\n\nBen   # late joiner\n")

    async def create_class(name):
        """papertrader-admin game create-class NAME for the roster, as a process: (exit code, its JSON)."""
        argv = [sys.executable, "-m", "papertrader.admin", "--data-dir", d.data_dir, "game", "create-class", name,
                "--players", str(roster), "--creator", "teacher", "--start", "2026-09-01", "--end", "2027-06-30",
                "--cash", "10000", "--json"]
        proc = WatchedProcess()
        reactor.spawnProcess(proc, sys.executable, argv, env=ENV)
        ended = await proc.ended
        return getattr(ended, "exitCode", None), j(proc.output.decode().strip().splitlines()[-1])

    code, done = await create_class("Class 8")
    assert code == 0, done
    assert done["joined"] == ["ann", "ben"] and done["private"] and done["creator"] == "teacher"
    assert (done["players"], done["playing"]) == (2, False)  # the game with them in it (the teacher does not play)
    status, out, _ = await d.cli("game", "show", "Class 8", user="ben")
    assert j(out)["players"] == 2 and j(out)["playing"]

    roster.write_text("ann\nnobody_here\n")
    code, refused = await create_class("Class 9")
    assert code == 1 and refused["error"] == "unknown_users"
    status, out, _ = await d.cli("game", "show", "Class 9", user="teacher")
    assert j(out)["error"] == "unknown_game"  # nothing was created

    # A student with a portfolio of the game's name (the game's portfolio takes it, and the class is told to
    # trade in it by that name): nothing is created, and the message names the student and what to do.
    status, out, err = await d.cli("portfolio", "create", "class 10", user="ben")
    assert status == 0, err
    roster.write_text("ann\nben\n")
    code, refused = await create_class("Class 10")
    assert code == 1
    assert refused == {"error": "portfolio_names_taken", "message": (
        f"1 of the 2 users in {roster} has a portfolio named 'Class 10', the name their portfolio in the"
        " game would take: ben; nothing was created: ask them to rename it (papertrader portfolio rename), or"
        " leave them out of the file and invite them later")}
    status, out, _ = await d.cli("game", "show", "Class 10", user="teacher")
    assert j(out)["error"] == "unknown_game"
    # Joining by themselves, they are told the same, and how to rename theirs.
    status, out, err = await d.cli("game", "create", "Class 10", "--start", "2026-09-01", "--end", "2027-06-30",
                                   "--cash", "10000", user="teacher")
    assert status == 0, err
    status, out, _ = await d.cli("game", "join", "Class 10", user="ben")
    assert j(out) == {"error": "invalid_input", "message": (
        "you already have a portfolio named 'class 10', and your portfolio in Class 10 takes the game's name:"
        " rename yours first (papertrader portfolio rename 'class 10' NEW_NAME, or on the website's Portfolios"
        " page), then join")}


@pytest_twisted.ensureDeferred
async def test_removing_a_player_and_ending_a_game_need_yes_without_a_terminal(deployment):
    d = deployment
    for user in ("teacher", "alice"):
        await register_and_login(d, user)
    status, out, err = await d.cli("game", "create", "Spring Cup", "--start", "2026-09-01", "--end", "2030-12-31",
                                   "--cash", "10000", user="teacher")
    assert status == 0, err
    status, out, err = await d.cli("game", "join", "Spring Cup", user="alice", json=False)
    assert status == 0, err
    # It says how to trade in the game's portfolio, and how to make it what every command trades.
    assert out.strip().endswith("Trade in it with --portfolio 'Spring Cup', or make it the one your commands"
                                " trade: papertrader portfolio use 'Spring Cup'"), out
    status, out, err = await d.cli("portfolio", "use", "Spring Cup", user="alice")
    assert status == 0, err
    status, out, err = await d.cli("portfolio", user="alice")
    assert j(out)["portfolio"] == "Spring Cup", out

    # No terminal to ask on (d.cli's standard input is not one), no --yes: a usage error, and nothing changes.
    for argv in (("game", "remove", "Spring Cup", "alice"), ("game", "end", "Spring Cup")):
        status, out, err = await d.cli(*argv, user="teacher")
        assert (status, j(out)["error"]) == (2, "usage"), out
        assert j(out)["message"] == f"game {argv[1]} needs --yes when not run in a terminal"
        status, out, err = await d.cli(*argv, stdin="yes\n", user="teacher", json=False)
        assert (status, out) == (2, "")
        assert err == f"papertrader: game {argv[1]} needs --yes when not run in a terminal\n"
    status, out, _ = await d.cli("game", "show", "Spring Cup", user="alice")
    game = j(out)
    assert (game["players"], game["playing"]) == (1, True) and game["status"] in ("upcoming", "open")

    status, out, err = await d.cli("game", "remove", "Spring Cup", "alice", "--yes", user="teacher", json=False)
    assert (status, out) == (0, "alice was removed from Spring Cup.\n"), err
    status, out, _ = await d.cli("game", "show", "Spring Cup", user="teacher")
    assert j(out)["players"] == 0 and [r["username"] for r in j(out)["removed"]] == ["alice"]
    status, out, _ = await d.cli("game", "show", "Spring Cup", user="teacher", json=False)
    assert re.search(r"^removed: +alice \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)$", out, re.M), out
    status, out, err = await d.cli("game", "end", "Spring Cup", "--yes", user="teacher")
    assert status == 0 and j(out)["status"] == "ended", err

    # A game ended before its first day says so, not that it has a final ranking.
    status, out, err = await d.cli("game", "create", "Next Year", "--start", "2035-01-01", "--end", "2035-12-31",
                                   "--cash", "10000", user="teacher")
    assert status == 0, err
    status, out, err = await d.cli("game", "end", "Next Year", "--yes", user="teacher", json=False)
    assert (status, out) == (0, "Next Year ended before it started: no one traded in it.\n"), err


@pytest_twisted.ensureDeferred
async def test_the_creator_sees_a_players_portfolio_and_players_only_when_the_game_shows_them(deployment):
    """game portfolio through a worker to the master: the creator sees a player's cash, positions, open orders and
    trades; players see each other's only in a game created with --show-portfolios; anyone else is refused the
    same way whoever they ask for; the player's email is nowhere."""
    d = deployment
    for user in ("teacher", "alice", "bob", "eve"):
        await register_and_login(d, user)
    status, out, err = await d.cli("game", "create", "Class 7B", "--start", "2026-09-01", "--end", "2030-12-31",
                                   "--cash", "25000", "--private", user="teacher")
    assert status == 0, err
    assert j(out)["show_portfolios"] is False
    code = j(out)["invite_code"]
    status, out, err = await d.cli("game", "create", "Open Book", "--start", "2026-09-01", "--end", "2030-12-31",
                                   "--cash", "25000", "--show-portfolios", user="teacher", json=False)
    assert status == 0 and "portfolios:    shown to every player" in out, (out, err)
    for user in ("alice", "bob"):
        for game in ("Class 7B", "Open Book"):
            status, out, err = await d.cli("game", "join", game, "--code", code, user=user)
            assert status == 0, err
    for game in ("Class 7B", "Open Book"):
        status, out, err = await d.cli("buy", "AAPL", "5", "--portfolio", game, user="alice")
        assert status == 0, err
    await d.tick()
    status, out, err = await d.cli("sell", "AAPL", "2", "--portfolio", "Class 7B", user="alice")
    assert status == 0, err
    await d.tick()
    status, out, err = await d.cli("buy", "MSFT", "1", "--limit", "1.00", "--tif", "gtc", "--portfolio",
                                   "Class 7B", user="alice")
    assert status == 0, err
    # The standings as CSV, for a gradebook: the same figures as the leaderboard's JSON.
    status, out, err = await d.cli("game", "leaderboard", "Class 7B", "--csv", user="teacher", json=False)
    assert status == 0, err
    board = j((await d.cli("game", "leaderboard", "Class 7B", user="teacher"))[1])["standings"]
    assert out.splitlines() == ["rank,username,equity,return_percent,sharpe"] + [
        f"{s['rank']},{s['username']},{s['equity']},{s['return_percent']},{s['sharpe'] or ''}" for s in board]
    assert len(board) == 2

    status, out, err = await d.cli("game", "portfolio", "Class 7B", "alice", user="teacher")
    assert status == 0, err
    seen = j(out)
    status, out, _ = await d.cli("portfolio", "--portfolio", "Class 7B", user="alice")
    own = j(out)
    assert (seen["game"], seen["username"]) == ("Class 7B", "alice")
    assert (seen["cash"], seen["equity"], seen["positions"]) == (own["cash"], own["equity"], own["positions"])
    [position] = seen["positions"]
    assert (position["symbol"], position["quantity"]) == ("AAPL", "3")
    assert {"average_price", "market_value", "unrealized_pl"} <= set(position)
    assert [(o["symbol"], o["type"], o["limit_price"], o["status"]) for o in seen["orders"]] == [
        ("MSFT", "limit", "1.00", "new")]
    assert [(t["side"], t["quantity"]) for t in seen["transactions"]] == [("buy", "5"), ("sell", "2")]
    assert "@" not in out and "account_uuid" not in seen
    status, out, _ = await d.cli("history", "--portfolio", "Class 7B", user="alice")
    assert seen["transactions"] == j(out)

    # The text: the portfolio as 'portfolio' shows it, then its open orders and its trades; pages back.
    status, out, err = await d.cli("game", "portfolio", "Class 7B", "alice", "--limit", "1", user="teacher",
                                   json=False)
    assert status == 0, err
    assert out.startswith("game:") and "username:" in out and "alice" in out and "@" not in out
    assert "\nOpen orders:\nID " in out and "\nTransactions:\nID " in out
    transactions = out.split("\nTransactions:\n", 1)[1].splitlines()
    assert len(transactions) == 2 and " sell " in transactions[1]  # the header and the newest
    assert f"older ones: add --before {seen['transactions'][1]['id']}" in err

    # Hidden from players: the same refusal for a player, a non-player and nobody; outsiders see no game.
    refusals = set()
    for username in ("alice", "eve", "nobody_here"):
        status, out, err = await d.cli("game", "portfolio", "Class 7B", username, user="bob")
        assert (status, j(out)["error"]) == (1, "portfolios_hidden"), out
        refusals.add(j(out)["message"])
    assert len(refusals) == 1
    status, out, _ = await d.cli("game", "portfolio", "Class 7B", "alice", user="eve")
    assert j(out)["error"] == "unknown_game"
    status, out, _ = await d.cli("game", "portfolio", "Class 7B", "eve", user="teacher")
    assert j(out)["error"] == "invalid_input" and "does not play" in j(out)["message"]

    # Shown to players: bob sees alice's; eve, who does not play, still nobody's.
    status, out, err = await d.cli("game", "portfolio", "Open Book", "alice", user="bob")
    assert status == 0, err
    assert [p["quantity"] for p in j(out)["positions"]] == ["5"]
    for username in ("alice", "nobody_here"):
        status, out, _ = await d.cli("game", "portfolio", "Open Book", username, user="eve")
        assert j(out)["error"] == "portfolios_hidden"

    # A removed player's portfolio stays the creator's to see.
    status, out, err = await d.cli("game", "remove", "Class 7B", "alice", "--yes", user="teacher")
    assert status == 0, err
    status, out, err = await d.cli("game", "portfolio", "Class 7B", "alice", user="teacher")
    assert status == 0 and j(out)["removed"] and j(out)["orders"] == [], err  # its open order was canceled


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_games_days_read_as_days_and_its_times_in_the_markets_zone(tmp_path, settings, database_url, clock):
    """On a New York market a game given by days shows them as those days (its start, midnight UTC, is not the
    evening before in New York), and its times in New York time, as the website does; JSON keeps UTC."""
    d = await start_cluster(tmp_path, replace(settings, calendar="XNYS"), database_url, clock)
    try:
        for user in ("teacher", "alice"):
            await register_and_login(d, user)
        status, out, err = await d.cli("game", "create", "Fall Cup", "--start", "2026-09-21", "--end", "2026-12-31",
                                       "--cash", "10000", user="teacher", json=False)
        assert status == 0, err
        for shown in (out, (await d.cli("game", "show", "Fall Cup", user="teacher", json=False))[1]):
            assert re.search(r"^start: +2026-09-21$", shown, re.M), shown
            # --end DAY closes at the next midnight in New York (the market's day; winter time by then)
            assert re.search(r"^end: +2026-12-31 \(its last day: trading closes at 2027-01-01 00:00:00 EST\)$",
                             shown, re.M), shown
        status, out, _ = await d.cli("game", "show", "Fall Cup", user="teacher")
        assert (j(out)["start"], j(out)["end"]) == ("2026-09-21T04:00:00+00:00", "2027-01-01T05:00:00+00:00")
        status, out, _ = await d.cli("game", "list", user="teacher", json=False)
        [row] = [line for line in out.splitlines() if line.startswith("Fall Cup")]
        assert row.split()[3:5] == ["2026-09-21", "2026-12-31"], out

        # A start given as a time is a time, in New York's.
        status, out, err = await d.cli("game", "create", "Open Cup", "--start", "2026-09-22T13:30:00+00:00",
                                       "--end", "2026-12-31", "--cash", "10000", user="teacher", json=False)
        assert status == 0, err
        assert re.search(r"^start: +2026-09-22 09:30:00 EDT$", out, re.M), out
        assert (await d.cli("game", "join", "Fall Cup", user="alice"))[0] == 0
        status, out, err = await d.cli("game", "remove", "Fall Cup", "alice", "--yes", user="teacher")
        assert status == 0, err
        status, out, _ = await d.cli("game", "show", "Fall Cup", user="teacher", json=False)
        assert re.search(r"^removed: +alice \(2026-09-21 \d\d:\d\d EDT\)$", out, re.M), out
    finally:
        await d.cluster.stopService()
