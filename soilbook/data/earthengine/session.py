"""The Earth Engine session: the lazy ``ee`` import and credentials read from the environment.

``ee`` (the ``earthengine-api`` package) is optional and imported only here, inside functions,
so that the rest of the package — checks and the conversion to the schema — works without it.
Credentials are never arguments: they come from the environment (a service-account key, the
``earthengine authenticate`` token or gcloud's application-default credentials).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soilbook.errors import EarthEngineSetupError, require

#: Environment variables read for the Google Cloud project, in order.
PROJECT_ENV = ("EARTHENGINE_PROJECT", "EE_PROJECT", "GOOGLE_CLOUD_PROJECT")

_SETUP_HELP = (
    "What to do (one of):\n"
    "  1. Service account: set GOOGLE_APPLICATION_CREDENTIALS=/path/to/key.json (a JSON key of a "
    "service account registered for Earth Engine); the project defaults to the key's project_id.\n"
    "  2. Your own account: run `earthengine authenticate` once (or "
    "`gcloud auth application-default login`), and set EARTHENGINE_PROJECT=<your Cloud project "
    "id registered for Earth Engine>.\n"
    "Credentials are read only from the environment; never put keys into notebooks or code."
)


def _ee() -> Any:
    """Import ``ee`` lazily; a :class:`~soilbook.errors.DependencyNotFoundError` says how to
    install it when it is missing."""
    return require(
        "ee", pip_name="earthengine-api", extra="ee", needed_for="Earth Engine extraction"
    )


def _ee_ready() -> Any:
    """``ee``, checked to be initialised (builders need the server's function signatures)."""
    ee = _ee()
    if not ee.data.is_initialized():
        raise EarthEngineSetupError(
            "Earth Engine is not initialised. Call soilbook.data.earthengine.initialize() first "
            "(it reads EARTHENGINE_PROJECT and your credentials from the environment)."
        )
    return ee


def _gcloud_adc_path() -> Path:
    """Where gcloud keeps application-default credentials (honours ``CLOUDSDK_CONFIG``)."""
    config = os.environ.get("CLOUDSDK_CONFIG")
    base = Path(config) if config else Path("~/.config/gcloud").expanduser()
    return base / "application_default_credentials.json"


def _project_from_env() -> str | None:
    """The first of :data:`PROJECT_ENV` that is set, else ``None``."""
    return next((os.environ[v] for v in PROJECT_ENV if os.environ.get(v)), None)


#: Earth Engine's high-volume endpoint: for many small automated requests (computePixels,
#: getInfo of sample batches); Google recommends it for bulk extraction.
HIGH_VOLUME_URL = "https://earthengine-highvolume.googleapis.com"


@dataclass(frozen=True)
class CredentialSource:
    """Where the credentials of an Earth Engine session come from (no secret in it).

    ``kind`` is ``"service_account"`` (a JSON key named by ``GOOGLE_APPLICATION_CREDENTIALS``),
    ``"application_default"`` (another credentials file named there, or gcloud's
    application-default credentials) or ``"earthengine_token"`` (``earthengine
    authenticate``); ``path`` is the file's path and ``project`` the Cloud project found (from
    the environment, the key or the token; ``None`` when none is).
    """

    kind: str
    path: str
    project: str | None
    client_email: str | None = None


def _key_file_source(key_path: str) -> CredentialSource:
    """The credentials named by ``GOOGLE_APPLICATION_CREDENTIALS``, checked to be a readable
    JSON credentials file (a service-account key, or another file for Google's
    application-default credentials)."""
    path = Path(key_path).expanduser()
    if not path.is_file():
        raise EarthEngineSetupError(
            f"GOOGLE_APPLICATION_CREDENTIALS points to {path}, which is not a file. "
            "Set it to the path of your service-account JSON key, or unset it.\n" + _SETUP_HELP
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        raise EarthEngineSetupError(
            f"GOOGLE_APPLICATION_CREDENTIALS = {path} is not a readable JSON credentials "
            "file.\n" + _SETUP_HELP
        ) from None
    if isinstance(info, dict) and info.get("type") == "service_account":
        missing = [k for k in ("client_email", "private_key") if not info.get(k)]
        if missing:
            raise EarthEngineSetupError(
                f"the service-account key {path} has no {missing}: it is not a complete key "
                "file. What to do: download a new JSON key for the service account (Cloud "
                "console > IAM > Service accounts > Keys).\n" + _SETUP_HELP
            )
        return CredentialSource(
            "service_account", str(path), info.get("project_id"), info.get("client_email")
        )
    return CredentialSource("application_default", str(path), info.get("quota_project_id"))


def _stored_source() -> CredentialSource:
    """The ``earthengine authenticate`` token, else gcloud's application-default credentials.

    Raises :class:`EarthEngineSetupError` when neither exists.
    """
    token = Path(_ee().oauth.get_credentials_path())
    if token.is_file():
        try:
            project = json.loads(token.read_text()).get("project")
        except (OSError, ValueError):
            project = None
        return CredentialSource("earthengine_token", str(token), project)
    adc = _gcloud_adc_path()
    if adc.is_file():
        return CredentialSource("application_default", str(adc), None)
    raise EarthEngineSetupError(
        "No Earth Engine credentials were found in the environment (no "
        "GOOGLE_APPLICATION_CREDENTIALS, no `earthengine authenticate` token, no gcloud "
        "application-default credentials).\n" + _SETUP_HELP
    )


def find_credentials(project: str | None = None) -> CredentialSource:
    """Find the credentials and the Cloud project in the environment, without any network.

    Looks, in order, for

    1. ``GOOGLE_APPLICATION_CREDENTIALS``: a service-account JSON key (``type`` =
       ``service_account``) or any other credentials file (left to Google's
       application-default credentials);
    2. the token written by ``earthengine authenticate`` (``~/.config/earthengine/credentials``);
    3. gcloud's application-default credentials
       (``~/.config/gcloud/application_default_credentials.json``).

    The project is ``project``, else ``EARTHENGINE_PROJECT`` / ``EE_PROJECT`` /
    ``GOOGLE_CLOUD_PROJECT``, else the key's or the token's. Raises
    :class:`EarthEngineSetupError` with the set-up steps when no credentials or no project are
    found. Chapters call it in their parameter checks, so a run without credentials stops
    before any heavy work; :func:`initialize` calls it too.
    """
    key_path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    source = _key_file_source(key_path) if key_path else _stored_source()
    chosen = project or _project_from_env() or source.project
    if not chosen:
        raise EarthEngineSetupError(
            "No Google Cloud project for Earth Engine: set EARTHENGINE_PROJECT=<project id> "
            "(or pass initialize(project=...)); Earth Engine bills and authorises requests "
            "through a project registered for it.\n" + _SETUP_HELP
        )
    return CredentialSource(source.kind, source.path, str(chosen), source.client_email)


def _credentials(ee: Any, source: CredentialSource) -> Any:
    """The ``credentials`` argument of ``ee.Initialize`` for ``source``; a key that cannot be
    loaded (a broken PEM block, a wrong file) is an :class:`EarthEngineSetupError` that
    names the file, never its content."""
    if source.kind == "earthengine_token":
        return "persistent"  # ee reads the token `earthengine authenticate` wrote
    if source.kind == "application_default":
        return _application_default(ee, source)
    try:
        return ee.ServiceAccountCredentials(source.client_email, key_file=source.path)
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise EarthEngineSetupError(
            f"the service-account key {source.path} could not be loaded ({type(err).__name__}; "
            "its private key is damaged or not a PEM key). What to do: download a new JSON key "
            "for the service account and point GOOGLE_APPLICATION_CREDENTIALS at it.\n"
            + _SETUP_HELP
        ) from None


def _application_default(ee: Any, source: CredentialSource) -> Any:
    """The application-default credentials of the file ``source.path`` itself (so a stored
    ``earthengine authenticate`` token does not silently win over the file that was found),
    with Earth Engine's scopes; a file that cannot be read is an :class:`EarthEngineSetupError`."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:  # google.auth.default reads GOOGLE_APPLICATION_CREDENTIALS, else gcloud's file: the
        # one find_credentials found (authorized-user and workload-identity configs alike)
        credentials, _ = google.auth.default(scopes=ee.oauth.SCOPES)
    except (DefaultCredentialsError, ValueError, OSError) as err:
        raise EarthEngineSetupError(
            f"the application-default credentials {source.path} could not be loaded "
            f"({type(err).__name__}). What to do: run `gcloud auth application-default login` "
            "again, or point GOOGLE_APPLICATION_CREDENTIALS at a valid file.\n" + _SETUP_HELP
        ) from None
    return credentials


def initialize(project: str | None = None, *, high_volume: bool = False) -> str:
    """Initialise Earth Engine from credentials found in the environment; return the project.

    Credentials and project as :func:`find_credentials` finds them (keys are never arguments;
    ``project``, the Google Cloud project registered for Earth Engine, is not a secret).
    ``high_volume=True`` talks to :data:`HIGH_VOLUME_URL`, the endpoint for bulk automated
    reads (the extraction loop's). Raises :class:`EarthEngineSetupError`, saying what to set,
    when credentials or project are missing, the key cannot be loaded, or Earth Engine refuses
    them; the message never holds key material.
    """
    ee = _ee()
    source = find_credentials(project)
    credentials = _credentials(ee, source)
    kwargs: dict[str, Any] = {"credentials": credentials, "project": source.project}
    if high_volume:
        kwargs["opt_url"] = HIGH_VOLUME_URL
    try:
        ee.Initialize(**kwargs)
    except Exception as err:  # ee.EEException, google.auth errors, a refused token
        if isinstance(err, EarthEngineSetupError):
            raise
        raise EarthEngineSetupError(
            f"Earth Engine refused to initialise with project {source.project!r} and the "
            f"{source.kind.replace('_', ' ')} credentials at {source.path} "
            f"({type(err).__name__}: {_first_line(err)}).\n" + _SETUP_HELP
        ) from None
    return str(source.project)


def _first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, at most 200 characters (no key material: the
    exceptions raised here carry server messages and file paths, never the key)."""
    text = str(err).strip().splitlines()
    return (text[0] if text else "")[:200]


def ensure_initialized(project: str | None = None) -> Any:
    """``ee``, initialised from the environment (:func:`initialize`) unless it already is."""
    ee = _ee()
    if not ee.data.is_initialized():
        initialize(project)
    return ee
