#!/usr/bin/env python3
"""Read a pprof profile through the real client, `go tool pprof -raw`.

The end-to-end tests never decode profile.proto themselves: what
`go tool pprof` prints is what a user sees, so that is what they check.

Library use:
    p = pprof_raw.load("heap.pb.gz")
    p.flat("inuse_space")      -> {leaf function: total}
    p.cum("alloc_objects")     -> {function: total over samples whose stack has it}
    p.label_values("pid")      -> sorted list of the values of a label

Command line (for the shell tests), one `go tool pprof` run per call:
    pprof_raw.py FILE --type inuse_space --flat FUNC   number (0 if absent)
    pprof_raw.py FILE --type inuse_space --cum FUNC    number
    pprof_raw.py FILE --flat-table                     FUNC<TAB>value per sample type
    pprof_raw.py FILE --cum-table
    pprof_raw.py FILE --leaves [--type T] [--top N]    value, function, mapping file
    pprof_raw.py FILE --labels                         KEY<TAB>VALUE per sample
    pprof_raw.py FILE --sum-by KEY [--type T]          VALUE<TAB>total per value of label KEY
                                                       ("" for samples without it)
    pprof_raw.py FILE --total [--type T]               the sum over all (selected) samples
    pprof_raw.py FILE --sample-table K1,K2 [--type T]  per sample: value, leaf function,
                                                       then labels K1, K2 ("-" if absent)
    pprof_raw.py FILE --dump                           every sample on one line, for tests
                                                       that ask many questions of one
                                                       profile (see dump_lines)
    pprof_raw.py FILE --unlabeled KEY                  samples without label KEY
    pprof_raw.py FILE --header                         sample types, period, mappings
    pprof_raw.py FILE --default-type                   `Type:` of `go tool pprof -top`
    pprof_raw.py --selftest                            write a profile, read it back
    pprof_raw.py FILE --base BASEFILE ...               FILE minus BASEFILE, as -base does
Filters: --label KEY=VALUE keeps only samples carrying that label value,
--leaf FUNC only samples whose leaf function is FUNC (for --leaves, --labels,
--sum-by, --total, --sample-table). --header also prints the profile's time and
duration as `go tool pprof` shows them.
"""

import gzip
import os
import re
import subprocess
import sys
import tempfile

SAMPLE_RE = re.compile(r"^\s*((?:-?\d+\s+)*-?\d+):\s?((?:\d+\s*)*)$")
LABEL_RE = re.compile(r"(\S+?):\[([^\]]*)\]")
NUM_UNIT_RE = re.compile(r"^-?\d+ [A-Za-z]\S*$")
LOCATION_RE = re.compile(r"^\s*(\d+): (0x[0-9a-fA-F]+)(?: M=(\d+))?(?: \[F\])?(?: (.*))?$")
# "name file:line s=start[(system name)]"; names ("operator new") and paths may hold
# spaces: take the shortest name followed by an absolute path, a word, or nothing.
LINE_RE = re.compile(r"^(.*?) (/.*|[^ /]\S*|):(-?\d+) s=(-?\d+)(?:\((.*)\))?$")
MAPPING_RE = re.compile(r"^\s*(\d+): (0x[0-9a-fA-F]+)/(0x[0-9a-fA-F]+)/(0x[0-9a-fA-F]+) ?(.*)$")


class PprofError(Exception):
    pass


def _go_env(scratch):
    """An environment in which `go tool` works offline for any user (CI runs as root
    with no HOME, no network): never download a toolchain, never fetch symbols."""
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["GOPROXY"] = "off"
    env["GOFLAGS"] = ""
    env.pop("PPROF_TOOLS", None)
    home = env.get("HOME", "")
    if not home or not os.access(home, os.W_OK):
        env["HOME"] = home = scratch
    env.setdefault("GOCACHE", os.path.join(home, ".cache", "go-build"))
    return env


def run_pprof(args):
    cmd = ["go", "tool", "pprof"] + args
    with tempfile.TemporaryDirectory(prefix="ppx-gohome-") as scratch:
        try:
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, env=_go_env(scratch), timeout=120)
        except FileNotFoundError:
            raise PprofError("go not found: apt-get install golang-go")
    out = res.stdout.decode("utf-8", "replace")
    if res.returncode != 0:
        raise PprofError("%s failed (status %d): %s" % (" ".join(cmd), res.returncode,
                                                         res.stderr.decode("utf-8", "replace").strip()))
    return out


class Sample:
    def __init__(self, values, locations):
        self.values = values          # list of int, one per sample type
        self.locations = locations    # location ids, leaf first
        self.labels = {}              # key -> list of str


