"""Worker hosts as Linux network namespaces, for tests that must not lean on loopback.

Each worker host is a network namespace whose only link is a veth pair to the root
namespace: the host's end is its `eth0`, with one address of a /30, the root end has the
other. The services the hosts use (database servers, Redis, Mosquitto) listen in the root
namespace on addresses of their own, carried by a link of their own (a bridge with no
ports), which each host reaches through its link's root end, and nothing else of the root
namespace (no default route). A host's loopback is its own, with nothing listening on it,
and the root namespace's loopback is out of its reach: a process that connects to
127.0.0.1 there finds nothing.

Only addresses of 198.18.0.0/15 (RFC 2544, set aside for benchmarking) are used, in
198.18.<block>.0/24, where the block (1 to 99) and the names come from the test run's port
base (HV_TEST_PORT_BASE), so that two runs at once never share a name or an address. The
deployment tests use other parts of the range (tests/deploy: Docker's bridge on
198.18.0.0/24, its networks in 198.19.0.0/16, the stack's on 198.18.100-199.0/24):

    198.18.<block>.1/30   root end of host 1's link    198.18.<block>.2/30   host 1's eth0
    198.18.<block>.5/30   root end of host 2's link    198.18.<block>.6/30   host 2's eth0
    198.18.<block>.129    service address 1 (the services' link), .130 service address 2, ...

Needs root (`ip netns`). `create` removes what an earlier run with the same port base left
behind (namespaces, links, processes in those namespaces) and refuses a /24 that an
address of this machine is in; `destroy` stops every process started in the namespaces
and removes the namespaces and links, going on past failures.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class NetworkError(RuntimeError):
    """The test network could not be set up."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                            check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class Host:
    """A worker host: a network namespace and its link to the root namespace."""

    name: str      # the namespace
    address: str   # its eth0's address
    gateway: str   # the root end of its link, through which it reaches the services
    link: str      # the root end's name


@dataclass
class Network:
    """Worker hosts (namespaces) and service addresses (root namespace) of one test run."""

    block: int
    host_count: int = 2
    service_count: int = 2
    hosts: list[Host] = field(init=False)
    services: list[str] = field(init=False)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.block <= 99 or not 1 <= self.host_count <= 31:
            raise NetworkError(f"no room for {self.host_count} hosts in block {self.block}")
        prefix = f"198.18.{self.block}"
        self.prefix = prefix
        self.hosts = [Host(f"hv{self.block}w{i}", f"{prefix}.{4 * i - 2}",
                           f"{prefix}.{4 * i - 3}", f"hv{self.block}w{i}")
                      for i in range(1, self.host_count + 1)]
        self.services = [f"{prefix}.{129 + i}" for i in range(self.service_count)]
        self.dummy = f"hv{self.block}svc"

    @classmethod
    def for_port_base(cls, port_base: int) -> Network:
        return cls(block=1 + port_base // 1000 % 99)

    # Setting up and tearing down -----------------------------------------------------

    def create(self) -> Network:
        self._remove(ignore_errors=True)  # an earlier run's leftovers (same names)
        ours = ipaddress.ip_network(f"{self.prefix}.0/24")
        held = [line.split()[3] for line in ip("-4", "-o", "addr", "show").stdout.splitlines()]
        taken = [a for a in held if ipaddress.ip_interface(a).network.overlaps(ours)]
        if taken:
            raise NetworkError(f"{ours} overlaps addresses of this machine: {', '.join(taken)}")
        ip("link", "add", self.dummy, "type", "bridge")
        for address in self.services:
            ip("addr", "add", f"{address}/32", "dev", self.dummy)
        ip("link", "set", self.dummy, "up")
        for host in self.hosts:
            ip("netns", "add", host.name)
            ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0",
               "netns", host.name)
            ip("addr", "add", f"{host.gateway}/30", "dev", host.link)
            ip("link", "set", host.link, "up")
            ip("-n", host.name, "addr", "add", f"{host.address}/30", "dev", "eth0")
            ip("-n", host.name, "link", "set", "eth0", "up")
            ip("-n", host.name, "link", "set", "lo", "up")
            # A route to the service addresses only: no default route, so nothing else
            # of the root namespace is reachable.
            ip("-n", host.name, "route", "add", f"{self.prefix}.128/25", "via", host.gateway)
        return self

    def destroy(self) -> None:
        """Stop what was started in the namespaces, then remove them and the links."""
        errors: list[str] = []
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                except OSError as exc:
                    errors.append(f"pid {process.pid}: {exc}")
        self.processes.clear()
        errors += self._remove(ignore_errors=False)
        if errors:
            raise NetworkError("; ".join(errors))

    def _remove(self, ignore_errors: bool) -> list[str]:
        errors: list[str] = []
        existing = ip("netns", "list").stdout.split()
        for host in self.hosts:
            if host.name in existing:
                # Whatever still runs in one of our namespaces was started by this test.
                for pid in ip("netns", "pids", host.name).stdout.split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
                result = ip("netns", "del", host.name, check=False)
                if result.returncode != 0:
                    errors.append(result.stderr.strip())
            # Removing the namespace removes its eth0, hence the pair's root end; an
            # earlier run stopped half-way may have left a root end alone.
            if ip("link", "show", host.link, check=False).returncode == 0:
                result = ip("link", "del", host.link, check=False)
                if result.returncode != 0:
                    errors.append(result.stderr.strip())
        if ip("link", "show", self.dummy, check=False).returncode == 0:
            result = ip("link", "del", self.dummy, check=False)
            if result.returncode != 0:
                errors.append(result.stderr.strip())
        return [] if ignore_errors else errors

    # Running things on a host ------------------------------------------------------------

    def start(self, host: Host, argv: list[str], env: Mapping[str, str], cwd: Path,
              log: Path) -> subprocess.Popen[bytes]:
        """Start a process in the host's namespace, in a process group of its own;
        `destroy` stops it."""
        with log.open("ab") as output:
            process = subprocess.Popen(["ip", "netns", "exec", host.name, *argv], env=dict(env),
                                       cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes.append(process)
        return process

    def run(self, host: Host, argv: list[str], env: Mapping[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", host.name, *argv], env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def namespace_of(self, pid: int) -> str:
        """The name of the namespace a process runs in ("" for the root namespace)."""
        return ip("netns", "identify", str(pid)).stdout.strip()
