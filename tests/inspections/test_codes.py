"""Inspection codes (检查码): signing, verification, rotation, expiry and QR rendering."""

from __future__ import annotations

import base64
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from inspection_hub.inspections.codes import (
    ACTIVE_FILE_NAME,
    CodeExpired,
    CodeForged,
    CodeKeyring,
    qr_png,
    qr_svg,
)

USCC = "91350100M000100Y43"
START = date(2025, 3, 1)
END = date(2025, 3, 31)


def _issue(ring: CodeKeyring, **overrides: object) -> str:
    fields: dict[str, object] = {
        "inspection_id": 123456789,
        "agency_code": "SCJG-350100",
        "uscc": USCC,
        "window_start": START,
        "window_end": END,
        "grace_days": 7,
        "issued_at": datetime(2025, 2, 20, 8, 30, tzinfo=UTC),
    }
    fields.update(overrides)
    return ring.issue(**fields)  # type: ignore[arg-type]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_roundtrip() -> None:
    ring = CodeKeyring.generate()
    claims = ring.verify(_issue(ring), today=date(2025, 3, 10))
    assert claims.version == 1
    assert claims.kid == ring.active_kid
    assert claims.inspection_id == 123456789
    assert claims.agency_code == "SCJG-350100"
    assert claims.uscc == USCC
    assert (claims.window_start, claims.window_end) == (START, END)
    assert claims.expires_on == date(2025, 4, 7)
    assert claims.issued_at == datetime(2025, 2, 20, 8, 30, tzinfo=UTC)


def test_roundtrip_uuid_id_and_unicode_agency() -> None:
    ring = CodeKeyring.generate()
    inspection_id = uuid.uuid4()
    claims = ring.verify(
        _issue(ring, inspection_id=inspection_id, agency_code="福州市市场监管局"), date(2025, 3, 1)
    )
    assert claims.inspection_id == inspection_id
    assert claims.agency_code == "福州市市场监管局"


def test_token_is_short_and_url_safe() -> None:
    ring = CodeKeyring.generate()
    token = _issue(ring, inspection_id=uuid.uuid4(), agency_code="A" * 24)
    assert len(token) < 200
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_tampered_payload_is_forged() -> None:
    ring = CodeKeyring.generate()
    payload_text, signature_text = _issue(ring).split(".")
    payload = bytearray(_unb64(payload_text))
    payload[-5] ^= 0x01  # shift the expiry date
    with pytest.raises(CodeForged):
        ring.verify(f"{_b64(bytes(payload))}.{signature_text}", date(2025, 3, 10))


def test_tampered_signature_is_forged() -> None:
    ring = CodeKeyring.generate()
    payload_text, signature_text = _issue(ring).split(".")
    signature = bytearray(_unb64(signature_text))
    signature[0] ^= 0x80
    with pytest.raises(CodeForged):
        ring.verify(f"{payload_text}.{_b64(bytes(signature))}", date(2025, 3, 10))


@pytest.mark.parametrize(
    "token",
    ["", ".", "abc", "abc.def", "a.b.c", "!!!.???", "AQ.AQ", "x" * 1000, "测试.码"],
)
def test_malformed_is_forged(token: str) -> None:
    with pytest.raises(CodeForged):
        CodeKeyring.generate().verify(token, date(2025, 3, 10))


