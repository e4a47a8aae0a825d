/* SPDX-License-Identifier: MIT */
/*
 * bus_suite "slots": the sd-bus slot API through the public headers only:
 * userdata get/set (a table passes it to every method), the destroy callback
 * and its return codes, floating slots, and keeping what a callback receives
 * (hyb_bus_reply_ref / hyb_obj_ref on the const pointers, no casts).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_bus.h"

typedef struct seen {
        atomic_int n;
        void *last_ud;
} seen;

static seen handled;

static int on_who(hyb_bus_request *req, void *ud)
{
        handled.last_ud = ud;
        atomic_fetch_add(&handled.n, 1);
        return hyb_bus_request_reply(req, 200, "{}", 2, HYB_BODY_JSON);
}

static atomic_int n_destroyed;
static void *destroyed_ud;
static void on_destroy(void *ud)
{
        destroyed_ud = ud;
        atomic_fetch_add(&n_destroyed, 1);
}

typedef struct kept {
        atomic_int done;
        hyb_bus_reply *reply;
} kept;

static void on_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *ud)
{
        kept *k = ud;
        k->reply = hyb_bus_reply_ref(reply); /* const in, kept without a cast */
        atomic_store(&k->done, 1);
}

/* Calls `method` of srv from cli without threads: pumps both until the reply. */
static int call_pumped(hyb_bus *cli, hyb_bus *srv, const char *method)
{
        kept k = { 0 };
        int status;

        ck_assert_int_eq(hyb_bus_call_async(cli, "@localhost/org.test.srv/main", method, "{}", 2,
                                            HYB_BODY_JSON, 2000, on_reply, &k, NULL),
                         0);
        for (int i = 0; i < 800 && !atomic_load(&k.done); i++) {
                while (hyb_bus_process(srv) > 0 || hyb_bus_process(cli) > 0)
                        ;
                if (!atomic_load(&k.done))
                        hyb_bus_wait(srv, 2500);
        }
        ck_assert_int_eq(atomic_load(&k.done), 1);
        /* The reply outlived the callback that received it. */
        status = hyb_bus_reply_get_status(k.reply);
        hyb_bus_reply_unref(k.reply);
        return status;
}

START_TEST(test_slot_userdata_and_destroy)
{
        tbroker t;
        int ud1 = 1, ud2 = 2;
        hyb_slot *slot = NULL;
        hyb_destroy_fn fn = NULL;
        hyb_error err;

        tb_start(&t, NULL, false);
        hyb_bus *srv = tb_connect(&t, "org.test.srv", "main");
        hyb_bus *cli = tb_connect(&t, "org.test.cli", "main");
        atomic_store(&handled.n, 0);
        atomic_store(&n_destroyed, 0);

        ck_assert_int_eq(hyb_bus_register_procedure(srv, "who", NULL, NULL, on_who, &ud1, &slot, &err), 0);
        ck_assert_ptr_eq(hyb_slot_get_userdata(slot), &ud1);
        ck_assert_int_eq(call_pumped(cli, srv, "who"), 200);
        ck_assert_ptr_eq(handled.last_ud, &ud1);

        /* set_userdata returns the old one; the handler sees the new one. */
        ck_assert_ptr_eq(hyb_slot_set_userdata(slot, &ud2), &ud1);
        ck_assert_ptr_eq(hyb_slot_get_userdata(slot), &ud2);
        ck_assert_int_eq(call_pumped(cli, srv, "who"), 200);
        ck_assert_ptr_eq(handled.last_ud, &ud2);

        /* The destroy callback: return codes, then it runs once on the last unref. */
        ck_assert_int_eq(hyb_slot_get_destroy_callback(slot, &fn), 0);
        ck_assert_ptr_null(fn);
        ck_assert_int_eq(hyb_slot_set_destroy_callback(NULL, on_destroy), -EINVAL);
        ck_assert_int_eq(hyb_slot_get_destroy_callback(NULL, &fn), -EINVAL);
        ck_assert_int_eq(hyb_slot_set_destroy_callback(slot, on_destroy), 0);
        ck_assert_int_eq(hyb_slot_get_destroy_callback(slot, &fn), 1);
        ck_assert_ptr_eq(fn, on_destroy);
        ck_assert_int_eq(hyb_slot_get_floating(slot), 0);
        ck_assert_ptr_eq(hyb_slot_ref(slot), slot); /* a second reference: still registered */
        ck_assert_ptr_null(hyb_slot_unref(slot));
        ck_assert_int_eq(atomic_load(&n_destroyed), 0);
        ck_assert_int_eq(call_pumped(cli, srv, "who"), 200);
        ck_assert_ptr_null(hyb_slot_unref(slot));
        ck_assert_int_eq(atomic_load(&n_destroyed), 1);
        ck_assert_ptr_eq(destroyed_ud, &ud2);
        /* Revoked: the broker no longer knows the method. */
        ck_assert_int_eq(call_pumped(cli, srv, "who"), 404);

        hyb_bus_unref(cli);
        hyb_bus_unref(srv);
        ck_assert_int_eq(atomic_load(&n_destroyed), 1);
        tb_stop(&t);
}
END_TEST

static const hyb_method_def who_table[] = {
        HYB_METHOD_NOARGS("who", on_who),
        HYB_METHOD_NOARGS("whom", on_who),
};

