"""No secret in code or configuration: every tracked file is scanned for credentials, and every
password-like setting in the deploy/ configuration comes from the environment.

(No secret in logs: test_s3.py runs the CLI with known fake secrets in the environment and
searches stdout, stderr and the event log; test_postgres_instance.py does so for the database.)"""

import re
import subprocess
from pathlib import Path

import yaml

from ml_platform_tests.support.constants import ROOT

PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+]*://[^/\s:@'\"]+:[^/\s@'\"{}$]+@"),
    "secret assigned a literal": re.compile(
        r"(?i)\b(aws_secret_access_key|secret_key|password|passwd|api_key|token)\b\s*[:=]\s*['\"][^'\"{}$]{8,}['\"]"
    ),
}
SECRET_NAMES = re.compile(r"(?i)(password|secret|token|api_key|access_key)")
# Settings that name where a secret is kept (a Kubernetes Secret), not the secret itself.
SECRET_REFERENCES = re.compile(r"(?i)(secret_?name|secret_?ref)$")


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in names]


def test_no_credentials_in_tracked_files():
    found = []
    for path in tracked_files():
        if "ml_platform_tests" in path.parts or not path.is_file():
            continue  # the tests hold the fake credentials of their throwaway servers
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for what, pattern in PATTERNS.items():
            for match in pattern.finditer(text):
                found.append(f"{path.relative_to(ROOT)}: {what}: {match.group(0)[:40]}")
    assert not found, "\n".join(found)


def _literal_secrets(node, path=()):
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return
        for key, value in node.items():
            if (
                SECRET_NAMES.search(str(key))
                and not SECRET_REFERENCES.search(str(key))
                and isinstance(value, (str, int))
                and not isinstance(value, bool)
                and value != ""
            ):
                yield "/".join(map(str, (*path, key)))
            yield from _literal_secrets(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _literal_secrets(value, (*path, index))


def test_deploy_configuration_reads_secrets_from_the_environment():
    files = sorted((ROOT / "deploy").rglob("*.yaml")) + [ROOT / "workspace.yaml"]
    assert len(files) >= 3
    literal = [
        f"{f.relative_to(ROOT)}: {key}"
        for f in files
        for doc in yaml.safe_load_all(f.read_text().replace("@MAX_CONCURRENT_RUNS@", "2"))
        if doc
        for key in _literal_secrets(doc)
    ]
    assert not literal, literal
