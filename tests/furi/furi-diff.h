/* SPDX-License-Identifier: MIT */
/*
 * The differential check of hyb_furi_parse()'s fast path, shared by the Check test
 * (tests/furi/test_furi_fast.c) and the fuzz target (tests/fuzz/fuzz_furi_fast.c):
 * one text parsed by hyb_furi_parse() (fast path first) and by furi_parse_full() (the
 * full grammar only) must give the same result: the same error (code, offset, message)
 * or fURIs alike in every public getter, in equal/compare/hash/match against each other,
 * and in their one allocation byte for byte (header fields, pointers as offsets into
 * the data, segment table, character data).
 */
#ifndef HYB_TEST_FURI_DIFF_H
#define HYB_TEST_FURI_DIFF_H

#include <stdio.h>
#include <string.h>

#include "furi/furi-internal.h"
#include "hybrid/common.h"
#include "hybrid/furi.h"

static inline bool furi_diff_str(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Offset of p in f's character data, or -1 for NULL. */
static inline long furi_diff_off(const hyb_furi *f, const char *p)
{
        return p ? (long)(p - (const char *)&f->segs[f->n_segs]) : -1;
}

/* Bytes of f's character data up to the end of its last string. */
static inline size_t furi_diff_data_len(const hyb_furi *f)
{
        const char *strs[] = { f->str, f->path, f->scheme, f->user, f->host, f->query };
        size_t end = 0;

        for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
                if (strs[i] && (size_t)furi_diff_off(f, strs[i]) + strlen(strs[i]) + 1 > end)
                        end = (size_t)furi_diff_off(f, strs[i]) + strlen(strs[i]) + 1;
        for (uint32_t i = 0; i < f->n_segs; i++)
                if (f->segs[i].off + f->segs[i].len + 1 > end)
                        end = f->segs[i].off + f->segs[i].len + 1;
        return end;
}

/* NULL when a (from the fast path) and b (the full grammar) are the same fURI, else what
 * differs. */
static inline const char *furi_diff(const hyb_furi *a, const hyb_furi *b)
{
        size_t n = hyb_furi_get_n_segments(a), da, db;

        if (!furi_diff_str(hyb_furi_get_str(a), hyb_furi_get_str(b)))
                return "canonical text";
        if (!furi_diff_str(hyb_furi_get_path_str(a), hyb_furi_get_path_str(b)))
                return "path text";
        if (!furi_diff_str(hyb_furi_get_scheme(a), hyb_furi_get_scheme(b)) ||
            !furi_diff_str(hyb_furi_get_user(a), hyb_furi_get_user(b)) ||
            !furi_diff_str(hyb_furi_get_host(a), hyb_furi_get_host(b)) ||
            hyb_furi_get_port(a) != hyb_furi_get_port(b))
                return "authority";
        if (!furi_diff_str(hyb_furi_get_query(a), hyb_furi_get_query(b)))
                return "query";
        if (hyb_furi_is_absolute(a) != hyb_furi_is_absolute(b) ||
            hyb_furi_is_branch(a) != hyb_furi_is_branch(b) ||
            hyb_furi_is_pattern(a) != hyb_furi_is_pattern(b) ||
            hyb_furi_get_scope(a) != hyb_furi_get_scope(b))
                return "flags or scope";
        if (n != hyb_furi_get_n_segments(b))
                return "number of segments";
        for (size_t i = 0; i <= n; i++) { /* i == n: out of range, both NULL */
                size_t la = 7, lb = 9;
                const char *sa = hyb_furi_get_segment(a, i, &la), *sb = hyb_furi_get_segment(b, i, &lb);

                if (la != lb || (!sa) != (!sb) || (sa && (memcmp(sa, sb, la) != 0 || sa[la] != '\0')) ||
                    hyb_furi_get_segment_kind(a, i) != hyb_furi_get_segment_kind(b, i))
                        return "a segment";
        }
        if (!hyb_furi_equal(a, b) || !hyb_furi_equal(b, a) || hyb_furi_compare(a, b) != 0 ||
            hyb_furi_compare(b, a) != 0 || hyb_furi_hash(a) != hyb_furi_hash(b))
                return "equal, compare or hash";
        if (hyb_furi_match(a, b) != hyb_furi_match(b, a) || hyb_furi_match(a, a) != hyb_furi_match(b, b))
                return "match";
        /* The allocation itself. */
        if (a->absolute != b->absolute || a->branch != b->branch || a->pattern != b->pattern ||
            a->has_hash != b->has_hash || a->scope != b->scope || a->n_segs != b->n_segs ||
            a->port != b->port || a->path_len != b->path_len || a->hash != b->hash)
                return "header fields";
        if (furi_diff_off(a, a->str) != furi_diff_off(b, b->str) ||
            furi_diff_off(a, a->path) != furi_diff_off(b, b->path) ||
            furi_diff_off(a, a->scheme) != furi_diff_off(b, b->scheme) ||
            furi_diff_off(a, a->user) != furi_diff_off(b, b->user) ||
            furi_diff_off(a, a->host) != furi_diff_off(b, b->host) ||
            furi_diff_off(a, a->query) != furi_diff_off(b, b->query))
                return "string offsets";
        for (uint32_t i = 0; i < a->n_segs; i++)
                if (a->segs[i].off != b->segs[i].off || a->segs[i].len != b->segs[i].len ||
                    a->segs[i].kind != b->segs[i].kind)
                        return "segment table";
        da = furi_diff_data_len(a);
        db = furi_diff_data_len(b);
        if (da != db || memcmp(&a->segs[a->n_segs], &b->segs[b->n_segs], da) != 0)
                return "character data";
        return NULL;
}

/* Parses text[0..len) with the limits (NULL: the defaults) both ways; NULL when the two
 * agree, else what differs (in why, of size n).  *fast is set when the fast path took the
 * text (furi_parse_fast() returned 1). */
static inline const char *furi_diff_parse(const char *text, size_t len, const hyb_furi_limits *limits,
                                          bool *fast, char *why, size_t n)
{
        hyb_furi *a = NULL, *b = NULL, *c = NULL;
        hyb_furi_limits lim;
        hyb_error ea, eb;
        const char *d = NULL;
        int ra, rb, rc = 0;

        hyb_error_clear(&ea);
        hyb_error_clear(&eb);
        ra = hyb_furi_parse(text, len, limits, &a, &ea);
        rb = furi_parse_full(text, len, limits, &b, &eb);
        *fast = false;
        hyb_furi_limits_init(&lim);
        if (limits) {
                if (limits->max_length)
                        lim.max_length = limits->max_length;
                if (limits->max_segments)
                        lim.max_segments = limits->max_segments;
                if (limits->max_segment)
                        lim.max_segment = limits->max_segment;
        }
        if (len <= lim.max_length) {
                rc = furi_parse_fast(text, len, &lim, &c);
                *fast = rc == 1;
        }
        if (ra != rb) {
                snprintf(why, n, "hyb_furi_parse gave %d, the full grammar %d", ra, rb);
                d = why;
        } else if (ra < 0) {
                if (ea.code != eb.code || ea.offset != eb.offset || ea.line != eb.line ||
                    ea.column != eb.column || strcmp(ea.message, eb.message) != 0) {
                        snprintf(why, n, "errors differ: '%.150s' at %ld, '%.150s' at %ld", ea.message,
                                 ea.offset, eb.message, eb.offset);
                        d = why;
                } else if (a || b) {
                        d = "an error with a result";
                } else if (rc == 1) {
                        d = "the fast path took a text the full grammar refuses";
                }
        } else if ((d = furi_diff(a, b)) != NULL || (rc == 1 && (d = furi_diff(c, b)) != NULL)) {
                snprintf(why, n, "'%.300s': %s differs", hyb_furi_get_str(b), d);
                d = why;
        }
        hyb_furi_unref(a);
        hyb_furi_unref(b);
        hyb_furi_unref(c);
        return d;
}

#endif