START_TEST(test_slot_table_userdata)
{
        tbroker t;
        int ud1 = 1, ud2 = 2;
        hyb_slot *slot = NULL;
        hyb_error err;

        tb_start(&t, NULL, false);
        hyb_bus *srv = tb_connect(&t, "org.test.srv", "main");
        hyb_bus *cli = tb_connect(&t, "org.test.cli", "main");
        ck_assert_int_eq(hyb_endpoint_register_table(srv, who_table, sizeof who_table[0], 2, &ud1, &slot, &err), 0);
        ck_assert_int_eq(call_pumped(cli, srv, "whom"), 200);
        ck_assert_ptr_eq(handled.last_ud, &ud1);
        ck_assert_ptr_eq(hyb_slot_set_userdata(slot, &ud2), &ud1);
        ck_assert_int_eq(call_pumped(cli, srv, "who"), 200);
        ck_assert_ptr_eq(handled.last_ud, &ud2);
        ck_assert_int_eq(call_pumped(cli, srv, "whom"), 200);
        ck_assert_ptr_eq(handled.last_ud, &ud2);
        /* A table's slot is the caller's: it cannot float. */
        ck_assert_int_eq(hyb_slot_set_floating(slot, true), -EOPNOTSUPP);
        hyb_slot_unref(slot);
        ck_assert_int_eq(call_pumped(cli, srv, "who"), 404);
        hyb_bus_unref(cli);
        hyb_bus_unref(srv);
        tb_stop(&t);
}
END_TEST

START_TEST(test_slot_floating)
{
        tbroker t;
        int ud = 7;
        hyb_slot *slot = NULL;
        hyb_error err;

        tb_start(&t, NULL, false);
        hyb_bus *srv = tb_connect(&t, "org.test.srv", "main");
        hyb_bus *cli = tb_connect(&t, "org.test.cli", "main");
        atomic_store(&n_destroyed, 0);
        ck_assert_int_eq(hyb_bus_register_procedure(srv, "who", NULL, NULL, on_who, &ud, &slot, &err), 0);
        ck_assert_int_eq(hyb_slot_set_destroy_callback(slot, on_destroy), 0);
        ck_assert_int_eq(hyb_slot_set_floating(NULL, true), -EINVAL);
        ck_assert_int_eq(hyb_slot_set_floating(slot, true), 0);
        ck_assert_int_eq(hyb_slot_get_floating(slot), 1);
        ck_assert_int_eq(hyb_slot_set_floating(slot, true), 0); /* idempotent */
        /* Dropping the caller's reference leaves the method registered with the bus. */
        hyb_slot_unref(slot);
        ck_assert_int_eq(atomic_load(&n_destroyed), 0);
        ck_assert_int_eq(call_pumped(cli, srv, "who"), 200);
        ck_assert_ptr_eq(handled.last_ud, &ud);

        /* A second one floated and brought back: the caller owns it again. */
        hyb_slot *s2 = NULL;
        ck_assert_int_eq(hyb_bus_register_procedure(srv, "whom", NULL, NULL, on_who, &ud, &s2, &err), 0);
        ck_assert_int_eq(hyb_slot_set_floating(s2, true), 0);
        ck_assert_int_eq(hyb_slot_set_floating(s2, false), 0);
        ck_assert_int_eq(hyb_slot_get_floating(s2), 0);
        hyb_slot_unref(s2);
        ck_assert_int_eq(call_pumped(cli, srv, "whom"), 404);

        /* The floating one goes with its bus, and its destroy callback runs then. */
        hyb_bus_unref(srv);
        ck_assert_int_eq(atomic_load(&n_destroyed), 1);
        ck_assert_ptr_eq(destroyed_ud, &ud);
        hyb_bus_unref(cli);
        tb_stop(&t);
}
END_TEST

static void on_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        hyb_obj **keep = ud;
        hyb_obj_unref(*keep);
        *keep = hyb_obj_ref(payload); /* const in, kept without a cast */
}

START_TEST(test_slot_store_kept_and_not_floating)
{
        hyb_store *st = NULL;
        hyb_furi *pat = NULL;
        hyb_obj *kept_obj = NULL, *v = NULL;
        hyb_slot *slot = NULL;
        hyb_error err;

        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, &err), 0);
        ck_assert_int_eq(hyb_furi_parse("/a/#", (size_t)-1, NULL, &pat, &err), 0);
        ck_assert_int_eq(hyb_store_subscribe(st, pat, 0, on_msg, &kept_obj, &slot, &err), 0);
        ck_assert_int_eq(hyb_obj_new_int(42, &v), 0);
        ck_assert_int_eq(hyb_store_write_str(st, "/a/b", v, 0, &err), 0);
        hyb_obj_unref(v);
        while (hyb_store_process(st) > 0)
                ;
        ck_assert_ptr_nonnull(kept_obj);
        ck_assert_int_eq(hyb_obj_get_int(kept_obj), 42);
        /* Store subscriptions belong to their caller: they cannot float. */
        ck_assert_int_eq(hyb_slot_set_floating(slot, true), -EOPNOTSUPP);
        ck_assert_int_eq(hyb_slot_get_floating(slot), 0);
        hyb_slot_unref(slot);
        hyb_obj_unref(kept_obj);
        hyb_furi_unref(pat);
        hyb_store_unref(st);
}
END_TEST

void bus_tcase_slots(Suite *s)
{
        TCase *tc = tcase_create("slots");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_slot_userdata_and_destroy);
        tcase_add_test(tc, test_slot_table_userdata);
        tcase_add_test(tc, test_slot_floating);
        tcase_add_test(tc, test_slot_store_kept_and_not_floating);
        suite_add_tcase(s, tc);
}
