"""Best-effort reads for the posture checks: every object comes back as the API's own JSON
(camelCase, as `kubectl get -o json` shows it), and every read that fails says why instead of
raising, so a check can report what it could not see (RBAC, an API the cluster does not
serve, an unreachable server) and never guess past it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import (
    DynamicApiError,
    NotFoundError,
    ResourceNotFoundError,
)

from signcheck.clients.k8s import Cluster
from signcheck.clients.k8sapi import status_message

T = TypeVar("T")

REQUEST_TIMEOUT = 15
"""Seconds per request: a posture read must not hang a run's report on a slow server."""


class Reads:
    """Reads against one cluster, remembering what could not be read and why."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.unreadable: dict[str, str] = {}
        """What could not be read -> why (the API server's own words where it gave any)."""
        self.not_served: list[str] = []
        """Kinds this cluster does not serve (not an error: there are none to read)."""

    def _call(self, what: str, fn: Callable[[], T]) -> tuple[T | None, bool]:
        """(result, found): found is False for NotFound (absent, not unreadable)."""
        try:
            return fn(), True
        except ResourceNotFoundError:
            self.not_served.append(what)
        except NotFoundError:
            pass
        except (DynamicApiError, ApiException) as err:
            message, _ = status_message(err.body, str(err.reason or err))
            self.unreadable[what] = f"HTTP {err.status}: {message}"
        except (urllib3.exceptions.HTTPError, OSError) as err:
            self.unreadable[what] = f"the API server did not answer: {err}"
        return None, False

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.cluster.dynamic.resources.get(api_version=api_version, kind=kind)

    def objects(
        self,
        what: str,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]] | None:
        """Every object of a kind; None when they could not be listed (see `unreadable`)."""
        extra: dict[str, Any] = {"_request_timeout": REQUEST_TIMEOUT}
        if label_selector:
            extra["label_selector"] = label_selector
        listed, _ = self._call(
            what,
            lambda: self._resource(api_version, kind).get(namespace=namespace, **extra).to_dict(),
        )
        if listed is None:
            return [] if what in self.not_served else None
        return [i for i in listed.get("items") or [] if isinstance(i, dict)]

    def get(
        self, what: str, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """One object; None when absent or unreadable (`unreadable` tells which)."""
        found, _ = self._call(
            what,
            lambda: (
                self._resource(api_version, kind)
                .get(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
                .to_dict()
            ),
        )
        return found if isinstance(found, dict) else None

    def list_first_served(
        self, what: str, group: str, versions: tuple[str, ...], kind: str
    ) -> tuple[str | None, list[dict[str, Any]] | None]:
        """(version, objects) from the first version of `group` the cluster serves `kind` in
        (an API that moves from alpha to beta to v1); (None, []) when none serves it."""
        for version in versions:
            try:
                self._resource(f"{group}/{version}", kind)
            except ResourceNotFoundError:
                continue
            except (DynamicApiError, ApiException, urllib3.exceptions.HTTPError, OSError) as err:
                self.unreadable[what] = f"API discovery failed: {err}"
                return None, None
            return version, self.objects(what, f"{group}/{version}", kind)
        self.not_served.append(what)
        return None, []
