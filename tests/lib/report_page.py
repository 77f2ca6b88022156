#!/usr/bin/env python3
"""Reads a page written by `ppx report`, for tests/e2e/report.sh.

report_page.py PAGE rows PROFILE      one line per row of PROFILE's top table:
                                      FUNCTION<TAB>FLAT<TAB>CUM (exact values)
report_page.py PAGE text ID           the text of section ID (audit, threads),
                                      unescaped, as the command printed it
report_page.py PAGE data ID          the bytes carried in base64 by element ID
                                      (viewer-js, viewer-css, profile-heap, ...)
"""
import base64
import html
import re
import sys


def section(page, sid):
    m = re.search(r"<section[^>]* id=%s[ >](.*?)</section>" % re.escape(sid), page, re.S)
    if not m:
        sys.exit("no section %s" % sid)
    return m.group(1)


def main():
    path, what = sys.argv[1], sys.argv[2]
    page = open(path, encoding="utf-8").read()
    out = sys.stdout
    if what == "rows":
        body = section(page, "top-" + sys.argv[3])
        for m in re.finditer(r"<tr data-function='([^']*)'><td class=flat data-value=(-?\d+)"
                             r".*?<td class=cum data-value=(-?\d+)", body):
            out.write("%s\t%s\t%s\n" % (html.unescape(m.group(1)), m.group(2), m.group(3)))
    elif what == "text":
        m = re.search(r"<pre>(.*?)</pre>", section(page, sys.argv[3]), re.S)
        if not m:
            sys.exit("no text in section %s" % sys.argv[3])
        out.write(html.unescape(m.group(1)))
    elif what == "data":
        sid = sys.argv[3]
        m = re.search(r"<script type=application/octet-stream id=%s(?: [^>]*)?>([A-Za-z0-9+/=]*)"
                      r"</script>" % re.escape(sid), page)
        if not m:
            sys.exit("no %s in the page" % sid)
        sys.stdout.buffer.write(base64.b64decode(m.group(1)))
    else:
        sys.exit("unknown request %s" % what)


main()
