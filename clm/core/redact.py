"""Secrets never reach a message or a log: URLs are shown without their credentials.

A database URL carries its password in the user info
(``postgresql://user:pw@host/db``) or in a query parameter
(``?password=pw``). :func:`redact_url` masks both; :func:`scrub` removes a
URL's secret values from any text, such as a driver's error message that
quotes what it was given.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

MASK = "***"
# Query parameters that hold a credential (libpq, SQLAlchemy, Redis, cloud drivers).
SECRET_PARAMS = frozenset(
    {"password", "passwd", "pwd", "pass", "secret", "token", "sslpassword", "access_token", "key"}
)


def _secret_param(name: str) -> bool:
    name = name.lower()
    return name in SECRET_PARAMS or name.endswith(("password", "secret", "token"))


def secrets_of(url: str) -> list[str]:
    """The secret values a URL holds (its password and secret query parameters)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and _secret_param(name):
            found += [value, quote(value, safe="")]
    return sorted({s for s in found if s}, key=len, reverse=True)


def redact_url(url: str) -> str:
    """``url`` with its password and secret query parameters replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if not secrets_of(url) and parts.password is None:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = urlencode(
        [
            (name, MASK if _secret_param(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    out = f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    return out + (f"#{parts.fragment}" if parts.fragment else "")


def scrub(text: str, *urls: str) -> str:
    """``text`` with every secret of ``urls`` replaced by ``***``."""
    for url in urls:
        for secret in secrets_of(url):
            text = text.replace(secret, MASK)
    return text
