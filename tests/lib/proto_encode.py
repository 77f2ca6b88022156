"""The few protobuf encodings the test scripts write profile.proto with
(no protobuf library): varints, fields, packed repeated varints. Used by
pprof_raw.py's self-check and craft_profile.py."""


def varint(n):
    """n as a base-128 varint; a negative n as its 64-bit two's complement."""
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, value):
    """A varint field (int) or a length-delimited one (bytes)."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + bytes(value)


def packed(number, values):
    """A packed repeated varint field."""
    return field(number, b"".join(varint(v) for v in values))
