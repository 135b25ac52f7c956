"""A COMMIT whose answer is lost (PostgreSQL): the connection drops just after the server received it.

The server committed; the master heard nothing.  Before, every order of that transaction was answered
``server_error``, and a client that then placed it again (alpaca-py does, without a client order id) had two.
Now the master asks the server whether the transaction was done (``txid_status``) and answers accordingly;
if the server cannot be asked, ``outcome_unknown`` says the order may have been placed.

A real PostgreSQL behind a TCP proxy on loopback that cuts both connections the moment a COMMIT passes."""

import pytest
import pytest_twisted
from twisted.internet import defer

from papertrader.errors import OutcomeUnknown
from papertrader.master.db import Database
from papertrader.master.group_commit import GroupCommit
from tests.conftest import _drop_schema, _postgres_schema, bounded
from tests.pg_proxy import CommitCutter


@pytest.fixture
def postgres():
    schema, url = _postgres_schema()
    yield url
    _drop_schema(schema)


async def proxied(url, tmp_path):
    cutter = CommitCutter(url)
    db = Database(await cutter.start(), str(tmp_path))
    await db.execute("CREATE TABLE acks (id INTEGER PRIMARY KEY, what TEXT NOT NULL)")
    return cutter, db


def insert(n):
    def unit(cursor):
        cursor.execute("INSERT INTO acks (id, what) VALUES (%s, %s)", (n, f"order {n}"))
        return f"acknowledged {n}"
    return unit


@pytest_twisted.ensureDeferred
async def test_a_group_whose_commit_answer_is_lost_is_answered_as_done(postgres, tmp_path):
    cutter, db = await proxied(postgres, tmp_path)
    try:
        group = GroupCommit(db, lambda cursor, ids: None, lanes=1)
        cutter.armed = True
        answers = await bounded(defer.gatherResults([group.run(insert(n), (n,)) for n in (1, 2, 3)]), "the batch")
        assert cutter.cut == 1  # (the COMMIT's answer was lost)
        assert answers == ["acknowledged 1", "acknowledged 2", "acknowledged 3"]
        assert [r[0] for r in await db.query("SELECT id FROM acks ORDER BY id")] == [1, 2, 3]  # each once
        # A transaction that does not ask for it fails as before when its answer is lost (nothing acknowledged).
        cutter.armed = True
        with pytest.raises(Exception) as failed:
            await bounded(db.run(lambda cursor: cursor.execute("INSERT INTO acks VALUES (9, 'x')")), "a write")
        assert not isinstance(failed.value, OutcomeUnknown)
    finally:
        db.close()
        await cutter.listening.stopListening()


