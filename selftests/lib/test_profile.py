"""Settings from three places: the command line wins over the environment, which wins over
a profile file, which wins over the defaults; each value remembers where it came from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from signcheck import redact
from signcheck.errors import ConfigError
from signcheck.settings import profile
from signcheck.settings.config import Settings


def _cli(**given: object) -> dict[str, object]:
    cli: dict[str, object] = {o.field: None for o in profile.OPTIONS}
    cli["profile"] = None
    cli.update(given)
    return cli


def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "signcheck.toml"
    path.write_text(text)
    return path


def test_cli_over_env_over_profile_over_default(tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text("")
    prof = _profile(
        tmp_path,
        'target = "cluster"\nregistry = "file.example"\ncontext = "from-file"\n'
        'kyverno-namespace = "file-ns"\nkubeconfig = "kc"\n',
    )
    env = {"SIGNCHECK_REGISTRY_URL": "env.example", "SIGNCHECK_CONTEXT": "from-env"}
    s = Settings.from_sources(_cli(profile=prof, context="from-cli"), env)
    assert s.context == "from-cli" and s.sources["context"] == "command line --context"
    assert s.registry == "env.example"
    assert s.sources["registry"] == "environment SIGNCHECK_REGISTRY_URL"
    assert s.kyverno_namespace == "file-ns" and s.sources["kyverno_namespace"].startswith(
        "profile "
    )
    assert s.kubeconfig == kc, "relative paths in a profile are relative to the profile"
    assert s.cosign_tool == "cosign-v2" and "cosign_tool" not in s.sources  # the default


def test_profile_from_the_environment(tmp_path: Path) -> None:
    prof = _profile(tmp_path, 'target = "local"\nkeep = true\n')
    s = Settings.from_sources(_cli(), {"SIGNCHECK_PROFILE": str(prof)})
    assert s.keep is True


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('kyverno-mod = "install"\n', "unknown option 'kyverno-mod' in profile"),
        ("keep = 3\n", "is not a boolean"),
        ('target = "moon"\n', "unknown value 'moon' for --target (profile"),
        ('registry-password = "s3cret-s3cret"\n', "export SIGNCHECK_REGISTRY_PASSWORD"),
        ("target = \n", "is not valid TOML"),
    ],
)
def test_profile_errors_name_the_fix(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_sources(_cli(profile=_profile(tmp_path, text)), {})
    assert needle in err.value.message
    assert "s3cret" not in str(err.value)


def test_env_booleans() -> None:
    assert Settings.from_sources(_cli(), {"SIGNCHECK_KEEP": "yes"}).keep is True
    assert Settings.from_sources(_cli(), {"SIGNCHECK_KEEP": "0"}).keep is False
    with pytest.raises(ConfigError, match="SIGNCHECK_KEEP"):
        Settings.from_sources(_cli(), {"SIGNCHECK_KEEP": "maybe"})


@pytest.mark.parametrize(
    ("value", "scheme", "host", "prefix"),
    [
        ("cr.yandex/crp123", "https", "cr.yandex", "crp123/signcheck"),
        ("http://127.0.0.1:5000", "http", "127.0.0.1:5000", "signcheck"),
        ("https://reg.example:8443/a/b/", "https", "reg.example:8443", "a/b/signcheck"),
    ],
)
def test_registry_forms(tmp_path: Path, value: str, scheme: str, host: str, prefix: str) -> None:
    kc = tmp_path / "kc"
    kc.write_text("")
    s = Settings.from_sources(_cli(target="cluster", registry=value, kubeconfig=kc), {})
    assert (s.effective_registry_scheme, s.registry_host, s.registry_repository_prefix) == (
        scheme,
        host,
        prefix,
    )


def test_registry_garbage_is_refused(tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text("")
    with pytest.raises(ConfigError, match="is not a registry"):
        Settings.from_sources(_cli(target="cluster", registry="user@host:/x", kubeconfig=kc), {})


def test_kyverno_version_is_checked_and_selected_for_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pinned version is selected through the variable the tool lookup (and every child
    process) reads; one that is not pinned, or one on a target whose Kyverno the run does not
    install, is one error naming the fix."""
    from signcheck.tools import pins

    var = pins.version_var("kyverno")
    # setenv records the variable's absence, so the test's end removes what Settings sets
    # (a delenv of an absent variable records nothing, and the selection would leak into
    # every later test of the session).
    monkeypatch.setenv(var, "set-by-the-test")
    monkeypatch.delenv(var)
    old = pins.pinned_versions("kyverno")[-1]
    Settings.from_sources(_cli(kyverno_version=old), {})
    assert pins.group("kyverno").version == old
    monkeypatch.delenv(var)
    assert pins.group("kyverno").version == pins.pinned_versions("kyverno")[0]
    with pytest.raises(ConfigError, match="is not pinned: choose one of v"):
        Settings.from_sources(_cli(kyverno_version="v1.2.3"), {})
    kc = tmp_path / "kc"
    kc.write_text("")
    with pytest.raises(ConfigError, match="needs --kyverno-mode install"):
        Settings.from_sources(
            _cli(kyverno_version=old, target="cluster", registry="r.example", kubeconfig=kc), {}
        )


def test_the_kyverno_selection_did_not_leak() -> None:
    """Runs after the test above (same module, in order): no selection is left behind."""
    from signcheck.tools import pins

    assert pins.version_var("kyverno") not in os.environ


def test_registry_password_from_a_file_a_profile_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each cluster of a fleet can have its own registry password: the profile names the
    file (never the password); the variable still wins; the password is redacted."""
    monkeypatch.delenv("SIGNCHECK_REGISTRY_PASSWORD", raising=False)
    kc = tmp_path / "kc"
    kc.write_text("")
    (tmp_path / "pw").write_text("per-cluster-password-42\n")
    prof = _profile(
        tmp_path,
        'target = "cluster"\nregistry = "r.example"\nkubeconfig = "kc"\n'
        'registry-username = "ci"\nregistry-password-file = "pw"\n',
    )
    s = Settings.from_sources(_cli(profile=prof), {})
    assert s.registry_password == "per-cluster-password-42"
    assert redact.redact("x per-cluster-password-42") == f"x {redact.MASK}"
    monkeypatch.setenv("SIGNCHECK_REGISTRY_PASSWORD", "from-the-environment")
    assert s.registry_password == "from-the-environment"
    (tmp_path / "pw").unlink()
    with pytest.raises(ConfigError, match=r"--registry-password-file .* does not exist"):
        Settings.from_sources(_cli(profile=prof), {})
