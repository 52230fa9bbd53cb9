"""The fault proxy forwards, delays, stalls and cuts as told, and its threads end on stop()."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from support.tcp_proxy import TcpProxy, main

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """An echo server on 127.0.0.1; its threads end with the fixture."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        conn.settimeout(0.1)
        with conn:
            while not stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=serve, args=(conn,), daemon=True)
            threads.append(t)
            t.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    yield server.getsockname()[:2]
    stop.set()
    server.close()
    for t in [acceptor, *threads]:
        t.join(5)


def connect(proxy: TcpProxy) -> socket.socket:
    s = socket.create_connection(proxy.address, timeout=5)
    return s


def test_it_forwards_both_ways(echo: tuple[str, int]) -> None:
    with TcpProxy(echo) as proxy, connect(proxy) as s:
        s.sendall(b"hello")
        assert s.recv(100) == b"hello"
        assert proxy.connections == 1


def test_a_delay_still_delivers_everything(echo: tuple[str, int]) -> None:
    with TcpProxy(echo) as proxy, connect(proxy) as s:
        proxy.set_delay(0.05)
        s.sendall(b"slow")
        assert s.recv(100) == b"slow"


def test_a_stall_keeps_the_link_up_but_silent_until_resumed(echo: tuple[str, int]) -> None:
    with TcpProxy(echo) as proxy, connect(proxy) as s:
        proxy.stall()
        assert proxy.stalled
        s.sendall(b"held")
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(100)
        proxy.resume()
        s.settimeout(5)
        assert s.recv(100) == b"held"


def test_a_blackhole_is_silent_both_ways_and_close_ends_it(echo: tuple[str, int]) -> None:
    proxy = TcpProxy(echo).start()
    with connect(proxy) as s:
        proxy.blackhole()
        s.sendall(b"lost")
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(100)  # no answer, and no close either
        proxy.close()
        s.settimeout(5)
        assert s.recv(100) == b""  # closed now
    assert not [t for t in proxy._threads if t.is_alive()]


def test_a_stall_after_n_bytes_lets_exactly_those_through(echo: tuple[str, int]) -> None:
    with TcpProxy(echo) as proxy, connect(proxy) as s:
        proxy.stall(after=4)  # 4 bytes to the echo server, then nothing, not even the echo back
        s.sendall(b"abcdefgh")
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(100)
        assert proxy.stalled
        proxy.resume()
        s.settimeout(5)
        got = b""
        for _ in range(20):  # bounded: the echo may come back in pieces
            got += s.recv(100)
            if len(got) >= 8:
                break
        assert got == b"abcdefgh"


def test_a_cut_closes_the_client_side(echo: tuple[str, int]) -> None:
    with TcpProxy(echo) as proxy, connect(proxy) as s:
        s.sendall(b"x")
        assert s.recv(10) == b"x"
        proxy.cut()
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(10) == b""
        # New connections still go through.
        with connect(proxy) as s2:
            s2.sendall(b"y")
            assert s2.recv(10) == b"y"


def test_stop_ends_every_thread_even_while_stalled(echo: tuple[str, int]) -> None:
    before = threading.active_count()
    proxy = TcpProxy(echo).start()
    s = connect(proxy)
    s.sendall(b"x")
    assert s.recv(10) == b"x"
    proxy.stall()
    proxy.stop()
    s.close()
    assert threading.active_count() <= before


def test_the_command_line_forwards_until_quit(echo: tuple[str, int], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("bogus\nstall 10\nresume\ndelay 0\ncut\nquit\n"))
    assert main(["127.0.0.1:0", f"{echo[0]}:{echo[1]}"]) == 0
    captured = capsys.readouterr()
    assert "forwarding 127.0.0.1:" in captured.out
    assert "unknown command 'bogus'" in captured.err
    assert main(["only-one"]) == 2
