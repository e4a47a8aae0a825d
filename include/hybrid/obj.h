/* SPDX-License-Identifier: MIT */
/*
 * hybrid/obj.h - the value model (doc/obj.md).
 *
 * An obj is `type_id[value]@value_id`: a value of one kind (bool int real str
 * uri lst rec, a stream of objs, or code), an optional type id (a uri such as
 * /type/nat) and an optional value id (the uri where it lives in the store).
 * noobj is absence.  Objs are immutable once built and reference counted with
 * atomic counts, so they may cross threads.  noobj, true and false are static
 * singletons: ref/unref on them are no-ops.
 *
 * Ownership, one rule for every signature: obj and fURI inputs
 * (`const hyb_obj *`, `const hyb_furi *`, and the item arrays
 * `hyb_obj *const *`, which C cannot make const without casts at the call)
 * are borrowed for the call, and the callee takes its own reference of what
 * it keeps (the caller keeps its own); `hyb_obj **ret` outputs are new
 * references the caller must hyb_obj_unref(); `const hyb_obj *` results are
 * borrowed from their container (hyb_obj_ref keeps one, no cast needed).
 */
#ifndef HYBRID_OBJ_H
#define HYBRID_OBJ_H

#include <hybrid/common.h>
#include <hybrid/furi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hyb_obj hyb_obj;

typedef enum hyb_obj_kind {
        HYB_OBJ_NOOBJ = 0,
        HYB_OBJ_BOOL = 1,
        HYB_OBJ_INT = 2,   /* 64-bit signed */
        HYB_OBJ_REAL = 3,  /* double */
        HYB_OBJ_STR = 4,   /* bytes (UTF-8 for JSON) */
        HYB_OBJ_URI = 5,   /* a hyb_furi */
        HYB_OBJ_LST = 6,
        HYB_OBJ_REC = 7,   /* ordered pairs; keys are any obj, unique by hyb_obj_equal */
        HYB_OBJ_OBJS = 8,  /* a stream {a,b,c} */
        HYB_OBJ_CODE = 9,  /* a program fragment (built by the mm-ADT compiler) */
} hyb_obj_kind;

/* Nesting depth accepted by the parsers (text and JSON). */
enum { HYB_OBJ_MAX_DEPTH = 64 };

HYB_EXPORT hyb_obj *hyb_obj_ref(const hyb_obj *o);
/* Drops a reference; returns NULL. NULL is a no-op. */
HYB_EXPORT hyb_obj *hyb_obj_unref(hyb_obj *o);

/* Singletons; never fail; the result need not be unref'd (doing so is harmless). */
HYB_EXPORT hyb_obj *hyb_obj_noobj(void);
HYB_EXPORT hyb_obj *hyb_obj_bool(bool v);

/* Constructors: 0 and a new reference in *ret, or -ENOMEM / -EINVAL. */
HYB_EXPORT int hyb_obj_new_int(int64_t v, hyb_obj **ret);
HYB_EXPORT int hyb_obj_new_real(double v, hyb_obj **ret);
/* len (size_t)-1 means strlen(s). The bytes are copied. */
HYB_EXPORT int hyb_obj_new_str(const char *s, size_t len, hyb_obj **ret);
HYB_EXPORT int hyb_obj_new_uri(const hyb_furi *f, hyb_obj **ret);
/* Parses text as a fURI (errors as hyb_furi_parse). */
HYB_EXPORT int hyb_obj_new_uri_str(const char *text, hyb_obj **ret, hyb_error *reterr);
/* items[0..n) (each referenced). */
HYB_EXPORT int hyb_obj_new_lst(hyb_obj *const *items, size_t n, hyb_obj **ret);
HYB_EXPORT int hyb_obj_new_objs(hyb_obj *const *items, size_t n, hyb_obj **ret);
/* Pairs keys[i] => values[i], in order; a repeated key keeps its first position
 * and takes the later value. */
HYB_EXPORT int hyb_obj_new_rec(hyb_obj *const *keys, hyb_obj *const *values, size_t n,
                               hyb_obj **ret);

/* A copy of o tagged with a type id (NULL removes it) / a value id (NULL removes it). */
HYB_EXPORT int hyb_obj_with_type(const hyb_obj *o, const hyb_furi *type_id, hyb_obj **ret);
HYB_EXPORT int hyb_obj_with_id(const hyb_obj *o, const hyb_furi *value_id, hyb_obj **ret);

