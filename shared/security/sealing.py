"""What a mail waiting in the outbox needs, sealed: readable by the service alone.

A waiting message's context holds its link, and a link's token works for whoever holds it.
Sealed (AES-256-GCM, a key derived from the service's own secret), the row tells someone
who reads the database, a backup or a replica nothing they can use: without the secret,
the context is noise. Whoever has the secret can sign access tokens already, so the seal
gives them nothing new. It is also bound to its message's kind and recipient, so a sealed
link moved to another row (another address) does not open.
"""

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.infrastructure.config import Settings

PREFIX = "sealed:v1:"
NONCE_BYTES = 12  # GCM's standard nonce, random: a key seals far fewer than 2**32 messages
# A key of its own for this purpose, not the signing key itself (domain separation).
KEY_LABEL = b"authtwin outbox context v1"


class UnreadableSeal(Exception):
    """Sealed with another key, or altered: the context cannot be trusted."""


class Seal:
    def __init__(self, *, secret: bytes) -> None:
        key = hmac.new(secret, KEY_LABEL, hashlib.sha256).digest()
        self._cipher = AESGCM(key)

    def seal(self, plain: str, *, bound_to: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._cipher.encrypt(nonce, plain.encode(), bound_to.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, *, bound_to: str) -> str:
        if not stored.startswith(PREFIX):
            raise UnreadableSeal("not sealed")
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :])
            nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
            return self._cipher.decrypt(nonce, sealed, bound_to.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise UnreadableSeal("sealed with another key, or altered") from exc


def sealing_secret(settings: Settings) -> bytes:
    """The secret the outbox's sealing key derives from: the HS256 secret, else the RS256
    private key, which every process of a deployment shares (servers and deliver-mail alike).
    The key itself (its DER encoding), not its PEM text: a file's trailing newline or a
    variable's stripped one must not make one key seal two ways. Without either (development
    only), a random one: mail sealed by one process opens in that process alone, and
    another's is given up as unreadable."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    if private_pem := settings.private_key_pem():
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        return key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return secrets.token_bytes(32)
