"""Password hashing policy: the only module that imports passlib.

argon2id is the scheme for every new hash (OWASP Password Storage Cheat Sheet); bcrypt
hashes from older systems still verify and are replaced by argon2id on the next login.
"""

import secrets
import unicodedata
from dataclasses import dataclass

from passlib.context import CryptContext


@dataclass(frozen=True)
class Verification:
    ok: bool
    # Set when the stored hash is outdated (bcrypt, or weaker argon2 parameters): store it.
    new_hash: str | None = None


def _normalise(password: str) -> str:
    """NFKC, as NIST SP 800-63B §5.1.1.2 advises, so one password has one byte form."""
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._context = CryptContext(
            schemes=["argon2", "bcrypt"],
            deprecated=["bcrypt"],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__time_cost=time_cost,
            argon2__parallelism=parallelism,
        )
        # Verified against when no user matches, so an unknown email costs one real hash too.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return str(self._context.hash(_normalise(password)))

    def verify(self, password: str, hashed: str | None) -> Verification:
        """Check ``password`` against ``hashed`` (None: no such user) in constant-ish time."""
        if hashed is None:
            self._context.verify(_normalise(password), self._dummy_hash)
            return Verification(ok=False)
        try:
            ok, new_hash = self._context.verify_and_update(_normalise(password), hashed)
        except ValueError:
            # bcrypt refuses passwords over 72 bytes instead of truncating: that is a wrong
            # password for that hash, not a server error. UnknownHashError (a corrupt stored
            # hash) is a ValueError too, and likewise fails closed.
            return Verification(ok=False)
        return Verification(ok=bool(ok), new_hash=new_hash)
