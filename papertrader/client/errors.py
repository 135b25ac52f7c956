"""Failures on the client's side of the wire, each with a stable code (listed in the README).

The server's errors (papertrader/errors.py) reach the client typed; these are
the ones only the client can see: it could not reach a server, did not trust
it, was pointed at the wrong kind of server, lost a worker in the middle of a
command, or could not use its own files.
"""

from papertrader.errors import PaperTraderError


class ClientError(PaperTraderError):
    """A failure on the client's side of the wire."""


class NoWorker(ClientError):
    """No worker is available: the master lists none, or every one listed failed."""

    code = "no_worker"


class Unreachable(ClientError):
    """Cannot reach the server (not running, wrong address, or it did not answer in time)."""

    code = "unreachable"


class WrongServer(ClientError):
    """The server at that address is not the PaperTrader server expected (not TLS, or a worker given as the
    master, or a version that does not know the command)."""

    code = "wrong_server"


class BadCAFile(ClientError):
    """The CA file cannot be read."""

    code = "bad_ca_file"


class BadCertificate(ClientError):
    """The server's certificate is not trusted (wrong CA file, or not valid for the host name)."""

    code = "bad_certificate"


class WorkerFailed(ClientError):
    """The worker failed during the command (closed the connection, shut down, or did not answer) and the
    client could not carry on elsewhere."""

    code = "worker_failed"


class ConfigError(ClientError):
    """The client cannot read or write its own files ($XDG_CONFIG_HOME/papertrader)."""

    code = "config_error"


class InternalError(ClientError):
    """The client failed unexpectedly: a bug."""

    code = "internal_error"


#: Codes the command line itself uses besides the error classes: a malformed command line, an interrupt.
USAGE = "usage"
INTERRUPTED = "interrupted"

#: Every client-side error class (the README lists each code).
CLIENT_ERRORS = (NoWorker, Unreachable, WrongServer, BadCAFile, BadCertificate, WorkerFailed, ConfigError,
                 InternalError)
