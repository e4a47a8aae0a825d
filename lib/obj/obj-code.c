/* SPDX-License-Identifier: MIT */
/*
 * Code objs as source: the persistent form of HYB_OBJ_CODE.
 *
 * lib/obj does not know the mm-ADT compiler (mmadt sits above the store, which
 * sits above obj), yet a code obj written to a file store must read back as the
 * same code in a process that never built it.  The seam: under
 * HYB_FORMAT_EXACT a code obj prints as `|(<source>)`, where <source> is the
 * text its language hook prints; hyb_obj_parse reads that back as a *source*
 * code obj (these ops) holding the text and nothing else.  The language
 * compiles the text when it first applies the obj (mmadt: code_unbox in
 * value.c) and caches the result here, once, with a compare-and-swap, so the
 * obj stays immutable from the outside and may cross threads.
 *
 *   source code obj
 *   +------------+-------------------------------+
 *   | text, len  | built (atomic hyb_obj *, NULL |
 *   | (EXACT,    |  until the language compiled  |
 *   |  in-code)  |  the text; then its code obj) |
 *   +------------+-------------------------------+
 *
 * A source code obj equals, orders and hashes as the code its text builds:
 * obj-compare.c compares code objs of different ops by their text, and the
 * hash below is the one the mmadt hook uses (FNV-1a over the same text).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "obj-internal.h"

typedef struct code_source {
        char *text;             /* NUL-terminated */
        size_t len;
        hyb_obj *built;         /* atomic: set once by obj_code_source_set_built */
} code_source;

/* The language's compiler, set when it starts (mmadt: hyb_mmadt_new); NULL before. */
static obj_code_compile_fn compiler;

void obj_code_set_compiler(obj_code_compile_fn fn)
{
        __atomic_store_n(&compiler, fn, __ATOMIC_RELEASE);
}

const hyb_obj *obj_code_source_build(const hyb_obj *o)
{
        const hyb_obj *built = obj_code_source_built(o);
        obj_code_compile_fn fn = __atomic_load_n(&compiler, __ATOMIC_ACQUIRE);
        const char *text;
        size_t len;
        hyb_obj *b = NULL;

        if (built || !fn || !(text = obj_code_source(o, &len)))
                return built;
        if (fn(text, len, &b) < 0)
                return NULL;
        return obj_code_source_set_built(o, b);
}

/* EXACT prints the text as read.  Other forms (the REPL's reals with 6 decimals) are the
 * compiled code's, when a language is loaded to compile it; else the text again. */
static int source_format(const hyb_obj *o, unsigned flags, obj_buf *b)
{
        const code_source *s = obj_code_data(o);
        const hyb_obj *built = (flags & HYB_FORMAT_EXACT) ? NULL : obj_code_source_build(o);

        if (built)
                obj_format_to(built, flags, b);
        else
                obj_buf_put(b, s->text, s->len);
        return 0;
}

uint64_t obj_code_text_hash(const char *t, size_t len)
{
        uint64_t h = 1469598103934665603ull;

        for (size_t i = 0; i < len; i++)
                h = (h ^ (unsigned char)t[i]) * 1099511628211ull;
        return h;
}

static uint64_t source_hash(const hyb_obj *o)
{
        const code_source *s = obj_code_data(o);

        return obj_code_text_hash(s->text, s->len);
}

static void source_free(void *data)
{
        code_source *s = data;

        if (!s)
                return;
        hyb_obj_unref(__atomic_load_n(&s->built, __ATOMIC_ACQUIRE));
        free(s->text);
        free(s);
}

static const obj_code_ops source_ops = {
        .name = "source",
        .format = source_format,
        .equal = NULL,  /* obj-compare.c: by text */
        .compare = NULL,
        .hash = source_hash,
        .free = source_free,
};

int obj_new_code_source(const char *text, size_t len, hyb_obj **ret)
{
        code_source *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->text = malloc(len + 1);
        if (!s->text) {
                free(s);
                return -ENOMEM;
        }
        memcpy(s->text, text, len);
        s->text[len] = '\0';
        s->len = len;
        return obj_new_code(&source_ops, s, ret);
}

bool obj_code_is_source(const hyb_obj *o)
{
        return obj_code_get_ops(o) == &source_ops;
}

const char *obj_code_source(const hyb_obj *o, size_t *ret_len)
{
        const code_source *s;

        if (!obj_code_is_source(o))
                return NULL;
        s = obj_code_data(o);
        if (ret_len)
                *ret_len = s->len;
        return s->text;
}

const hyb_obj *obj_code_source_built(const hyb_obj *o)
{
        code_source *s = obj_code_is_source(o) ? obj_code_data(o) : NULL;

        return s ? __atomic_load_n(&s->built, __ATOMIC_ACQUIRE) : NULL;
}

const hyb_obj *obj_code_source_set_built(const hyb_obj *o, hyb_obj *built)
{
        code_source *s = obj_code_is_source(o) ? obj_code_data(o) : NULL;
        hyb_obj *none = NULL;

        if (!s) {
                hyb_obj_unref(built);
                return NULL;
        }
        if (!__atomic_compare_exchange_n(&s->built, &none, built, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
                hyb_obj_unref(built); /* another thread built the same text first */
                return none;
        }
        return built;
}

/*
 * The end of `(<source>)` starting at text[open] == '(': the offset just past the
 * matching ')', or 0 when it does not close.  <source> is code as the EXACT form
 * prints it: strs in quotes with backslash escapes, uris in `<...>` whose `>` is
 * percent-encoded, and `<` otherwise only in the operators `<=` `<-` `<<` (which a
 * bracketed uri never starts with) and `<>`.
 */
size_t obj_code_span(const char *text, size_t len, size_t open)
{
        unsigned depth = 0;

        for (size_t i = open; i < len; i++) {
                char c = text[i];

                if (c == '(') {
                        depth++;
                } else if (c == ')') {
                        if (--depth == 0)
                                return i + 1;
                } else if (c == '\'') {
                        for (i++; i < len && text[i] != '\''; i++)
                                if (text[i] == '\\')
                                        i++;
                        if (i >= len)
                                return 0;
                } else if (c == '<' && i + 1 < len && !strchr("=-<>", text[i + 1])) {
                        const char *q = memchr(text + i, '>', len - i);
                        if (!q)
                                return 0;
                        i = (size_t)(q - text);
                }
        }
        return 0;
}
