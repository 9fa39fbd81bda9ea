"""The cosign CLI: generate-key-pair, sign, verify, with flags chosen by the binary's version
and results turned into types.

Secrets: the key password is random per key pair and reaches cosign only through the
`COSIGN_PASSWORD` environment variable; registry credentials only through a private
`DOCKER_CONFIG` directory. Neither ever appears in argv, logs or errors.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from signcheck import redact
from signcheck.errors import ToolError
from signcheck.target import Registry
from signcheck.tools import gobuild, pins

# cosign's documented exit codes (cmd/cosign/errors/exit_codes.go).
EXIT_NO_SIGNATURES = 10
EXIT_NONEXISTENT_TAG = 11
EXIT_NO_MATCHING_SIGNATURES = 12

Outcome = Literal["verified", "no_signatures", "no_matching_signatures", "error"]
SignatureFormat = Literal["legacy", "bundle"]

_ERROR_LINE = re.compile(r"(?:^|\n)Error: (.+)")


@dataclass(frozen=True)
class KeyPair:
    private_key: Path
    public_key: Path
    password: str = field(repr=False)
    ref: str | None = None
    """A KMS reference (`hashivault://name`, `yckms:///id`) that replaces `private_key`."""
    env: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The KMS provider's credentials (secret), for any cosign that signs with the key."""

    @property
    def public_pem(self) -> str:
        return self.public_key.read_text().strip()

    @property
    def key_ref(self) -> str:
        """What `cosign sign --key` takes: the KMS reference or the key file."""
        return self.ref or str(self.private_key)


@dataclass(frozen=True)
class Result:
    """What one cosign command did: argv (no secrets in it), exit code, output, time."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error(self) -> str:
        """cosign's own `Error: ...` line, or the last stderr line."""
        found = _ERROR_LINE.findall(self.stderr)
        if found:
            return str(found[-1]).strip()
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


@dataclass(frozen=True)
class Verification:
    outcome: Outcome
    claims: tuple[dict[str, Any], ...]
    result: Result

    @property
    def ok(self) -> bool:
        return self.outcome == "verified"

    @property
    def digests(self) -> list[str]:
        return [
            str(c.get("critical", {}).get("image", {}).get("docker-manifest-digest"))
            for c in self.claims
        ]

    @property
    def identities(self) -> list[str]:
        return [
            str(c.get("critical", {}).get("identity", {}).get("docker-reference"))
            for c in self.claims
        ]


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def docker_config(registry: Registry) -> dict[str, Any]:
    """A docker config.json holding only this registry's credentials (or nothing)."""
    if not registry.has_auth:
        return {"auths": {}}
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    return {"auths": {registry.host: {"auth": token}}}


def parse_claims(stdout: str) -> tuple[dict[str, Any], ...]:
    """cosign verify prints one JSON array of simple-signing claims (after optional text)."""
    start = stdout.find("[")
    if start < 0:
        return ()
    try:
        data = json.loads(stdout[start:])
    except json.JSONDecodeError:
        return ()
    return tuple(d for d in data if isinstance(d, dict)) if isinstance(data, list) else ()


def classify(returncode: int, stderr: str) -> Outcome:
    if returncode == 0:
        return "verified"
    # Exit codes first; the message is the fallback for builds that map errors differently.
    if returncode == EXIT_NO_SIGNATURES or "no signatures found" in stderr:
        return "no_signatures"
    if returncode == EXIT_NO_MATCHING_SIGNATURES or "no matching signatures" in stderr:
        return "no_matching_signatures"
    return "error"


