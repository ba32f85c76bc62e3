"""Tabular transactions mapped onto DuckDB transactions.

Each VAST transaction id owns one DuckDB connection (a cursor of the shared database) inside
`BEGIN`; commit and rollback end it. A transaction idle longer than `idle_timeout` seconds is
rolled back by a reaper thread, as a server would abandon a client that went away.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import duckdb

log = logging.getLogger(__name__)


class UnknownTransaction(Exception):
    """The transaction id is not open (never begun, already ended, or rolled back when idle)."""


@dataclass
class Transaction:
    """One open transaction."""

    txid: int
    cursor: duckdb.DuckDBPyConnection
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Transactions:
    """The open transactions of the twin."""

    def __init__(self, db: duckdb.DuckDBPyConnection, idle_timeout: float):
        self._db = db
        self._idle_timeout = idle_timeout
        self._open: dict[int, Transaction] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="tx-reaper", daemon=True)
        self._reaper.start()

    def begin(self) -> int:
        """Open a transaction and return its id (random 63-bit, never 0)."""
        cursor = self._db.cursor()
        cursor.execute("BEGIN TRANSACTION").fetchall()
        with self._lock:
            txid = 0
            while txid == 0 or txid in self._open:
                txid = secrets.randbits(63)
            self._open[txid] = Transaction(txid, cursor)
        log.info("begin txid=%016x", txid)
        return txid

    def _take(self, txid: int) -> Transaction:
        with self._lock:
            tx = self._open.pop(txid, None)
        if tx is None:
            raise UnknownTransaction(f"transaction {txid:#x} is not open")
        return tx

    def commit(self, txid: int) -> None:
        """Commit; the transaction is closed even if DuckDB refuses (a conflict)."""
        tx = self._take(txid)
        with tx.lock:
            try:
                tx.cursor.execute("COMMIT").fetchall()
            finally:
                tx.cursor.close()
        log.info("commit txid=%016x", txid)

    def rollback(self, txid: int) -> None:
        """Roll back and close the transaction."""
        tx = self._take(txid)
        with tx.lock:
            tx.cursor.execute("ROLLBACK").fetchall()
            tx.cursor.close()
        log.info("rollback txid=%016x", txid)

    def exists(self, txid: int) -> bool:
        """Whether `txid` is open."""
        with self._lock:
            return txid in self._open

    @contextmanager
    def use(self, txid: int) -> Iterator[duckdb.DuckDBPyConnection]:
        """The cursor of open transaction `txid`, held exclusively for one request.

        Transaction id 0 runs the request in its own transaction, committed when it succeeds.
        """
        if txid == 0:
            implicit = self.begin()
            try:
                with self.use(implicit) as cursor:
                    yield cursor
            except BaseException:
                self.rollback(implicit)
                raise
            self.commit(implicit)
            return
        with self._lock:
            tx = self._open.get(txid)
        if tx is None:
            raise UnknownTransaction(f"transaction {txid:#x} is not open")
        with tx.lock:
            if not self.exists(txid):  # rolled back while this request waited for it
                raise UnknownTransaction(f"transaction {txid:#x} is not open")
            tx.last_used = time.monotonic()
            try:
                yield tx.cursor
            finally:
                tx.last_used = time.monotonic()

    def _reap(self) -> None:
        period = max(0.05, min(1.0, self._idle_timeout / 4))
        while not self._stop.wait(period):
            now = time.monotonic()
            with self._lock:
                idle = [
                    t for t in self._open.values() if now - t.last_used > self._idle_timeout and not t.lock.locked()
                ]
            for tx in idle:
                try:
                    self.rollback(tx.txid)
                    log.info("rolled back idle txid=%016x", tx.txid)
                except UnknownTransaction:
                    pass  # ended meanwhile

    def close(self) -> None:
        """Stop the reaper and roll back everything still open."""
        self._stop.set()
        with self._lock:
            txids = list(self._open)
        for txid in txids:
            try:
                self.rollback(txid)
            except UnknownTransaction:
                pass
