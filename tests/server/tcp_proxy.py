"""A TEST TOOL, not part of davit: a tiny TCP proxy standing in for the load balancer in front of
several `davit server` replicas (issue 18; tests/server/test_replicas.py).

It listens on one loopback port and forwards each connection it accepts to the first backend of
its list that accepts a connection (a backend that refuses, because its server died, is skipped).
It looks at no byte: when either side of a pair closes or fails, it closes the other, so a
launcher whose server was killed sees its connection end, connects again and lands on the next
live server, as it would behind a real load balancer with health checks.

    proxy = TcpProxy([("127.0.0.1", 8401), ("127.0.0.1", 8402)])
    ... clients use 127.0.0.1:proxy.port ...
    proxy.stop()

or, by hand: python3 tcp_proxy.py LISTEN_PORT HOST:PORT [HOST:PORT ...]

One thread runs every connection (selectors); stop() ends it and closes every socket."""

import selectors
import socket
import sys
import threading

CONNECT_TIMEOUT_S = 2.0
CHUNK = 65536


class _Pair:
    """A client connection and the backend connection it was given, with what each side has
    sent that the other has not yet taken."""

    def __init__(self, client, backend, index):
        self.client = client
        self.backend = backend
        self.index = index  # which backend of the list
        self.out = {client: bytearray(), backend: bytearray()}  # bytes waiting to be sent to it
        self.reading = {client: True, backend: True}
        self.watched = {client: True, backend: True}  # registered with the selector
        self.closing = False  # a side ended: close once what is waiting has been sent

    def peer(self, sock):
        return self.backend if sock is self.client else self.client


class TcpProxy:
    def __init__(self, backends, host="127.0.0.1", port=0):
        self.backends = list(backends)
        self.accepted = [0] * len(self.backends)  # connections handed to each backend
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._pairs = set()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    # ---- the caller's side ----

    def stop(self):
        """Ends the thread and closes every connection; call once."""
        self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join(10)
        for pair in list(self._pairs):
            self._close(pair)
        self._sel.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def live(self):
        """How many client connections are open now (through any backend)."""
        with self._lock:
            return len(self._pairs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- the loop ----

    def _connect(self):
        """A connection to the first backend that takes one, or (None, -1)."""
        for i, addr in enumerate(self.backends):
            try:
                s = socket.create_connection(addr, timeout=CONNECT_TIMEOUT_S)
            except OSError:
                continue  # dead (refused) or unreachable: the next one
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s, i
        return None, -1

    def _accept(self):
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        backend, i = self._connect()
        if backend is None:
            client.close()  # no server is up: the client sees its connection end
            return
        pair = _Pair(client, backend, i)
        with self._lock:
            self._pairs.add(pair)
            self.accepted[i] += 1
        self._sel.register(client, selectors.EVENT_READ, pair)
        self._sel.register(backend, selectors.EVENT_READ, pair)

    def _close(self, pair):
        with self._lock:
            if pair not in self._pairs:
                return
            self._pairs.discard(pair)
        for s in (pair.client, pair.backend):
            if pair.watched[s]:
                self._sel.unregister(s)
                pair.watched[s] = False
            s.close()

    def _update(self, pair):
        """Watches each socket for what it can do next. Once a side ended (closing), nothing more
        is read from either: what is waiting is sent, then the pair closes. A client whose
        server died thus gets what the server had sent, then its connection ends; a half close
        would leave it waiting on a server that is gone."""
        if pair.closing and not any(pair.out.values()):
            self._close(pair)
            return
        for sock in (pair.client, pair.backend):
            ev = selectors.EVENT_READ if pair.reading[sock] and not pair.closing else 0
            if pair.out[sock]:
                ev |= selectors.EVENT_WRITE
            if ev and pair.watched[sock]:
                self._sel.modify(sock, ev, pair)
            elif ev:
                self._sel.register(sock, ev, pair)
                pair.watched[sock] = True
            elif pair.watched[sock]:
                self._sel.unregister(sock)
                pair.watched[sock] = False

    def _readable(self, pair, sock):
        try:
            data = sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset: an end, for the other side
        if data:
            pair.out[pair.peer(sock)] += data
        else:
            pair.reading[sock] = False
            pair.closing = True
        self._update(pair)

    def _writable(self, pair, sock):
        buf = pair.out[sock]
        try:
            n = sock.send(buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            if sock is pair.client:
                self._close(pair)  # nobody left to answer
                return
            # The server stopped reading (it answered early, say 413, or died): what the
            # client sends is dropped, what the server sent is still delivered.
            buf.clear()
            pair.reading[pair.client] = False
            self._update(pair)
            return
        del buf[:n]
        self._update(pair)

    def _loop(self):
        while not self._stopping:
            for key, ev in self._sel.select(timeout=1.0):
                if key.data is None:
                    self._accept()
                    continue
                if key.data == "wake":
                    continue
                pair = key.data
                if pair not in self._pairs:
                    continue  # closed earlier in this round
                if ev & selectors.EVENT_WRITE:
                    self._writable(pair, key.fileobj)
                if pair in self._pairs and ev & selectors.EVENT_READ:
                    self._readable(pair, key.fileobj)


def main(argv):
    if len(argv) < 3:
        print("usage: tcp_proxy.py LISTEN_PORT HOST:PORT [HOST:PORT ...]  (a test tool)",
              file=sys.stderr)
        return 2
    backends = []
    for a in argv[2:]:
        host, _, port = a.rpartition(":")
        backends.append((host or "127.0.0.1", int(port)))
    proxy = TcpProxy(backends, port=int(argv[1]))
    print("tcp_proxy (a test tool) on 127.0.0.1:%d -> %s" % (proxy.port, " ".join(argv[2:])),
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
