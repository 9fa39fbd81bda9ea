"""The local target: real etcd, kube-apiserver, controllers, kwok, Kyverno and a registry,
run as plain processes on loopback.

    from signcheck.localenv import LocalEnv, EnvSpec
    with LocalEnv(EnvSpec()) as env:
        env.info.kubeconfig, env.info.registry.url
"""

from signcheck.localenv.env import LocalEnv, TeardownError
from signcheck.localenv.info import EnvInfo, RegistryInfo
from signcheck.localenv.process import ManagedProcess
from signcheck.localenv.spec import EnvSpec
from signcheck.timeouts import Timeouts
from signcheck.wait import NotYet, wait_for

__all__ = [
    "EnvInfo",
    "EnvSpec",
    "LocalEnv",
    "ManagedProcess",
    "NotYet",
    "RegistryInfo",
    "TeardownError",
    "Timeouts",
    "wait_for",
]
