"""Hide credentials in a source address before it reaches a log line, an error or summary.json.

Cameras put secrets in two places: the userinfo (`rtsp://admin:secret@cam/stream`) and the query
(`rtsp://cam/stream?pwd=secret`, `https://host/live.m3u8?token=...`, signed URLs). Only the secret
values are replaced; the rest of the address stays byte for byte as written, so it still says
which camera it was.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

# Query parameter names (or words in them: access_token, api_key, X-Amz-Signature) that carry secrets.
SECRET_WORDS = frozenset(
    {
        "pwd",
        "password",
        "pass",
        "passwd",
        "token",
        "key",
        "apikey",
        "auth",
        "authorization",
        "credential",
        "secret",
        "signature",
        "sig",
    }
)

_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")  # splits snake, kebab and camelCase names


def is_secret_name(name: str) -> bool:
    """True for a query parameter name that carries a credential (case-insensitive, any word of it)."""
    plain = unquote(name).strip()
    if plain.lower() in SECRET_WORDS:
        return True
    return any(word.lower() in SECRET_WORDS for word in _WORD.findall(plain))


def _mask_userinfo(uri: str) -> str:
    scheme_end = uri.find("://")
    if scheme_end < 0:
        return uri
    start = scheme_end + 3
    end = len(uri)
    for stop in "/?#":  # the authority ends at the first of these
        found = uri.find(stop, start)
        if found >= 0:
            end = min(end, found)
    authority = uri[start:end]
    userinfo, at, host = authority.rpartition("@")  # a password may itself contain '@'
    if not at:
        return uri
    user, colon, password = userinfo.partition(":")
    if not colon or not password:
        return uri
    return f"{uri[:start]}{user}:{MASK}@{host}{uri[end:]}"


def _mask_query(uri: str) -> str:
    query_start = uri.find("?")
    if query_start < 0:
        return uri
    fragment_start = uri.find("#", query_start)
    query_end = len(uri) if fragment_start < 0 else fragment_start
    parts = re.split(r"([&;])", uri[query_start + 1 : query_end])  # keep the separators as written
    for i in range(0, len(parts), 2):
        name, eq, value = parts[i].partition("=")
        if eq and value and is_secret_name(name):
            parts[i] = f"{name}={MASK}"
    return uri[: query_start + 1] + "".join(parts) + uri[query_end:]


def redact_uri(uri: str) -> str:
    """`uri` with the userinfo password and password-like query values replaced by `***`.

    >>> redact_uri("rtsp://admin:s3cret@10.0.0.5:554/live?channel=1&Token=abc")
    'rtsp://admin:***@10.0.0.5:554/live?channel=1&Token=***'
    """
    return _mask_query(_mask_userinfo(uri))
