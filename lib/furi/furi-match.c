/* SPDX-License-Identifier: MIT */
/*
 * Pattern matching (doc/furi.md "Patterns"), in the spirit of
 * mosquitto's util_topic.c: one pass over the segments, no allocation.
 *
 *   f            pattern     match   why
 *   a/b          a/b         yes     identical
 *   a/b          a/+         yes     `+` is one segment
 *   a/b          a/b/#       yes     `#` matches zero segments
 *   a/b/         a/#         yes     `#` ignores branch-ness
 *   /a/b/        /a/+/       yes     both branches
 *   /a/b/        /a/+        no      branch-ness must agree without `#`
 *   /a           +/#         no      absolute and relative must agree
 *   anything     #           yes     `#` alone matches every fURI
 *   /fs/+/abc    /fs/#       yes     a pattern within a pattern
 *   /fs/#        /fs/+/abc   no      (the former matches /fs)
 *
 * When f has wildcards the question is "is f within pattern": a wildcard
 * in f is only covered by a wildcard at least as wide in the pattern
 * (`+` by `+` or `#`, `#` only by `#`).
 */
#include "common/util.h"
#include "furi-internal.h"

static bool is_hash_alone(const hyb_furi *p)
{
        return !p->host && !p->absolute && p->n_segs == 1 && p->segs[0].kind == HYB_SEG_HASH;
}

/* Does the optional string a (of f) fall within b (of the pattern)? */
static bool part_within(const char *a, const char *b, bool b_may_be_wild)
{
        if (!b)
                return !a;
        if (!a)
                return false;
        if (b_may_be_wild && strcmp(b, "+") == 0)
                return true;
        if (b_may_be_wild && strcmp(a, "+") == 0)
                return false;
        return strcmp(a, b) == 0;
}

static bool authority_within(const hyb_furi *f, const hyb_furi *p)
{
        bool any_host;

        if (!part_within(f->scheme, p->scheme, true))
                return false;
        if (!p->host)
                return !f->host;
        if (!f->host)
                return false; /* a pattern with a host never matches a fURI without one */
        if (!part_within(f->host, p->host, true))
                return false;
        /* A host `+` with no user or port stands for any authority; otherwise a given
         * user or port must be the same. */
        any_host = strcmp(p->host, "+") == 0;
        if (!(any_host && !p->user) && !part_within(f->user, p->user, false))
                return false;
        if (!(any_host && p->port < 0) && f->port != p->port)
                return false;
        return true;
}

static bool seg_within(const hyb_furi *f, size_t i, const hyb_furi *p, size_t j)
{
        uint8_t fk = f->segs[i].kind, pk = p->segs[j].kind;

        if (pk == HYB_SEG_HASH)
                return true;
        if (fk == HYB_SEG_HASH)
                return false;
        if (pk == HYB_SEG_PLUS)
                return true;
        if (fk == HYB_SEG_PLUS)
                return false;
        return f->segs[i].len == p->segs[j].len &&
               memcmp(furi_seg_data(f, i), furi_seg_data(p, j), f->segs[i].len) == 0;
}

HYB_EXPORT bool hyb_furi_match(const hyb_furi *f, const hyb_furi *p)
{
        size_t m;

        if (!f || !p)
                return false;
        if (is_hash_alone(p))
                return true;
        if (!p->pattern)
                return f == p || (f->path_len == p->path_len && f->hash == p->hash &&
                                  memcmp(f->path, p->path, f->path_len) == 0);
        if (f->absolute != p->absolute || !authority_within(f, p))
                return false;
        m = p->n_segs;
        if (p->has_hash) {
                /* `a/b/#`: the first m - 1 segments, then anything (or nothing) at all. */
                if (f->n_segs < m - 1)
                        return false;
                for (size_t i = 0; i + 1 < m; i++)
                        if (!seg_within(f, i, p, i))
                                return false;
                return true;
        }
        if (f->n_segs != m || f->has_hash || f->branch != p->branch)
                return false;
        for (size_t i = 0; i < m; i++)
                if (!seg_within(f, i, p, i))
                        return false;
        return true;
}

HYB_EXPORT int hyb_furi_match_str(const char *f, const char *pattern, hyb_error *reterr)
{
        hyb_furi *a = NULL, *b = NULL;
        int r;

        hyb_assert_return(f && pattern, -EINVAL);
        r = hyb_furi_parse(f, (size_t)-1, NULL, &a, reterr);
        if (r < 0)
                return r;
        r = hyb_furi_parse(pattern, (size_t)-1, NULL, &b, reterr);
        if (r >= 0)
                r = hyb_furi_match(a, b);
        hyb_furi_unref(a);
        hyb_furi_unref(b);
        return r;
}
