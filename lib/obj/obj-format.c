/* SPDX-License-Identifier: MIT */
/*
 * The text form of objs (doc/obj.md "Text form").
 *
 *   REPL form (HYB_FORMAT_REPL)          EXACT form (HYB_FORMAT_EXACT)
 *   6.500000  nan  inf  -inf             6.5  1.0  1e+300  nan  inf  -inf
 *   a/b   <>   a-b  (uris as written)    a/b  <>   <a-b>  <1>  <true>  <+/#>
 *   nat[5]  6 (/type/int[6])  /abc/nat[5]     the same, with type names bracketed when needed
 *   'it\'s'  [1,2]  [a=>1]  [=>]  {1,2}  12@a  [noobj]
 *
 * EXACT output goes back through hyb_obj_parse to an equal obj: uris are
 * bracketed unless their text lexes back as the same bare uri, and reals use
 * the shortest %g precision that strtod reads back exactly.
 */
#include <ctype.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "common/util.h"
#include "obj-internal.h"

/* --- buffer --- */

void obj_buf_put(obj_buf *b, const char *s, size_t n)
{
        if (b->err)
                return;
        if (grow_array((void **)&b->data, &b->alloc, b->len + n + 1, 1) < 0) {
                b->err = -ENOMEM;
                return;
        }
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
}

void obj_buf_puts(obj_buf *b, const char *s)
{
        obj_buf_put(b, s, strlen(s));
}

void obj_buf_putc(obj_buf *b, char c)
{
        obj_buf_put(b, &c, 1);
}

void obj_buf_printf(obj_buf *b, const char *fmt, ...)
{
        char small[64];
        char *big = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->err = -EINVAL;
                return;
        }
        if ((size_t)n < sizeof(small)) {
                obj_buf_put(b, small, (size_t)n);
                return;
        }
        va_start(ap, fmt);
        n = vasprintf(&big, fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->err = -ENOMEM;
                return;
        }
        obj_buf_put(b, big, (size_t)n);
        free(big);
}

/* --- uris --- */

static bool is_bare_char(unsigned char c)
{
        return isalnum(c) || c == '_' || c == '/' || c == ':' || c == '%' || c == '+' ||
               c == '#' || c == '~';
}

bool obj_uri_is_bare(const char *s)
{
        static const char *const keywords[] = { "true", "false", "noobj", "nan", "inf", "_" };
        bool query = false;

        if (!is_bare_char((unsigned char)s[0]) || isdigit((unsigned char)s[0]) || s[0] == '+')
                return false;
        if (s[0] == '_' && s[1] == '/')
                return false;
        /* mm-ADT reads `x` before a digit as mult (`3x2`) */
        if (s[0] == 'x' && isdigit((unsigned char)s[1]))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(keywords); i++)
                if (strcmp(s, keywords[i]) == 0)
                        return false;
        for (const char *p = s; *p; p++) {
                unsigned char c = (unsigned char)*p;

                if (c == '?') {
                        if (query)
                                return false;
                        query = true;
                } else if (is_bare_char(c))
                        continue;
                else if (query && c == '&')
                        continue;
                else if (query && c == '=') {
                        /* `=>`, `===` and a final `=` would not lex back */
                        if (p[1] == '=' || p[1] == '>' || p[1] == '\0')
                                return false;
                } else
                        return false;
        }
        return true;
}

/* Bracketed form: `>` would end the brackets early, and `<=` `<-` `<<` lex as mm-ADT
 * operators, so those go percent-encoded (they can only stand in a path segment there). */
static void put_bracketed(const char *s, obj_buf *b)
{
        obj_buf_putc(b, '<');
        if (*s == '=' || *s == '-' || *s == '<') {
                obj_buf_printf(b, "%%%02X", (unsigned char)*s);
                s++;
        }
        for (; *s; s++) {
                if (*s == '>')
                        obj_buf_puts(b, "%3E");
                else
                        obj_buf_putc(b, *s);
        }
        obj_buf_putc(b, '>');
}

