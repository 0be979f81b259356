"""Password hashes as GoTrue keeps them: bcrypt `$2a$10$`, hashed and checked off the event loop."""

from __future__ import annotations

import asyncio

import bcrypt

BCRYPT_COST = 10  # GoTrue's cost
# Checked against when an email is unknown, so a miss costs what a wrong password costs.
_DUMMY_HASH = bcrypt.hashpw(b"busymate-dummy-password", bcrypt.gensalt(BCRYPT_COST, prefix=b"2a"))


async def hash_password(password: str) -> str:
    """A bcrypt hash in GoTrue's `$2a$10$` form, computed off the event loop."""
    hashed = await asyncio.to_thread(
        bcrypt.hashpw, password.encode(), bcrypt.gensalt(BCRYPT_COST, prefix=b"2a")
    )
    return hashed.decode()


async def password_matches(password: str, hashed: str | None) -> bool:
    """bcrypt's constant-time check; an unknown user is checked against a dummy hash all the same."""
    target = hashed.encode() if hashed else _DUMMY_HASH
    try:
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), target)
    except ValueError:
        return False
    return ok and hashed is not None
