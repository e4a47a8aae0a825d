/* SPDX-License-Identifier: MIT */
/*
 * Building fURIs from fURIs (mm-ADT uri plus, mult, lshift, rshift), the
 * query words and `::` instructions.
 *
 * Every builder writes the canonical text of its result and parses it: the
 * parser stays the one place that validates, resolves `..` and enforces the
 * limits, so a built fURI is always one that parse(format(x)) gives back.
 * Builders are rare next to parse and match; the extra parse is cheap.
 */
#include <stdio.h>

#include "common/util.h"
#include "furi-internal.h"

void furi_text_put(furi_text *t, const char *s, size_t n)
{
        if (t->oom)
                return;
        if (grow_array((void **)&t->buf, &t->alloc, t->len + n + 1, 1) < 0) {
                t->oom = true;
                return;
        }
        memcpy(t->buf + t->len, s, n);
        t->len += n;
        t->buf[t->len] = '\0';
}

void furi_text_put_seg(furi_text *t, const char *s, size_t n, hyb_furi_seg_kind kind)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t i = 0;

        if (kind != HYB_SEG_LITERAL) {
                furi_text_put(t, kind == HYB_SEG_PLUS ? "+" : "#", 1);
                return;
        }
        while (i < n) {
                size_t j = i;
                while (j < n && !furi_seg_byte_needs_escape((unsigned char)s[j]))
                        j++;
                furi_text_put(t, s + i, j - i);
                if (j < n) {
                        char e[3] = { '%', hex[(unsigned char)s[j] >> 4], hex[s[j] & 15] };
                        furi_text_put(t, e, 3);
                        j++;
                }
                i = j;
        }
}

void furi_text_put_authority(furi_text *t, const hyb_furi *f)
{
        const char *p = f->path;
        size_t n = 0;

        /* The canonical text already spells the authority: copy it up to the path. */
        if (!f->host)
                return;
        if (f->scheme)
                n = strlen(f->scheme) + 1;
        n += 2;
        while (p[n] && p[n] != '/')
                n++;
        furi_text_put(t, p, n);
}

int furi_text_parse(furi_text *t, hyb_furi **ret, hyb_error *reterr)
{
        int r;

        if (t->oom) {
                free(t->buf);
                return err_set(reterr, -ENOMEM, -1, "out of memory");
        }
        r = hyb_furi_parse(t->buf ? t->buf : "", t->len, NULL, ret, reterr);
        free(t->buf);
        t->buf = NULL;
        return r;
}

static void put_seg_of(furi_text *t, const hyb_furi *f, size_t i)
{
        furi_text_put_seg(t, furi_seg_data(f, i), f->segs[i].len, f->segs[i].kind);
}

static void put_query(furi_text *t, const char *q)
{
        if (q) {
                furi_text_put(t, "?", 1);
                furi_text_put(t, q, strlen(q));
        }
}

/* f's scheme, authority and leading `/`, then its segments [from, to). */
static void put_path(furi_text *t, const hyb_furi *f, size_t from, size_t to, bool absolute)
{
        furi_text_put_authority(t, f);
        if (absolute && !f->host && from == to)
                furi_text_put(t, "/", 1);
        for (size_t i = from; i < to; i++) {
                if (i > from || absolute)
                        furi_text_put(t, "/", 1);
                put_seg_of(t, f, i);
        }
}

HYB_EXPORT int hyb_furi_extend(const hyb_furi *f, const hyb_furi *extra, hyb_furi **ret,
                               hyb_error *reterr)
{
        furi_text t = { 0 };
        int r;

        hyb_assert_return(f && extra && ret, -EINVAL);
        if (extra->host)
                return err_set(reterr, -EINVAL, -1, "cannot extend %s with %s: it has an authority",
                               f->str, extra->str);
        furi_text_put_authority(&t, f);
        if (f->absolute && !f->host && f->n_segs + extra->n_segs == 0)
                furi_text_put(&t, "/", 1);
        for (size_t i = 0; i < f->n_segs + extra->n_segs; i++) {
                if (i > 0 || f->absolute)
                        furi_text_put(&t, "/", 1);
                if (i < f->n_segs)
                        put_seg_of(&t, f, i);
                else
                        put_seg_of(&t, extra, i - f->n_segs);
        }
        if (extra->n_segs > 0 ? extra->branch : f->branch)
                furi_text_put(&t, "/", 1);
        put_query(&t, extra->query ? extra->query : f->query);
        r = furi_text_parse(&t, ret, reterr);
        if (r < 0 && reterr)
                err_prefix(reterr, "extend");
        return r;
}

