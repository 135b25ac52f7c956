"""What the client keeps in $XDG_CONFIG_HOME/papertrader/ (mode 0600): the session, the last worker."""

import json
import os


def config_dir(environ=os.environ):
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "papertrader")


def session_path(environ=os.environ):
    return os.path.join(config_dir(environ), "session.json")


def remembered_worker(environ=os.environ):
    """The worker the client used last (it goes back to it while it is listed)."""
    try:
        with open(os.path.join(config_dir(environ), "worker.json"), encoding="utf-8") as f:
            name = json.load(f).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def remember_worker(name, environ=os.environ):
    _write(os.path.join(config_dir(environ), "worker.json"), {"name": name}, environ)


def load(environ=os.environ):
    try:
        with open(session_path(environ), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("token"), str) else None


def save(data, environ=os.environ):
    _write(session_path(environ), data, environ)


def _write(path, data, environ):
    os.makedirs(config_dir(environ), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def clear(environ=os.environ):
    try:
        os.remove(session_path(environ))
    except FileNotFoundError:
        pass
