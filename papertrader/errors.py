"""Typed errors that cross the wire.

Each error has a short stable ``code`` (used by the CLI's JSON output and by
scripts) and a message a person can read.  The same classes are raised on the
master, carried by AMP to the worker, re-raised there and carried to the client.
"""


class PaperTraderError(Exception):
    """Base of every error a client may be shown."""

    code = "error"

    def __init__(self, message=None):
        super().__init__(message or self.__doc__.strip().splitlines()[0])

    @property
    def message(self):
        return str(self.args[0]) if self.args else self.code


class InvalidInput(PaperTraderError):
    """The request is not valid."""

    code = "invalid_input"


class WeakPassword(PaperTraderError):
    """That password is too weak."""

    code = "weak_password"


class Throttled(PaperTraderError):
    """Too many attempts; wait and try again."""

    code = "throttled"


class ProviderLoginFailed(PaperTraderError):
    """Signing in with the identity provider failed."""

    code = "provider_login_failed"


class UsernameTaken(PaperTraderError):
    """That username is already taken."""

    code = "username_taken"


class BadCredentials(PaperTraderError):
    """Wrong username or password."""

    code = "bad_credentials"


class NotLoggedIn(PaperTraderError):
    """Not logged in, or the session has expired or ended."""

    code = "not_logged_in"


class AccountDisabled(NotLoggedIn):
    """This account has been disabled by the operator."""

    code = "account_disabled"


class UnknownUser(PaperTraderError):
    """No account has that username."""

    code = "unknown_user"


class UnknownSymbol(PaperTraderError):
    """That symbol is not traded here."""

    code = "unknown_symbol"


class QuoteUnavailable(PaperTraderError):
    """No price is known yet for that symbol; try again after the next update."""

    code = "quote_unavailable"


class InsufficientFunds(PaperTraderError):
    """Not enough cash for this order."""

    code = "insufficient_funds"


class InsufficientPosition(PaperTraderError):
    """You do not hold that many shares (short selling is not allowed)."""

    code = "insufficient_position"


class UnknownOrder(PaperTraderError):
    """No such order on this account."""

    code = "unknown_order"


class OrderNotOpen(PaperTraderError):
    """That order is no longer open: it has filled, or was canceled, expired, replaced or rejected."""

    code = "order_not_open"


class DuplicateOrder(PaperTraderError):
    """That client order id was already used for a different order."""

    code = "duplicate_order"


class GameRuleViolation(PaperTraderError):
    """The game's rules do not allow this order."""

    code = "game_rule"

    def __init__(self, message=None, rule=None):
        super().__init__(message)
        #: Which rule refused: dates, assets, short or max_position (the message starts "game rule RULE:").
        self.rule = rule or (message.split(":", 1)[0].rsplit(" ", 1)[-1] if message else None)


class UnknownGame(PaperTraderError):
    """No such game (or it is private, and you are not in it or gave no valid invite code)."""

    code = "unknown_game"


class GameExists(PaperTraderError):
    """A game of that name already exists."""

    code = "game_exists"


class NotGameCreator(PaperTraderError):
    """Only the game's creator may do that."""

    code = "not_game_creator"


class PortfoliosHidden(PaperTraderError):
    """Only the game's creator, and its players when the game shows portfolios, may see a player's portfolio."""

    code = "portfolios_hidden"


class GameClosed(PaperTraderError):
    """The game has ended: it takes no more players or changes."""

    code = "game_closed"


class UnknownPortfolio(PaperTraderError):
    """No such portfolio on your account."""

    code = "unknown_portfolio"


class UnknownWatchlist(PaperTraderError):
    """No such watchlist on your account."""

    code = "unknown_watchlist"


class TradingSuspended(PaperTraderError):
    """Trading is suspended in this portfolio (its configuration): no new orders."""

    code = "trading_suspended"


class NotPermitted(PaperTraderError):
    """The operator has not allowed this account to do that."""

    code = "not_permitted"


class PortfolioNotEmpty(PaperTraderError):
    """The portfolio still has open orders or positions."""

    code = "portfolio_not_empty"


class WorkerRefused(PaperTraderError):
    """This worker is not allowed to talk to the master."""

    code = "worker_refused"


class MasterUnavailable(PaperTraderError):
    """The worker cannot reach the master right now; try another worker."""

    code = "master_unavailable"


class DatabaseUnavailable(PaperTraderError):
    """The master's database is not answering right now: nothing was done; try again in a moment."""

    code = "database_unavailable"


class OutcomeUnknown(PaperTraderError):
    """The request reached the server but its answer was lost: it may have been done; look it up first.

    The master, or its database, stopped answering while it was being done.  An order sent again with the same
    client order id is never placed twice."""

    code = "outcome_unknown"


class UnknownCommand(PaperTraderError):
    """The server does not know that command (a client newer than the server, or not ours)."""

    code = "unknown_command"


class ServerError(PaperTraderError):
    """The server failed to process the request; it has been logged."""

    code = "server_error"


#: Every error above, keyed by its AMP error code.  Commands list all of them so
#: that any typed error raised anywhere reaches the client typed.
ALL_ERRORS = {
    cls: cls.code.upper().encode("ascii")
    for cls in (
        InvalidInput,
        WeakPassword,
        Throttled,
        ProviderLoginFailed,
        UsernameTaken,
        BadCredentials,
        # Before NotLoggedIn, of which it is a kind: a refusal is sent as the first class it matches.
        AccountDisabled,
        NotLoggedIn,
        UnknownUser,
        UnknownSymbol,
        QuoteUnavailable,
        InsufficientFunds,
        InsufficientPosition,
        UnknownOrder,
        OrderNotOpen,
        DuplicateOrder,
        GameRuleViolation,
        UnknownGame,
        GameExists,
        NotGameCreator,
        PortfoliosHidden,
        GameClosed,
        UnknownPortfolio,
        UnknownWatchlist,
        TradingSuspended,
        NotPermitted,
        PortfolioNotEmpty,
        WorkerRefused,
        MasterUnavailable,
        DatabaseUnavailable,
        OutcomeUnknown,
        UnknownCommand,
        ServerError,
    )
}
