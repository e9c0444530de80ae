"""Checking the ledger against itself: every state must be the fold of its events."""

from __future__ import annotations

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from ..models import (
    ConsentEvent,
    ConsentState,
)
from .events import STATUS_AFTER


def verify(session: Session) -> list[tuple[int, int, str]]:
    """Compare every ConsentState with the fold of its events; return the mismatches."""
    folded: dict[tuple[int, int], ConsentEvent] = {}
    for ev in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)):
        folded[(ev.subject_id, ev.purpose_id)] = ev
    problems = []
    states = {(s.subject_id, s.purpose_id): s for s in session.scalars(select(ConsentState))}
    for key in folded.keys() | states.keys():
        last, state = folded.get(key), states.get(key)
        if last is None:
            problems.append((*key, "state without events"))
        elif state is None:
            problems.append((*key, "events without state"))
        elif (state.status, state.last_event_id, state.consent_text_id) != (
            STATUS_AFTER[last.action],
            last.id,
            last.consent_text_id,
        ):
            problems.append((*key, f"state {state.status} but last event {last.action}"))
    return sorted(problems)