/* Getters.  Wrong-kind access returns the zero value (false, 0, 0.0, NULL). */
HYB_EXPORT hyb_obj_kind hyb_obj_get_kind(const hyb_obj *o);
HYB_EXPORT const char *hyb_obj_kind_name(hyb_obj_kind k); /* "int", "noobj", ... */
HYB_EXPORT bool hyb_obj_is_noobj(const hyb_obj *o);
HYB_EXPORT bool hyb_obj_get_bool(const hyb_obj *o);
HYB_EXPORT int64_t hyb_obj_get_int(const hyb_obj *o);
HYB_EXPORT double hyb_obj_get_real(const hyb_obj *o);
/* Borrowed bytes (NUL-terminated for convenience); ret_len may be NULL. */
HYB_EXPORT const char *hyb_obj_get_str(const hyb_obj *o, size_t *ret_len);
HYB_EXPORT const hyb_furi *hyb_obj_get_uri(const hyb_obj *o);
HYB_EXPORT const hyb_furi *hyb_obj_get_type_id(const hyb_obj *o);   /* NULL if untyped */
HYB_EXPORT const hyb_furi *hyb_obj_get_value_id(const hyb_obj *o);  /* NULL if none */
/* Elements of a lst/objs, pairs of a rec: count, then borrowed items. */
HYB_EXPORT size_t hyb_obj_get_len(const hyb_obj *o);
HYB_EXPORT const hyb_obj *hyb_obj_get_at(const hyb_obj *o, size_t i);        /* lst/objs element */
HYB_EXPORT const hyb_obj *hyb_obj_get_rec_key(const hyb_obj *o, size_t i);
HYB_EXPORT const hyb_obj *hyb_obj_get_rec_value(const hyb_obj *o, size_t i);
/* The value under key (by hyb_obj_equal), borrowed, or NULL. */
HYB_EXPORT const hyb_obj *hyb_obj_get_field(const hyb_obj *o, const hyb_obj *key);

/* Deep equality (kind, value, type id; value ids are ignored), a total order, a hash
 * consistent with equality. Reals: 1.0 and 1 are different kinds, so not equal. */
HYB_EXPORT bool hyb_obj_equal(const hyb_obj *a, const hyb_obj *b);
HYB_EXPORT int hyb_obj_compare(const hyb_obj *a, const hyb_obj *b);
HYB_EXPORT uint64_t hyb_obj_hash(const hyb_obj *o);

/* Text form (doc/obj.md "Text form"). */
typedef enum hyb_format_flags {
        HYB_FORMAT_REPL = 0,  /* the REPL form: reals with 6 decimals, /type/ stripped */
        HYB_FORMAT_EXACT = 1, /* parse(format(x)) == x: uris bracketed where needed,
                                 reals in shortest round-trip form, code as |(source) */
} hyb_format_flags;
/* Formats o; *ret is a NUL-terminated string to hyb_free(). noobj formats as "noobj". */
HYB_EXPORT int hyb_obj_format(const hyb_obj *o, unsigned flags, char **ret);

/*
 * Parses one literal obj: bool, int, real, str, uri (bare or <...>), lst, rec,
 * a stream {a,b}, typed values `T[v]` (a bare type name T means /type/T),
 * value ids `v@id`, noobj, and code in its EXACT form `|(source)` (kept as
 * text, compiled by mm-ADT when first applied).  Surrounding white space is allowed; anything
 * else after the literal is an error.  Errors: HYB_E_PARSE / HYB_E_DEPTH /
 * HYB_E_OVERFLOW, with offset, line and column in *reterr.
 */
HYB_EXPORT int hyb_obj_parse(const char *text, size_t len, hyb_obj **ret, hyb_error *reterr);

/*
 * The JSON mapping of doc/obj.md.  to_json: *ret (hyb_free) is compact
 * JSON text; errors for objs JSON cannot hold (code, invalid UTF-8) are
 * HYB_E_TYPE.  from_json: any JSON value; `@`-members as the spec says, other
 * `@` keys rejected (HYB_E_PARSE), depth limited (HYB_E_DEPTH).
 */
HYB_EXPORT int hyb_obj_to_json(const hyb_obj *o, char **ret, hyb_error *reterr);
HYB_EXPORT int hyb_obj_from_json(const char *text, size_t len, hyb_obj **ret,
                                 hyb_error *reterr);

#ifdef __cplusplus
}
#endif

#endif
