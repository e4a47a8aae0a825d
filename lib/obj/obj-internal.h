/* SPDX-License-Identifier: MIT */
/*
 * Internal view of hyb_obj: the struct, the code-kind hook for mm-ADT, the
 * builders that fill an obj before it is shared, a growable text buffer and
 * the jansson-level JSON helpers for the bus.  Not installed.
 *
 *   hyb_obj
 *   +----------+------+-------+---------+----------+----------------------------+
 *   | n_ref    | kind | flags | type_id | value_id | union by kind              |
 *   | (atomic) |      |STATIC | furi*   | furi*    |  b / i / r                 |
 *   +----------+------+-------+---------+----------+  str  {len, bytes*}        |
 *                                                   |  uri  furi*                |
 *                                                   |  lst/objs {n, alloc, items}|
 *                                                   |  rec  {n, alloc, keys,     |
 *                                                   |        values, index}      |
 *                                                   |  code {ops*, data*}        |
 *                                                   +----------------------------+
 *   rec index (only when n > OBJ_REC_INDEX_MIN): open addressing, power-of-two
 *   slots holding pair position + 1 (0 = empty), probed by hyb_obj_hash(key).
 */
#ifndef HYB_OBJ_INTERNAL_H
#define HYB_OBJ_INTERNAL_H

#include <jansson.h>
#include <stdatomic.h>

#include "hybrid/obj.h"

#define OBJ_STATIC 0x1u         /* a singleton or cached obj: ref/unref do nothing */
#define OBJ_REC_INDEX_MIN 8     /* recs with more pairs than this get a hash index */

typedef struct obj_buf obj_buf;

/*
 * The hook mm-ADT fills to add HYB_OBJ_CODE objs.  format writes the text form
 * (flags as hyb_obj_format); equal/hash must agree; compare may be NULL (then
 * code objs order by their EXACT text); free releases data.
 */
typedef struct obj_code_ops {
        const char *name;
        int (*format)(const hyb_obj *o, unsigned flags, obj_buf *buf);
        bool (*equal)(const hyb_obj *a, const hyb_obj *b);
        int (*compare)(const hyb_obj *a, const hyb_obj *b);
        uint64_t (*hash)(const hyb_obj *o);
        void (*free)(void *data);
} obj_code_ops;

struct hyb_obj {
        atomic_ulong n_ref;
        uint8_t kind;           /* hyb_obj_kind */
        uint8_t flags;
        hyb_furi *type_id;      /* NULL: untyped */
        hyb_furi *value_id;     /* NULL: no value id */
        union {
                bool b;
                int64_t i;
                double r;
                struct {
                        size_t len;
                        char *bytes;    /* NUL-terminated copy */
                } str;
                hyb_furi *uri;
                struct {
                        size_t n, alloc;
                        hyb_obj **items;
                } lst;                  /* lst and objs */
                struct {
                        size_t n, alloc;
                        hyb_obj **keys, **values;
                        uint32_t *index;
                        size_t index_size;
                } rec;
                struct {
                        const obj_code_ops *ops;
                        void *data;
                } code;
        } u;
};

/* --- builders (obj.c): fill an obj before it is shared; they steal their obj arguments --- */

/* A new empty lst (kind HYB_OBJ_LST) or stream (HYB_OBJ_OBJS) with room for hint items. */
int obj_lst_builder(hyb_obj_kind kind, size_t hint, hyb_obj **ret);
/* Appends item (stolen, also on failure). */
int obj_lst_append(hyb_obj *lst, hyb_obj *item);
/* A new empty rec with room for hint pairs. */
int obj_rec_builder(size_t hint, hyb_obj **ret);
/* Sets key => value (both stolen, also on failure); an existing equal key keeps its
 * position and takes the new value. */
int obj_rec_set(hyb_obj *rec, hyb_obj *key, hyb_obj *value);
/* Position of key in rec, or -1. */
long obj_rec_find(const hyb_obj *rec, const hyb_obj *key);
/* A str taking ownership of bytes (malloc'd, len bytes plus a NUL). */
int obj_new_str_steal(char *bytes, size_t len, hyb_obj **ret);
/* A uri obj stealing f. */
int obj_new_uri_steal(hyb_furi *f, hyb_obj **ret);
/* A code obj; data is released with ops->free when the obj goes (also on failure). */
int obj_new_code(const obj_code_ops *ops, void *data, hyb_obj **ret);
void *obj_code_data(const hyb_obj *o);
const obj_code_ops *obj_code_get_ops(const hyb_obj *o);

