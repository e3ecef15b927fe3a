"""cosign: sign each pushed digest, attach its SBOM as an attestation, verify both.

Plain module (no dagger import): argv and environment only; the pipeline and the
tests (against a real registry on loopback) run the same commands.

Key mode: the private key and its password arrive as secrets and reach cosign
only through the environment (``--key env://COSIGN_PRIVATE_KEY``, cosign reads
``COSIGN_PASSWORD`` itself): never argv, never a file in an image layer.
Without a transparency log reachable (private registries, these tests), upload
to Rekor is off and verification says so (``--insecure-ignore-tlog``); with
``tlog=True`` both use the public log.

Keyless mode is for CIs that provide OIDC (GitHub Actions with ``id-token:
write``, GitLab's ``id_tokens``): cosign takes the token from the environment
(``SIGSTORE_ID_TOKEN``) and the certificate goes to the public Fulcio/Rekor.
It cannot run here (no OIDC provider, no network): proven at plan level only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InputError

COSIGN_MODULE = "github.com/sigstore/cosign/v2"
COSIGN_PACKAGE = "github.com/sigstore/cosign/v2/cmd/cosign"
COSIGN_VERSION = "v2.6.5"

KEY_ENV = "COSIGN_PRIVATE_KEY"  # the PEM private key (secret)
PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105 (a name); its password (secret); cosign reads this name itself
PUBLIC_KEY_ENV = "COSIGN_PUBLIC_KEY"
ID_TOKEN_ENV = "SIGSTORE_ID_TOKEN"  # noqa: S105 (a name); keyless: the CI's OIDC token
SBOM_PREDICATE = "cyclonedx"
_DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


class SignInputError(InputError):
    """A signing request that cannot be right (a tag instead of a digest, a missing key)."""


@dataclass(frozen=True)
class Signing:
    """How to sign: with a key pair (``keyless=False``) or the CI's OIDC identity."""

    keyless: bool = False
    tlog: bool = False  # upload to / check against the public Rekor log
    # keyless verification: who may have signed (the CI workflow's identity)
    identity_regexp: str = ""
    oidc_issuer: str = ""

    def __post_init__(self) -> None:
        if self.keyless and not self.tlog:
            raise SignInputError(
                "keyless signing needs the public transparency log (tlog=True): the "
                "short-lived certificate is only trustworthy with its log entry"
            )

    def _tlog_args(self, verify: bool) -> list[str]:
        if self.tlog:
            return []
        return ["--insecure-ignore-tlog=true"] if verify else ["--tlog-upload=false"]

    def _key_args(self, public_key: str | None) -> list[str]:
        if self.keyless:
            return []
        return ["--key", public_key if public_key is not None else f"env://{KEY_ENV}"]

    def _identity_args(self) -> list[str]:
        if not self.keyless:
            return []
        if not (self.identity_regexp and self.oidc_issuer):
            raise SignInputError(
                "keyless verification needs the signer's identity: give identity_regexp (e.g. "
                "^https://github.com/ORG/REPO/) and oidc_issuer "
                "(https://token.actions.githubusercontent.com on GitHub Actions)"
            )
        return [
            "--certificate-identity-regexp", self.identity_regexp,
            "--certificate-oidc-issuer", self.oidc_issuer,
        ]  # fmt: skip


def check_digest_ref(ref: str) -> str:
    """cosign signs what a digest names, never a tag (a tag can move under the signature)."""
    if not _DIGEST_REF.match(ref):
        raise SignInputError(
            f"{ref!r} is not a digest reference (REPO@sha256:...): sign what was pushed, "
            "by digest, not a tag"
        )
    return ref


def sign_argv(cosign: str, ref: str, signing: Signing, recursive: bool = True) -> list[str]:
    """Sign ``ref``; ``recursive`` also signs each platform manifest of an index."""
    return [
        cosign, "sign", "--yes", *signing._key_args(None), *signing._tlog_args(False),
        *(["--recursive"] if recursive else []), check_digest_ref(ref),
    ]  # fmt: skip


def attest_argv(cosign: str, ref: str, sbom_path: str, signing: Signing) -> list[str]:
    """Attach the SBOM to ``ref`` as a signed in-toto attestation (CycloneDX predicate)."""
    return [
        cosign, "attest", "--yes", *signing._key_args(None), *signing._tlog_args(False),
        "--type", SBOM_PREDICATE, "--predicate", sbom_path, check_digest_ref(ref),
    ]  # fmt: skip


def verify_argv(cosign: str, ref: str, signing: Signing, public_key: str) -> list[str]:
    return [
        cosign, "verify", *signing._key_args(public_key), *signing._tlog_args(True),
        *signing._identity_args(), "--output", "json", check_digest_ref(ref),
    ]  # fmt: skip


def verify_attestation_argv(cosign: str, ref: str, signing: Signing, public_key: str) -> list[str]:
    return [
        cosign, "verify-attestation", *signing._key_args(public_key), *signing._tlog_args(True),
        *signing._identity_args(), "--type", SBOM_PREDICATE, "--output", "json",
        check_digest_ref(ref),
    ]  # fmt: skip


def secret_env_names(signing: Signing) -> tuple[str, ...]:
    """The environment variables that must come from secrets for ``signing``."""
    return (ID_TOKEN_ENV,) if signing.keyless else (KEY_ENV, PASSWORD_ENV)
