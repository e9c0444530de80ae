"""The service as others install it: a wheel built by the standard front-end from its sdist,
installed into a fresh venv without the checkout, and run from another directory.

To stay fast and offline, the fresh venv gets the project with `--no-deps` and sees the
dependencies through a .pth line naming this venv's site-packages; that directory is added
as a plain path, so the editable install's own .pth there is never run and `consentsvc`
is imported from the new venv.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from . import servers
from .conftest import TEST_CONFIG

ROOT = Path(__file__).resolve().parent.parent
HTMX = Path("consentsvc/static/vendor/htmx.min.js")
# In a parallel run both tests go to one worker, so the wheel (the `installed` fixture) is
# built once.
pytestmark = pytest.mark.xdist_group("wheel")


@dataclass
class Installed:
    sdist: Path
    wheel: Path
    venv: Path
    work: Path
    env: dict[str, str]

    def run(self, *args: str | Path, **settings: str) -> subprocess.CompletedProcess[str]:
        """Run a command of the installed venv from a directory outside the checkout."""
        done = subprocess.run(  # noqa: S603 - the project's own commands
            [str(a) for a in args],
            cwd=self.work,
            env={**self.env, **{f"CONSENTSVC_{k}": v for k, v in settings.items()}},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done


def _fresh_clone(target: Path) -> None:
    """What a clone holds (tracked and new files, nothing git-ignored), plus htmx when the
    checkout has it: it comes from npm before a build. No compiled catalogue is copied, so
    the build has to make them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in [*filter(None, listed.split("\0")), str(HTMX)]:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    assert not list(target.rglob("*.mo"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    source, dist, venv, work = (base / name for name in ("source", "dist", "venv", "elsewhere"))
    work.mkdir()
    _fresh_clone(source)
    # Without --sdist or --wheel, build makes the sdist and then the wheel from that sdist.
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, source],
        capture_output=True,
        check=True,
        timeout=300,
    )
    (sdist,) = dist.glob("consentsvc-*.tar.gz")
    (wheel,) = dist.glob("consentsvc-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)  # noqa: S603
    purelib = subprocess.run(  # noqa: S603
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    subprocess.run(  # noqa: S603
        [*pip, "install", "--quiet", "--no-deps", "--no-index", wheel],
        capture_output=True,
        check=True,
        timeout=120,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSENTSVC_", "PYTHON"))}
    env.update(
        {
            "CONSENTSVC_DATABASE_URL": f"sqlite:///{base / 'consentsvc.sqlite'}",
            "CONSENTSVC_SECRET_KEY": TEST_CONFIG["SECRET_KEY"],
            "CONSENTSVC_SUPPRESSION_KEY": TEST_CONFIG["SUPPRESSION_KEY"],
            "CONSENTSVC_MAIL_DIR": str(base / "mail"),
        }
    )
    yield Installed(sdist=sdist, wheel=wheel, venv=venv, work=work, env=env)


def test_sdist_has_the_sources_and_the_wheel_what_the_service_needs(installed):
    with tarfile.open(installed.sdist) as sdist:
        in_sdist = {name.partition("/")[2] for name in sdist.getnames()}
    with zipfile.ZipFile(installed.wheel) as wheel:
        in_wheel = set(wheel.namelist())
    for language in ("nl", "en"):
        catalogue = f"consentsvc/translations/{language}/LC_MESSAGES/messages"
        assert f"{catalogue}.po" in in_sdist and f"{catalogue}.mo" not in in_sdist
        assert f"{catalogue}.mo" in in_wheel
    migrations = {
        "consentsvc/migrations/alembic.ini",
        "consentsvc/migrations/env.py",
        "consentsvc/migrations/script.py.mako",
    }
    revisions = {str(p.relative_to(ROOT)) for p in ROOT.glob("consentsvc/migrations/versions/*.py")}
    assert revisions and migrations | revisions <= in_sdist & in_wheel
    # htmx is in the wheel exactly when it was there at build time (see README: Deploying).
    assert (str(HTMX) in in_wheel) == (ROOT / HTMX).is_file()
    assert not [name for name in in_wheel if name.startswith(("tests/", "migrations/"))]


def test_the_installed_wheel_runs_the_journey_in_dutch(installed):
    python = installed.venv / "bin" / "python"
    where = installed.run(python, "-c", "import consentsvc; print(consentsvc.__file__)").stdout
    assert Path(where.strip()).is_relative_to(installed.venv)

    consentsvc = installed.venv / "bin" / "consentsvc"
    assert "Running upgrade" in installed.run(consentsvc, "db", "upgrade").stderr
    assert "borne: Bibliotheek Borne" in installed.run(consentsvc, "demo").stdout

    port = servers.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**installed.env, "CONSENTSVC_BASE_URL": base}  # where the mail's links point
    log = installed.work / "gunicorn.log"
    with (
        servers.gunicorn(
            env=env, log=log, port=port, command=(python, "-m", "gunicorn"), cwd=installed.work
        ),
        httpx.Client(base_url=base, timeout=30) as web,
    ):
        page = web.get("/borne/signup").text
        assert '<html lang="nl">' in page
        assert "Mail krijgen van Bibliotheek Borne" in page and ">Aanmelden</button>" in page
        htmx = web.get(f"/static/vendor/{HTMX.name}")
        if (ROOT / HTMX).is_file():
            assert htmx.content == (ROOT / HTMX).read_bytes() and HTMX.name in page
        else:
            assert htmx.status_code == 404 and HTMX.name not in page

        english = web.get("/borne/signup?lang=en").text
        assert '<html lang="en">' in english and "Get mail from Bibliotheek Borne" in english
        dutch = web.get("/borne/signup?lang=nl").text
        assert '<html lang="nl">' in dutch

        csrf = re.search(r'name="csrf_token" value="([^"]+)"', dutch)[1]
        sent = web.post(
            "/borne/signup",
            data={"csrf_token": csrf, "email": "wiel@example.nl", "purpose": "newsletter"},
            follow_redirects=True,
        )
        assert sent.status_code == 200 and "Kijk in je mail" in sent.text
        assert sent.url.path == "/borne/signup/sent"

        mail = _confirmation_mail(installed, base)
        assert str(mail["Subject"]) == "Bevestig je aanmelding bij Bibliotheek Borne"
        text = mail.get_body(("plain",)).get_content()
        assert "Bevestig dit met de link hieronder." in text, text
        link = re.search(rf"{re.escape(base)}(/confirm/[\w.-]+)", text)
        assert link, text
        confirm = web.get(link[1]).text
        assert '<html lang="nl">' in confirm
        assert "Bevestig je aanmelding" in confirm and "Ja, ik bevestig" in confirm
        confirmed = web.post(link[1])
        assert "Bedankt, je bent aangemeld" in confirmed.text
    assert "Traceback" not in log.read_text(), log.read_text()


def _confirmation_mail(installed: Installed, base: str) -> email.message.EmailMessage:
    folder = Path(installed.env["CONSENTSVC_MAIL_DIR"])
    for _ in range(3):
        # Whoever decides what to mail (the request or the worker), it is out after a turn or two.
        installed.run(installed.venv / "bin" / "consentsvc", "worker", "--once", BASE_URL=base)
        found = sorted(folder.glob("*-confirm.eml")) if folder.is_dir() else []
        if found:
            return email.message_from_bytes(found[0].read_bytes(), policy=email.policy.default)
    raise AssertionError(f"no confirmation mail in {folder}")
