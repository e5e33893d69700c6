"""Inspection codes (检查码): compact Ed25519-signed tokens that name one inspection.

Token text: ``base64url(payload) + "." + base64url(signature)``, both without padding. The
signature is Ed25519 over the raw payload bytes. Payload layout, version 1 (big-endian)::

    u8      version (1)
    8 B     kid: the first 8 bytes of SHA-256(raw public key); the text kid is their base64url
    u8      inspection id kind: 0 = unsigned 64-bit integer, 1 = UUID
    8|16 B  inspection id
    u8 + n  agency code, UTF-8, length-prefixed
    u8 + n  enterprise USCC, ASCII, length-prefixed
    u16     window start, days since 1970-01-01
    u16     window end, days since 1970-01-01
    u16     expiry date (last valid day, inclusive), days since 1970-01-01
    u32     issued at, seconds since the Unix epoch (UTC)

Anyone holding the published JWKS (``CodeKeyring.public_keys_jwks``) can verify a code offline.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import os
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import segno
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "DEFAULT_GRACE_DAYS",
    "CodeClaims",
    "CodeError",
    "CodeExpired",
    "CodeForged",
    "CodeKeyring",
    "kid_for",
    "qr_png",
    "qr_svg",
]

TOKEN_VERSION: Final = 1
DEFAULT_GRACE_DAYS: Final = 7
KEY_FILE_PREFIX: Final = "inspection-code-key-"
ACTIVE_FILE_NAME: Final = "inspection-code-key-active"

_EPOCH: Final = date(1970, 1, 1)
_KID_BYTES: Final = 8
_ID_INT: Final = 0
_ID_UUID: Final = 1
_SIGNATURE_BYTES: Final = 64
_MAX_TOKEN_CHARS: Final = 512


class CodeError(Exception):
    """Base class of inspection code failures."""


class CodeForged(CodeError):
    """The code is malformed, signed by an unknown key, or its signature does not match."""


class CodeExpired(CodeError):
    """The code is authentic but past its expiry date."""

    def __init__(self, claims: CodeClaims) -> None:
        super().__init__(f"inspection code expired on {claims.expires_on.isoformat()}")
        self.claims = claims


@dataclass(frozen=True, slots=True)
class CodeClaims:
    """What an inspection code asserts."""

    version: int
    kid: str
    inspection_id: int | uuid.UUID
    agency_code: str
    uscc: str
    window_start: date
    window_end: date
    expires_on: date
    issued_at: datetime


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode unpadded base64url, refusing non-canonical encodings (no malleable tokens)."""
    try:
        raw = text.encode("ascii")
        data = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise CodeForged("malformed inspection code") from exc
    if _b64encode(data) != text:
        raise CodeForged("malformed inspection code")
    return data


def kid_for(public_key: Ed25519PublicKey) -> str:
    """The key id of a public key: base64url of the first 8 bytes of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64encode(hashlib.sha256(raw).digest()[:_KID_BYTES])


def _days(value: date, what: str) -> int:
    days = (value - _EPOCH).days
    if not 0 <= days <= 0xFFFF:
        raise ValueError(f"{what} {value.isoformat()} is outside the encodable range")
    return days


def _short_field(value: bytes, what: str) -> bytes:
    if not value or len(value) > 0xFF:
        raise ValueError(f"{what} must be 1 to 255 bytes long")
    return bytes([len(value)]) + value


class _Reader:
    """A bounds-checked cursor over payload bytes; any overrun means a forged code."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise CodeForged("malformed inspection code")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def short_field(self) -> bytes:
        (length,) = self.unpack(">B")
        return self.take(length)

    def at_end(self) -> bool:
        return self._pos == len(self._data)


def _encode_payload(
    *,
    kid: str,
    inspection_id: int | uuid.UUID,
    agency_code: str,
    uscc: str,
    window_start: date,
    window_end: date,
    expires_on: date,
    issued_at: datetime,
) -> bytes:
    kid_raw = _b64decode(kid)
    if isinstance(inspection_id, uuid.UUID):
        id_part = bytes([_ID_UUID]) + inspection_id.bytes
    elif isinstance(inspection_id, int) and not isinstance(inspection_id, bool):
        if not 0 <= inspection_id < 2**64:
            raise ValueError("inspection_id must fit in an unsigned 64-bit integer")
        id_part = bytes([_ID_INT]) + struct.pack(">Q", inspection_id)
    else:
        raise TypeError("inspection_id must be an int or a UUID")
    if not uscc.isascii() or not uscc.isalnum():
        raise ValueError("uscc must be ASCII letters and digits")
    if window_end < window_start:
        raise ValueError("window_end is before window_start")
    timestamp = int(issued_at.timestamp())
    if not 0 <= timestamp < 2**32:
        raise ValueError("issued_at is outside the encodable range")
    return b"".join(
        [
            bytes([TOKEN_VERSION]),
            kid_raw,
            id_part,
            _short_field(agency_code.encode("utf-8"), "agency_code"),
            _short_field(uscc.encode("ascii"), "uscc"),
            struct.pack(
                ">HHHI",
                _days(window_start, "window_start"),
                _days(window_end, "window_end"),
                _days(expires_on, "expiry date"),
                timestamp,
            ),
        ]
    )


