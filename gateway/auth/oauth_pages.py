"""The HTML the authorization endpoint shows (sign-in and consent pages, in plain HTML that no other site may
frame) and the redirect back to the client."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from urllib.parse import urlencode, urlsplit

from busymate.gateway.auth.answer import Answer
from busymate.gateway.auth.users import Row
from busymate.scopes import offers_choice, offers_write


def sign_in_page(
    issuer: str, authorization_id: str, client: Row, error: str | None, status: int = 200
) -> Answer:
    """The sign-in form, with `error` above it when the last attempt failed."""
    name = html.escape(client["client_name"] or client["client_id"])
    notice = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return page(
        status,
        "Sign in to Busymate",
        f"""<p><strong>{name}</strong> wants to use your Busymate account.</p>{notice}
<form method="post" action="{issuer}/oauth/authorize">
<input type="hidden" name="authorization_id" value="{authorization_id}">
<input type="hidden" name="action" value="sign_in">
<label>Email <input type="email" name="email" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>""",
    )


def consent_page(
    issuer: str, authorization_id: str, client: Row, resource: str | None, scope: str, user: Row, csrf: str
) -> Answer:
    """The approve-or-deny form for a signed-in user; `csrf` binds it to the browser's cookie."""
    name = html.escape(client["client_name"] or client["client_id"])
    target = html.escape(resource or "your Busymate data")
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in scope.split() if s)
    return page(
        200,
        f"Allow {name}?",
        f"""<p>Signed in as <strong>{html.escape(user["email"] or "")}</strong>.</p>
<p><strong>{name}</strong> asks to act as you on <code>{target}</code>, with what your role allows.</p>
{f"<ul>{scopes}</ul>" if scopes else ""}
<p>Redirects to <code>{html.escape(", ".join(client["redirect_uris"]))}</code>.</p>
<form method="post" action="{issuer}/oauth/authorize">
<input type="hidden" name="authorization_id" value="{authorization_id}">
<input type="hidden" name="csrf" value="{csrf}">
{_access_choice(scope)}
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>""",
        client["redirect_uris"],
    )


def _access_choice(scope: str) -> str:
    """Read-only or read-write (busymate/scopes.py): offered when the client asks for a Busymate scope or
    none; read-write only when it asked for it (or for nothing in particular), and then preselected."""
    if not offers_choice(scope):
        return ""
    write = offers_write(scope)
    write_option = (
        '<label><input type="radio" name="access" value="write" checked> Read and write: what your role '
        "allows, changes included</label>"
        if write
        else ""
    )
    read_checked = "" if write else " checked"
    return f"""<fieldset><legend>Access</legend>
<label><input type="radio" name="access" value="read"{read_checked}> Read only: look, never change</label>
{write_option}
</fieldset>"""


def _csp_source(uri: str) -> str | None:
    """A CSP source for a registered redirect URI: its origin (`http://127.0.0.1:53682`), or its scheme for
    a private-use one (`com.example.app:`); None when a part holds anything but plain host characters (a
    `;` would start another directive), and then the browser blocks that redirect."""
    parts = urlsplit(uri)
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme):
        return None
    if not parts.netloc:
        return f"{parts.scheme}:"
    if not re.fullmatch(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?", parts.netloc):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def redirect(
    issuer: str,
    redirect_uri: str,
    state: str | None,
    *,
    code: str | None = None,
    error: str | None = None,
    description: str | None = None,
) -> Answer:
    """The 302 back to the client with the code or the error, `state` and `iss` (RFC 9207)."""
    params = {"code": code} if code else {"error": error or "server_error"}
    if description:
        params["error_description"] = description
    if state is not None:
        params["state"] = state
    params["iss"] = issuer
    separator = "&" if urlsplit(redirect_uri).query else "?"
    location = f"{redirect_uri}{separator}{urlencode(params)}"
    return Answer(302, None, {"location": location, "cache-control": "no-store"})


def page(status: int, title: str, content: str, redirect_uris: Sequence[str] = ()) -> Answer:
    """A small HTML page that no other site may frame; its forms post to this server only, and may be
    redirected on to `redirect_uris` (CSP's form-action also governs the redirect after a submission, so a
    browser blocks the approval's 302 to the client otherwise)."""
    form_action = " ".join(["'self'", *dict.fromkeys(filter(None, map(_csp_source, redirect_uris)))])
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">\
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.75rem 0}}input{{display:block;width:100%;padding:.4rem}}
input[type=radio]{{display:inline;width:auto}}fieldset{{border:0;padding:0}}
button{{margin:.75rem .5rem 0 0;padding:.5rem 1rem}}.error{{color:#b00020}}</style></head>
<body><h1>{html.escape(title)}</h1>
{content}
</body></html>"""
    return Answer(
        status,
        None,
        {
            "cache-control": "no-store",
            "x-frame-options": "DENY",
            "content-security-policy": (
                f"default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}"
            ),
        },
        raw=body.encode(),
        content_type="text/html; charset=utf-8",
    )
