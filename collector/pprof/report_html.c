/* The page of `ppx report` (pprof.h): one HTML file that opens from disk
 * (file://) in a browser without network. Its parts: a table per profile
 * (go tool pprof -top's columns), the texts of ppx audit and ppx threads,
 * and the flame graphs, drawn by the viewer (speedscope) inlined into the
 * page with the profiles.
 *
 * How a profile reaches the viewer. The profiles and the viewer's script
 * and stylesheet are carried as base64 in <script> elements of a type the
 * browser does not run (base64 needs no escaping there: no "</script" can
 * appear). A small script of the page makes, on request, an iframe per
 * profile and sample type, writes the viewer into it and drops the
 * profile's bytes on it,
 * as a user drops a file on speedscope: a synthetic drop event carrying a
 * File. speedscope's other ways in do not work from file://: #profileURL=
 * is refused unless the page's protocol is http(s) (the viewer fetches
 * it), and #localProfilePath= loads a separate script file from file:///,
 * which a single-file report does not have. The iframe (same origin as
 * the page, written by it) keeps the viewer's full-window styles out of
 * the page. */
#include "pprof/pprof.h"

#include <inttypes.h>
#include <string.h>

static const char page_style[] =
    "body{font-family:sans-serif;margin:1.5rem;color:#222;}\n"
    "h2{margin-top:2rem;border-bottom:1px solid #ccc;}\n"
    "table.top{border-collapse:collapse;font-size:.9rem;}\n"
    "table.top td,table.top th{padding:.15rem .8rem .15rem 0;text-align:right;}\n"
    "table.top td.name,table.top th.name{text-align:left;font-family:monospace;}\n"
    "table.top tr:nth-child(even){background:#f4f6f8;}\n"
    "pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.85rem;}\n"
    ".missing,.error{background:#fff3cd;padding:.5rem;}\n"
    "#viewer iframe{width:100%;height:75vh;border:1px solid #ccc;}\n"
    "button[data-flamegraph]{margin:0 .3rem .5rem 0;padding:.3rem .8rem;}\n"
    "button.on{background:#3366cc;color:#fff;}\n";

