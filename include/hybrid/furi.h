/* SPDX-License-Identifier: MIT */
/*
 * hybrid/furi.h - fURIs: parse, format, compare, order, match (doc/furi.md).
 *
 *   [scheme:][//[user@]host[:port]][/]seg/seg/...[/][?query]
 *
 * A hyb_furi is immutable and reference counted (atomic), so it may be shared
 * across threads.  Segments are stored percent-decoded; each segment has a kind:
 * a literal, the one-segment wildcard `+` or the multi-segment wildcard `#`
 * (a `%2B` or `%23` in the text decodes to a literal `+`/`#`, never a wildcard).
 * Matching and ordering work on decoded segments; the query takes no part in
 * either.  Formatting is canonical and parse(format(x)) == x.
 *
 * Syntax decisions (doc/furi.md has the whole page):
 * - A scheme is `[a-zA-Z][a-zA-Z0-9+.-]*` (or the wildcard `+`) followed by `://`,
 *   and only then: a fURI with a scheme always has an authority, so `a:b`,
 *   `bus:x` and `/sys/scheduler::spawn` are path text.  Schemes and hosts are
 *   lower-cased; an authority makes the fURI absolute.
 * - `.` and `..` are resolved while parsing; a final `.`/`..` leaves a branch
 *   (`a/b/..` is `a/`, as RFC 3986); an absolute fURI climbing above its root
 *   is an error; a relative one keeps its leading `..` segments.
 * - A fURI with no segments is never a branch: `` (the empty relative fURI),
 *   `/`, `//host` (`//host/` parses as `//host`).
 * - Raw space and non-ASCII bytes are accepted and canonicalised to %XX; the
 *   query is kept verbatim.  Control characters and NUL are errors anywhere.
 * - The canonical text must fit max_length too (raw bytes can grow when
 *   encoded), so every parsed fURI re-parses under the same limits.
 */
#ifndef HYBRID_FURI_H
#define HYBRID_FURI_H

#include <hybrid/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hyb_furi hyb_furi;

/*
 * Enforced parse limits; a zeroed member means "the default".  Initialise with
 * hyb_furi_limits_init() (or set size to sizeof(hyb_furi_limits)): members
 * beyond `size` are taken as 0, so the struct can grow; size 0 reads them all.
 */
typedef struct hyb_furi_limits {
        size_t size;            /* sizeof(hyb_furi_limits), set by _init */
        size_t max_length;      /* bytes of text; default 1024 */
        size_t max_segments;    /* default 32 */
        size_t max_segment;     /* bytes per decoded segment; default 255 */
} hyb_furi_limits;

/* The defaults. */
enum {
        HYB_FURI_MAX_LENGTH = 1024,
        HYB_FURI_MAX_SEGMENTS = 32,
        HYB_FURI_MAX_SEGMENT = 255,
};

typedef enum hyb_furi_scope {
        HYB_SCOPE_PROGRAM = 0,  /* relative: `abc`, `a/b` */
        HYB_SCOPE_HOME = 1,     /* `~/abc` (relative, first segment `~`) */
        HYB_SCOPE_HOST = 2,     /* absolute without authority: `/abc` */
        HYB_SCOPE_CLUSTER = 3,  /* authority host without a dot: `//abc`, `//kitchen/temp` */
        HYB_SCOPE_GLOBAL = 4,   /* authority host with a dot or an IP literal */
} hyb_furi_scope;

typedef enum hyb_furi_seg_kind {
        HYB_SEG_LITERAL = 0,
        HYB_SEG_PLUS = 1,       /* `+`: exactly one segment */
        HYB_SEG_HASH = 2,       /* `#`: zero or more trailing segments (last only) */
} hyb_furi_seg_kind;

/*
 * Initialises the `size` bytes at limits, the struct as the caller's header declares it
 * (sizeof *limits where it is compiled): stamps `size` and writes the defaults (zeroes and the
 * documented default values) of the members that fit in it.
 * Nothing beyond `size` is written; nothing at all for NULL or a size too small to hold
 * the size member.  Call it through the macro hyb_furi_limits_init(limits) below.
 */