/* --- code as source (obj-code.c): the persistent form of code objs ---
 * Under HYB_FORMAT_EXACT a code obj prints as `|(<source>)`; its hook's format is called
 * with OBJ_FORMAT_IN_CODE added, so code nested in code prints bare (the source is what the
 * language's compiler reads back).  hyb_obj_parse reads `|(<source>)` as a source code obj:
 * the text alone, compiled by the language when it first applies it. */
#define OBJ_FORMAT_IN_CODE 0x100u
/* A source code obj holding a copy of text[0..len). */
int obj_new_code_source(const char *text, size_t len, hyb_obj **ret);
bool obj_code_is_source(const hyb_obj *o);
/* The source text of a source code obj (borrowed, NUL-terminated), else NULL. */
const char *obj_code_source(const hyb_obj *o, size_t *ret_len);
/* The code obj the language built from the text (borrowed), or NULL while unbuilt. */
const hyb_obj *obj_code_source_built(const hyb_obj *o);
/* Keeps built (stolen) as the compiled form of o unless another thread was first; returns
 * the one kept (borrowed from o). */
const hyb_obj *obj_code_source_set_built(const hyb_obj *o, hyb_obj *built);
/* The compiler of the language that prints code: text to a code obj of its own ops.  mm-ADT
 * sets it when a VM is made; REPL formatting and obj_code_source_build use it. */
typedef int (*obj_code_compile_fn)(const char *text, size_t len, hyb_obj **ret);
void obj_code_set_compiler(obj_code_compile_fn fn);
/* The compiled form of a source code obj (borrowed), compiling it now through the compiler
 * set; NULL when o is not source code, no compiler is set, or the text does not compile. */
const hyb_obj *obj_code_source_build(const hyb_obj *o);
/* The hash of a code obj's text (FNV-1a): every language hook hashes its EXACT text so. */
uint64_t obj_code_text_hash(const char *text, size_t len);
/* Offset just past the `)` matching text[open] == '(' in code text, or 0 if unclosed. */
size_t obj_code_span(const char *text, size_t len, size_t open);
/* Type id normalisation of hyb_obj_with_type: a program-scope (bare) name becomes
 * /type/<name>; the base type of o's own kind (/type/int on an int) is dropped.
 * Sets *ret to a new reference or NULL (untyped). */
int obj_normalize_type(hyb_obj_kind kind, const hyb_furi *type_id, hyb_furi **ret);
/* Steals o; *ret is o tagged (o itself when it was not yet shared). */
int obj_with_type_steal(hyb_obj *o, const hyb_furi *type_id, hyb_obj **ret);
int obj_with_id_steal(hyb_obj *o, const hyb_furi *value_id, hyb_obj **ret);

/* --- uris as obj values (obj-compare.c): address plus query --- */
bool obj_furi_equal(const hyb_furi *a, const hyb_furi *b);
int obj_furi_compare(const hyb_furi *a, const hyb_furi *b);
uint64_t obj_furi_hash(const hyb_furi *f);

/* --- text buffer (obj-format.c): errors are sticky, checked once at the end --- */
struct obj_buf {
        char *data;
        size_t len, alloc;
        int err;
};
void obj_buf_put(obj_buf *b, const char *s, size_t n);
void obj_buf_puts(obj_buf *b, const char *s);
void obj_buf_putc(obj_buf *b, char c);
void obj_buf_printf(obj_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the text form of o. */
void obj_format_to(const hyb_obj *o, unsigned flags, obj_buf *b);
/* Appends a uri as obj text (bare, or <...> under HYB_FORMAT_EXACT when needed). */
void obj_format_uri(const hyb_furi *f, unsigned flags, obj_buf *b);
/* Appends a real in shortest round-trip form ("1.0", "1e+300", "nan", "-inf"). */
void obj_format_real_exact(double r, obj_buf *b);
/* Is text (NUL-terminated) a uri that lexes back as itself when written bare? */
bool obj_uri_is_bare(const char *text);

/* --- JSON at the jansson level (obj-json.c), for the bus --- */
/* Converts v (borrowed) to an obj; depth limited to HYB_OBJ_MAX_DEPTH. */
int obj_from_json_t(json_t *v, hyb_obj **ret, hyb_error *reterr);
/* A new json_t for o; HYB_E_TYPE for what JSON cannot hold. */
int obj_to_json_t(const hyb_obj *o, json_t **ret, hyb_error *reterr);
/* The JSON_REAL_PRECISION (1..17) that prints every real of o in shortest round-trip form,
 * without an exponent below 1e15 (1500.0, not 1.5e3). */
int obj_json_real_precision(const hyb_obj *o);

static inline bool obj_kind_is_seq(uint8_t k)
{
        return k == HYB_OBJ_LST || k == HYB_OBJ_OBJS;
}

#endif
