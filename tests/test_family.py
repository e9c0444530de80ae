"""Family access: a member manages another member's mail settings only after the other
accepted; what the holder sees never tells a known address from an unknown one, nor a
refusal from no answer; every change is the giver's ledger event with the holder as actor."""

import re
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import func, select

from consentsvc import ledger, tokens
from consentsvc.extensions import db
from consentsvc.models import ConsentEvent, FamilyAccess, Library, OutboxMessage, Subject

from .conftest import work_outbox
from .test_admin import log_in
from .test_enumeration import statements

HOLDER = "jan@example.nl"
GIVER = "piet@example.nl"


def people(app, *emails, library="borne"):
    """Members who signed up for the newsletter and confirmed; their subject ids."""
    ids = []
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == library))
        for email in emails:
            result = ledger.signup(
                db.session, lib, email, ["newsletter"], language="nl", channel="web_form"
            )
            ledger.confirm(db.session, result.subject, result.request_ids)
            ids.append(result.subject.id)
        db.session.commit()
    return ids


def centre(app, subject_id):
    with app.test_request_context():
        return f"/preferences/{tokens.make_preferences(subject_id)}"


def ask(client, app, holder_id, email, url=None, **headers):
    url = url or f"{centre(app, holder_id)}/family"
    return client.post(url, data={"email": email}, headers=headers)


def accesses(app):
    with app.app_context():
        rows = db.session.scalars(select(FamilyAccess).order_by(FamilyAccess.id)).all()
        return [(r.holder_id, r.giver_id, r.status, r.ended_by) for r in rows]


def answer_link(message):
    match = re.search(r"http://localhost(/family/[A-Za-z0-9_.\-]+)", message.body)
    assert match, "no answer link in mail"
    return match.group(1)


def accepted(app, client, outbox, holder_id, giver_id):
    """Ask and accept; the access id."""
    with app.app_context():
        giver_email = db.session.get(Subject, giver_id).email
    assert ask(client, app, holder_id, giver_email).status_code == 303
    request_mail = outbox[-1]
    assert request_mail.recipients == [giver_email]
    page = client.post(answer_link(request_mail), data={"choice": "accept"})
    assert page.status_code == 200, page.get_data(as_text=True)
    with app.app_context():
        return db.session.scalar(
            select(FamilyAccess.id).where(
                FamilyAccess.holder_id == holder_id,
                FamilyAccess.giver_id == giver_id,
                FamilyAccess.status == "accepted",
            )
        )


