"""Password hashing (bcrypt), and the small process that does it for the master.

bcrypt only reads 72 bytes, so every password is first reduced to the base64 of its SHA-256 (44 bytes, no
NUL), then bcrypt-hashed with a fresh salt: long passwords keep all their strength and never hit bcrypt's
limit.  Passwords are compared after Unicode NFKC normalization (NIST SP 800-63B), so the same password typed
on two keyboards is the same password.

The master does not hash in its own process: ``main()`` of this module is a hashing process
(``papertrader.pools.HASHING`` starts a bounded number of them, at the lowest CPU priority).  It reads one
request per line on stdin, ``[id, function, [args...]]`` in JSON, and answers each on stdout with
``[id, true, result]`` or ``[id, false, "ErrorType: message"]``.  It stops at the end of its stdin (its
master closed it, or died), ignores Ctrl-C (the master decides when it stops) and, on Linux, is also
terminated when its master dies.  It runs at the lowest CPU priority (nice 19; with Linux's autogrouping, in
a session of its own whose group is nice 19 too, so that it also yields to the database server's processes).  It imports nothing of the master: only this module.
"""

import base64
import hashlib
import json
import os
import signal
import sys
import unicodedata

import bcrypt

#: Longest request line a hashing process reads (a password is at most a few KB; see validation).
MAX_REQUEST = 1 << 20


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password or "")


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(normalize(password).encode("utf-8")).digest())


def hash_rounds(hashed: str) -> int:
    """The bcrypt cost a hash was made with ('$2b$12$...' -> 12)."""
    try:
        return int(hashed.split("$")[2])
    except (IndexError, ValueError):
        return 0


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def check_password(password: str, hashed: str) -> bool:
    return bcrypt.checkpw(_prehash(password), hashed.encode("ascii"))


#: What a hashing process answers, by name.
FUNCTIONS = {f.__name__: f for f in (hash_password, check_password)}


def answer(line: bytes) -> bytes:
    """One request line's answer line."""
    ident = None
    try:
        ident, name, args = json.loads(line)
        function = FUNCTIONS.get(name)
        if function is None:
            reply = [ident, False, f"UnknownFunction: {name!r}"]
        else:
            reply = [ident, True, function(*args)]
    except Exception as e:  # noqa: BLE001 - every failure is an answer, never the end of the process
        reply = [ident, False, f"{type(e).__name__}: {e}"]
    return json.dumps(reply).encode("ascii") + b"\n"


def serve(infile, outfile):
    """Answer requests until the end of ``infile``."""
    while True:
        line = infile.readline(MAX_REQUEST + 1)
        if not line:
            return
        if len(line) > MAX_REQUEST:
            outfile.write(json.dumps([None, False, "TooLong: request line too long"]).encode("ascii") + b"\n")
            return
        outfile.write(answer(line))
        outfile.flush()


def _die_with_parent():
    """On Linux: SIGTERM when the process that started us ends (a SIGKILLed master leaves no hasher)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _lower_priority(niceness):
    """Run ``niceness`` nicer than we were started.  On Linux with autogrouping, niceness only counts among the
    processes of one session, so a process of its own session would otherwise weigh as much as the whole
    master against the database server: we start a session of our own and make its group as nice."""
    try:
        niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except (AttributeError, OSError):
        return
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(niceness))
    except OSError:
        pass


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    niceness = int(argv[0]) if argv else 19
    _die_with_parent()
    if len(argv) > 1 and os.getppid() != int(argv[1]):  # the master died before the line above
        return
    _lower_priority(niceness)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
