#include "symbol/symbol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Itanium C++ ABI's demangler (section 3.4), an extern "C" function of
 * libstdc++: declared here so that the collector stays C. */
char *__cxa_demangle(const char *mangled, char *buffer, size_t *length, int *status);

char *demangle_name(const char *name)
{
    if (!name || strncmp(name, "_Z", 2) != 0)
        return NULL;
    int status = -1;
    char *out = __cxa_demangle(name, NULL, NULL, &status);
    if (status != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void keep_tail(const char *s, char *out, size_t outlen)
{
    size_t len = strlen(s);
    if (len < outlen)
        memcpy(out, s, len + 1);
    else if (outlen > 4)
        snprintf(out, outlen, "...%s", s + len - (outlen - 4));
    else
        out[0] = 0;
}

const char *demangle_into(const char *name, char *out, size_t outlen)
{
    char *demangled = demangle_name(name);
    keep_tail(demangled ? demangled : name ? name : "", out, outlen);
    free(demangled);
    return out;
}

/* The length of "operator" and its symbol at p ("operator<<=" 11), as
 * the demangler prints them; 0 when p is no such operator (operator() is
 * the caller's, operator new and conversions hold no symbol). */
static size_t operator_length(const char *p)
{
    if (strncmp(p, "operator", 8) != 0)
        return 0;
    if (strncmp(p + 8, "[]", 2) == 0)
        return 10;
    size_t n = strspn(p + 8, "<>=!+-*/%^&|~,");
    return n ? 8 + (n > 3 ? 3 : n) : 0;
}

void demangle_simplify(const char *in, char *out, size_t outlen)
{
    static const char anon[] = "(anonymous namespace)";
    size_t o = 0;
    int depth = 0;
    for (const char *p = in; *p && o + 1 < outlen; p++) {
        if (depth == 0 && strncmp(p, anon, sizeof anon - 1) == 0) {
            for (const char *a = "{anonymous}"; *a && o + 1 < outlen; a++)
                out[o++] = *a;
            p += sizeof anon - 2;
            continue;
        }
        if (depth == 0 && strncmp(p, "operator()", 10) == 0) {
            for (const char *a = "operator()"; *a && o + 1 < outlen; a++)
                out[o++] = *a;
            p += 9;
            continue;
        }
        size_t op = depth == 0 ? operator_length(p) : 0;
        if (op) { /* "operator<<" is a name, not a template's start */
            for (size_t k = 0; k < op && o + 1 < outlen; k++)
                out[o++] = p[k];
            p += op - 1;
            continue;
        }
        if (*p == '(' || *p == '<')
            depth++;
        else if ((*p == ')' || *p == '>') && depth > 0)
            depth--;
        else if (depth == 0)
            out[o++] = *p;
    }
    out[o] = 0;
    while (o > 0 && out[o - 1] == ' ') /* "operator< <int>(...)" */
        out[--o] = 0;
    while (o >= 6 && strcmp(out + o - 6, " const") == 0)
        out[o -= 6] = 0;
    char *space = strrchr(out, ' '); /* after a return type */
    if (space && space - out >= 8 && strncmp(space - 8, "operator", 8) == 0) {
        *space = 0; /* "operator new", "operator int": the name's own space */
        char *before = strrchr(out, ' ');
        *space = ' ';
        space = before;
    }
    if (space)
        memmove(out, space + 1, strlen(space + 1) + 1);
}

void demangle_short(const char *name, char *out, size_t outlen)
{
    char *demangled = demangle_name(name);
    demangle_simplify(demangled ? demangled : name, out, outlen);
    free(demangled);
    if (!*out)
        snprintf(out, outlen, "%s", name);
}
