"""Request and response bodies for people (users) and their bearer tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from inspection_hub.auth.principal import Role
from inspection_hub.kit.schema import RequestModel, ResponseModel


class UserCreate(RequestModel):
    """A person who signs in to the pages; the admin sets the first password."""

    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{2,100}$", examples=["zhang.wei"])
    display_name: str = Field(min_length=1, max_length=200, examples=["张伟"])
    role: Role
    agency: str | None = Field(default=None, max_length=32, examples=["SCJG"])
    password: str = Field(min_length=1, max_length=200, repr=False)


class UserRead(ResponseModel):
    """A person (never the password or its hash)."""

    id: int
    username: str
    display_name: str
    role: Role
    agency: str | None = None


class TokenRead(ResponseModel):
    """A bearer token as its owner or an admin sees it: never the token or its hash."""

    id: int
    user: str = Field(description="The owner's username.", examples=["zhang.wei"])
    created_at: datetime
    revoked_at: datetime | None = Field(
        default=None, description="When it was revoked; null while it is usable."
    )
    current: bool = Field(
        default=False, description="True for the token this request was made with."
    )
