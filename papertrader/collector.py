"""How a server process's garbage collector is set once its service is made.

CPython frees most objects when their last reference goes; its cyclic collector finds the rest, in three
generations, and a collection of the oldest one visits every object the process tracks, with the process
stopped meanwhile.  A worker with 3,000 clients tracks a few hundred thousand objects: measured with
``bench/bench_load.py`` (2 CPUs, Python 3.11, the defaults of Python), such a collection came every few
seconds under load, at each market update's burst of pushes, and stopped the worker for 50-135 ms (the
master for 15-65 ms), in the tail of every answer waiting then; an order waits through both processes.

So, once a twistd process of ours has made its service (its modules, configuration and market history
loaded: what lives as long as the process), it

- collects once, then *freezes* what is left: those objects are never visited again (they are still
  freed as usual when their last reference goes; a cycle among them is kept, and nothing of what is
  loaded at start is garbage);
- lets the oldest generation wait for ``OLDEST_AFTER`` collections of the middle one (Python's default:
  10) before it is collected; the two younger generations are collected as often as before, so cycles
  that die young (most of them: a connection's objects, a request's) go as soon as they did.

Measured the same way after this: no collection of the oldest generation in either process during the
load (one every 2-10 s before); see bench/README.md.
"""

import gc

#: Collections of the middle generation before the oldest one is collected (Python's default: 10).
OLDEST_AFTER = 100


def settle(collector=gc):
    """Freeze what the process holds now and space out collections of the oldest generation (see above)."""
    collector.collect()
    collector.freeze()
    young, middle, _ = collector.get_threshold()
    collector.set_threshold(young, middle, OLDEST_AFTER)