def _decode_payload(payload: bytes) -> CodeClaims:
    reader = _Reader(payload)
    try:
        (version,) = reader.unpack(">B")
        if version != TOKEN_VERSION:
            raise CodeForged(f"unsupported inspection code version {version}")
        kid = _b64encode(reader.take(_KID_BYTES))
        (id_kind,) = reader.unpack(">B")
        inspection_id: int | uuid.UUID
        if id_kind == _ID_INT:
            (inspection_id,) = reader.unpack(">Q")
        elif id_kind == _ID_UUID:
            inspection_id = uuid.UUID(bytes=reader.take(16))
        else:
            raise CodeForged("malformed inspection code")
        agency_code = reader.short_field().decode("utf-8")
        uscc = reader.short_field().decode("ascii")
        start, end, expires, issued = reader.unpack(">HHHI")
    except (UnicodeDecodeError, struct.error) as exc:
        raise CodeForged("malformed inspection code") from exc
    if not reader.at_end():
        raise CodeForged("malformed inspection code")
    return CodeClaims(
        version=version,
        kid=kid,
        inspection_id=inspection_id,
        agency_code=agency_code,
        uscc=uscc,
        window_start=_EPOCH + timedelta(days=start),
        window_end=_EPOCH + timedelta(days=end),
        expires_on=_EPOCH + timedelta(days=expires),
        issued_at=datetime.fromtimestamp(issued, UTC),
    )