/* Only a relative fURI's kept leading `..` is a literal `..`: parse refuses %2E%2E. */
static bool seg_is_dotdot(const hyb_furi *f, size_t i)
{
        const char *s = furi_seg_data(f, i);

        return f->segs[i].len == 2 && s[0] == '.' && s[1] == '.';
}

/*
 * RFC 3986 section 5.2.2 over decoded segments.  The merge drops the base's
 * last segment unless the base is a branch; a `..` that climbs above the
 * start leaves an absolute path (doc/mmadt.md: `<a>.mult(<../b>)` is `/b`),
 * except above a base that itself starts with `..`, which stays relative.
 */
HYB_EXPORT int hyb_furi_resolve(const hyb_furi *base, const hyb_furi *ref, hyb_furi **ret,
                                hyb_error *reterr)
{
        _cleanup_free_ const hyb_furi **owner = NULL;
        _cleanup_free_ uint32_t *idx = NULL;
        furi_text t = { 0 };
        const char *query = ref->query;
        size_t n = 0, nb;
        bool absolute, branch;
        int r;

        hyb_assert_return(base && ref && ret, -EINVAL);
        if (ref->host || ref->absolute) {
                /* An authority or an absolute path: ref wins, only the scheme/authority
                 * of the base are inherited by an absolute path. */
                if (ref->host && (ref->scheme || !base->scheme)) {
                        *ret = hyb_furi_ref(ref);
                        return 0;
                }
                if (ref->host) {
                        furi_text_put(&t, base->scheme, strlen(base->scheme));
                        furi_text_put(&t, ":", 1);
                        furi_text_put(&t, ref->str, strlen(ref->str));
                } else {
                        put_path(&t, base, 0, 0, false);
                        furi_text_put(&t, ref->str, strlen(ref->str));
                }
                return furi_text_parse(&t, ret, reterr);
        }
        if (ref->n_segs == 0) {
                put_path(&t, base, 0, base->n_segs, base->absolute);
                if (base->branch)
                        furi_text_put(&t, "/", 1);
                put_query(&t, query ? query : base->query);
                return furi_text_parse(&t, ret, reterr);
        }

        owner = mallocarray(base->n_segs + ref->n_segs, sizeof(*owner));
        idx = mallocarray(base->n_segs + ref->n_segs, sizeof(*idx));
        if (!owner || !idx)
                return -ENOMEM;
        nb = base->branch ? base->n_segs : base->n_segs - (base->n_segs > 0);
        for (size_t i = 0; i < nb; i++, n++)
                owner[n] = base, idx[n] = (uint32_t)i;
        absolute = base->absolute;
        branch = ref->branch;
        for (size_t i = 0; i < ref->n_segs; i++) {
                bool dotdot = seg_is_dotdot(ref, i);
                bool top_dotdot = n > 0 && seg_is_dotdot(owner[n - 1], idx[n - 1]);

                if (dotdot && n > 0 && !top_dotdot) {
                        n--;
                        branch = i + 1 == ref->n_segs || ref->branch;
                } else if (dotdot && n == 0 && !absolute &&
                           !(base->n_segs > 0 && seg_is_dotdot(base, 0))) {
                        absolute = true; /* climbed above the start */
                        branch = i + 1 == ref->n_segs || ref->branch;
                } else if (dotdot && absolute) {
                        branch = i + 1 == ref->n_segs || ref->branch;
                } else {
                        owner[n] = ref, idx[n++] = (uint32_t)i;
                }
        }
        if (absolute && base->host)
                furi_text_put_authority(&t, base);
        else if (absolute && n == 0)
                furi_text_put(&t, "/", 1);
        for (size_t i = 0; i < n; i++) {
                if (i > 0 || absolute)
                        furi_text_put(&t, "/", 1);
                put_seg_of(&t, owner[i], idx[i]);
        }
        if (branch && n > 0)
                furi_text_put(&t, "/", 1);
        put_query(&t, query);
        r = furi_text_parse(&t, ret, reterr);
        if (r < 0 && reterr)
                err_prefix(reterr, "resolve");
        return r;
}

