"""`medflow check --deploy` passes with production settings taken from the environment."""

import os
import secrets
import subprocess
import sys

import pytest

OVERRIDES = ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
             "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
             "SECURE_PROXY_SSL_HEADER", "SECRET_KEY", "MEDFLOW_MASTER_KEY", "ALLOWED_HOSTS", "DEBUG")


def medflow(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medflow", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def production_env(tmp_path_factory) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    base["MEDFLOW_VAR_DIR"] = str(tmp_path_factory.mktemp("deploy"))
    key = medflow({**base, "DEBUG": "true"}, "keys", "generate")
    assert key.returncode == 0, key.stderr
    return {**base, "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(60),
            "MEDFLOW_MASTER_KEY": key.stdout.strip(), "ALLOWED_HOSTS": "example.org"}


def test_deploy_check_passes_in_production(production_env):
    result = medflow(production_env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_setting_is_overridable_and_the_check_notices(production_env):
    result = medflow({**production_env, "SECURE_SSL_REDIRECT": "false"},
                     "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout
