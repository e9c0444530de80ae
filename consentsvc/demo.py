"""The four standard purposes with their wording, and two demo libraries that use them."""

from __future__ import annotations

import secrets
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import iban, ledger, outbox
from .libraries import DEFAULT_RETENTION
from .models import (
    FamilyAccess,
    LegalBasis,
    LegitimateInterest,
    Library,
    PrivacyStatement,
    SepaMandate,
    StaffRole,
    StaffUser,
    Subject,
    backdated,
    utcnow,
)

# Where a demo library's privacy statement differs from the defaults: Borne's says
# "we bewaren je gegevens maximaal 5 jaar".
OWN_RETENTION = {"borne": {"overall_maximum": 60}}
# Borne mails its members offers unless they say no (soft opt-in); Zoetermeer's statement
# promises no direct marketing based on lending data, so it retired that purpose.
OWN_LEGITIMATE_INTEREST = {"borne": LegitimateInterest.MEMBERS}
RETIRED = {"zoetermeer": ("direct_marketing",)}

LIBRARIES = [
    ("borne", "Bibliotheek Borne", "#00666e"),
    ("zoetermeer", "Bibliotheek Zoetermeer", "#7a1f5c"),
]

# code: (legal basis, double opt-in, self-service, {language: (title, body)})
PURPOSES: dict[str, tuple[str, bool, bool, dict[str, tuple[str, str]]]] = {
    "newsletter": (
        LegalBasis.CONSENT, True, True,
        {
            "nl": (
                "Nieuwsbrief",
                "Ja, stuur mij de nieuwsbrief van {library}. Daarin staan activiteiten, "
                "nieuws en tips. Je krijgt hem ongeveer één keer per maand. Afmelden kan "
                "altijd, met de link onder elke mail.",
            ),
            "en": (
                "Newsletter",
                "Yes, send me the newsletter of {library}, with activities, news and tips. "
                "It comes about once a month. You can unsubscribe at any time with the link "
                "at the bottom of every mail.",
            ),
        },
    ),
    "acquisitions": (
        LegalBasis.CONSENT, True, True,
        {
            "nl": (
                "Aanwinstenmail",
                "Ja, mail mij als {library} nieuwe boeken, films of muziek heeft. Afmelden "
                "kan altijd, met de link onder elke mail.",
            ),
            "en": (
                "New arrivals",
                "Yes, mail me when {library} has new books, films or music. You can "
                "unsubscribe at any time with the link at the bottom of every mail.",
            ),
        },
    ),
    "direct_marketing": (
        LegalBasis.LEGITIMATE_INTEREST, False, True,
        {
            "nl": (
                "Aanbiedingen voor leden",
                "Omdat je lid bent, mailen we je soms over cursussen, je lidmaatschap en "
                "acties van {library}. Wil je dat niet? Dan kun je het stoppen. Dat kan altijd.",
            ),
            "en": (
                "Offers for members",
                "Because you are a member, {library} sometimes mails you about courses, "
                "your membership and special offers. Don't want this? Then you can stop it. "
                "You can always do that.",
            ),
        },
    ),
    "direct_debit": (
        LegalBasis.CONSENT, False, False,
        {
            "nl": (
                "Automatische incasso",
                "Je betaalt je lidmaatschap van {library} met automatische incasso. Daar "
                "heb je zelf toestemming voor gegeven. Aanzetten kan alleen bij de balie. "
                "Zet je het uit? Dan betaal je op een andere manier.",
            ),
            "en": (
                "Direct debit",
                "You pay your membership of {library} by direct debit. You gave permission "
                "for this yourself. You can only switch it on at the desk. If you switch it "
                "off, you pay in another way.",
            ),
        },
    ),
}  # fmt: skip


def seed(session: Session, host: str = "lists.example.org") -> list[Library]:
    """Create (or complete) the demo libraries; running it twice changes nothing."""
    seeded = [
        setup_library(
            session,
            slug,
            name,
            colour=colour,
            host=host,
            origins=["http://127.0.0.1:8000", "http://localhost:8000"],
        )
        for slug, name, colour in LIBRARIES
    ]
    for library in seeded:
        for code in RETIRED.get(library.slug, ()):
            ledger.retire_purpose(ledger.purpose_by_code(library, code))
        give_face(session, library)
    return seeded


