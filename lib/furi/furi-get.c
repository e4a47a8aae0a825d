/* SPDX-License-Identifier: MIT */
/* References and the read-only accessors of a parsed fURI (all precomputed by the parser). */
#include "common/util.h"
#include "furi-internal.h"
#include "common/ref.h"

static void furi_free(hyb_furi *f)
{
        free(f);
}

HYB_DEFINE_REF_UNREF(hyb_furi, hyb_furi, furi_free)

HYB_EXPORT const char *hyb_furi_get_str(const hyb_furi *f)
{
        return f ? f->str : "";
}

HYB_EXPORT const char *hyb_furi_get_path_str(const hyb_furi *f)
{
        return f ? f->path : "";
}

HYB_EXPORT const char *hyb_furi_get_scheme(const hyb_furi *f)
{
        return f ? f->scheme : NULL;
}

HYB_EXPORT const char *hyb_furi_get_user(const hyb_furi *f)
{
        return f ? f->user : NULL;
}

HYB_EXPORT const char *hyb_furi_get_host(const hyb_furi *f)
{
        return f ? f->host : NULL;
}

HYB_EXPORT int hyb_furi_get_port(const hyb_furi *f)
{
        return f ? f->port : -1;
}

HYB_EXPORT const char *hyb_furi_get_query(const hyb_furi *f)
{
        return f ? f->query : NULL;
}

HYB_EXPORT bool hyb_furi_is_absolute(const hyb_furi *f)
{
        return f && f->absolute;
}

HYB_EXPORT bool hyb_furi_is_branch(const hyb_furi *f)
{
        return f && f->branch;
}

HYB_EXPORT bool hyb_furi_is_pattern(const hyb_furi *f)
{
        return f && f->pattern;
}

HYB_EXPORT hyb_furi_scope hyb_furi_get_scope(const hyb_furi *f)
{
        return f ? (hyb_furi_scope)f->scope : HYB_SCOPE_PROGRAM;
}

HYB_EXPORT size_t hyb_furi_get_n_segments(const hyb_furi *f)
{
        return f ? f->n_segs : 0;
}

HYB_EXPORT const char *hyb_furi_get_segment(const hyb_furi *f, size_t i, size_t *len)
{
        if (!f || i >= f->n_segs) {
                if (len)
                        *len = 0;
                return NULL;
        }
        if (len)
                *len = f->segs[i].len;
        return furi_seg_data(f, i);
}

HYB_EXPORT hyb_furi_seg_kind hyb_furi_get_segment_kind(const hyb_furi *f, size_t i)
{
        if (!f || i >= f->n_segs)
                return HYB_SEG_LITERAL;
        return (hyb_furi_seg_kind)f->segs[i].kind;
}
