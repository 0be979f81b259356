"""Redaction of captured traffic before it reaches a model: every secret becomes `<redacted len=NN>`.

The database already replaces the values of sensitive headers (`private.redact_headers`); this goes further,
in every place a credential hides in captured traffic: token-like query parameters (in the query and the
fragment, where OAuth's implicit flow puts `access_token`), JSON fields with sensitive names (recursively,
whatever the depth), form-encoded and cookie-style `name=value` pairs, `"name": "value"` pairs in text that is
not valid JSON (a truncated body), and, anywhere, JWT-shaped strings (`eyJ...`), `Bearer`/`Basic`
credentials, well-known API key shapes and long random-looking strings. Names and lengths survive, so the
shape of the auth can still be explained; the values do not. The MCP server reuses `redact_text`,
`redact_headers`, `redact_url` and `redact_json`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import orjson

__all__ = [
    "is_sensitive_name",
    "marker",
    "redact_body",
    "redact_headers",
    "redact_json",
    "redact_pairs",
    "redact_text",
    "redact_url",
]

# A name is sensitive when, lower-cased and without separators, it contains one of these...
_CONTAINS = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "apikey",
    "accesskey",
    "privatekey",
    "signingkey",
    "clientkey",
    "session",
    "cookie",
    "credential",
    "authorization",
    "bearer",
    "jwt",
    "signature",
    "assertion",
)
# ...or one of its words (split on separators and camelCase) is one of these...
_WORDS = frozenset({"auth", "sig", "sid", "pwd", "pass", "otp", "csrf", "xsrf", "nonce", "ticket"})
# ...or it is exactly one of these (too common as a part: "country_code", "primary_key").
_EXACT = frozenset({"code", "key", "hmac"})
# Headers whose whole value is a credential, as private.is_sensitive_header says.
_SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})

_SEPARATORS = re.compile(r"[-_.\s\[\]]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MARKER = re.compile(r"<redacted len=\d+>")

# Values that are secrets wherever they appear.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}(?:\.[A-Za-z0-9_-]*){0,2}")
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic|token)(\s+)([A-Za-z0-9._~+/=-]{8,})")
_KNOWN_KEYS = re.compile(
    r"\b(?:sk|pk|rk)[-_](?:live|test|ant|proj)?[-_]?[A-Za-z0-9_-]{16,}"  # Stripe, Anthropic, OpenAI
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"  # GitHub
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bAIza[0-9A-Za-z_-]{30,}"  # Google API key
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LONG_RUN = re.compile(r"(?<![A-Za-z0-9_+=-])[A-Za-z0-9_+=-]{24,}(?![A-Za-z0-9_+=-])")
_HEX = re.compile(r"[0-9a-fA-F]+")
# name=value pairs (query strings, form bodies, cookies); the name is checked by is_sensitive_name.
_PAIR = re.compile(r"(?P<lead>^|[?&;#\s,])(?P<name>[A-Za-z0-9_.\-\[\]%]{1,100})=(?P<value>[^&;#\s,\"'<>]+)")
# "name": "value" pairs in text that is not JSON as a whole (a truncated body, a JSON string inside a string).
_JSON_PAIR = re.compile(
    r'(?P<head>"(?P<name>[^"\\]{1,100})"\s*:\s*)(?P<value>"(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*)'
)
_JSON_PAIR_ESCAPED = re.compile(
    r'(?P<head>\\"(?P<name>[^"\\]{1,100})\\"\s*:\s*)(?P<value>\\"(?:[^"\\]|\\[^"])*\\")'
)


def marker(value: str) -> str:
    """The placeholder for a redacted value: its length survives, its content does not."""
    return f"<redacted len={len(value)}>"


def is_sensitive_name(name: str) -> bool:
    """Whether a header, parameter, cookie or field called `name` carries a credential."""
    name = unquote_plus(name).strip()
    lowered = name.lower()
    if lowered in _SENSITIVE_HEADERS:
        return True
    flat = _SEPARATORS.sub("", lowered)
    if flat in _EXACT or any(part in flat for part in _CONTAINS):
        return True
    words = {word.lower() for word in _SEPARATORS.split(_CAMEL.sub(" ", name)) if word}
    return not words.isdisjoint(_WORDS)


def _looks_random(run: str) -> bool:
    """A long run that reads like a generated secret: mixed case and digits, or long hex; never a uuid."""
    if _UUID.fullmatch(run) or run.count("-") >= 4:
        return False
    digits = any(c.isdigit() for c in run)
    if _HEX.fullmatch(run):
        return len(run) >= 32 and digits and any(c.isalpha() for c in run)
    return digits and any(c.islower() for c in run) and any(c.isupper() for c in run)


def _long_run(match: re.Match[str]) -> str:
    run = match.group(0)
    return marker(run) if _looks_random(run) else run


def _pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if not is_sensitive_name(match.group("name")) or _MARKER.fullmatch(value):
        return match.group(0)
    return f"{match.group('lead')}{match.group('name')}={marker(value)}"


def _json_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if not is_sensitive_name(match.group("name")):
        return match.group(0)
    quote = '\\"' if value.startswith('\\"') else '"' if value.startswith('"') else ""
    inner = value[len(quote) : len(value) - len(quote)] if quote else value
    if _MARKER.fullmatch(inner):
        return match.group(0)
    return f"{match.group('head')}{quote}{marker(inner)}{quote}"


def _scheme_credential(match: re.Match[str]) -> str:
    value = match.group(3)
    # A credential has a digit, a capital or a symbol, or is long; a plain word after "token" is prose.
    if not (len(value) >= 20 or re.search(r"[0-9A-Z._~+/=]", value)):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{marker(value)}"


_PASSES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_JSON_PAIR, _json_pair),
    (_JSON_PAIR_ESCAPED, _json_pair),
    (_PAIR, _pair),
    (_JWT, lambda m: marker(m.group(0))),
    (_SCHEME_CREDENTIAL, _scheme_credential),
    (_KNOWN_KEYS, lambda m: marker(m.group(0))),
    (_LONG_RUN, _long_run),
)


def redact_text(text: str) -> str:
    """Any text with its secrets replaced: sensitive name=value and "name": value pairs, JWTs, scheme
    credentials (Bearer, Basic), well-known API keys and long random-looking strings. Other text is
    unchanged."""
    for pattern, replace in _PASSES:
        text = pattern.sub(replace, text)
    return text


def redact_pairs(text: str, separator: str = "&") -> str:
    """A form-encoded body, a query string or a cookie list (`separator` ";"): each sensitive pair's value
    redacted, every other value passed through redact_text; order and spelling kept."""
    out = []
    for part in text.split(separator):
        name, eq, value = part.partition("=")
        if eq and value and is_sensitive_name(name) and not _MARKER.fullmatch(value.strip()):
            lead = value[: len(value) - len(value.lstrip())]
            out.append(f"{name}={lead}{marker(value.strip())}")
        else:
            out.append(f"{name}{eq}{redact_text(value)}" if eq else redact_text(part))
    return separator.join(out)


def redact_url(url: str) -> str:
    """A URL with its user info password, its sensitive query and fragment parameters and any secret in its
    path redacted; the rest is kept exactly as captured."""
    base, hash_mark, fragment = url.partition("#")
    base, question, query = base.partition("?")
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        userinfo, at, hostport = authority.rpartition("@")
        if at:
            user, colon, password = userinfo.partition(":")
            userinfo = f"{user}:{marker(password)}" if colon else userinfo
            authority = f"{userinfo}@{hostport}"
        base = f"{scheme}://{authority}{slash}{redact_text(path)}"
    else:
        base = redact_text(base)
    out = base
    if question:
        out += "?" + redact_pairs(query)
    if hash_mark:
        out += "#" + (redact_pairs(fragment) if "=" in fragment else redact_text(fragment))
    return out


def _all_scalars(value: Any) -> Any:
    """Every string and number under a sensitive name, redacted; keys, booleans and nulls kept."""
    if isinstance(value, dict):
        return {key: _all_scalars(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_all_scalars(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and _MARKER.fullmatch(value):
        return value
    return marker(str(value))


def redact_json(value: Any) -> Any:
    """A decoded JSON value with every field of a sensitive name redacted (all of its scalars, at any depth)
    and every other string passed through redact_text. Keys, numbers and structure survive."""
    if isinstance(value, dict):
        return {
            key: _all_scalars(item) if is_sensitive_name(str(key)) else redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, str):
        single_url = "://" in value and not any(c.isspace() for c in value)
        return redact_url(value) if single_url else redact_text(value)
    return value


def redact_headers(headers: Any) -> list[list[str]]:
    """Headers (a list of [name, value] pairs, or an object) with every sensitive value redacted: the
    credential headers and sensitive names whole, cookies' and any other value's secrets by redact_text."""
    pairs = headers.items() if isinstance(headers, dict) else headers if isinstance(headers, list) else []
    out: list[list[str]] = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or not pair:
            continue
        name = str(pair[0])
        value = "" if len(pair) < 2 or pair[1] is None else str(pair[1])
        if _MARKER.fullmatch(value):
            out.append([name, value])
        elif is_sensitive_name(name):
            out.append([name, marker(value)])
        elif "://" in value and not any(c.isspace() for c in value):
            out.append([name, redact_url(value)])
        else:
            out.append([name, redact_text(value)])
    return out


def redact_body(text: str, content_type: str | None = None) -> str:
    """A captured body as text, redacted according to what it is: JSON (parsed, redact_json), form-encoded
    (redact_pairs), anything else (redact_text, which also catches the "name": value pairs of a truncated
    JSON)."""
    stripped = text.strip()
    kind = (content_type or "").lower()
    if stripped[:1] in ("{", "["):
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
        else:
            return orjson.dumps(redact_json(parsed)).decode()
    if "x-www-form-urlencoded" in kind or (
        "\n" not in stripped and re.fullmatch(r"[^=&\s]+=[^&\s]*(?:&[^=&\s]+=[^&\s]*)*", stripped)
    ):
        return redact_pairs(stripped)
    return redact_text(text)
