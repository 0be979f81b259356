"""`busymate token`, `busymate login` and `busymate logout`: credentials for integrators, scripts and the
CLI."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from busymate import tokens
from busymate.cli.common import err, fail, friendly, out, settings_from
from busymate.cli.devices import device_token, find_device
from busymate.cli.session import (
    acting_token,
    admin_session,
    admin_sign_in,
    forget_session,
    sign_in,
    store_session,
)
from busymate.client import Api
from busymate.settings import Settings


def _password(email: str, given: str | None) -> str:
    if given:
        return given
    if os.environ.get("BUSYMATE_PASSWORD"):
        return os.environ["BUSYMATE_PASSWORD"]
    if not os.isatty(0):
        fail("no password: pass --password, set BUSYMATE_PASSWORD, or run in a terminal to be asked")
    return str(typer.prompt(f"Password for {email}", hide_input=True))


def _session(settings: Settings, email: str | None, password: str | None, admin: bool) -> dict[str, Any]:
    """A new session: the local admin's (made again if the database lost it), or the user's."""
    if admin or email is None:
        return admin_sign_in(settings)
    return sign_in(settings, email, _password(email, password))


def token(
    ctx: typer.Context,
    email: Annotated[
        str | None, typer.Option("--email", help="Sign in as this user (asks for the password).")
    ] = None,
    password: Annotated[
        str | None, typer.Option("--password", help="The password (or BUSYMATE_PASSWORD).")
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="The seeded local admin (admin@busymate.local).")
    ] = False,
    device: Annotated[str | None, typer.Option("--device", help="A device's token, by name or uuid.")] = None,
    anon: Annotated[bool, typer.Option("--anon", help="The anon key.")] = False,
    service: Annotated[
        bool, typer.Option("--service", help="The service_role key (keep it server-side).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="The whole session as JSON (user sign-ins).")
    ] = False,
) -> None:
    """Print an access token: yours (after `busymate login`), a user's, the local admin's, a device's, or a
    key.

    Use it as `Authorization: Bearer <token>` on /rest/v1, /realtime/v1 and /functions/v1, or with
    supabase-js/supabase-py `setSession` / `realtime.setAuth`."""
    settings = settings_from(ctx)
    chosen = sum(bool(x) for x in (email, admin, device, anon, service))
    if chosen > 1:
        fail("choose one of --email, --admin, --device, --anon, --service")
    if anon:
        out.print(tokens.anon_key(settings.jwt_secret), soft_wrap=True)
        return
    if service:
        out.print(tokens.service_role_key(settings.jwt_secret), soft_wrap=True)
        return
    if device is not None:
        acting, _ = acting_token(settings)
        with Api.for_project(settings, acting) as api:
            minted = device_token(api, find_device(api, device))
        out.print(minted, soft_wrap=True)
        return
    if email is None and not admin:
        acting, who = acting_token(settings)
        err.print(f"(a token for {who})")
        out.print(acting, soft_wrap=True)
        return
    if admin and not as_json:  # the kept session: no sign-in spent per call
        out.print(admin_session(settings)["access_token"], soft_wrap=True)
        return
    session = _session(settings, email, password, admin)
    if as_json:
        out.print_json(json.dumps(session))
    else:
        out.print(session["access_token"], soft_wrap=True)


def login(
    ctx: typer.Context,
    email: Annotated[
        str | None, typer.Option("--email", help="Your email (default: the local admin).")
    ] = None,
    password: Annotated[
        str | None, typer.Option("--password", help="The password (or BUSYMATE_PASSWORD).")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Sign in as the seeded local admin.")] = False,
) -> None:
    """Sign in and keep the session (under .busymate/, 0600) for the CLI's own commands."""
    settings = settings_from(ctx)
    session = _session(settings, email, password, admin)
    store_session(settings, session)
    err.print(
        f"signed in as {session['user']['email']}; the CLI now acts as this user (`busymate logout` to stop)"
    )


def logout(ctx: typer.Context) -> None:
    """Sign the stored session out (the CLI goes back to the local admin)."""
    settings = settings_from(ctx)
    err.print("signed out" if forget_session(settings) else "no stored session")


def register(app: typer.Typer) -> None:
    """Add the commands to the `busymate` app."""
    app.command()(friendly(token))
    app.command()(friendly(login))
    app.command()(friendly(logout))
