/* SPDX-License-Identifier: MIT */
/*
 * The `store:` and `boot:` keys of the daemon's configuration (doc/config.md):
 * where hybridd keeps its host store, and what it writes and runs there at
 * start (FhatOS's boot loader).  Loaded by the same event walk as the rest
 * (config-load.c); only the syntax is checked here: fURIs, obj literals and
 * programs are checked when they are used (hyb_mmadt_boot), where an error is
 * reported with its position and does not stop the daemon.
 *
 *   store:
 *     path: /var/lib/hybrid/store.db      absent: memory only
 *     durability: normal                  memory | normal | full
 *   boot:
 *     data:                               fURI: obj literal, in file order
 *       /config/mode: "'auto'"
 *     programs:                           run in order
 *       - inline: "/in?sub -> |(plus(1).to(/out))"
 *       - file: /etc/hybrid/rules.mmadt
 */
#include <stdio.h>

#include "broker/config-internal.h"
#include "bus/names.h"
#include "hybrid/store.h"

#include "common/util.h"

static void items_free(broker_boot_item *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(v[i].key);
                free(v[i].text);
                free(v[i].file);
                free(v[i].config_file);
        }
        free(v);
}

void broker_config_clear_boot(broker_config *c)
{
        items_free(c->boot_data, c->n_boot_data);
        items_free(c->boot_programs, c->n_boot_programs);
        free(c->store_path);
        c->boot_data = c->boot_programs = NULL;
        c->n_boot_data = c->n_boot_programs = 0;
        c->store_path = NULL;
}

static int items_copy(broker_boot_item **dst, const broker_boot_item *src, size_t n)
{
        broker_boot_item *v;
        bool oom = false;

        *dst = NULL;
        if (!n)
                return 0;
        v = calloc(n, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                v[i] = src[i];
                v[i].key = broker_strdup_or_null(src[i].key, &oom);
                v[i].text = broker_strdup_or_null(src[i].text, &oom);
                v[i].file = broker_strdup_or_null(src[i].file, &oom);
                v[i].config_file = broker_strdup_or_null(src[i].config_file, &oom);
        }
        if (oom) {
                items_free(v, n);
                return -ENOMEM;
        }
        *dst = v;
        return 0;
}

/* dst is a shallow copy of src on entry: its boot and store members are replaced by copies. */
int broker_config_copy_boot(broker_config *dst, const broker_config *src)
{
        bool oom = false;

        dst->boot_data = dst->boot_programs = NULL;
        dst->n_boot_data = dst->n_boot_programs = 0;
        dst->store_path = broker_strdup_or_null(src->store_path, &oom);
        if (oom || items_copy(&dst->boot_data, src->boot_data, src->n_boot_data) < 0 ||
            items_copy(&dst->boot_programs, src->boot_programs, src->n_boot_programs) < 0) {
                broker_config_clear_boot(dst);
                return -ENOMEM;
        }
        dst->n_boot_data = src->n_boot_data;
        dst->n_boot_programs = src->n_boot_programs;
        return 0;
}

/* ---- store: ---- */

static int set_store_path(loader *l, const char *path, const field *f)
{
        broker_config *c = loader_config(l);
        const char *s = NULL;
        size_t len = 0;
        char *dup = NULL;
        int r;

        if (!loader_is_null(loader_event(l))) {
                r = loader_get_string(l, path, "a file path", &s, &len);
                if (r < 0)
                        return r;
                if (len == 0)
                        return loader_fail(l, loader_event(l)->start_mark, path,
                                           "empty file path");
                dup = strndup_safe(s, len);
                if (!dup)
                        return -ENOMEM;
        }
        free(c->store_path);
        c->store_path = dup;
        return 0;
}

static int set_store_durability(loader *l, const char *path, const field *f)
{
        /* HYB_DURABILITY_MEMORY, _NORMAL, _FULL in this order */
        static const char *const names[] = { "memory", "normal", "full" };
        size_t i;
        int r;

        r = loader_get_choice(l, path, "a durability", names, ELEMENTSOF(names), &i);
        if (r < 0)
                return r;
        loader_config(l)->store_durability = (int)i;
        return 0;
}

