"""How long do a privacy officer's three requests take in the console, in a real browser?

Starts the service (as the browser tests do: a real port, the outbox worker, an SMTP sink,
the demo libraries with demo members), logs in as a privacy officer in Chromium, and
prints the wall-clock seconds of each request from the search page to its result, as the
officer would wait for them. Browser start and login are not part of the three numbers.
The goal (issue 5) is under a minute each.

    .venv/bin/python bench/console_walkthrough.py [--people N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser.live import CHROMIUM, CHROMIUM_ARGS, LiveService, log_in

GOAL_SECONDS = 60
# Demo members (consentsvc.demo.seed_people) handled in each request.
ACCESS, ERASURE, OBJECTION = (
    "pieter.jansen@example.nl",
    "sanne.jansen@example.nl",
    "fatima.jansen@example.nl",
)


def find_and_open(page: Page, address: str) -> None:
    """Type the start of the address, wait for the results (htmx), open the person."""
    page.goto("/admin/")
    page.fill("#q", address.split("@")[0])
    page.locator("#results a", has_text=address).click()
    expect(page.locator("h1")).to_have_text(address)


def access_request(page: Page) -> None:
    find_and_open(page, ACCESS)
    page.fill("#export-identification", "Pas en geboortedatum gezien")
    page.click("form[action$='/export'] button[type=submit]")
    expect(page.locator("dl.facts")).to_contain_text(ACCESS)


def erasure_request(page: Page) -> None:
    find_and_open(page, ERASURE)
    page.fill("#erase-identification", "Pas gezien aan de balie")
    page.check("#confirm")
    page.click("form[action$='/erase'] button[type=submit]")
    page.wait_for_selector("main [role=status]")


def objection(page: Page) -> None:
    find_and_open(page, OBJECTION)
    page.select_option("#stop-purpose", "direct_marketing")
    page.check("#objection")
    page.fill("#stop-note", "Belde op, wil geen aanbiedingen meer")
    page.click("form[action$='/stop'] button[type=submit]")
    page.wait_for_selector(".notice[role=status]")


TASKS: list[tuple[str, Callable[[Page], None]]] = [
    ("(a) access request: search, open, identify, export page", access_request),
    ("(b) erasure request: search, open, identify, confirm, erase", erasure_request),
    ("(c) objection to direct marketing: search, open, record", objection),
]


def main(people: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        live = LiveService(Path(folder), people=people)
        print(f"service with {people} demo members per library ready in "
              f"{time.perf_counter() - started:.1f} s at {live.base_url}")  # fmt: skip
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(base_url=live.base_url)
                context.set_default_timeout(GOAL_SECONDS * 1000)
                page = context.new_page()
                started = time.perf_counter()
                log_in(page, live.staff["privacy_officer"])
                print(f"{'log in as privacy officer':62} {time.perf_counter() - started:6.2f} s")
                worst = 0.0
                for label, task in TASKS:
                    started = time.perf_counter()
                    task(page)
                    took = time.perf_counter() - started
                    worst = max(worst, took)
                    print(f"{label:62} {took:6.2f} s")
                verdict = "within" if worst < GOAL_SECONDS else "NOT within"
                print(f"slowest {worst:.2f} s: {verdict} the goal of {GOAL_SECONDS} s each")
                browser.close()
        finally:
            live.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=500, help="demo members per library")
    main(parser.parse_args().people)
