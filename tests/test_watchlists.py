"""Watchlists (papertrader/app/watchlists.py): through the real alpaca-py (TradingClient's watchlist methods and
the by-name paths), through the command line, and their limits, on both databases."""

import json
import uuid

import pytest_twisted

from tests.http_helpers import api, in_thread  # noqa: F401 (a fixture)


def alpaca_error(excinfo):
    e = excinfo.value
    return e.status_code, e.code, e.message


def symbols(watchlist):
    return [a.symbol for a in watchlist.assets or []]


@pytest_twisted.ensureDeferred
async def test_watchlists_through_alpaca_py(api):
    import pytest
    from alpaca.common.exceptions import APIError
    from alpaca.trading.requests import CreateWatchlistRequest, UpdateWatchlistRequest

    client = api.trading()
    account = await in_thread(client.get_account)
    assert await in_thread(client.get_watchlists) == []
    made = await in_thread(client.create_watchlist, CreateWatchlistRequest(name="Tech", symbols=["msft", "AAPL"]))
    assert made.name == "Tech" and symbols(made) == ["MSFT", "AAPL"] and made.account_id == account.id
    assert made.assets[0].tradable and made.assets[0].name  # Alpaca's Asset of each symbol, in order
    [listed] = await in_thread(client.get_watchlists)
    assert (listed.id, listed.name, listed.assets) == (made.id, "Tech", None)  # the list of lists has no assets

    added = await in_thread(client.add_asset_to_watchlist_by_id, made.id, "TSLA")
    assert symbols(added) == ["MSFT", "AAPL", "TSLA"] and added.updated_at >= made.updated_at
    again = await in_thread(client.add_asset_to_watchlist_by_id, made.id, "AAPL")  # already there: unchanged
    assert symbols(again) == ["MSFT", "AAPL", "TSLA"]
    removed = await in_thread(client.remove_asset_from_watchlist_by_id, made.id, "AAPL")
    assert symbols(removed) == ["MSFT", "TSLA"]
    updated = await in_thread(client.update_watchlist_by_id, made.id,
                              UpdateWatchlistRequest(name="Cars and code", symbols=["TSLA", "AAPL"]))
    assert (updated.name, symbols(updated)) == ("Cars and code", ["TSLA", "AAPL"])
    got = await in_thread(client.get_watchlist_by_id, made.id)
    assert (got.name, symbols(got), got.created_at) == ("Cars and code", ["TSLA", "AAPL"], made.created_at)
    by_name = await in_thread(client.get, "/watchlists:by_name", {"name": "Cars and code"})
    assert by_name["id"] == str(made.id) and [a["symbol"] for a in by_name["assets"]] == ["TSLA", "AAPL"]

    # Refusals: typed, with Alpaca's statuses, and nothing changed by them.
    with pytest.raises(APIError) as e:
        await in_thread(client.create_watchlist, CreateWatchlistRequest(name="Cars and code", symbols=[]))
    assert alpaca_error(e)[:2] == (422, 42210000) and "already have a watchlist named" in alpaca_error(e)[2]
    with pytest.raises(APIError) as e:
        await in_thread(client.add_asset_to_watchlist_by_id, made.id, "NOPE")
    assert alpaca_error(e)[:2] == (422, 42210000) and "unknown symbol 'NOPE'" in alpaca_error(e)[2]
    with pytest.raises(APIError) as e:
        await in_thread(client.remove_asset_from_watchlist_by_id, made.id, "MSFT")
    assert alpaca_error(e) == (422, 42210000, "MSFT is not in this watchlist")
    with pytest.raises(APIError) as e:
        await in_thread(client.get_watchlist_by_id, uuid.uuid4())
    assert alpaca_error(e)[:2] == (404, 40410000)
    with pytest.raises(APIError) as e:
        await in_thread(client.get, "/watchlists:by_name", {"name": "Tech"})
    assert alpaca_error(e) == (404, 40410000, "you have no watchlist named 'Tech'")
    for bad in ({"name": "x", "symbols": "AAPL"}, {"name": 5}, {"symbols": ["AAPL"]}, {"name": "x", "owner": 1},
                {"name": "", "symbols": []}, {"name": "x" * 65}, {"name": "tab\there"}):
        with pytest.raises(APIError) as e:
            await in_thread(client.post, "/watchlists", bad)
        assert alpaca_error(e)[:2] == (422, 42210000), bad
    with pytest.raises(APIError) as e:  # a name longer than any list's is refused, never cut to one that is
        await in_thread(client.delete, "/watchlists:by_name", {"name": "Cars and code" + "x" * 60})
    assert alpaca_error(e) == (422, 42210000, "a watchlist's name is 1-64 printable characters")
    assert symbols(await in_thread(client.get_watchlist_by_id, made.id)) == ["TSLA", "AAPL"]

    # Another key of the same account sees the same lists; deleting one by name, then by id.
    await in_thread(client.post, "/watchlists", {"name": "Empty"})
    await in_thread(client.delete, "/watchlists:by_name?name=Empty")
    await in_thread(client.delete_watchlist_by_id, made.id)
    assert await in_thread(client.get_watchlists) == []


