#!/usr/bin/env python3
"""A bounded, deterministic memcached load for the end-to-end tests.

    memcached_load.py PORT KEYS CONNECTIONS

Over each of CONNECTIONS connections in turn: KEYS `set`s, then KEYS `get`s
of the same keys, one request at a time (each waits for its reply, so the
server reads one request per read and answers each with one send), then
`quit`. Every reply is checked. Last, on a fresh connection, `stats`; the
connection is then closed without `quit`, so the server's bytes_read covers
every byte it will have read. Prints key=value lines:
    requests       set + get requests sent (stats excluded)
    connections    connections opened, the stats one included
    stats_reply    bytes of the stats reply (not in the server's bytes_written)
    stat_NAME      the server's own figures, e.g. stat_cmd_get, stat_bytes_read
"""

import socket
import sys


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("memcached_load: connection closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def expect(self, want, what):
        got = self.line()
        if got != want:
            raise SystemExit("memcached_load: %s: expected %r, got %r" % (what, want, got))


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    port, keys, conns = (int(a) for a in argv)
    for c in range(conns):
        conn = Conn(port)
        values = {}
        for i in range(keys):
            key = b"key:%d:%d" % (c, i)
            value = b"v%d" % i * (1 + i % 7)
            values[key] = value
            conn.sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
            conn.expect(b"STORED", "set " + key.decode())
        for key, value in values.items():
            conn.sock.sendall(b"get %s\r\n" % key)
            conn.expect(b"VALUE %s 0 %d" % (key, len(value)), "get " + key.decode())
            conn.expect(value, "value of " + key.decode())
            conn.expect(b"END", "end of get " + key.decode())
        conn.sock.sendall(b"quit\r\n")
        if conn.sock.recv(1) != b"":
            raise SystemExit("memcached_load: the server did not close after quit")
        conn.sock.close()

    conn = Conn(port)
    conn.sock.sendall(b"stats\r\n")
    stats, reply = {}, 0
    while True:
        line = conn.line()
        reply += len(line) + 2
        if line == b"END":
            break
        parts = line.decode().split()
        if len(parts) != 3 or parts[0] != "STAT":
            raise SystemExit("memcached_load: unexpected stats line %r" % line)
        stats[parts[1]] = parts[2]
    conn.sock.close()
    print("requests=%d" % (2 * keys * conns))
    print("connections=%d" % (conns + 1))
    print("stats_reply=%d" % reply)
    for name in sorted(stats):
        print("stat_%s=%s" % (name, stats[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
