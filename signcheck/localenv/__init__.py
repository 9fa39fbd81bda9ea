"""The local target: real etcd, kube-apiserver, controllers, kwok, Kyverno and a registry,
run as plain processes on loopback.

    from signcheck.localenv import LocalEnv, Settings
    with LocalEnv(Settings()) as env:
        env.info.kubeconfig, env.info.registry.url
"""

from signcheck.localenv.attach import find_running
from signcheck.localenv.env import LocalEnv, TeardownError
from signcheck.localenv.info import EnvInfo, RegistryInfo
from signcheck.localenv.process import ManagedProcess
from signcheck.localenv.settings import Settings
from signcheck.localenv.waiting import NotYet, wait_for
from signcheck.timeouts import Timeouts

__all__ = [
    "EnvInfo",
    "LocalEnv",
    "ManagedProcess",
    "NotYet",
    "RegistryInfo",
    "Settings",
    "TeardownError",
    "Timeouts",
    "find_running",
    "wait_for",
]