/* The page's own script (see the top of this file). */
static const char page_script[] =
    "'use strict';\n"
    "function ppxBytes(id) {\n"
    "  const s = atob(document.getElementById(id).textContent.trim());\n"
    "  const b = new Uint8Array(s.length);\n"
    "  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);\n"
    "  return b;\n"
    "}\n"
    "function ppxText(id) { return new TextDecoder().decode(ppxBytes(id)); }\n"
    "for (const a of document.querySelectorAll('a[data-download]'))\n"
    "  a.href = URL.createObjectURL(new Blob([ppxBytes('profile-' + a.dataset.download)],\n"
    "    {type: 'application/gzip'}));\n"
    "function ppxTypes(data) {\n"
    "  return new Map(data.dataset.types.split(' ').filter(Boolean).map((t) => t.split(':')));\n"
    "}\n"
    /* Another sample type than the file's default: its protobuf with a
     * default_sample_type field (number 14, varint: a string table index)
     * appended, which overrides the file's own (of a field given twice, a
     * reader keeps the last). speedscope reads uncompressed profiles too. */
    "async function ppxProfile(data, type) {\n"
    "  const bytes = ppxBytes(data.id);\n"
    "  if (type === data.dataset.default) return bytes;\n"
    "  const raw = new Uint8Array(await new Response(new Blob([bytes]).stream()\n"
    "    .pipeThrough(new DecompressionStream('gzip'))).arrayBuffer());\n"
    "  const tail = [0x70];\n"
    "  let v = Number(ppxTypes(data).get(type));\n"
    "  for (; v >= 0x80; v = Math.floor(v / 128)) tail.push((v % 128) | 0x80);\n"
    "  tail.push(v);\n"
    "  const out = new Uint8Array(raw.length + tail.length);\n"
    "  out.set(raw);\n"
    "  out.set(tail, raw.length);\n"
    "  return out;\n"
    "}\n"
    "const ppxFrames = {};\n"
    "const ppxSelect = document.getElementById('sample-type');\n"
    "let ppxStem = null;\n"
    "function ppxShow(stem, type) {\n"
    "  const data = document.getElementById('profile-' + stem);\n"
    "  type = type || data.dataset.default;\n"
    "  if (stem !== ppxStem) {\n"
    "    ppxStem = stem;\n"
    "    const others = [...ppxTypes(data).keys()].filter((t) => t !== data.dataset.default);\n"
    "    ppxSelect.replaceChildren(...[data.dataset.default, ...others].map((t) => new Option(t, "
    "t)));\n"
    "  }\n"
    "  ppxSelect.value = type;\n"
    "  for (const b of document.querySelectorAll('button[data-flamegraph]'))\n"
    "    b.classList.toggle('on', b.dataset.flamegraph === stem);\n"
    "  const key = stem + ':' + type;\n"
    "  for (const k in ppxFrames) ppxFrames[k].hidden = k !== key;\n"
    "  if (ppxFrames[key]) return;\n"
    "  const f = document.createElement('iframe');\n"
    "  f.dataset.profile = stem;\n"
    "  f.dataset.sampleType = type;\n"
    "  f.title = data.dataset.file + ' (' + type + ')';\n"
    "  document.getElementById('viewer').appendChild(f);\n"
    "  ppxFrames[key] = f;\n"
    "  const d = f.contentDocument;\n"
    "  d.open();\n"
    "  d.write('<!DOCTYPE html><html><head><meta charset=utf-8><title>speedscope</title>' +\n"
    "    '</head><body></body></html>');\n"
    "  d.close();\n"
    "  const style = d.createElement('style');\n"
    "  style.textContent = ppxText('viewer-css');\n"
    "  d.head.appendChild(style);\n"
    "  const script = d.createElement('script');\n"
    "  script.textContent = ppxText('viewer-js');\n"
    "  d.body.appendChild(script);\n"
    "  ppxProfile(data, type).then((bytes) => ppxDrop(f, bytes, 0, 0),\n"
    "    (e) => console.error('ppx report: cannot show ' + f.title + ': ' + e));\n"
    "}\n"
    /* speedscope ignores a drop until its canvas is ready (and shows its
     * title once the profile is in): wait for the canvas, drop, and drop
     * again if no title came. */
    "function ppxDrop(f, bytes, waits, drops) {\n"
    "  const w = f.contentWindow, d = f.contentDocument;\n"
    "  if (/ - speedscope$/.test(d.title) || waits > 400 || drops > 5) return;\n"
    "  const canvas = d.querySelector('canvas');\n"
    "  if (canvas) {\n"
    "    const t = new w.DataTransfer();\n"
    "    t.items.add(new w.File([bytes], f.title));\n"
    "    canvas.dispatchEvent(new w.DragEvent('drop',\n"
    "      {bubbles: true, cancelable: true, dataTransfer: t}));\n"
    "  }\n"
    "  setTimeout(() => ppxDrop(f, bytes, waits + 1, drops + (canvas ? 1 : 0)), canvas ? 3000 : "
    "50);\n"
    "}\n"
    "for (const b of document.querySelectorAll('button[data-flamegraph]'))\n"
    "  b.addEventListener('click', () => ppxShow(b.dataset.flamegraph));\n"
    "if (ppxSelect) ppxSelect.addEventListener('change', () => ppxShow(ppxStem, "
    "ppxSelect.value));\n"
    "const ppxFirst = document.querySelector('button[data-flamegraph]');\n"
    "if (ppxFirst) ppxShow(ppxFirst.dataset.flamegraph);\n";

static bool has_samples(const struct report_profile *rp)
{
    return rp->data && rp->top && rp->top->n_samples > 0;
}

/* v for a reader, in unit: bytes in KiB.., nanoseconds in us.., counts as
 * they are. */
static void human_value(FILE *f, int64_t v, const char *unit)
{
    double d = (double)v, a = d < 0 ? -d : d;
    if (strcmp(unit, "bytes") == 0 && a >= 1024) {
        static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
        size_t i = 0;
        for (d /= 1024, a /= 1024; a >= 1024 && i + 1 < 4; i++, d /= 1024, a /= 1024)
            ;
        fprintf(f, "%.2f %s", d, units[i]);
    } else if (strcmp(unit, "bytes") == 0) {
        fprintf(f, "%" PRId64 " B", v);
    } else if (strcmp(unit, "nanoseconds") == 0) {
        if (a >= 1e9)
            fprintf(f, "%.2f s", d / 1e9);
        else if (a >= 1e6)
            fprintf(f, "%.2f ms", d / 1e6);
        else if (a >= 1e3)
            fprintf(f, "%.2f us", d / 1e3);
        else
            fprintf(f, "%" PRId64 " ns", v);
    } else {
        fprintf(f, "%" PRId64, v);
    }
}

