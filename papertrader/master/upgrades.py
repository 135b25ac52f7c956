"""What an upgrade of the database ends with: the record of one, or a typed error that refused it.

The master turns these errors into one line of its log and a non-zero exit
status; ``papertrader-admin`` prints them with their code.
"""

from dataclasses import dataclass, field

from papertrader.errors import PaperTraderError


@dataclass
class Upgrade:
    """The schema version a database had (0: a new database) and has now, what was applied, and the
    backup made first (SQLite, a database that held a schema), if any."""

    before: int
    after: int
    applied: list = field(default_factory=list)
    backup: str = None


class UpgradeRefused(PaperTraderError):
    """The database cannot be used or upgraded by this release as it is."""

    code = "upgrade_refused"


class SchemaTooNew(UpgradeRefused):
    """The database was written by a newer release of PaperTrader."""

    code = "schema_too_new"


class BackupFirst(UpgradeRefused):
    """An existing PostgreSQL database is migrated only once the operator says it is backed up."""

    code = "backup_first"


class BackupFailed(UpgradeRefused):
    """The database could not be backed up (so it was not migrated)."""

    code = "backup_failed"


class MigrationFailed(UpgradeRefused):
    """A migration failed; the database is as it was."""

    code = "migration_failed"


class NotADatabase(UpgradeRefused):
    """That file is not a PaperTrader database."""

    code = "not_a_database"