static void put_uri_text(const char *s, unsigned flags, obj_buf *b)
{
        if (!*s)
                obj_buf_puts(b, "<>");
        else if (!(flags & HYB_FORMAT_EXACT) || obj_uri_is_bare(s))
                obj_buf_puts(b, s);
        else
                put_bracketed(s, b);
}

void obj_format_uri(const hyb_furi *f, unsigned flags, obj_buf *b)
{
        put_uri_text(hyb_furi_get_str(f), flags, b);
}

/* Built-in types print without /type/ (the parser puts it back on bare names). */
static void format_type(const hyb_furi *t, unsigned flags, obj_buf *b)
{
        const char *s = hyb_furi_get_str(t);

        if (strncmp(s, "/type/", 6) == 0 && s[6] && s[6] != '~' && s[6] != '?')
                put_uri_text(s + 6, flags, b);
        else
                put_uri_text(s, flags, b);
}

/* --- reals --- */

/* Puts r in tmp as "%.<p-1>e" for the fewest significant digits p (1..17) that strtod reads
 * back as r, and returns p: the same p as trying "%.<p>g" for p = 1, 2, ... 17, in at most three
 * printfs instead of up to seventeen.  A decimal of at most DBL_DIG (15) significant digits
 * comes back unchanged from decimal -> double -> decimal, so when a normal r has a form of
 * p <= 15 digits, "%.14e" shows those p digits followed by zeros: stripping the zeros gives
 * it.  When "%.14e" does not read back, p is 16 or 17.  Subnormals hold fewer bits than 15
 * digits need, so they take the digit-by-digit search. */
static int shortest_e(double r, char *tmp, size_t size)
{
        char *e, *z;
        int p = 0;

        if (r != 0 && fabs(r) < DBL_MIN) {
                for (p = 1; p < 17; p++) {
                        snprintf(tmp, size, "%.*e", p - 1, r);
                        if (strtod(tmp, NULL) == r)
                                return p;
                }
                snprintf(tmp, size, "%.16e", r);
                return 17;
        }
        snprintf(tmp, size, "%.14e", r);
        if (strtod(tmp, NULL) != r) {
                snprintf(tmp, size, "%.15e", r);
                if (strtod(tmp, NULL) == r)
                        return 16;
                snprintf(tmp, size, "%.16e", r);
                return 17;
        }
        e = strchr(tmp, 'e');
        for (z = e; z[-1] == '0'; z--)
                ;
        if (z[-1] == '.')
                z--;
        memmove(z, e, strlen(e) + 1);
        for (z = tmp; *z != 'e'; z++)
                p += isdigit((unsigned char)*z) ? 1 : 0;
        return p;
}

static bool put_nonfinite(double r, obj_buf *b)
{
        if (isnan(r))
                obj_buf_puts(b, "nan");
        else if (isinf(r))
                obj_buf_puts(b, r < 0 ? "-inf" : "inf");
        else
                return false;
        return true;
}

/* The exact form of a real that is a short decimal with few binary fraction digits (an
 * integer, 20.125, 0.5, -3.75: what sensors and counters hold), with integer arithmetic alone:
 * r = m / 2^k (k <= 8) = m * 5^k / 10^k exactly, and when that decimal has at most 15 digits
 * it is r's shortest round-trip form (see shortest_e).  Prints what obj_format_real_exact's
 * general path prints for it (positional: 1e-3 <= |r| < 1e15 keeps the exponent in
 * [-4, 16)), into out (at least 40 bytes); false when r is not such a real. */
