"""A collector that has stopped reading, as one stopped by SIGSTOP would be:
listens on a Unix socket (argv[1], its directory made private), accepts
every connection and never reads from any of them. At SIGTERM it prints
"accepted N unread B" (connections, and bytes left unread in them all) and
ends; its connections close with it."""
import fcntl
import os
import signal
import socket
import struct
import sys
import termios

path = sys.argv[1]
os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(128)
kept = []


def unread(conn):
    return struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def report(*_):
    print("accepted %d unread %d" % (len(kept), sum(unread(c) for c in kept)), flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, report)
while True:
    conn, _ = server.accept()
    kept.append(conn)
