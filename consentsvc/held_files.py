"""An uploaded file held between its preview and the staff member's confirmation.

A subscriber list is full of addresses, so it waits encrypted (Fernet, with a key derived
from SECRET_KEY), in a folder of its own that only this service can read, under a random
name; never in the session cookie. It is deleted when it is taken, and anything older than
the time allowed is deleted at the next upload (and can no longer be decrypted anyway,
since a Fernet token carries its time).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

_NAME_LENGTH = 22  # token_urlsafe(16)


@dataclass(frozen=True)
class HeldFile:
    data: bytes
    # Who uploaded it for which library, and what they called it: only they can confirm.
    owner: dict[str, Any]


class Holder:
    def __init__(self, folder: Path, secret_key: str, max_age: int) -> None:
        self.folder, self.max_age = folder, max_age
        key = hashlib.sha256(b"consentsvc held upload\x00" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def hold(self, data: bytes, owner: dict[str, Any]) -> str:
        """Keep the file; returns the name under which it can be taken back."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.sweep()
        name = secrets.token_urlsafe(16)
        header = json.dumps(owner).encode()
        sealed = self._fernet.encrypt(len(header).to_bytes(4, "big") + header + data)
        path = self.folder / name
        path.touch(mode=0o600)
        path.write_bytes(sealed)
        return name

    def take(self, name: str) -> HeldFile | None:
        """The file under this name, deleted as it is read; None if gone or expired."""
        path = self._path(name)
        if path is None or not path.exists():
            return None
        try:
            opened = self._fernet.decrypt(path.read_bytes(), ttl=self.max_age)
        except InvalidToken:
            return None
        finally:
            path.unlink(missing_ok=True)
        size = int.from_bytes(opened[:4], "big")
        return HeldFile(opened[4 + size :], json.loads(opened[4 : 4 + size]))

    def drop(self, name: str) -> None:
        path = self._path(name)
        if path is not None:
            path.unlink(missing_ok=True)

    def sweep(self) -> int:
        """Delete what waited longer than allowed; returns how many."""
        if not self.folder.exists():
            return 0
        gone, limit = 0, time.time() - self.max_age
        for path in self.folder.iterdir():
            if path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def _path(self, name: str) -> Path | None:
        # Only names this holder made: nothing else in (or outside) the folder.
        if len(name) != _NAME_LENGTH or not all(c.isalnum() or c in "-_" for c in name):
            return None
        return self.folder / name