HYB_EXPORT int hyb_furi_shift(const hyb_furi *f, long n, hyb_furi **ret)
{
        furi_text t = { 0 };
        size_t k;

        hyb_assert_return(f && ret, -EINVAL);
        if (n == 0) {
                *ret = hyb_furi_ref(f);
                return 0;
        }
        k = n > 0 ? (size_t)n : (size_t)-(n + 1) + 1;
        if (k > f->n_segs)
                k = f->n_segs;
        if (n > 0) /* what is left lies below the dropped prefix: a relative path */
                put_path(&t, f, k, f->n_segs, false);
        else
                put_path(&t, f, 0, f->n_segs - k, f->absolute);
        if (f->branch && k < f->n_segs)
                furi_text_put(&t, "/", 1);
        put_query(&t, f->query);
        return furi_text_parse(&t, ret, NULL);
}

HYB_EXPORT int hyb_furi_prefix(const hyb_furi *f, size_t n, hyb_furi **ret)
{
        furi_text t = { 0 };

        hyb_assert_return(f && ret, -EINVAL);
        if (n > f->n_segs)
                n = f->n_segs;
        put_path(&t, f, 0, n, f->absolute);
        return furi_text_parse(&t, ret, NULL);
}

HYB_EXPORT int hyb_furi_strip_query(const hyb_furi *f, hyb_furi **ret)
{
        furi_text t = { 0 };

        hyb_assert_return(f && ret, -EINVAL);
        if (!f->query) {
                *ret = hyb_furi_ref(f);
                return 0;
        }
        furi_text_put(&t, f->path, f->path_len);
        return furi_text_parse(&t, ret, NULL);
}

HYB_EXPORT int hyb_furi_split_instruction(const hyb_furi *f, hyb_furi **ret_resource,
                                          char **ret_name)
{
        _cleanup_free_ char *name = NULL;
        furi_text t = { 0 };
        const char *s, *c;
        size_t len;
        int r;

        hyb_assert_return(f && ret_resource && ret_name, -EINVAL);
        if (f->n_segs == 0)
                return 0;
        s = furi_seg_data(f, f->n_segs - 1);
        len = f->segs[f->n_segs - 1].len;
        c = memmem(s, len, "::", 2);
        if (!c)
                return 0;
        if (c + 2 == s + len)
                return -EINVAL; /* `a::` names no instruction */
        name = strndup_safe(c + 2, (size_t)(s + len - c - 2));
        if (!name)
                return -ENOMEM;
        put_path(&t, f, 0, f->n_segs - 1, f->absolute);
        if (c > s) {
                if (f->n_segs > 1 || f->absolute)
                        furi_text_put(&t, "/", 1);
                furi_text_put_seg(&t, s, (size_t)(c - s), HYB_SEG_LITERAL);
        }
        if (f->branch)
                furi_text_put(&t, "/", 1);
        put_query(&t, f->query);
        r = furi_text_parse(&t, ret_resource, NULL);
        if (r < 0)
                return r;
        *ret_name = TAKE_PTR(name);
        return 1;
}

/* Finds the item `name` or `name=...` of the query (items split by `&`). */
static const char *query_find(const hyb_furi *f, const char *name, const char **end)
{
        size_t nl;
        const char *q;

        if (!f || !f->query || !name)
                return NULL;
        nl = strlen(name);
        for (q = f->query;;) {
                const char *e = strchr(q, '&');
                if (!e)
                        e = q + strlen(q);
                if ((size_t)(e - q) >= nl && memcmp(q, name, nl) == 0 &&
                    (q + nl == e || q[nl] == '=')) {
                        *end = e;
                        return q;
                }
                if (!*e)
                        return NULL;
                q = e + 1;
        }
}

HYB_EXPORT bool hyb_furi_query_has(const hyb_furi *f, const char *name)
{
        const char *end;

        return query_find(f, name, &end) != NULL;
}

HYB_EXPORT int hyb_furi_get_query_value(const hyb_furi *f, const char *name, const char **ret,
                                    size_t *len)
{
        const char *end, *q = query_find(f, name, &end);
        size_t nl;

        if (!q)
                return -ENOENT;
        nl = strlen(name);
        q += nl < (size_t)(end - q) ? nl + 1 : nl; /* a bare word has the empty value */
        if (ret)
                *ret = q;
        if (len)
                *len = (size_t)(end - q);
        return 0;
}
