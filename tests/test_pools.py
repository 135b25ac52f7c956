"""The pools of CPU-heavy work (bcrypt in processes, gpg in threads) are bounded: however many jobs arrive, at
most the pool's size run at once and the rest wait their turn, each still answered.  Password hashing runs in
separate processes at the lowest CPU priority, which survive nothing of their master: not its death, not its
stop; one that dies during a job is replaced and the job still answered."""

import os
import select
import signal
import subprocess
import sys
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, threads

from papertrader.passwords import check_password, hash_password
from papertrader.pools import JobFailed, ProcessPool, WorkPool
from tests.conftest import WAIT, bounded


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
    """gpg at +10; the reactor's thread keeps its own."""
    import os

    from papertrader import pools

    def priority():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = priority()
    assert await bounded(pools.GPG.run(priority), "a gpg job") == min(19, mine + 10)
    pool = WorkPool("test", 1)
    assert await bounded(pool.run(priority), "a job") == min(19, mine + 10)
    assert priority() == mine  # the reactor's thread is untouched
    pool._stop()


def _gone_within(pid, timeout):
    """Whether process ``pid`` ends within ``timeout`` seconds (a pidfd: no polling, no sleeping)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def _pids(pool):
    return sorted(child.transport.pid for child in pool._children)


@pytest_twisted.ensureDeferred
async def test_hashing_runs_in_separate_processes_at_the_lowest_priority_and_answers_right():
    pool = ProcessPool("test-hashing", "papertrader.passwords", 1)
    try:
        hashed = await bounded(pool.run(hash_password, "correct horse", 4), "a hash")
        assert check_password("correct horse", hashed)  # what the process made, this process accepts
        assert await bounded(pool.run(check_password, "correct horse", hashed), "a check") is True
        assert await bounded(pool.run(check_password, "wrong horse", hashed), "a check") is False
        [pid] = _pids(pool)
        assert pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
        if os.path.exists(f"/proc/{pid}/autogroup"):  # Linux's autogrouping: its own group, as nice
            with open(f"/proc/{pid}/autogroup") as f:
                assert f.read().split()[-2:] == ["nice", "19"]
            assert os.getsid(pid) != os.getsid(0)
        with pytest.raises(JobFailed) as failed:  # a function's error is a typed answer, telling the client nothing
            await bounded(pool.run(check_password, "x", "not a bcrypt hash"), "a failed check")
        assert failed.value.why == "ValueError: Invalid salt" and failed.value.code == "server_error"
        assert "salt" not in failed.value.message
        assert _pids(pool) == [pid]  # and the process goes on
    finally:
        await bounded(pool.stop(), "the pool's stop")
    assert _gone_within(pid, WAIT)


@pytest_twisted.ensureDeferred
async def test_hashing_processes_are_spawned_not_forked(monkeypatch, tmp_path):
    """The master has threads: a fork() of it would run Python in the child, until its exec, with every other
    thread's locks frozen as they were (Python 3.12 and later warn of the deadlocks).  Its hashing processes are
    started by posix_spawn, also when the master works in a directory other than the package's (installed, it
    always does); each still works in this package's directory, not the master's."""
    import papertrader

    def no_fork():
        raise AssertionError("fork() in a process with threads")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "fork", no_fork)
    release = threading.Event()
    busy = threading.Thread(target=release.wait, args=(WAIT,))  # a thread running, as the master's do
    busy.start()
    pool = ProcessPool("test-hashing", "papertrader.passwords", 1)
    try:
        hashed = await bounded(pool.run(hash_password, "correct horse", 4), "a hash")
        assert check_password("correct horse", hashed)
        [pid] = _pids(pool)
        assert os.readlink(f"/proc/{pid}/cwd") == os.path.dirname(os.path.dirname(os.path.abspath(
            papertrader.__file__)))
    finally:
        release.set()
        busy.join()
        await bounded(pool.stop(), "the pool's stop")


@pytest_twisted.ensureDeferred
async def test_at_most_size_hashing_processes_and_every_job_answered():
    pool = ProcessPool("test-hashing", "papertrader.passwords", 2)
    try:
        jobs = [pool.run(hash_password, f"password {n}", 4) for n in range(7)]
        assert len(pool._children) == 2 and len(pool._queue) == 5  # two running, five waiting
        hashes = await bounded(defer.gatherResults(jobs), "every job")
        assert all(check_password(f"password {n}", h) for n, h in enumerate(hashes))
        assert len(pool._children) == 2
        pool.resize(1)
        assert len(pool._children) == 1
    finally:
        await bounded(pool.stop(), "the pool's stop")


@pytest_twisted.ensureDeferred
async def test_a_hashing_process_killed_during_a_job_is_replaced_and_the_job_answered():
    pool = ProcessPool("test-hashing", "papertrader.passwords", 1)
    try:
        job = pool.run(hash_password, "correct horse", 10)
        [pid] = _pids(pool)
        os.kill(pid, signal.SIGKILL)
        hashed = await bounded(job, "the job, on a new process")
        assert check_password("correct horse", hashed)
        assert _pids(pool) != [pid]
    finally:
        await bounded(pool.stop(), "the pool's stop")


@pytest_twisted.ensureDeferred
async def test_a_stuck_hashing_process_is_replaced_and_a_job_that_cannot_travel_fails_alone():
    from decimal import Decimal

    from twisted.internet import task

    from papertrader import pools

    clock = task.Clock()
    pool = ProcessPool("test-hashing", "papertrader.passwords", 1, clock=clock)
    try:
        with pytest.raises(JobFailed) as failed:  # not JSON: this job fails, the process stays free
            await bounded(pool.run(hash_password, Decimal("1"), 4), "a job that cannot be sent")
        assert failed.value.why.startswith("BadArguments")
        assert check_password("x", await bounded(pool.run(hash_password, "x", 4), "the next job"))
        [pid] = _pids(pool)
        job = pool.run(hash_password, "stuck", 10)
        os.kill(pid, signal.SIGSTOP)  # it uses no more CPU: after a check or two it counts as stuck
        try:
            for _ in range(3):
                clock.advance(pools.JOB_TIMEOUT)
                if _pids(pool) != [pid]:
                    break
            assert _pids(pool) != [pid]
        finally:
            os.kill(pid, signal.SIGCONT)
        assert check_password("stuck", await bounded(job, "the job, again on a new process"))
    finally:
        await bounded(pool.stop(), "the pool's stop")
    with pytest.raises(JobFailed):  # a stopped pool takes no more jobs
        await pool.run(hash_password, "late", 4)


@pytest_twisted.ensureDeferred
async def test_ctrl_c_in_the_terminal_does_not_stop_a_hashing_process():
    """Ctrl-C reaches every process of the terminal's foreground group; the master decides when hashing stops."""
    pool = ProcessPool("test-hashing", "papertrader.passwords", 1)
    try:
        await bounded(pool.run(hash_password, "warm up", 4), "a hash")
        [pid] = _pids(pool)
        os.kill(pid, signal.SIGINT)
        hashed = await bounded(pool.run(hash_password, "after ctrl-c", 4), "a hash after Ctrl-C")
        assert check_password("after ctrl-c", hashed) and _pids(pool) == [pid]
    finally:
        await bounded(pool.stop(), "the pool's stop")