HYB_EXPORT void hyb_furi_limits_init_sized(hyb_furi_limits *limits, size_t size);
/*
 * Deprecated: the symbol of programs built before hyb_furi_limits_init_sized.  It
 * cannot know the caller's size and writes this library's sizeof(hyb_furi_limits).
 * In source, hyb_furi_limits_init(limits) is this macro, which passes the caller's size.
 */
HYB_EXPORT void hyb_furi_limits_init(hyb_furi_limits *limits);
#define hyb_furi_limits_init(limits) hyb_furi_limits_init_sized((limits), sizeof *(limits))

/*
 * Parses text[0..len) (len may be (size_t)-1 for a NUL-terminated string).
 * limits may be NULL for the defaults.  On success *ret gets a new reference.
 * On error returns HYB_E_PARSE (syntax) or HYB_E_LIMIT (a limit), and *reterr
 * (when given) says what is wrong with the 0-based byte offset in ->offset and
 * in the message ("empty segment at offset 2").
 */
HYB_EXPORT int hyb_furi_parse(const char *text, size_t len, const hyb_furi_limits *limits,
                              hyb_furi **ret, hyb_error *reterr);

HYB_EXPORT hyb_furi *hyb_furi_ref(const hyb_furi *f);
/* Drops a reference; returns NULL.  NULL is a no-op. */
HYB_EXPORT hyb_furi *hyb_furi_unref(hyb_furi *f);

/* The canonical text (query included), borrowed: valid while f lives. Never NULL. */
HYB_EXPORT const char *hyb_furi_get_str(const hyb_furi *f);
/* The canonical text without the query, borrowed. Never NULL. */
HYB_EXPORT const char *hyb_furi_get_path_str(const hyb_furi *f);

/* Parts.  Strings are borrowed; absent parts give NULL (port gives -1). */
HYB_EXPORT const char *hyb_furi_get_scheme(const hyb_furi *f);
HYB_EXPORT const char *hyb_furi_get_user(const hyb_furi *f);
HYB_EXPORT const char *hyb_furi_get_host(const hyb_furi *f);   /* lower-cased; "+" when a wildcard */
HYB_EXPORT int hyb_furi_get_port(const hyb_furi *f);
HYB_EXPORT const char *hyb_furi_get_query(const hyb_furi *f);  /* without the '?'; NULL if none */
HYB_EXPORT bool hyb_furi_is_absolute(const hyb_furi *f);   /* leading `/` (or an authority) */
HYB_EXPORT bool hyb_furi_is_branch(const hyb_furi *f);     /* trailing `/` */
HYB_EXPORT bool hyb_furi_is_pattern(const hyb_furi *f);    /* any `+`/`#` segment, or host/scheme `+` */
HYB_EXPORT hyb_furi_scope hyb_furi_get_scope(const hyb_furi *f);
HYB_EXPORT size_t hyb_furi_get_n_segments(const hyb_furi *f);
/* Decoded segment i (may contain bytes such as '/' that came from %2F); *ret_len (may be NULL) gets its length.
 * NULL when i is out of range. */
HYB_EXPORT const char *hyb_furi_get_segment(const hyb_furi *f, size_t i, size_t *ret_len);
HYB_EXPORT hyb_furi_seg_kind hyb_furi_get_segment_kind(const hyb_furi *f, size_t i);

/*
 * Query words: true when the query holds the bare word or key `name`
 * (`?sub`, `?int`, `?k=v&sub`).  hyb_furi_get_query_value gives the value of
 * `name=value` (borrowed into *ret_value and *ret_len), 0 if found, -ENOENT if not;
 * a bare word has the empty value.  Items are split by `&`.
 */
