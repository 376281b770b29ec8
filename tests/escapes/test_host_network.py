"""Promise: the host's network is unreachable (new network namespace, no interfaces up),
including TCP listeners on the host's loopback and abstract unix sockets."""

from __future__ import annotations

import socket

CONNECT_TCP = """
import socket, sys
s = socket.socket()
s.settimeout(3)
try:
    s.connect(('127.0.0.1', %d))
    print('connected')
except OSError as exc:
    print('refused', exc.errno)
"""

CONNECT_ABSTRACT = """
import socket
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(%r)
    print('connected')
except OSError as exc:
    print('refused', exc.errno)
"""


def test_host_tcp_listener_is_unreachable(sandbox):
    """A listener on the host's 127.0.0.1 cannot be connected to from inside."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = sandbox.python(CONNECT_TCP % port)
    assert result.verdict == "exited", result
    assert result.stdout.decode().startswith("refused"), result.stdout


def test_host_abstract_unix_socket_is_unreachable(sandbox):
    """Abstract unix sockets belong to the network namespace: the host's is not found."""
    name = b"\0sandbox-escape-test-" + str(id(sandbox)).encode()
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(name)
        listener.listen()
        result = sandbox.python(CONNECT_ABSTRACT % name)
    assert result.verdict == "exited", result
    assert result.stdout.decode().startswith("refused"), result.stdout


def test_no_interface_is_up(sandbox):
    """Mode none: not even loopback is up, so nothing can be reached at all."""
    result = sandbox.run(["cat", "/proc/net/dev"])
    lines = result.stdout.decode().splitlines()[2:]
    assert [line.split(":")[0].strip() for line in lines] == ["lo"]
