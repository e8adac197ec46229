"""A fake Slack Socket Mode endpoint: a real WebSocket server (RFC 6455) on loopback, for tests.

`FakeSlack.apps.connections.open` hands out its URLs (`ws://127.0.0.1:<port>/link/?ticket=…`);
each ticket opens one connection, once, as Slack's do. Slack's protocol, as the fake speaks it
(docs.slack.dev/apis/events-api/using-socket-mode):

- on connect the server sends `{"type": "hello", "num_connections": n, …}`;
- it delivers envelopes `{"envelope_id", "type": "events_api" | "slash_commands" | "interactive",
  "payload", "accepts_response_payload", "retry_attempt", "retry_reason"}`;
- the client acknowledges each with `{"envelope_id": …}` (optionally with a `payload`);
- `{"type": "disconnect", "reason": "refresh_requested"}` asks the client to open a new connection.

Tests push envelopes to one connection or to each, wait for their acks, count connections, drop
one abruptly (no close frame, as a network cut does) or send `disconnect`. Standard library only,
like the other fakes. Server frames are unmasked, client frames must be masked (else the
connection is failed with 1002, as the RFC requires); pings are answered with pongs.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import socket
import struct
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class ConnectionGone(Exception):
    """The peer closed or the socket broke while reading a frame."""


@dataclass
class Ack:
    envelope_id: str
    payload: Any
    connection: int
    at: float = field(default_factory=time.monotonic)


class Connection:
    """One client's WebSocket, server side."""

    def __init__(self, number: int, sock: socket.socket, ticket: str) -> None:
        self.number = number
        self.sock = sock
        self.ticket = ticket
        self.open = True
        # A dead network path that neither end has noticed: nothing comes back, pongs included.
        self.silent = False
        self.received: list[Any] = []  # every text frame the client sent, decoded when it was JSON
        self._send_lock = threading.Lock()

    def send_frame(self, opcode: int, data: bytes) -> None:
        header = bytes([0x80 | opcode])
        size = len(data)
        if size < 126:
            header += bytes([size])
        elif size < 1 << 16:
            header += bytes([126]) + struct.pack("!H", size)
        else:
            header += bytes([127]) + struct.pack("!Q", size)
        with self._send_lock:
            self.sock.sendall(header + data)

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_json(self, message: dict) -> None:
        self.send_text(json.dumps(message))

    def read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        masked, size = bool(second & 0x80), second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._read(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._read(8))
        if not masked:
            raise ProtocolViolation("client frame not masked")
        mask = self._read(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read(size)))
        return fin, opcode, data

    def _read(self, count: int) -> bytes:
        chunks, missing = [], count
        while missing:
            try:
                chunk = self.sock.recv(missing)
            except OSError:
                raise ConnectionGone() from None
            if not chunk:
                raise ConnectionGone()
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)


class ProtocolViolation(Exception):
    pass


