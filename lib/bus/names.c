/* SPDX-License-Identifier: MIT */
/*
 * Bus names (doc/bus.md).
 *
 *   @ host / app / runner [ / name ]
 *   |  |      |     |          `- method or bubble: [A-Za-z_][A-Za-z0-9_]*, <= 63
 *   |  |      |     `- runner: same identifier rule, <= 63
 *   |  |      `- app: identifiers joined by single dots, <= 127 ("org.example.lights")
 *   |  `- host: DNS labels of [A-Za-z0-9-], none starting or ending with '-', <= 127
 *   `- every name starts with '@'
 *
 * The checks work on (pointer, length) views so the broker can validate the
 * parts of a frame header in place.  Every refusal is HYB_E_NOT_ACCEPTABLE (406)
 * with the byte offset of the first offending byte (for a length error: the
 * first byte past the limit; for an empty part: where it should have started).
 * Comparison and hashing fold ASCII case only: names are ASCII by rule, and a
 * locale-dependent tolower() would make two brokers disagree.
 */
#include <stdio.h>

#include "bus/names.h"

#include "common/util.h"

/* RFC 1035: a DNS label is at most 63 bytes; the spec says "a DNS name". */
#define DNS_LABEL_MAX 63

static inline bool is_alpha(char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static inline bool is_ident_first(char c)
{
        return is_alpha(c) || c == '_';
}

static inline bool is_ident_char(char c)
{
        return is_alpha(c) || is_digit(c) || c == '_';
}

static inline unsigned char fold(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* A printable rendering of byte c for messages (names are ASCII; anything else shows as hex). */
static const char *show_byte(char c, char buf[8])
{
        unsigned char u = (unsigned char)c;

        if (u > 0x20 && u < 0x7f)
                snprintf(buf, 8, "'%c'", c);
        else
                snprintf(buf, 8, "0x%02x", u);
        return buf;
}

/* The three checks take base: the offset of s inside a longer name, so errors point into it. */
static int check_host_at(const char *s, size_t len, size_t base, hyb_error *reterr)
{
        size_t label_start = 0;
        char b[8];

        if (len == 0)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)base, "host: empty");
        if (len > BUS_HOST_MAX)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + BUS_HOST_MAX),
                               "host: longer than %d bytes", BUS_HOST_MAX);

        for (size_t i = 0; i <= len; i++) {
                char c = i < len ? s[i] : '.';

                if (c == '.') {
                        size_t n = i - label_start;

                        if (n == 0)
                                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + i),
                                               "host: empty label at offset %zu", base + i);
                        if (n > DNS_LABEL_MAX)
                                return err_set(reterr, HYB_E_NOT_ACCEPTABLE,
                                               (long)(base + label_start + DNS_LABEL_MAX),
                                               "host: label longer than %d bytes",
                                               DNS_LABEL_MAX);
                        if (s[label_start] == '-')
                                return err_set(reterr, HYB_E_NOT_ACCEPTABLE,
                                               (long)(base + label_start),
                                               "host: label starts with '-' at offset %zu",
                                               base + label_start);
                        if (s[i - 1] == '-')
                                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + i - 1),
                                               "host: label ends with '-' at offset %zu",
                                               base + i - 1);
                        label_start = i + 1;
                        continue;
                }
                if (!is_alpha(c) && !is_digit(c) && c != '-')
                        return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + i),
                                       "host: invalid character %s at offset %zu",
                                       show_byte(c, b), base + i);
        }
        return 0;
}

static int check_app_at(const char *s, size_t len, size_t base, hyb_error *reterr)
{
        char b[8];

        if (len == 0)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)base, "app: empty");
        if (len > BUS_APP_MAX)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + BUS_APP_MAX),
                               "app: longer than %d bytes", BUS_APP_MAX);

        /* Each dot-separated part is an identifier: "a..b", ".a", "a." and "org.1x" are refused. */
        for (size_t i = 0, part = 0; i < len; i++) {
                char c = s[i];

                if (c == '.') {
                        if (i == part)
                                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + i),
                                               "app: empty part at offset %zu", base + i);
                        if (i + 1 == len)
                                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + i),
                                               "app: ends with '.' at offset %zu", base + i);
                        part = i + 1;
                        continue;
                }
                if (i == part ? !is_ident_first(c) : !is_ident_char(c))
                        return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + i),
                                       "app: invalid character %s at offset %zu",
                                       show_byte(c, b), base + i);
        }
        return 0;
}

