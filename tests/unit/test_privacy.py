from __future__ import annotations

import pytest

from codegemma_lsp.privacy import SCAN_HEAD, is_secret, is_secret_path, is_secret_text, secret_in

# Built from parts, so that this file itself holds no string a secret scanner flags.
AWS_KEY_ID = "AKIA" + "Q3EGRIKJEXAMPLE7"
GITHUB_TOKEN = "ghp" + "_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
PRIVATE_KEY = (
    "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
)
OPENSSH_KEY = "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n"
PGP_MESSAGE = (
    "-----BEGIN " + "PGP MESSAGE-----\nVersion: GnuPG v2\n\n"
    "hQEMA5Gz2eXmMGNkAQf/X1k9eJQ2r3nHw8tKkS3M2TQ1P8hQ0k3z1pW2d0W8Qe9B\n"
)
SERVICE_ACCOUNT = (
    '{\n  "type": "service_account",\n  "project_id": "demo",\n'
    '  "private_key_id": "abc",\n  "client_email": "x@demo.iam.gserviceaccount.com"\n}\n'
)


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
        pytest.param("/home/u/.kube/config", True, id="kube-dir"),
        pytest.param("/w/id_rsa.pub", True, id="id-rsa"),
        pytest.param("/w/credentials.json", True, id="credentials"),
        pytest.param("/home/u/.pgpass", True, id="pgpass"),
        pytest.param("/w/terraform.tfstate", True, id="tfstate"),
        pytest.param("/w/terraform.tfstate.backup", True, id="tfstate-backup"),
        pytest.param("/w/server.ppk", True, id="putty-key"),
        pytest.param("/w/my-service-account.json", True, id="service-account-json"),
        pytest.param("/w/service_account.json", True, id="service-account-underscore"),
        pytest.param("/w/.htpasswd", True, id="htpasswd"),
        pytest.param("/w/kubeconfig", True, id="kubeconfig"),
        pytest.param("/w/kubeconfig-prod.yaml", True, id="kubeconfig-named"),
        pytest.param("/w/prod.kubeconfig", True, id="kubeconfig-suffix"),
        pytest.param("/home/u/.bash_history", True, id="bash-history"),
        pytest.param("/home/u/.zsh_history", True, id="zsh-history"),
        pytest.param("/home/u/.python_history", True, id="python-history"),
        pytest.param("/home/u/.psql_history", True, id="psql-history"),
        pytest.param("/home/u/.mysql_history", True, id="mysql-history"),
        pytest.param("/home/u/.node_repl_history", True, id="node-history"),
        pytest.param("/home/u/.my.cnf", True, id="mysql-client-config"),
        pytest.param("/w/.NETRC", True, id="case-insensitive"),
        pytest.param("/w/app.py", False, id="code"),
        pytest.param("/w/environment.py", False, id="env-in-name-only"),
        pytest.param("/w/keyboard.ts", False, id="key-in-name-only"),
        pytest.param("/w/history.py", False, id="history-module"),
        pytest.param("/w/config.yaml", False, id="plain-config"),
        pytest.param("/w/account.json", False, id="account-json"),
    ],
)
def test_is_secret_path(path: str, secret: bool) -> None:
    assert is_secret_path(path) is secret


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        pytest.param(PRIVATE_KEY, "a private key or armored block", id="rsa-private-key"),
        pytest.param(OPENSSH_KEY, "a private key or armored block", id="openssh-private-key"),
        pytest.param(
            '{"private_key": "-----BEGIN ' + 'PRIVATE KEY-----\\nMIIE"}',
            "a private key or armored block",
            id="private-key-in-a-json-string",
        ),
        pytest.param(
            "-----BEGIN " + "PGP PRIVATE KEY BLOCK-----\n",
            "a private key or armored block",
            id="pgp-private-key",
        ),
        pytest.param(PGP_MESSAGE, "a private key or armored block", id="pgp-message"),
        pytest.param(
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n", "a PuTTY key", id="ppk"
        ),
        pytest.param(f"key = '{AWS_KEY_ID}'\n", "an AWS access key id", id="aws-key-id"),
        pytest.param(
            "[default]\naws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            "an AWS secret key",
            id="aws-secret-key",
        ),
        pytest.param(f"token: {GITHUB_TOKEN}\n", "a GitHub token", id="github-token"),
        pytest.param(SERVICE_ACCOUNT, "a service account key", id="service-account"),
        pytest.param("localhost:5432:mydb:alice:s3cret\n", "a .pgpass line", id="pgpass-line"),
        pytest.param("*:*:*:postgres:hunter2\n", "a .pgpass line", id="pgpass-wildcards"),
        pytest.param("[client]\npassword=hunter2\n", "a password", id="my-cnf-password"),
        pytest.param("DB_PASSWORD=hunter2\n", "a password", id="dotenv-style-password"),
        pytest.param("export PGPASSWORD=hunter2\n", "a password", id="exported-password"),
        pytest.param("user:x\npasswd=letmein\r\n", "a password", id="passwd-crlf"),
        pytest.param(
            "x = 1\n" * (SCAN_HEAD // 6 + 10_000) + PRIVATE_KEY,
            "a private key or armored block",
            id="key-at-the-end-of-a-big-file",
        ),
    ],
)
def test_secret_text_is_found(text: str, kind: str) -> None:
    assert secret_in(text) == kind
    assert is_secret_text(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("def login(user, password):\n    return check(password)\n", id="code"),
        pytest.param("conn = connect(\n    password=password,\n)\n", id="keyword-argument"),
        pytest.param('password = os.environ["DB_PASSWORD"]\n', id="assignment-with-spaces"),
        pytest.param("@dataclass\nclass User:\n    password: str\n", id="annotation"),
        pytest.param('PEM_HEADER = "-----BEGIN ' + 'CERTIFICATE-----"\n', id="pem-header-constant"),
        pytest.param("00:11:22:33:44:55\nfe80:0:0:0:1\n", id="mac-and-ipv6"),
        pytest.param("a[1:2:3]\nx = {'a': 1, 'b': 2}\n", id="slices-and-dicts"),
        pytest.param("12:30:45\nhttp://localhost:8080/a:b\n", id="times-and-urls"),
        pytest.param("", id="empty"),
    ],
)
def test_ordinary_text_is_not_secret(text: str) -> None:
    assert secret_in(text) is None


def test_a_secret_in_the_middle_of_a_huge_file_is_not_read() -> None:
    # The scan is bounded on purpose: it runs on each completion request.
    text = "x = 1\n" * 100_000 + PRIVATE_KEY + "y = 2\n" * 100_000
    assert not is_secret_text(text)


@pytest.mark.parametrize(
    ("path", "text", "secret"),
    [
        pytest.param("notes.txt", PRIVATE_KEY, True, id="by-text"),
        pytest.param(".pgpass", "", True, id="by-name"),
        pytest.param("notes.txt", "hello\n", False, id="neither"),
    ],
)
def test_is_secret_by_name_or_text(path: str, text: str, secret: bool) -> None:
    assert is_secret(path, text) is secret