class Location:
    def __init__(self, lid, address, mapping):
        self.id = lid
        self.address = address
        self.mapping = mapping        # mapping id or None
        self.functions = []           # innermost (inlined callee) first


class Mapping:
    def __init__(self, mid, start, limit, offset, file, build_id, flags):
        self.id = mid
        self.start, self.limit, self.offset = start, limit, offset
        self.file = file
        self.build_id = build_id
        self.flags = flags            # e.g. "[FN][FL][LN]"


class Profile:
    def __init__(self):
        self.period_type = None
        self.period = None
        self.time = None              # "Time:" and "Duration:" as the client prints them
        self.duration = None
        self.sample_types = []        # names, e.g. "alloc_space"
        self.units = []
        self.default_type = None      # the one marked [dflt], if the client prints it
        self.samples = []
        self.locations = {}
        self.mappings = {}

    def type_index(self, sample_type):
        if sample_type not in self.sample_types:
            raise PprofError("no sample type %r (have %s)" % (sample_type, ", ".join(self.sample_types)))
        return self.sample_types.index(sample_type)

    def stack_functions(self, sample):
        """Function names of a sample, leaf first (inlined callees before callers)."""
        names = []
        for lid in sample.locations:
            loc = self.locations.get(lid)
            if loc is None:
                continue
            names.extend(loc.functions if loc.functions else ["0x%x" % loc.address])
        return names

    def leaf_function(self, sample):
        names = self.stack_functions(sample)
        return names[0] if names else "<no location>"

    def leaf_mapping_file(self, sample):
        if not sample.locations:
            return ""
        loc = self.locations.get(sample.locations[0])
        if loc is None or loc.mapping not in self.mappings:
            return ""
        return self.mappings[loc.mapping].file

    def select(self, label=None, leaf=None):
        chosen = self.samples
        if label is not None:
            key, _, value = label.partition("=")
            chosen = [s for s in chosen if value in s.labels.get(key, [])]
        if leaf is not None:
            chosen = [s for s in chosen if self.leaf_function(s) == leaf]
        return chosen

    def flat(self, sample_type, label=None):
        i = self.type_index(sample_type)
        totals = {}
        for s in self.select(label):
            leaf = self.leaf_function(s)
            totals[leaf] = totals.get(leaf, 0) + s.values[i]
        return totals

    def cum(self, sample_type, label=None):
        i = self.type_index(sample_type)
        totals = {}
        for s in self.select(label):
            for name in set(self.stack_functions(s)):
                totals[name] = totals.get(name, 0) + s.values[i]
        return totals

    def sum_by(self, sample_type, key, label=None, leaf=None):
        """{value of label key: total}; samples without the label under ""."""
        i = self.type_index(sample_type)
        totals = {}
        for s in self.select(label, leaf):
            for v in s.labels.get(key, [""]):
                totals[v] = totals.get(v, 0) + s.values[i]
        return totals

    def label_values(self, key):
        values = set()
        for s in self.samples:
            values.update(s.labels.get(key, []))
        return sorted(values)


def dump_lines(p):
    """A header `#types<TAB>T1 T2 ...`, then per sample: its values (space-
    separated, in that order), its labels (k=v;k=v, sorted), its functions
    leaf first (;-separated, inlined callees first) and the mapping file of
    its leaf, tab-separated. Awk can then answer flat, cum and per-label
    questions without another `go tool pprof` run."""
    yield "#types\t" + " ".join(p.sample_types)
    for s in p.samples:
        labels = ";".join("%s=%s" % (k, v) for k in sorted(s.labels) for v in s.labels[k])
        yield "\t".join([" ".join(str(v) for v in s.values), labels,
                         ";".join(p.stack_functions(s)), p.leaf_mapping_file(s)])


def _parse_labels(text, sample):
    for key, values in LABEL_RE.findall(text):
        # numeric labels with units print as "[96 bytes]"; keep the number.
        # String values are kept whole ("main thread"): ppx writes one value
        # per key, so a space is part of the value, not a separator.
        for v in values.split(","):
            v = v.strip()
            if v:
                if NUM_UNIT_RE.match(v):
                    v = v.split(" ")[0]
                sample.labels.setdefault(key, []).append(v)