static double percent(int64_t v, int64_t total)
{
    return total ? 100.0 * (double)v / (double)total : 0;
}

/* A figure's cell: the reader's value, the exact one in its title and
 * data-value. */
static void value_cell(FILE *f, const char *cls, int64_t v, const char *unit)
{
    fprintf(f, "<td class=%s data-value=%" PRId64 " title=%" PRId64 ">", cls, v, v);
    human_value(f, v, unit);
    fputs("</td>", f);
}

static void top_table(FILE *f, const struct report_profile *rp, size_t rows)
{
    const struct pprof_top *t = rp->top;
    fputs("<p class=summary>", f);
    html_escaped(f, t->type);
    fputs(" (", f);
    html_escaped(f, t->unit);
    fputs("): ", f);
    human_value(f, t->total, t->unit);
    fprintf(f, " in %zu sample%s", t->n_samples, t->n_samples == 1 ? "" : "s");
    if (rp->duration_nanos > 0)
        fprintf(f, " over %.3f s", (double)rp->duration_nanos / 1e9);
    fprintf(f, "; %zu function%s, the first %zu by flat value below.</p>\n", t->n_rows,
            t->n_rows == 1 ? "" : "s", t->n_rows < rows ? t->n_rows : rows);
    fprintf(f, "<table class=top data-type='");
    html_escaped(f, t->type);
    fputs("' data-total=", f);
    fprintf(f,
            "%" PRId64 ">\n<thead><tr><th>flat</th><th>flat%%</th><th>sum%%</th><th>cum</th>"
            "<th>cum%%</th><th class=name>function</th></tr></thead>\n<tbody>\n",
            t->total);
    int64_t sum = 0;
    for (size_t i = 0; i < t->n_rows && i < rows; i++) {
        const struct pprof_top_row *r = &t->rows[i];
        sum += r->flat;
        fputs("<tr data-function='", f);
        html_escaped(f, r->name);
        fputs("'>", f);
        value_cell(f, "flat", r->flat, t->unit);
        fprintf(f, "<td>%.2f%%</td><td>%.2f%%</td>", percent(r->flat, t->total),
                percent(sum, t->total));
        value_cell(f, "cum", r->cum, t->unit);
        fprintf(f, "<td>%.2f%%</td><td class=name>", percent(r->cum, t->total));
        html_escaped(f, r->name);
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody>\n</table>\n", f);
    if (t->n_rows > rows)
        fprintf(f, "<p>(%zu more functions: ppx report --top %zu shows them)</p>\n",
                t->n_rows - rows, t->n_rows);
}

static void profile_section(FILE *f, const struct report_profile *rp, size_t rows)
{
    fprintf(f, "<section class=profile id=top-%s data-profile=%s>\n<h2>", rp->stem, rp->stem);
    html_escaped(f, rp->file);
    fputs(": ", f);
    html_escaped(f, rp->what);
    fputs("</h2>\n", f);
    if (!rp->top) {
        fputs("<p class=error>Cannot read it: ", f);
        html_escaped(f, rp->error ? rp->error : "?");
        fputs("</p>\n</section>\n", f);
        return;
    }
    if (!has_samples(rp))
        fputs("<p class=empty>No samples: nothing of this kind was recorded.</p>\n", f);
    else
        top_table(f, rp, rows);
    fprintf(f, "<p><a data-download=%s download='", rp->stem);
    html_escaped(f, rp->file);
    fputs("' href='#'>Download ", f);
    html_escaped(f, rp->file);
    fputs("</a> (go tool pprof reads it)</p>\n</section>\n", f);
}

static void text_section(FILE *f, const struct report_text *rt)
{
    fprintf(f, "<section class=text id=%s>\n<h2>", rt->id);
    html_escaped(f, rt->title);
    fputs("</h2>\n", f);
    if (!rt->text) {
        fputs("<p class=error>", f);
        html_escaped(f, rt->error ? rt->error : "?");
        fputs("</p>\n", f);
    } else {
        fputs("<pre>", f);
        html_escaped_len(f, rt->text, rt->len);
        fputs("</pre>\n", f);
    }
    fputs("</section>\n", f);
}

static void flame_graphs(FILE *f, const struct report_page *p)
{
    fputs("<section id=flamegraphs>\n<h2>Flame graphs</h2>\n", f);
    if (!p->viewer) {
        fputs("<p class=missing id=viewer-missing>The flame graphs need speedscope, which ", f);
        if (p->viewer_error) {
            fputs("cannot be used here: ", f);
            html_escaped(f, p->viewer_error);
        } else {
            fputs("is not installed (looked in ", f);
            html_escaped(f, p->viewer_looked ? p->viewer_looked : "?");
            fputs(")", f);
        }
        fputs(". scripts/deps installs it (npm ci in ui/), make install puts it beside ppx; "
              "PPX_UI_DIR names another place. Run ppx report again then; the tables below "
              "need nothing.</p>\n</section>\n",
              f);
        return;
    }
    size_t shown = 0;
    fputs("<div id=flamegraph-buttons>", f);
    for (size_t i = 0; i < p->n_profiles; i++) {
        const struct report_profile *rp = &p->profiles[i];
        if (!has_samples(rp))
            continue;
        fprintf(f, "<button data-flamegraph=%s>%s</button>", rp->stem, rp->stem);
        shown++;
    }
    fputs("</div>\n", f);
    if (shown)
        fputs("<p><label>Sample type: <select id=sample-type></select></label> Drawn by "
              "speedscope, inlined: keys 1, 2, 3 inside switch between time order, left heavy "
              "and sandwich views.</p>\n<div id=viewer></div>\n",
              f);
    else
        fputs("<p>No profile has samples.</p>\n", f);
    fputs("</section>\n", f);
}

/* The profiles' bytes and the viewer, for the page's script. */
static void data_elements(FILE *f, const struct report_page *p)
{
    for (size_t i = 0; i < p->n_profiles; i++) {
        const struct report_profile *rp = &p->profiles[i];
        if (!rp->data || !rp->top)
            continue;
        fprintf(f, "<script type=application/octet-stream id=profile-%s data-file='", rp->stem);
        html_escaped(f, rp->file);
        fputs("' data-types='", f);
        html_escaped(f, rp->sample_types ? rp->sample_types : "");
        fputs("' data-default='", f);
        html_escaped(f, rp->top->type ? rp->top->type : "");
        fputs("'>", f);
        base64_write(f, rp->data, rp->len);
        fputs("</script>\n", f);
    }
    if (!p->viewer)
        return;
    fputs("<script type=application/octet-stream id=viewer-js>", f);
    base64_write(f, (const uint8_t *)p->viewer->js, p->viewer->js_len);
    fputs("</script>\n<script type=application/octet-stream id=viewer-css>", f);
    base64_write(f, (const uint8_t *)p->viewer->css, p->viewer->css_len);
    fputs("</script>\n", f);
}

static void contents(FILE *f, const struct report_page *p)
{
    fputs("<nav><a href='#flamegraphs'>flame graphs</a>", f);
    for (size_t i = 0; i < p->n_profiles; i++)
        fprintf(f, " | <a href='#top-%s'>%s</a>", p->profiles[i].stem, p->profiles[i].stem);
    for (size_t i = 0; i < p->n_texts; i++)
        fprintf(f, " | <a href='#%s'>%s</a>", p->texts[i].id, p->texts[i].id);
    fputs("</nav>\n", f);
}

void report_html_write(FILE *f, const struct report_page *p)
{
    fputs("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=utf-8>\n<title>ppx report: ", f);
    html_escaped(f, p->dir);
    /* no favicon request */
    fprintf(f, "</title>\n<link rel=icon href='data:,'>\n<style>\n%s</style>\n</head>\n<body>\n",
            page_style);
    fputs("<h1>ppx report</h1>\n<p id=source>The profiles in <code>", f);
    html_escaped(f, p->dir);
    fputs("</code>, by ppx ", f);
    html_escaped(f, p->version);
    fputs(". Each table lists functions as <code>go tool pprof -top</code> does, for the "
          "profile's default sample type: flat, the samples whose leaf the function is; cum, "
          "those it is anywhere in.</p>\n",
          f);
    contents(f, p);
    flame_graphs(f, p);
    for (size_t i = 0; i < p->n_profiles; i++)
        profile_section(f, &p->profiles[i], p->top_rows);
    for (size_t i = 0; i < p->n_texts; i++)
        text_section(f, &p->texts[i]);
    if (p->viewer && p->viewer->notices) {
        fputs("<details id=notices><summary>The licences of speedscope, inlined into this "
              "page</summary><pre>",
              f);
        html_escaped_len(f, p->viewer->notices, p->viewer->notices_len);
        fputs("</pre></details>\n", f);
    }
    data_elements(f, p);
    fprintf(f, "<script>\n%s</script>\n</body>\n</html>\n", page_script);
}
