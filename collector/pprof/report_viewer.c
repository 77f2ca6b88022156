/* The flame graph viewer's release files (npm's speedscope, dist/release),
 * read to be inlined into a report page (pprof.h): the scripts and
 * stylesheets its index.html names, in order, and the files its
 * stylesheets name (a font) as data: URLs, so that the page needs no
 * other file. Nothing of the viewer is kept in ppx's tree: it is read
 * where it is installed, each time. */
#include "pprof/pprof.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* speedscope's largest file is 0.5 MiB. */
#define VIEWER_MAX_FILE (16u << 20)

/* A file name inside the viewer's directory, as its index.html and its
 * stylesheet name them ("./x.css" or "x.css"): no directory, nothing
 * hidden. */
static bool plain_name(const char *name, size_t len)
{
    if (len == 0 || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", name[i]))
            return false;
    return true;
}

static char *read_viewer_file(const char *dir, const char *name, size_t *len, char *err,
                              size_t errlen)
{
    char *path = path_join(dir, name);
    char *data = path ? file_read_all(path, VIEWER_MAX_FILE, len) : NULL;
    if (!data)
        snprintf(err, errlen, "cannot read the viewer's %s/%s: %s", dir, name,
                 strerror(path ? errno : ENOMEM));
    free(path);
    return data;
}

/* Drops the "sourceMappingURL" comment on the last line, if any: a
 * browser's developer tools would look for the map beside the page, where
 * it is not. */
static void drop_source_map(char *text, size_t *len)
{
    size_t n = *len;
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        n--;
    size_t line = n;
    while (line > 0 && text[line - 1] != '\n')
        line--;
    if (strncmp(text + line, "//# sourceMappingURL=", 21) == 0 ||
        strncmp(text + line, "/*# sourceMappingURL=", 21) == 0) {
        text[line] = 0;
        *len = line;
    }
}

static const char *media_type(const char *name, size_t len)
{
    static const struct {
        const char *suffix, *type;
    } types[] = {{".woff2", "font/woff2"}, {".woff", "font/woff"},    {".ttf", "font/ttf"},
                 {".png", "image/png"},    {".svg", "image/svg+xml"}, {".gif", "image/gif"}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t n = strlen(types[i].suffix);
        if (len > n && strncmp(name + len - n, types[i].suffix, n) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

/* css with each url(...) naming a file of dir made a data: URL, into out. */
static int inline_urls(FILE *out, const char *dir, const char *css, char *err, size_t errlen)
{
    const char *p = css, *u;
    while ((u = strstr(p, "url("))) {
        const char *start = u + 4, *end;
        char quote = *start == '"' || *start == '\'' ? *start : 0;
        if (quote)
            start++;
        end = quote ? strchr(start, quote) : strchr(start, ')');
        if (!end)
            break;
        const char *name = strncmp(start, "./", 2) == 0 ? start + 2 : start;
        size_t name_len = (size_t)(end - name);
        fwrite(p, 1, (size_t)(u - p), out);
        p = end + (quote ? 1 : 0);
        if (!plain_name(name, name_len)) { /* data: or elsewhere: as it is */
            fwrite(u, 1, (size_t)(p - u), out);
            continue;
        }
        char file[256];
        snprintf(file, sizeof file, "%.*s", (int)name_len, name);
        size_t len;
        char *data = read_viewer_file(dir, file, &len, err, errlen);
        if (!data)
            return -1;
        fprintf(out, "url(\"data:%s;base64,", media_type(file, strlen(file)));
        base64_write(out, (const uint8_t *)data, len);
        fputc('"', out);
        free(data);
    }
    fputs(p, out);
    return 0;
}

/* The value of attribute attr ("src=") in the tag starting at tag, if it
 * is a plain name, in out. */
static bool tag_file(const char *tag, const char *attr, char *out, size_t outlen)
{
    const char *end = strchr(tag, '>');
    const char *a = strstr(tag, attr);
    if (!end || !a || a > end)
        return false;
    a += strlen(attr);
    char quote = *a == '"' || *a == '\'' ? *a++ : 0;
    size_t len = quote ? strcspn(a, quote == '"' ? "\">" : "'>") : strcspn(a, " \t\n>");
    if (strncmp(a, "./", 2) == 0) {
        a += 2;
        len -= 2;
    }
    if (!plain_name(a, len) || len >= outlen)
        return false;
    snprintf(out, outlen, "%.*s", (int)len, a);
    return true;
}

/* Appends file name of dir to out (a script: as it is, then ";\n", so
 * that two scripts stay apart; a stylesheet: its URLs inlined). */
static int append_file(FILE *out, const char *dir, const char *name, bool script, char *err,
                       size_t errlen)
{
    size_t len;
    char *text = read_viewer_file(dir, name, &len, err, errlen);
    if (!text)
        return -1;
    drop_source_map(text, &len);
    int rc = 0;
    if (script) {
        fwrite(text, 1, len, out);
        fputs("\n;\n", out);
    } else {
        rc = inline_urls(out, dir, text, err, errlen);
        fputc('\n', out);
    }
    free(text);
    return rc;
}

static int read_index(struct report_viewer *v, const char *index, FILE *js, FILE *css, char *err,
                      size_t errlen)
{
    char name[256];
    for (const char *t = index; (t = strchr(t, '<')); t++) {
        if (strncmp(t, "<script", 7) == 0 && tag_file(t, "src=", name, sizeof name)) {
            if (append_file(js, v->dir, name, true, err, errlen) < 0)
                return -1;
            v->n_scripts++;
        } else if (strncmp(t, "<link", 5) == 0 && strstr(t, "stylesheet") &&
                   strstr(t, "stylesheet") < strchr(t, '>') &&
                   tag_file(t, "href=", name, sizeof name)) {
            if (append_file(css, v->dir, name, false, err, errlen) < 0)
                return -1;
        }
    }
    if (v->n_scripts == 0) {
        snprintf(err, errlen, "%s/index.html names no script: not speedscope's release folder",
                 v->dir);
        return -1;
    }
    return 0;
}

/* Appends the licence file name of dir, if there, to out under a line
 * naming it. */
static void append_notice(FILE *out, const char *dir, const char *name, const char *title)
{
    char *path = path_join(dir, name);
    size_t len;
    char *text = path ? file_read_all(path, VIEWER_MAX_FILE, &len) : NULL;
    while (text && len > 0 && text[len - 1] == '\n')
        text[--len] = 0;
    if (text)
        fprintf(out, "%s== %s ==\n%s\n", ftell(out) ? "\n" : "", title, text);
    free(text);
    free(path);
}

/* The licences that go with the inlined code, as the MIT licence and the
 * font's OFL ask: the package's LICENSE (in the viewer's directory when
 * installed, two levels up in npm's node_modules/speedscope/dist/release),
 * then every *LICENSE* file of the directory (the font's). */
static void read_notices(struct report_viewer *v)
{
    FILE *out = open_memstream(&v->notices, &v->notices_len);
    if (!out)
        return;
    char *top = path_join(v->dir, "LICENSE");
    bool installed = top && access(top, R_OK) == 0;
    free(top);
    append_notice(out, v->dir, installed ? "LICENSE" : "../../LICENSE", "speedscope: LICENSE");
    DIR *d = opendir(v->dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, "LICENSE") && strcmp(e->d_name, "LICENSE") != 0 &&
            e->d_name[0] != '.')
            append_notice(out, v->dir, e->d_name, e->d_name);
    if (d)
        closedir(d);
    if (fclose(out) != 0) {
        free(v->notices);
        v->notices = NULL;
        v->notices_len = 0;
    }
}

int report_viewer_load(const char *dir, struct report_viewer *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    *err = 0;
    size_t len;
    if (!(v->dir = strdup(dir))) {
        snprintf(err, errlen, "out of memory reading the viewer");
        return -1;
    }
    char *index = read_viewer_file(dir, "index.html", &len, err, errlen);
    if (!index) {
        report_viewer_free(v);
        return -1;
    }
    FILE *js = open_memstream(&v->js, &v->js_len);
    FILE *css = js ? open_memstream(&v->css, &v->css_len) : NULL;
    int rc = -1;
    if (css)
        rc = read_index(v, index, js, css, err, errlen);
    else
        snprintf(err, errlen, "out of memory reading the viewer");
    if (js && fclose(js) != 0)
        rc = -1;
    if (css && fclose(css) != 0)
        rc = -1;
    free(index);
    if (rc < 0 && !*err)
        snprintf(err, errlen, "out of memory reading the viewer");
    if (rc < 0)
        report_viewer_free(v);
    else
        read_notices(v);
    return rc;
}

void report_viewer_free(struct report_viewer *v)
{
    free(v->dir);
    free(v->js);
    free(v->css);
    free(v->notices);
    memset(v, 0, sizeof *v);
}
