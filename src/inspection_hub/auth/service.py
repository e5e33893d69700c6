"""Creating users and tokens, and resolving a bearer token to a Principal."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from inspection_hub.agencies.models import Agency
from inspection_hub.auth.models import ApiToken, UserAccount
from inspection_hub.auth.principal import AGENCY_ROLES, Principal, Role
from inspection_hub.auth.tokens import hash_token, new_token
from inspection_hub.errors import Forbidden, NotFound, ValidationFailed
from inspection_hub.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor


def principal_of(user: UserAccount, token_id: int | None = None) -> Principal:
    """The Principal for a stored user."""
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=Role(user.role),
        agency_code=user.agency_code,
        token_id=token_id,
    )


async def get_or_create_user(
    session: AsyncSession, *, username: str, role: Role, agency_code: str | None
) -> UserAccount:
    """Find the person by username or create them; role and agency must then match."""
    if role in AGENCY_ROLES and not agency_code:
        raise ValidationFailed(
            f"Role {role.value} needs an agency.",
            errors=[{"field": "agency", "detail": "required for this role"}],
        )
    if role not in AGENCY_ROLES and agency_code:
        raise ValidationFailed(
            f"Role {role.value} is not scoped to an agency.",
            errors=[{"field": "agency", "detail": "must be empty for this role"}],
        )
    if agency_code and await session.get(Agency, agency_code) is None:
        raise NotFound(f"Agency {agency_code} does not exist.")
    user = (
        await session.execute(select(UserAccount).where(UserAccount.username == username))
    ).scalar_one_or_none()
    if user is None:
        user = UserAccount(
            username=username, display_name=username, role=role.value, agency_code=agency_code
        )
        session.add(user)
        await session.flush()
    elif user.role != role.value or user.agency_code != agency_code:
        raise ValidationFailed(
            f"User {username} already exists as {user.role}"
            f"{' of ' + user.agency_code if user.agency_code else ''}.",
            errors=[{"field": "name", "detail": "exists with another role or agency"}],
        )
    return user


async def create_token(
    session: AsyncSession, *, user: UserAccount, pepper: str
) -> tuple[str, ApiToken]:
    """Create a token for a user; the clear token is returned once and never stored."""
    token = new_token()
    row = ApiToken(user_id=user.id, token_hash=hash_token(token, pepper), prefix=token[:10])
    session.add(row)
    await session.flush()
    return token, row


async def resolve_token(session: AsyncSession, token_hash: str) -> Principal | None:
    """The Principal owning a token (given by its keyed hash), or None when unknown or revoked."""
    row = (
        await session.execute(
            select(ApiToken, UserAccount)
            .join(UserAccount, UserAccount.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_hash)
            .where(ApiToken.revoked_at.is_(None))
        )
    ).one_or_none()
    if row is None:
        return None
    tok, user = row
    return principal_of(user, tok.id)


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A stored token and its owner's username (its `token_hash` serves cache eviction only)."""

    token: ApiToken
    username: str
    newly_revoked: bool = False


async def list_tokens(
    session: AsyncSession,
    actor: Principal | None,
    *,
    username: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[TokenEntry], str | None]:
    """Tokens newest first: every user's for an admin (optionally one user's), else the caller's."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = (
        select(ApiToken, UserAccount.username)
        .join(UserAccount, UserAccount.id == ApiToken.user_id)
        .order_by(ApiToken.id.desc())
        .limit(limit + 1)
    )
    # admins and the server's own command line (actor None) see every user's tokens
    if actor is not None and actor.role is not Role.admin:
        if username is not None and username != actor.username:
            raise Forbidden(f"Role {actor.role.value} may list only their own tokens.")
        stmt = stmt.where(ApiToken.user_id == actor.user_id)
    elif username is not None:
        stmt = stmt.where(UserAccount.username == username)
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(ApiToken.id < int(after[0]))
    rows = [TokenEntry(tok, name) for tok, name in (await session.execute(stmt)).all()]
    next_cursor = encode_cursor([rows[limit - 1].token.id]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def revoke_token(session: AsyncSession, actor: Principal | None, token_id: int) -> TokenEntry:
    """Revoke a token (admin: any; others: their own); idempotent, audited the first time only."""
    from inspection_hub.audit.service import record

    row = (
        await session.execute(
            select(ApiToken, UserAccount.username)
            .join(UserAccount, UserAccount.id == ApiToken.user_id)
            .where(ApiToken.id == token_id)
            # concurrent revocations of one token queue here: exactly one of them records it
            .with_for_update(of=ApiToken)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"Token {token_id} does not exist.")
    tok, username = row
    if actor is not None and actor.role is not Role.admin and tok.user_id != actor.user_id:
        raise Forbidden(f"Token {token_id} belongs to another user; only an admin may revoke it.")
    if tok.revoked_at is not None:
        return TokenEntry(tok, username)
    revoked_at = (
        await session.execute(
            update(ApiToken)
            .where(ApiToken.id == tok.id)
            .values(revoked_at=func.now())
            .returning(ApiToken.revoked_at),
            execution_options={"synchronize_session": False},
        )
    ).scalar_one()
    assert revoked_at is not None  # now() is never null
    set_committed_value(tok, "revoked_at", revoked_at)  # as stored; nothing left to flush
    await record(
        session,
        actor,
        "token.revoke",
        "api_token",
        tok.id,
        before={"revoked_at": None},
        after={"user": username, "revoked_at": revoked_at.isoformat()},
    )
    return TokenEntry(tok, username, newly_revoked=True)


async def create_person(
    session: AsyncSession,
    actor: Principal | None,
    *,
    username: str,
    display_name: str,
    role: Role,
    agency_code: str | None,
    password: str,
) -> UserAccount:
    """Create a person who signs in to the pages with a password (admin); audited."""
    from inspection_hub.audit.service import record
    from inspection_hub.auth.passwords import hash_password, password_problem
    from inspection_hub.errors import Conflict

    problem = password_problem(password)
    if problem:
        raise ValidationFailed(
            "The password is too weak.", errors=[{"field": "password", "detail": problem}]
        )
    existing = (
        await session.execute(select(UserAccount.id).where(UserAccount.username == username))
    ).scalar_one_or_none()
    if existing is not None:
        raise Conflict(f"User {username} already exists.")
    user = await get_or_create_user(session, username=username, role=role, agency_code=agency_code)
    user.display_name = display_name
    user.password_hash = hash_password(password)
    await session.flush()
    await record(
        session,
        actor,
        "user.create",
        "user_account",
        user.id,
        after={"username": username, "role": role.value, "agency": agency_code},
    )
    return user


async def set_password(
    session: AsyncSession, actor: Principal | None, *, username: str, password: str
) -> UserAccount:
    """Set a person's sign-in password and clear any lockout; audited (not the hash)."""
    from inspection_hub.audit.service import record
    from inspection_hub.auth.passwords import hash_password, password_problem

    problem = password_problem(password)
    if problem:
        raise ValidationFailed(
            "The password is too weak.", errors=[{"field": "password", "detail": problem}]
        )
    user = (
        await session.execute(select(UserAccount).where(UserAccount.username == username))
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"User {username} does not exist.")
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    await session.flush()
    await record(session, actor, "user.set_password", "user_account", user.id)
    return user