def test_request_accept_and_a_change_by_the_delegate(app, client, outbox):
    holder_id, giver_id = people(app, HOLDER, GIVER)
    response = ask(client, app, holder_id, GIVER)
    assert response.status_code == 303
    assert "family=asked" in response.headers["Location"]
    # Nothing is shared before the other accepts.
    assert GIVER not in client.get(response.headers["Location"]).get_data(as_text=True)

    assert len(outbox) == 1
    mail = outbox[0]
    assert mail.recipients == [GIVER]
    assert mail.subject == "Iemand wil jouw mailinstellingen bij Bibliotheek Borne beheren"
    assert f"{HOLDER} wil jouw mailinstellingen bij Bibliotheek Borne beheren." in mail.body
    link = answer_link(mail)
    # The link scanner's GET changes nothing.
    page = client.get(link)
    assert page.status_code == 200
    assert HOLDER in page.get_data(as_text=True)
    assert "Ja, dat is goed" in page.get_data(as_text=True)
    assert accesses(app) == [(holder_id, giver_id, "requested", None)]

    page = client.post(link, data={"choice": "accept"})
    assert "Je zei ja" in page.get_data(as_text=True)
    assert accesses(app) == [(holder_id, giver_id, "accepted", None)]
    # A second answer changes nothing.
    assert client.post(link, data={"choice": "refuse"}).status_code == 409
    assert accesses(app)[0][2] == "accepted"

    holder_page = client.get(centre(app, holder_id)).get_data(as_text=True)
    assert f"Mailinstellingen van {GIVER}" in holder_page
    # The other person's mails are switches too, named by mail, person and state.
    switches = re.findall(
        r'<button type="submit" class="switch" role="switch" aria-checked="(\w+)" '
        r'id="family-\d+-toggle-(\w+)"><span class="visually-hidden">([^<]+)</span>',
        holder_page,
    )
    assert ("false", "acquisitions", f"Aanwinstenmail, {GIVER}: ") in switches
    giver_page = client.get(centre(app, giver_id)).get_data(as_text=True)
    assert "Mensen die jouw mailinstellingen beheren" in giver_page
    assert HOLDER in giver_page

    with app.app_context():
        access_id = db.session.scalar(select(FamilyAccess.id))
    response = client.post(
        f"{centre(app, holder_id)}/family/change",
        data={"access": access_id, "purpose": "acquisitions", "choice": "on"},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"#family-{access_id}")
    with app.app_context():
        giver = db.session.get(Subject, giver_id)
        lib = giver.library
        assert ledger.status_of(db.session, giver, ledger.purpose_by_code(lib, "acquisitions")) == (
            "granted"
        )
        last = db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subject_id == giver_id)
            .order_by(ConsentEvent.id.desc())
        ).first()
        assert (last.action, last.channel, last.actor) == (
            "granted",
            "family",
            f"family:{holder_id}",
        )
        assert last.evidence is not None  # the holder's request is the proof
        # Nothing was recorded on the holder's own ledger.
        holder_events = db.session.scalars(
            select(ConsentEvent.channel).where(ConsentEvent.subject_id == holder_id)
        ).all()
        assert "family" not in holder_events
    told = outbox[-1]
    assert told.recipients == [GIVER]
    assert (
        told.subject == "Een familielid heeft je mailinstellingen bij Bibliotheek Borne veranderd"
    )
    assert f"{HOLDER} heeft deze mail voor jou aangezet: Aanwinstenmail." in told.body

    # The giver's history names the delegate.
    history = client.get(f"{centre(app, giver_id)}/history").get_data(as_text=True)
    assert "Door een familielid aan wie je toegang gaf" in history
    assert f"({HOLDER})" in history
    # And so does the staff console's timeline.
    staff = log_in(app, "desk")
    timeline = staff.get(f"/admin/subjects/{giver_id}").get_data(as_text=True)
    assert f"een gezinslid met toegang ({HOLDER})" in timeline
    assert f"Mailinstellingen beheerd door {HOLDER}" in timeline
    holder_record = staff.get(f"/admin/subjects/{holder_id}").get_data(as_text=True)
    assert f"Beheert de mailinstellingen van {GIVER}" in holder_record

    # Switching off is told too; a change that changes nothing mails nobody.
    client.post(
        f"{centre(app, holder_id)}/family/change",
        data={"access": access_id, "purpose": "acquisitions", "choice": "off"},
    )
    assert f"{HOLDER} heeft deze mail voor jou uitgezet: Aanwinstenmail." in outbox[-1].body
    sent = len(outbox)
    client.post(
        f"{centre(app, holder_id)}/family/change",
        data={"access": access_id, "purpose": "acquisitions", "choice": "off"},
    )
    assert len(outbox) == sent


def test_the_delegate_cannot_do_what_the_giver_could_not(app, client, outbox):
    holder_id, giver_id, stranger_id = people(app, HOLDER, GIVER, "kees@example.nl")
    access_id = accepted(app, client, outbox, holder_id, giver_id)
    url = f"{centre(app, holder_id)}/family/change"

    def events():
        with app.app_context():
            return db.session.scalar(select(func.count(ConsentEvent.id)))

    with app.app_context():
        giver = db.session.get(Subject, giver_id)
        ledger.grant(db.session, giver, "direct_debit", channel="staff", actor="staff:1")
        db.session.commit()
    page = client.get(centre(app, holder_id)).get_data(as_text=True)
    assert f"family-{access_id}-direct_debit" not in page  # not mail: not shown
    before = events()
    # Direct debit needs a signed mandate and ends at the desk; an unknown purpose; a
    # choice that is none.
    for data in (
        {"access": access_id, "purpose": "direct_debit", "choice": "on"},
        {"access": access_id, "purpose": "direct_debit", "choice": "off"},
        {"access": access_id, "purpose": "nonsense", "choice": "on"},
        {"access": access_id, "purpose": "newsletter", "choice": "maybe"},
    ):
        assert client.post(url, data=data).status_code == 400, data
    # Someone else's access, or none: the stranger holds nothing.
    response = client.post(
        f"{centre(app, stranger_id)}/family/change",
        data={"access": access_id, "purpose": "newsletter", "choice": "off"},
    )
    assert response.status_code == 400
    assert "Deze toegang is al gestopt" in response.get_data(as_text=True)
    assert events() == before