def setup_library(
    session: Session,
    slug: str,
    name: str,
    *,
    colour: str = "#1f4e79",
    origins: list[str] | None = None,
    host: str = "lists.example.org",
) -> Library:
    """Create a library with the four standard purposes, or add what it lacks."""
    library = session.scalar(select(Library).where(Library.slug == slug))
    if library is None:
        library = Library(
            slug=slug,
            name=name,
            colour=colour,
            allowed_origins=origins or [],
            retention={**DEFAULT_RETENTION, **OWN_RETENTION.get(slug, {})},
            legitimate_interest=OWN_LEGITIMATE_INTEREST.get(slug, LegitimateInterest.OPT_IN),
        )
        session.add(library)
        session.flush()
    for code, (basis, doi, self_service, texts) in PURPOSES.items():
        purpose = ledger.add_purpose(
            session, library, code,
            legal_basis=basis, double_opt_in=doi, self_service=self_service,
            is_mail=code != "direct_debit",
            # Payment records are kept seven years (fiscal duty), also after it stops.
            retention_days_after_withdrawal=7 * 365 if code == "direct_debit" else None,
            list_host=host,
        )  # fmt: skip
        for language, (title, body) in texts.items():
            ledger.add_text(session, purpose, language, title, body.format(library=library.name))
    return library


FIRST_NAMES = ("jan", "fatima", "pieter", "sanne", "mohamed", "anouk", "kees", "lotte", "ayse")
LAST_NAMES = ("jansen", "de.vries", "bakker", "el.amrani", "visser", "smit", "yilmaz", "mulder")


