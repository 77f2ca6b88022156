# Reading profiles back: through go tool pprof, by pprof_raw.py and
# io_sites.py, into the figures the tests compare (sourced by common.sh).

# pprof_raw FILE OPTIONS...: go tool pprof -raw of FILE, parsed (tests/lib/pprof_raw.py).
pprof_raw() { python3 "$PPROF_RAW" "$@"; }

# io_sites FILE [--by-mapping]: syscalls.pb.gz a line per call site (tests/lib/io_sites.py).
io_sites() { python3 "$TESTS_LIB/io_sites.py" "$@"; }

# go_pprof ARGS...: `go tool pprof` itself, offline and for any user, as
# pprof_raw.py runs it (no toolchain download, its files under $TMP).
go_pprof() {
    mkdir -p "$TMP/pprof"
    HOME="$TMP" PPROF_TMPDIR="$TMP/pprof" GOTOOLCHAIN=local GOPROXY=off GOFLAGS= go tool pprof "$@"
}

# header_field HEADER KEY: a value from pprof_raw.py --header output.
header_field() {
    printf '%s\n' "$1" | awk -F'\t' -v k="$2" '$1 == k { print $2; exit }'
}

# label_values FILE KEY [PPROF_RAW_ARGS...]: the values of label KEY in the
# profile FILE (of the samples pprof_raw.py --labels ARGS selects), sorted,
# each once, on one line.
label_values() {
    local file=$1 key=$2
    shift 2
    pprof_raw "$file" --labels "$@" | awk -F'\t' -v k="$key" '$1 == k { print $2 }' | sort -u | paste -sd' '
}

# table_get TABLE FUNC TYPE: a value from pprof_raw.py --flat-table/--cum-table output.
table_get() {
    printf '%s\n' "$1" | awk -F'\t' -v f="$2" -v t="$3" '
        NR == 1 { for (i = 2; i <= NF; i++) if ($i == t) col = i; next }
        $1 == f && col { v = $col }
        END { print (v == "" ? 0 : v) }'
}

# expect_figures TABLE WHERE FUNC ALLOC_OBJECTS ALLOC_SPACE INUSE_OBJECTS INUSE_SPACE
expect_figures() {
    local table=$1 where=$2 fn=$3 t i=0
    shift 3
    for t in alloc_objects alloc_space inuse_objects inuse_space; do
        i=$((i + 1))
        expect_eq "$where $fn $t" "${!i}" "$(table_get "$table" "$fn" "$t")"
    done
}

# expect_file_figures FILE WHERE FUNC ALLOC_OBJECTS ALLOC_SPACE INUSE_OBJECTS
# INUSE_SPACE [FUNC ...]: expect_figures for each FUNC, in the flat table of
# the profile FILE.
expect_file_figures() {
    local file=$1 where=$2 table
    shift 2
    table=$(pprof_raw "$file" --flat-table) || { fail "$where: cannot read $file"; return 1; }
    while [ $# -ge 5 ]; do
        expect_figures "$table" "$where" "$1" "$2" "$3" "$4" "$5"
        shift 5
    done
}
