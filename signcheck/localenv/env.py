"""`LocalEnv`: the whole local target as one context manager.

Boot order: registry and etcd, kube-apiserver, then (all at once) controller-manager,
scheduler, kwok with its fake Nodes, Kyverno's namespace/config/CRDs, then Kyverno and its
reports controller. Ready means the apiserver's /readyz is ok, Kyverno's webhook
configurations are registered and answering, and a canary ClusterPolicy turned Ready.
A failure anywhere tears down what had started; teardown runs in reverse, collects its
errors, and first removes Kyverno's webhook configurations, which Kyverno never does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from kubernetes.client.exceptions import ApiException

from signcheck import target as targetlib
from signcheck.clients.oci import OciClient
from signcheck.errors import EnvironmentNotReady, SigncheckError, ToolNotFound
from signcheck.localenv import crds as crdlib
from signcheck.localenv import incluster, readiness
from signcheck.localenv import kubeapi as kubelib
from signcheck.localenv.info import EnvInfo, RegistryInfo
from signcheck.localenv.kyvernoprep import ca_bundle, prepare_kyverno
from signcheck.localenv.process import ManagedProcess, stop_together
from signcheck.localenv.realnode import NODE_TOOLS, NodeWorld
from signcheck.localenv.reap import reap_abandoned
from signcheck.localenv.services.apiserver import NODE_NAME, KubeAPIServer
from signcheck.localenv.services.base import Service
from signcheck.localenv.services.controllers import KubeControllerManager, KubeScheduler
from signcheck.localenv.services.etcd import Etcd
from signcheck.localenv.services.kwok import Kwok
from signcheck.localenv.services.kyverno import (
    NAMESPACE,
    PULL_SECRET,
    Kyverno,
    ReportsController,
    exception_namespace,
)
from signcheck.localenv.services.registry import Registry
from signcheck.localenv.snapshot import ensure_seed
from signcheck.localenv.spec import EnvSpec
from signcheck.localenv.state import EnvState, OwnerLock, new_state, remove_run_dir
from signcheck.tools import pins
from signcheck.wait import wait_for

TOOLS = (
    "registry",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kyverno",
    "reports-controller",
    "fulcio",  # not a service: KEY-*'s signing starts it (signcheck.run.keyless)
)
#: Stop order: each tier together, after Kyverno's webhooks are deleted. The apiserver and its
#: clients go at once, killed (`Service.stop_grace`); the store last: no write is cut off.
STOP_TIERS = (
    (
        "kyverno",
        "reports-controller",
        "kwok",
        "kube-scheduler",
        "kube-controller-manager",
        "kube-apiserver",
    ),
    ("etcd", "registry"),
)


class TeardownError(SigncheckError):
    """Teardown finished but something could not be stopped or removed."""


def resolve_tools(names: tuple[str, ...] = TOOLS) -> tuple[dict[str, Path], dict[str, str]]:
    """Paths and reported versions of every tool, or one error naming all that are missing."""
    results = pins.resolve_many(names)
    missing = [r for r in results if not r.ok]
    if missing:
        lines = [f"{r.name} {r.pinned}: {'; '.join(r.problems) or 'not built'}" for r in missing]
        raise ToolNotFound(
            f"{len(missing)} tool(s) for the local environment are not available; "
            f"run `signcheck tools build {' '.join(r.name for r in missing)}`",
            "\n".join(lines),
        )
    paths = {r.name: r.path for r in results if r.path is not None}
    return paths, {r.name: r.reported or r.pinned for r in results}


class LocalEnv:
    """`with LocalEnv(EnvSpec()) as env: env.info.kubeconfig ...`"""

    def __init__(self, settings: EnvSpec | None = None, *, owner_kind: str = "context") -> None:
        self.settings = settings or EnvSpec()
        self.timeouts = self.settings.timeouts
        self.owner_kind = owner_kind
        self.run_id = self.settings.run_id or targetlib.new_run_id()
        self.run_dir = self.settings.runs_root / self.run_id
        self.services: dict[str, Service] = {}
        self.state: EnvState | None = None
        self.versions: dict[str, str] = {}
        self.world: NodeWorld | None = None
        if self.settings.node_kind == "real":
            self.nodes = [NODE_NAME]
        else:
            self.nodes = [f"kwok-node-{i}" for i in range(self.settings.nodes)]
        self._lock: OwnerLock | None = None
        self._kyverno_values: Path | None = None
        self._kube: kubelib.Kube | None = None
        self._info: EnvInfo | None = None
        self.boot_seconds: float | None = None
        #: Seconds per boot phase and per teardown step, for benchmarks and slow-boot reports.
        self.timings: dict[str, float] = {}
        self.on_registry: Callable[[targetlib.Registry], None] | None = None  # see staging
        self._last_mark = time.monotonic()

    # -- public ------------------------------------------------------------------------

    @property
    def info(self) -> EnvInfo:
        if self._info is None:
            raise EnvironmentNotReady("the local environment is not running")
        return self._info

    def kube(self) -> kubelib.Kube:
        if self._kube is None:
            api = self.services["kube-apiserver"]
            assert isinstance(api, KubeAPIServer)
            self._kube = kubelib.Kube(api.kubeconfig("admin"), timeout=self.timeouts.api_call)
        return self._kube

    def __enter__(self) -> LocalEnv:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        problems = self.stop()
        if problems and exc is None:
            raise TeardownError("the local environment did not stop cleanly", "\n".join(problems))

    def start(self) -> EnvInfo:
        started = self._last_mark = time.monotonic()
        paths, self.versions = resolve_tools(self.required_tools())
        real = self.settings.node_kind == "real"
        self._mark("resolve tools")
        # A crashed earlier run must not hold ports, pids or disk before this one boots.
        reap_abandoned(self.settings.runs_root, self.timeouts, exclude=self.run_id)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock = OwnerLock(self.run_dir)
        if not lock.acquire():
            raise EnvironmentNotReady(
                f"run {self.run_id} is already owned by another process", str(self.run_dir)
            )
        self._lock = lock
        self.state = new_state(self.run_id, self.run_dir, self.owner_kind, self.settings.keep)
        self.state.save()
        try:
            if real:
                self.world = NodeWorld(self.run_dir, self.timeouts)
                self.state.record(self.world.start().record())
            self._boot(paths, deadline=started + self.timeouts.env_boot)
        except BaseException as err:
            self.state.phase = "failed"
            self.state.error = str(err)
            self.state.save()
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - started
        self._info = self._make_info()
        self.state.phase = "ready"
        self.state.info = self._info.as_dict()
        self.state.save()
        return self._info

    def required_tools(self) -> tuple[str, ...]:
        """The pinned tools this environment runs (a real node with Helm Kyverno needs the
        binaries its images are made of, not the out-of-cluster controllers)."""
        if self.settings.node_kind != "real":
            return TOOLS
        tools = tuple(t for t in TOOLS if t != "kwok") + NODE_TOOLS
        if self.settings.kyverno == "helm":
            tools = tuple(t for t in tools if t not in ("kyverno", "reports-controller"))
            tools += incluster.TOOLS
        return tools

    def stop(self) -> list[str]:
        """Tear down in reverse; safe to call again. Returns the problems met, if any."""
        problems: list[str] = []
        self._last_mark = time.monotonic()
        if self.state is not None and self.state.phase != "down":
            self.state.phase = "stopping"
            self.state.save()
        api = self.services.get("kube-apiserver")
        if api is not None and api.process is not None and api.process.alive:
            try:
                kubelib.delete_kyverno_webhooks(self.kube())
            except Exception as err:
                problems.append(f"deleting Kyverno's webhook configurations: {err}")
            self._mark("stop: delete webhooks")
        if self._kube is not None:
            self._kube.close()
            self._kube = None
        if self.world is not None:
            # Containers and the node's daemons before the control plane they report to.
            problems += self.world.stop_node()
        for tier in STOP_TIERS:
            procs = [
                s.process for n in tier if (s := self.services.get(n)) and s.process is not None
            ]
            problems += stop_together(procs)
            if procs:
                self._mark(f"stop: {' + '.join(p.name for p in procs)}")
        if self.world is not None:
            problems += self.world.stop()
            self.world = None
        if self.state is not None:
            self.state.phase = "down"
            if self.run_dir.is_dir():
                self.state.save()
        # `env down --keep` asks a running supervisor to keep the run dir through this file.
        keep = self.settings.keep or (self.run_dir / "keep").exists()
        if not keep and self.run_dir.is_dir():
            remove_run_dir(self.run_dir)
            if self.run_dir.exists():
                problems.append(f"could not remove {self.run_dir}")
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._info = None
        return problems

    # -- boot --------------------------------------------------------------------------

    def _mark(self, label: str) -> None:
        now = time.monotonic()
        self.timings[label] = round(now - self._last_mark, 3)
        self._last_mark = now

    def _remaining(self, deadline: float, wanted: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise EnvironmentNotReady(
                f"the local environment did not boot within {self.timeouts.env_boot:g}s "
                "(timeouts.env_boot)"
            )
        return min(wanted, left)

    def _spawn(self, svc: Service) -> ManagedProcess:
        self.services[svc.name] = svc
        if self.world is not None:
            self.world.adopt(svc)
        proc = svc.build()
        proc.spawn()
        self._record(proc)
        if self.world is not None and (fwd := self.world.forward(svc)):
            self._record(fwd)
        return proc

    def _record(self, proc: ManagedProcess) -> None:
        assert self.state is not None
        self.state.record(proc.record())

    def _boot(self, paths: dict[str, Path], deadline: float) -> None:
        s, t, run = self.settings, self.timeouts, self.run_dir
        helm = s.kyverno == "helm"
        crds = crdlib.load_crds()
        # The snapshot holds Kyverno's CRDs; a Helm install brings its own (and refuses
        # CRDs it did not create).
        seed = ensure_seed(paths, self.versions, crds, t) if s.seed_etcd and not helm else None
        self._mark("etcd seed")
        registry = Registry(run, paths["registry"], t, auth=s.registry_auth, tls=s.registry_tls)
        etcd = Etcd(run, paths["etcd"], t, seed=seed)
        first = [self._spawn(registry), self._spawn(etcd)]
        for proc in first:
            proc.wait_ready()
        self._mark("registry + etcd")
        if self.on_registry:
            self.on_registry(registry.as_target())

        advertise = self.world.ns.addresses.bridge_ip if self.world is not None else None
        api = KubeAPIServer(run, paths["kube-apiserver"], t, etcd.url, advertise=advertise)
        self._spawn(api).wait_ready()
        self._mark("kube-apiserver")
        kube = self.kube()

        kcm = KubeControllerManager(
            run,
            paths["kube-controller-manager"],
            t,
            api.kubeconfig("controller-manager"),
            sa_key=api.sa_key_path,
            root_ca=api.ca_path,
            in_cluster=self.world is not None,
        )
        sched = KubeScheduler(run, paths["kube-scheduler"], t, api.kubeconfig("scheduler"))
        second = [self._spawn(kcm), self._spawn(sched)]
        if self.world is None:
            ready = readiness.nodes_ready(kube, self.nodes)
            second.append(self._spawn(Kwok(run, paths["kwok"], t, api.kubeconfig("kwok"), ready)))

        with ThreadPoolExecutor(max_workers=2) as pool:
            if self.world is None:
                nodes = pool.submit(self._create_nodes, kube)
            else:
                nodes = pool.submit(self._real_node, paths, api, registry, kube)
            if helm:
                self._kyverno_for_helm(paths, registry)
            else:
                prepare_kyverno(kube, None if seed else crds, registry)
            nodes.result()
        if helm:
            for proc in second:
                proc.wait_ready()
            self._mark("nodes, controllers, Kyverno's images")
            return
        wait_for(
            "Kyverno's CRDs to be served",
            crdlib.discovery_probe(kube, crds),
            timeout=self._remaining(deadline, t.service_ready),
            interval=t.poll_interval,
            where=api.url,
        )
        self._mark("nodes, kyverno namespace, CRDs")

        insecure = not registry.tls
        pull_secret = PULL_SECRET if registry.auth else None
        bundle = (
            ca_bundle(registry.ca_path, registry.dir / "tls" / "bundle.pem")
            if registry.ca_path
            else None
        )
        kyv = Kyverno(
            run,
            paths["kyverno"],
            t,
            api.kubeconfig("kyverno"),
            run_id=self.run_id,
            insecure_registry=insecure,
            pull_secret=pull_secret,
            ca_bundle=bundle,
        )
        third = [self._spawn(kyv)]
        if s.reports_controller:
            reports = ReportsController(
                run,
                paths["reports-controller"],
                t,
                api.kubeconfig("reports-controller"),
                run_id=self.run_id,
                insecure_registry=insecure,
                pull_secret=pull_secret,
                ca_bundle=bundle,
                ready=readiness.lease_held(kube, NAMESPACE, "kyverno-reports-controller"),
            )
            third.append(self._spawn(reports))

        for proc in second:
            proc.wait_ready()
        self._mark("controllers, scheduler, kwok")
        for proc in third:
            proc.wait_ready()
        self._mark("kyverno serving")
        self._wait_webhooks(kube, kyv, deadline)
        self._mark("kyverno webhooks")
        self._canary(kube, deadline)
        self._mark("canary policy Ready")

    def _kyverno_for_helm(self, paths: dict[str, Path], registry: Registry) -> None:
        client = OciClient(registry.as_target())
        incluster.push_images(client, registry.host, paths)
        ca = registry.ca_path.read_text() if registry.ca_path else None
        values = incluster.chart_values(registry.host, ca, exception_namespace(self.run_id))
        self._kyverno_values = incluster.write_values(self.run_dir / incluster.VALUES_FILE, values)

    def _real_node(
        self, paths: dict[str, Path], api: KubeAPIServer, registry: Registry, kube: kubelib.Kube
    ) -> None:
        assert self.world is not None
        self.world.boot(paths, api, registry, self._record)
        wait_for(
            "the real node to be Ready",
            readiness.nodes_ready(kube, self.nodes),
            timeout=self.timeouts.service_ready,
            interval=self.timeouts.poll_interval,
        )

    def _create_nodes(self, kube: kubelib.Kube) -> None:
        for name in self.nodes:
            kube.apply(kubelib.fake_node(name))

    def _wait_webhooks(self, kube: kubelib.Kube, kyv: Kyverno, deadline: float) -> None:
        wait_for(
            "Kyverno's webhook configurations",
            readiness.webhooks_answering(kube, kyv.server, kyv.dir / "webhook-ca.crt"),
            timeout=self._remaining(deadline, self.timeouts.kyverno_ready),
            interval=self.timeouts.poll_interval,
            where=f"https://{kyv.server}",
            transient=(OSError, ApiException),
        )

    def _canary(self, kube: kubelib.Kube, deadline: float) -> None:
        readiness.canary(
            kube,
            lambda: self._remaining(deadline, self.timeouts.policy_ready),
            self.timeouts.poll_interval,
        )

    def _make_info(self) -> EnvInfo:
        api = self.services["kube-apiserver"]
        reg = self.services["registry"]
        assert isinstance(api, KubeAPIServer) and isinstance(reg, Registry)
        pids = {n: s.process.pid for n, s in self.services.items() if s.process and s.process.pid}
        return EnvInfo(
            run_id=self.run_id,
            run_dir=str(self.run_dir),
            kubeconfig=str(api.kubeconfig("admin")),
            apiserver_url=api.url,
            registry=RegistryInfo(
                host=reg.host,
                scheme=reg.scheme,
                tls=reg.tls,
                auth=reg.auth,
                ca_path=str(reg.ca_path) if reg.ca_path else None,
                credentials_path=str(reg.credentials_path) if reg.credentials_path else None,
                docker_config_dir=str(reg.docker_config_dir) if reg.docker_config_dir else None,
                pull_secret=PULL_SECRET if reg.auth else None,
            ),
            nodes=list(self.nodes),
            node_kind=self.settings.node_kind,
            kyverno=self.settings.kyverno,
            kyverno_values=str(self._kyverno_values) if self._kyverno_values else None,
            exception_namespace=exception_namespace(self.run_id),
            pids=pids,
            ports={n: dict(s.ports) for n, s in self.services.items() if s.ports},
            versions=dict(self.versions),
            logs_dir=str(self.run_dir / "logs"),
            state_file=str(self.run_dir / "state.json"),
            kubeconfigs={k: str(v) for k, v in api.kubeconfigs.items()},
        )
