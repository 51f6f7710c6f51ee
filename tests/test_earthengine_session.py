"""The Earth Engine session: credentials only from the environment, an initialised ``ee`` for
the builders, and the package without earthengine-api (all offline, no credentials)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from ee_harness import BOX

from soilbook.data import earthengine as E

REPO = Path(__file__).resolve().parents[1]


# -- initialize: credentials only from the environment -----------------------------------------


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No Earth Engine / Google credentials or project in the environment; HOME is empty."""
    pytest.importorskip("ee")
    for var in (*E.PROJECT_ENV, "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    return tmp_path


@pytest.fixture
def recorded_initialize(monkeypatch):
    import ee

    seen: dict[str, Any] = {}
    monkeypatch.setattr(ee, "Initialize", lambda **kwargs: seen.update(kwargs))
    return seen


def test_initialize_without_credentials_says_what_to_set(clean_env, recorded_initialize):
    with pytest.raises(E.EarthEngineSetupError) as err:
        E.initialize()
    message = str(err.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "EARTHENGINE_PROJECT" in message
    assert "earthengine authenticate" in message
    assert recorded_initialize == {}


def test_initialize_with_a_service_account_key(clean_env, recorded_initialize, monkeypatch):
    import ee

    key = clean_env / "key.json"
    key.write_text(
        json.dumps(
            {"type": "service_account", "client_email": "sb@proj-x.iam.gserviceaccount.com",
             "project_id": "proj-x", "private_key": "not a real key"}
        )
    )  # fmt: skip
    made: list[tuple] = []
    monkeypatch.setattr(
        ee,
        "ServiceAccountCredentials",
        lambda email, key_file: made.append((email, key_file)) or "SA",
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    assert E.initialize() == "proj-x"
    assert made == [("sb@proj-x.iam.gserviceaccount.com", str(key))]
    assert recorded_initialize == {"credentials": "SA", "project": "proj-x"}
    # an explicit project (or EARTHENGINE_PROJECT) wins over the key's project
    monkeypatch.setenv("EARTHENGINE_PROJECT", "proj-env")
    assert E.initialize() == "proj-env"
    assert E.initialize(project="proj-arg") == "proj-arg"


def test_initialize_with_an_earthengine_token(clean_env, recorded_initialize, monkeypatch):
    import ee

    token = Path(ee.oauth.get_credentials_path())
    token.parent.mkdir(parents=True)
    token.write_text(json.dumps({"refresh_token": "x"}))
    with pytest.raises(E.EarthEngineSetupError, match="EARTHENGINE_PROJECT"):
        E.initialize()  # a token but no project anywhere
    monkeypatch.setenv("EARTHENGINE_PROJECT", "my-ee-project")
    assert E.initialize() == "my-ee-project"
    assert recorded_initialize == {"credentials": "persistent", "project": "my-ee-project"}
    monkeypatch.delenv("EARTHENGINE_PROJECT")
    token.write_text(json.dumps({"refresh_token": "x", "project": "stored-project"}))
    assert E.initialize() == "stored-project"


def test_initialize_with_a_missing_key_file(clean_env, recorded_initialize, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(clean_env / "nope.json"))
    with pytest.raises(E.EarthEngineSetupError, match="not a file"):
        E.initialize(project="p")


def _service_account_key(folder: Path, private_key: str = "not a real key") -> Path:
    key = folder / "key.json"
    key.write_text(
        json.dumps(
            {"type": "service_account", "client_email": "sb@proj-x.iam.gserviceaccount.com",
             "project_id": "proj-x", "private_key": private_key}
        )
    )  # fmt: skip
    return key


def test_a_damaged_key_is_one_setup_message_without_its_content(
    clean_env, recorded_initialize, monkeypatch
):
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDamaged"
    key = _service_account_key(clean_env, f"-----BEGIN PRIVATE KEY-----\n{body}\n")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    with pytest.raises(E.EarthEngineSetupError) as err:
        E.initialize()  # the real ee.ServiceAccountCredentials fails to load the PEM block
    message = str(err.value)
    assert str(key) in message and "download a new JSON key" in message
    assert body not in message and "BEGIN PRIVATE KEY" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert recorded_initialize == {}


def test_a_refused_initialize_is_wrapped_and_high_volume_is_asked_for(clean_env, monkeypatch):
    import ee

    monkeypatch.setattr(ee, "ServiceAccountCredentials", lambda email, key_file: "SA")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_service_account_key(clean_env)))
    seen: dict[str, Any] = {}
    monkeypatch.setattr(ee, "Initialize", lambda **kwargs: seen.update(kwargs))
    assert E.initialize(high_volume=True) == "proj-x"
    assert seen["opt_url"] == E.HIGH_VOLUME_URL

    def refuse(**kwargs):
        raise ee.EEException("Caller does not have required permission\nsecond line")

    monkeypatch.setattr(ee, "Initialize", refuse)
    with pytest.raises(E.EarthEngineSetupError) as err:
        E.initialize()
    message = str(err.value)
    assert "'proj-x'" in message and "required permission" in message
    assert "second line" not in message and "EARTHENGINE_PROJECT" in message


def test_find_credentials_reads_the_environment_only(clean_env, monkeypatch):
    import ee

    def no_network(**kwargs):
        raise AssertionError("find_credentials must not initialise Earth Engine")

    monkeypatch.setattr(ee, "Initialize", no_network)
    with pytest.raises(E.EarthEngineSetupError, match="No Earth Engine credentials"):
        E.find_credentials()
    key = _service_account_key(clean_env)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    found = E.find_credentials()
    assert found == E.CredentialSource(
        "service_account", str(key), "proj-x", "sb@proj-x.iam.gserviceaccount.com"
    )
    assert "private" not in repr(found)
    key.write_text(json.dumps({"type": "service_account", "project_id": "p"}))
    with pytest.raises(E.EarthEngineSetupError, match="client_email"):
        E.find_credentials()
    adc = clean_env / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir()
    adc.write_text(json.dumps({"type": "authorized_user"}))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.setenv("EE_PROJECT", "proj-adc")
    assert E.find_credentials() == E.CredentialSource("application_default", str(adc), "proj-adc")


def test_builders_need_an_initialised_ee():
    ee = pytest.importorskip("ee")
    ee.Reset()
    with pytest.raises(E.EarthEngineSetupError, match="initialize"):
        E.terrain_layers(BOX)


# -- the module without earthengine-api --------------------------------------------------------


def test_module_imports_and_converts_without_earthengine_api():
    """The package imports without ``ee`` (lazily imported), converts, and a builder or
    initialize() says how to install earthengine-api."""
    code = textwrap.dedent(
        """
        import sys
        from soilbook.data import earthengine as E
        from soilbook.errors import DependencyNotFoundError
        assert "ee" not in sys.modules, "importing soilbook.data.earthengine imported ee"
        sys.modules["ee"] = None  # make `import ee` fail from here on
        payload = [{"properties": {"id": "a", "lat": 37.7, "lon": 118.8, "target": 3.0,
                                   "elevation": 2.0}}]
        ds = E.to_samples(payload, [], covariates={"elevation": "terrain"},
                          collections=[E.GLO30], target_name="soil salt content",
                          target_units="g/kg")
        assert ds.sizes["sample"] == 1
        for call in (lambda: E.terrain_layers((118.8, 37.6, 119.0, 37.9)), E.initialize):
            try:
                call()
            except DependencyNotFoundError as err:
                message = str(err)
                assert "pip install earthengine-api" in message, message
                assert "pip install 'soilbook[ee]'" in message, message
                assert isinstance(err, ModuleNotFoundError) and err.name == "ee"
            else:
                raise AssertionError("no error without ee")
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_application_default_credentials_are_the_file_found(
    clean_env, recorded_initialize, monkeypatch
):
    """An ADC file named by GOOGLE_APPLICATION_CREDENTIALS is what ee gets, even when an
    `earthengine authenticate` token also exists; a broken one is one set-up message."""
    import ee

    token = Path(ee.oauth.get_credentials_path())
    token.parent.mkdir(parents=True)
    token.write_text(json.dumps({"refresh_token": "token-of-another-account"}))
    adc = clean_env / "adc.json"
    secret = "adc-client-secret-value"
    adc.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "client.apps.googleusercontent.com",
                "client_secret": secret,
                "refresh_token": "adc-refresh",
                "quota_project_id": "proj-adc",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    assert E.initialize() == "proj-adc"
    credentials = recorded_initialize["credentials"]
    assert credentials != "persistent" and credentials.refresh_token == "adc-refresh"
    adc.write_text(
        json.dumps({"type": "authorized_user", "client_secret": secret, "quota_project_id": "p"})
    )
    with pytest.raises(E.EarthEngineSetupError, match="could not be loaded") as err:
        E.initialize()
    assert secret not in str(err.value)
