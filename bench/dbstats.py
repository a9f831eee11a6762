"""
What the benchmark database did in an interval: its transactions and the WAL it wrote.

Transactions: `pg_stat_database.xact_commit + xact_rollback` of the bench database. A backend
publishes its counts at most once a second while busy, and an idle one within
PGSTAT_IDLE_INTERVAL (10 s) — so a figure is read only once every backend that ran in the
interval has published: connections the harness closed have exited (a backend publishes on
exit), and the bench workers' pooled connections have been idle for `SETTLE` seconds.

WAL: the server is shared (other databases, other people's tests), so `pg_current_wal_lsn()`
deltas count their WAL too. With pg_walinspect (a contrib extension, created in the throwaway
bench database) the WAL records of the interval are read back and only the bench database's are
summed: the records that touch its relations (`rel <tablespace>/<its oid>/…`) and every record of
the transactions that wrote them (their commit records). A temporary physical replication slot,
advanced at every mark, keeps the interval's WAL until it has been read (a checkpoint would
otherwise recycle it); it disappears with the monitor connection. Without pg_walinspect the
server-wide delta is reported and says so.

Every query of this module runs on a connection to another database of the same server (the
"monitor"), or — for pg_walinspect, which must be called where it is installed — on a connection
to the bench database that is closed, and waited for, before the next mark.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

# PGSTAT_IDLE_INTERVAL (10 s, PostgreSQL 15+) and a margin.
SETTLE = 10.5


@dataclass(frozen=True)
class Mark:
    xacts: int
    lsn: str
    at: float = 0.0  # time.monotonic() of the transactions' reading


@dataclass(frozen=True)
class DbDelta:
    """
    What the bench database did between two marks.
    """

    xacts: int
    # The bench database's own WAL (pg_walinspect), or the server's when `wal_exact` is False;
    # of which full-page images (the first change of a page after a checkpoint: how many there
    # are depends on when the server's checkpoints fell, not on the code measured).
    wal_bytes: int
    wal_exact: bool
    server_wal_bytes: int
    wal_fpi_bytes: int = 0
    # From the mark to this reading of the transactions (the settle included).
    seconds: float = 0.0


async def flush(conn: psycopg.AsyncConnection[Any]) -> None:
    """
    Make this connection's backend publish its counts now: it does so on its way back to idle,
    before it answers (so a mark taken after this sees them).
    """
    await conn.execute("SELECT pg_stat_force_next_flush()")
    if not conn.autocommit:
        await conn.commit()


class DbStats:
    """
    open() once per run; mark() before an interval, since(mark) after it.
    """

    def __init__(self, db_url: str, monitor_url: str, dbname: str) -> None:
        self.db_url, self.monitor_url, self.dbname = db_url, monitor_url, dbname
        self.walinspect = False
        self._monitor: psycopg.AsyncConnection[Any] | None = None
        self._slot = f"bench_{uuid.uuid4().hex[:12]}"
        self._oid = 0
        # Bench workers ran since the last reading without being waited for (see mark()).
        self.unsettled = False

    @classmethod
    async def open(cls, db_url: str, monitor_url: str, dbname: str) -> DbStats:
        stats = cls(db_url, monitor_url, dbname)
        stats._monitor = await psycopg.AsyncConnection.connect(monitor_url, autocommit=True)
        cur = await stats._monitor.execute(
            "SELECT oid FROM pg_database WHERE datname = %s", (dbname,)
        )
        row = await cur.fetchone()
        assert row is not None, dbname
        stats._oid = int(row[0])
        try:
            async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            await stats._monitor.execute(
                "SELECT pg_create_physical_replication_slot(%s, true, true)", (stats._slot,)
            )
            stats.walinspect = True
        except psycopg.Error:
            stats.walinspect = False  # not available / not allowed: server-wide WAL, said so
        return stats

    async def close(self) -> None:
        if self._monitor is not None:
            await self._monitor.close()  # the temporary slot goes with it
            self._monitor = None

    async def _one(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        assert self._monitor is not None
        cur = await self._monitor.execute(query.encode(), params)
        row = await cur.fetchone()
        assert row is not None
        return row[0]

    async def _xacts(self) -> int:
        return int(
            await self._one(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                (self.dbname,),
            )
        )

    async def quiesce(self, keep: tuple[str, ...] = (), within: float = 10.0) -> None:
        """
        Wait until every backend of the bench database has exited, except those whose
        application_name starts with one of `keep` (the bench workers' pools).
        """
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = await self._one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND NOT application_name LIKE ANY (%s::text[])",
                (self.dbname, [f"{k}%" for k in keep]),
            )
            if not left:
                return
            if asyncio.get_running_loop().time() > deadline:
                # Counted anyway, and said: a figure may include what they have not published.
                print(
                    f"[dbstats] {left} backend(s) of {self.dbname} still open after"
                    f" {within:g} s: transactions may be miscounted",
                    file=sys.stderr,
                )
                return
            await asyncio.sleep(0.02)

    async def mark(self, keep: tuple[str, ...] = ()) -> Mark:
        """
        The counters now, once the harness's own connections have gone (`keep`: see quiesce).
        """
        await self.quiesce(keep)
        if self.unsettled:
            await asyncio.sleep(SETTLE)  # their idle backends publish what they still hold
            self.unsettled = False
        lsn = str(await self._one("SELECT pg_current_wal_lsn()"))
        if self.walinspect:
            await self._one(
                "SELECT count(*) FROM pg_replication_slot_advance(%s, %s::pg_lsn)",
                (self._slot, lsn),
            )
        return Mark(await self._xacts(), lsn, time.monotonic())

    async def since(
        self,
        mark: Mark,
        *,
        settle: bool,
        keep: tuple[str, ...] = (),
        harness_xacts: int = 0,
        background: float = 0.0,
    ) -> DbDelta:
        """
        The counters' change since `mark`. `settle`: bench worker processes ran (wait for their
        idle backends to publish); `harness_xacts`: transactions the harness itself ran on the
        bench database in the interval; `background`: transactions per second that idle bench
        workers run anyway (polling, heartbeats), taken out over the time counted.
        """
        end_lsn = str(await self._one("SELECT pg_current_wal_lsn()"))
        await self.quiesce(keep)
        if settle:
            await asyncio.sleep(SETTLE)
            self.unsettled = False
        read = await self._xacts()
        seconds = time.monotonic() - mark.at
        xacts = read - mark.xacts - harness_xacts - round(background * seconds)
        server = int(await self._one("SELECT %s::pg_lsn - %s::pg_lsn", (end_lsn, mark.lsn)))
        if not self.walinspect:
            return DbDelta(xacts, server, False, server, seconds=seconds)
        own, fpi = await self._own_wal(mark.lsn, end_lsn)
        return DbDelta(xacts, own, True, server, seconds=seconds, wal_fpi_bytes=fpi)

    async def background(self, keep: tuple[str, ...], seconds: float = SETTLE) -> float:
        """
        Transactions per second of the bench database while nothing is measured: idle bench
        workers polling and sending heartbeats.
        """
        mark = await self.mark(keep)
        await asyncio.sleep(seconds)
        delta = await self.since(mark, settle=True, keep=keep)
        return delta.xacts / delta.seconds

    async def _own_wal(self, start: str, end: str) -> tuple[int, int]:
        # block_ref reads "blkref #0: rel <spc>/<db>/<rel> fork main blk 7 (FPW); …".
        pattern = f"rel [0-9]+/{self._oid}/"
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            await _flushed_to(conn, end)
            cur = await conn.execute(
                "WITH r AS (SELECT xid, record_length, fpi_length, block_ref"
                "           FROM pg_get_wal_records_info(%(start)s, %(end)s)),"
                " ours AS (SELECT DISTINCT xid FROM r WHERE block_ref ~ %(p)s AND xid <> 0)"
                " SELECT coalesce(sum(record_length), 0), coalesce(sum(fpi_length), 0) FROM r"
                " WHERE block_ref ~ %(p)s OR xid IN (SELECT xid FROM ours)",
                {"start": start, "end": end, "p": pattern},
            )
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


async def _flushed_to(conn: psycopg.AsyncConnection[Any], lsn: str) -> None:
    """
    Wait until the server has flushed WAL up to `lsn`: pg_walinspect reads only flushed WAL
    ("cannot accept future end LSN"), and commits with synchronous_commit off (progress
    writes, anyone's on a shared server) leave the insert position ahead of the flush for up to
    a few wal_writer_delay rounds.
    """
    for _ in range(100):
        cur = await conn.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (lsn,))
        row = await cur.fetchone()
        if row and row[0]:
            return
        await asyncio.sleep(0.05)
    # Still behind after 5 s: a synchronous commit flushes everything inserted before it.
    await conn.execute("SELECT pg_catalog.txid_current()")
