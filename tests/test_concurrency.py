"""Two requests at once for the same new address make one person, with both requests kept."""

import threading

from sqlalchemy import func, select

from consentsvc import ledger
from consentsvc.extensions import db
from consentsvc.models import ConsentEvent, Subject


def test_simultaneous_signups_for_one_new_address(app):
    barrier = threading.Barrier(4)
    failures = []

    def sign_up(code):
        client = app.test_client(use_cookies=False)
        barrier.wait()
        response = client.post(
            "/borne/signup",
            data={"email": "same@example.nl", "purpose": code},
            headers={"Origin": "http://127.0.0.1:8000"},
        )
        if response.status_code != 200:
            failures.append(response.status_code)

    threads = [
        threading.Thread(target=sign_up, args=(code,))
        for code in ("newsletter", "acquisitions", "newsletter", "acquisitions")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subject)) == 1
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 4
        assert ledger.verify(db.session) == []
