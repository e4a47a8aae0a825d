/* SPDX-License-Identifier: MIT */
/*
 * Declarative endpoints: method tables stamped with their element size, the
 * dynamic add-one-method twin, the lookup of the method an incoming call
 * names, and argument policies checked with jansson before a handler runs.
 */
#include <jansson.h>
#include <stdio.h>

#include "bus-internal.h"
#include "names.h"
#include "policy.h"
#include "common/util.h"

static const char *const type_names[] = {
        [HYB_JSON_ANY] = "any",         [HYB_JSON_STRING] = "string", [HYB_JSON_INTEGER] = "integer",
        [HYB_JSON_NUMBER] = "number",   [HYB_JSON_BOOLEAN] = "boolean", [HYB_JSON_OBJECT] = "object",
        [HYB_JSON_ARRAY] = "array",     [HYB_JSON_NULL] = "null",
};

static bool type_ok(int type, const json_t *v)
{
        switch (type) {
        case HYB_JSON_ANY:
                return true;
        case HYB_JSON_STRING:
                return json_is_string(v);
        case HYB_JSON_INTEGER:
                return json_is_integer(v);
        case HYB_JSON_NUMBER:
                return json_is_number(v);
        case HYB_JSON_BOOLEAN:
                return json_is_boolean(v);
        case HYB_JSON_OBJECT:
                return json_is_object(v);
        case HYB_JSON_ARRAY:
                return json_is_array(v);
        case HYB_JSON_NULL:
                return json_is_null(v);
        }
        return false;
}

int bus_policy_check_json(const hyb_arg_policy *args, size_t n, const json_t *j, hyb_error *reterr)
{
        if (!json_is_object(j))
                return err_set(reterr, HYB_E_BAD_REQUEST, -1, "params must be a JSON object");
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_object_get(j, args[i].key);
                if (!v) {
                        if (args[i].required)
                                return err_set(reterr, HYB_E_BAD_REQUEST, -1,
                                               "missing required key \"%s\"", args[i].key);
                        continue;
                }
                if (!type_ok(args[i].type, v))
                        return err_set(reterr, HYB_E_BAD_REQUEST, -1, "key \"%s\" must be of type %s",
                                       args[i].key, type_names[args[i].type]);
        }
        return 0;
}

int bus_policy_check(const hyb_arg_policy *args, size_t n, const void *body, size_t len,
                     hyb_error *reterr)
{
        json_error_t jerr;
        json_t *j;
        int r;

        j = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
        if (!j)
                return err_set(reterr, HYB_E_BAD_REQUEST, jerr.position, "params are not valid JSON: %s",
                               jerr.text);
        r = bus_policy_check_json(args, n, j, reterr);
        json_decref(j);
        return r;
}

HYB_EXPORT int hyb_endpoint_check_policy(const hyb_arg_policy *args, size_t n_args, const void *body,
                                         size_t len, hyb_error *reterr)
{
        hyb_assert_return((args || n_args == 0) && (body || len == 0), -EINVAL);
        for (size_t i = 0; i < n_args; i++)
                hyb_assert_return(args[i].key && args[i].type >= HYB_JSON_ANY &&
                                  args[i].type <= HYB_JSON_NULL, -EINVAL);
        return bus_policy_check(args, n_args, body ? body : "", len, reterr);
}

json_t *bus_policy_json(const hyb_arg_policy *args, size_t n)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++)
                json_array_append_new(a, json_pack("{s:s, s:s, s:b}", "key", args[i].key, "type",
                                                   type_names[args[i].type], "required", args[i].required));
        return a;
}

/* Validates and copies one method definition into a fresh bus_method. */
/* The method an incoming call names (bus names compare case-insensitively), or NULL. */
bus_method *bus_find_method(hyb_bus *bus, const char *name, size_t len)
{
        for (bus_method *m = bus->methods; m; m = m->next)
                if (bus_name_equal(m->name, strlen(m->name), name, len))
                        return m;
        return NULL;
}