def test_either_side_ends_the_access_and_the_other_is_told(app, client, outbox):
    holder_id, giver_id = people(app, HOLDER, GIVER)
    access_id = accepted(app, client, outbox, holder_id, giver_id)
    response = client.post(f"{centre(app, holder_id)}/family/end", data={"access": access_id})
    assert response.status_code == 303
    assert accesses(app) == [(holder_id, giver_id, "ended", "holder")]
    mail = outbox[-1]
    assert mail.recipients == [GIVER]
    assert f"{HOLDER} beheert jouw mailinstellingen niet meer." in mail.body
    assert GIVER not in client.get(centre(app, holder_id)).get_data(as_text=True)
    # Ended is ended: changes and a second stop are refused.
    change = client.post(
        f"{centre(app, holder_id)}/family/change",
        data={"access": access_id, "purpose": "newsletter", "choice": "off"},
    )
    assert change.status_code == 400
    assert (
        client.post(f"{centre(app, giver_id)}/family/end", data={"access": access_id}).status_code
        == 400
    )

    # Asked again and accepted; this time the giver stops it.
    second = accepted(app, client, outbox, holder_id, giver_id)
    response = client.post(f"{centre(app, giver_id)}/family/end", data={"access": second})
    assert response.status_code == 303
    assert accesses(app)[-1] == (holder_id, giver_id, "ended", "giver")
    mail = outbox[-1]
    assert mail.recipients == [HOLDER]
    assert f"{GIVER} heeft jouw toegang gestopt." in mail.body
    assert GIVER not in client.get(centre(app, holder_id)).get_data(as_text=True)


def test_a_refusal_is_never_shown_to_the_requester(app, client, outbox):
    holder_id, giver_id = people(app, HOLDER, GIVER)
    ask(client, app, holder_id, GIVER)
    link = answer_link(outbox[-1])
    own_page = centre(app, holder_id)  # one link: its spelling is in every form
    waiting = client.get(own_page).get_data(as_text=True)
    page = client.post(link, data={"choice": "refuse"})
    assert "Je zei nee" in page.get_data(as_text=True)
    assert accesses(app) == [(holder_id, giver_id, "refused", None)]
    # The requester's page is the same as while the request waited, and no mail tells them.
    assert client.get(own_page).get_data(as_text=True) == waiting
    assert all(HOLDER not in m.recipients for m in outbox)
    # Asking again soon after a refusal mails nobody, and answers the same.
    sent = len(outbox)
    again = ask(client, app, holder_id, GIVER)
    assert again.status_code == 303 and "family=asked" in again.headers["Location"]
    assert len(outbox) == sent
    assert len(accesses(app)) == 1


def test_another_library_is_never_reached(app, client, outbox):
    (holder_id,) = people(app, HOLDER)
    (elsewhere_id,) = people(app, GIVER, library="zoetermeer")
    response = ask(client, app, holder_id, GIVER)
    assert response.status_code == 303
    assert len(outbox) == 0
    assert accesses(app) == []
    # Nor with a token of one library on the other's access.
    with app.test_request_context():
        forged = tokens.make_family(1, elsewhere_id)
    assert client.get(f"/family/{forged}").status_code == 400


def test_a_known_and_an_unknown_address_look_the_same(app, client, outbox):
    holder_id, _giver_id = people(app, HOLDER, GIVER)
    ask(client, app, holder_id, "warm-up@example.nl")  # first requests load what later reuse
    work_outbox(app)
    shapes = {}
    # One link for all: a token made a second later is spelled differently, in every form.
    url = f"{centre(app, holder_id)}/family"
    for kind, email in (("unknown", "nobody@example.nl"), ("known", GIVER)):
        for via_htmx in (False, True):
            headers = {"HX-Request": "true"} if via_htmx else {}
            with statements(app) as seen:
                response = ask(client, app, holder_id, email, url=url, **headers)
            shapes[kind, via_htmx] = (
                response.status_code,
                response.headers.get("Location"),
                response.get_data(as_text=True),
                seen,
            )
            with app.app_context():
                row = db.session.scalars(
                    select(OutboxMessage).order_by(OutboxMessage.id.desc())
                ).first()
                shapes[kind, via_htmx] += (
                    row.channel,
                    row.event_type,
                    sorted(row.payload),
                    row.payload["holder_id"],
                )
    for via_htmx in (False, True):
        assert shapes["unknown", via_htmx] == shapes["known", via_htmx], via_htmx
    assert shapes["unknown", False][0] == 303
    assert "kennen we dit adres?" in shapes["unknown", True][2].lower()
    assert any(s.startswith("INSERT INTO outbox_message") for s in shapes["unknown", False][3])
    # Only afterwards, in the worker, does the known address get its one mail.
    assert [m.recipients for m in outbox] == [[GIVER]]
    with app.app_context():
        for row in db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == "request")
        ):
            assert "email" not in row.payload  # the address is gone once decided