@pytest_twisted.ensureDeferred
async def test_when_the_database_cannot_say_the_orders_may_have_been_done(postgres, tmp_path):
    cutter, db = await proxied(postgres, tmp_path)
    try:
        group = GroupCommit(db, lambda cursor, ids: None, lanes=1)
        cutter.armed = cutter.then_refuse = True
        with pytest.raises(OutcomeUnknown, match="it may have been done"):
            await bounded(group.run(insert(7), (7,)), "the order")
        cutter.refuse = False
        assert [r[0] for r in await db.query("SELECT id FROM acks")] == [7]  # (it was: hence "may")
    finally:
        db.close()
        await cutter.listening.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_order_whose_answer_the_worker_never_got_is_said_to_be_unknown(tmp_path, settings, database_url,
                                                                                clock):
    """The master placed the order but its answer did not reach the worker in time (a stalled master, a cut
    link): the worker says 502 ``outcome_unknown`` with the client order id to look for, not 503 "cannot reach
    the master", after which a program places it again (a second order)."""
    import json

    import treq

    from papertrader.worker import link
    from tests.conftest import wait_for_log
    from tests.http_helpers import start_api

    api = await start_api(tmp_path, settings, database_url, clock, fill_model="ideal", api_rate_limit=100_000)
    d = api.d
    try:
        worker = d.cluster.workers[0]
        headers = {"APCA-API-KEY-ID": api.key_id, "APCA-API-SECRET-KEY": api.secret}
        account = await treq.get(f"{api.url}/v2/account", headers=headers)  # (the key, known to the worker now)
        assert account.code == 200, await account.text()
        placed = wait_for_log(d.master.logs, "accepted: buy")
        stalled = worker.link.proven
        stalled.transport.pauseProducing()  # the master's answers wait, unread
        sent = treq.post(f"{api.url}/v2/orders", json={"symbol": "AAPL", "qty": "3", "side": "buy",
                                                        "type": "market", "time_in_force": "day"},
                         headers=headers)
        await placed
        relinked = wait_for_log(worker.logs, "linked to the master")
        clock.advance(link.CALL_TIMEOUT)
        response = await bounded(sent, "the answer")
        answer = json.loads(await response.text())
        assert (response.code, answer["code"]) == (502, 50210000), answer  # (alpaca-py resends a 504 by itself)
        assert "the order may have been placed" in answer["message"]
        client_order_id = answer["message"].split("client_order_id ")[1].split(" ")[0]
        if worker.link.proven is stalled:
            relinked.addErrback(lambda _: None).cancel()
            stalled.transport.resumeProducing()
        else:  # (the worker gave the silent link up meanwhile, as it does after heartbeats go unanswered)
            await relinked
        found = await treq.get(f"{api.url}/v2/orders:by_client_order_id",
                               params={"client_order_id": client_order_id}, headers=headers)
        order = json.loads(await found.text())
        assert (found.code, order["qty"], order["symbol"]) == (200, "3", "AAPL")
        again = await treq.post(f"{api.url}/v2/orders", json={"symbol": "AAPL", "qty": "3", "side": "buy",
                                                               "type": "market", "time_in_force": "day",
                                                               "client_order_id": client_order_id},
                                headers=headers)
        assert (again.code, json.loads(await again.text())["id"]) == (200, order["id"])  # not placed twice
    finally:
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_replace_whose_answer_the_worker_never_got_names_the_order_to_look_for(tmp_path, settings,
                                                                                      database_url, clock):
    """A replace is an order too: its lost answer said outcome_unknown without the new order's client order id
    (there was none to give, unless the program had set one), so nothing could be looked up."""
    import json

    import treq

    from papertrader.worker import link
    from tests.conftest import wait_for_log
    from tests.http_helpers import start_api

    api = await start_api(tmp_path, settings, database_url, clock, fill_model="ideal", api_rate_limit=100_000)
    d = api.d
    try:
        worker = d.cluster.workers[0]
        headers = {"APCA-API-KEY-ID": api.key_id, "APCA-API-SECRET-KEY": api.secret}
        placed = await treq.post(f"{api.url}/v2/orders", json={"symbol": "AAPL", "qty": "3", "side": "buy",
                                                                "type": "limit", "limit_price": "1.00",
                                                                "time_in_force": "gtc"}, headers=headers)
        original = json.loads(await placed.text())
        assert placed.code == 200, original
        replaced = wait_for_log(d.master.logs, "replaced by")
        stalled = worker.link.proven
        stalled.transport.pauseProducing()  # the master's answers wait, unread
        sent = treq.patch(f"{api.url}/v2/orders/{original['id']}", json={"limit_price": "2.00"}, headers=headers)
        await replaced
        relinked = wait_for_log(worker.logs, "linked to the master")
        clock.advance(link.CALL_TIMEOUT)
        response = await bounded(sent, "the answer")
        answer = json.loads(await response.text())
        assert (response.code, answer["code"]) == (502, 50210000), answer
        client_order_id = answer["message"].split("client_order_id ")[1].split(" ")[0]
        if worker.link.proven is stalled:
            relinked.addErrback(lambda _: None).cancel()
            stalled.transport.resumeProducing()
        else:
            await relinked
        found = await treq.get(f"{api.url}/v2/orders:by_client_order_id",
                               params={"client_order_id": client_order_id}, headers=headers)
        order = json.loads(await found.text())
        assert (found.code, order["limit_price"], order["replaces"]) == (200, "2.00", original["id"]), order
        again = await treq.patch(f"{api.url}/v2/orders/{original['id']}",
                                 json={"limit_price": "2.00", "client_order_id": client_order_id}, headers=headers)
        assert (again.code, json.loads(await again.text())["id"]) == (200, order["id"])  # not replaced twice
    finally:
        await d.cluster.stopService()