int broker_config_set_store(loader *l, const char *path, const field *f)
{
        static const field fields[] = {
                { "path", set_store_path },
                { "durability", set_store_durability },
                { "limits", broker_config_set_store_limits },
        };

        return loader_walk_map(l, path, fields, ELEMENTSOF(fields));
}

/* ---- boot: ---- */

typedef struct item_list {
        broker_boot_item *v;
        size_t n, cap;
} item_list;

static int list_push(item_list *il, broker_boot_item **ret)
{
        if (il->n == il->cap) {
                size_t cap = il->cap ? 2 * il->cap : 8;
                broker_boot_item *v = reallocarray_safe(il->v, cap, sizeof(*v));

                if (!v)
                        return -ENOMEM;
                il->v = v;
                il->cap = cap;
        }
        *ret = &il->v[il->n++];
        **ret = (broker_boot_item){ 0 };
        return 0;
}

static void mark_of(loader *l, broker_boot_item *it)
{
        it->line = (unsigned)loader_event(l)->start_mark.line + 1;
        it->column = (unsigned)loader_event(l)->start_mark.column + 1;
}

/* `boot.data`: a mapping of fURI text to obj-literal text, kept in file order. */
static int load_data(loader *l, const char *path, item_list *il)
{
        const yaml_event_t *e = loader_event(l);
        int r;

        if (e->type != YAML_MAPPING_START_EVENT)
                return loader_fail(l, e->start_mark, path,
                                   "expected a mapping of fURI to obj literal, got %s",
                                   e->type == YAML_SEQUENCE_START_EVENT ? "a list" : "a scalar");
        for (;;) {
                broker_boot_item *it;
                const char *s = NULL;
                size_t len = 0;
                char sub[200];

                r = loader_next(l);
                if (r < 0)
                        return r;
                e = loader_event(l);
                if (e->type == YAML_MAPPING_END_EVENT)
                        return 0;
                r = loader_get_string(l, path, "a fURI", &s, &len);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < il->n; i++)
                        if (strlen(il->v[i].key) == len && memcmp(il->v[i].key, s, len) == 0)
                                return loader_fail(l, e->start_mark, path,
                                                   "repeated fURI '%.*s'",
                                                   (int)(len > 64 ? 64 : len), s);
                r = list_push(il, &it);
                if (r < 0)
                        return r;
                it->key = strndup_safe(s, len);
                if (!it->key)
                        return -ENOMEM;
                snprintf(sub, sizeof(sub), "%.120s.%.64s", path, it->key);
                r = loader_next(l);
                if (r < 0)
                        return r;
                r = loader_get_string(l, sub, "an obj literal (a scalar)", &s, &len);
                if (r < 0)
                        return r;
                it->text = strndup_safe(s, len);
                if (!it->text)
                        return -ENOMEM;
                mark_of(l, it);
        }
}

static int set_program_inline(loader *l, const char *path, const field *f);
static int set_program_file(loader *l, const char *path, const field *f);

static int set_program_text(loader *l, const char *path, bool file)
{
        broker_boot_item *it = *loader_user(l);
        const char *s = NULL;
        size_t len = 0;
        char *dup;
        int r;

        if (it->text || it->file)
                return loader_fail(l, loader_event(l)->start_mark, path,
                                   "a program is either inline or a file, not both");
        r = loader_get_string(l, path, file ? "a file path" : "mm-ADT program text", &s, &len);
        if (r < 0)
                return r;
        if (file && len == 0)
                return loader_fail(l, loader_event(l)->start_mark, path, "empty file path");
        dup = strndup_safe(s, len);
        if (!dup)
                return -ENOMEM;
        if (file)
                it->file = dup;
        else
                it->text = dup;
        mark_of(l, it);
        /* A block scalar (`inline: |`) starts on the line after its indicator, at a column
         * the event does not tell (0 until broker_config_boot_from_file reads it); a quoted
         * one a character after its quote. */
        if (!file && (loader_event(l)->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                      loader_event(l)->data.scalar.style == YAML_FOLDED_SCALAR_STYLE)) {
                it->line++;
                it->column = 0;
        } else if (!file && (loader_event(l)->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                             loader_event(l)->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)) {
                it->column++;
        }
        return 0;
}

