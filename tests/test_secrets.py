"""The credential scanner (tests/secret_scan.py) and the repository's pages and notebooks.

Every secret here is fake but has the shape of a real one. The scanner must find each one —
as plain text, inside a notebook's JSON and in highlighted HTML — and must pass text that only
*names* credentials (the Earth Engine page names every variable), so its verdict on the book
means something.
"""

from __future__ import annotations

import base64
import html
import json
import random
import re
import string
from pathlib import Path

import pytest
from secret_scan import CREDENTIAL_ENV, canaries, find_secrets, scan_files

REPO = Path(__file__).resolve().parents[1]
SESSION = REPO / "soilbook" / "data" / "earthengine" / "session.py"
URLSAFE = string.ascii_letters + string.digits + "-_"


def _chars(n: int, seed: int, alphabet: str = URLSAFE) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


def _pem(seed: int = 1) -> str:
    body = base64.b64encode(random.Random(seed).randbytes(600)).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN PRIVATE KEY-----\n{lines}\n-----END PRIVATE KEY-----\n"


def _service_account_key() -> dict[str, str]:
    return {
        "type": "service_account",
        "project_id": "fake-project-123",
        "private_key_id": _chars(40, 2, "0123456789abcdef"),
        "private_key": _pem(3),
        "client_email": "ci@fake-project-123.iam.gserviceaccount.com",
    }


REFRESH = "1//" + _chars(100, 4)
ACCESS = "ya29." + _chars(150, 5)
API_KEY = "AIza" + _chars(35, 6)
CLIENT_SECRET = _chars(24, 7)
GOCSPX = "GOCSPX-" + _chars(28, 8)

#: name -> (text holding the secret, the secret itself)
PLANTED = {
    "pem": (f"key:\n{_pem()}", _pem()),
    "pem_rsa": (_pem(11).replace("BEGIN", "BEGIN RSA"), _pem(11).split("\n")[1]),
    "service_account": (json.dumps(_service_account_key(), indent=2), _pem(3).split("\n")[1]),
    "refresh_token": (f"token = '{REFRESH}'", REFRESH),
    "access_token": (f"Authorization: Bearer {ACCESS}", ACCESS),
    "api_key": (f"https://example.org/?key={API_KEY}&x=1", API_KEY),
    "client_secret_json": (json.dumps({"client_secret": CLIENT_SECRET}), CLIENT_SECRET),
    "client_secret_kwarg": (f"flow(client_secret='{CLIENT_SECRET}')", CLIENT_SECRET),
    "gocspx": (f"secret {GOCSPX}", GOCSPX),
}


def _notebook_json(text: str) -> str:
    """``text`` as a stream output of a notebook cell, serialised the way nbformat writes it."""
    cell = {
        "cell_type": "code",
        "source": ["print(key)\n"],
        "outputs": [{"output_type": "stream", "name": "stdout", "text": text.splitlines(True)}],
    }
    return json.dumps({"cells": [cell], "nbformat": 4}, indent=1)


def _highlighted_html(text: str) -> str:
    """``text`` as a built page shows code: escaped, each token in its own span."""
    tokens = re.split(r"(\s+|[:,{}])", text)
    spans = "".join(f'<span class="n">{html.escape(t)}</span>' for t in tokens if t)
    return f'<div class="highlight"><pre>{spans}</pre></div>'