def test_bad_addresses_and_ones_own_are_refused_with_nothing_queued(app, client, outbox):
    (holder_id,) = people(app, HOLDER)
    for email, message in (
        ("", "Vul het e-mailadres van de ander in."),
        ("not an address", "Vul een geldig e-mailadres in"),
        (HOLDER.upper(), "Dit is je eigen adres."),
    ):
        response = ask(client, app, holder_id, email)
        assert response.status_code == 400, email
        page = response.get_data(as_text=True)
        assert message in page, email
        assert 'aria-invalid="true" aria-describedby="family-email-error"' in page
        # Without JavaScript the address bar shows the form's address: a reload leads back.
        back = client.get(f"{centre(app, holder_id)}/family")
        assert back.status_code == 303
        assert back.headers["Location"].endswith("#family")
        assert '<li><a href="#family-email">' in page  # the summary, as on every member form
    fragment = ask(client, app, holder_id, "nope", **{"HX-Request": "true"})
    assert fragment.status_code == 400
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="family"')
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage.id)) is None
    assert len(outbox) == 0


def test_repeats_and_floods_mail_nobody_twice(app, client, outbox):
    emails = [f"lid{n}@example.nl" for n in range(8)]
    holder_id, *_others = people(app, HOLDER, *emails)
    for _ in range(3):
        ask(client, app, holder_id, emails[0])
    assert len(outbox) == 1  # one open request per pair
    for email in emails[1:]:
        ask(client, app, holder_id, email)
    # FAMILY_REQUESTS_PER_DAY (5) mails a day, whatever was asked.
    assert len(outbox) == 5
    # Nor can many askers fill one inbox: at most three requests wait for one person.
    (_giver_id, *askers) = people(app, GIVER, *[f"vrager{n}@example.nl" for n in range(5)])
    for asker in askers:
        ask(client, app, asker, GIVER)
    assert sum(m.recipients == [GIVER] for m in outbox) == 3
    # Oneself, by another spelling of the address, is never a request.
    with app.app_context():
        holder = db.session.get(Subject, holder_id)
        assert (
            ledger.request_family_access(
                db.session, holder, "JAN@example.nl", per_day=9, max_age=99
            )
            is None
        )


def test_a_request_lapses(app, client, outbox):
    holder_id, giver_id = people(app, HOLDER, GIVER)
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        ask(client, app, holder_id, GIVER)
        link = answer_link(outbox[-1])
    with time_machine.travel(start + timedelta(days=13), tick=False):
        assert client.get(link).status_code == 200
    with time_machine.travel(start + timedelta(days=15), tick=False):
        page = client.get(link)
        assert page.status_code == 410
        assert "te lang op antwoord" in page.get_data(as_text=True)
        assert client.post(link, data={"choice": "accept"}).status_code == 410
        assert accesses(app) == [(holder_id, giver_id, "requested", None)]
        # A lapsed request no longer holds the pair back: asking again mails again.
        ask(client, app, holder_id, GIVER)
        assert len(outbox) == 2


def test_answer_links_that_are_not_genuine(app, client, outbox):
    holder_id, giver_id = people(app, HOLDER, GIVER)
    ask(client, app, holder_id, GIVER)
    link = answer_link(outbox[-1])
    with app.test_request_context():
        other_kind = tokens.make_preferences(giver_id)
        wrong_person = tokens.make_family(1, holder_id)
    for bad in (f"/family/{other_kind}", f"/family/{wrong_person}", link[:-2] + "xx"):
        response = client.post(bad, data={"choice": "accept"})
        assert response.status_code == 400, bad
        assert "Deze link werkt niet" in response.get_data(as_text=True)
    assert client.post(link, data={"choice": "yes"}).status_code == 400
    assert accesses(app) == [(holder_id, giver_id, "requested", None)]