@pytest_twisted.ensureDeferred
async def test_stopping_the_pool_fails_waiting_jobs_and_ends_its_processes():
    pool = ProcessPool("test-hashing", "papertrader.passwords", 1)
    running = pool.run(hash_password, "first", 4)
    waiting = pool.run(hash_password, "second", 4)
    [pid] = _pids(pool)
    await bounded(pool.stop(), "the pool's stop")
    for job in (running, waiting):
        with pytest.raises(JobFailed):
            await job
    assert _gone_within(pid, WAIT)


MASTER = """
import sys
from twisted.internet import task, defer
from papertrader import pools
from papertrader.passwords import hash_password

async def main(reactor):
    await pools.HASHING.run(hash_password, "x", 4)
    [child] = pools.HASHING._children
    print(child.transport.pid, flush=True)
    await defer.Deferred()  # until killed

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""


def test_a_killed_master_leaves_no_hashing_process_behind():
    """SIGKILL gives the master no chance to stop its pool: its hashing processes end by themselves."""
    master = subprocess.Popen([sys.executable, "-c", MASTER], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([master.stdout], [], [], WAIT)
        assert ready, "the master never started hashing"
        hasher = int(master.stdout.readline())
    finally:
        master.kill()
        master.wait(WAIT)
    assert _gone_within(hasher, WAIT), "the hashing process outlived its master"
