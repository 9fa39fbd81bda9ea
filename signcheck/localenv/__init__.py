"""The local target: real etcd, kube-apiserver, controllers, kwok, Kyverno and a registry,
run as plain processes on loopback.

    from signcheck.localenv import LocalEnv, Settings
    with LocalEnv(Settings()) as env:
        env.info.kubeconfig, env.info.registry.url
"""

from signcheck.localenv.env import LocalEnv, TeardownError
from signcheck.localenv.info import EnvInfo, RegistryInfo
from signcheck.localenv.process import ManagedProcess
from signcheck.settings.localenv import Settings
from signcheck.timeouts import Timeouts
from signcheck.wait import NotYet, wait_for

__all__ = [
    "EnvInfo",
    "LocalEnv",
    "ManagedProcess",
    "NotYet",
    "RegistryInfo",
    "Settings",
    "TeardownError",
    "Timeouts",
    "wait_for",
]
