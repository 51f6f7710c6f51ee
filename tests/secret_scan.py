"""A small scanner for credentials in text: notebooks, their run records, book pages, HTML.

:func:`find_secrets` looks for **values**, never for names: a page may say
``GOOGLE_APPLICATION_CREDENTIALS`` or "a service-account key" as often as it likes; what it must
not hold is a key, a token or the value of a credential variable. It finds

- a PEM private-key block (``-----BEGIN ... PRIVATE KEY-----`` followed by key material);
- a service-account JSON key (``"type": "service_account"`` together with ``"private_key"``);
- Google OAuth refresh tokens (``1//`` + at least 30 url-safe characters), access tokens
  (``ya29.`` + at least 20), API keys (``AIza`` + 35) and OAuth client secrets (a
  ``client_secret`` key with a value of 16 or more characters, or a ``GOCSPX-`` secret);
- canaries: the value of any environment variable :mod:`soilbook.data.earthengine.session`
  reads (:data:`CREDENTIAL_ENV`) that is set while the scan runs, and the secret fields of the
  JSON file ``GOOGLE_APPLICATION_CREDENTIALS`` names.

Each pattern is searched in four views of the text: as it is, JSON-unescaped (``\\"`` and
``\\n`` of a notebook's strings), the strings of a JSON document joined (a notebook's text is
stored as a list of lines) and as HTML text (tags dropped, entities decoded), so a key quoted
in a notebook cell or highlighted in a built page is found too. Token patterns must start
where no base64 character precedes them, so the base64 of an embedded PNG cannot fake one.
The findings name the kind, the view and a redacted prefix: they never repeat a secret.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from soilbook.data.earthengine.session import PROJECT_ENV

#: Environment variables that locate Earth Engine credentials or name the project
#: (:mod:`soilbook.data.earthengine.session` reads exactly these).
CREDENTIAL_ENV: tuple[str, ...] = (
    *PROJECT_ENV,
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
)
#: Canary values shorter than this are ignored (too common to mean a leak).
MIN_CANARY_LENGTH = 6
#: Fields of a credentials JSON file whose values are secrets.
SECRET_FIELDS = ("private_key", "private_key_id", "refresh_token", "client_secret")

_NOT_B64 = r"(?<![A-Za-z0-9+/])"  # no base64 character right before a token
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "PEM private-key block",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:\s|\\n|\\r)*[A-Za-z0-9+/=]{32,}"),
    ),
    ("Google OAuth refresh token", re.compile(_NOT_B64 + r"1//[A-Za-z0-9_-]{30,}")),
    ("Google OAuth access token", re.compile(_NOT_B64 + r"ya29\.[A-Za-z0-9_-]{20,}")),
    ("Google API key", re.compile(_NOT_B64 + r"AIza[A-Za-z0-9_-]{35}")),
    (
        "OAuth client secret",
        re.compile(r"client_secret['\"]?\s*[:=]\s*['\"]?[A-Za-z0-9_-]{16,}", re.IGNORECASE),
    ),
    ("OAuth client secret", re.compile(_NOT_B64 + r"GOCSPX-[A-Za-z0-9_-]{20,}")),
)
_SA_TYPE = re.compile(r"""['"]type['"]\s*:\s*['"]service_account['"]""")
_SA_KEY = re.compile(r"""['"]private_key['"]\s*:""")
#: Most characters between the two halves of a service-account key.
_SA_SPAN = 5000
_TAG = re.compile(r"<[^<>]*>")


def _json_unescaped(text: str) -> str:
    """``text`` with the escapes of JSON strings undone (``\\"``, ``\\n``, ``\\/``, ``\\\\``)."""
    out = text.replace("\\\\", "\0").replace('\\"', '"').replace("\\/", "/")
    return out.replace("\\n", "\n").replace("\\r", "\r").replace("\\t", "\t").replace("\0", "\\")


def _joined_strings(value: Any) -> Iterator[str]:
    """The strings of a parsed JSON value; a list's items are joined as nbformat splits text
    (into lines), other values are kept apart by newlines."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        yield "".join(value)
    elif isinstance(value, list | dict):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _joined_strings(item)
            yield "\n"


def _json_strings(text: str) -> str:
    """The text of the strings of a JSON document (a notebook: its cells and outputs joined
    back from their lines); ``""`` when ``text`` is not JSON."""
    try:
        value = json.loads(text)
    except ValueError:
        return ""
    return "".join(_joined_strings(value))


def _html_text(text: str) -> str:
    """The text of an HTML page: tags dropped (so highlighted code joins up), entities decoded."""
    return html.unescape(_TAG.sub("", text))


_VIEWS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("text", lambda t: t),
    ("JSON-unescaped text", _json_unescaped),
    ("JSON strings", _json_strings),
    ("HTML text", _html_text),
)


def _redact(match: str) -> str:
    """The first 6 characters of a match and its length: enough to find it, useless to use."""
    return f"{match[:6]}... ({len(match)} characters)"


def _service_account(view: str) -> bool:
    """Whether ``view`` holds a service-account key: its ``type`` and its ``private_key`` within
    :data:`_SA_SPAN` characters of each other."""
    keys = [m.start() for m in _SA_KEY.finditer(view)]
    return any(abs(t.start() - k) <= _SA_SPAN for t in _SA_TYPE.finditer(view) for k in keys)


def _file_secrets(path: str) -> dict[str, str]:
    """The :data:`SECRET_FIELDS` of the credentials JSON file at ``path`` (``{}`` when it is
    not a readable JSON object)."""
    try:
        info = json.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict):
        return {}
    return {f: str(info[f]) for f in SECRET_FIELDS if isinstance(info.get(f), str)}


def canaries(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What must not appear anywhere, by where it comes from: the set values of
    :data:`CREDENTIAL_ENV` and the secret fields of the key file
    ``GOOGLE_APPLICATION_CREDENTIALS`` names; values shorter than :data:`MIN_CANARY_LENGTH`
    are left out."""
    env = os.environ if environ is None else environ
    found = {f"${name}": env[name] for name in CREDENTIAL_ENV if env.get(name)}
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        secrets = _file_secrets(key_file)
        found.update(
            {f"{field} of $GOOGLE_APPLICATION_CREDENTIALS": v for field, v in secrets.items()}
        )
    return {where: v for where, v in found.items() if len(v) >= MIN_CANARY_LENGTH}


def _canary_forms(value: str) -> set[str]:
    """``value`` as it would be written in plain text, in a JSON string and in HTML."""
    return {value, json.dumps(value)[1:-1], html.escape(value), html.escape(value, quote=False)}


def _pattern_findings(text: str) -> Iterable[str]:
    for view_name, view_of in _VIEWS:
        view = view_of(text)
        for kind, pattern in _PATTERNS:
            for match in pattern.finditer(view):
                yield f"{kind} in the {view_name}: {_redact(match.group())}"
        if _service_account(view):
            yield f"service-account JSON key in the {view_name}"


def find_secrets(text: str, *, environ: Mapping[str, str] | None = None) -> list[str]:
    """What in ``text`` looks like a credential (see the module docstring), one line each,
    without the secret; ``[]`` when nothing does.

    ``environ`` (default ``os.environ``) gives the canaries: the values of
    :data:`CREDENTIAL_ENV` set now and the secret fields of the key file named there.
    """
    findings = dict.fromkeys(_pattern_findings(text))
    for where, value in canaries(environ).items():
        if any(form in text for form in _canary_forms(value)):
            findings[f"the value of {where}: {_redact(value)}"] = None
    return list(findings)


def scan_files(paths: Iterable[Path], *, environ: Mapping[str, str] | None = None) -> list[str]:
    """:func:`find_secrets` over each file (read as UTF-8, undecodable bytes replaced), each
    finding prefixed by the file's path."""
    return [
        f"{path}: {finding}"
        for path in paths
        for finding in find_secrets(path.read_text(errors="replace"), environ=environ)
    ]