def _peek_kid(payload: bytes) -> str:
    if len(payload) < 1 + _KID_BYTES or payload[0] != TOKEN_VERSION:
        raise CodeForged("malformed inspection code")
    return _b64encode(payload[1 : 1 + _KID_BYTES])


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by the owner only, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class CodeKeyring:
    """Ed25519 keys by kid: one active signing key plus retired keys still accepted for checks."""

    def __init__(
        self,
        keys: Mapping[str, Ed25519PrivateKey | Ed25519PublicKey],
        active_kid: str | None,
    ) -> None:
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._public: dict[str, Ed25519PublicKey] = {}
        for kid, key in keys.items():
            public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
            if kid_for(public) != kid:
                raise ValueError(f"kid {kid!r} does not match its key")
            self._public[kid] = public
            if isinstance(key, Ed25519PrivateKey):
                self._private[kid] = key
        if active_kid is not None and active_kid not in self._private:
            raise ValueError(f"active key {active_kid!r} has no private key in the keyring")
        self._active_kid = active_kid

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def generate(cls) -> CodeKeyring:
        """A new in-memory keyring with one freshly generated active key."""
        key = Ed25519PrivateKey.generate()
        kid = kid_for(key.public_key())
        return cls({kid: key}, kid)

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> CodeKeyring:
        """A verify-only keyring from a published JWKS (what an outside verifier would hold)."""
        keys: dict[str, Ed25519PrivateKey | Ed25519PublicKey] = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                continue
            x = str(jwk["x"])
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            public = Ed25519PublicKey.from_public_bytes(raw)
            keys[kid_for(public)] = public
        return cls(keys, None)

    @classmethod
    def load(cls, directory: Path) -> CodeKeyring:
        """Load the keys saved in a directory; raise FileNotFoundError if there are none."""
        keys: dict[str, Ed25519PrivateKey | Ed25519PublicKey] = {}
        for path in sorted(directory.glob(f"{KEY_FILE_PREFIX}*.pem")):
            data = path.read_bytes()
            key: object
            if b"PRIVATE KEY" in data:
                key = serialization.load_pem_private_key(data, password=None)
            else:
                key = serialization.load_pem_public_key(data)
            if isinstance(key, Ed25519PrivateKey):
                keys[kid_for(key.public_key())] = key
            elif isinstance(key, Ed25519PublicKey):
                keys[kid_for(key)] = key
            else:
                raise ValueError(f"{path} is not an Ed25519 key")
        if not keys:
            raise FileNotFoundError(f"no inspection code keys in {directory}")
        active_path = directory / ACTIVE_FILE_NAME
        active_kid = active_path.read_text().strip() if active_path.exists() else None
        return cls(keys, active_kid)

    @classmethod
    def load_or_create(cls, directory: Path) -> CodeKeyring:
        """Load the keys in a directory, generating and saving a first active key if none exist."""
        directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            return cls.load(directory)
        ring = cls.generate()
        kid = ring.active_kid
        assert kid is not None
        ring._write_key(directory, kid)
        try:
            fd = os.open(directory / ACTIVE_FILE_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:  # another process created the first key concurrently: use its
            (directory / f"{KEY_FILE_PREFIX}{kid}.pem").unlink(missing_ok=True)
            return cls.load(directory)
        with os.fdopen(fd, "w") as fh:
            fh.write(kid)
        return ring

    def save(self, directory: Path) -> None:
        """Write every key as PEM and the active kid; delete key files of kids no longer held."""
        directory.mkdir(parents=True, exist_ok=True)
        for kid in self._public:
            self._write_key(directory, kid)
        for path in directory.glob(f"{KEY_FILE_PREFIX}*.pem"):
            if path.name.removeprefix(KEY_FILE_PREFIX).removesuffix(".pem") not in self._public:
                path.unlink()
        active_path = directory / ACTIVE_FILE_NAME
        if self._active_kid is None:
            active_path.unlink(missing_ok=True)
        else:
            _write_private(active_path, self._active_kid.encode("ascii"))

    def _write_key(self, directory: Path, kid: str) -> None:
        path = directory / f"{KEY_FILE_PREFIX}{kid}.pem"
        private = self._private.get(kid)
        if private is not None:
            data = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        else:
            data = self._public[kid].public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        _write_private(path, data)

    # -- rotation -------------------------------------------------------------------------

    @property
    def active_kid(self) -> str | None:
        """The kid of the signing key, or None for a verify-only keyring."""
        return self._active_kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Every kid accepted for verification."""
        return tuple(self._public)

    def rotate(self) -> str:
        """Generate a new active key; the previous one stays accepted for verification."""
        key = Ed25519PrivateKey.generate()
        kid = kid_for(key.public_key())
        self._private[kid] = key
        self._public[kid] = key.public_key()
        self._active_kid = kid
        return kid

    def remove(self, kid: str) -> None:
        """Stop accepting codes signed by a retired key."""
        if kid == self._active_kid:
            raise ValueError("cannot remove the active key; rotate first")
        self._public.pop(kid, None)
        self._private.pop(kid, None)

    def forget_private(self, kid: str) -> None:
        """Destroy a retired key's private half, keeping its public half for verification."""
        if kid == self._active_kid:
            raise ValueError("cannot forget the active key's private half; rotate first")
        self._private.pop(kid, None)

    def public_keys_jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (OKP/Ed25519) for offline verification by outsiders."""
        keys = []
        for kid, public in self._public.items():
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            keys.append(
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64encode(raw),
                    "kid": kid,
                    "use": "sig",
                    "alg": "EdDSA",
                }
            )
        return {"keys": keys}

    # -- codes ----------------------------------------------------------------------------

    def issue(
        self,
        *,
        inspection_id: int | uuid.UUID,
        agency_code: str,
        uscc: str,
        window_start: date,
        window_end: date,
        grace_days: int = DEFAULT_GRACE_DAYS,
        issued_at: datetime | None = None,
    ) -> str:
        """Sign a code for an inspection; it expires grace_days after the window's end."""
        if self._active_kid is None:
            raise RuntimeError("this keyring has no active signing key")
        if grace_days < 0:
            raise ValueError("grace_days must not be negative")
        payload = _encode_payload(
            kid=self._active_kid,
            inspection_id=inspection_id,
            agency_code=agency_code,
            uscc=uscc,
            window_start=window_start,
            window_end=window_end,
            expires_on=window_end + timedelta(days=grace_days),
            issued_at=issued_at if issued_at is not None else datetime.now(UTC),
        )
        signature = self._private[self._active_kid].sign(payload)
        return f"{_b64encode(payload)}.{_b64encode(signature)}"

    def verify(self, token: str, today: date) -> CodeClaims:
        """Check a code's signature and expiry; raise CodeForged or CodeExpired."""
        if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
            raise CodeForged("malformed inspection code")
        payload_text, signature_text = token.split(".")
        payload = _b64decode(payload_text)
        signature = _b64decode(signature_text)
        if len(signature) != _SIGNATURE_BYTES:
            raise CodeForged("malformed inspection code")
        public = self._public.get(_peek_kid(payload))
        if public is None:
            raise CodeForged("inspection code signed by an unknown key")
        try:
            public.verify(signature, payload)
        except InvalidSignature as exc:
            raise CodeForged("inspection code signature does not match") from exc
        claims = _decode_payload(payload)
        if today > claims.expires_on:
            raise CodeExpired(claims)
        return claims


def qr_png(text: str, *, scale: int = 6, border: int = 4) -> bytes:
    """Render text (the full scan URL) as a QR code PNG."""
    out = io.BytesIO()
    segno.make_qr(text, error="m").save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def qr_svg(text: str, *, scale: int = 4, border: int = 4) -> str:
    """Render text (the full scan URL) as an inline SVG QR code (no XML declaration)."""
    return segno.make_qr(text, error="m").svg_inline(scale=scale, border=border)