/* The column (1-based) of the first non-blank character of line `line` of f, or 0. */
static unsigned first_column(FILE *f, unsigned line)
{
        _cleanup_free_ char *buf = NULL;
        size_t alloc = 0;
        unsigned at = 0;

        if (fseek(f, 0, SEEK_SET) < 0)
                return 0;
        while (getline(&buf, &alloc, f) >= 0)
                if (++at == line) {
                        size_t n = strspn(buf, " \t");
                        return buf[n] && buf[n] != '\n' ? (unsigned)n + 1 : 0;
                }
        return 0;
}

int broker_config_boot_from_file(broker_config *c, const char *path, FILE *f)
{
        broker_boot_item *lists[2] = { c->boot_data, c->boot_programs };
        size_t ns[2] = { c->n_boot_data, c->n_boot_programs };

        for (size_t k = 0; k < 2; k++)
                for (size_t i = 0; i < ns[k]; i++) {
                        broker_boot_item *it = &lists[k][i];

                        if (it->config_file)
                                continue; /* from an earlier load */
                        it->config_file = strdup(path);
                        if (!it->config_file)
                                return -ENOMEM;
                        if (k == 1 && it->text && it->column == 0)
                                it->column = first_column(f, it->line);
                }
        return 0;
}

static int set_program_inline(loader *l, const char *path, const field *f)
{
        return set_program_text(l, path, false);
}

static int set_program_file(loader *l, const char *path, const field *f)
{
        return set_program_text(l, path, true);
}

static int program_item(loader *l, const char *path, size_t i, void *ud)
{
        static const field fields[] = {
                { "inline", set_program_inline },
                { "file", set_program_file },
        };
        item_list *il = ud;
        broker_boot_item *it;
        yaml_mark_t m = loader_event(l)->start_mark;
        int r;

        r = list_push(il, &it);
        if (r < 0)
                return r;
        *loader_user(l) = it;
        r = loader_walk_map(l, path, fields, ELEMENTSOF(fields));
        *loader_user(l) = NULL;
        if (r < 0)
                return r;
        if (!it->text && !it->file)
                return loader_fail(l, m, path, "a program needs inline or file");
        return 0;
}

static int set_data(loader *l, const char *path, const field *f)
{
        broker_config *c = loader_config(l);
        item_list il = { 0 };
        int r = 0;

        if (!loader_is_null(loader_event(l)))
                r = load_data(l, path, &il);
        if (r < 0) {
                items_free(il.v, il.n);
                return r;
        }
        /* A mapping in the file replaces the previous one. */
        items_free(c->boot_data, c->n_boot_data);
        c->boot_data = il.v;
        c->n_boot_data = il.n;
        return 0;
}

static int set_programs(loader *l, const char *path, const field *f)
{
        broker_config *c = loader_config(l);
        item_list il = { 0 };
        int r = 0;

        if (!loader_is_null(loader_event(l)))
                r = loader_walk_list(l, path, "a list of programs ({inline: TEXT} or {file: PATH})",
                                     program_item, &il);
        if (r < 0) {
                items_free(il.v, il.n);
                return r;
        }
        items_free(c->boot_programs, c->n_boot_programs);
        c->boot_programs = il.v;
        c->n_boot_programs = il.n;
        return 0;
}

int broker_config_set_boot(loader *l, const char *path, const field *f)
{
        static const field fields[] = {
                { "data", set_data },
                { "programs", set_programs },
        };

        return loader_walk_map(l, path, fields, ELEMENTSOF(fields));
}