@pytest.fixture(autouse=True)
def _no_real_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that plant their own canaries start from an environment without credentials."""
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("name", sorted(PLANTED))
@pytest.mark.parametrize("wrap", ["plain", "notebook", "html"])
def test_each_planted_secret_is_found_without_repeating_it(name: str, wrap: str) -> None:
    text, secret = PLANTED[name]
    wrapped = {"plain": text, "notebook": _notebook_json(text), "html": _highlighted_html(text)}
    findings = find_secrets(wrapped[wrap])
    assert findings, f"{name} ({wrap}) was not found"
    assert secret not in "\n".join(findings)
    assert secret[6:30] not in "\n".join(findings)


def test_the_kind_of_each_secret_is_named() -> None:
    kinds = {
        "pem": "PEM private-key block",
        "service_account": "service-account JSON key",
        "refresh_token": "refresh token",
        "access_token": "access token",
        "api_key": "API key",
        "client_secret_json": "client secret",
        "gocspx": "client secret",
    }
    for name, kind in kinds.items():
        assert any(kind in f for f in find_secrets(PLANTED[name][0])), name


@pytest.mark.parametrize(
    "text",
    [
        "1//" + _chars(29, 9),  # too short for a refresh token
        "ya29." + _chars(10, 9),
        "AIza" + _chars(34, 9),
        'client_secret = "..."',
        "client_secret: CLIENT_SECRET",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",  # a placeholder
        '{"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com"}',
    ],
)
def test_near_misses_are_not_secrets(text: str) -> None:
    assert find_secrets(text) == []


def test_mentions_of_names_are_not_secrets() -> None:
    text = "\n".join(
        [
            *(f"set ${n} or export {n}=..." for n in CREDENTIAL_ENV),
            "A key file holds private_key, private_key_id and client_email; its type is",
            '"service_account". A token file holds refresh_token and client_secret.',
            "Never paste a BEGIN PRIVATE KEY block, an AIza key or a ya29. token anywhere.",
        ]
    )
    assert find_secrets(text) == []


def test_base64_images_do_not_look_like_tokens() -> None:
    """A notebook's PNGs are megabytes of base64; by chance they contain '1//' followed by
    30 letters about once per 700,000 characters. Tokens must start at a boundary."""
    blob = base64.b64encode(random.Random(10).randbytes(3_000_000)).decode()
    assert re.search(r"1//[A-Za-z0-9_-]{30}", blob), "the blob should contain a look-alike"
    nb = json.dumps({"outputs": [{"data": {"image/png": blob}}]})
    assert find_secrets(nb) == []
    assert find_secrets(nb + f'\n"token": "{REFRESH}"'), "a real token after the blob is missed"


def test_an_environment_value_is_a_canary(monkeypatch: pytest.MonkeyPatch) -> None:
    for i, name in enumerate(CREDENTIAL_ENV):
        canary = f"canary-{name.lower()}-{_chars(12, 100 + i)}"
        page = f"<p>project: {html.escape(canary)}</p>"
        assert find_secrets(page) == []
        monkeypatch.setenv(name, canary)
        findings = find_secrets(page)
        assert findings and name in findings[0] and canary not in findings[0]
        assert find_secrets(_notebook_json(f"using {canary}")), f"{name} in a notebook"
        monkeypatch.delenv(name)


def test_the_key_files_secret_fields_are_canaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _service_account_key()
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    assert set(canaries()) >= {
        "$GOOGLE_APPLICATION_CREDENTIALS",
        "private_key_id of $GOOGLE_APPLICATION_CREDENTIALS",
        "private_key of $GOOGLE_APPLICATION_CREDENTIALS",
    }
    findings = find_secrets(f"key id {key['private_key_id']} was printed")
    assert findings == [
        f"the value of private_key_id of $GOOGLE_APPLICATION_CREDENTIALS: "
        f"{key['private_key_id'][:6]}... (40 characters)"
    ]
    # a key file that is not JSON gives no field canaries, only the path
    path.write_text("not json")
    assert list(canaries()) == ["$GOOGLE_APPLICATION_CREDENTIALS"]


def test_short_values_are_not_canaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EE_PROJECT", "ab")
    assert canaries() == {}
    assert find_secrets("a tab, a cab") == []


def test_the_canaries_are_every_variable_session_reads() -> None:
    """If session.py starts reading another variable, the scanner must watch it too."""
    source = SESSION.read_text()
    read = set(re.findall(r"os\.environ(?:\.get\(|\[)\s*[\"']([A-Z_]+)[\"']", source))
    project_env = re.search(r"PROJECT_ENV = \(([^)]*)\)", source)
    assert project_env is not None
    read |= set(re.findall(r"[\"']([A-Z_]+)[\"']", project_env.group(1)))
    assert read, "no environment variables found in session.py: has the code moved?"
    assert read == set(CREDENTIAL_ENV)


def test_the_earthengine_page_names_the_variables_but_holds_no_secret() -> None:
    page = REPO / "book" / "earthengine.md"
    text = page.read_text()
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "EARTHENGINE_PROJECT", "EE_PROJECT"):
        assert name in text, f"the page should explain {name}"
    assert find_secrets(text) == []


def test_book_pages_and_notebook_sources_hold_no_secret() -> None:
    files = [
        *sorted((REPO / "book").glob("*.md")),
        *sorted((REPO / "notebooks").glob("*.ipynb")),
        *sorted((REPO / "notebooks" / "params").glob("*/*.yaml")),
        REPO / "_config.yml",
        REPO / "_toc.yml",
    ]
    assert len(files) > 8
    assert scan_files(files) == []
