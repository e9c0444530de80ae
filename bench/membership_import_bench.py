"""How long does the library system's nightly file take? Prints the seconds and rows per
second of `consentsvc membership import` for a generated file: the first run (everyone
new), a rerun (nothing changes) and a run where every tenth membership ended, on the
database you name (its tables are dropped and made anew).

    .venv/bin/python bench/membership_import_bench.py                 # SQLite in a temp folder
    .venv/bin/python bench/membership_import_bench.py postgresql://postgres@127.0.0.1/bench 20000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench_app import bench_app, fresh_database

from consentsvc.extensions import db

ROWS = 20_000


def write(path: Path, rows: int, *, ended_every: int = 0) -> None:
    lines = ["email;card_number;start;end"]
    for i in range(rows):
        end = "31-12-2025" if ended_every and i % ended_every == 0 else ""
        lines.append(f"lid{i}@example.nl;2100{i:08d};01-03-2020;{end}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")


def main(url: str, rows: int) -> None:
    app = bench_app(url)
    with app.app_context():
        fresh_database()
        print(f"{db.engine.dialect.name}: a file of {rows:,} memberships")
    runner = app.test_cli_runner()
    with tempfile.TemporaryDirectory() as folder:
        plain, ended = Path(folder) / "leden.csv", Path(folder) / "leden-ended.csv"
        write(plain, rows)
        write(ended, rows, ended_every=10)
        for label, path in (("first run", plain), ("rerun", plain), ("10 % ended", ended)):
            started = time.perf_counter()
            result = runner.invoke(args=["membership", "import", str(path), "--library", "borne"])
            seconds = time.perf_counter() - started
            summary = result.output.strip().splitlines()[-1]
            print(f"{label:>11}: {seconds:6.1f} s, {rows / seconds:7,.0f} rows/s  ({summary})")
    with app.app_context():
        db.engine.dispose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as temp:
        url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{temp}/bench.sqlite"
        main(url, int(sys.argv[2]) if len(sys.argv) > 2 else ROWS)
