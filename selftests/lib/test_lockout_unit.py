"""`lockout.release` against a stand-in for the API server (the behaviour under test is the
loop's, not Kubernetes'): the apiserver keeps calling a webhook for a moment after its
configuration is deleted, and that lag must not read as "a webhook that is not Kyverno's".
The real thing, Kyverno stopped mid-run on a real environment, is
`selftests/safety/test_lockout.py`."""

from __future__ import annotations

from typing import Any

import pytest

from signcheck.clients.k8sapi import ApiError
from signcheck.errors import EnvironmentNotReady
from signcheck.kyverno import lockout

WEBHOOK = "mutate.kyverno.svc-fail"


class LaggingApiServer:
    """Answers the probe with a failed webhook call until `lag` probes after the
    configuration was deleted."""

    def __init__(self, lag: int, kyvernos: bool = True) -> None:
        self.configs = (
            [
                {
                    "kind": "MutatingWebhookConfiguration",
                    "metadata": {"name": "kyverno-resource-mutating-webhook-cfg"},
                    "webhooks": [{"name": WEBHOOK}],
                }
            ]
            if kyvernos
            else []
        )
        self.lag = lag
        self.deleted = False

    def dry_run_pod(self, namespace: str, body: dict[str, Any], timeout: float) -> None:
        if not self.deleted or self.lag > 0:
            if self.deleted:
                self.lag -= 1
            raise ApiError(
                "a pod", 500, f'Internal error occurred: failed calling webhook "{WEBHOOK}"'
            )

    def webhook_configurations(self, selector: str) -> list[dict[str, Any]]:
        return [] if self.deleted else self.configs

    def list_objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        return []

    def delete_webhook_configuration(self, kind: str, name: str) -> bool:
        self.deleted = True
        return True


def test_a_webhook_deleted_a_moment_ago_is_awaited_not_blamed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lockout.time, "sleep", lambda s: None)
    server = LaggingApiServer(lag=2)
    actions = lockout.release(server)  # type: ignore[arg-type]
    assert server.deleted and len(actions) == 1, actions


def test_a_webhook_that_was_never_kyvernos_is_named_and_left() -> None:
    server = LaggingApiServer(lag=0, kyvernos=False)
    with pytest.raises(EnvironmentNotReady, match="not one of Kyverno's"):
        lockout.release(server)  # type: ignore[arg-type]
