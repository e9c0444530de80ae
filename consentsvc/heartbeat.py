"""Workers say they are alive: each `consentsvc worker` keeps a row in worker_heartbeat,
which /readyz and `consentsvc worker status` read.

A row is written at most every BEAT_EVERY, and removed when its worker stops cleanly; a
worker that died leaves its row, which ages and is forgotten after FORGET_AFTER.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .models import WorkerHeartbeat, utcnow

BEAT_EVERY = timedelta(seconds=15)
FORGET_AFTER = timedelta(days=1)


def worker_name() -> str:
    """This process as a worker: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


class Heart:
    """One worker's heartbeat: call beat() in its loop; it writes only when due."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or worker_name()
        self.started_at = utcnow()
        self.last: datetime | None = None

    def beat(self, session: Session, now: datetime | None = None) -> bool:
        """Write the row if BEAT_EVERY has passed; commits. True when it wrote."""
        now = now or utcnow()
        if self.last is not None and now - self.last < BEAT_EVERY:
            return False
        row = session.get(WorkerHeartbeat, self.name)
        if row is None:
            session.add(WorkerHeartbeat(name=self.name, started_at=self.started_at, seen_at=now))
        else:
            row.seen_at = now
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < now - FORGET_AFTER))
        session.commit()
        self.last = now
        return True

    def stop(self, session: Session) -> None:
        """A clean exit: this worker is no longer there."""
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == self.name))
        session.commit()


def workers(session: Session) -> list[WorkerHeartbeat]:
    """Every worker that beat in the last FORGET_AFTER, the most recently seen first."""
    since = utcnow() - FORGET_AFTER
    return list(
        session.scalars(
            select(WorkerHeartbeat)
            .where(WorkerHeartbeat.seen_at >= since)
            .order_by(WorkerHeartbeat.seen_at.desc())
        )
    )


def last_seen(session: Session) -> datetime | None:
    """When any worker last beat (None: none in the last FORGET_AFTER)."""
    newest = workers(session)
    return newest[0].seen_at if newest else None
