from __future__ import annotations

import pytest

from codegemma_lsp.privacy import is_secret_path


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        pytest.param("/w/.env", True, id="dotenv"),
        pytest.param("/w/.env.local", True, id="dotenv-local"),
        pytest.param("/w/prod.env", True, id="named-env"),
        pytest.param("/w/server.pem", True, id="pem"),
        pytest.param("/w/tls.key", True, id="key"),
        pytest.param("/home/u/.ssh/config", True, id="ssh-dir"),
        pytest.param("/home/u/.aws/config", True, id="aws-dir"),
        pytest.param("/w/id_rsa.pub", True, id="id-rsa"),
        pytest.param("/w/credentials.json", True, id="credentials"),
        pytest.param("/w/app.py", False, id="code"),
        pytest.param("/w/environment.py", False, id="env-in-name-only"),
        pytest.param("/w/keyboard.ts", False, id="key-in-name-only"),
    ],
)
def test_is_secret_path(path: str, secret: bool) -> None:
    assert is_secret_path(path) is secret
