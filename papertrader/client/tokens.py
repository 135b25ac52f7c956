"""What the client keeps in $XDG_CONFIG_HOME/papertrader/ (mode 0600): the session, the last worker.

A missing session file means "not logged in".  One that cannot be read (the
directory is a file, no permission) is a ConfigError saying which path and what
to do; a damaged one (not JSON, a token that cannot be one) is "not logged in"
with a word about the damage — never a raw exception.
"""

import errno
import json
import os
import re

from papertrader.client.errors import ConfigError
from papertrader.errors import NotLoggedIn

#: Session tokens are URL-safe base64 (the master makes 256-bit ones); anything else is not one.
TOKEN_RE = re.compile(r"[A-Za-z0-9_\-]{20,128}")
#: A session file is a few hundred bytes; a bigger one is damaged, and is not read whole.
MAX_FILE = 64 * 1024


def config_dir(environ=os.environ):
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "papertrader")


def session_path(environ=os.environ):
    return os.path.join(config_dir(environ), "session.json")


def _problem(e, path, environ):
    """A person's words for an OSError on ``path`` (a file in the client's config dir)."""
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return (f"{_blocking_file(config_dir(environ))} is a file, not a directory: move it away (or set"
                " XDG_CONFIG_HOME)")
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied on {path}: it must belong to you (check its owner and mode)"
    if e.errno == errno.EISDIR:
        return f"{path} is a directory, not a file: move it away"
    if e.errno == errno.EROFS:
        return f"{path} is on a read-only file system (set XDG_CONFIG_HOME to a writable directory)"
    if e.errno == errno.ENOSPC:
        return f"no space left for {path}"
    return f"{path}: {e.strerror or 'cannot be used'}"


def _blocking_file(directory):
    """The file standing where ``directory`` or one of its parents should be (else ``directory`` itself)."""
    paths = [directory]
    while os.path.dirname(paths[-1]) != paths[-1]:
        paths.append(os.path.dirname(paths[-1]))
    return next((p for p in reversed(paths) if os.path.isfile(p)), directory)


def _read(path, environ):
    """The parsed JSON in ``path``; None if there is no such file; ValueError if it is damaged."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: " + _problem(e, path, environ))
    if len(data) > MAX_FILE:
        raise ValueError("it is far too large")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("it is not JSON")


def remembered_worker(environ=os.environ):
    """The worker the client used last (it goes back to it while it is listed); None if unknown."""
    try:
        data = _read(os.path.join(config_dir(environ), "worker.json"), environ)
    except (ConfigError, ValueError):
        return None  # only a preference: a damaged or unreadable file is no reason to fail a command
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and 0 < len(name) <= 64 else None


def remember_worker(name, environ=os.environ):
    """Remember the worker in use; best effort (a preference is not worth failing a command over)."""
    try:
        _write(os.path.join(config_dir(environ), "worker.json"), {"name": name}, environ)
    except ConfigError:
        pass


def load(environ=os.environ):
    """The saved session (a dict with ``token``), or None if there is none.

    Raises ConfigError if it cannot be read, NotLoggedIn if it is damaged.
    """
    path = session_path(environ)
    try:
        data = _read(path, environ)
    except ValueError as e:
        raise NotLoggedIn(f"the saved session in {path} is damaged ({e}): log in again with 'papertrader login"
                          " USERNAME'")
    if data is None:
        return None
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        raise NotLoggedIn(f"the saved session in {path} is damaged (it holds no valid token): log in again with"
                          " 'papertrader login USERNAME'")
    return data


def save(data, environ=os.environ):
    """Save the session; raises ConfigError (saying where and why) if it cannot be written."""
    _write(session_path(environ), data, environ)


def _write(path, data, environ):
    tmp = path + ".tmp"
    try:
        os.makedirs(config_dir(environ), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise ConfigError(f"cannot save to {path}: " + _problem(e, path, environ))


def clear(environ=os.environ):
    """Forget the saved session; raises ConfigError if it is there but cannot be removed."""
    path = session_path(environ)
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        pass  # the config dir is a file: there is no session to forget
    except OSError as e:
        raise ConfigError(f"cannot remove {path}: " + _problem(e, path, environ))


def portfolio_path(environ=os.environ):
    return os.path.join(config_dir(environ), "portfolio.json")


def remembered_portfolio(username, environ=os.environ):
    """The portfolio ``papertrader portfolio use`` chose for ``username`` (None: the default portfolio)."""
    try:
        data = _read(portfolio_path(environ), environ)
    except (ConfigError, ValueError):
        return None  # a preference: a damaged or unreadable file means the default portfolio
    if not isinstance(data, dict) or data.get("username") != username:
        return None
    name = data.get("name")
    return name if isinstance(name, str) and 0 < len(name) <= 64 else None


def remember_portfolio(username, name, environ=os.environ):
    """Remember the portfolio commands trade (None: the default one); raises ConfigError if it cannot."""
    if name is None:
        try:
            os.remove(portfolio_path(environ))
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as e:
            raise ConfigError(f"cannot remove {portfolio_path(environ)}: " + _problem(e, portfolio_path(environ),
                                                                                    environ))
        return
    _write(portfolio_path(environ), {"username": username, "name": name}, environ)
