"""The idle-connection check before use (app.db._has_unread_input), on real sockets."""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace
from typing import Any

from app.db import _has_unread_input

#: A descriptor number select() cannot handle (FD_SETSIZE is 1024).
HIGH_FD = 1500


def _conn_on(fd: int) -> Any:
    # The check reads only conn.pgconn.socket: a stand-in carrying a real descriptor.
    return SimpleNamespace(pgconn=SimpleNamespace(socket=fd))


def test_the_check_sees_data_and_eof_on_any_descriptor() -> None:
    ours, theirs = socket.socketpair()
    high = os.dup2(ours.fileno(), HIGH_FD)
    try:
        for fd in (ours.fileno(), high):
            assert not _has_unread_input(_conn_on(fd)), fd
        theirs.sendall(b"E")  # the server's FATAL message, say
        for fd in (ours.fileno(), high):
            assert _has_unread_input(_conn_on(fd)), fd
        ours.recv(1)
        theirs.close()  # the server end closed: EOF waits
        for fd in (ours.fileno(), high):
            assert _has_unread_input(_conn_on(fd)), fd
    finally:
        os.close(high)
        ours.close()
        theirs.close()


def test_an_unusable_descriptor_counts_as_suspect() -> None:
    assert _has_unread_input(_conn_on(-1))