def test_erasure_or_restriction_of_either_ends_the_access(app, client, outbox):
    holder_id, giver_id, third_id = people(app, HOLDER, GIVER, "kees@example.nl")
    first = accepted(app, client, outbox, holder_id, giver_id)
    second = accepted(app, client, outbox, third_id, holder_id)
    # An open request from the giver to the third person goes too.
    ask(client, app, giver_id, "kees@example.nl")
    work_outbox(app)
    with app.app_context():
        giver = db.session.get(Subject, giver_id)
        ledger.erase(
            db.session, giver, suppression_key="test-suppression-key", actor="staff:1",
            identification="pas getoond",
        )  # fmt: skip
        db.session.commit()
    rows = accesses(app)
    assert rows[0] == (holder_id, giver_id, "ended", "erasure")
    assert rows[2] == (giver_id, third_id, "ended", "erasure")
    assert rows[1][2] == "accepted"
    assert "erased:" not in client.get(centre(app, holder_id)).get_data(as_text=True)
    response = client.post(
        f"{centre(app, holder_id)}/family/change",
        data={"access": first, "purpose": "newsletter", "choice": "on"},
    )
    assert response.status_code == 400

    with app.app_context():
        ledger.restrict(db.session, db.session.get(Subject, holder_id))
        db.session.commit()
        ledger.lift_restriction(db.session, db.session.get(Subject, holder_id))
        db.session.commit()
    assert accesses(app)[1] == (third_id, holder_id, "ended", "restriction")
    assert second is not None


def test_the_demo_has_one_accepted_access_and_one_open_request(app):
    from consentsvc.demo import seed_people

    with app.app_context():
        borne = db.session.scalar(select(Library).where(Library.slug == "borne"))
        seed_people(db.session, borne, 10)
        seed_people(db.session, borne, 10)  # twice adds nothing
        db.session.commit()
        rows = db.session.scalars(
            select(FamilyAccess).where(FamilyAccess.library_id == borne.id)
        ).all()
        assert sorted(r.status for r in rows) == ["accepted", "requested"]
        done = next(r for r in rows if r.status == "accepted")
        change = db.session.scalar(select(ConsentEvent).where(ConsentEvent.channel == "family"))
        assert change.subject_id == done.giver_id
        assert change.actor == f"family:{done.holder_id}"


def test_the_data_copy_shows_what_each_side_may_know(app, client, outbox):
    import jsonschema

    from .test_rights import SCHEMA

    holder_id, giver_id, refuser_id = people(app, HOLDER, GIVER, "kees@example.nl")
    ask(client, app, holder_id, "kees@example.nl")
    client.post(answer_link(outbox[-1]), data={"choice": "refuse"})
    ask(client, app, holder_id, "nobody@example.nl")
    ask(client, app, holder_id, GIVER)
    work_outbox(app)

    def copy(subject_id):
        data = client.get(f"{centre(app, subject_id)}/data?format=json").get_json()
        jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
        return [(row["role"], row["other"], row["status"]) for row in data["family_access"]]

    # Open, refused and unknown requests look alike to the asker: none is in their copy.
    assert copy(holder_id) == []
    assert copy(refuser_id) == [("giver", HOLDER, "refused")]
    assert copy(giver_id) == [("giver", HOLDER, "requested")]
    client.post(answer_link(outbox[-1]), data={"choice": "accept"})
    assert copy(holder_id) == [("holder", GIVER, "accepted")]
    assert copy(giver_id) == [("giver", HOLDER, "accepted")]
    # The page to read along says the same, in the member's words.
    page = client.get(f"{centre(app, holder_id)}/data").get_data(as_text=True)
    assert f"Je beheert de mailinstellingen van {GIVER}: loopt" in page
    assert "kees@example.nl" not in page and "nobody@example.nl" not in page
    page = client.get(f"{centre(app, refuser_id)}/data").get_data(as_text=True)
    assert f"{HOLDER} vroeg om jouw mailinstellingen te beheren: je zei nee" in page
