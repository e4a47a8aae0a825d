/* SPDX-License-Identifier: MIT */
/*
 * Equality, hashing and the key order of fURIs (doc/furi.md "Key order").
 *
 * Equality is equality of the canonical path text: formatting is canonical
 * and injective, so two addresses are equal exactly when their texts are.
 *
 * The key order must be a total order (the store sorts with it), so a
 * segment compares as the tuple (class, value, bytes, kind):
 *   class  0 for an all-digit literal, 1 for anything else: digits first, because
 *          mixing numeric and byte comparison across classes would not be transitive
 *          (2 < 10 < 1a < 2);
 *   value  digits: numerically, on the text (leading zeros stripped, then the
 *          shorter is smaller, then bytes), so no length overflows; others: bytes;
 *   bytes  the raw bytes, to order `02` and `2` (numerically equal) consistently;
 *   kind   literal `+` < wildcard `+` < ... so a pattern never equals a literal.
 * Whole fURIs compare by their prefix (relative < absolute < authority; then
 * scheme, host, port, user) and then segment by segment, a prefix first, and a
 * node before its branch (`a/b` < `a/b/`).
 */
#include "common/util.h"
#include "furi-internal.h"

uint64_t furi_hash_bytes(const char *s, size_t n)
{
        uint64_t h = FURI_HASH_INIT; /* FNV-1a */

        for (size_t i = 0; i < n; i++)
                h = furi_hash_step(h, (unsigned char)s[i]);
        return furi_hash_final(h);
}

HYB_EXPORT bool hyb_furi_equal(const hyb_furi *a, const hyb_furi *b)
{
        if (a == b)
                return true;
        if (!a || !b)
                return false;
        return a->hash == b->hash && a->path_len == b->path_len &&
               memcmp(a->path, b->path, a->path_len) == 0;
}

HYB_EXPORT uint64_t hyb_furi_hash(const hyb_furi *f)
{
        return f ? f->hash : 0;
}

static bool all_digits(const char *s, size_t n)
{
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

static int cmp_bytes(const char *a, size_t na, const char *b, size_t nb)
{
        int c = memcmp(a, b, na < nb ? na : nb);

        if (c)
                return c < 0 ? -1 : 1;
        return na < nb ? -1 : na > nb;
}

static int cmp_numeric(const char *a, size_t na, const char *b, size_t nb)
{
        while (na > 1 && *a == '0')
                a++, na--;
        while (nb > 1 && *b == '0')
                b++, nb--;
        if (na != nb)
                return na < nb ? -1 : 1;
        return cmp_bytes(a, na, b, nb);
}

static int cmp_seg(const hyb_furi *fa, size_t i, const hyb_furi *fb, size_t j)
{
        const char *a = furi_seg_data(fa, i), *b = furi_seg_data(fb, j);
        size_t na = fa->segs[i].len, nb = fb->segs[j].len;
        int ka = fa->segs[i].kind, kb = fb->segs[j].kind;
        bool da = ka == HYB_SEG_LITERAL && all_digits(a, na);
        bool db = kb == HYB_SEG_LITERAL && all_digits(b, nb);
        int c;

        if (da != db)
                return da ? -1 : 1;
        if (da) {
                c = cmp_numeric(a, na, b, nb);
                if (c)
                        return c;
        }
        c = cmp_bytes(a, na, b, nb);
        if (c)
                return c;
        return ka < kb ? -1 : ka > kb;
}

static int cmp_opt_str(const char *a, const char *b)
{
        if (!a || !b)
                return a ? 1 : b ? -1 : 0;
        int c = strcmp(a, b);
        return c < 0 ? -1 : c > 0;
}

static int prefix_class(const hyb_furi *f)
{
        return f->host ? 2 : f->absolute ? 1 : 0;
}

HYB_EXPORT int hyb_furi_compare(const hyb_furi *a, const hyb_furi *b)
{
        size_t n;
        int c;

        if (a == b)
                return 0;
        if (!a || !b)
                return a ? 1 : -1;
        c = prefix_class(a) - prefix_class(b);
        if (c)
                return c < 0 ? -1 : 1;
        if (a->host) {
                if ((c = cmp_opt_str(a->scheme, b->scheme)) || (c = cmp_opt_str(a->host, b->host)))
                        return c;
                if (a->port != b->port)
                        return a->port < b->port ? -1 : 1;
                if ((c = cmp_opt_str(a->user, b->user)))
                        return c;
        }
        n = a->n_segs < b->n_segs ? a->n_segs : b->n_segs;
        for (size_t i = 0; i < n; i++)
                if ((c = cmp_seg(a, i, b, i)))
                        return c;
        if (a->n_segs != b->n_segs)
                return a->n_segs < b->n_segs ? -1 : 1;
        return (int)a->branch - (int)b->branch;
}