static int check_ident_at(const char *what, const char *s, size_t len, size_t base,
                          hyb_error *reterr)
{
        char b[8];

        if (len == 0)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)base, "%s: empty", what);
        if (len > BUS_IDENT_MAX)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + BUS_IDENT_MAX),
                               "%s: longer than %d bytes", what, BUS_IDENT_MAX);
        for (size_t i = 0; i < len; i++)
                if (i == 0 ? !is_ident_first(s[i]) : !is_ident_char(s[i]))
                        return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(base + i),
                                       "%s: invalid character %s at offset %zu", what,
                                       show_byte(s[i], b), base + i);
        return 0;
}

int bus_name_check_host(const char *s, size_t len, hyb_error *reterr)
{
        if (!s && len)
                return -EINVAL;
        return check_host_at(s, len, 0, reterr);
}

int bus_name_check_app(const char *s, size_t len, hyb_error *reterr)
{
        if (!s && len)
                return -EINVAL;
        return check_app_at(s, len, 0, reterr);
}

int bus_name_check_ident(const char *s, size_t len, hyb_error *reterr)
{
        if (!s && len)
                return -EINVAL;
        return check_ident_at("name", s, len, 0, reterr);
}

/*
 * Splits "@a/b/c[/d]" into n_parts parts at '/', validating each.  A missing
 * or extra part is a 406 pointing at where the text stops matching the shape.
 */
static int parse_name(const char *s, size_t len, size_t n_parts, bus_name *ret,
                      hyb_error *reterr)
{
        static const char *const part_names[] = { "host", "app", "runner", "name" };
        const char *start[4];
        size_t plen[4], pos = 1, k = 0;
        bus_name n = { 0 };
        int r;

        if (!s && len)
                return -EINVAL;
        if (len == 0 || s[0] != '@')
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, 0, "name: must start with '@'");

        for (k = 0; k < n_parts; k++) {
                const char *slash;

                start[k] = s + pos;
                slash = memchr(s + pos, '/', len - pos);
                if (k + 1 < n_parts) {
                        if (!slash)
                                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)len,
                                               "name: missing %s (expected @host/app/runner%s)",
                                               part_names[k + 1],
                                               n_parts == 4 ? "/name" : "");
                        plen[k] = (size_t)(slash - start[k]);
                        pos += plen[k] + 1;
                } else {
                        if (slash)
                                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(slash - s),
                                               "name: unexpected '/' at offset %zu after %s",
                                               (size_t)(slash - s), part_names[k]);
                        plen[k] = len - pos;
                }
        }

        r = check_host_at(start[0], plen[0], (size_t)(start[0] - s), reterr);
        if (r < 0)
                return r;
        r = check_app_at(start[1], plen[1], (size_t)(start[1] - s), reterr);
        if (r < 0)
                return r;
        r = check_ident_at("runner", start[2], plen[2], (size_t)(start[2] - s), reterr);
        if (r < 0)
                return r;
        if (n_parts == 4) {
                r = check_ident_at("name", start[3], plen[3], (size_t)(start[3] - s), reterr);
                if (r < 0)
                        return r;
                n.name = start[3];
                n.name_len = plen[3];
        }

        n.host = start[0];
        n.host_len = plen[0];
        n.app = start[1];
        n.app_len = plen[1];
        n.runner = start[2];
        n.runner_len = plen[2];
        if (ret)
                *ret = n;
        return 0;
}

int bus_name_parse_endpoint(const char *s, size_t len, bus_name *ret, hyb_error *reterr)
{
        return parse_name(s, len, 3, ret, reterr);
}

int bus_name_parse_member(const char *s, size_t len, bus_name *ret, hyb_error *reterr)
{
        return parse_name(s, len, 4, ret, reterr);
}

bool bus_name_equal(const char *a, size_t alen, const char *b, size_t blen)
{
        if (alen != blen)
                return false;
        /* The usual case, the same spelling (every call to the builtin endpoint): one memcmp
         * instead of folding 35 bytes one by one. */
        if (memcmp(a, b, alen) == 0)
                return true;
        for (size_t i = 0; i < alen; i++)
                if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
                        return false;
        return true;
}

/* FNV-1a over the case-folded bytes: equal names (bus_name_equal) hash equal. */
uint64_t bus_name_hash(const char *s, size_t len)
{
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < len; i++) {
                h ^= fold((unsigned char)s[i]);
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}
