#!/usr/bin/env python3
"""The call sites of a syscalls.pb.gz, read through `go tool pprof` (pprof_raw.py).

Each sample's leaf is a synthetic frame naming the call ("sendto"); the frame
under it is the function that made the call. This prints, per site, what the
end-to-end tests compare with known figures:

    io_sites.py FILE              call caller labels calls time bytes messages errors eagain mapping
    io_sites.py FILE --errnos     call caller errno errors eagain   (the errno-labelled samples)
    io_sites.py FILE --stacks     call stack calls                  (stack: caller;...;root)
    io_sites.py FILE --peek CALL  caller calls                      (parsed from go tool pprof -peek)

Tab-separated. labels is the sorted fd/family/socktype labels ("fd=socket,
family=inet,socktype=dgram", "-" for none); errno-labelled samples count in
their site's row too. caller is "-" for a sample with no frame under the
leaf, mapping the file of the caller's mapping ("-" if none). With
--by-mapping, samples are grouped by the caller's mapping instead of its
function (for stripped programs whose callers have no names).
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pprof_raw  # noqa: E402

DESCRIPTOR_KEYS = ("fd", "family", "socktype")
TYPES = ("calls", "time", "bytes", "messages", "errors", "eagain")


def caller_of(p, s):
    names = p.stack_functions(s)
    return names[1] if len(names) > 1 else "-"


def caller_mapping(p, s):
    if len(s.locations) < 2:
        return "-"
    loc = p.locations.get(s.locations[1])
    if loc is None or loc.mapping not in p.mappings:
        return "-"
    return p.mappings[loc.mapping].file or "-"


def descriptor(s):
    parts = ["%s=%s" % (k, v) for k in DESCRIPTOR_KEYS for v in s.labels.get(k, [])]
    return ",".join(parts) if parts else "-"


def sites(p, by_mapping):
    idx = [p.type_index(t) for t in TYPES]
    rows = {}
    for s in p.samples:
        mapping = caller_mapping(p, s)
        key = (p.leaf_function(s), mapping if by_mapping else caller_of(p, s), descriptor(s))
        row = rows.setdefault(key, [[0] * len(TYPES), set()])
        for j, i in enumerate(idx):
            row[0][j] += s.values[i]
        row[1].add(mapping)
    for (call, caller, desc), (values, mappings) in sorted(rows.items()):
        print("\t".join([call, caller, desc] + [str(v) for v in values]
                        + [",".join(sorted(mappings))]))


def errnos(p):
    ie, ia = p.type_index("errors"), p.type_index("eagain")
    rows = {}
    for s in p.samples:
        for e in s.labels.get("errno", []):
            key = (p.leaf_function(s), caller_of(p, s), e)
            row = rows.setdefault(key, [0, 0])
            row[0] += s.values[ie]
            row[1] += s.values[ia]
    for key, (errors, eagain) in sorted(rows.items()):
        print("\t".join(list(key) + [str(errors), str(eagain)]))


def stacks(p):
    ic = p.type_index("calls")
    rows = {}
    for s in p.samples:
        names = p.stack_functions(s)
        key = (names[0] if names else "-", ";".join(names[1:]) or "-")
        rows[key] = rows.get(key, 0) + s.values[ic]
    for (call, stack), calls in sorted(rows.items()):
        print("%s\t%s\t%d" % (call, stack, calls))


# A caller line of -peek: "   2000   100% |   udp_sendto_batch"
PEEK_CALLER_RE = re.compile(r"^\s+(\d+)\s+[\d.]+%\s+\|\s+(.+?)\s*$")
# The node line: flat flat% sum% cum cum% | name
PEEK_NODE_RE = re.compile(r"^\s*\d+\s+[\d.]+%\s+[\d.]+%\s+\d+\s+[\d.]+%\s+\|\s+(.+?)\s*$")


def peek(path, call):
    """Callers of call as `go tool pprof -peek` prints them (above the node line)."""
    out = pprof_raw.run_pprof(["-peek", "^%s$" % re.escape(call), path])
    pending = []
    for line in out.splitlines():
        if line.startswith("---"):
            pending = []
            continue
        m = PEEK_NODE_RE.match(line)
        if m:
            if m.group(1) == call:
                for count, name in pending:
                    print("%s\t%s" % (name, count))
            pending = []
            continue
        m = PEEK_CALLER_RE.match(line)
        if m:
            pending.append((m.group(1), m.group(2)))


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, opts = argv[0], argv[1:]
    try:
        if opts[:1] == ["--peek"] and len(opts) == 2:
            peek(path, opts[1])
            return 0
        p = pprof_raw.load(path)
        if opts == ["--errnos"]:
            errnos(p)
        elif opts == ["--stacks"]:
            stacks(p)
        elif opts in ([], ["--by-mapping"]):
            sites(p, bool(opts))
        else:
            print("io_sites.py: unknown options %s" % " ".join(opts), file=sys.stderr)
            return 2
    except pprof_raw.PprofError as e:
        print("io_sites: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