def parse(text):
    p = Profile()
    section = "header"
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line:
            continue
        if section == "header":
            if line.startswith("PeriodType:"):
                p.period_type = line.split(":", 1)[1].strip()
            elif line.startswith("Period:"):
                p.period = int(line.split(":", 1)[1])
            elif line.startswith("Time:"):
                p.time = line.split(":", 1)[1].strip()
            elif line.startswith("Duration:"):
                p.duration = line.split(":", 1)[1].strip()
            elif line == "Samples:":
                section = "types"
            continue
        if section == "types":
            for field in line.split():
                name, _, unit = field.partition("/")
                if unit.endswith("[dflt]"):
                    unit = unit[:-len("[dflt]")]
                    p.default_type = name
                p.sample_types.append(name)
                p.units.append(unit)
            section = "samples"
            continue
        if line == "Locations":
            section = "locations"
            continue
        if line == "Mappings":
            section = "mappings"
            continue
        if section == "samples":
            m = SAMPLE_RE.match(line)
            if m:
                values = [int(v) for v in m.group(1).split()]
                if len(values) != len(p.sample_types):
                    raise PprofError("sample with %d values, %d types: %r"
                                     % (len(values), len(p.sample_types), line))
                p.samples.append(Sample(values, [int(x) for x in m.group(2).split()]))
            elif p.samples and LABEL_RE.search(line):
                _parse_labels(line, p.samples[-1])
            else:
                raise PprofError("unexpected line in samples: %r" % line)
        elif section == "locations":
            m = LOCATION_RE.match(line)
            if m:
                loc = Location(int(m.group(1)), int(m.group(2), 16),
                               int(m.group(3)) if m.group(3) else None)
                p.locations[loc.id] = loc
                rest = (m.group(4) or "").strip()
            elif line.startswith(" ") and p.locations:
                loc = p.locations[max(p.locations)]   # an inlined frame continues the last one
                rest = line.strip()
            else:
                raise PprofError("unexpected line in locations: %r" % line)
            if rest and rest != "??":
                lm = LINE_RE.match(rest)
                loc.functions.append(lm.group(1) if lm else rest)
        elif section == "mappings":
            m = MAPPING_RE.match(line)
            if not m:
                raise PprofError("unexpected line in mappings: %r" % line)
            parts = m.group(5).rsplit(" ", 2)
            while len(parts) < 3:
                parts.append("")
            p.mappings[int(m.group(1))] = Mapping(int(m.group(1)), int(m.group(2), 16),
                                                  int(m.group(3), 16), int(m.group(4), 16),
                                                  parts[0], parts[1], parts[2])
    if section == "header" or not p.sample_types:
        raise PprofError("no Samples section in go tool pprof -raw output")
    return p


def load(path, base=None):
    """The profile at path; with base, path minus base (`go tool pprof -base`)."""
    for f in [path] + ([base] if base else []):
        if not os.path.isfile(f):
            raise PprofError("%s: no such file" % f)
    return parse(run_pprof(["-raw"] + (["-base", base] if base else []) + [path]))


def default_type(path):
    """The sample type `go tool pprof` shows by default (`Type:` of -top)."""
    for line in run_pprof(["-top", path]).splitlines():
        if line.startswith("Type:"):
            return line.split(":", 1)[1].strip()
    raise PprofError("%s: no Type: line in go tool pprof -top output" % path)


# --- self-check: a profile.proto written here, read back by the real client ----------

from proto_encode import field as _field, packed as _packed  # noqa: E402


