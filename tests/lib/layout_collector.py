"""A collector that only asks for thread dumps, with the state-threads
layouts a test chooses (wire.h WIRE_CMD_TASKS, struct wire_st_layout):
listens on a Unix socket (argv[1], its directory made private), prints
"ready", takes one connection and reads all it sends. Each line on stdin
is a dump to ask for:
  plain   the command without a layout (8 bytes)
  bad     with a layout whose state member lies past its thread record's end
For each it prints "dump SEQ threads T coroutines C" once the dump's
TASKS_END came. Ends at the end of stdin."""
import os
import queue
import socket
import struct
import sys
import threading

WIRE_TASK, WIRE_TASKS_END, WIRE_CMD_TASKS = 15, 16, 0x102
TASK_KIND_OFFSET, COROUTINE = 40, 2


def layout_bad():
    """thread_size 64, the state at 62 (4 bytes: past the end); the rest
    inside their records."""
    words = [64, 62, 8, 16, 24, 32, 0xFFFF, 48, 56, 0, 0,  # thread (context at 0)
             48, 32, 40,                                  # stack
             96, 0, 16, 32, 48, 0xFFFF, 64,               # vp
             40, 0, 16, 24,                               # pollq
             8]                                           # context words
    return struct.pack("<IIQQQ26H8B4x", 0, 0, 0, 8, 16, *words, *range(8))


def reader(conn, done):
    """Every record; the threads and coroutines of each dump, per seq."""
    buf = b""
    counts = {}
    while True:
        data = conn.recv(1 << 16)
        if not data:
            done.put(None)
            return
        buf += data
        while len(buf) >= 8:
            rtype, length = struct.unpack_from("<II", buf)
            if len(buf) < 8 + length:
                break
            payload, buf = buf[8:8 + length], buf[8 + length:]
            if rtype == WIRE_TASK:
                seq = struct.unpack_from("<Q", payload)[0]
                kind = "coroutines" if payload[TASK_KIND_OFFSET] == COROUTINE else "threads"
                counts.setdefault(seq, {"threads": 0, "coroutines": 0})[kind] += 1
            elif rtype == WIRE_TASKS_END:
                seq = struct.unpack_from("<Q", payload)[0]
                done.put((seq, counts.pop(seq, {"threads": 0, "coroutines": 0})))


def main():
    path = sys.argv[1]
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    print("ready", flush=True)
    conn, _ = server.accept()
    done = queue.Queue()
    threading.Thread(target=reader, args=(conn, done), daemon=True).start()
    seq = 0
    for line in sys.stdin:
        what = line.strip()
        seq += 1
        payload = struct.pack("<Q", seq) + (layout_bad() if what == "bad" else b"")
        conn.sendall(struct.pack("<II", WIRE_CMD_TASKS, len(payload)) + payload)
        answer = done.get(timeout=30)
        if answer is None:
            print("connection closed", flush=True)
            return
        got, counts = answer
        print("dump %d threads %d coroutines %d" % (got, counts["threads"], counts["coroutines"]),
              flush=True)


main()
