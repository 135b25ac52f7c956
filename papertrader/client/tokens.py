"""Where the client keeps its session: $XDG_CONFIG_HOME/papertrader/session.json, mode 0600."""

import json
import os


def config_dir(environ=os.environ):
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "papertrader")


def session_path(environ=os.environ):
    return os.path.join(config_dir(environ), "session.json")


def load(environ=os.environ):
    try:
        with open(session_path(environ), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("token"), str) else None


def save(data, environ=os.environ):
    directory = config_dir(environ)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = session_path(environ)
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
