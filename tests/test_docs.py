"""The documents state the numbers the code uses: each is read from both, so they cannot drift."""

import re
from datetime import timedelta
from pathlib import Path

from consentsvc import outbox
from consentsvc.config import DEFAULTS

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "eight": 8, "ten": 10}
WORDS = {number: word for word, number in NUMBERS.items()}
# connect, EHLO, STARTTLS, EHLO, AUTH, MAIL FROM, RCPT TO, DATA: each may take MAIL_TIMEOUT.
SMTP_EXCHANGES = 8


def _operations() -> str:
    return " ".join(OPERATIONS.read_text().split())  # sentences as one line, however wrapped


def test_the_outbox_lease_in_the_docs_is_the_one_in_the_code():
    text = _operations()
    said = re.search(r"holds each for (\w+) minutes \(`outbox\.LEASE`\)", text)
    assert said, "docs/operations.md no longer says how long the worker holds a message"
    assert timedelta(minutes=NUMBERS[said[1]]) == outbox.LEASE
    late = re.search(r"once the hold runs out: at most (\w+) minutes late", text)
    assert late and timedelta(minutes=NUMBERS[late[1]]) == outbox.LEASE


def test_the_lease_outlasts_one_delivery_attempt():
    """While a worker holds a message no other takes it; if the hold ran out while the
    message is on its way, a second worker would send it again."""
    mail_timeout = DEFAULTS["MAIL_TIMEOUT"]
    assert outbox.LEASE.total_seconds() >= SMTP_EXCHANGES * mail_timeout
    webhook = outbox.TIMEOUT
    budget = outbox.SEND_BUDGET.total_seconds()
    assert budget >= mail_timeout and budget >= webhook.connect + webhook.write + webhook.read

    text = _operations()
    assert f"(`CONSENTSVC_MAIL_TIMEOUT`, {mail_timeout} s by default)" in text
    assert f"one mail takes about {WORDS[SMTP_EXCHANGES]}" in text
    assert f"at least `outbox.SEND_BUDGET` ({budget:.0f} s)" in text
    assert (
        f"time-outs are {webhook.connect:.0f} s to connect and {webhook.read:.0f} s for "
        "sending the request and for the answer (`outbox.TIMEOUT`)" in text
    )
    assert webhook.write == webhook.read


def test_the_retry_schedule_in_the_docs_is_the_one_in_the_code():
    said = re.search(r"a failure is retried after ([^(]+) \(±10 %", _operations())
    assert said, "docs/operations.md no longer gives the retry schedule"
    units = {"s": 1, "min": 60, "h": 3600}
    steps = [step.split() for step in re.split(r", | and ", said[1])]
    assert tuple(int(n) * units[unit] for n, unit in steps) == outbox.RETRY_DELAYS
