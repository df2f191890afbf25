"""Free TCP ports for the local services we start (Ray's agents, Serve's proxy, test servers).

They come from below the kernel's ephemeral range (32768-60999 by default) and above Ray's worker
ports (10002-19999). A port found free *inside* the ephemeral range can go to any bind(0) or outgoing
connection before its owner binds it, seconds later: in CI the driver's own gRPC server got the
dashboard agent's port 9 s before the agent's slow start bound it, and the raylet, which
fate-shares with its agents, ended the instance under a running test.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

PORT_RANGE = (20000, 32767)
_ports_given: set[int] = set()  # never the same port twice from one process, even before it is bound


def free_port() -> int:
    """A TCP port that nothing listens on, from PORT_RANGE (below the ephemeral range, so no bind(0)
    takes it in the meantime), not handed out before by this process."""
    low, high = PORT_RANGE
    high = min(high, ephemeral_ports()[0] - 1)
    chooser = random.SystemRandom()  # independent of any seed a caller set
    for _ in range(200 if high >= low else 0):
        port = chooser.randint(low, high)
        if port in _ports_given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    with socket.socket() as sock:  # no room below the ephemeral range on this host
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for bind(0) and outgoing connections (Linux; the default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999
