/* SPDX-License-Identifier: MIT */
/*
 * loop.c - a library connection (bus or store backend) driven by Node's libuv loop:
 * uv_poll_t on its fd, uv_timer_t on its deadline (hyb_bus_get_timeout,
 * hyb_backend_get_timeout).  Nothing here blocks the loop.
 */
#include "hybrid-node.h"

#include <stdlib.h>

#define MAX_STEPS 256 /* process steps per wake-up before yielding to the loop */

static void close_cb(uv_handle_t *h);

static uv_loop_t *loop_of(napi_env env)
{
        uv_loop_t *l = NULL;
        napi_get_uv_event_loop(env, &l);
        return l;
}

napi_value hn_io_self(hn_io *io)
{
        napi_value v = NULL;
        if (io->self && napi_get_reference_value(io->env, io->self, &v) != napi_ok)
                return NULL;
        return v;
}

int hn_io_init(hn_io *io, napi_env env, napi_value self, const char *resource_name)
{
        napi_value name;

        io->env = env;
        io->deadline = UINT64_MAX;
        if (napi_create_reference(env, self, 0, &io->self) != napi_ok)
                return -1;
        napi_create_string_utf8(env, resource_name, NAPI_AUTO_LENGTH, &name);
        if (napi_async_init(env, self, name, &io->actx) != napi_ok)
                return -1;
        return 0;
}

static void io_run(hn_io *io)
{
        napi_env env = io->env;
        napi_handle_scope hs;
        napi_callback_scope cs;
        napi_value res;
        int r = 0;

        if (io->closed || io->running)
                return;
        io->running = true;
        io->shared_scope = 0;
        napi_open_handle_scope(env, &hs);
        res = hn_io_self(io);
        if (!res)
                napi_create_object(env, &res);
        napi_open_callback_scope(env, res, io->actx, &cs);
        for (int i = 0; i < MAX_STEPS && !io->closed; i++) {
                r = io->process(io);
                if (r <= 0)
                        break;
        }
        if (r < 0 && !io->closed)
                io->on_broken(io, r);
        /* Closing the outermost callback scope runs the microtasks and nextTicks. */
        napi_close_callback_scope(env, cs);
        napi_close_handle_scope(env, hs);
        io->running = false;
        if (!io->finalized)
                hn_io_update_ref(io);
        hn_io_rearm(io);
}

void hn_io_rearm_soon(hn_io *io)
{
        if (!io->running)
                hn_io_rearm(io);
}

void hn_io_update_ref_soon(hn_io *io)
{
        if (!io->running)
                hn_io_update_ref(io);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
        hn_io *io = h->data;
        /* On an error (a reset connection is POLLERR) libuv has stopped the handle: rearm
         * must start it again, or the library, which reads on its next call only, would
         * not learn of the reset before a deadline (or ever, with none). */
        if (status < 0)
                io->uv_events = 0;
        io->woke_readable = status < 0 || (events & UV_READABLE);
        io_run(io);
        io->woke_readable = false;
}

static void timer_cb(uv_timer_t *h)
{
        hn_io *io = h->data;
        io->deadline = UINT64_MAX; /* one-shot: rearm sets it again */
        io_run(io);
}

int hn_io_start(hn_io *io, int fd)
{
        uv_loop_t *l = loop_of(io->env);
        int r;

        if (!l)
                return -1;
        if ((r = uv_timer_init(l, &io->timer)) < 0)
                return r;
        io->timer.data = io;
        io->open_handles++;
        if ((r = uv_poll_init(l, &io->poll, fd)) < 0) {
                io->closed = true; /* hn_io_close will not run: close the timer here */
                uv_close((uv_handle_t *)&io->timer, close_cb);
                return r;
        }
        io->poll.data = io;
        io->open_handles++;
        io->started = true;
        /* idle handles do not keep the process alive (net.Socket.unref semantics) */
        uv_unref((uv_handle_t *)&io->poll);
        uv_unref((uv_handle_t *)&io->timer);
        hn_io_update_ref(io);
        hn_io_rearm(io);
        return 0;
}

