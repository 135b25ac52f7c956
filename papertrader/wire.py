"""AMP whose every answer is a typed error or a result: the base of each protocol that answers commands.

Twisted's AMP answers a command whose arguments it cannot parse (a missing argument, bytes that are not
UTF-8, ``abc`` for an integer, a malformed date or list) with ``UNKNOWN`` and *closes the connection*, after
logging a traceback; an unknown command gets ``UNHANDLED`` with a Python repr; and an answer too big for one
AMP value (or one that cannot be serialized) is a dropped connection.  :class:`TypedAMP` answers instead:

- arguments it cannot parse, integers beyond 64 bits, or text holding NUL (U+0000, which PostgreSQL cannot
  store): ``invalid_input``, naming the argument;
- a command it does not know: ``unknown_command``;
- any other failure of a responder: ``server_error``, logged once with its traceback (a bug);
- a typed error's message is cut to :data:`MAX_MESSAGE` characters, so it always fits one AMP value;

and the connection stays open.  A box that breaks the protocol itself (an answer to nothing it asked, a box
with neither command nor answer, a key over 255 bytes) cannot be answered: the connection is closed, with
one warning line in the log.
"""

from datetime import datetime
from struct import unpack_from
from types import MethodType

from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from papertrader.errors import ALL_ERRORS, InvalidInput, ServerError, UnknownCommand

#: Characters of an error message sent back at most (a longer one is cut, with "..."; at 3 bytes a character
#: it still fits one AMP value).
MAX_MESSAGE = 8000
#: The largest integer argument accepted (every integer on our wire is an id, a count or a port).
MAX_INTEGER = 2**63 - 1

_log = Logger()


def _error(cls, message, failure=None):
    message = message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "..."
    return amp.RemoteAmpError(ALL_ERRORS[cls], message, False, local=failure)


#: For each list of arguments (a command's ``arguments`` or ``response``, an AmpList's ``subargs``), by its id: the
#: list (kept, so the id stays its own) and its Plan, made once (every box a busy master or worker reads or writes
#: goes through one).
_PLANS = {}
_OWN, _PLAIN, _LIST, _TIME = "own", "plain", "list", "time"
_MISSING = object()


class Plan:
    """A list of AMP arguments as read and written here: ``entries`` (wire name, Argument, Python name, how to
    parse it, how to encode it); ``names``, the Python names; ``required``, those of the arguments not optional."""

    def __init__(self, arguments):
        self.entries = []
        for name, argument in arguments:
            kind = type(argument)
            # (AMP's own Argument.fromBox and toBox, but for the Python name, which AMP finds anew at every call)
            reads = _PLAIN if kind.fromBox is amp.Argument.fromBox and kind.retrieve is amp.Argument.retrieve else _OWN
            writes = _PLAIN if kind.toBox is amp.Argument.toBox and kind.retrieve is amp.Argument.retrieve else _OWN
            if writes == _PLAIN and kind is amp.AmpList:
                writes = _LIST
            if reads == _PLAIN and kind is amp.AmpList:
                reads = _LIST
            elif reads == _PLAIN and kind is amp.DateTime:
                reads = _TIME
            self.entries.append((name, argument, amp._wireNameToPythonIdentifier(name), reads, writes))
        self.names = frozenset(label for _, _, label, _, _ in self.entries)
        self.required = [label for _, argument, label, _, _ in self.entries if not argument.optional]


def plan(arguments):
    """The Plan of ``arguments`` (made at its first use)."""
    known = _PLANS.get(id(arguments))
    if known is None or known[0] is not arguments:
        known = _PLANS[id(arguments)] = (arguments, Plan(arguments))
    return known[1]


def encode(arguments, objects, protocol, box):
    """``objects`` (a dict by Python name) written into ``box`` (an AmpBox) by ``arguments``, as AMP's
    ``Command.makeArguments``/``makeResponse`` write them (an optional one that is None or absent is left out; a
    required one that is absent raises KeyError), with each argument's Python name found once: the lists of an
    AmpList too, row by row."""
    for name, argument, label, _, how in plan(arguments).entries:
        if how is _OWN:
            argument.toBox(name, box, dict(objects), protocol)
            continue
        value = objects.get(label, _MISSING)
        if value is None or value is _MISSING:
            if argument.optional:
                continue
            if value is _MISSING:
                raise KeyError(label)
        if how is _LIST:
            box[name] = b"".join(encode(argument.subargs, row, protocol, amp.AmpBox()).serialize() for row in value)
        else:
            box[name] = argument.toStringProto(value, protocol)
    return box


def split_boxes(data):
    """The boxes (dicts of bytes) serialized one after another in ``data``, as an AmpList's value holds them; a
    value that does not end with a whole box, or a key longer than AMP allows, raises ValueError.  (What AMP's
    parseString does, which runs a whole protocol over the bytes for each list, and silently drops a box cut
    short at the end.)"""
    boxes, box, at, end = [], {}, 0, len(data)
    while at < end:
        if at + 2 > end:
            raise ValueError("an AMP list ends inside a key's length")
        (size,) = unpack_from("!H", data, at)
        at += 2
        if not size:
            boxes.append(box)
            box = {}
            continue
        if size > amp.MAX_KEY_LENGTH or at + size + 2 > end:
            raise ValueError("an AMP list holds a key too long, or ends inside one")
        key = data[at:at + size]
        (size,) = unpack_from("!H", data, at + len(key))
        at += len(key) + 2
        if at + size > end:
            raise ValueError("an AMP list ends inside a value")
        box[key] = data[at:at + size]
        at += size
    if box:
        raise ValueError("an AMP list ends inside a box")
    return boxes


