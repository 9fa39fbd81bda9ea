"""The suite image's entrypoint: one run of the suite from inside the cluster it judges.

It follows Sonobuoy's plugin contract: results under `$RESULTS_DIR` (default
`/tmp/sonobuoy/results`), packed into one archive whose path is then written to
`$RESULTS_DIR/done`, the signal Sonobuoy's worker waits for. The archive holds the run's
`junit.xml` (the plugin's `result-format: junit`), `summary.json` and `report.html`.

The cluster is the pod's own: a kubeconfig is written from the pod's service-account token
(the suite reads clusters through kubeconfigs only). Options reach the run the way they
reach any run: `SIGNCHECK_*` variables (registry, CA, user; the password from a Secret) and
arguments after the image's entrypoint. With `SIGNCHECK_RESULTS_TO_LOG=1` (`signcheck
incluster` sets it) the archive is also printed to the log between two marker lines, the
one channel every cluster gives back after the pod ends.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tarfile
from pathlib import Path

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
BEGIN = "----- signcheck results (tar.gz, base64) begin -----"
END = "----- signcheck results end -----"
EXIT_PREFIX = "signcheck in-cluster run exit code: "
ARCHIVE = "signcheck-results.tar.gz"


def pod_kubeconfig(path: Path, sa_dir: Path = SA_DIR) -> Path:
    """A kubeconfig for the pod's service account (token and CA by path: never copied)."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    namespace = (sa_dir / "namespace").read_text().strip()
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: incluster\n  cluster:\n    server: {server}\n"
        f"    certificate-authority: {sa_dir / 'ca.crt'}\n"
        f"users:\n- name: pod\n  user:\n    tokenFile: {sa_dir / 'token'}\n"
        "contexts:\n- name: incluster\n  context:\n    cluster: incluster\n    user: pod\n"
        f"    namespace: {namespace}\n"
        "current-context: incluster\n"
    )
    path.chmod(0o600)
    return path


def pack(reports: Path, results_dir: Path) -> Path:
    """The reports as one archive in the results directory, its path in `done`."""
    archive = results_dir / ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        for name in sorted(p.name for p in reports.iterdir() if p.is_file()):
            tar.add(reports / name, arcname=name)
    (results_dir / "done").write_text(str(archive))
    return archive


def main(argv: list[str]) -> int:
    results_dir = Path(os.environ.get("RESULTS_DIR", "/tmp/sonobuoy/results"))
    reports = results_dir / "signcheck"
    reports.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider"]
    if "--kubeconfig" not in argv and not os.environ.get("SIGNCHECK_KUBECONFIG"):
        cmd += ["--target", "cluster", "--kubeconfig", str(pod_kubeconfig(Path("/tmp/kubeconfig")))]
    cmd += ["--signcheck-reports", str(reports), *argv]
    code = subprocess.call(cmd)
    archive = pack(reports, results_dir)
    if os.environ.get("SIGNCHECK_RESULTS_TO_LOG") == "1":
        sys.stdout.write(f"\n{BEGIN}\n")
        sys.stdout.write(base64.encodebytes(archive.read_bytes()).decode())
        sys.stdout.write(f"{END}\n")
    print(f"{EXIT_PREFIX}{code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
