"""ConsentState is the fold of ConsentEvents, whatever sequence of ledger calls made them."""

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from consentsvc import ledger
from consentsvc.models import ConsentEvent, ConsentState

PURPOSES = ["newsletter", "acquisitions", "direct_marketing", "direct_debit"]
# Written out here, apart from the ledger's own table, so the test checks it.
STATUS_AFTER = {
    "requested": "pending",
    "granted": "granted",
    "withdrawn": "withdrawn",
    "objected": "objected",
}

operation = st.tuples(
    st.sampled_from(["signup", "confirm", "grant", "withdraw", "object", "withdraw_all"]),
    st.integers(min_value=0, max_value=2),
    st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=3),
)
run_ids = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    # One database for all examples is the point: each example adds its own people to it.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(operation, max_size=14))
def test_state_equals_fold_of_events(session, borne, operations):
    run = next(run_ids)
    subjects = {}
    requests: dict[int, list[int]] = {}
    for op, who, codes in operations:
        email = f"person{who}.run{run}@example.nl"
        subject = subjects.get(who)
        try:
            if op == "signup":
                result = ledger.signup(
                    session, borne, email, codes, language="nl", channel="web_form"
                )
                subjects[who] = result.subject
                requests[who] = result.request_ids
            elif subject is None:
                continue
            elif op == "confirm":
                ledger.confirm(session, subject, requests.get(who, []))
            elif op == "grant":
                ledger.grant(session, subject, codes[0], channel="staff", actor="staff:1")
            elif op == "withdraw":
                ledger.withdraw(session, subject, codes[0], channel="preference_centre")
            elif op == "object":
                ledger.object_to(session, subject, codes[0], channel="staff")
            else:
                ledger.withdraw_all(session, subject, channel="preference_centre")
        except ledger.LedgerError:
            # Refused input (e.g. signing up for direct debit) must leave nothing behind.
            session.rollback()
            subjects = {k: session.merge(v) for k, v in subjects.items() if _exists(session, v)}
            continue
        session.commit()

    last_event = {}
    for event in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)):
        last_event[(event.subject_id, event.purpose_id)] = event
    states = {(s.subject_id, s.purpose_id): s for s in session.scalars(select(ConsentState))}
    assert states.keys() == last_event.keys()
    for key, state in states.items():
        event = last_event[key]
        assert state.status == STATUS_AFTER[event.action]
        assert state.last_event_id == event.id
        assert state.consent_text_id == event.consent_text_id
        assert state.changed_at == event.occurred_at
    assert ledger.verify(session) == []


def _exists(session, subject):
    from consentsvc.models import Subject

    return session.get(Subject, subject.id) is not None
