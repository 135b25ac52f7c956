"""Abuse limits: how often a key (an account name, a client address) may try again.  No I/O.

After ``free`` failures within ``window`` seconds, each further attempt must
wait ``2 ** (failures - free)`` seconds (at most ``cap``) after the last
failure; and no key gets more than ``ceiling`` attempts per window at all
(an attempt that proved to be no abuse may be taken back: :meth:`Throttle.refund`).
Unknown account names are throttled exactly like known ones, so a refusal
never tells whether an account exists.  Memory is bounded: the oldest keys
are forgotten first.
"""

import collections
import math

from papertrader.errors import Throttled


class Throttle:
    def __init__(self, clock, free=5, ceiling=30, window=900.0, cap=300.0, size=100_000, what="too many attempts"):
        self.clock = clock
        #: What a refusal says before when to try again.
        self.what = what
        self.free = free
        self.ceiling = ceiling
        self.window = window
        self.cap = cap
        self.size = size
        self._failures = collections.OrderedDict()  # key -> [times of failures in the window]
        self._attempts = collections.OrderedDict()  # key -> [times of attempts in the window]

    def _recent(self, table, key, now):
        times = [t for t in table.get(key, ()) if now - t < self.window]
        if times:
            table[key] = times
            table.move_to_end(key)
        else:
            table.pop(key, None)
        return times

    def _add(self, table, key, now):
        table.setdefault(key, []).append(now)
        table.move_to_end(key)
        while len(table) > self.size:
            table.popitem(last=False)

    def wait(self, key):
        """Seconds ``key`` must still wait before its next attempt (0: it may go now)."""
        now = self.clock.seconds()
        if len(self._recent(self._attempts, key, now)) >= self.ceiling:
            oldest = self._attempts[key][0]
            return self.window - (now - oldest)
        failures = self._recent(self._failures, key, now)
        if len(failures) < self.free:
            return 0.0
        delay = min(self.cap, 2.0 ** (len(failures) - self.free))
        return max(0.0, failures[-1] + delay - now)

    def check(self, *keys):
        """Raise Throttled if any key must wait; otherwise count the attempt for each."""
        self.refuse(*keys)
        self.count(*keys)

    def refuse(self, *keys):
        """Raise Throttled if any key must wait (counts nothing: see :meth:`count`)."""
        wait = max((self.wait(key) for key in keys), default=0.0)
        if wait > 0:
            seconds = math.ceil(wait)
            raise Throttled(f"{self.what}; try again in {seconds} second{'' if seconds == 1 else 's'}")

    def count(self, *keys):
        """Count an attempt for each key (one that cost us something)."""
        now = self.clock.seconds()
        for key in keys:
            self._add(self._attempts, key, now)

    def failed(self, *keys):
        now = self.clock.seconds()
        for key in keys:
            self._add(self._failures, key, now)

    def succeeded(self, key):
        self._failures.pop(key, None)

    def forget(self, matches):
        """Forget the failures and attempts of every key ``matches(key)`` is true of (an operator's reset)."""
        for table in (self._failures, self._attempts):
            for key in [k for k in table if matches(k)]:
                del table[key]

    def refund(self, key):
        """Take back ``key``'s latest counted attempt: it turned out to be no abuse (a sign-in that succeeded)."""
        times = self._attempts.get(key)
        if times:
            times.pop()
            if not times:
                del self._attempts[key]


def registrations(clock, settings):
    """The throttle of registrations from one address (the master's and each worker's)."""
    most, window = settings.registrations_per_address, settings.throttle_window
    every = f"{round(window / 60)} minutes" if window >= 120 and window % 60 == 0 else f"{round(window)} seconds"
    return Throttle(clock, free=most, ceiling=most, window=window,
                    what=f"too many registrations from this address (at most {most} every {every}, a taken username"
                         " counting as one: the operator may raise registrations_per_address)")
