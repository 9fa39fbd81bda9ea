"""Keyless pieces without a cluster: the identity expressions, the attestors both APIs get,
the foreign CA's certificate, and the forwarder's reverse direction through a real network
namespace."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signcheck.artefacts import foreign_ca
from signcheck.kyverno import cpol, ivpol, keyless
from signcheck.localenv import forward, netns
from signcheck.localenv.ports import free_port
from signcheck.localenv.services import fulcio
from signcheck.run import keyless as run_keyless

SIGNER = fulcio.subject("ns", "signer")


def test_regexp_matches_exactly_the_identity() -> None:
    pattern = re.compile(run_keyless.regexp(SIGNER))
    assert pattern.fullmatch(SIGNER)
    # The control: the impostor whose name starts like the signer's does not match.
    assert not pattern.search(fulcio.subject("ns", "signer-impostor"))
    assert not pattern.search(SIGNER.replace(".", "x"))


def _docs() -> tuple[dict[str, object], dict[str, object]]:
    spec = cpol.PolicySpec(run_id="r", image_references=("reg/r/*",), public_keys=("PEM",))
    iv = ivpol.IvpolSpec(run_id="r", image_references=("reg/r/*",), public_keys=("A", "B"))
    return cpol.render_cluster_policy(spec), ivpol.render(iv)


def test_attestors_replace_the_keys() -> None:
    cp, iv = _docs()
    who = keyless.Identity(subject=SIGNER, issuer="https://issuer")
    out = keyless.cpol(cp, who, "ROOT\n")
    entry = out["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"]
    assert entry == [
        {
            "keyless": {
                "subject": SIGNER,
                "issuer": "https://issuer",
                "roots": "ROOT",
                "rekor": {"url": keyless.UNUSED_REKOR, "ignoreTlog": True},
                "ctlog": {"ignoreSCT": True},
            }
        }
    ]
    assert "keys" not in str(entry)
    twin = keyless.ivpol(iv, keyless.Identity(subject_regexp="^x$"), "ROOT")
    attestors = twin["spec"]["attestors"]
    # One attestor, under the name the validations already use.
    assert [a["name"] for a in attestors] == ["cosign"]
    assert attestors[0]["cosign"]["keyless"] == {
        "identities": [{"subjectRegExp": "^x$"}],
        "roots": "ROOT",
    }
    assert "attestors.cosign" in str(twin["spec"]["variables"])


def test_rekor_placeholder_is_loopback() -> None:
    # Never a public address: the network rule holds even if Kyverno used it.
    assert keyless.UNUSED_REKOR.startswith("http://127.0.0.1:")


def test_foreign_certificate_claims_the_identity(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    issued = foreign_ca.issue(pem, SIGNER, "https://issuer", tmp_path)
    leaf = x509.load_pem_x509_certificate(issued.certificate.read_bytes())
    root = x509.load_pem_x509_certificate(issued.root_pem.encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [SIGNER]
    v2 = leaf.extensions.get_extension_for_oid(foreign_ca.ISSUER_V2).value
    assert isinstance(v2, x509.UnrecognizedExtension)
    assert v2.value == b"\x0c\x0ehttps://issuer"
    assert leaf.issuer == root.subject
    leaf.verify_directly_issued_by(root)
    assert leaf.public_key() == key.public_key()


def _holder() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep 60"],
    )


@pytest.mark.skipif(bool(netns.missing_tools()), reason="needs unshare, nsenter, ip, mount")
def test_reverse_forward_reaches_the_host_from_inside() -> None:
    # A server on host loopback; inside a fresh namespace, port IN must reach it.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    out = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.sendall(b"from-host")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    holder = _holder()
    fwd = None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                netns.entered(holder.pid)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        time.sleep(0.2)  # `ip link set lo up` inside
        inside_port = free_port()  # free on the host too, for the control below
        fwd = subprocess.Popen(
            [
                sys.executable,
                "-I",
                forward.__file__,
                f"--netns-pid={holder.pid}",
                f"--reverse={inside_port}:{out}",
            ]
        )
        probe = (
            "import socket,time\n"
            "for _ in range(100):\n"
            "    try:\n"
            f"        s=socket.create_connection(('127.0.0.1',{inside_port}),timeout=2); break\n"
            "    except OSError: time.sleep(0.05)\n"
            "print(s.recv(100).decode())\n"
        )
        got = subprocess.run(
            ["nsenter", f"--target={holder.pid}", "--net", "--", sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert got.stdout.strip() == "from-host", got.stderr
        # The control: the same port on the host has no listener (it is inside only).
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", inside_port), timeout=1)
    finally:
        for proc in (fwd, holder):
            if proc is not None:
                proc.kill()
                proc.wait()
        server.close()