class Cosign:
    """One cosign binary, talking to one registry, keeping its private state in `workdir`."""

    def __init__(
        self,
        binary: Path,
        version: str,
        registry: Registry,
        workdir: Path,
        timeout: float = 120.0,
    ) -> None:
        self.binary = binary
        self.version = version
        self.registry = registry
        self.workdir = workdir
        self.timeout = timeout
        self.major = int(version.lstrip("v").split(".", 1)[0])
        self.extra_env: dict[str, str] = {}
        """KMS credentials for cosign's provider (VAULT_TOKEN, YC_IAM_TOKEN...): secret."""
        self.nice = 0
        """Added to each cosign process's niceness: signing staged during the boot runs on
        the CPU the boot leaves idle (`signcheck.run.staging`)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self._docker_dir = workdir / "docker"
        self._docker_dir.mkdir(mode=0o700, exist_ok=True)
        cfg = self._docker_dir / "config.json"
        cfg.touch(mode=0o600)
        cfg.write_text(json.dumps(docker_config(registry)))

    @classmethod
    def from_tools(
        cls, registry: Registry, workdir: Path, tool: str = "cosign-v2", timeout: float = 120.0
    ) -> Cosign:
        binary = gobuild.ensure([tool])[tool]
        reported = pins.resolve(tool).reported or pins.binary(tool).name
        return cls(binary, reported, registry, workdir, timeout)

    # -- plumbing ---------------------------------------------------------------------

    def _lower_priority(self) -> None:
        os.nice(self.nice)

    def _env(self, password: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            # Only what cosign needs from the caller; in particular never a foreign
            # COSIGN_PASSWORD, COSIGN_KEY or a user's docker credentials.
            if k in ("PATH", "HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "LANG")
            or k.startswith(("HTTP_", "HTTPS_", "NO_PROXY", "http_", "https_", "no_"))
        }
        env["DOCKER_CONFIG"] = str(self._docker_dir)
        # Any TUF look-up stays inside the run (and fails fast offline) instead of
        # touching ~/.sigstore.
        env["TUF_ROOT"] = str(self.workdir / "tuf")
        env.update(self.extra_env)
        env.update(extra or {})
        env["COSIGN_PASSWORD"] = password or ""
        env["COSIGN_YES"] = "true"
        if self.registry.ca_file:
            env["SSL_CERT_FILE"] = str(self.registry.ca_file)
        return env

    def _registry_flags(self) -> list[str]:
        if self.registry.scheme == "http" and not _is_loopback(self.registry.host):
            # go-containerregistry speaks plain HTTP to loopback on its own; anything else
            # needs an explicit opt-in.
            return ["--allow-http-registry"]
        return []

    def run(
        self,
        args: list[str],
        password: str | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        argv = [str(self.binary), *args]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                argv,
                cwd=cwd or self.workdir,
                env=self._env(password, env),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
                preexec_fn=self._lower_priority if self.nice else None,
            )
        except subprocess.TimeoutExpired as err:
            raise ToolError(
                f"cosign {args[0]} did not finish within {self.timeout:g}s",
                argv,
                None,
                redact.redact(str(err.stdout or "")),
                redact.redact(str(err.stderr or "")),
            ) from err
        return Result(
            tuple(argv),
            proc.returncode,
            redact.redact(proc.stdout),
            redact.redact(proc.stderr),
            round(time.monotonic() - started, 3),
        )

    def _check(self, what: str, result: Result) -> Result:
        if result.returncode != 0:
            raise ToolError(
                f"cosign {what} failed: {result.error}",
                result.argv,
                result.returncode,
                result.stdout,
                result.stderr,
            )
        return result

    # -- commands ---------------------------------------------------------------------

    def generate_key_pair(self, directory: Path, prefix: str = "cosign") -> KeyPair:
        """A new key pair protected by a random password that only this process knows."""
        directory.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        redact.register(password)
        self._check(
            "generate-key-pair",
            self.run(["generate-key-pair", "--output-key-prefix", prefix], password, cwd=directory),
        )
        private, public = directory / f"{prefix}.key", directory / f"{prefix}.pub"
        private.chmod(0o600)
        return KeyPair(private, public, password)

    def sign_args(
        self, key: Path | str, reference: str | Sequence[str], fmt: SignatureFormat = "legacy"
    ) -> list[str]:
        args = ["sign", "--key", str(key), "--tlog-upload=false", *self._registry_flags()]
        if self.major >= 3 and fmt == "legacy":
            # cosign 3 defaults to Sigstore bundles stored as OCI referrers, which a
            # ClusterPolicy's verifyImages (type Cosign) never looks at; these two flags
            # bring back the `sha256-<hex>.sig` tag.
            args += ["--new-bundle-format=false", "--use-signing-config=false"]
        elif self.major >= 3:
            args += ["--use-signing-config=false"]
        elif fmt == "bundle":
            args += ["--new-bundle-format=true"]
        references = [reference] if isinstance(reference, str) else list(reference)
        return [*args, *references]

    def attest(
        self,
        key: KeyPair,
        reference: str,
        predicate: Path,
        predicate_type: str,
        fmt: SignatureFormat = "legacy",
    ) -> Result:
        """`cosign attest`: an in-toto statement of `predicate_type` about `reference` (a
        digest), signed with `key`, stored as cosign's legacy `sha256-<hex>.att` tag (the
        form a ClusterPolicy's `attestations` reads) or, `bundle` with cosign 3, as a Sigstore
        bundle referrer; no transparency log, as offline."""
        if "@sha256:" not in reference:
            raise ValueError(f"attest a digest, not a tag: {reference}")
        args = [
            "attest",
            "--key",
            key.key_ref,
            "--type",
            predicate_type,
            "--predicate",
            str(predicate),
            "--tlog-upload=false",
            *self._registry_flags(),
        ]
        args += self._legacy_flags() if fmt == "legacy" else ["--use-signing-config=false"]
        if fmt == "bundle" and self.major < 3:
            raise ValueError("cosign 2 writes no bundle attestations")
        return self._check("attest", self.run([*args, reference], key.password, env=key.env))

    def sign(self, key: KeyPair, reference: str, fmt: SignatureFormat = "legacy") -> Result:
        """Sign `reference` (always `repo@sha256:...`: signing a tag signs whatever the tag
        points to at that moment, which is exactly the race a conformance suite must avoid)."""
        return self.sign_all(key, [reference], fmt)

    def sign_all(
        self, key: KeyPair, references: Sequence[str], fmt: SignatureFormat = "legacy"
    ) -> Result:
        """Sign several digests in one cosign process: one start-up and one registry client
        for all (cosign still decrypts the key, scrypt, once per digest)."""
        for reference in references:
            if "@sha256:" not in reference:
                raise ValueError(f"sign by digest, not by tag: {reference}")
        return self._check(
            "sign",
            self.run(self.sign_args(key.key_ref, references, fmt), key.password, env=key.env),
        )

    def _legacy_flags(self) -> list[str]:
        # cosign 3: the legacy `.sig` tag a ClusterPolicy reads, no public signing config.
        return (
            ["--new-bundle-format=false", "--use-signing-config=false"] if self.major >= 3 else []
        )

    def _keyless_flags(self, token_file: Path, fulcio_url: str) -> list[str]:
        # Fulcio here runs without a CT log: no SCT to check (`--insecure-skip-verify`).
        return [
            "--identity-token",
            str(token_file),
            "--fulcio-url",
            fulcio_url,
            "--tlog-upload=false",
            "--insecure-skip-verify=true",
            *self._legacy_flags(),
            *self._registry_flags(),
        ]

    def sign_keyless(self, token_file: Path, fulcio_url: str, references: Sequence[str]) -> Result:
        """Keyless: a short-lived certificate from Fulcio for the identity in the OIDC token
        (read from a file, never an argument), an ephemeral key, no transparency log."""
        args = ["sign", *self._keyless_flags(token_file, fulcio_url), *references]
        return self._check("sign (keyless)", self.run(args))

    def attest_keyless(
        self, token_file: Path, fulcio_url: str, reference: str, predicate: Path, kind: str
    ) -> Result:
        """`attest` as `sign_keyless` signs: the statement signed by the token's identity."""
        flags = self._keyless_flags(token_file, fulcio_url)
        args = ["attest", *flags, "--type", kind, "--predicate", str(predicate), reference]
        return self._check("attest (keyless)", self.run(args))

    def sign_with_certificate(
        self, key: KeyPair, certificate: Path, chain: Path, reference: str
    ) -> Result:
        """A key signature carrying a certificate for that key and its chain, as a keyless
        signature does: what a CA the policy does not trust would hand out."""
        args = [
            "sign",
            "--key",
            key.key_ref,
            "--certificate",
            str(certificate),
            "--certificate-chain",
            str(chain),
            "--tlog-upload=false",
            *self._legacy_flags(),
            *self._registry_flags(),
        ]
        return self._check("sign (certificate)", self.run([*args, reference], key.password))

    def _verify_flags(self, fmt: SignatureFormat) -> list[str]:
        # No transparency log offline; cosign 3 told which format to read.
        flags = ["--insecure-ignore-tlog=true", "--output", "json", *self._registry_flags()]
        if self.major >= 3:
            flags.append(f"--new-bundle-format={'true' if fmt == 'bundle' else 'false'}")
        return flags

    def verify_args(
        self,
        public_key: Path | str,
        reference: str,
        fmt: SignatureFormat = "legacy",
        command: str = "verify",
        extra: Sequence[str] = (),
    ) -> list[str]:
        return [command, "--key", str(public_key), *extra, *self._verify_flags(fmt), reference]

    def _verification(self, what: str, args: list[str], claims: bool) -> Verification:
        # "no signatures" and "no matching signatures" are results; anything else a ToolError.
        result = self.run(args)
        outcome = classify(result.returncode, result.stderr)
        if outcome == "error":
            self._check(what, result)
        return Verification(outcome, parse_claims(result.stdout) if claims else (), result)

    def verify_attestation(
        self, public_key: Path | str, reference: str, kind: str, fmt: SignatureFormat = "legacy"
    ) -> Verification:
        """`cosign verify-attestation --type kind` with a public key, as `verify`."""
        args = self.verify_args(public_key, reference, fmt, "verify-attestation", ("--type", kind))
        return self._verification("verify-attestation", args, claims=False)

    def verify_certificate(self, identity: str, issuer: str, root: Path, reference: str) -> Result:
        """`cosign verify` of a certificate-carrying signature: the certificate's identity and
        issuer, chained to `root` (SIGSTORE_ROOT_FILE), no SCT or log offline. The result is
        returned whatever it is: a refusal is what a caller may want to record."""
        args = [
            "verify",
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            issuer,
            "--insecure-ignore-sct=true",
            *self._verify_flags("legacy"),
            reference,
        ]
        return self.run(args, env={"SIGSTORE_ROOT_FILE": str(root)})

    def verify(
        self, public_key: Path | str, reference: str, fmt: SignatureFormat = "legacy"
    ) -> Verification:
        """Verify with a public key; "no signatures" and "no matching signatures" are results,
        anything else unexpected is a ToolError."""
        return self._verification("verify", self.verify_args(public_key, reference, fmt), True)