class FakeSocketMode:
    """The Socket Mode WebSocket endpoint; see module docstring."""

    def __init__(self, app_id: str = "A0000APP1") -> None:
        self.app_id = app_id
        self.server_errors: list[str] = []
        self.connections: list[Connection] = []  # every connection ever accepted, in order
        self.acks: dict[str, Ack] = {}
        self.refused_tickets: list[str] = []
        self._tickets: dict[str, bool] = {}  # ticket -> used
        self._lock = threading.Condition()
        self._envelopes = itertools.count(1)
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop, "fake-socket-accept")
        return self

    def stop(self) -> None:
        if self._listener is None:
            return
        listener, self._listener = self._listener, None
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        listener.close()
        for connection in self.open_connections():
            self._abort(connection, reset=False)
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ what FakeSlack hands out

    def new_url(self) -> str:
        """A one-connection URL, as apps.connections.open returns."""
        ticket = secrets.token_hex(8)
        with self._lock:
            self._tickets[ticket] = False
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # ------------------------------------------------------------ inspection

    def open_connections(self) -> list[Connection]:
        with self._lock:
            return [c for c in self.connections if c.open]

    def connection_count(self) -> int:
        return len(self.open_connections())

    def wait_for_connections(self, count: int, timeout: float = 20.0, total: int | None = None) -> list[Connection]:
        """Until `count` connections are open (and, with `total`, at least that many were ever accepted)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                live = [c for c in self.connections if c.open]
                if len(live) >= count and (total is None or len(self.connections) >= total):
                    return live
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out waiting for {count} open Socket Mode connection(s)"
                        + (f" ({total} in all)" if total else "")
                        + f"; {len(live)} open, {len(self.connections)} in all"
                    )
                self._lock.wait(left)

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        deadline = time.monotonic() + timeout
        with self._lock:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for the ack of envelope {envelope_id}")
                self._lock.wait(left)
            return self.acks[envelope_id]

    # ------------------------------------------------------------ driving the client

    def push(
        self,
        kind: str,
        payload: Any,
        connection: Connection | None = None,
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        accepts_response_payload: bool | None = None,
    ) -> str:
        """Deliver one envelope (to the newest open connection unless told), return its envelope_id."""
        target = connection or self._newest()
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            # Slack lets slash commands and interactions answer in the ack; events never.
            "accepts_response_payload": kind != "events_api" if accepts_response_payload is None else accepts_response_payload,
        }
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        target.send_json(envelope)
        return envelope_id

    def push_each(self, kind: str, payload: Any, **options: Any) -> list[str]:
        """The same payload to every open connection at once (each its own envelope)."""
        return [self.push(kind, payload, c, **options) for c in self.open_connections()]

    def send_raw(self, text: str, connection: Connection | None = None) -> None:
        (connection or self._newest()).send_text(text)

    def send_disconnect(self, connection: Connection | None = None, reason: str = "refresh_requested") -> None:
        """Slack's warning that this connection is about to go; the client should open another."""
        (connection or self._newest()).send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-socket-mode"}}
        )

    def silence(self, connection: Connection | None = None) -> Connection:
        """The path to this client dies without a reset or a close (a home router forgetting the
        connection): the socket stays open, but no pong and no envelope comes back any more."""
        target = connection or self._newest()
        target.silent = True
        return target

    def drop(self, connection: Connection | None = None, reset: bool = True) -> None:
        """Cut the connection without a close frame: a reset (a dead network path, a restarted
        edge) or, with `reset=False`, a bare TCP close."""
        self._abort(connection or self._newest(), reset)

    def _newest(self) -> Connection:
        live = [c for c in self.open_connections() if not c.silent]
        if not live:
            raise AssertionError("no open Socket Mode connection")
        return live[-1]

    # ------------------------------------------------------------ server side

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while self._listener is not None:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._serve, f"fake-socket-{len(self._threads)}", sock)

    def _serve(self, sock: socket.socket) -> None:
        try:
            connection = self._handshake(sock)
            if connection is None:
                return
            self._read_loop(connection)
        except OSError:
            pass  # the client hung up mid-handshake, or stop() closed the socket meanwhile
        except Exception:  # a bug in the fake must fail the test, not pass for a network problem
            self.server_errors.append(traceback.format_exc())

    def _handshake(self, sock: socket.socket) -> Connection | None:
        sock.settimeout(10)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                sock.close()
                return None
            request += chunk
        head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        _, target, _ = (head[0].split(" ") + ["", "", ""])[:3]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        ticket = (parse_qs(urlsplit(target).query).get("ticket") or [""])[0]
        key = headers.get("sec-websocket-key", "")
        with self._lock:
            valid = self._tickets.get(ticket) is False
            if valid:
                self._tickets[ticket] = True
        if not valid or headers.get("upgrade", "").lower() != "websocket" or not key:
            # A used, unknown or missing ticket: Slack refuses the upgrade.
            self.refused_tickets.append(ticket)
            sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            sock.close()
            return None
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        sock.settimeout(None)
        with self._lock:
            connection = Connection(len(self.connections) + 1, sock, ticket)
            self.connections.append(connection)
            live = sum(1 for c in self.connections if c.open)
            self._lock.notify_all()
        try:
            self._hello(connection, live)
        except OSError:  # the client hung up at once, or stop() closed the socket meanwhile
            self._closed(connection)
            return None
        return connection

    def _hello(self, connection: Connection, live: int) -> None:
        connection.send_json(
            {
                "type": "hello",
                "num_connections": live,
                "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )

    def _read_loop(self, connection: Connection) -> None:
        fragments: list[bytes] = []
        try:
            while True:
                fin, opcode, data = connection.read_frame()
                if connection.silent:
                    continue  # nothing reaches the client any more
                if opcode == OP_PING:
                    connection.send_frame(OP_PONG, data)
                elif opcode == OP_PONG:
                    continue
                elif opcode == OP_CLOSE:
                    try:
                        connection.send_frame(OP_CLOSE, data[:2])
                    except OSError:
                        pass
                    break
                elif opcode in (OP_TEXT, OP_CONT):
                    fragments.append(data)
                    if fin:
                        self._on_text(connection, b"".join(fragments).decode("utf-8"))
                        fragments = []
        except ProtocolViolation:
            try:
                connection.send_frame(OP_CLOSE, struct.pack("!H", 1002))
            except OSError:
                pass
        except (ConnectionGone, OSError):
            pass
        finally:
            self._closed(connection)

    def _on_text(self, connection: Connection, text: str) -> None:
        try:
            message: Any = json.loads(text)
        except ValueError:
            message = text
        with self._lock:
            connection.received.append(message)
            if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
                # Slack keeps the first ack of an envelope; a second one changes nothing.
                self.acks.setdefault(
                    message["envelope_id"], Ack(message["envelope_id"], message.get("payload"), connection.number)
                )
                self._lock.notify_all()

    def _abort(self, connection: Connection, reset: bool = True) -> None:
        try:
            if reset:  # SO_LINGER 0: closing sends a reset instead of an orderly FIN
                connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # Wakes our own reader blocked in recv without telling the peer anything yet.
            connection.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        self._closed(connection)

    def _closed(self, connection: Connection) -> None:
        with self._lock:
            if connection.open:
                connection.open = False
                try:
                    connection.sock.close()
                except OSError:
                    pass
            self._lock.notify_all()