def parse_time(text):
    """An amp.DateTime's value (``2026-12-03T17:09:49.308317-00:00``, 32 characters, with its offset), as AMP
    parses it, but read by ``datetime.fromisoformat`` (AMP's own parser took 4 us: every order, event and
    candle has one to three); anything else raises ValueError."""
    if len(text) != 32:
        raise ValueError(f"invalid date format {text!r}")
    value = datetime.fromisoformat(text.decode("ascii"))
    if value.tzinfo is None:
        raise ValueError(f"invalid date format {text!r}")
    return value


def decode(arguments, strings, protocol):
    """``strings`` (a box: the bytes by wire name) read by ``arguments``, as AMP's ``Command.parseArguments`` and
    ``parseResponse`` read them (an optional argument absent is None; a required one absent raises KeyError),
    with each argument's Python name found once, and the lists of an AmpList split and read row by row here."""
    objects = {}
    for name, argument, label, how, _ in plan(arguments).entries:
        if how is _OWN:
            argument.fromBox(name, strings, objects, protocol)
            continue
        text = strings.get(name)
        if text is None:
            if not argument.optional:
                raise KeyError(label)
            objects[label] = None
        else:
            objects[label] = _read(argument, how, text, protocol)
    return objects


def _read(argument, how, text, protocol):
    """One value of a box by its Argument (whose fromBox is AMP's own)."""
    if how is _TIME:
        return parse_time(text)
    if how is _LIST:
        return [decode(argument.subargs, row, protocol) for row in split_boxes(text)]
    return argument.fromStringProto(text, protocol)


def parse_arguments(command, box, protocol):
    """``command``'s arguments from ``box``, as AMP parses them; an argument that is missing or cannot be
    parsed raises InvalidInput naming it (and not the command, whose name, such as a worker's StampedPlaceOrder,
    means nothing to the person who sent the request: "symbol contains a NUL character")."""
    strings = box.copy()
    objects = {}
    for name, argument, label, how, _ in plan(command.arguments).entries:
        try:
            if how is not _OWN:  # what Argument.fromBox does, with the Python name found once
                text = strings.get(name) if argument.optional else strings[name]
                objects[label] = None if text is None else _read(argument, how, text, protocol)
            else:
                argument.fromBox(name, strings, objects, protocol)
        except Exception:
            if name not in box and not argument.optional:
                raise InvalidInput(f"{label} is missing")
            raise InvalidInput(f"{label} is not valid")
        value = objects.get(label)
        if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise InvalidInput(f"{label} is out of range")
        if isinstance(value, str) and "\x00" in value or isinstance(value, list) and any(
                isinstance(item, str) and "\x00" in item for item in value):
            # No text anywhere may hold NUL (PostgreSQL cannot store it; nothing of ours means it).
            raise InvalidInput(f"{label} contains a NUL character")
    return objects


def _oversized(box):
    return any(len(value) > amp.MAX_VALUE_LENGTH or len(key) > amp.MAX_KEY_LENGTH for key, value in box.items())


class TypedAMP(amp.AMP):
    """AMP that answers every command with a result or one of papertrader/errors.py's typed errors."""

    def log_failure(self, failure, what):
        """Log an unexpected failure (a bug) once with its traceback; subclasses log to their own LogSystem."""
        _log.failure("{what} failed", failure, what=what)

    def log_violation(self, message):
        """Log a peer that broke the protocol (one line, no traceback)."""
        _log.warn("{message}", message=message)

    def locateResponder(self, name):
        dispatch = self._commandDispatch
        if name not in dispatch:
            return None
        command, function = dispatch[name]
        return self._typed_responder(MethodType(function, self), command)

    def _typed_responder(self, responder, command):
        def respond(box):
            try:
                arguments = parse_arguments(command, box, self)
            except InvalidInput as e:
                d = defer.fail(_error(InvalidInput, e.message, Failure()))
            else:
                d = defer.maybeDeferred(responder, **arguments)
                d.addCallbacks(serialize, typed)
            if amp.ASK not in box:  # nobody waits for this answer: a refusal is not news
                d.addErrback(lambda failure: None)
            return d

        def serialize(objects):
            try:
                answer = command.makeResponse(objects, self)
                if _oversized(answer):
                    raise ValueError("an answer value is longer than AMP allows")
            except Exception:
                self.log_failure(Failure(), f"serializing the answer to {command.__name__}")
                raise _error(ServerError, ServerError().message)
            return answer

        def typed(failure):
            known = failure.check(*command.allErrors)
            if known is not None:
                return Failure(_error(known, str(failure.value), failure))
            if failure.check(amp.RemoteAmpError):  # already an answer (ours, above)
                return failure
            self.log_failure(failure, command.__name__)
            return Failure(_error(ServerError, ServerError().message, failure))

        return respond

    def dispatchCommand(self, box):
        name = box[amp.COMMAND]
        responder = self.locator.locateResponder(name)
        if responder is None:
            shown = name[:64].decode("utf-8", "replace")
            d = defer.fail(_error(UnknownCommand, f"unknown command {shown!r}", Failure(amp.UnhandledCommand())))
            if amp.ASK not in box:
                d.addErrback(lambda failure: None)
            return d
        return responder(box)

    def ampBoxReceived(self, box):
        try:
            super().ampBoxReceived(box)
        except Exception as e:
            self.protocol_violation(f"{type(e).__name__} on a box with keys {sorted(box)[:8]!r}")

    def protocol_violation(self, what):
        """A box that cannot be answered: log one line and close the connection."""
        peer = getattr(self.transport.getPeer(), "host", "?") if self.transport is not None else "?"
        self.log_violation(f"closing the connection of {peer}: it broke the AMP protocol ({what})")
        if self.transport is not None:
            self.transport.abortConnection()