@pytest_twisted.ensureDeferred
async def test_watchlists_on_the_command_line(deployment):
    from tests.test_e2e import register_and_login

    d = deployment
    await register_and_login(d)

    async def cli(*argv, json_out=True):
        status, out, err = await d.cli("watchlist", *argv, json=json_out, user="alice")
        return status, (json.loads(out) if json_out and out.strip() else out), err

    status, out, _ = await cli(json_out=False)
    assert status == 0 and "No watchlists" in out
    status, made, _ = await cli("create", "My tech", "aapl", "MSFT")
    assert status == 0 and made["symbols"] == ["AAPL", "MSFT"]
    status, out, _ = await cli("add", "My tech", "TSLA,AAPL", json_out=False)  # (commas too, as the website's)
    assert status == 0 and out.strip() == "Watchlist 'My tech' (AAPL already in it): AAPL, MSFT, TSLA."
    await d.tick()  # prices
    status, out, _ = await cli("show", "My tech", json_out=False)
    lines = out.splitlines()
    assert status == 0 and lines[0] == "Watchlist 'My tech':"
    assert [line.split()[0] for line in lines[2:]] == ["AAPL", "MSFT", "TSLA"]  # in the list's order, with prices
    price = str(d.master.board.get("MSFT").price)
    assert price in lines[3]
    status, out, _ = await cli("remove", "My tech", "AAPL", "GOOG")  # all or nothing: AAPL stays
    assert status == 1 and out == {"error": "invalid_input", "message": "GOOG is not in this watchlist"}
    status, out, _ = await cli("add", "My tech", "ZZZZ", "AMZN")
    assert status == 1 and out["error"] == "unknown_symbol"
    status, renamed, _ = await cli("rename", "My tech", "Core")
    assert renamed["name"] == "Core" and renamed["symbols"] == ["AAPL", "MSFT", "TSLA"]
    status, lists, _ = await cli("list")
    assert [(w["name"], w["size"]) for w in lists] == [("Core", 3)]
    status, out, _ = await cli("show", "My tech")
    assert status == 1 and out == {"error": "unknown_watchlist", "message": "you have no watchlist named 'My tech'"}
    status, out, err = await cli("rename", "Core", json_out=False)
    assert status == 2 and "needs NAME and NEW_NAME" in err
    status, out, _ = await cli("delete", "Core", json_out=False)
    assert status == 0 and out.strip() == "Watchlist 'Core' deleted."
    assert (await cli("list"))[1] == []

    # Deleting the account deletes its lists.
    await cli("create", "Left behind", "TSLA")
    status, _, err = await d.cli("delete-account", "--password-stdin", "--yes", stdin="correct horse\n",
                                 user="alice")
    assert status == 0, err
    assert await d.master.db.query("SELECT COUNT(*) FROM watchlists") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_a_watchlist_holds_at_most_200_symbols_and_an_account_at_most_50_lists(api):
    import pytest
    from alpaca.common.exceptions import APIError

    from papertrader.master.watchlists import MAX_SYMBOLS, MAX_WATCHLISTS

    client = api.trading()
    for n in range(MAX_WATCHLISTS):
        await in_thread(client.post, "/watchlists", {"name": f"list {n}", "symbols": ["AAPL", "MSFT", "TSLA"]})
    with pytest.raises(APIError) as e:
        await in_thread(client.post, "/watchlists", {"name": "one more"})
    assert alpaca_error(e) == (422, 42210000, f"you already have {MAX_WATCHLISTS} watchlists; delete one first")
    # The list of lists fits one answer however full they are.
    assert len(await in_thread(client.get_watchlists)) == MAX_WATCHLISTS
    # More symbols than a list holds are refused before any is looked up (the deployment has 3 assets).
    with pytest.raises(APIError) as e:
        await in_thread(client.put, f"/watchlists/{(await in_thread(client.get_watchlists))[0].id}",
                        {"symbols": [f"S{n}" for n in range(MAX_SYMBOLS + 1)]})
    assert alpaca_error(e) == (422, 42210000, f"a watchlist holds at most {MAX_SYMBOLS} symbols")


@pytest_twisted.ensureDeferred
async def test_a_lookup_with_a_name_or_id_no_list_can_have_is_refused_before_the_database(db):
    """Found by review: a NUL in a name reached PostgreSQL (DataError, a traceback on the master), and a name
    longer than any list's was cut to one that is (and its list deleted)."""
    import pytest

    from papertrader.errors import InvalidInput, UnknownWatchlist
    from papertrader.master.watchlists import WatchlistStore

    store = WatchlistStore(db)
    for name in ("a\x00b", "x" * 65, "", "tab\tname"):
        with pytest.raises(InvalidInput, match="^a watchlist's name is 1-64 printable characters$"):
            await db.run(store.find, 1, name=name)
    for watchlist_id in ("\x00", "not a uuid", "61e69015-8549-4bfd-b9c3-01e75843f47d" + "0"):
        with pytest.raises(UnknownWatchlist):
            await db.run(store.find, 1, watchlist_id=watchlist_id)