void hn_io_rearm(hn_io *io)
{
        uint64_t dl = UINT64_MAX;
        int ev, uvev;

        if (io->closed || !io->started)
                return;
        ev = io->get_events(io);
        if (ev < 0) {
                if (io->uv_events) {
                        uv_poll_stop(&io->poll);
                        io->uv_events = 0;
                }
                return;
        }
        uvev = UV_READABLE | ((ev & HYB_BUS_EVENT_OUT) ? UV_WRITABLE : 0);
        if (uvev != io->uv_events) {
                uv_poll_start(&io->poll, uvev, poll_cb);
                io->uv_events = uvev;
        }
        if (io->get_timeout(io, &dl) < 0)
                dl = UINT64_MAX;
        /* A later deadline than the one the timer waits for needs no new timer: when it
         * fires early, process expires nothing and this sets the timer again.  (Each call
         * pushes the deadline out; restarting the timer for each would cost every call.) */
        if (dl != io->deadline && !(dl > io->deadline && uv_is_active((uv_handle_t *)&io->timer))) {
                io->deadline = dl;
                if (dl == UINT64_MAX) {
                        uv_timer_stop(&io->timer);
                } else {
                        uint64_t now = hyb_now_usec();
                        uv_timer_start(&io->timer, timer_cb,
                                       dl <= now ? 0 : (dl - now + 999) / 1000, 0);
                }
        }
}

void hn_io_run_now(hn_io *io)
{
        if (io->closed || !io->started)
                return;
        io->woke_readable = true;
        io_run(io);
        io->woke_readable = false;
}

void hn_io_kick(hn_io *io)
{
        if (io->closed || !io->started)
                return;
        io->deadline = 0;
        uv_timer_start(&io->timer, timer_cb, 0, 0);
}

void hn_io_update_ref(hn_io *io)
{
        bool active = !io->closed && (io->keep > 0 || io->pending > 0);
        /* while connecting or with operations in flight, the JS object stays too */
        bool strong = io->keep > 0 || io->pending > 0;
        uint32_t count;

        if (io->started && !io->closed) {
                if (active) {
                        uv_ref((uv_handle_t *)&io->poll);
                        uv_ref((uv_handle_t *)&io->timer);
                } else {
                        uv_unref((uv_handle_t *)&io->poll);
                        uv_unref((uv_handle_t *)&io->timer);
                }
        }
        if (strong != io->strong && io->self && !io->finalized) {
                if (strong)
                        napi_reference_ref(io->env, io->self, &count);
                else
                        napi_reference_unref(io->env, io->self, &count);
                io->strong = strong;
        }
}

static void maybe_release(hn_io *io)
{
        if (io->finalized && io->open_handles == 0)
                io->release(io);
}

static void close_cb(uv_handle_t *h)
{
        hn_io *io = h->data;
        io->open_handles--;
        maybe_release(io);
}

void hn_io_close(hn_io *io)
{
        if (io->closed)
                return;
        io->closed = true;
        io->keep = 0;
        if (io->started) {
                uv_poll_stop(&io->poll);
                uv_timer_stop(&io->timer);
                uv_close((uv_handle_t *)&io->poll, close_cb);
                uv_close((uv_handle_t *)&io->timer, close_cb);
        }
        if (!io->finalized)
                hn_io_update_ref(io);
}

void hn_io_finalize(hn_io *io)
{
        hn_io_close(io);
        io->finalized = true;
        if (io->self) {
                napi_delete_reference(io->env, io->self);
                io->self = NULL;
        }
        if (io->actx) {
                napi_async_destroy(io->env, io->actx);
                io->actx = NULL;
        }
        maybe_release(io);
}

napi_value hn_io_open_async(hn_io *io, napi_env env, napi_value self, const char *resource_name,
                            const char *work_name, napi_async_execute_callback execute,
                            napi_async_complete_callback complete, void *data,
                            napi_async_work *work, napi_deferred *def)
{
        napi_value promise, name;

        HN_CALL(env, hn_io_init(io, env, self, resource_name) < 0 ? napi_generic_failure
                                                                  : napi_ok);
        HN_CALL(env, napi_create_promise(env, def, &promise));
        napi_create_string_utf8(env, work_name, NAPI_AUTO_LENGTH, &name);
        HN_CALL(env, napi_create_async_work(env, self, name, execute, complete, data, work));
        io->pending++;
        hn_io_update_ref(io);
        HN_CALL(env, napi_queue_async_work(env, *work));
        return promise;
}
