"""A private test network of Linux network namespaces: hosts cabled to one switch.

Every namespace of a network is named ``cs-<run>-<name>``, ``<run>`` six random hex digits
per network: ``cs-<run>-switch`` holds a bridge, and each host a veth ``eth0`` cabled to a
port of it (``<run>-<host>``, in the switch namespace), with an address in
``10.251.<random>.0/24``. Nothing is added to the root namespace and no host has a
default route: the hosts reach each other and nothing else. Pulling a host's cable
(:meth:`Network.cut`) downs its switch port: the packets either way are dropped, and, as
with a real cable, the host's eth0 loses carrier but its open connections are told
nothing (TCP finds out only when what it sends goes unanswered).

Root only (``ip netns add``); :func:`require_netns` skips a test elsewhere.
"""

import contextlib
import functools
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import psutil  # type: ignore[import-untyped]  # psutil ships no type stubs
import pytest

# Namespaces this module makes; a stale one is only removed if its owner file says so.
NAME = re.compile(r"cs-(?P<run>[0-9a-f]{6})-(?P<host>[a-z0-9]{1,8})")
HOST_NAME = re.compile(r"[a-z0-9]{1,8}")  # "<run>-<host>" then fits a 15-character link name
SWITCH = "switch"
BRIDGE = "br0"
SUBNET_PREFIX = "10.251"
# <run>.owner: the pid and start time of the process that built network <run>
OWNERS = Path(tempfile.gettempdir()) / "chunksum-netns"
IP_TIMEOUT_S = 10.0
REAP_TIMEOUT_S = 5.0


class NetworkError(Exception):
    """An ``ip`` command failed while building, changing or removing a test network."""


@dataclass(frozen=True, slots=True)
class Host:
    """One host of a test network."""

    name: str
    namespace: str
    address: str
    switch_port: str  # its cable's end on the switch: a veth in the switch namespace