HYB_EXPORT bool hyb_furi_query_has(const hyb_furi *f, const char *name);
HYB_EXPORT int hyb_furi_get_query_value(const hyb_furi *f, const char *name,
                                        const char **ret_value, size_t *ret_len);
/* A new fURI equal to f without its query (a new reference to f if it has none). */
HYB_EXPORT int hyb_furi_strip_query(const hyb_furi *f, hyb_furi **ret);

/*
 * `::` names an instruction attached to a resource: `/sys/scheduler::spawn`.
 * When the last segment contains `::`, *ret_resource gets the fURI before it
 * and *ret_name (hyb_free) the name after it; returns 1.  Returns 0 (outputs
 * untouched) when there is no `::`, -EINVAL when nothing follows it (`a::`).
 * The resource keeps f's branch-ness and query; `/sys/::x` gives `/sys`.
 */
HYB_EXPORT int hyb_furi_split_instruction(const hyb_furi *f, hyb_furi **ret_resource,
                                          char **ret_name);

/* Equality of the address (scheme, authority, absolute, segments and their kinds, branch);
 * the query is ignored. */
HYB_EXPORT bool hyb_furi_equal(const hyb_furi *a, const hyb_furi *b);
/* Key order (< 0, 0, > 0): segment by segment; all-digit segments numerically
 * (`x/2` < `x/10`, no overflow for long ones), others by bytes; a prefix sorts first.
 * A total order: all-digit segments sort before other segments; relative < absolute
 * < with an authority; a node before its branch. Consistent with equal. */
HYB_EXPORT int hyb_furi_compare(const hyb_furi *a, const hyb_furi *b);
/* A hash consistent with hyb_furi_equal. */
HYB_EXPORT uint64_t hyb_furi_hash(const hyb_furi *f);

/*
 * Does f match pattern?  When f itself has wildcards the answer is "is f
 * within pattern": every fURI f matches, pattern matches.  Rules of
 * doc/furi.md ("Patterns").  A scheme `+` matches any scheme (not
 * none); a host `+` matches any host, and any user and port unless the
 * pattern names them; a literal host requires the same user and port.
 */
HYB_EXPORT bool hyb_furi_match(const hyb_furi *f, const hyb_furi *pattern);
/* Convenience: parse both and match; < 0 on a parse error (detail in reterr), else 0/1. */
HYB_EXPORT int hyb_furi_match_str(const char *f, const char *pattern, hyb_error *reterr);

/*
 * Builds: a new fURI from f with its segments followed by extra's (uri plus:
 * keep f's leading `/` and extra's trailing `/`, or f's when extra has no
 * segments); extra's leading `..` climb f's segments; the query is extra's,
 * else f's; errors as parse (limits), -EINVAL if extra has an authority.
 */
HYB_EXPORT int hyb_furi_extend(const hyb_furi *f, const hyb_furi *extra, hyb_furi **ret,
                               hyb_error *reterr);
/* RFC 3986 reference resolution of ref against base (uri mult); `..` above the
 * root leaves an absolute path (`a` resolve `../b` is `/b`). */
HYB_EXPORT int hyb_furi_resolve(const hyb_furi *base, const hyb_furi *ref, hyb_furi **ret,
                                hyb_error *reterr);
/* Drops n leading (n > 0) or -n trailing (n < 0) segments (uri lshift/rshift).
 * Dropping leading segments leaves a relative fURI (`/a/b/c` << 1 is `b/c`);
 * dropping trailing ones keeps the authority and absoluteness.  Branch-ness
 * and the query are kept; shifting past the end leaves no segments. */
HYB_EXPORT int hyb_furi_shift(const hyb_furi *f, long n, hyb_furi **ret);
/* The fURI of the first n segments of f (same authority and absoluteness, not a branch,
 * no query); n beyond the end means all of them. */
HYB_EXPORT int hyb_furi_prefix(const hyb_furi *f, size_t n, hyb_furi **ret);

#ifdef __cplusplus
}
#endif

#endif
