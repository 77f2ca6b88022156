#!/usr/bin/env python3
"""Counts I/O calls in an `strace -f -yy -qq -e signal=none -o LOG` log, per call
and kind of descriptor: the independent count the memcached test compares
ppx's profile with.

    strace_io.py LOG [--exclude-pid PID]...

prints, tab-separated, one line per call and descriptor kind:
    call kind started finished bytes errors
kind is what -yy shows of the first argument's descriptor: TCP, TCPv6, UDP,
UNIX-STREAM, pipe, eventfd, eventpoll, signalfd, file (a path), other.
started counts every call (a call still blocked when its process ended is
started, never finished); bytes adds the non-negative results of the
finished ones, errors their -1 results. Lines of the excluded thread ids
(e.g. the collector's, traced along with its child) are skipped.
"""

import re
import sys

# "1234 read(16<TCP:[127.0.0.1:1->127.0.0.1:2]>, ..." or "<... read resumed>..."
START_RE = re.compile(r"^(\d+)\s+(\w+)\((.*)$")
RESUMED_RE = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$")
FD_RE = re.compile(r"^-?\d+<([^>]*)>")
RESULT_RE = re.compile(r"\)\s+= (-?\d+)(?:<.*>)?(?:\s.*)?$")


def kind_of(args):
    m = FD_RE.match(args)
    if not m:
        return "other"
    desc = m.group(1)
    if desc.startswith("/"):
        return "file"
    if desc.startswith("anon_inode:"):
        return desc[len("anon_inode:"):].strip("[]") or "other"
    return re.split(r"[:\[]", desc, 1)[0] or "other"


def result_of(text):
    m = RESULT_RE.search(text)
    return int(m.group(1)) if m else None


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, exclude = argv[0], set()
    rest = argv[1:]
    while rest:
        if rest[0] == "--exclude-pid" and len(rest) > 1:
            exclude.add(rest[1])
            rest = rest[2:]
        else:
            print("strace_io.py: unknown argument %s" % rest[0], file=sys.stderr)
            return 2
    rows = {}
    pending = {}  # tid -> row key of its unfinished call

    def finish(key, result):
        row = rows[key]
        if result is None:
            return
        row[1] += 1
        if result >= 0:
            row[2] += result
        else:
            row[3] += 1

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = RESUMED_RE.match(line)
            if m:
                tid = m.group(1)
                if tid in exclude or tid not in pending:
                    continue
                finish(pending.pop(tid), result_of(m.group(3)))
                continue
            m = START_RE.match(line)
            if not m or m.group(1) in exclude:
                continue
            tid, call, args = m.groups()
            key = (call, kind_of(args))
            rows.setdefault(key, [0, 0, 0, 0])[0] += 1
            if args.endswith("<unfinished ...>"):
                pending[tid] = key
            else:
                finish(key, result_of(args))
    for (call, kind), (started, finished, nbytes, errors) in sorted(rows.items()):
        print("%s\t%s\t%d\t%d\t%d\t%d" % (call, kind, started, finished, nbytes, errors))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
