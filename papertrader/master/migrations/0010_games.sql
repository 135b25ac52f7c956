-- Schema version 10: trading games (papertrader/trading/games.py, papertrader/master/games.py).
--   games: name (3-40 characters) and name_key (its case-folded form, unique); creator_id the account that
--     made it and manages it; starts/ends the game's dates (market time, ISO-8601 UTC); starting_cash_cents what
--     each player's portfolio starts with; rules the GameRules as canonical JSON (dates and cash repeated there);
--     private 1: joined with an invite code, whose SHA-256 only is kept in invite_hash (the creator makes a new
--     one with `game invite`, which replaces the old); ended_at: when the creator ended it early (NULL: it ends at
--     ends); finished: when the master closed it (open orders canceled, the final ranking stored);
--     board_updated: the market time of the last leaderboard.
--   game_players: one row per player and game; portfolio_id the player's portfolio in the game (portfolios.game_id
--     points back); removed: when the creator removed the player (the row stays: its orders and history do);
--     rank/rank_sharpe, equity_cents and sharpe_units (1e-4) are the last leaderboard's (NULL before the first);
--     point_day is the market day of that point (equity_cents); the daily returns of the days before it, as
--     running sums (papertrader/trading/games.py DailyReturns): returns_count, returns_sum and returns_squares
--     (exact decimal text), previous_cents the equity that ended the last of those days (NULL: the starting
--     cash), returns_broken 1 once a day began with an equity that was not positive.
--   game_days: each player's equity curve, one point per market day: the equity at the day's last update.

CREATE TABLE games (
    id {{ID}},
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    creator_id BIGINT NOT NULL REFERENCES accounts (id),
    starts TEXT NOT NULL,
    ends TEXT NOT NULL,
    starting_cash_cents BIGINT NOT NULL,
    rules TEXT NOT NULL,
    private INTEGER NOT NULL DEFAULT 0,
    invite_hash TEXT,
    created TEXT NOT NULL,
    ended_at TEXT,
    finished TEXT,
    board_updated TEXT
);

CREATE INDEX games_open ON games (finished, starts);
CREATE INDEX games_creator ON games (creator_id);

CREATE TABLE game_players (
    game_id BIGINT NOT NULL REFERENCES games (id),
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    portfolio_id BIGINT NOT NULL UNIQUE REFERENCES portfolios (id),
    joined TEXT NOT NULL,
    removed TEXT,
    rank INTEGER,
    rank_sharpe INTEGER,
    equity_cents BIGINT,
    sharpe_units BIGINT,
    point_day TEXT,
    previous_cents BIGINT,
    returns_count INTEGER NOT NULL DEFAULT 0,
    returns_sum TEXT NOT NULL DEFAULT '0',
    returns_squares TEXT NOT NULL DEFAULT '0',
    returns_broken INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (game_id, account_id)
);

CREATE INDEX game_players_account ON game_players (account_id);

CREATE TABLE game_days (
    portfolio_id BIGINT NOT NULL REFERENCES portfolios (id),
    day TEXT NOT NULL,
    time TEXT NOT NULL,
    equity_cents BIGINT NOT NULL,
    PRIMARY KEY (portfolio_id, day)
)