def _selftest_profile():
    strings = [""]

    def s(text):
        if text not in strings:
            strings.append(text)
        return strings.index(text)

    vt = lambda t, u: _field(1, s(t)) + _field(2, s(u))
    msg = b""
    for t, u in (("alloc_objects", "count"), ("alloc_space", "bytes"),
                 ("inuse_objects", "count"), ("inuse_space", "bytes")):
        msg += _field(1, vt(t, u))
    label = lambda k, n: _field(1, s(k)) + _field(3, n)
    str_label = lambda k, v: _field(1, s(k)) + _field(2, s(v))
    unit_label = lambda k, n, u: label(k, n) + _field(4, s(u))
    # leaf first; location 3 holds an inlined C++ callee inside main
    samples = (([1, 2, 3], [1000, 64000, 1000, 64000], [("bytes", 64), ("pid", 4242)]),
               ([4, 3], [500, 500000, 0, 0], [("bytes", 1000), ("pid", 4243)]),
               ([1, 3], [-1, 5, 2, 7], [("pid", 4242)]),
               ([5, 3], [3, 30, 3, 30], [("pid", 4242)]))
    extra = ((str_label("thread", "main thread"), unit_label("cpu", 1500, "nanoseconds")),
             (str_label("thread", "w1"),), (), ())
    for (locs, values, labels), more in zip(samples, extra):
        body = _packed(1, locs) + _packed(2, values)
        for k, n in labels:
            body += _field(3, label(k, n))
        for raw in more:
            body += _field(3, raw)
        msg += _field(2, body)
    msg += _field(3, _field(1, 1) + _field(2, 0x400000) + _field(3, 0x500000)
                  + _field(5, s("/usr/bin/known allocs")) + _field(6, s("abcdef01"))
                  + _field(7, 1) + _field(8, 1) + _field(9, 1))
    functions = ((1, "leak_64x1000", "leak_64x1000"),
                 (2, "_Z12make_widgetsv", "_Z12make_widgetsv"),
                 (3, "_ZN6WidgetC2Ev", "_ZN6WidgetC2Ev"),
                 (4, "main", "main"),
                 (5, "alloc_free_1000x500", "alloc_free_1000x500"))
    locations = ((1, 0x401000, [1]), (2, 0x402000, [3, 2]), (3, 0x403000, [4]),
                 (4, 0x404000, [5]), (5, 0x405000, []))
    for lid, addr, fns in locations:
        body = _field(1, lid) + _field(2, 1) + _field(3, addr)
        for fid in fns:
            body += _field(4, _field(1, fid) + _field(2, 10 + fid))
        msg += _field(4, body)
    for fid, name, sysname in functions:
        msg += _field(5, _field(1, fid) + _field(2, s(name)) + _field(3, s(sysname))
                      + _field(4, s("/src/known allocs.c" if fid == 1 else "/src/k.cc")))
    msg += _field(9, 1700000000000000000) + _field(10, 2500000000)
    msg += _field(11, vt("space", "bytes")) + _field(12, 524288)
    msg += _field(14, s("alloc_space"))
    for text in strings:
        msg += _field(6, text.encode())
    return msg


def selftest():
    failures = []

    def check(name, expected, actual):
        if expected != actual:
            failures.append("%s: expected %r, got %r" % (name, expected, actual))

    with tempfile.TemporaryDirectory(prefix="ppx-pprof-raw-") as tmp:
        path = os.path.join(tmp, "self.pb.gz")
        with gzip.open(path, "wb") as f:
            f.write(_selftest_profile())
        p = load(path)
        check("sample types", ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"],
              p.sample_types)
        check("period", 524288, p.period)
        check("period type", "space bytes", p.period_type)
        check("samples", 4, len(p.samples))
        check("flat alloc_space", {"leak_64x1000": 64005, "alloc_free_1000x500": 500000,
                                   "0x405000": 30},
              p.flat("alloc_space"))
        check("flat alloc_objects", {"leak_64x1000": 999, "alloc_free_1000x500": 500,
                                     "0x405000": 3},
              p.flat("alloc_objects"))
        cum = p.cum("inuse_space")
        check("cum main", 64037, cum.get("main"))
        check("cum Widget::Widget (inlined, demangled)", 64000, cum.get("Widget::Widget"))
        check("cum make_widgets (demangled)", 64000, cum.get("make_widgets"))
        check("stack", ["leak_64x1000", "Widget::Widget", "make_widgets", "main"],
              p.stack_functions(p.samples[0]))
        check("pid labels", ["4242", "4243"], p.label_values("pid"))
        check("bytes labels", ["1000", "64"], p.label_values("bytes"))
        check("flat with label", {"alloc_free_1000x500": 500}, p.flat("alloc_objects", "pid=4243"))
        check("mapping file", "/usr/bin/known allocs", p.mappings[1].file)
        check("mapping build id", "abcdef01", p.mappings[1].build_id)
        check("mapping flags", True, "[FN]" in p.mappings[1].flags)
        check("leaf mapping", "/usr/bin/known allocs", p.leaf_mapping_file(p.samples[1]))
        check("default type (-top)", "alloc_space", default_type(path))
        check("string labels (kept whole)", ["main thread", "w1"], p.label_values("thread"))
        check("numeric label with a unit", ["1500"], p.label_values("cpu"))
        check("sum by label", {"main thread": 1000, "w1": 500, "": 2},
              p.sum_by("alloc_objects", "thread"))
        check("sum by label, one leaf", {"4242": 999},
              p.sum_by("alloc_objects", "pid", leaf="leak_64x1000"))
        check("duration", True, p.duration is not None and p.duration.startswith("2.5"))
        check("time", True, p.time is not None and "2023" in p.time)
        check("dump", ["#types\talloc_objects alloc_space inuse_objects inuse_space",
                       "1000 64000 1000 64000\tbytes=64;cpu=1500;pid=4242;thread=main thread\t"
                       "leak_64x1000;Widget::Widget;make_widgets;main\t/usr/bin/known allocs"],
              list(dump_lines(p))[:2])
    for f in failures:
        print("pprof_raw selftest: " + f, file=sys.stderr)
    return 1 if failures else 0


