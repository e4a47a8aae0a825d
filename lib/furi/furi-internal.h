/* SPDX-License-Identifier: MIT */
/*
 * The inside of a hyb_furi: one allocation holding the header, the segment
 * table and every string, so a parse costs exactly one malloc and a fURI can
 * be freed with one free().
 *
 *   +-------------------------------+
 *   | n_ref absolute branch pattern |  header
 *   | scope n_segs port hash        |
 *   | scheme qry str path user host |  pointers into data[] below
 *   +-------------------------------+
 *   | segs[0] {off,len,kind}        |  segment table (off: into data[])
 *   | segs[1] ...                   |
 *   +-------------------------------+
 *   | "/a/b%2Fc?sub\0"              |  str: canonical text, query included
 *   | "/a/b%2Fc\0"                  |  path: only when there is a query (else path == str)
 *   | "bus\0" "user\0" "host\0"     |  authority parts, decoded, when present
 *   | "a\0" "b/c\0"                 |  decoded segments, each NUL-terminated
 *   +-------------------------------+
 *
 * Equality is equality of the canonical path text (the canonical form is
 * injective), so the hash is precomputed over it at parse time.
 */
#ifndef HYB_FURI_INTERNAL_H
#define HYB_FURI_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "hybrid/furi.h"

typedef struct furi_seg {
        uint32_t off;  /* of the decoded bytes in hyb_furi's data */
        uint32_t len;
        uint8_t kind;  /* hyb_furi_seg_kind */
} furi_seg;

/* What a store node read looks at (the flags, scope, hash, scheme and query) comes first, in
 * 48 bytes: at 100 000 keys the read waits on the caller's fURI coming from memory, and from a
 * 16-byte aligned malloc these fields then span one cache line more often than two. */
struct hyb_furi {
        atomic_uint n_ref;
        bool absolute;
        bool branch;
        bool pattern;
        bool has_hash;  /* the last segment is `#` */
        uint8_t scope;
        uint32_t n_segs;
        int32_t port;   /* -1 when absent */
        uint32_t path_len;
        uint64_t hash;
        const char *scheme;
        const char *query;
        const char *str;
        const char *path;
        const char *user;
        const char *host;
        furi_seg segs[];
        /* followed by the character data */
};

static inline const char *furi_seg_data(const hyb_furi *f, size_t i)
{
        return (const char *)&f->segs[f->n_segs] + f->segs[i].off;
}

/* Does byte c need %XX inside a path segment?  (space, controls, non-ASCII, % + # ? /) */
bool furi_seg_byte_needs_escape(unsigned char c);

/* A growing text buffer for the builders (extend, resolve, shift...). */
typedef struct furi_text {
        char *buf;
        size_t len;
        size_t alloc;
        bool oom;
} furi_text;

void furi_text_put(furi_text *t, const char *s, size_t n);
/* Appends a segment in canonical (encoded) form. */
void furi_text_put_seg(furi_text *t, const char *s, size_t n, hyb_furi_seg_kind kind);
/* Appends `scheme://user@host:port` of f (nothing if f has no authority). */
void furi_text_put_authority(furi_text *t, const hyb_furi *f);
/* Parses the text with the default limits and frees it; -ENOMEM if a put failed. */
int furi_text_parse(furi_text *t, hyb_furi **ret, hyb_error *reterr);

/* The hash of a fURI: FNV-1a over its canonical path text, then folded.  The steps are here
 * so the parser's fast path can hash while it scans; furi_hash_bytes() is all of them. */
#define FURI_HASH_INIT 0xcbf29ce484222325ULL

static inline uint64_t furi_hash_step(uint64_t h, unsigned char c)
{
        return (h ^ c) * 0x100000001b3ULL;
}

static inline uint64_t furi_hash_final(uint64_t h)
{
        return h ^ (h >> 29);
}

uint64_t furi_hash_bytes(const char *s, size_t n);

/* hyb_furi_parse()'s fast path, for the common case only: an absolute or relative fURI of
 * plain segments (printable ASCII but % + # ? and space; no `.` or `..` segment, no empty
 * one, so no scheme or authority; no query), optionally a branch, within lim (resolved:
 * no member 0).  1 and *ret when it parsed the text, giving exactly the hyb_furi the full
 * grammar gives; 0 when the text is not of that kind (the caller then runs the full
 * grammar); -ENOMEM. */
int furi_parse_fast(const char *text, size_t len, const hyb_furi_limits *lim, hyb_furi **ret);

/* hyb_furi_parse() without its fast path: the full grammar for every input, so a test can
 * compare the two. */
int furi_parse_full(const char *text, size_t len, const hyb_furi_limits *limits, hyb_furi **ret,
                    hyb_error *reterr);

#endif
