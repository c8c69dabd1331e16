"""Real cluster engines on this machine, started and stopped by the tests themselves (`make test-cluster`).

`LocalSlurm`: munged + slurmctld + slurmd for one node with this machine's cores and memory, every file in a
temporary directory, ports above 16000, stopped by the pids it started. `LocalRay`: a Ray head and a second
worker node (its own raylet) on the loopback interface, stopped by killing the pids of their temp dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def _kill_pidfile(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


class LocalSlurm:
    """A one-node SLURM cluster: partition `debug`, jobs share the cores (OverSubscribe), 1 GB per CPU."""

    PARTITION = "debug"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_conf(self) -> None:
        r = self.root
        mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20) - 2048
        ctld, slurmd = free_port(), free_port()
        self.conf.write_text("\n".join([
            "ClusterName=rlrun", f"SlurmctldHost={self.host}", f"SlurmctldPort={ctld}", f"SlurmdPort={slurmd}",
            "SlurmUser=root", "AuthType=auth/munge", f"AuthInfo=socket={r}/sock/munge.socket",
            "CredType=cred/munge", f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/slurmctld.pid", f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log", f"SlurmdLogFile={r}/log/slurmd.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "ReturnToService=2",
            "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            # no slurmdbd here, so no sacct: the job-completion log records every job's final state instead
            "JobCompType=jobcomp/filetxt", f"JobCompLoc={r}/log/jobcomp.txt", "MinJobAge=3600", "KillWait=15",
            "DefMemPerCPU=1024",
            f"NodeName={self.host} CPUs={os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN",
            f"PartitionName={self.PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4",
            "",
        ]))

    def start(self) -> LocalSlurm:
        r = self.root
        for d in ("key", "sock", "state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r, 0o755)
        os.chmod(r / "key", 0o700)
        os.chmod(r / "sock", 0o755)
        key = r / "key" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        subprocess.run(["munged", f"--key-file={key}", f"--socket={r}/sock/munge.socket",
                        f"--pid-file={r}/sock/munged.pid", f"--log-file={r}/log/munged.log",
                        f"--seed-file={r}/key/seed"], check=True)
        self._write_conf()
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True, env=self.env)
        subprocess.run(["slurmd", "-f", str(self.conf)], check=True, env=self.env)
        _wait(lambda: self.node_state() == "idle", 60, "the SLURM node")
        return self

    def run(self, *cmd: str) -> str:
        return subprocess.run(list(cmd), check=True, capture_output=True, text=True, env=self.env).stdout

    def node_state(self) -> str:
        try:
            return self.run("sinfo", "-h", "-o", "%t").strip()
        except subprocess.CalledProcessError:
            return ""

    def job_states(self) -> dict[str, str]:
        """Final state of every finished job (array tasks as <array id>_<task>), from the completion log."""
        states = {}
        log = self.root / "log" / "jobcomp.txt"
        for line in log.read_text().splitlines() if log.is_file() else []:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            states[fields["JobId"]] = fields["JobState"]
        return states

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "--user=root"], env=self.env, capture_output=True)
        for pidfile in ("slurmd.pid", "slurmctld.pid", "sock/munged.pid"):
            _kill_pidfile(self.root / pidfile)


class LocalRay:
    """A Ray head plus a second node (its own raylet) on this machine, `cpus` CPUs each. Both live under one
    temp dir, so `stop` ends exactly the processes they started (their command lines name it).

    Both nodes use the loopback address 127.0.0.2: Ray replaces 127.0.0.1 and localhost by the machine's network
    address (its nodes must reach each other), which this workplace does not let tests use, while every
    127.x.y.z address is the loopback interface and Ray keeps it as given. Token authentication, on by default
    since Ray 2.60, is off (RAY_AUTH_MODE=disabled): nothing outside this machine can reach the cluster."""

    IP = "127.0.0.2"

    def __init__(self, cpus: int = 1) -> None:
        self.cpus = cpus
        self.port = free_port()
        self.address = f"{self.IP}:{self.port}"
        self.temp_dir = f"/tmp/rlrun-ray-{self.port}"  # short: Ray's unix sockets live under it
        self.ray = str(Path(sys.executable).parent / "ray")
        self.env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.env["RAY_AUTH_MODE"] = "disabled"
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.head_cmd = ["ray", "start", "--head", f"--port={self.port}", f"--num-cpus={cpus}",
                         "--include-dashboard=false", f"--node-ip-address={self.IP}", f"--temp-dir={self.temp_dir}",
                         "--disable-usage-stats"]
        self.worker_cmd = ["ray", "start", f"--address={self.address}", f"--num-cpus={cpus}",
                           f"--node-ip-address={self.IP}", "--disable-usage-stats"]
        self.worker_pids: list[int] = []

    def _run(self, cmd: list[str]) -> None:
        subprocess.run([self.ray, *cmd[1:]], check=True, capture_output=True, text=True, env=self.env)

    def start(self) -> LocalRay:
        self._run(self.head_cmd)
        head = set(self.pids())
        self._run(self.worker_cmd)
        _wait(lambda: self.alive_nodes() == 2, 90, "the Ray cluster's two nodes")
        self.worker_pids = sorted(set(self.pids()) - head)  # the worker node's raylet and its helpers
        return self

    def node_ids(self) -> dict[str, str]:
        """{"head": node id, "worker": node id}, from the raylets' command lines."""
        ids = {}
        for pid in self.pids():
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if Path(args[0].decode()).name != "raylet":
                continue
            node = next(a.decode().split("=", 1)[1] for a in args if a.startswith(b"--node_id="))
            ids["worker" if pid in self.worker_pids else "head"] = node
        return ids

    def kill_worker(self) -> None:
        """SIGKILL to the worker node's processes (its raylet first): the node dies as a crashed machine would."""
        for pid in self.worker_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def alive_nodes(self) -> int:
        code = (f"import ray; ray.init(address='{self.address}', log_to_driver=False); "
                "print(sum(n['Alive'] for n in ray.nodes()))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env)
        lines = proc.stdout.strip().splitlines()
        return int(lines[-1]) if lines and lines[-1].isdigit() else 0

    def pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-f", self.temp_dir], capture_output=True, text=True).stdout
        return [int(p) for p in out.split() if int(p) != os.getpid()]

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2.0)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
