-- Schema version 14: whether a game's players may see each other's portfolios.
--   games.show_portfolios: 1 when the creator chose `game create --show-portfolios`: every player of the game may
--     see every other player's portfolio in it (cash, positions, open orders, history: `game portfolio`); 0 (the
--     default, and every game made before this version): only the creator sees the players' portfolios.  The
--     creator always may, whatever it holds.

ALTER TABLE games ADD COLUMN show_portfolios INTEGER NOT NULL DEFAULT 0