def seed_people(session: Session, library: Library, count: int) -> int:
    """Give a demo library members with real-looking histories, to try the console on.

    Addresses use example.nl (reserved, never delivered). Running it twice adds nobody new.
    Each member signed up on the website and confirmed; some also get acquisitions mails,
    some stopped the newsletter later, some object to direct marketing, some pay by direct
    debit (agreed at the desk), and each has a card number to search on. Some have a
    history years long (see seed_history), so retention has something to do.
    """
    added = 0
    for number in range(count):
        first = FIRST_NAMES[number % len(FIRST_NAMES)]
        last = LAST_NAMES[(number // len(FIRST_NAMES)) % len(LAST_NAMES)]
        email = f"{first}.{last}{number // 72 or ''}@example.nl"
        if ledger.find_subject(session, library, email) is not None:
            continue
        if _history_of(number) is not None:
            seed_history(session, library, email, number)
            added += 1
            continue
        codes = ["newsletter", "acquisitions"] if number % 3 == 0 else ["newsletter"]
        proof = ledger.Proof(origin=f"https://www.{library.slug}.example.nl", user_agent="demo")
        result = ledger.signup(
            session, library, email, codes, language="en" if number % 7 == 0 else "nl",
            channel=ledger.Channel.WEB_FORM, proof=proof,
        )  # fmt: skip
        person = result.subject
        ledger.confirm(session, person, result.request_ids)
        person.card_number = f"2{library.id:03d}{number:09d}"
        # A running membership, as the library system reports it (soft opt-in counts it).
        person.membership_started_on = date(2016 + number % 9, 1 + number % 12, 1)
        if number % 5 == 0:
            ledger.withdraw(session, person, "newsletter", channel=ledger.Channel.PREFERENCE_CENTRE)
        if number % 4 == 0:
            ledger.object_to(session, person, "direct_marketing", channel=ledger.Channel.STAFF)
        if number % 6 == 0:
            demo_mandate(session, person, number, approved=True)
        elif number == 2:
            demo_mandate(session, person, number, approved=False)  # awaiting approval
        elif number == 4:
            demo_mandate(session, person, number, approved=True, online=True)
        added += 1
    seed_family(session, library)
    if library.slug == "borne":
        added += seed_young_members(session, library)
    return added


def seed_young_members(session: Session, library: Library) -> int:
    """Young members to show the guardian's part (docs/minors.md): the library records birth
    years; Noor (12) gets the newsletter because her father agreed by mail; Daan turns 16
    this year, so his mother's role ends on 1 January. Running it twice adds nobody new."""
    library.asks_birth_year = True
    this_year = ledger.local_today().year
    added = 0
    for email, birth_year, guardian in (
        ("noor.jansen@example.nl", this_year - 12, "vader.jansen@example.nl"),
        ("daan.visser@example.nl", this_year - 16, "moeder.visser@example.nl"),
    ):
        if ledger.find_subject(session, library, email) is not None:
            continue
        person = ledger.subject_for(session, library, email, "nl")
        person.birth_year, person.guardian_email = birth_year, guardian
        result = ledger.signup(
            session, library, email, ["newsletter"], language="nl",
            channel=ledger.Channel.WEB_FORM,
            proof=ledger.Proof(origin=f"https://www.{library.slug}.example.nl", user_agent="demo"),
        )  # fmt: skip
        ledger.confirm(
            session, person, result.request_ids, by_guardian=True,
            proof=ledger.Proof(user_agent="demo", details=ledger.guardian_proof(guardian)),
        )  # fmt: skip
        added += 1
    return added


def seed_family(session: Session, library: Library) -> None:
    """One accepted family access (with a change the holder made) and one open request,
    between demo members 0 and 2, and 4 and 6; running it twice adds nothing."""
    if session.scalar(select(FamilyAccess.id).where(FamilyAccess.library_id == library.id)):
        return
    people = [
        ledger.find_subject(session, library, f"{FIRST_NAMES[n]}.{LAST_NAMES[0]}@example.nl")
        for n in (0, 2, 4, 6)
    ]
    if any(person is None for person in people):
        return
    holder, giver, asker, asked = people
    settings = {"per_day": 5, "max_age": 14 * 24 * 60 * 60}
    access = ledger.request_family_access(session, holder, giver.email, **settings)
    if access is None:
        return
    ledger.answer_family_request(session, access, accept=True, max_age=settings["max_age"])
    ledger.family_change(session, access, "acquisitions", "on")
    ledger.request_family_access(session, asker, asked.email, **settings)
    session.flush()


DAY = timedelta(days=1)


def _history_of(number: int) -> str | None:
    """Which old history demo member `number` has, if any (one in ten or so)."""
    if number % 20 == 5:
        return "mandate_ended"
    return {
        1: "never_confirmed",
        3: "stopped",
        7: "membership_ended",
        8: "old_evidence",
        9: "inactive",
    }.get(number % 10)


def seed_history(session: Session, library: Library, email: str, number: int) -> None:
    """A member whose story began years ago: a sign-up never confirmed (40 days), everything
    stopped 8 months ago, a membership ended 7 months ago, a direct-debit mandate ended 7½
    years ago, nothing heard of in 8 years, or a subscriber with evidence of 2 years ago and
    a desk note of 3 days ago."""
    kind = _history_of(number)
    proof = ledger.Proof(
        ip_address=f"192.0.2.{number % 250 + 1}",
        origin=f"https://www.{library.slug}.example.nl/nieuwsbrief",
        user_agent="Mozilla/5.0 (demo)",
    )
    started = {"never_confirmed": 40, "inactive": 8 * 365, "mandate_ended": 10 * 365}
    with backdated(started.get(kind, 2 * 365) * DAY):
        result = ledger.signup(
            session, library, email, ["newsletter"], language="nl",
            channel=ledger.Channel.WEB_FORM, proof=proof,
        )  # fmt: skip
        person = result.subject
        person.card_number = f"2{library.id:03d}{number:09d}"
        if kind == "never_confirmed":
            session.flush()
            return
        ledger.confirm(session, person, result.request_ids)
        delivered = outbox.enqueue_mail(session, library.id, "receipt", person.id)
        session.flush()
        delivered.delivered_at = delivered.created_at
    if kind == "mandate_ended":
        with backdated(10 * 365 * DAY):
            mandate = demo_mandate(session, person, number, approved=True)
        with backdated(int(7.5 * 365) * DAY):
            ledger.withdraw_all(session, person, channel=ledger.Channel.STAFF)
            ledger.end_mandate(
                session, mandate, actor=f"staff:{mandate.recorded_by}",
                channel=ledger.Channel.STAFF, proof=ledger.Proof(details={"how": "desk"}),
            )  # fmt: skip
    elif kind in ("stopped", "membership_ended"):
        if kind == "membership_ended":
            person.membership_started_on = date(2015, 9, 1)
            person.membership_ended_on = ledger.local_today() - 7 * 30 * DAY
        with backdated((8 if kind == "stopped" else 12) * 30 * DAY):
            ledger.withdraw(session, person, "newsletter", channel=ledger.Channel.EMAIL_LINK)
    elif kind == "old_evidence":
        with backdated(3 * DAY):
            ledger.grant(
                session, person, "acquisitions", channel=ledger.Channel.STAFF,
                proof=ledger.Proof(details={"how": "desk", "note": "vroeg naar de aanwinstenmail"}),
            )  # fmt: skip
    session.flush()


# Each demo library's own sender, contact and privacy officer (library_face). The addresses
# and numbers are made up for the demo.
FACES = {
    "borne": {
        "website": "https://www.bibliotheekborne.nl",
        "sender_name": "Bibliotheek Borne",
        "sender_address": "nieuwsbrief@bibliotheekborne.nl",
        "reply_to": "info@bibliotheekborne.nl",
        "postal_address": "Marktstraat 1\n7622 CP Borne",
        "contact_email": "info@bibliotheekborne.nl",
        "contact_phone": "074 266 0000",
        "privacy_officer_name": "Femke de Groot",
        "privacy_officer_email": "fg@bibliotheekborne.nl",
    },
    "zoetermeer": {
        "website": "https://www.bibliotheekzoetermeer.nl",
        "sender_name": "Bibliotheek Zoetermeer",
        "sender_address": "nieuws@bibliotheekzoetermeer.nl",
        "reply_to": "klantenservice@bibliotheekzoetermeer.nl",
        "postal_address": "Stadhuisplein 2\n2711 EC Zoetermeer",
        "contact_email": "klantenservice@bibliotheekzoetermeer.nl",
        "contact_phone": "079 300 0000",
        "privacy_officer_name": "Youssef Amrani",
        "privacy_officer_email": "privacy@bibliotheekzoetermeer.nl",
    },
}


def give_face(session: Session, library: Library) -> None:
    """Give a demo library its sender, contact, complaint link and a logo, once: what an
    admin changed later is left alone."""
    from . import library_face

    given = FACES.get(library.slug)
    if given is None or library.website is not None:
        return
    face = library_face.parse(**given, complaint_link=True, sender_domains=[])
    library_face.apply(library, face)
    library_face.store_logo(session, library, library_face.check_logo(demo_logo(library)))


def demo_logo(library: Library) -> bytes:
    """A simple PNG logo in the library's colour with its name in white."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (360, 80), library.colour)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((12, 16, 60, 64), radius=8, outline="white", width=4)
    draw.text((36, 40), library.name.split()[-1][:1], fill="white", anchor="mm",
              font=ImageFont.load_default(30))  # fmt: skip
    draw.text((76, 40), library.name, fill="white", anchor="lm", font=ImageFont.load_default(24))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# slug: (address, days since version 1 applies, version 2's summary in nl and en or None)
STATEMENTS: dict[str, tuple[str, int, tuple[str, str] | None]] = {
    "borne": (
        "https://www.bibliotheekborne.nl/privacy", 400,
        (
            "We bewaren je gegevens nu maximaal 5 jaar, niet meer 7 jaar. En je kunt nu ook "
            "toegang vragen tot de gegevens van een gezinslid. Dat kan alleen als die ander "
            "het goed vindt.",
            "We now keep your data for at most 5 years, no longer 7. And you can now ask for "
            "access to the data of a family member. That only works if the other person "
            "agrees.",
        ),
    ),
    "zoetermeer": ("https://www.bibliotheekzoetermeer.nl/privacy", 60, None),
}  # fmt: skip


def seed_statements(session: Session, library: Library, *, per_minute: int = 0) -> None:
    """Give a demo library its privacy statement: version 1, in effect for a while, and for
    Borne a version 2 published now that applies in two weeks, with its notices queued to
    the newsletter's subscribers. Running it twice adds nothing."""
    if library.slug not in STATEMENTS or ledger.newest_statement(session, library):
        return
    url, days, change = STATEMENTS[library.slug]
    # Version 1 came before anyone was told of changes here: nobody gets a notice of it.
    session.add(
        PrivacyStatement(
            library_id=library.id, version=1, url=url,
            effective_on=ledger.local_today() - days * DAY, published_at=utcnow() - days * DAY,
            published_by="demo", notices=0,
            summary_nl="De eerste versie van ons privacy statement.",
            summary_en="The first version of our privacy statement.",
        )
    )  # fmt: skip
    session.flush()
    if change is None:
        return
    draft = ledger.check_statement_draft(
        session, library, url=f"{url}?versie=2", effective_on=ledger.local_today() + 14 * DAY,
        summary_nl=change[0], summary_en=change[1],
    )  # fmt: skip
    ledger.publish_statement(
        session, library, draft, actor="demo", expected_version=2, per_minute=per_minute
    )


# The demo libraries' creditor identifiers (valid check digits, made-up KvK numbers).
CREDITOR_IDS = {"borne": "NL28ZZZ401234560000", "zoetermeer": "NL69ZZZ123456780000"}
# Demo staff who record and approve the demo mandates; their accounts are closed, so nobody
# logs in with them (make your own with `consentsvc staff create`).
DEMO_STAFF = (("balie", "Demo balie", StaffRole.DESK), ("fg", "Demo FG", StaffRole.PRIVACY_OFFICER))


def demo_mandate(
    session: Session, person: Subject, number: int, *, approved: bool, online: bool = False
) -> SepaMandate:
    """A direct-debit mandate for a demo member: recorded at the desk by the demo desk
    account, approved (or not yet) by the demo privacy officer. An online one gets its
    confirmation mail, so the member's side can be tried from the mail folder."""
    from flask import current_app

    library = person.library
    desk, officer = (_demo_staff(session, library, *account) for account in DEMO_STAFF)
    given = ledger.MandateInput(
        reference=f"{library.slug.upper()}-{number:05d}",
        creditor_id=CREDITOR_IDS.get(library.slug, CREDITOR_IDS["borne"]),
        iban=demo_iban(library.id * 100_000 + number),
        holder=person.email.split("@")[0].replace(".", " ").title(),
        signed_on=ledger.local_today().isoformat(),
        signed_place=library.name.removeprefix("Bibliotheek "),
        signed_how="online" if online else "paper",
    )
    vault = iban.Vault(current_app.config["IBAN_KEY"])
    mandate = ledger.record_mandate(session, person, given, staff=desk, vault=vault)
    if approved:
        ledger.approve_mandate(session, mandate, staff=officer)
        if online:
            outbox.enqueue_mail(
                session, library.id, "mandate_confirm", person.id, mandate_id=mandate.id
            )
    return mandate


def demo_iban(number: int) -> str:
    """A valid Dutch IBAN for a demo member (bank code INGB, account from the number)."""
    account = f"{number % 10**10:010d}"
    digits = 98 - iban.mod97(f"INGB{account}NL00")
    return f"NL{digits:02d}INGB{account}"


def _demo_staff(
    session: Session, library: Library, name: str, full_name: str, role: str
) -> StaffUser:
    from . import staff as staff_accounts

    email = f"{name}.demo@{library.slug}.example.nl"
    user = session.scalar(select(StaffUser).where(StaffUser.email == email))
    if user is None:
        password = secrets.token_urlsafe(24)  # thrown away: the account is closed at once
        user = staff_accounts.create(session, library, email, full_name, role, password)
        user.active = False
    return user


# The one console login of the demo, made active (the demo desk and FG accounts are not).
DEMO_LOGIN = "demo.beheer@example.nl"


def demo_login(session: Session, libraries: list[Library]) -> str:
    """An admin for the demo libraries with a new random password each time; returns it.

    Printed by `consentsvc demo` so a newcomer can try the console; the command refuses
    in production, so this account exists only where the demo data does.
    """
    from . import staff as staff_accounts

    password = secrets.token_urlsafe(12)
    user = session.scalar(select(StaffUser).where(StaffUser.email == DEMO_LOGIN))
    if user is None:
        user = staff_accounts.create(
            session, libraries[0], DEMO_LOGIN, "Demo beheer", StaffRole.ADMIN, password
        )
    else:
        staff_accounts.reset_password(user, password)
    for library in libraries[1:]:
        staff_accounts.add_library(user, library)
    return password
