"""A pytest plugin for the live-policy selftest: switch the run's ClusterPolicy to Audit on
the cluster in the middle of a run, behind the suite's back.

Loaded into the suite with `-p selftests.suite.audit_midrun`. Just before the test named by
`SIGNCHECK_AUDIT_BEFORE` runs its body, it rewrites the live policy (Audit, and
`mutateDigest: false`, which Kyverno requires in Audit) and waits until Kyverno reports it
Ready again. The suite's own copy of the policy still says `enforce`: only a failure message
that reads the live object can tell what happened.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if item.name == os.environ.get("SIGNCHECK_AUDIT_BEFORE"):
        # Imported here: importing the suite's modules at load time would keep pytest from
        # rewriting their asserts.
        from signcheck.kyverno import cpol
        from signcheck.suite.session import get_run

        run = get_run(item.config)
        policies = cpol.Policies(run.resources().cluster)
        name = run.state().policy_name
        live = policies.get(name)
        assert live is not None, f"ClusterPolicy {name} is not there to switch to Audit"
        live["spec"]["validationFailureAction"] = "Audit"
        for rule in live["spec"]["rules"]:
            for verify in rule.get("verifyImages") or []:
                verify["mutateDigest"] = False
        policies.cluster.replace_object(cpol.GROUP, cpol.VERSION, cpol.PLURAL, name, live)
        policies.wait_ready(name, timeout=60)
    yield