def _fmt(v):
    return str(v)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Query a pprof profile via go tool pprof -raw.")
    ap.add_argument("file", nargs="?")
    ap.add_argument("--type", default=None, help="sample type (default: the profile's last)")
    ap.add_argument("--label", default=None, help="only samples with KEY=VALUE")
    ap.add_argument("--leaf", default=None, help="only samples whose leaf is FUNC")
    ap.add_argument("--flat", metavar="FUNC")
    ap.add_argument("--cum", metavar="FUNC")
    ap.add_argument("--flat-table", action="store_true")
    ap.add_argument("--cum-table", action="store_true")
    ap.add_argument("--leaves", action="store_true")
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--labels", action="store_true")
    ap.add_argument("--sum-by", metavar="KEY", help="totals per value of label KEY")
    ap.add_argument("--total", action="store_true", help="sum of the sample type")
    ap.add_argument("--dump", action="store_true", help="every sample on one line")
    ap.add_argument("--sample-table", metavar="KEYS",
                    help="per sample: value, leaf, labels KEYS (comma-separated)")
    ap.add_argument("--unlabeled", metavar="KEY", help="count samples without label KEY")
    ap.add_argument("--header", action="store_true")
    ap.add_argument("--default-type", action="store_true")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--base", metavar="BASEFILE", help="subtract BASEFILE (go tool pprof -base)")
    a = ap.parse_args(argv)
    try:
        if a.selftest:
            return selftest()
        if not a.file:
            ap.error("FILE is required")
        if a.default_type:
            print(default_type(a.file))
            return 0
        p = load(a.file, a.base)
        stype = a.type or p.sample_types[-1]
        if a.flat is not None:
            print(p.flat(stype, a.label).get(a.flat, 0))
        elif a.cum is not None:
            print(p.cum(stype, a.label).get(a.cum, 0))
        elif a.flat_table or a.cum_table:
            tables = [(p.flat if a.flat_table else p.cum)(t, a.label) for t in p.sample_types]
            print("\t".join(["function"] + p.sample_types))
            for name in sorted(set().union(*tables)):
                print("\t".join([name] + [_fmt(t.get(name, 0)) for t in tables]))
        elif a.leaves:
            i = p.type_index(stype)
            rows = {}
            for s in p.select(a.label, a.leaf):
                key = (p.leaf_function(s), p.leaf_mapping_file(s))
                rows[key] = rows.get(key, 0) + s.values[i]
            ordered = sorted(rows.items(), key=lambda kv: (-kv[1], kv[0]))
            if a.top:
                ordered = ordered[:a.top]
            for (name, mfile), v in ordered:
                print("%d\t%s\t%s" % (v, name, mfile))
        elif a.dump:
            for line in dump_lines(p):
                print(line)
        elif a.sum_by:
            for v, total in sorted(p.sum_by(stype, a.sum_by, a.label, a.leaf).items()):
                print("%s\t%d" % (v, total))
        elif a.total:
            i = p.type_index(stype)
            print(sum(s.values[i] for s in p.select(a.label, a.leaf)))
        elif a.sample_table:
            i = p.type_index(stype)
            keys = [k for k in a.sample_table.split(",") if k]
            for s in p.select(a.label, a.leaf):
                print("\t".join([str(s.values[i]), p.leaf_function(s)]
                                + [",".join(s.labels.get(k, ["-"])) for k in keys]))
        elif a.unlabeled:
            print(sum(1 for s in p.select(a.label, a.leaf) if a.unlabeled not in s.labels))
        elif a.labels:
            for s in p.select(a.label, a.leaf):
                for key in sorted(s.labels):
                    for v in s.labels[key]:
                        print("%s\t%s" % (key, v))
        else:
            print("sample_types\t" + " ".join(p.sample_types))
            print("default_type\t%s" % (p.default_type or ""))
            print("period_type\t%s" % (p.period_type or ""))
            print("period\t%s" % p.period)
            print("time\t%s" % (p.time or ""))
            print("duration\t%s" % (p.duration or ""))
            print("samples\t%d" % len(p.samples))
            for m in sorted(p.mappings.values(), key=lambda m: m.id):
                print("mapping\t%d\t%s\t%s\t%s" % (m.id, m.file, m.build_id, m.flags))
    except PprofError as e:
        print("pprof_raw: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
