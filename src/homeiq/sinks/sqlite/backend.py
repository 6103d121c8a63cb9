"""The embedded SQLite store's entry in the backend registry."""

from __future__ import annotations

from homeiq.errors import ConfigError
from homeiq.sinks import registry
from homeiq.sinks.base import Eraser, EventReader, Sink
from homeiq.sinks.sqlite import AsyncStore, SQLiteReader, SQLiteSink
from homeiq.sinks.sqlite.store import EVENTS_DB, SQLiteEventStore


@registry.add
class SQLiteBackend(registry.Backend):
    """events.db in the data directory; backed up with the directory's other databases."""

    name = "sqlite"
    events_db = EVENTS_DB

    def open_sink(self) -> Sink:
        """A sink whose writes run in a writer process (or thread: HOMEIQ_SQLITE_WRITER)."""
        return SQLiteSink(self.settings.data_dir, writer=self.settings.sqlite_writer)

    def eraser(self, sink: Sink) -> Eraser:
        """The sink itself: its deletes run in its writer, between write batches."""
        if not isinstance(sink, SQLiteSink):
            raise TypeError(f"not an SQLite sink: {type(sink).__name__}")
        return sink

    def open_reader(self) -> EventReader:
        """Read-only connections to events.db, opened on first use."""
        return SQLiteReader(self.settings.data_dir)

    def open_reader_readonly(self) -> EventReader:
        """events.db opened read-only now; ConfigError when HomeIQ never made one here."""
        path = self.settings.data_dir / EVENTS_DB
        if not path.exists():
            raise ConfigError("HOMEIQ_DATA_DIR", f"no event store at {path} (run homeiq first)")
        return AsyncStore(SQLiteEventStore(path, readonly=True))
