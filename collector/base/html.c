#include "base/base.h"

#include <string.h>

void html_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&#34;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

void html_escaped_len(FILE *f, const char *s, size_t len)
{
    char chunk[256];
    while (len > 0) {
        /* A NUL in s would end html_escaped() early: shown as U+FFFD. */
        size_t n = 0;
        while (n < len && n < sizeof chunk - 1 && s[n])
            n++;
        memcpy(chunk, s, n);
        chunk[n] = 0;
        html_escaped(f, chunk);
        if (n < len && s[n] == 0) {
            fputs("&#xfffd;", f);
            n++;
        }
        s += n;
        len -= n;
    }
}

void base64_write(FILE *f, const uint8_t *data, size_t len)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        fputc(digits[v >> 18], f);
        fputc(digits[(v >> 12) & 63], f);
        fputc(i + 1 < len ? digits[(v >> 6) & 63] : '=', f);
        fputc(i + 2 < len ? digits[v & 63] : '=', f);
    }
}
