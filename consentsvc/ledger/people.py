"""Finding a person by address, and creating them the first time they appear."""

from __future__ import annotations

from sqlalchemy import (
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import (
    Library,
    Subject,
)
from .addresses import normalise_email
from .errors import InvalidEmail


def find_subject(session: Session, library: Library, email: str) -> Subject | None:
    """Look a person up by address (normalised here); None if unknown or invalid."""
    try:
        email = normalise_email(email)
    except InvalidEmail:
        return None
    return session.scalar(
        select(Subject).where(Subject.library_id == library.id, Subject.email == email)
    )


def subject_for(session: Session, library: Library, email: str, language: str) -> Subject:
    """Return the subject with this address, creating it if it is new."""
    email = normalise_email(email)
    subject = find_subject(session, library, email)
    if subject is not None:
        return subject
    subject = Subject(library_id=library.id, email=email, language=language)
    try:
        with session.begin_nested():
            session.add(subject)
    except IntegrityError:
        # Someone else created it between our look-up and our insert.
        subject = find_subject(session, library, email)
        assert subject is not None
    return subject