@functools.cache
def netns_skip_reason() -> str | None:
    """Return why network namespaces can't be made here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (CI runs as root)"
    if shutil.which("ip") is None:
        return "needs `ip` (iproute2) to create network namespaces"
    probe = f"cs-probe-{os.getpid()}"  # not a NAME: never taken for a stale network
    try:
        ip("netns", "add", probe)
    except NetworkError as exc:
        return f"`ip netns add` does not work here (a container without CAP_SYS_ADMIN?): {exc}"
    ip("netns", "del", probe)
    return None


def require_netns() -> None:
    """Skip the calling test unless network namespaces can be made here."""
    if (reason := netns_skip_reason()) is not None:
        pytest.skip(reason)


def ip(*args: str) -> str:
    """Run ``ip ARGS`` and return its output, or raise NetworkError with its message."""
    try:
        done = subprocess.run(
            ["ip", *args], capture_output=True, text=True, check=True, timeout=IP_TIMEOUT_S
        )
    except subprocess.CalledProcessError as exc:
        raise NetworkError(f"`ip {' '.join(args)}` failed: {exc.stderr.strip()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise NetworkError(f"`ip {' '.join(args)}` took over {IP_TIMEOUT_S} s") from exc
    return done.stdout


def namespaces() -> list[str]:
    """Return the names of every named network namespace (``ip netns list``)."""
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def kill_namespace(namespace: str) -> None:
    """SIGKILL every process in ``namespace`` (a process gone meanwhile is skipped)."""
    for pid in ip("netns", "pids", namespace).split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def remove_namespace(namespace: str) -> None:
    """Kill the processes in ``namespace``, then delete it (its veths go with it)."""
    kill_namespace(namespace)
    ip("netns", "del", namespace)


def remove_stale_networks() -> list[str]:
    """Remove the namespaces of networks whose owner process is gone; return their names.

    Only networks with an owner file are judged: a ``cs-*`` namespace without one was not
    made by this module (or not by a version that records owners), so it is left alone.
    Processes still running in a stale network (a test run SIGKILLed mid-test leaves its
    workers behind) are killed: they belong to the dead run, and nobody else can reach them.
    """
    by_run: dict[str, list[str]] = {}
    for namespace in namespaces():
        if match := NAME.fullmatch(namespace):
            by_run.setdefault(match["run"], []).append(namespace)
    removed: list[str] = []
    owner_files = OWNERS.glob("*.owner") if OWNERS.is_dir() else iter(())
    for owner_file in owner_files:
        if _owner_alive(owner_file):
            continue
        for namespace in by_run.get(owner_file.stem, []):
            remove_namespace(namespace)
            removed.append(namespace)
        owner_file.unlink(missing_ok=True)
    return removed


def _owner_alive(owner_file: Path) -> bool:
    """Return whether the process that wrote ``owner_file`` is still running (pid reuse aside)."""
    try:
        pid_text, started_text = owner_file.read_text().split()
        started: float = psutil.Process(int(pid_text)).create_time()
        return abs(started - float(started_text)) < 1.0
    except psutil.NoSuchProcess:
        return False
    except (OSError, ValueError):  # being written, or unreadable: not provably stale
        return True


class Network:
    """A switch and ``hosts`` cabled to it, each in a namespace; all removed on exit.

    Args:
        hosts: host names, ``[a-z0-9]{1,8}``; addresses are .1, .2, ... in this order.
    """

    def __init__(self, hosts: Sequence[str]) -> None:
        for name in hosts:
            if not HOST_NAME.fullmatch(name) or name == SWITCH:
                raise NetworkError(
                    f"host name {name!r} must be 1-8 lowercase letters or digits, not "
                    f"{SWITCH!r}; use e.g. 'redis' or 'w1'"
                )
        self.run = secrets.token_hex(3)
        self.subnet = ipaddress.ip_network(f"{SUBNET_PREFIX}.{secrets.randbelow(256)}.0/24")
        self.switch = f"cs-{self.run}-{SWITCH}"
        self.hosts = {
            name: Host(
                name=name,
                namespace=f"cs-{self.run}-{name}",
                address=str(self.subnet[number]),
                switch_port=f"{self.run}-{name}",
            )
            for number, name in enumerate(hosts, start=1)
        }
        self._owner_file = OWNERS / f"{self.run}.owner"
        self._made: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Self:
        remove_stale_networks()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _build(self) -> None:
        OWNERS.mkdir(exist_ok=True)
        me = psutil.Process()
        self._owner_file.write_text(f"{me.pid} {me.create_time()}\n")
        self._add_namespace(self.switch)
        ip("-n", self.switch, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", self.switch, "link", "set", BRIDGE, "up")
        for host in self.hosts.values():
            self._add_namespace(host.namespace)
            # the cable: its switch end stays in the switch namespace, eth0 goes to the host
            ip(
                *("-n", self.switch, "link", "add", host.switch_port, "type", "veth"),
                *("peer", "name", "eth0", "netns", host.namespace),
            )
            ip("-n", self.switch, "link", "set", host.switch_port, "master", BRIDGE, "up")
            ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
            ip("-n", host.namespace, "link", "set", "eth0", "up")

    def _add_namespace(self, namespace: str) -> None:
        ip("netns", "add", namespace)
        self._made.append(namespace)
        ip("-n", namespace, "link", "set", "lo", "up")

    def address(self, host: str) -> str:
        """Return a host's address on the switch."""
        return self.hosts[host].address

    def popen(
        self,
        host: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdout: int | IO[bytes] | None = None,
        stderr: int | IO[bytes] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on ``host`` (``ip netns exec``, which execs it: same pid).

        The process is killed on exit if still running.
        """
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.hosts[host].namespace, *argv],
            env=env,
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
        )
        self._processes.append(process)
        return process

    def cut(self, host: str) -> None:
        """Pull a host's cable: its switch port goes down, and its packets are dropped."""
        ip("-n", self.switch, "link", "set", self.hosts[host].switch_port, "down")

    def restore(self, host: str) -> None:
        """Plug a host's cable back in."""
        ip("-n", self.switch, "link", "set", self.hosts[host].switch_port, "up")

    def close(self) -> None:
        """Kill every process in the network, delete its namespaces, and forget its owner.

        Every step is tried; the first failure is raised at the end.
        """
        failures: list[Exception] = []
        for namespace in reversed(self._made):  # the hosts started last go first
            try:
                kill_namespace(namespace)
            except NetworkError as exc:
                failures.append(exc)
        for process in self._processes:
            try:
                reap(process)
            except subprocess.TimeoutExpired as exc:  # unkillable (stuck in the kernel)
                failures.append(exc)
        for namespace in reversed(self._made):
            try:
                ip("netns", "del", namespace)
            except NetworkError as exc:
                failures.append(exc)
        self._made.clear()
        self._owner_file.unlink(missing_ok=True)
        if failures:
            raise failures[0]


def stop(process: subprocess.Popen[bytes], *, grace_s: float) -> int:
    """Send SIGTERM, wait up to ``grace_s`` for the process to exit, then SIGKILL it.

    Returns its exit status (negative: the signal that ended it).
    """
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            return process.wait(grace_s)
    return reap(process)


def reap(process: subprocess.Popen[bytes]) -> int:
    """Kill ``process`` if it still runs, wait for it, close its pipes; return its status."""
    if process.poll() is None:
        process.kill()
    status = process.wait(REAP_TIMEOUT_S)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return status