static bool format_real_short(double r, char *out)
{
        static const uint64_t pow5[] = { 1, 5, 25, 125, 625, 3125, 15625, 78125, 390625 };
        double a = fabs(r), s = a;
        uint64_t n, p10 = 1, ip, fp;
        char digits[24];
        size_t len = 0, nd = 0;
        int k = 0;

        if (!(a >= 1e-3 && a < 1e15))
                return false; /* zero, non-finite, or a form with an exponent */
        while (s != floor(s)) {
                if (++k > 8)
                        return false;
                s *= 2.0; /* a * 2^k, exact: a < 1e15 cannot overflow or lose a bit */
        }
        if (s > 1e15 / (double)pow5[k])
                return false; /* more than 15 digits: not certainly the shortest */
        n = (uint64_t)s * pow5[k];
        for (int i = 0; i < k; i++)
                p10 *= 10;
        while (k > 0 && n % 10 == 0) {
                n /= 10;
                p10 /= 10;
                k--;
        }
        ip = n / p10;
        fp = n % p10;
        if (r < 0)
                out[len++] = '-';
        do {
                digits[nd++] = (char)('0' + ip % 10);
                ip /= 10;
        } while (ip);
        while (nd)
                out[len++] = digits[--nd];
        out[len++] = '.';
        if (k == 0)
                out[len++] = '0';
        for (int i = k - 1; i >= 0; i--) {
                out[len + (size_t)i] = (char)('0' + fp % 10);
                fp /= 10;
        }
        len += (size_t)k;
        out[len] = '\0';
        return true;
}

void obj_format_real_exact(double r, obj_buf *b)
{
        char tmp[40];
        int p, x;

        if (put_nonfinite(r, b))
                return;
        if (format_real_short(r, tmp)) {
                obj_buf_puts(b, tmp);
                return;
        }
        /* Python's repr: positional for 1e-4 <= |r| < 1e16, else d.ddde+XX */
        p = shortest_e(r, tmp, sizeof(tmp));
        x = atoi(strchr(tmp, 'e') + 1);
        if (x >= -4 && x < 16)
                snprintf(tmp, sizeof(tmp), "%.*f", p - 1 - x > 0 ? p - 1 - x : 0, r);
        obj_buf_puts(b, tmp);
        if (!strpbrk(tmp, ".e"))
                obj_buf_puts(b, ".0"); /* stays a real when read back */
}

int obj_json_real_precision(const hyb_obj *o)
{
        char tmp[40];
        int p = 1;

        if (!o)
                return p;
        switch (o->kind) {
        case HYB_OBJ_REAL:
                if (!isfinite(o->u.r))
                        return 1;
                p = shortest_e(o->u.r, tmp, sizeof(tmp));
                /* jansson prints %.<p>g, which switches to an exponent once the integer part
                 * has more than p digits (1500.0 as 1.5e3, 100.0 as 1e2); the spec prints
                 * reals with a fraction (`1.0`), so ask for the integer digits too, up to 15
                 * (more could show binary noise in the other reals of the document). */
                if (fabs(o->u.r) >= 1.0 && fabs(o->u.r) < 1e15) {
                        int x = (int)floor(log10(fabs(o->u.r))) + 1;
                        if (x > p)
                                p = x;
                }
                return p;
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
                for (size_t i = 0; i < o->u.lst.n && p < 17; i++) {
                        int q = obj_json_real_precision(o->u.lst.items[i]);
                        p = q > p ? q : p;
                }
                return p;
        case HYB_OBJ_REC:
                for (size_t i = 0; i < o->u.rec.n && p < 17; i++) {
                        int q = obj_json_real_precision(o->u.rec.keys[i]);
                        int v = obj_json_real_precision(o->u.rec.values[i]);
                        p = q > p ? q : p;
                        p = v > p ? v : p;
                }
                return p;
        default:
                return p;
        }
}

/* --- strs --- */

static void format_str(const char *s, size_t len, obj_buf *b)
{
        obj_buf_putc(b, '\'');
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                switch (c) {
                case '\'':
                        obj_buf_puts(b, "\\'");
                        break;
                case '\\':
                        obj_buf_puts(b, "\\\\");
                        break;
                case '\n':
                        obj_buf_puts(b, "\\n");
                        break;
                case '\t':
                        obj_buf_puts(b, "\\t");
                        break;
                case '\r':
                        obj_buf_puts(b, "\\r");
                        break;
                default:
                        if (c < 0x20 || c == 0x7f)
                                obj_buf_printf(b, "\\x%02X", c);
                        else
                                obj_buf_putc(b, (char)c);
                }
        }
        obj_buf_putc(b, '\'');
}

/* --- objs --- */