def test_non_canonical_base64_is_forged() -> None:
    ring = CodeKeyring.generate()
    payload_text, signature_text = _issue(ring).split(".")
    # The last signature character carries 4 unused bits; flipping one keeps the bytes the same.
    last = signature_text[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert _unb64(signature_text[:-1] + twin) == _unb64(signature_text)
    with pytest.raises(CodeForged):
        ring.verify(f"{payload_text}.{signature_text[:-1]}{twin}", date(2025, 3, 10))


def test_unknown_kid_is_forged() -> None:
    token = _issue(CodeKeyring.generate())
    with pytest.raises(CodeForged, match="unknown key"):
        CodeKeyring.generate().verify(token, date(2025, 3, 10))


def test_rotation_keeps_old_codes_valid_until_key_removed() -> None:
    ring = CodeKeyring.generate()
    old_kid = ring.active_kid
    assert old_kid is not None
    old_token = _issue(ring)
    new_kid = ring.rotate()
    assert new_kid != old_kid
    assert ring.active_kid == new_kid
    new_token = _issue(ring)
    assert ring.verify(old_token, date(2025, 3, 10)).kid == old_kid
    assert ring.verify(new_token, date(2025, 3, 10)).kid == new_kid
    ring.remove(old_kid)
    with pytest.raises(CodeForged):
        ring.verify(old_token, date(2025, 3, 10))
    assert ring.verify(new_token, date(2025, 3, 10)).kid == new_kid
    with pytest.raises(ValueError, match="active"):
        ring.remove(new_kid)


def test_expiry_is_window_end_plus_grace() -> None:
    ring = CodeKeyring.generate()
    token = _issue(ring, grace_days=3)
    assert ring.verify(token, date(2025, 4, 3)).expires_on == date(2025, 4, 3)
    with pytest.raises(CodeExpired) as excinfo:
        ring.verify(token, date(2025, 4, 4))
    assert excinfo.value.claims.inspection_id == 123456789


def test_expired_forgery_is_reported_as_forged() -> None:
    ring = CodeKeyring.generate()
    token = _issue(CodeKeyring.generate())
    with pytest.raises(CodeForged):
        ring.verify(token, date(2030, 1, 1))


def test_invalid_issue_arguments() -> None:
    ring = CodeKeyring.generate()
    with pytest.raises(ValueError, match="window_end"):
        _issue(ring, window_start=END, window_end=START)
    with pytest.raises(ValueError, match="grace_days"):
        _issue(ring, grace_days=-1)
    with pytest.raises(ValueError, match="uscc"):
        _issue(ring, uscc="913501 00")
    with pytest.raises(TypeError):
        _issue(ring, inspection_id="42")


def test_save_load_and_create(tmp_path: Path) -> None:
    ring = CodeKeyring.load_or_create(tmp_path)
    first_kid = ring.active_kid
    assert first_kid is not None
    assert (tmp_path / ACTIVE_FILE_NAME).read_text() == first_kid
    pem = next(tmp_path.glob("*.pem"))
    assert pem.stat().st_mode & 0o077 == 0
    token = _issue(ring)

    again = CodeKeyring.load_or_create(tmp_path)
    assert again.active_kid == first_kid
    assert again.verify(token, date(2025, 3, 10)).kid == first_kid

    second_kid = again.rotate()
    again.forget_private(first_kid)
    again.save(tmp_path)
    reloaded = CodeKeyring.load(tmp_path)
    assert reloaded.active_kid == second_kid
    assert set(reloaded.kids) == {first_kid, second_kid}
    assert b"PUBLIC KEY" in (tmp_path / f"inspection-code-key-{first_kid}.pem").read_bytes()
    assert reloaded.verify(token, date(2025, 3, 10)).kid == first_kid

    reloaded.remove(first_kid)
    reloaded.save(tmp_path)
    assert len(list(tmp_path.glob("*.pem"))) == 1
    with pytest.raises(CodeForged):
        CodeKeyring.load(tmp_path).verify(token, date(2025, 3, 10))


def test_load_of_empty_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CodeKeyring.load(tmp_path)


def test_jwks_verifies_with_public_key_only() -> None:
    ring = CodeKeyring.generate()
    old_token = _issue(ring)
    ring.rotate()
    token = _issue(ring)
    jwks = ring.public_keys_jwks()
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert jwk["kty"] == "OKP"
        assert jwk["crv"] == "Ed25519"
        assert "d" not in jwk

    # An outsider rebuilds the key from the JWK by hand and checks the signature.
    payload_text, signature_text = token.split(".")
    jwk = next(k for k in jwks["keys"] if k["kid"] == ring.active_kid)
    public = Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
    public.verify(_unb64(signature_text), _unb64(payload_text))

    verifier = CodeKeyring.from_jwks(jwks)
    assert verifier.active_kid is None
    assert verifier.verify(token, date(2025, 3, 10)).uscc == USCC
    assert verifier.verify(old_token, date(2025, 3, 10)).uscc == USCC
    with pytest.raises(RuntimeError):
        _issue(verifier)


def test_qr_png_and_svg() -> None:
    ring = CodeKeyring.generate()
    url = f"https://hub.example.gov.cn/public/v1/inspection-codes/{_issue(ring)}"
    png = qr_png(url)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    svg = qr_svg(url)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
