/* SPDX-License-Identifier: MIT */
/*
 * fURI parsing and canonical formatting (doc/furi.md "Syntax").
 *
 * One pass over the text validates it and decodes every segment into a work
 * buffer (on the stack for ordinary sizes); a second, cheap pass sizes and
 * fills the one allocation that becomes the immutable hyb_furi, canonical
 * text included, so hyb_furi_get_str() never formats anything.
 */
#include <stdarg.h>
#include <stdio.h>

#include "common/util.h"
#include "common/sized.h"
#include "furi-internal.h"

#define STACK_SEGS 64
#define STACK_TEXT 1024

typedef struct pseg {
        const char *p;  /* decoded bytes (work buffer or a static "+", "#", "..") */
        uint32_t len;
        uint8_t kind;
        bool dotdot;    /* a kept leading `..` of a relative fURI */
        uint32_t woff;  /* work buffer length before this segment, to undo a pop */
        uint32_t src;   /* byte offset of the segment in the input */
} pseg;

typedef struct pstate {
        const char *text;
        hyb_error *reterr;
        char *work;
        size_t wlen;
        pseg *segs;
        size_t n_segs;
        size_t cap_segs;
        const char *scheme;
        size_t scheme_len;
        const char *user;  /* decoded, in work */
        size_t user_len;
        const char *host;  /* raw text (lower-cased when copied) */
        size_t host_len;
        long port;
        bool authority;
        bool absolute;
        bool branch;
        const char *query;
        size_t query_len;
} pstate;

static int perr(pstate *ps, int code, size_t off, const char *fmt, ...) _printf_(4, 5);
static int perr(pstate *ps, int code, size_t off, const char *fmt, ...)
{
        char what[200];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        return err_set_at(ps->reterr, code, (long)off, 1, (int)off + 1, "%s at offset %zu", what,
                          off);
}