static void format_value(const hyb_obj *o, unsigned flags, obj_buf *b)
{
        switch (o->kind) {
        case HYB_OBJ_NOOBJ:
                obj_buf_puts(b, "noobj");
                break;
        case HYB_OBJ_BOOL:
                obj_buf_puts(b, o->u.b ? "true" : "false");
                break;
        case HYB_OBJ_INT:
                obj_buf_printf(b, "%" PRId64, o->u.i);
                break;
        case HYB_OBJ_REAL:
                if (flags & HYB_FORMAT_EXACT)
                        obj_format_real_exact(o->u.r, b);
                else if (!put_nonfinite(o->u.r, b))
                        obj_buf_printf(b, "%.6f", o->u.r);
                break;
        case HYB_OBJ_STR:
                format_str(o->u.str.bytes, o->u.str.len, b);
                break;
        case HYB_OBJ_URI:
                obj_format_uri(o->u.uri, flags, b);
                break;
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
                obj_buf_putc(b, o->kind == HYB_OBJ_LST ? '[' : '{');
                for (size_t i = 0; i < o->u.lst.n; i++) {
                        if (i)
                                obj_buf_putc(b, ',');
                        obj_format_to(o->u.lst.items[i], flags, b);
                }
                obj_buf_putc(b, o->kind == HYB_OBJ_LST ? ']' : '}');
                break;
        case HYB_OBJ_REC:
                obj_buf_putc(b, '[');
                if (o->u.rec.n == 0)
                        obj_buf_puts(b, "=>");
                for (size_t i = 0; i < o->u.rec.n; i++) {
                        if (i)
                                obj_buf_putc(b, ',');
                        obj_format_to(o->u.rec.keys[i], flags, b);
                        obj_buf_puts(b, "=>");
                        obj_format_to(o->u.rec.values[i], flags, b);
                }
                obj_buf_putc(b, ']');
                break;
        case HYB_OBJ_CODE:
                if (o->u.code.ops && o->u.code.ops->format) {
                        /* EXACT: `|(source)`, which hyb_obj_parse reads back (obj-code.c) */
                        bool wrap = (flags & HYB_FORMAT_EXACT) && !(flags & OBJ_FORMAT_IN_CODE);
                        int r;
                        if (wrap)
                                obj_buf_puts(b, "|(");
                        r = o->u.code.ops->format(o, flags | OBJ_FORMAT_IN_CODE, b);
                        if (r < 0 && !b->err)
                                b->err = r;
                        if (wrap)
                                obj_buf_putc(b, ')');
                } else
                        obj_buf_puts(b, "<code>");
                break;
        default:
                b->err = -EINVAL;
        }
}

void obj_format_to(const hyb_obj *o, unsigned flags, obj_buf *b)
{
        if (!o) {
                obj_buf_puts(b, "noobj");
                return;
        }
        if (o->type_id && !(flags & HYB_FORMAT_EXACT) && o->kind == HYB_OBJ_STR &&
            strcmp(hyb_furi_get_str(o->type_id), "/type/secret") == 0) {
                /* A secret prints as **** (doc/obj.md "Secrets"); only the exact form (storage,
                 * round trips) and JSON carry the value. */
                obj_buf_puts(b, "****");
                return;
        }
        if (o->type_id) {
                format_type(o->type_id, flags, b);
                obj_buf_putc(b, '[');
                format_value(o, flags, b);
                obj_buf_putc(b, ']');
        } else
                format_value(o, flags, b);
        if (o->value_id) {
                obj_buf_putc(b, '@');
                obj_format_uri(o->value_id, flags, b);
        }
}

HYB_EXPORT int hyb_obj_format(const hyb_obj *o, unsigned flags, char **ret)
{
        obj_buf b = { 0 };

        hyb_assert_return(ret, -EINVAL);
        hyb_assert_return((flags & ~HYB_FORMAT_EXACT) == 0, -EINVAL);
        obj_format_to(o, flags, &b);
        if (!b.err && !b.data)
                obj_buf_put(&b, "", 0);
        if (b.err) {
                free(b.data);
                return b.err;
        }
        *ret = b.data;
        return 0;
}
