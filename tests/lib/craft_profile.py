#!/usr/bin/env python3
"""Writes a small gzipped pprof profile whose top table is known, for
tests/e2e/report.sh (no protobuf library: the few fields it needs, encoded
by hand after profile.proto).

craft_profile.py FILE

Sample types objects/count and space/bytes (default space). Functions
main, "a<b>&c" (shown "a&c": template arguments go), _ZN3FoolsEi
("Foo::operator<<", recursive) and _Znwm ("operator new"), inlined into
Foo::operator<< at one location: names to escape, and C++ operators whose
symbols are no template. Samples (leaf first):
  a<b>&c main                              1 object, 100 bytes
  operator<< operator<< operator<< main    2 objects, 50 bytes (recursion:
                                           cum once)
  [operator new, operator<<] main          3 objects, 30 bytes (inlined:
                                           the leaf's flat)
so in space: a&c flat 100 cum 100, Foo::operator<< 50 / 80, operator new
30 / 30, main 0 / 180; total 180, as go tool pprof -top shows it.
"""
import gzip
import sys

from proto_encode import field, packed


strings = ["", "objects", "count", "space", "bytes", "main", "a<b>&c", "_ZN3FoolsEi",
           "_Znwm", "prog.c"]
S = {s: i for i, s in enumerate(strings)}


def value_type(t, u):
    return field(1, S[t]) + field(2, S[u])


def function(fid, name):
    return field(1, fid) + field(2, S[name]) + field(3, S[name]) + field(4, S["prog.c"])


def location(lid, address, function_ids):
    body = field(1, lid) + field(3, address)
    for fid in function_ids:  # innermost (inlined) first
        body += field(4, field(1, fid) + field(2, 10 * fid))
    return body


def sample(locations, values):
    return packed(1, locations) + packed(2, values)


prof = b""
prof += field(1, value_type("objects", "count")) + field(1, value_type("space", "bytes"))
prof += field(2, sample([2, 1], [1, 100]))
prof += field(2, sample([3, 3, 3, 1], [2, 50]))
prof += field(2, sample([4, 1], [3, 30]))
prof += field(4, location(1, 0x1000, [1]))
prof += field(4, location(2, 0x2000, [2]))
prof += field(4, location(3, 0x3000, [3]))
prof += field(4, location(4, 0x4000, [4, 3]))
for fid, name in [(1, "main"), (2, "a<b>&c"), (3, "_ZN3FoolsEi"), (4, "_Znwm")]:
    prof += field(5, function(fid, name))
for s in strings:
    prof += field(6, s.encode())
prof += field(14, S["space"])
with open(sys.argv[1], "wb") as f:
    f.write(gzip.compress(prof))