static inline bool is_alpha(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_digit(unsigned char c)
{
        return c >= '0' && c <= '9';
}

static inline char lower(char c)
{
        return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool furi_seg_byte_needs_escape(unsigned char c)
{
        return c <= 0x20 || c >= 0x7f || c == '%' || c == '+' || c == '#' || c == '?' || c == '/';
}

/* RFC 3986 userinfo: unreserved, sub-delims and ':' stand raw, the rest is %XX. */
static bool user_byte_raw(unsigned char c)
{
        return is_alpha(c) || is_digit(c) || (c && strchr("-._~!$&'()*+,;=:", c));
}

static bool host_byte_ok(unsigned char c)
{
        return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static const char *show(unsigned char c, char buf[8])
{
        if (c > 0x20 && c < 0x7f)
                snprintf(buf, 8, "'%c'", c);
        else
                snprintf(buf, 8, "0x%02X", c);
        return buf;
}

/* Decodes the %XX at text[i] (within text[..end)); < 0 if it is not one. */
static int pct(const char *text, size_t i, size_t end)
{
        int hi, lo;

        if (i + 2 >= end)
                return -1;
        hi = hex_digit((unsigned char)text[i + 1]);
        lo = hex_digit((unsigned char)text[i + 2]);
        if (hi < 0 || lo < 0)
                return -1;
        return hi << 4 | lo;
}

static int parse_user(pstate *ps, size_t a, size_t u)
{
        const char *t = ps->text;
        char *o = ps->work + ps->wlen;
        char cb[8];

        if (u == a)
                return perr(ps, HYB_E_PARSE, a, "empty user");
        ps->user = o;
        for (size_t i = a; i < u; i++) {
                unsigned char c = (unsigned char)t[i];
                if (c == '%') {
                        int v = pct(t, i, u);
                        if (v < 0)
                                return perr(ps, HYB_E_PARSE, i, "'%%' not followed by two hex digits");
                        if (v < 0x20 || v == 0x7f)
                                return perr(ps, HYB_E_PARSE, i, "percent-encoded control character %%%02X", v);
                        *o++ = (char)v;
                        i += 2;
                } else if (user_byte_raw(c)) {
                        *o++ = (char)c;
                } else {
                        return perr(ps, HYB_E_PARSE, i, "invalid character %s in user", show(c, cb));
                }
        }
        ps->user_len = (size_t)(o - ps->user);
        ps->wlen += ps->user_len;
        return 0;
}

/* `//[user@]host[:port]` starting at text[a] (after the `//`) up to aend. */
static int parse_authority(pstate *ps, size_t a, size_t aend)
{
        const char *t = ps->text;
        size_t h = a, hend, u;
        char cb[8];
        int r;

        for (u = a; u < aend && t[u] != '@'; u++)
                ;
        if (u < aend) {
                r = parse_user(ps, a, u);
                if (r < 0)
                        return r;
                h = u + 1;
        }
        if (h == aend || t[h] == ':')
                return perr(ps, HYB_E_PARSE, h, "empty host");
        if (t[h] == '[') {
                for (hend = h + 1; hend < aend && t[hend] != ']'; hend++) {
                        unsigned char c = (unsigned char)t[hend];
                        if (hex_digit(c) < 0 && c != ':' && c != '.')
                                return perr(ps, HYB_E_PARSE, hend,
                                            "invalid character %s in IP literal", show(c, cb));
                }
                if (hend == aend)
                        return perr(ps, HYB_E_PARSE, h, "unterminated IP literal");
                if (hend == h + 1)
                        return perr(ps, HYB_E_PARSE, h, "empty IP literal");
                hend++;
        } else if (t[h] == '+' && (h + 1 == aend || t[h + 1] == ':')) {
                hend = h + 1;
        } else {
                for (hend = h; hend < aend && t[hend] != ':'; hend++)
                        if (!host_byte_ok((unsigned char)t[hend]))
                                return perr(ps, HYB_E_PARSE, hend, "invalid character %s in host",
                                            show((unsigned char)t[hend], cb));
        }
        ps->host = t + h;
        ps->host_len = hend - h;
        ps->port = -1;
        if (hend < aend) {
                long port = 0;
                if (t[hend] != ':')
                        return perr(ps, HYB_E_PARSE, hend, "invalid character %s after host",
                                    show((unsigned char)t[hend], cb));
                if (hend + 1 == aend)
                        return perr(ps, HYB_E_PARSE, hend + 1, "empty port");
                for (size_t i = hend + 1; i < aend; i++) {
                        if (!is_digit((unsigned char)t[i]))
                                return perr(ps, HYB_E_PARSE, i, "invalid character %s in port",
                                            show((unsigned char)t[i], cb));
                        port = port * 10 + (t[i] - '0');
                        if (port > 65535)
                                return perr(ps, HYB_E_PARSE, hend + 1, "port out of range (0-65535)");
                }
                ps->port = port;
        }
        ps->authority = true;
        ps->absolute = true;
        return 0;
}

static int push(pstate *ps, const hyb_furi_limits *lim, pseg s)
{
        if (ps->n_segs >= lim->max_segments || ps->n_segs >= ps->cap_segs)
                return perr(ps, HYB_E_LIMIT, s.src, "more than %zu segments", lim->max_segments);
        ps->segs[ps->n_segs++] = s;
        return 0;
}

/* One segment text[s..e); last: nothing but an optional trailing `/` follows. */
static int parse_segment(pstate *ps, const hyb_furi_limits *lim, size_t s, size_t e, bool last,
                         bool *dot_branch)
{
        const char *t = ps->text;
        size_t n = e - s;
        pseg seg = { .woff = (uint32_t)ps->wlen, .src = (uint32_t)s };
        char *o;

        *dot_branch = false;
        if (n == 1 && t[s] == '.') {
                *dot_branch = last;
                return 0;
        }
        if (n == 2 && t[s] == '.' && t[s + 1] == '.') {
                if (ps->n_segs > 0 && !ps->segs[ps->n_segs - 1].dotdot) {
                        ps->n_segs--;
                        ps->wlen = ps->segs[ps->n_segs].woff;
                        *dot_branch = last;
                        return 0;
                }
                if (ps->absolute)
                        return perr(ps, HYB_E_PARSE, s, "'..' climbs above the root");
                seg.p = "..";
                seg.len = 2;
                seg.dotdot = true;
                return push(ps, lim, seg);
        }
        if (n == 1 && (t[s] == '+' || t[s] == '#')) {
                if (t[s] == '#' && !last)
                        return perr(ps, HYB_E_PARSE, s, "'#' must be the last segment");
                seg.p = t[s] == '+' ? "+" : "#";
                seg.len = 1;
                seg.kind = t[s] == '+' ? HYB_SEG_PLUS : HYB_SEG_HASH;
                return push(ps, lim, seg);
        }
        o = ps->work + ps->wlen;
        seg.p = o;
        for (size_t i = s; i < e; i++) {
                unsigned char c = (unsigned char)t[i];
                if (c == '%') {
                        int v = pct(t, i, e);
                        if (v < 0)
                                return perr(ps, HYB_E_PARSE, i, "'%%' not followed by two hex digits");
                        if (v < 0x20 || v == 0x7f)
                                return perr(ps, HYB_E_PARSE, i,
                                            "percent-encoded control character %%%02X", v);
                        *o++ = (char)v;
                        i += 2;
                } else if (c == '+' || c == '#') {
                        return perr(ps, HYB_E_PARSE, i,
                                    "'%c' inside a segment (a wildcard must be a whole segment)", c);
                } else {
                        *o++ = (char)c;
                }
        }
        seg.len = (uint32_t)(o - seg.p);
        if (seg.len > lim->max_segment)
                return perr(ps, HYB_E_LIMIT, s, "segment of %u bytes is longer than the limit of %zu",
                            seg.len, lim->max_segment);
        if ((seg.len == 1 && seg.p[0] == '.') || (seg.len == 2 && seg.p[0] == '.' && seg.p[1] == '.'))
                return perr(ps, HYB_E_PARSE, s, "segment decodes to '%.*s'", (int)seg.len, seg.p);
        ps->wlen += seg.len;
        return push(ps, lim, seg);
}

static int parse_path(pstate *ps, const hyb_furi_limits *lim, size_t pos, size_t end)
{
        const char *t = ps->text;
        bool dot_branch = false;
        int r;

        if (pos < end && t[pos] == '/') {
                ps->absolute = true;
                pos++;
        }
        if (pos == end)
                return 0;
        for (size_t s = pos;;) {
                size_t e = s;
                while (e < end && t[e] != '/')
                        e++;
                if (e == s) {
                        if (s == end) {         /* the trailing `/` of a branch */
                                ps->branch = true;
                                break;
                        }
                        return perr(ps, HYB_E_PARSE, s, "empty segment");
                }
                r = parse_segment(ps, lim, s, e, e == end || e + 1 == end, &dot_branch);
                if (r < 0)
                        return r;
                if (e == end)
                        break;
                s = e + 1;
        }
        if (dot_branch)
                ps->branch = true;
        if (ps->n_segs == 0)
                ps->branch = false;
        return 0;
}

static size_t seg_encoded_len(const char *s, size_t n, uint8_t kind)
{
        size_t l = n;

        if (kind != HYB_SEG_LITERAL)
                return 1;
        for (size_t i = 0; i < n; i++)
                if (furi_seg_byte_needs_escape((unsigned char)s[i]))
                        l += 2;
        return l;
}

static char *put_pct(char *o, unsigned char c)
{
        static const char hex[] = "0123456789ABCDEF";

        *o++ = '%';
        *o++ = hex[c >> 4];
        *o++ = hex[c & 15];
        return o;
}

static char *seg_encode(char *o, const char *s, size_t n, uint8_t kind)
{
        if (kind != HYB_SEG_LITERAL) {
                *o++ = kind == HYB_SEG_PLUS ? '+' : '#';
                return o;
        }
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (furi_seg_byte_needs_escape(c))
                        o = put_pct(o, c);
                else
                        *o++ = (char)c;
        }
        return o;
}

static size_t authority_len(const pstate *ps)
{
        size_t l = 0;

        if (!ps->authority)
                return 0;
        if (ps->scheme)
                l += ps->scheme_len + 1;
        l += 2;
        if (ps->user) {
                l += ps->user_len + 1;
                for (size_t i = 0; i < ps->user_len; i++)
                        if (!user_byte_raw((unsigned char)ps->user[i]))
                                l += 2;
        }
        l += ps->host_len;
        if (ps->port >= 0)
                l += (size_t)snprintf(NULL, 0, ":%ld", ps->port);
        return l;
}

static char *put_lower(char *o, const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                *o++ = lower(s[i]);
        return o;
}

static char *put_str(char *o, const char *s, size_t n, bool lower_case, const char **where)
{
        *where = o;
        if (lower_case)
                o = put_lower(o, s, n);
        else
                memcpy(o, s, n), o += n;
        *o++ = '\0';
        return o;
}

/* Sizes and fills the one allocation from the parse state. */
static int build(pstate *ps, const hyb_furi_limits *lim, hyb_furi **ret)
{
        size_t n = ps->n_segs, alen = authority_len(ps), plen = alen, slen, size, running;
        hyb_furi *f;
        char *data, *o;

        if (!ps->authority && ps->absolute && n == 0)
                plen++;
        running = plen;
        for (size_t i = 0; i < n; i++) {
                running += (i > 0 || ps->absolute) + seg_encoded_len(ps->segs[i].p, ps->segs[i].len,
                                                                    ps->segs[i].kind);
                if (running > lim->max_length)
                        return perr(ps, HYB_E_LIMIT, ps->segs[i].src,
                                    "canonical form is longer than the limit of %zu bytes",
                                    lim->max_length);
        }
        plen = running + ps->branch;
        slen = plen + (ps->query ? 1 + ps->query_len : 0);
        if (slen > lim->max_length)
                return perr(ps, HYB_E_LIMIT, (size_t)(ps->query ? ps->query - ps->text - 1 : 0),
                            "canonical form is longer than the limit of %zu bytes", lim->max_length);

        size = sizeof(hyb_furi) + n * sizeof(furi_seg) + slen + 1;
        if (ps->query)
                size += plen + 1;
        if (ps->authority)
                size += (ps->scheme ? ps->scheme_len + 1 : 0) + (ps->user ? ps->user_len + 1 : 0) +
                        ps->host_len + 1;
        for (size_t i = 0; i < n; i++)
                size += ps->segs[i].len + 1;
        f = malloc(size);
        if (!f)
                return -ENOMEM;
        atomic_init(&f->n_ref, 1);
        f->absolute = ps->absolute;
        f->branch = ps->branch;
        f->n_segs = (uint32_t)n;
        f->port = (int32_t)ps->port;
        f->path_len = (uint32_t)plen;
        f->scheme = f->user = f->host = f->query = NULL;
        f->pattern = false;
        f->has_hash = n > 0 && ps->segs[n - 1].kind == HYB_SEG_HASH;
        data = (char *)&f->segs[n];

        /* The canonical text. */
        o = data;
        f->str = o;
        if (ps->authority) {
                if (ps->scheme) {
                        o = put_lower(o, ps->scheme, ps->scheme_len);
                        *o++ = ':';
                }
                *o++ = '/';
                *o++ = '/';
                if (ps->user) {
                        for (size_t i = 0; i < ps->user_len; i++) {
                                unsigned char c = (unsigned char)ps->user[i];
                                if (user_byte_raw(c))
                                        *o++ = (char)c;
                                else
                                        o = put_pct(o, c);
                        }
                        *o++ = '@';
                }
                o = put_lower(o, ps->host, ps->host_len);
                if (ps->port >= 0)
                        o += sprintf(o, ":%ld", ps->port);
        } else if (ps->absolute && n == 0) {
                *o++ = '/';
        }
        for (size_t i = 0; i < n; i++) {
                if (i > 0 || ps->absolute)
                        *o++ = '/';
                o = seg_encode(o, ps->segs[i].p, ps->segs[i].len, ps->segs[i].kind);
        }
        if (ps->branch)
                *o++ = '/';
        if (ps->query) {
                *o++ = '?';
                memcpy(o, ps->query, ps->query_len);
                f->query = o;
                o += ps->query_len;
        }
        *o++ = '\0';
        if (ps->query) {
                f->path = o;
                memcpy(o, data, plen);
                o += plen;
                *o++ = '\0';
        } else {
                f->path = f->str;
        }
        if (ps->authority) {
                if (ps->scheme)
                        o = put_str(o, ps->scheme, ps->scheme_len, true, &f->scheme);
                if (ps->user)
                        o = put_str(o, ps->user, ps->user_len, false, &f->user);
                o = put_str(o, ps->host, ps->host_len, true, &f->host);
                f->pattern = strcmp(f->host, "+") == 0 || (f->scheme && strcmp(f->scheme, "+") == 0);
        }
        for (size_t i = 0; i < n; i++) {
                f->segs[i].off = (uint32_t)(o - data);
                f->segs[i].len = ps->segs[i].len;
                f->segs[i].kind = ps->segs[i].kind;
                if (ps->segs[i].kind != HYB_SEG_LITERAL)
                        f->pattern = true;
                memcpy(o, ps->segs[i].p, ps->segs[i].len);
                o += ps->segs[i].len;
                *o++ = '\0';
        }
        if (f->host)
                f->scope = strchr(f->host, '.') || f->host[0] == '[' ? HYB_SCOPE_GLOBAL
                                                                      : HYB_SCOPE_CLUSTER;
        else if (f->absolute)
                f->scope = HYB_SCOPE_HOST;
        else if (n > 0 && f->segs[0].kind == HYB_SEG_LITERAL && f->segs[0].len == 1 &&
                 furi_seg_data(f, 0)[0] == '~')
                f->scope = HYB_SCOPE_HOME;
        else
                f->scope = HYB_SCOPE_PROGRAM;
        f->hash = furi_hash_bytes(f->path, plen);
        *ret = f;
        return 0;
}

/* `[a-zA-Z][a-zA-Z0-9+.-]*` or `+`, then `://`: only then is it a scheme, so `a:b` and
 * `/sys/x::spawn` stay path text and nothing that parses as a path is ever re-read as one. */
static size_t scheme_end(const char *t, size_t end)
{
        size_t i = 0;

        if (end > 0 && t[0] == '+')
                i = 1;
        else if (end > 0 && is_alpha((unsigned char)t[0]))
                for (i = 1; i < end && (is_alpha((unsigned char)t[i]) || is_digit((unsigned char)t[i]) ||
                                        t[i] == '+' || t[i] == '.' || t[i] == '-');
                     i++)
                        ;
        if (i > 0 && i + 2 < end && t[i] == ':' && t[i + 1] == '/' && t[i + 2] == '/')
                return i;
        return 0;
}

static const hyb_furi_limits limits_default = { .size = sizeof(hyb_furi_limits),
                                                .max_length = HYB_FURI_MAX_LENGTH,
                                                .max_segments = HYB_FURI_MAX_SEGMENTS,
                                                .max_segment = HYB_FURI_MAX_SEGMENT };

HYB_EXPORT void hyb_furi_limits_init_sized(hyb_furi_limits *limits, size_t size)
{
        sized_init(limits, size, &limits_default, sizeof(limits_default));
}

/* The symbol of programs built before _init_sized (the header's macro hides the name). */
HYB_EXPORT void (hyb_furi_limits_init)(hyb_furi_limits *limits)
{
        hyb_furi_limits_init_sized(limits, sizeof(*limits));
}

/* The caller's limits over the defaults: a member left 0 (or beyond an older caller's size)
 * keeps its default. */
static void resolve_limits(const hyb_furi_limits *limits, hyb_furi_limits *lim)
{
        *lim = limits_default; /* hyb_furi_limits_init's, without its call: every parse */
        if (limits) {
                hyb_furi_limits given = { 0 };
                size_t sz = limits->size && limits->size < sizeof(given) ? limits->size : sizeof(given);

                memcpy(&given, limits, sz); /* members beyond an older caller's size stay 0 */
                if (given.max_length)
                        lim->max_length = given.max_length;
                if (given.max_segments)
                        lim->max_segments = given.max_segments;
                if (given.max_segment)
                        lim->max_segment = given.max_segment;
        }
}

/* What a byte is to the fast path: 0 stands for itself in a segment and in the canonical
 * text (printable ASCII but the bytes a segment escapes or the parser reads as syntax:
 * % + # ? and space), 1 the `/` between segments, 2 anything else (the full grammar's). */
static const uint8_t fast_class[256] = {
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 0, 0, 2, 0, 2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* The most segments the fast path takes (more: the full grammar, with a custom limit). */
#define FAST_SEGS 64

/* The common case (doc/furi.md "Syntax" with none of its options): an absolute or relative
 * fURI of plain segments, optionally a branch.  Then the canonical text is the input itself
 * and the decoded segments are its pieces between the slashes, so one pass over the text
 * checks it, finds the slashes and hashes it, and two copies fill the one allocation.  An
 * empty segment also rules out a scheme and an authority (both need `//`).  The layout,
 * fields and hash are exactly those build() gives. */
int furi_parse_fast(const char *text, size_t len, const hyb_furi_limits *lim, hyb_furi **ret)
{
        uint32_t cut[FAST_SEGS]; /* offsets of the `/` after each segment but the last */
        size_t start, end, n = 0, s, size, k;
        uint64_t h = FURI_HASH_INIT;
        bool absolute, branch = false;
        hyb_furi *f;
        char *data, *o;

        if (len > lim->max_length)
                return 0;
        absolute = len > 0 && text[0] == '/';
        start = absolute;
        if (absolute)
                h = furi_hash_step(h, '/');
        for (size_t i = s = start; i < len; i++) {
                unsigned char c = (unsigned char)text[i];
                size_t sl;

                h = furi_hash_step(h, c);
                if (_likely_(fast_class[c] == 0))
                        continue;
                if (fast_class[c] != 1 || n == FAST_SEGS)
                        return 0;
                sl = i - s;
                if (sl == 0 || sl > lim->max_segment ||
                    (text[s] == '.' && (sl == 1 || (sl == 2 && text[s + 1] == '.'))))
                        return 0;
                cut[n++] = (uint32_t)i;
                s = i + 1;
        }
        end = len;
        if (s < len) {
                size_t sl = len - s;

                if (sl > lim->max_segment ||
                    (text[s] == '.' && (sl == 1 || (sl == 2 && text[s + 1] == '.'))))
                        return 0;
                n++;
        } else if (n > 0) {
                branch = true;  /* the last `/` ends the text: not a segment's end */
                end = len - 1;
        }
        if (n > lim->max_segments)
                return 0;

        size = sizeof(hyb_furi) + n * sizeof(furi_seg) + len + 1 + (n ? end - start + 1 : 0);
        f = malloc(size);
        if (!f)
                return -ENOMEM;
        atomic_init(&f->n_ref, 1);
        f->absolute = absolute;
        f->branch = branch;
        f->pattern = false;
        f->has_hash = false;
        f->n_segs = (uint32_t)n;
        f->port = -1;
        f->path_len = (uint32_t)len;
        f->scheme = f->user = f->host = f->query = NULL;
        data = (char *)&f->segs[n];
        memcpy(data, text, len);
        data[len] = '\0';
        f->str = f->path = data;
        if (n > 0) {
                /* text[i]'s copy in the segment area is at data offset base + i */
                uint32_t base = (uint32_t)(len + 1 - start);

                o = data + len + 1;
                memcpy(o, text + start, end - start);
                o[end - start] = '\0';
                s = start;
                for (k = 0; k + 1 < n; k++) {
                        o[cut[k] - start] = '\0';
                        f->segs[k] = (furi_seg){ .off = base + (uint32_t)s,
                                                 .len = cut[k] - (uint32_t)s,
                                                 .kind = HYB_SEG_LITERAL };
                        s = cut[k] + 1;
                }
                f->segs[k] = (furi_seg){ .off = base + (uint32_t)s, .len = (uint32_t)(end - s),
                                         .kind = HYB_SEG_LITERAL };
        }
        if (absolute)
                f->scope = HYB_SCOPE_HOST;
        else if (n > 0 && f->segs[0].len == 1 && furi_seg_data(f, 0)[0] == '~')
                f->scope = HYB_SCOPE_HOME;
        else
                f->scope = HYB_SCOPE_PROGRAM;
        f->hash = furi_hash_final(h);
        *ret = f;
        return 1;
}

/* The whole grammar, once the length is known to be within the limits. */
static int parse_grammar(const char *text, size_t len, const hyb_furi_limits *lim,
                         hyb_furi **ret, hyb_error *reterr)
{
        char work_stack[STACK_TEXT];
        pseg segs_stack[STACK_SEGS];
        _cleanup_free_ char *work_heap = NULL;
        _cleanup_free_ pseg *segs_heap = NULL;
        pstate ps = { .text = text, .reterr = reterr, .port = -1 };
        size_t qpos, pos = 0, k;
        int r;

        qpos = len;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)text[i];
                if (_unlikely_(c < 0x20 || c == 0x7f))
                        return perr(&ps, HYB_E_PARSE, i, "control character 0x%02X", c);
                if (c == '?' && qpos == len)
                        qpos = i;
        }
        if (qpos < len) {
                ps.query = text + qpos + 1;
                ps.query_len = len - qpos - 1;
        }

        /* Decoded bytes never outnumber the text; segments never exceed (len + 1) / 2. */
        ps.work = work_stack;
        if (len > sizeof(work_stack)) {
                ps.work = work_heap = malloc(len);
                if (!ps.work)
                        return -ENOMEM;
        }
        ps.cap_segs = lim->max_segments < len / 2 + 1 ? lim->max_segments + 1 : len / 2 + 1;
        ps.segs = segs_stack;
        if (ps.cap_segs > STACK_SEGS) {
                ps.segs = segs_heap = mallocarray(ps.cap_segs, sizeof(pseg));
                if (!ps.segs)
                        return -ENOMEM;
        }

        k = scheme_end(text, qpos);
        if (k > 0) {
                ps.scheme = text;
                ps.scheme_len = k;
                pos = k + 1;
        }
        if (pos + 1 < qpos && text[pos] == '/' && text[pos + 1] == '/') {
                size_t aend = pos + 2;
                while (aend < qpos && text[aend] != '/')
                        aend++;
                r = parse_authority(&ps, pos + 2, aend);
                if (r < 0)
                        return r;
                pos = aend;
        }
        r = parse_path(&ps, lim, pos, qpos);
        if (r < 0)
                return r;
        return build(&ps, lim, ret);
}

/* fast: try furi_parse_fast() before the whole grammar. */
static int parse(const char *text, size_t len, const hyb_furi_limits *limits, hyb_furi **ret,
                 hyb_error *reterr, bool fast)
{
        hyb_furi_limits lim;
        int r;

        hyb_assert_return(ret, -EINVAL);
        hyb_assert_return(text || len == 0 || len == (size_t)-1, -EINVAL);
        if (!text)
                text = "";
        if (len == (size_t)-1)
                len = strlen(text);
        resolve_limits(limits, &lim);
        if (len > lim.max_length || len > UINT32_MAX / 2) {
                pstate ps = { .text = text, .reterr = reterr };

                if (len > lim.max_length)
                        return perr(&ps, HYB_E_LIMIT, lim.max_length,
                                    "fURI of %zu bytes is longer than the limit of %zu bytes", len,
                                    lim.max_length);
                return perr(&ps, HYB_E_LIMIT, 0, "fURI of %zu bytes is too long", len);
        }
        if (fast) {
                r = furi_parse_fast(text, len, &lim, ret);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        return parse_grammar(text, len, &lim, ret, reterr);
}

int furi_parse_full(const char *text, size_t len, const hyb_furi_limits *limits, hyb_furi **ret,
                    hyb_error *reterr)
{
        return parse(text, len, limits, ret, reterr, false);
}

HYB_EXPORT int hyb_furi_parse(const char *text, size_t len, const hyb_furi_limits *limits,
                              hyb_furi **ret, hyb_error *reterr)
{
        return parse(text, len, limits, ret, reterr, true);
}