static int method_new(hyb_bus *bus, const char *name, const hyb_arg_policy *args, size_t n_args,
                      unsigned flags, hyb_bus_method_fn handler, bus_method **ret, hyb_error *reterr)
{
        bus_method *m;
        size_t keys = 0;
        int r;

        if (!name || !handler || (n_args && !args))
                return err_set(reterr, -EINVAL, -1, "method without name or handler");
        r = bus_name_check_ident(name, strlen(name), reterr);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_args; i++) {
                if (!args[i].key || args[i].type < HYB_JSON_ANY || args[i].type > HYB_JSON_NULL)
                        return err_set(reterr, -EINVAL, -1, "method %s: bad policy entry %zu", name, i);
                keys += strlen(args[i].key) + 1;
        }
        if (bus_find_method(bus, name, strlen(name)))
                return err_set(reterr, HYB_E_CONFLICT, -1, "method %s already registered", name);
        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->name = strdup(name);
        if (n_args)
                m->args = malloc(n_args * sizeof *m->args + keys);
        if (!m->name || (n_args && !m->args)) {
                free(m->name);
                free(m->args);
                free(m);
                return -ENOMEM;
        }
        /* No arguments: m->args stays NULL, and NULL + 0 is undefined in C. */
        char *k = n_args ? (char *)(m->args + n_args) : NULL;
        for (size_t i = 0; i < n_args; i++) {
                size_t l = strlen(args[i].key) + 1;
                memcpy(k, args[i].key, l);
                m->args[i] = (hyb_arg_policy){ k, args[i].type, args[i].required ? 1 : 0 };
                k += l;
        }
        m->n_args = n_args;
        m->flags = flags;
        m->handler = handler;
        m->bus = bus;
        *ret = m;
        return 0;
}

HYB_EXPORT int hyb_endpoint_register_method(hyb_bus *bus, const char *name, const hyb_arg_policy *args,
                                       size_t n_args, const char *for_host, const char *for_app,
                                       unsigned flags, hyb_bus_method_fn handler, void *userdata,
                                       hyb_slot **ret_slot, hyb_error *reterr)
{
        bus_method *m;
        int r;

        hyb_assert_return(bus, -EINVAL);
        r = method_new(bus, name, args, n_args, flags, handler, &m, reterr);
        if (r < 0)
                return r;
        if (ret_slot)
                slot_init(&m->slot, &bus_method_slot_ops, userdata);
        else
                slot_init_floating(&m->slot, &bus_method_slot_ops, userdata);
        r = bus_method_register(bus, m, for_host, for_app, reterr);
        if (r < 0) {
                m->bus = NULL;
                bus_method_revoke(m);
                return r;
        }
        if (ret_slot)
                *ret_slot = &m->slot;
        return 0;
}

/* A table's one slot: revoking it revokes every method of the table. */
typedef struct bus_table {
        hyb_slot slot;
        bus_method *methods; /* chained by group_next */
} bus_table;

static void table_slot_disconnect(hyb_slot *slot)
{
        bus_table *t = (bus_table *)slot;

        while (t->methods) {
                bus_method *m = t->methods;
                t->methods = m->group_next;
                bus_method_revoke(m);
        }
        free(t);
}

/* Handlers of a table get the table's userdata: pass a new one on. */
static void table_userdata_changed(hyb_slot *slot)
{
        bus_table *t = (bus_table *)slot;

        for (bus_method *m = t->methods; m; m = m->group_next)
                m->slot.userdata = slot->userdata;
}

static const slot_ops table_slot_ops = { .disconnect = table_slot_disconnect,
                                         .userdata_changed = table_userdata_changed };

HYB_EXPORT int hyb_endpoint_register_table(hyb_bus *bus, const hyb_method_def *table, size_t elem_size,
                                      size_t n, void *userdata, hyb_slot **ret_slot,
                                      hyb_error *reterr)
{
        bus_table *t;
        int r;

        hyb_assert_return(bus && (table || n == 0), -EINVAL);
        /* Older callers may pass a smaller struct, but never one without flags. */
        hyb_assert_return(elem_size >= offsetof(hyb_method_def, flags) + sizeof(unsigned), -EINVAL);
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        slot_init(&t->slot, &table_slot_ops, userdata);
        for (size_t i = 0; i < n; i++) {
                const hyb_method_def *d = (const hyb_method_def *)((const char *)table + i * elem_size);
                bus_method *m;

                r = method_new(bus, d->name, d->args, d->n_args, d->flags, d->handler, &m, reterr);
                if (r >= 0) {
                        /* Handlers get the table's userdata: share it through the method's slot. */
                        slot_init(&m->slot, &bus_method_slot_ops, userdata);
                        r = bus_method_register(bus, m, d->for_host, d->for_app, reterr);
                        if (r < 0) {
                                m->bus = NULL;
                                bus_method_revoke(m);
                        }
                }
                if (r < 0) {
                        err_prefix(reterr, "method %zu (%s)", i, d->name ? d->name : "?");
                        table_slot_disconnect(&t->slot);
                        return r;
                }
                m->group_next = t->methods;
                t->methods = m;
        }
        if (ret_slot) {
                *ret_slot = &t->slot;
                return 0;
        }
        /* No slot: the methods live as long as the bus, which holds the table's references. */
        for (bus_method *m = t->methods; m; m = m->group_next)
                m->slot.floating = true;
        free(t);
        return 0;
}
