"""The thread pools of CPU-heavy work (bcrypt, gpg) are bounded: however many jobs arrive, at most the pool's
size run at once and the rest wait their turn, each still answered."""

import threading

import pytest_twisted
from twisted.internet import defer, threads

from papertrader.pools import WorkPool
from tests.conftest import bounded


@pytest_twisted.ensureDeferred
async def test_at_most_size_jobs_run_at_once_and_the_rest_queue():
    pool = WorkPool("test", 2)
    condition = threading.Condition()
    state = {"running": 0, "most": 0}
    release = threading.Event()

    def job(n):
        with condition:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
            condition.notify_all()
        assert release.wait(10), "never released"
        with condition:
            state["running"] -= 1
        return n * n

    jobs = [pool.run(job, n) for n in range(6)]

    def two_running_four_waiting():
        with condition:
            assert condition.wait_for(lambda: state["running"] == 2, 10)
            backlog = pool._pool._team.statistics().backloggedWorkCount
        release.set()
        return backlog

    assert await bounded(threads.deferToThread(two_running_four_waiting), "two jobs running") == 4
    assert await bounded(defer.gatherResults(jobs), "every job answered") == [0, 1, 4, 9, 16, 25]
    assert state["most"] == 2
    pool._stop()


@pytest_twisted.ensureDeferred
async def test_pool_threads_run_at_a_lower_cpu_priority_than_the_reactor():
    """Password hashing at the lowest priority there is (a crowd logging in yields to acknowledging orders),
    gpg at +10; the reactor's thread keeps its own."""
    import os

    from papertrader import pools

    def priority():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = priority()
    assert await bounded(pools.HASHING.run(priority), "a hash job") == 19
    assert await bounded(pools.GPG.run(priority), "a gpg job") == min(19, mine + 10)
    pool = WorkPool("test", 1)
    assert await bounded(pool.run(priority), "a job") == min(19, mine + 10)
    assert priority() == mine  # the reactor's thread is untouched
    pool._stop()
