"""The one build step pyproject.toml cannot declare: compiling the translations.

Compiled catalogues (.mo) are kept neither in git nor in the sdist. Every wheel compiles
them from the .po files it is built from, so it cannot ship missing or stale ones; an
editable install compiles them in place, as `make translations` does.
"""

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from setuptools import setup
from setuptools.command.build_py import build_py

CATALOGUES = Path("consentsvc", "translations")


class BuildWithCatalogues(build_py):
    """build_py, then every messages.po compiled to the .mo beside it in the build."""

    def run(self) -> None:
        super().run()
        for po_path in sorted(CATALOGUES.glob("*/LC_MESSAGES/*.po")):
            mo_path = po_path.with_suffix(".mo")
            if not self.editable_mode:
                mo_path = Path(self.build_lib, mo_path)
            with po_path.open("rb") as po:
                catalogue = read_po(po, locale=po_path.parent.parent.name)
            problems = [f"{m.id}: {e}" for m, errors in catalogue.check() for e in errors]
            if problems:
                raise SystemExit(f"{po_path}: " + "; ".join(problems))
            mo_path.parent.mkdir(parents=True, exist_ok=True)
            with mo_path.open("wb") as mo:
                # Like pybabel compile: fuzzy entries are left out (the English msgid shows).
                write_mo(mo, catalogue, use_fuzzy=False)


setup(cmdclass={"build_py": BuildWithCatalogues})
