"""The Earth Engine session: the lazy ``ee`` import and credentials read from the environment.

``ee`` (the ``earthengine-api`` package) is optional and imported only here, inside functions,
so that the rest of the package — checks and the conversion to the schema — works without it.
Credentials are never arguments: they come from the environment (a service-account key, the
``earthengine authenticate`` token or gcloud's application-default credentials).
"""

from __future__ import annotations

import json
import os
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


def _key_file_credentials(ee: Any, key_path: str) -> tuple[Any, str | None]:
    """Credentials and project from ``GOOGLE_APPLICATION_CREDENTIALS``.

    A service-account key becomes ``ee.ServiceAccountCredentials`` (project: its
    ``project_id``); any other credentials file is left to Google's application-default
    credentials (``"persistent"``, no project).
    """
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
        credentials = ee.ServiceAccountCredentials(info.get("client_email"), key_file=str(path))
        return credentials, info.get("project_id")
    return "persistent", None


def _stored_token_project(ee: Any) -> str | None:
    """The project saved with the ``earthengine authenticate`` token, if any.

    Raises :class:`EarthEngineSetupError` when neither that token nor gcloud's
    application-default credentials exist.
    """
    token = Path(ee.oauth.get_credentials_path())
    if token.is_file():
        try:
            return json.loads(token.read_text()).get("project")
        except (OSError, ValueError):
            return None
    if not _gcloud_adc_path().is_file():
        raise EarthEngineSetupError(
            "No Earth Engine credentials were found in the environment (no "
            "GOOGLE_APPLICATION_CREDENTIALS, no `earthengine authenticate` token, no gcloud "
            "application-default credentials).\n" + _SETUP_HELP
        )
    return None


def initialize(project: str | None = None) -> str:
    """Initialise Earth Engine from credentials found in the environment; return the project.

    Looks, in order, for

    1. ``GOOGLE_APPLICATION_CREDENTIALS``: a service-account JSON key (``type`` =
       ``service_account``) is used as such; any other credentials file is left to Google's
       application-default credentials;
    2. the token written by ``earthengine authenticate`` (``~/.config/earthengine/credentials``);
    3. gcloud's application-default credentials
       (``~/.config/gcloud/application_default_credentials.json``).

    ``project`` is the Google Cloud project registered for Earth Engine (not a secret); when
    ``None`` it is read from ``EARTHENGINE_PROJECT``, ``EE_PROJECT`` or ``GOOGLE_CLOUD_PROJECT``,
    then from the service-account key or the stored token. Raises
    :class:`EarthEngineSetupError`, saying what to set, when no credentials or no project are
    found. Keys are never taken as arguments.
    """
    ee = _ee()
    project = project or _project_from_env()
    key_path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_path:
        credentials, key_project = _key_file_credentials(ee, key_path)
        project = project or key_project
    else:
        credentials = "persistent"
        token_project = _stored_token_project(ee)
        project = project or token_project
    if not project:
        raise EarthEngineSetupError(
            "No Google Cloud project for Earth Engine: set EARTHENGINE_PROJECT=<project id> "
            "(or pass initialize(project=...)); Earth Engine bills and authorises requests "
            "through a project registered for it.\n" + _SETUP_HELP
        )
    try:
        ee.Initialize(credentials=credentials, project=project)
    except ee.EEException as err:
        raise EarthEngineSetupError(
            f"Earth Engine refused to initialise with project {project!r}: {err}\n" + _SETUP_HELP
        ) from err
    return str(project)


def ensure_initialized(project: str | None = None) -> Any:
    """``ee``, initialised from the environment (:func:`initialize`) unless it already is."""
    ee = _ee()
    if not ee.data.is_initialized():
        initialize(project)
    return ee
