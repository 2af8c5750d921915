"""The dashboard's users and sessions in the hub database.

:class:`AccountsStore` keeps the dashboard users (argon2 password hashes, TOTP secrets,
failed-login counts and locks, the last TOTP step used) and their sessions (stored by the
SHA-256 of the cookie value). :class:`gardien.hub.store.HubStore` builds on it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, insert, or_, select, update

from gardien.errors import HubError
from gardien.hub import schema
from gardien.hub._store_base import NAME_PATTERN, StoreBase
from gardien.hub.model import SessionInfo, UserInfo


class AccountsStore(StoreBase):
    """The dashboard users and sessions of :class:`gardien.hub.store.HubStore`."""

    # ---- dashboard users and sessions --------------------------------------------------

    def add_user(self, name: str, password_hash: str, totp_secret: str) -> UserInfo:
        """Create a dashboard user (the caller hashes the password with argon2)."""
        if not NAME_PATTERN.match(name):
            raise HubError(f"{name!r} is not a valid user name (letters, digits, '_.@-')")
        now = self._clock.now()

        def work(connection: Connection) -> UserInfo:
            if connection.execute(
                select(schema.users.c.id).where(schema.users.c.name == name)
            ).first():
                raise HubError(f"a user named {name!r} already exists")
            key = connection.execute(
                insert(schema.users)
                .values(
                    name=name,
                    password_hash=password_hash,
                    totp_secret=totp_secret,
                    created=now,
                    failed_logins=0,
                )
                .returning(schema.users.c.id)
            ).scalar_one()
            return UserInfo(
                id=int(key),
                name=name,
                password_hash=password_hash,
                totp_secret=totp_secret,
                created=now,
            )

        return self._run(work)

    def users(self) -> list[UserInfo]:
        """Every dashboard user, by name."""
        return self._run(
            lambda connection: [
                _user(row)
                for row in connection.execute(select(schema.users).order_by(schema.users.c.name))
            ],
            write=False,
        )

    def user(self, name: str) -> UserInfo | None:
        """The user called ``name``, or ``None``."""

        def work(connection: Connection) -> UserInfo | None:
            row = connection.execute(
                select(schema.users).where(schema.users.c.name == name)
            ).first()
            return None if row is None else _user(row)

        return self._run(work, write=False)

    def remove_user(self, name: str) -> bool:
        """Delete the user called ``name`` and their sessions; false if there is none."""

        def work(connection: Connection) -> bool:
            key = connection.execute(
                select(schema.users.c.id).where(schema.users.c.name == name)
            ).scalar()
            if key is None:
                return False
            connection.execute(delete(schema.sessions).where(schema.sessions.c.user_id == key))
            connection.execute(delete(schema.users).where(schema.users.c.id == key))
            return True

        return self._run(work)

    def record_login(self, user_id: int, ok: bool, locked_until: float | None = None) -> None:
        """After a login attempt: on success note the time and clear the failures; on failure
        count it and lock the account until ``locked_until`` if given."""
        users = schema.users.c
        values: dict[str, Any]
        if ok:
            values = {"last_login": self._clock.now(), "failed_logins": 0, "locked_until": None}
        else:
            values = {"failed_logins": users.failed_logins + 1}
            if locked_until is not None:
                values["locked_until"] = locked_until
        self._run(
            lambda connection: connection.execute(
                update(schema.users).where(users.id == user_id).values(**values)
            )
        )

    def set_totp_step(self, user_id: int, step: int) -> bool:
        """Accept TOTP time step ``step`` for the user only once: false if that step (or a
        later one) was already used, so a code cannot be replayed, even on another process."""
        users = schema.users.c
        return self._run(
            lambda connection: (
                connection.execute(
                    update(schema.users)
                    .where(
                        users.id == user_id,
                        or_(users.totp_last_step.is_(None), users.totp_last_step < step),
                    )
                    .values(totp_last_step=step)
                ).rowcount
                == 1
            )
        )

    def create_session(self, session: SessionInfo) -> None:
        """Store a new session (``session.id`` is the SHA-256 of the cookie value)."""
        if session.stage not in ("password", "full"):
            raise HubError(f"{session.stage!r} is not a session stage")
        self._run(
            lambda connection: connection.execute(
                insert(schema.sessions).values(**_session_values(session))
            )
        )

    def session(self, id_hash: str) -> SessionInfo | None:
        """The unexpired session with this id hash, or ``None``."""
        now = self._clock.now()

        def work(connection: Connection) -> SessionInfo | None:
            row = connection.execute(
                select(schema.sessions).where(
                    schema.sessions.c.id == id_hash, schema.sessions.c.expires > now
                )
            ).first()
            return None if row is None else SessionInfo(**row._asdict())

        return self._run(work, write=False)

    def touch_session(self, id_hash: str, expires: float) -> bool:
        """Move a session's expiry (the idle deadline); false if it is gone."""
        sessions = schema.sessions.c
        return self._run(
            lambda connection: (
                connection.execute(
                    update(schema.sessions).where(sessions.id == id_hash).values(expires=expires)
                ).rowcount
                == 1
            )
        )

    def promote_session(self, id_hash: str, full: SessionInfo) -> bool:
        """Once the TOTP code is right: the unexpired 'password' session ``id_hash`` is
        replaced by ``full`` (a new id, so a cookie fixed before login is worthless). False,
        and nothing stored, if the old session was not there: only one of two requests with
        the same code wins."""
        sessions = schema.sessions.c
        now = self._clock.now()

        def work(connection: Connection) -> bool:
            gone = connection.execute(
                delete(schema.sessions).where(
                    sessions.id == id_hash, sessions.stage == "password", sessions.expires > now
                )
            ).rowcount
            if gone != 1:
                return False
            connection.execute(insert(schema.sessions).values(**_session_values(full)))
            return True

        return self._run(work)

    def delete_session(self, id_hash: str) -> bool:
        """Log out; false if there was no such session."""
        return self._run(
            lambda connection: (
                connection.execute(
                    delete(schema.sessions).where(schema.sessions.c.id == id_hash)
                ).rowcount
                > 0
            )
        )

    def purge_sessions(self) -> int:
        """Delete expired sessions; returns how many."""
        now = self._clock.now()
        return self._run(
            lambda connection: (
                connection.execute(
                    delete(schema.sessions).where(schema.sessions.c.expires <= now)
                ).rowcount
            )
        )


# ---- helpers ----------------------------------------------------------------------------


def _session_values(session: SessionInfo) -> dict[str, Any]:
    return {
        "id": session.id,
        "user_id": session.user_id,
        "stage": session.stage,
        "csrf": session.csrf,
        "created": session.created,
        "expires": session.expires,
        "address": session.address,
    }


def _user(row: Row[Any]) -> UserInfo:
    return UserInfo(
        id=row.id,
        name=row.name,
        password_hash=row.password_hash,
        totp_secret=row.totp_secret,
        created=row.created,
        last_login=row.last_login,
        failed_logins=row.failed_logins,
        locked_until=row.locked_until,
    )
