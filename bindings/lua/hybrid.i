/* SPDX-License-Identifier: MIT */
/*
 * hybrid.i - the SWIG 4.1 interface of the Lua module `hybrid_core` (doc/lua.md).
 *
 * SWIG wraps the plain functions of the public headers (versions, error names and
 * statuses, fURI matching) and the error codes.  What SWIG cannot do by itself is
 * written in C below and exported with %native: Lua values <-> objs (the JSON
 * mapping of doc/obj.md, exact for int64 and doubles), callbacks into Lua through
 * the registry (procedures, async replies, event subscriptions, store watches),
 * and the handles (bus, store, slot) as userdata with __gc.  hybrid.lua, the
 * hand-written layer, makes the API idiomatic on top of it.
 */
%module hybrid_core

%{
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/hybrid.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#define MT_BUS "hybrid.Bus"
#define MT_STORE "hybrid.Store"
#define MT_SLOT "hybrid.Slot"
#define MT_ERROR "hybrid.Error"
#define MT_URI "hybrid.Uri"
#define MT_TYPED "hybrid.Typed"
#define MT_LIST "hybrid.List"
#define KEY_NULL "hybrid.null"
#define KEY_PENDING "hybrid.pending_error"

/* The Lua thread that entered the library last: callbacks run on it (a coroutine that
 * calls bus:process() gets its callbacks on its own stack). */
static _Thread_local lua_State *cur_L;

/* ------------------------------------------------------------------ errors */

/* Pushes an error table {status, code, message} with the hybrid.Error metatable. */
static void push_error(lua_State *L, int code, const char *message)
{
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, hyb_err_to_status(code));
        lua_setfield(L, -2, "status");
        lua_pushstring(L, hyb_err_name(code));
        lua_setfield(L, -2, "code");
        lua_pushstring(L, message && *message ? message : hyb_strerror(code));
        lua_setfield(L, -2, "message");
        luaL_setmetatable(L, MT_ERROR);
}

static int raise_code(lua_State *L, int code, const hyb_error *e)
{
        push_error(L, code, e ? e->message : NULL);
        return lua_error(L);
}

/* A callback's error is kept and raised by the process() call that ran it. */
static void keep_pending(lua_State *L)
{
        lua_getfield(L, LUA_REGISTRYINDEX, KEY_PENDING);
        bool have = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (have)
                lua_pop(L, 1);
        else
                lua_setfield(L, LUA_REGISTRYINDEX, KEY_PENDING);
}

static void raise_pending(lua_State *L)
{
        lua_getfield(L, LUA_REGISTRYINDEX, KEY_PENDING);
        if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                return;
        }
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, KEY_PENDING);
        lua_error(L);
}

/* ------------------------------------------------------- Lua value -> obj */

static bool has_mt(lua_State *L, int idx, const char *name)
{
        if (!lua_getmetatable(L, idx))
                return false;
        luaL_getmetatable(L, name);
        bool same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        return same;
}

static bool is_null(lua_State *L, int idx)
{
        lua_getfield(L, LUA_REGISTRYINDEX, KEY_NULL);
        bool same = lua_rawequal(L, idx, -1);
        lua_pop(L, 1);
        return same;
}

/* The length n when t (at idx, absolute) is a sequence 1..n with n > 0, else 0. */
static lua_Integer seq_len(lua_State *L, int idx)
{
        lua_Integer n = 0, max = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
                lua_pop(L, 1);
                if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
                        lua_pop(L, 1);
                        return 0;
                }
                lua_Integer k = lua_tointeger(L, -1);
                if (k > max)
                        max = k;
                n++;
        }
        return n == max ? n : 0;
}

static int to_obj(lua_State *L, int idx, int depth, hyb_obj **ret, hyb_error *e);

static int uri_obj(const char *text, hyb_obj **ret, hyb_error *e)
{
        return hyb_obj_new_uri_str(text, ret, e);
}

/* A rec key: a string is a uri key when it parses as one (what JSON object keys
 * are), else a str; other values convert as values. */
static int key_obj(lua_State *L, int idx, int depth, hyb_obj **ret, hyb_error *e)
{
        if (lua_type(L, idx) == LUA_TSTRING) {
                size_t len;
                const char *s = lua_tolstring(L, idx, &len);
                if (strlen(s) == len && len > 0 && uri_obj(s, ret, NULL) == 0)
                        return 0;
                return hyb_obj_new_str(s, len, ret);
        }
        return to_obj(L, idx, depth, ret, e);
}

static int table_obj(lua_State *L, int idx, int depth, hyb_obj **ret, hyb_error *e)
{
        int r = 0;
        if (has_mt(L, idx, MT_URI)) {
                lua_getfield(L, idx, "text");
                const char *s = lua_tostring(L, -1);
                r = s ? uri_obj(s, ret, e) : -EINVAL;
                lua_pop(L, 1);
                return r;
        }
        lua_getfield(L, idx, "@type");
        bool typed = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (typed) {
                hyb_obj *v = NULL;
                hyb_furi *t = NULL;
                lua_getfield(L, idx, "@type");
                const char *ts = lua_tostring(L, -1);
                r = ts ? hyb_furi_parse(ts, (size_t)-1, NULL, &t, e) : -EINVAL;
                lua_pop(L, 1);
                if (r < 0)
                        return r;
                lua_getfield(L, idx, "@value");
                r = to_obj(L, lua_gettop(L), depth + 1, &v, e);
                lua_pop(L, 1);
                if (r == 0)
                        r = hyb_obj_with_type(v, t, ret);
                hyb_obj_unref(v);
                hyb_furi_unref(t);
                return r;
        }
        lua_Integer n = seq_len(L, idx);
        if (n > 0 || has_mt(L, idx, MT_LIST)) {
                if (n == 0) {
                        lua_pushnil(L);
                        bool empty = !lua_next(L, idx);
                        if (!empty)
                                lua_pop(L, 2);
                        if (!empty) {
                                snprintf(e->message, sizeof e->message,
                                         "a hybrid.list has keys that are not 1..n");
                                return HYB_E_TYPE;
                        }
                }
                hyb_obj **items = calloc((size_t)n + 1, sizeof *items);
                if (!items)
                        return -ENOMEM;
                lua_Integer i;
                for (i = 0; i < n && r == 0; i++) {
                        lua_rawgeti(L, idx, i + 1);
                        r = to_obj(L, lua_gettop(L), depth + 1, &items[i], e);
                        lua_pop(L, 1);
                }
                if (r == 0)
                        r = hyb_obj_new_lst(items, (size_t)n, ret);
                for (i = 0; i < n; i++)
                        hyb_obj_unref(items[i]);
                free(items);
                return r;
        }
        size_t cap = 8, k = 0;
        hyb_obj **keys = calloc(cap, sizeof *keys), **vals = calloc(cap, sizeof *vals);
        if (!keys || !vals) {
                free(keys);
                free(vals);
                return -ENOMEM;
        }
        lua_pushnil(L);
        while (lua_next(L, idx)) {
                if (k == cap) {
                        cap *= 2;
                        hyb_obj **nk = realloc(keys, cap * sizeof *keys);
                        if (nk)
                                keys = nk;
                        hyb_obj **nv = nk ? realloc(vals, cap * sizeof *vals) : NULL;
                        if (nv)
                                vals = nv;
                        if (!nk || !nv) {
                                lua_pop(L, 2);
                                r = -ENOMEM;
                                break;
                        }
                }
                int top = lua_gettop(L);
                keys[k] = vals[k] = NULL;
                r = key_obj(L, top - 1, depth + 1, &keys[k], e);
                if (r == 0)
                        r = to_obj(L, top, depth + 1, &vals[k], e);
                k++;
                lua_pop(L, 1);
                if (r < 0) {
                        lua_pop(L, 1);
                        break;
                }
        }
        if (r == 0)
                r = hyb_obj_new_rec(keys, vals, k, ret);
        for (size_t i = 0; i < k; i++) {
                hyb_obj_unref(keys[i]);
                hyb_obj_unref(vals[i]);
        }
        free(keys);
        free(vals);
        return r;
}

/* Converts the Lua value at idx; *ret is a new reference.  e->message says what failed. */
static int to_obj(lua_State *L, int idx, int depth, hyb_obj **ret, hyb_error *e)
{
        idx = lua_absindex(L, idx);
        if (depth > HYB_OBJ_MAX_DEPTH) {
                snprintf(e->message, sizeof e->message, "value nested deeper than %d",
                         HYB_OBJ_MAX_DEPTH);
                return HYB_E_DEPTH;
        }
        luaL_checkstack(L, 8, "hybrid: value too deep");
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
                *ret = hyb_obj_noobj();
                return 0;
        case LUA_TBOOLEAN:
                *ret = hyb_obj_bool(lua_toboolean(L, idx));
                return 0;
        case LUA_TNUMBER: {
                if (lua_isinteger(L, idx))
                        return hyb_obj_new_int((int64_t)lua_tointeger(L, idx), ret);
                double d = (double)lua_tonumber(L, idx);
                if (!isfinite(d)) {
                        /* no JSON form: a store write, which takes the obj as it is, must
                         * refuse it as a call does, or readers get a value they cannot map */
                        snprintf(e->message, sizeof e->message, "a float that is %s has no obj form",
                                 isnan(d) ? "NaN" : d < 0 ? "-inf" : "inf");
                        return HYB_E_TYPE;
                }
                return hyb_obj_new_real(d, ret);
        }
        case LUA_TSTRING: {
                size_t len;
                const char *s = lua_tolstring(L, idx, &len);
                return hyb_obj_new_str(s, len, ret);
        }
        case LUA_TTABLE:
                if (is_null(L, idx)) { /* hybrid.null is a table */
                        *ret = hyb_obj_noobj();
                        return 0;
                }
                return table_obj(L, idx, depth, ret, e);
        case LUA_TLIGHTUSERDATA:
        case LUA_TUSERDATA:
                if (is_null(L, idx)) {
                        *ret = hyb_obj_noobj();
                        return 0;
                }
                /* fall through */
        default:
                snprintf(e->message, sizeof e->message, "a Lua %s has no obj form",
                         luaL_typename(L, idx));
                return HYB_E_TYPE;
        }
}

/* to_obj that raises a hybrid.Error on failure. */
static hyb_obj *check_obj(lua_State *L, int idx)
{
        hyb_error e;
        hyb_obj *o = NULL;
        hyb_error_clear(&e);
        int r = to_obj(L, idx, 0, &o, &e);
        if (r < 0)
                raise_code(L, r, &e);
        return o;
}

/* The JSON text of the Lua value at idx (nil: an empty body); hyb_free it. */
static char *check_json(lua_State *L, int idx, size_t *ret_len)
{
        if (lua_isnoneornil(L, idx)) {
                *ret_len = 0;
                return NULL;
        }
        hyb_obj *o = check_obj(L, idx);
        hyb_error e;
        char *text = NULL;
        hyb_error_clear(&e);
        int r = hyb_obj_to_json(o, &text, &e);
        hyb_obj_unref(o);
        if (r < 0)
                raise_code(L, r, &e);
        *ret_len = strlen(text);
        return text;
}

/* ------------------------------------------------------- obj -> Lua value */

static void push_furi_text(lua_State *L, const hyb_furi *f)
{
        lua_pushstring(L, hyb_furi_get_str(f));
}

static void push_uri(lua_State *L, const hyb_furi *f)
{
        lua_createtable(L, 0, 1);
        push_furi_text(L, f);
        lua_setfield(L, -2, "text");
        luaL_setmetatable(L, MT_URI);
}

static int push_obj(lua_State *L, const hyb_obj *o, bool top);

static int push_value(lua_State *L, const hyb_obj *o, bool top)
{
        size_t n, len;
        const char *s;
        luaL_checkstack(L, 8, "hybrid: value too deep");
        switch (hyb_obj_get_kind(o)) {
        case HYB_OBJ_NOOBJ:
                if (top)
                        lua_pushnil(L);
                else
                        lua_getfield(L, LUA_REGISTRYINDEX, KEY_NULL);
                return 0;
        case HYB_OBJ_BOOL:
                lua_pushboolean(L, hyb_obj_get_bool(o));
                return 0;
        case HYB_OBJ_INT:
                lua_pushinteger(L, (lua_Integer)hyb_obj_get_int(o));
                return 0;
        case HYB_OBJ_REAL:
                lua_pushnumber(L, (lua_Number)hyb_obj_get_real(o));
                return 0;
        case HYB_OBJ_STR:
                s = hyb_obj_get_str(o, &len);
                lua_pushlstring(L, s, len);
                return 0;
        case HYB_OBJ_URI:
                push_uri(L, hyb_obj_get_uri(o));
                return 0;
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
                n = hyb_obj_get_len(o);
                lua_createtable(L, (int)n, 0);
                for (size_t i = 0; i < n; i++) {
                        push_obj(L, hyb_obj_get_at(o, i), false);
                        lua_rawseti(L, -2, (lua_Integer)i + 1);
                }
                luaL_setmetatable(L, MT_LIST);
                return 0;
        case HYB_OBJ_REC:
                n = hyb_obj_get_len(o);
                lua_createtable(L, 0, (int)n);
                for (size_t i = 0; i < n; i++) {
                        const hyb_obj *k = hyb_obj_get_rec_key(o, i);
                        if (hyb_obj_get_kind(k) == HYB_OBJ_URI && !hyb_obj_get_type_id(k))
                                push_furi_text(L, hyb_obj_get_uri(k));
                        else
                                push_obj(L, k, false);
                        push_obj(L, hyb_obj_get_rec_value(o, i), false);
                        lua_rawset(L, -3);
                }
                return 0;
        default: {
                char *text = NULL;
                if (hyb_obj_format(o, HYB_FORMAT_EXACT, &text) < 0)
                        return luaL_error(L, "hybrid: out of memory");
                push_error(L, HYB_E_TYPE, NULL);
                lua_pushfstring(L, "a %s has no Lua form: %s",
                                hyb_obj_kind_name(hyb_obj_get_kind(o)), text);
                hyb_free(text);
                lua_setfield(L, -2, "message");
                return lua_error(L);
        }
        }
}

/* Pushes o (borrowed); a typed obj becomes a hybrid.Typed {["@type"]=, ["@value"]=}. */
static int push_obj(lua_State *L, const hyb_obj *o, bool top)
{
        const hyb_furi *t = hyb_obj_get_type_id(o);
        if (!t)
                return push_value(L, o, top);
        hyb_obj *bare = NULL;
        if (hyb_obj_with_type(o, NULL, &bare) < 0)
                return luaL_error(L, "hybrid: out of memory");
        lua_createtable(L, 0, 2);
        push_furi_text(L, t);
        lua_setfield(L, -2, "@type");
        push_value(L, bare, false);
        lua_setfield(L, -2, "@value");
        luaL_setmetatable(L, MT_TYPED);
        hyb_obj_unref(bare);
        return 0;
}

/* push_obj in protected mode, for callbacks (a Lua error must not unwind the library's
 * frames) and for results whose reference is still to be dropped: 0 with the value
 * pushed, else non-zero with the error value pushed. */
static int conv_protected(lua_State *L)
{
        const hyb_obj *o = lua_touserdata(L, 1);
        bool top = lua_toboolean(L, 2);
        lua_settop(L, 0);
        push_obj(L, o, top);
        return 1;
}

static int push_obj_safe(lua_State *L, const hyb_obj *o, bool top)
{
        lua_pushcfunction(L, conv_protected);
        lua_pushlightuserdata(L, (void *)o);
        lua_pushboolean(L, top);
        return lua_pcall(L, 2, 1, 0);
}

/* ---------------------------------------------------------------- callbacks */

/* A Lua function kept in the registry for a registration; freed by the slot's destroy. */
typedef struct lcb {
        lua_State *main;
        int ref;
        struct lbus *owner; /* procedures: the bus userdata, to check it is still open */
} lcb;

static lcb *lcb_new(lua_State *L, int fn_idx)
{
        luaL_checktype(L, fn_idx, LUA_TFUNCTION);
        lcb *c = malloc(sizeof *c);
        if (!c)
                luaL_error(L, "hybrid: out of memory");
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
        c->main = lua_tothread(L, -1);
        lua_pop(L, 1);
        lua_pushvalue(L, fn_idx);
        c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        c->owner = NULL;
        return c;
}

static void lcb_destroy(void *userdata)
{
        lcb *c = userdata;
        if (!c)
                return;
        luaL_unref(c->main, LUA_REGISTRYINDEX, c->ref);
        free(c);
}

/* The thread callbacks run on: the one inside the library now, else the main one. */
static lua_State *cb_state(const lcb *c)
{
        return cur_L ? cur_L : c->main;
}

/* ---------------------------------------------------------------- slots */

typedef struct lslot {
        hyb_slot *slot;
} lslot;

static void push_slot(lua_State *L, hyb_slot *s)
{
        lslot *ls = lua_newuserdatauv(L, sizeof *ls, 0);
        ls->slot = s;
        luaL_setmetatable(L, MT_SLOT);
}

/* slot:cancel(): unregisters now (a pending async call is cancelled).  Idempotent. */
static int l_slot_cancel(lua_State *L)
{
        lslot *ls = luaL_checkudata(L, 1, MT_SLOT);
        lua_State *saved = cur_L;
        cur_L = L;
        ls->slot = hyb_slot_unref(ls->slot);
        cur_L = saved;
        return 0;
}

/* __gc: drops Lua's reference only.  Registrations are kept by the Lua objects that own
 * them (bus._slots, store._slots); an async call's until its reply.  A slot collected
 * inside its own reply callback is safe: the library holds the call over the callback. */
static int l_slot_gc(lua_State *L)
{
        lslot *ls = luaL_checkudata(L, 1, MT_SLOT);
        lua_State *saved = cur_L;
        cur_L = L;
        ls->slot = hyb_slot_unref(ls->slot);
        cur_L = saved;
        return 0;
}

/* ---------------------------------------------------------------- bus */

typedef struct lbus {
        hyb_bus *bus;
        bool stop;
} lbus;

static lbus *check_lbus(lua_State *L, int idx)
{
        lbus *b = luaL_checkudata(L, idx, MT_BUS);
        if (!b->bus) {
                push_error(L, HYB_E_CLOSED, "the bus is closed");
                lua_error(L);
        }
        return b;
}

static const char *opt_str(lua_State *L, int idx)
{
        return lua_isnoneornil(L, idx) ? NULL : luaL_checkstring(L, idx);
}

/* Reads a token file into a string (trailing white space removed); NULL with *r set. */
static char *read_token(const char *path, int *r, hyb_error *e)
{
        FILE *f = fopen(path, "re");
        if (!f) {
                *r = -errno;
                snprintf(e->message, sizeof e->message, "%s: %s", path, strerror(errno));
                return NULL;
        }
        char *buf = malloc(HYB_TOKEN_MAX_SIZE + 2);
        size_t n = buf ? fread(buf, 1, HYB_TOKEN_MAX_SIZE + 1, f) : 0;
        fclose(f);
        if (!buf) {
                *r = -ENOMEM;
                return NULL;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                n--;
        buf[n] = '\0';
        return buf;
}

/* Fills opts with the token and key of the files named; frees into *tok / *key. */
static int load_creds(const char *token_file, const char *key_file, char **tok, hyb_key **key,
                      hyb_error *e)
{
        int r = 0;
        *tok = NULL;
        *key = NULL;
        if (!token_file && !key_file)
                return 0;
        if (!token_file || !key_file) {
                snprintf(e->message, sizeof e->message, "token and key go together");
                return HYB_E_UNAUTHORIZED;
        }
        *tok = read_token(token_file, &r, e);
        if (!*tok)
                return r < 0 ? HYB_E_UNAUTHORIZED : r;
        r = hyb_key_load_file(key_file, key, e);
        if (r < 0) {
                free(*tok);
                *tok = NULL;
                return HYB_E_UNAUTHORIZED;
        }
        return 0;
}

/* connect(socket, app, runner, token_file, key_file, ca_file, pin) -> bus; ca_file and
 * pin verify a wss:// server (nil: $HYBRID_CA, $HYBRID_PIN) */
static int l_connect(lua_State *L)
{
        const char *path = opt_str(L, 1), *app = luaL_checkstring(L, 2),
                   *runner = luaL_checkstring(L, 3), *token_file = opt_str(L, 4),
                   *key_file = opt_str(L, 5), *ca_file = opt_str(L, 6), *pin = opt_str(L, 7);
        hyb_error e;
        hyb_error_clear(&e);
        lbus *b = lua_newuserdatauv(L, sizeof *b, 0);
        b->bus = NULL;
        b->stop = false;
        luaL_setmetatable(L, MT_BUS);
        char *tok;
        hyb_key *key;
        int r = load_creds(token_file, key_file, &tok, &key, &e);
        if (r < 0)
                return raise_code(L, r, &e);
        hyb_bus_connect_options o;
        hyb_bus_connect_options_init(&o);
        o.path = path;
        o.app = app;
        o.runner = runner;
        o.token = tok;
        o.key = key;
        o.ca_file = ca_file;
        o.pin = pin;
        r = hyb_bus_connect_with(&o, &b->bus, &e);
        free(tok);
        hyb_key_unref(key);
        if (r < 0)
                return raise_code(L, r, &e);
        return 1;
}

static int l_bus_gc(lua_State *L)
{
        lbus *b = luaL_checkudata(L, 1, MT_BUS);
        lua_State *saved = cur_L;
        cur_L = L;
        b->bus = hyb_bus_unref(b->bus);
        cur_L = saved;
        return 0;
}

static int l_bus_close(lua_State *L)
{
        lbus *b = luaL_checkudata(L, 1, MT_BUS);
        /* the calls in flight fail here (their fn runs with a 502): on this thread, which
         * may be a coroutine */
        lua_State *saved = cur_L;
        cur_L = L;
        if (b->bus)
                hyb_bus_close(b->bus); /* holds the bus while a fn closes it again */
        cur_L = saved;
        raise_pending(L); /* what a fn raised, here rather than in a later call */
        return 0;
}

static int l_bus_name(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        lua_pushstring(L, hyb_bus_get_endpoint_name(b->bus));
        return 1;
}

static int l_bus_is_open(lua_State *L)
{
        lbus *b = luaL_checkudata(L, 1, MT_BUS);
        lua_pushboolean(L, b->bus && hyb_bus_is_open(b->bus));
        return 1;
}

static int l_bus_fd(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        lua_pushinteger(L, hyb_bus_get_fd(b->bus));
        return 1;
}

static uint32_t check_timeout_ms(lua_State *L, int idx)
{
        if (lua_isnoneornil(L, idx))
                return 0;
        lua_Number s = luaL_checknumber(L, idx);
        luaL_argcheck(L, s > 0 && s <= 3600, idx, "timeout: seconds in (0, 3600]");
        uint32_t ms = (uint32_t)ceil(s * 1000.0);
        return ms ? ms : 1;
}

/* bus_call(bus, endpoint, method, params, timeout_s) -> result */
static int l_bus_call(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        const char *ep = luaL_checkstring(L, 2), *method = luaL_checkstring(L, 3);
        uint32_t ms = check_timeout_ms(L, 5);
        size_t len;
        char *body = check_json(L, 4, &len);
        hyb_bus_reply *reply = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        lua_State *saved = cur_L;
        cur_L = L;
        int r = hyb_bus_call(b->bus, ep, method, body, len, HYB_BODY_JSON, ms, &reply, &e);
        cur_L = saved;
        hyb_free(body);
        if (r < 0) {
                raise_pending(L);
                return raise_code(L, r, &e);
        }
        size_t blen = 0;
        const void *rb = hyb_bus_reply_get_body(reply, &blen);
        /* the reply is freed before a conversion error can leave */
        hyb_obj *o = NULL;
        if (rb && blen > 0 && !hyb_bus_reply_is_binary(reply))
                r = hyb_obj_from_json(rb, blen, &o, &e);
        else if (rb && blen > 0)
                r = hyb_obj_new_str(rb, blen, &o);
        hyb_bus_reply_unref(reply);
        if (r < 0)
                return raise_code(L, r, &e);
        lua_getfield(L, LUA_REGISTRYINDEX, KEY_PENDING);
        bool pending = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (pending) { /* a callback's error wins over the result: free it first */
                hyb_obj_unref(o);
                raise_pending(L);
        }
        if (o) {
                push_obj(L, o, true);
                hyb_obj_unref(o);
        } else {
                lua_pushnil(L);
        }
        return 1;
}

/* The async reply: fn(result, err) with err a hybrid.Error for a failed status. */
static void on_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *userdata)
{
        (void)bus;
        lcb *c = userdata;
        lua_State *L = cb_state(c);
        int top = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
        int status = hyb_bus_reply_get_status(reply);
        size_t blen = 0;
        const void *rb = hyb_bus_reply_get_body(reply, &blen);
        if (status >= 200 && status < 300) {
                hyb_obj *o = NULL;
                hyb_error e;
                hyb_error_clear(&e);
                int r = (rb && blen) ? hyb_obj_from_json(rb, blen, &o, &e) : 0;
                if (r < 0) {
                        lua_pushnil(L);
                        push_error(L, r, e.message);
                } else {
                        if (o)
                                push_obj(L, o, true);
                        else
                                lua_pushnil(L);
                        lua_pushnil(L);
                }
                hyb_obj_unref(o);
        } else {
                lua_pushnil(L);
                int code = hyb_err_from_status(status);
                lua_createtable(L, 0, 3);
                lua_pushinteger(L, status);
                lua_setfield(L, -2, "status");
                lua_pushstring(L, hyb_err_name(code));
                lua_setfield(L, -2, "code");
                const char *m = hyb_bus_reply_get_message(reply);
                lua_pushstring(L, m && *m ? m : hyb_strerror(code));
                lua_setfield(L, -2, "message");
                luaL_setmetatable(L, MT_ERROR);
        }
        /* The reply comes once: the function is released now, not when the slot goes, so
         * a function that holds its own slot (a cycle through C the collector cannot see)
         * is freed as well. */
        luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
        c->ref = LUA_NOREF;
        if (lua_pcall(L, 2, 0, 0) != LUA_OK)
                keep_pending(L);
        lua_settop(L, top);
}

/* bus_call_async(bus, endpoint, method, params, timeout_s, fn) -> slot */
static int l_bus_call_async(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        const char *ep = luaL_checkstring(L, 2), *method = luaL_checkstring(L, 3);
        uint32_t ms = check_timeout_ms(L, 5);
        luaL_checktype(L, 6, LUA_TFUNCTION);
        size_t len;
        char *body = check_json(L, 4, &len);
        lcb *c = lcb_new(L, 6);
        hyb_slot *s = NULL;
        int r = hyb_bus_call_async(b->bus, ep, method, body, len, HYB_BODY_JSON, ms, on_reply, c,
                                   &s);
        hyb_free(body);
        if (r < 0) {
                lcb_destroy(c);
                return raise_code(L, r, NULL);
        }
        hyb_slot_set_destroy_callback(s, lcb_destroy);
        push_slot(L, s);
        return 1;
}

/* What a procedure call produced, filled by call_protected. */
typedef struct call_out {
        hyb_bus_request *req;
        const hyb_obj *in;
        int ref;
        int status;       /* 200, or the error status to answer */
        char *text;       /* 200: the JSON body (hyb_free) */
        char message[256];
} call_out;

/* Reads the error value at the top into out (status from a {status=4xx/5xx} table, the
 * message from its message field or the value's text).  May raise (metamethods). */
static int error_protected(lua_State *L)
{
        call_out *out = lua_touserdata(L, 1);
        const char *msg = NULL;
        out->status = 500;
        if (lua_istable(L, 2)) {
                lua_getfield(L, 2, "status");
                if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 400 && lua_tointeger(L, -1) < 600)
                        out->status = (int)lua_tointeger(L, -1);
                lua_getfield(L, 2, "message");
                msg = lua_tostring(L, -1);
        } else {
                msg = luaL_tolstring(L, 2, NULL);
        }
        snprintf(out->message, sizeof out->message, "%s", msg ? msg : "error in a Lua procedure");
        return 0;
}

/* Runs the procedure and converts its result, all in protected mode (called through
 * lua_pcall): a Lua error, also one raised by a metamethod of the result, never unwinds
 * the library's frames. */
static int call_protected(lua_State *L)
{
        call_out *out = lua_touserdata(L, 1);
        lua_rawgeti(L, LUA_REGISTRYINDEX, out->ref);
        if (out->in)
                push_obj(L, out->in, true);
        else
                lua_pushnil(L);
        const char *transport = NULL, *principal = NULL;
        hyb_bus_request_get_caller_principal(out->req, &transport, &principal);
        lua_createtable(L, 0, 5);
        lua_pushstring(L, hyb_bus_request_get_caller(out->req));
        lua_setfield(L, -2, "caller");
        lua_pushstring(L, transport ? transport : "unix");
        lua_setfield(L, -2, "transport");
        if (principal) {
                lua_pushstring(L, principal);
                lua_setfield(L, -2, "principal");
        }
        lua_pushstring(L, hyb_bus_request_get_method(out->req));
        lua_setfield(L, -2, "method");
        lua_pushinteger(L, hyb_bus_request_get_time_left_ms(out->req));
        lua_setfield(L, -2, "time_left_ms");
        if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
                lua_pushcfunction(L, error_protected);
                lua_pushlightuserdata(L, out);
                lua_pushvalue(L, -3);
                if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
                        out->status = 500;
                        snprintf(out->message, sizeof out->message, "error in a Lua procedure");
                }
                return 0;
        }
        hyb_obj *o = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        int r = to_obj(L, -1, 0, &o, &e);
        if (r == 0 && !hyb_obj_is_noobj(o))
                r = hyb_obj_to_json(o, &out->text, &e);
        hyb_obj_unref(o);
        if (r < 0) {
                out->status = 500;
                snprintf(out->message, sizeof out->message, "%s",
                         e.message[0] ? e.message : hyb_strerror(r));
                return 0;
        }
        out->status = 200;
        return 0;
}

/* A procedure: fn(params, info) returns the result; a hybrid.Error answers its status. */
static int on_call(hyb_bus_request *req, void *userdata)
{
        lcb *c = userdata;
        lua_State *L = cb_state(c);
        int top = lua_gettop(L);
        size_t blen = 0;
        const void *body = hyb_bus_request_get_body(req, &blen);
        hyb_obj *in = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        int r = 0;
        /* a binary body is a string, as a binary reply or event is */
        if (body && blen && !hyb_bus_request_is_binary(req))
                r = hyb_obj_from_json(body, blen, &in, &e);
        else if (body && blen)
                r = hyb_obj_new_str(body, blen, &in);
        if (r < 0)
                return hyb_bus_request_reply_error(req, r == -ENOMEM ? 500 : 400,
                                                   e.message[0] ? e.message : hyb_strerror(r)),
                       0;
        call_out out = { .req = req, .in = in, .ref = c->ref, .status = 500 };
        lua_pushcfunction(L, call_protected);
        lua_pushlightuserdata(L, &out);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
                /* a conversion's own error (memory, a value too deep): its text if any */
                const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
                out.status = 500;
                snprintf(out.message, sizeof out.message, "%s", m ? m : "error in a Lua procedure");
                hyb_free(out.text);
                out.text = NULL;
        }
        hyb_obj_unref(in);
        lua_settop(L, top);
        if (out.status != 200) {
                hyb_bus_request_reply_error(req, out.status, out.message);
                return 0;
        }
        hyb_bus_request_reply(req, 200, out.text, out.text ? strlen(out.text) : 0, HYB_BODY_JSON);
        hyb_free(out.text);
        return 0;
}

static hyb_json_type json_type(lua_State *L, const char *name)
{
        static const struct {
                const char *name;
                hyb_json_type type;
        } names[] = {
                { "any", HYB_JSON_ANY },         { "string", HYB_JSON_STRING },
                { "str", HYB_JSON_STRING },      { "int", HYB_JSON_INTEGER },
                { "integer", HYB_JSON_INTEGER }, { "number", HYB_JSON_NUMBER },
                { "real", HYB_JSON_NUMBER },     { "bool", HYB_JSON_BOOLEAN },
                { "boolean", HYB_JSON_BOOLEAN }, { "table", HYB_JSON_OBJECT },
                { "object", HYB_JSON_OBJECT },   { "dict", HYB_JSON_OBJECT },
                { "list", HYB_JSON_ARRAY },      { "array", HYB_JSON_ARRAY },
                { "null", HYB_JSON_NULL },
        };
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                if (strcmp(names[i].name, name) == 0)
                        return names[i].type;
        luaL_error(L, "hybrid: unknown argument type '%s'", name);
        return HYB_JSON_ANY;
}

/* bus_procedure(bus, name, policy, fn, for_host, for_app) -> slot
 * policy: {key = "int" | "int?" (optional) | ...}; nil: no policy. */
static int l_bus_procedure(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        const char *name = luaL_checkstring(L, 2);
        luaL_checktype(L, 4, LUA_TFUNCTION);
        const char *for_host = opt_str(L, 5), *for_app = opt_str(L, 6);
        size_t n = 0;
        hyb_arg_policy *pol = NULL;
        if (!lua_isnoneornil(L, 3)) {
                luaL_checktype(L, 3, LUA_TTABLE);
                lua_pushnil(L);
                while (lua_next(L, 3)) {
                        n++;
                        lua_pop(L, 1);
                }
                /* a userdata so an error while reading the policy frees it */
                pol = lua_newuserdatauv(L, (n ? n : 1) * sizeof *pol, 0);
                size_t i = 0;
                lua_pushnil(L);
                while (lua_next(L, 3)) {
                        const char *k = lua_tostring(L, -2), *t = lua_tostring(L, -1);
                        if (lua_type(L, -2) != LUA_TSTRING || !t)
                                return luaL_error(L, "hybrid: a policy maps key names to type names");
                        size_t tl = strlen(t);
                        bool optional = tl > 0 && t[tl - 1] == '?';
                        char tn[32];
                        snprintf(tn, sizeof tn, "%.*s", (int)(optional ? tl - 1 : tl), t);
                        pol[i].key = k; /* anchored by the policy table during the call */
                        pol[i].type = json_type(L, tn);
                        pol[i].required = !optional;
                        i++;
                        lua_pop(L, 1);
                }
        }
        lcb *c = lcb_new(L, 4);
        hyb_slot *s = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        int r = hyb_endpoint_register_method(b->bus, name, pol, n, for_host, for_app, 0, on_call,
                                             c, &s, &e);
        if (r < 0) {
                lcb_destroy(c);
                return raise_code(L, r, &e);
        }
        hyb_slot_set_destroy_callback(s, lcb_destroy);
        push_slot(L, s);
        return 1;
}

/* bus_register_event(bus, bubble, for_host, for_app, cluster) -> slot; cluster true:
 * HYB_EVENT_CLUSTER (fires also go to the other hosts of the daemon's cluster) */
static int l_bus_register_event(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        const char *bubble = luaL_checkstring(L, 2);
        const char *for_host = opt_str(L, 3), *for_app = opt_str(L, 4);
        unsigned flags = lua_toboolean(L, 5) ? HYB_EVENT_CLUSTER : 0;
        hyb_slot *s = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        int r = hyb_bus_register_event_flags(b->bus, bubble, for_host, for_app, flags, &s, &e);
        if (r < 0)
                return raise_code(L, r, &e);
        push_slot(L, s);
        return 1;
}

/* bus_fire(bus, bubble, value, counted) -> delivered, failed (counted) or nothing */
static int l_bus_fire(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        const char *bubble = luaL_checkstring(L, 2);
        bool counted = lua_toboolean(L, 4);
        size_t len;
        char *body = check_json(L, 3, &len);
        uint32_t delivered = 0, failed = 0;
        lua_State *saved = cur_L;
        cur_L = L;
        int r = hyb_bus_fire(b->bus, bubble, body, len, HYB_BODY_JSON,
                             counted ? &delivered : NULL, counted ? &failed : NULL);
        cur_L = saved;
        hyb_free(body);
        if (r < 0)
                return raise_code(L, r, NULL);
        if (!counted)
                return 0;
        lua_pushinteger(L, delivered);
        lua_pushinteger(L, failed);
        return 2;
}

/* An event: fn(value, {source=, bubble=}) */
static void on_event(hyb_bus *bus, const hyb_bus_event *ev, void *userdata)
{
        (void)bus;
        lcb *c = userdata;
        lua_State *L = cb_state(c);
        int top = lua_gettop(L);
        size_t blen = 0;
        const void *body = hyb_bus_event_get_body(ev, &blen);
        hyb_obj *o = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        int r = 0;
        if (body && blen && !hyb_bus_event_is_binary(ev))
                r = hyb_obj_from_json(body, blen, &o, &e);
        else if (body && blen)
                r = hyb_obj_new_str(body, blen, &o);
        if (r < 0) {
                push_error(L, r, e.message);
                keep_pending(L);
                return;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
        if (o)
                push_obj(L, o, true);
        else
                lua_pushnil(L);
        hyb_obj_unref(o);
        lua_createtable(L, 0, 2);
        lua_pushstring(L, hyb_bus_event_get_source(ev));
        lua_setfield(L, -2, "source");
        lua_pushstring(L, hyb_bus_event_get_bubble(ev));
        lua_setfield(L, -2, "bubble");
        if (lua_pcall(L, 2, 0, 0) != LUA_OK)
                keep_pending(L);
        lua_settop(L, top);
}

/* bus_subscribe(bus, endpoint_glob, bubble_glob, fn) -> slot */
static int l_bus_subscribe(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        const char *ep = luaL_checkstring(L, 2), *bubble = luaL_checkstring(L, 3);
        lcb *c = lcb_new(L, 4);
        hyb_slot *s = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        lua_State *saved = cur_L;
        cur_L = L;
        int r = hyb_bus_subscribe(b->bus, ep, bubble, on_event, c, &s, &e);
        cur_L = saved;
        if (r < 0) {
                lcb_destroy(c);
                return raise_code(L, r, &e);
        }
        hyb_slot_set_destroy_callback(s, lcb_destroy);
        push_slot(L, s);
        return 1;
}

static uint64_t check_wait_usec(lua_State *L, int idx)
{
        if (lua_isnoneornil(L, idx))
                return UINT64_MAX;
        lua_Number s = luaL_checknumber(L, idx);
        luaL_argcheck(L, s >= 0, idx, "timeout: seconds >= 0");
        if (!(s * 1e6 < 18446744073709549568.0)) /* math.huge, or beyond uint64_t */
                return UINT64_MAX;
        return (uint64_t)(s * 1e6);
}

/* bus_process(bus, timeout_s) -> how many things were done.  Waits up to timeout_s
 * (nil: until something happens; 0: not at all), then dispatches all that is ready. */
static int l_bus_process(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        uint64_t usec = check_wait_usec(L, 2);
        /* A callback may close the bus (bus:close() frees b->bus): hold a reference of our
         * own and stop as soon as b->bus is gone; that is no error. */
        hyb_bus *bus = hyb_bus_ref(b->bus);
        lua_State *saved = cur_L;
        cur_L = L;
        int r = 0, done = 0;
        for (;;) {
                while (b->bus && (r = hyb_bus_process(bus)) > 0)
                        done++;
                if (!b->bus || r < 0 || done > 0 || usec == 0)
                        break;
                uint64_t deadline = UINT64_MAX;
                hyb_bus_get_timeout(bus, &deadline);
                uint64_t now = hyb_now_usec(), w = usec;
                if (deadline != UINT64_MAX)
                        w = deadline > now ? (deadline - now < w ? deadline - now : w) : 0;
                uint64_t start = now;
                r = hyb_bus_wait(bus, w);
                if (r < 0 && r != -EINTR)
                        break;
                if (usec != UINT64_MAX) {
                        uint64_t spent = hyb_now_usec() - start;
                        usec = spent >= usec ? 0 : usec - spent;
                }
                r = 0;
                while (b->bus && (r = hyb_bus_process(bus)) > 0)
                        done++;
                if (!b->bus || r < 0 || done > 0 || usec == 0)
                        break;
        }
        cur_L = saved;
        if (!b->bus)
                r = 0; /* closed by a callback */
        hyb_bus_unref(bus);
        raise_pending(L);
        if (r < 0)
                return raise_code(L, r, NULL);
        lua_pushinteger(L, done);
        return 1;
}

/* bus_cork(bus, bool) */
static int l_bus_cork(lua_State *L)
{
        lbus *b = check_lbus(L, 1);
        int r = hyb_bus_set_cork(b->bus, lua_toboolean(L, 2));
        if (r < 0)
                return raise_code(L, r, NULL);
        return 0;
}

/* ---------------------------------------------------------------- store */

/* The cluster scope //... is routed by the rule of hyb_bus_scope_open: a daemon serving
 * the host store serves it too (sc's cluster backend is be); on the embedded store the
 * MQTT broker of the cluster option (else $HYBRID_CLUSTER) does (cbe, whose fd process
 * waits on beside be's); with neither, HYB_E_SCOPE. */
typedef struct lstore {
        hyb_backend *be;
        hyb_backend *cbe;
        hyb_scope *sc;
        int source;
} lstore;

static lstore *check_lstore(lua_State *L, int idx)
{
        lstore *s = luaL_checkudata(L, idx, MT_STORE);
        if (!s->be) {
                push_error(L, HYB_E_CLOSED, "the store is closed");
                lua_error(L);
        }
        return s;
}

static hyb_furi *check_furi(lua_State *L, int idx)
{
        const char *text = luaL_checkstring(L, idx);
        hyb_furi *f = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        int r = hyb_furi_parse(text, (size_t)-1, NULL, &f, &e);
        if (r < 0)
                raise_code(L, r, &e);
        return f;
}

/* The backend of the fURI *f (a new reference): the host store's, or for //... the one the
 * router names (*f replaced by the target there); raises HYB_E_SCOPE (naming what to set)
 * when none serves //... */
static hyb_backend *store_route(lua_State *L, lstore *s, hyb_furi **f)
{
        hyb_backend *b = NULL;
        hyb_furi *t = NULL;
        hyb_error e;
        int r;

        if (hyb_furi_get_scope(*f) != HYB_SCOPE_CLUSTER)
                return hyb_backend_ref(s->be);
        hyb_error_clear(&e);
        r = hyb_scope_route(s->sc, *f, &b, &t, &e);
        if (r < 0) {
                *f = hyb_furi_unref(*f);
                raise_code(L, r, &e);
        }
        hyb_furi_unref(*f);
        *f = t;
        return b;
}

/* store_open(db, socket, app, runner, token_file, key_file, ca_file, pin, cluster)
 * -> store, where */
static int l_store_open(lua_State *L)
{
        const char *db = opt_str(L, 1), *path = opt_str(L, 2), *app = luaL_checkstring(L, 3),
                   *runner = luaL_checkstring(L, 4), *token_file = opt_str(L, 5),
                   *key_file = opt_str(L, 6), *ca_file = opt_str(L, 7), *pin = opt_str(L, 8),
                   *cluster = opt_str(L, 9);
        lstore *s = lua_newuserdatauv(L, sizeof *s, 0);
        s->be = NULL;
        s->cbe = NULL;
        s->sc = NULL;
        s->source = 0;
        luaL_setmetatable(L, MT_STORE);
        hyb_error e;
        hyb_error_clear(&e);
        char *tok;
        hyb_key *key;
        int r = load_creds(token_file, key_file, &tok, &key, &e);
        if (r < 0)
                return raise_code(L, r, &e);
        hyb_bus_connect_options o;
        hyb_bus_connect_options_init(&o);
        o.path = path;
        o.app = app;
        o.runner = runner;
        o.token = tok;
        o.key = key;
        o.ca_file = ca_file;
        o.pin = pin;
        char *where = NULL;
        r = hyb_bus_backend_open_host_with(db, &o, NULL, &s->be, &s->source, &where, &e);
        free(tok);
        hyb_key_unref(key);
        if (r >= 0)
                r = hyb_scope_new(s->be, NULL, app, &s->sc);
        if (r >= 0 && hyb_bus_backend_get_bus(s->be)) {
                r = hyb_scope_set_backend(s->sc, HYB_SCOPE_CLUSTER, s->be);
        } else if (r >= 0 && (cluster || (getenv("HYBRID_CLUSTER") &&
                                          *getenv("HYBRID_CLUSTER")))) {
                r = hyb_cluster_backend_new(cluster, &s->cbe, &e);
                if (r >= 0)
                        r = hyb_scope_set_backend(s->sc, HYB_SCOPE_CLUSTER, s->cbe);
        }
        if (r < 0) {
                hyb_free(where);
                s->sc = hyb_scope_unref(s->sc);
                s->cbe = hyb_backend_unref(s->cbe);
                s->be = hyb_backend_unref(s->be);
                return raise_code(L, r, &e);
        }
        lua_pushstring(L, where ? where : "");
        hyb_free(where);
        return 2;
}

static int l_store_gc(lua_State *L)
{
        lstore *s = luaL_checkudata(L, 1, MT_STORE);
        lua_State *saved = cur_L;
        cur_L = L;
        s->sc = hyb_scope_unref(s->sc);
        s->cbe = hyb_backend_unref(s->cbe);
        s->be = hyb_backend_unref(s->be);
        cur_L = saved;
        return 0;
}

static int l_store_source(lua_State *L)
{
        static const char *const names[] = { "", "db", "bus", "default-bus", "default-db" };
        lstore *s = check_lstore(L, 1);
        lua_pushstring(L, s->source >= 1 && s->source <= 4 ? names[s->source] : "");
        return 1;
}

/* store_get(store, furi) -> value: a node's value, or for a pattern or branch a table of
 * fURI => value (nil: nothing stored). */
static int l_store_get(lua_State *L)
{
        lstore *s = check_lstore(L, 1);
        hyb_furi *f = check_furi(L, 2);
        hyb_backend *b = store_route(L, s, &f);
        hyb_obj *o = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        lua_State *saved = cur_L;
        cur_L = L;
        int r = hyb_backend_read(b, f, HYB_READ_KEYED, &o, &e);
        cur_L = saved;
        hyb_backend_unref(b);
        hyb_furi_unref(f);
        if (r < 0)
                return raise_code(L, r, &e);
        int st = push_obj_safe(L, o, true);
        hyb_obj_unref(o);
        return st == LUA_OK ? 1 : lua_error(L);
}

/* store_put(store, furi, value, transient): nil deletes. */
static int l_store_put(lua_State *L)
{
        lstore *s = check_lstore(L, 1);
        hyb_furi *f = check_furi(L, 2);
        hyb_backend *b = store_route(L, s, &f);
        hyb_error e;
        hyb_error_clear(&e);
        hyb_obj *o = NULL;
        int r = to_obj(L, 3, 0, &o, &e);
        if (r == 0) {
                lua_State *saved = cur_L;
                cur_L = L;
                r = hyb_backend_write(b, f, o, lua_toboolean(L, 4) ? HYB_WRITE_TRANSIENT : 0,
                                      &e);
                cur_L = saved;
        }
        hyb_backend_unref(b);
        hyb_obj_unref(o);
        hyb_furi_unref(f);
        if (r < 0)
                return raise_code(L, r, &e);
        return 0;
}

static int l_store_delete(lua_State *L)
{
        lstore *s = check_lstore(L, 1);
        hyb_furi *f = check_furi(L, 2);
        hyb_backend *b = store_route(L, s, &f);
        hyb_error e;
        hyb_error_clear(&e);
        lua_State *saved = cur_L;
        cur_L = L;
        int r = hyb_backend_delete(b, f, 0, &e);
        cur_L = saved;
        hyb_backend_unref(b);
        hyb_furi_unref(f);
        if (r < 0)
                return raise_code(L, r, &e);
        return 0;
}

/* A store message: fn(furi, value, retain); value nil for a delete. */
static void on_store_msg(const hyb_furi *target, const hyb_obj *payload, bool retain,
                         void *userdata)
{
        lcb *c = userdata;
        lua_State *L = cb_state(c);
        int top = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
        push_furi_text(L, target);
        if (push_obj_safe(L, payload, true) != LUA_OK) {
                /* a value with no Lua form (code): raised by process() */
                keep_pending(L);
                lua_settop(L, top);
                return;
        }
        lua_pushboolean(L, retain);
        if (lua_pcall(L, 3, 0, 0) != LUA_OK)
                keep_pending(L);
        lua_settop(L, top);
}

/* store_watch(store, pattern, fn, replay) -> slot */
static int l_store_watch(lua_State *L)
{
        lstore *s = check_lstore(L, 1);
        luaL_checktype(L, 3, LUA_TFUNCTION);
        hyb_furi *f = check_furi(L, 2);
        hyb_backend *b = store_route(L, s, &f);
        lcb *c = lcb_new(L, 3);
        hyb_slot *slot = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        lua_State *saved = cur_L;
        cur_L = L;
        int r = hyb_backend_subscribe(b, f, lua_toboolean(L, 4) ? HYB_SUBSCRIBE_REPLAY : 0,
                                      on_store_msg, c, &slot, &e);
        cur_L = saved;
        hyb_backend_unref(b);
        hyb_furi_unref(f);
        if (r < 0) {
                lcb_destroy(c);
                return raise_code(L, r, &e);
        }
        hyb_slot_set_destroy_callback(slot, lcb_destroy);
        push_slot(L, slot);
        return 1;
}

/* One round of process on the host store's backend and the cluster backend: the first
 * error, else > 0 if one did something. */
static int store_process_round(lstore *s, hyb_backend *be, hyb_backend *cbe)
{
        int r = 0, rc = 0;

        if (s->be)
                r = hyb_backend_process(be);
        if (s->be)
                rc = hyb_backend_process(cbe);
        if (r < 0 || rc < 0)
                return r < 0 ? r : rc;
        return r > 0 || rc > 0;
}

/* store_process for a store with a cluster backend: as hyb_backend_wait, but polling both
 * backends' fds (and the earlier of their deadlines). */
static int store_process_both(lstore *s, hyb_backend *be, hyb_backend *cbe, uint64_t usec,
                              int *done)
{
        int r = 0;

        while (s->be && (r = store_process_round(s, be, cbe)) > 0)
                (*done)++;
        if (!s->be || r < 0 || *done > 0 || usec == 0)
                return r;
        struct pollfd p[2] = { { .fd = hyb_backend_get_fd(be), .events = POLLIN },
                               { .fd = hyb_backend_get_fd(cbe), .events = POLLIN } };
        uint64_t now = hyb_now_usec(), until = usec == UINT64_MAX ? UINT64_MAX : now + usec, t;
        if (hyb_backend_get_timeout(be, &t) >= 0 && t < until)
                until = t;
        if (hyb_backend_get_timeout(cbe, &t) >= 0 && t < until)
                until = t;
        int ms = until == UINT64_MAX ? -1 :
                 until <= now ? 0 : (int)((until - now + 999) / 1000 > INT32_MAX ?
                                          INT32_MAX : (until - now + 999) / 1000);
        if (p[0].fd < 0 || p[1].fd < 0)
                return p[0].fd < 0 ? p[0].fd : p[1].fd;
        if (poll(p, 2, ms) < 0)
                return -errno;
        while (s->be && (r = store_process_round(s, be, cbe)) > 0)
                (*done)++;
        return r;
}

/* store_process(store, timeout_s) -> how many deliveries were made */
static int l_store_process(lua_State *L)
{
        lstore *s = check_lstore(L, 1);
        uint64_t usec = check_wait_usec(L, 2);
        /* a watch callback may close the store (s->be freed): hold our own reference and
         * stop once s->be is gone, without an error */
        hyb_backend *be = hyb_backend_ref(s->be);
        hyb_backend *cbe = hyb_backend_ref(s->cbe);
        lua_State *saved = cur_L;
        cur_L = L;
        int r = 0, done = 0;
        if (!cbe) {
                while (s->be && (r = hyb_backend_process(be)) > 0)
                        done++;
                if (s->be && r >= 0 && done == 0 && usec > 0) {
                        r = hyb_backend_wait(be, usec);
                        if (r > 0)
                                done++;
                        while (s->be && r >= 0 && (r = hyb_backend_process(be)) > 0)
                                done++;
                }
        } else {
                r = store_process_both(s, be, cbe, usec, &done);
        }
        cur_L = saved;
        if (!s->be)
                r = 0;
        hyb_backend_unref(cbe);
        hyb_backend_unref(be);
        raise_pending(L);
        if (r < 0 && r != -EINTR)
                return raise_code(L, r, NULL);
        lua_pushinteger(L, done);
        return 1;
}

/* ---------------------------------------------------------------- mm-ADT */

/* mmadt_run(text, input) -> list of results */
static int l_mmadt_run(lua_State *L)
{
        size_t len;
        const char *text = luaL_checklstring(L, 1, &len);
        hyb_obj *in = lua_isnoneornil(L, 2) ? NULL : check_obj(L, 2);
        hyb_mmadt *vm = NULL;
        int r = hyb_mmadt_new(NULL, "lua", NULL, &vm);
        if (r < 0) {
                hyb_obj_unref(in);
                return raise_code(L, r, NULL);
        }
        hyb_obj *out = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        r = hyb_mmadt_eval(vm, text, len, in, &out, &e);
        hyb_obj_unref(in);
        hyb_mmadt_unref(vm);
        if (r < 0)
                return raise_code(L, r, &e);
        int st = push_obj_safe(L, out, true);
        hyb_obj_unref(out);
        return st == LUA_OK ? 1 : lua_error(L);
}

/* ---------------------------------------------------------------- tokens */

static hyb_key *check_key_file(lua_State *L, const char *path)
{
        hyb_key *k = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        int r = hyb_key_load_file(path, &k, &e);
        if (r < 0)
                raise_code(L, r, &e);
        return k;
}

/* token_keygen(path) -> kid: a key pair at path (0600) and its public key at path.pub */
static int l_token_keygen(lua_State *L)
{
        const char *path = luaL_checkstring(L, 1);
        hyb_key *k = NULL;
        int r = hyb_key_generate(&k);
        if (r < 0)
                return raise_code(L, r, NULL);
        hyb_error e;
        hyb_error_clear(&e);
        r = hyb_key_save_private(k, path, &e);
        if (r == 0) {
                lua_pushfstring(L, "%s.pub", path);
                r = hyb_key_save_public(k, lua_tostring(L, -1), &e);
                lua_pop(L, 1);
        }
        if (r == 0)
                lua_pushstring(L, hyb_key_get_kid(k));
        hyb_key_unref(k);
        if (r < 0)
                return raise_code(L, r, &e);
        return 1;
}

/* Collects the strings of the table (or the one string) at idx into an array of the
 * stack's strings (anchored by the table); *n their count. */
static const char **check_strings(lua_State *L, int idx, size_t *n)
{
        *n = 0;
        if (lua_isnoneornil(L, idx))
                return NULL;
        if (lua_type(L, idx) == LUA_TSTRING) {
                const char **a = lua_newuserdatauv(L, sizeof *a, 0);
                a[0] = lua_tostring(L, idx);
                *n = 1;
                return a;
        }
        luaL_checktype(L, idx, LUA_TTABLE);
        size_t len = lua_rawlen(L, idx);
        const char **a = lua_newuserdatauv(L, (len ? len : 1) * sizeof *a, 0);
        for (size_t i = 0; i < len; i++) {
                lua_rawgeti(L, idx, (lua_Integer)i + 1);
                a[i] = lua_tostring(L, -1);
                if (!a[i])
                        luaL_error(L, "hybrid: a list of strings expected");
                lua_pop(L, 1); /* anchored by the table */
        }
        *n = len;
        return a;
}

/* token_issue{key=, iss=, sub=, aud=, holder=, caps={[res]="read,sub"}, ttl=, dlg=, now=} */
static int l_token_issue(lua_State *L)
{
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "key");      /* 2 */
        lua_getfield(L, 1, "iss");      /* 3 */
        lua_getfield(L, 1, "sub");      /* 4 */
        lua_getfield(L, 1, "aud");      /* 5 */
        lua_getfield(L, 1, "holder");   /* 6 */
        lua_getfield(L, 1, "caps");     /* 7 */
        lua_getfield(L, 1, "ttl");      /* 8 */
        lua_getfield(L, 1, "dlg");      /* 9 */
        lua_getfield(L, 1, "now");      /* 10 */
        const char *key_file = luaL_checkstring(L, 2), *holder_file = luaL_checkstring(L, 6);
        hyb_token_issue_opts o;
        hyb_token_issue_opts_init(&o);
        o.iss = luaL_checkstring(L, 3);
        o.sub = luaL_checkstring(L, 4);
        o.aud = check_strings(L, 5, &o.n_aud); /* 11 */
        luaL_checktype(L, 7, LUA_TTABLE);
        size_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, 7)) {
                n++;
                lua_pop(L, 1);
        }
        hyb_token_cap *caps = lua_newuserdatauv(L, (n ? n : 1) * sizeof *caps, 0); /* 12 */
        size_t i = 0;
        lua_pushnil(L);
        while (lua_next(L, 7)) {
                if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                        return luaL_error(L, "hybrid: caps maps fURI patterns to action lists");
                caps[i].resource = lua_tostring(L, -2);
                if (hyb_token_actions_parse(lua_tostring(L, -1), &caps[i].actions) < 0)
                        return luaL_error(L, "hybrid: bad actions '%s'", lua_tostring(L, -1));
                i++;
                lua_pop(L, 1);
        }
        o.caps = caps;
        o.n_caps = n;
        o.ttl_s = (uint64_t)luaL_optinteger(L, 8, 0);
        o.dlg = (unsigned)luaL_optinteger(L, 9, 0);
        o.now = (int64_t)luaL_optinteger(L, 10, 0);
        hyb_key *issuer = check_key_file(L, key_file);
        hyb_key *holder = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        int r = hyb_key_load_file(holder_file, &holder, &e);
        char *tok = NULL;
        if (r == 0) {
                o.holder = holder;
                r = hyb_token_issue(issuer, &o, &tok, &e);
        }
        hyb_key_unref(issuer);
        hyb_key_unref(holder);
        if (r < 0)
                return raise_code(L, r, &e);
        lua_pushstring(L, tok);
        hyb_free(tok);
        return 1;
}

/* token_verify(token, {audience=, trust={iss = pubkey_file}, now=}) -> table */
static int l_token_verify(lua_State *L)
{
        const char *token = luaL_checkstring(L, 1);
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "audience"); /* 3 */
        lua_getfield(L, 2, "trust");    /* 4 */
        lua_getfield(L, 2, "now");      /* 5 */
        const char *aud = luaL_checkstring(L, 3);
        luaL_checktype(L, 4, LUA_TTABLE);
        hyb_token_trust *trust = NULL;
        int r = hyb_token_trust_new(&trust);
        if (r < 0)
                return raise_code(L, r, NULL);
        hyb_error e;
        hyb_error_clear(&e);
        lua_pushnil(L);
        while (r == 0 && lua_next(L, 4)) {
                const char *iss = lua_tostring(L, -2), *file = lua_tostring(L, -1);
                hyb_key *k = NULL;
                if (!iss || !file || lua_type(L, -2) != LUA_TSTRING) {
                        r = -EINVAL;
                        snprintf(e.message, sizeof e.message,
                                 "trust maps issuer names to public key files");
                } else {
                        r = hyb_key_load_file(file, &k, &e);
                }
                if (r == 0)
                        r = hyb_token_trust_add(trust, iss, k);
                hyb_key_unref(k);
                lua_pop(L, 1);
        }
        if (r < 0) {
                lua_settop(L, 5);
                hyb_token_trust_unref(trust);
                return raise_code(L, r, &e);
        }
        hyb_token_verify_opts vo;
        hyb_token_verify_opts_init(&vo);
        vo.audience = aud;
        vo.now = (int64_t)luaL_optinteger(L, 5, 0);
        hyb_token_result *res = NULL;
        r = hyb_token_verify(token, trust, &vo, &res, &e);
        hyb_token_trust_unref(trust);
        if (r < 0)
                return raise_code(L, r, &e);
        char *json = NULL;
        r = hyb_token_result_to_json(res, &json);
        lua_pushstring(L, hyb_token_result_get_iss(res));
        lua_pushstring(L, hyb_token_result_get_jti(res));
        lua_pushinteger(L, hyb_token_result_get_n_blocks(res));
        hyb_token_result_unref(res);
        if (r < 0)
                return raise_code(L, r, NULL);
        hyb_obj *o = NULL;
        hyb_error_clear(&e);
        r = hyb_obj_from_json(json, strlen(json), &o, &e);
        hyb_free(json);
        if (r < 0)
                return raise_code(L, r, &e);
        push_obj(L, o, true);
        hyb_obj_unref(o);
        lua_pushvalue(L, -4);
        lua_setfield(L, -2, "iss");
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "jti");
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "blocks");
        return 1;
}

/* ---------------------------------------------------------------- misc */

static int l_error_tostring(lua_State *L)
{
        lua_getfield(L, 1, "status");
        lua_getfield(L, 1, "code");
        lua_getfield(L, 1, "message");
        lua_pushfstring(L, "hybrid: %s %s: %s", luaL_tolstring(L, 2, NULL),
                        luaL_tolstring(L, 3, NULL), luaL_tolstring(L, 4, NULL));
        return 1;
}

/* error_new(status or code, message) -> a hybrid.Error value (for procedures to raise) */
static int l_error_new(lua_State *L)
{
        lua_Integer n = luaL_checkinteger(L, 1);
        const char *msg = luaL_optstring(L, 2, NULL);
        if (n > 0) {
                int code = hyb_err_from_status((int)n);
                lua_createtable(L, 0, 3);
                lua_pushinteger(L, n);
                lua_setfield(L, -2, "status");
                lua_pushstring(L, hyb_err_name(code));
                lua_setfield(L, -2, "code");
                lua_pushstring(L, msg ? msg : hyb_strerror(code));
                lua_setfield(L, -2, "message");
                luaL_setmetatable(L, MT_ERROR);
        } else {
                push_error(L, (int)n, msg);
        }
        return 1;
}

/* rss_pages() -> resident pages, page size (/proc/self/statm), for the leak test. */
static int l_rss_pages(lua_State *L)
{
        FILE *f = fopen("/proc/self/statm", "re");
        long size = 0, rss = 0;
        if (!f || fscanf(f, "%ld %ld", &size, &rss) != 2) {
                if (f)
                        fclose(f);
                return luaL_error(L, "hybrid: /proc/self/statm unreadable");
        }
        fclose(f);
        lua_pushinteger(L, rss);
        lua_pushinteger(L, sysconf(_SC_PAGESIZE));
        return 2;
}

static void setfuncs_mt(lua_State *L, const char *name, const luaL_Reg *fns)
{
        luaL_newmetatable(L, name);
        luaL_setfuncs(L, fns, 0);
        lua_pop(L, 1);
}

/* Creates the metatables and the null sentinel; called once from luaopen. */
static void hybrid_core_init(lua_State *L)
{
        static const luaL_Reg bus_mt[] = { { "__gc", l_bus_gc }, { "__close", l_bus_gc }, { NULL, NULL } };
        static const luaL_Reg store_mt[] = { { "__gc", l_store_gc }, { NULL, NULL } };
        static const luaL_Reg slot_mt[] = { { "__gc", l_slot_gc }, { NULL, NULL } };
        static const luaL_Reg err_mt[] = { { "__tostring", l_error_tostring }, { NULL, NULL } };
        setfuncs_mt(L, MT_BUS, bus_mt);
        setfuncs_mt(L, MT_STORE, store_mt);
        setfuncs_mt(L, MT_SLOT, slot_mt);
        setfuncs_mt(L, MT_ERROR, err_mt);
        luaL_newmetatable(L, MT_URI);
        lua_pop(L, 1);
        luaL_newmetatable(L, MT_TYPED);
        lua_pop(L, 1);
        luaL_newmetatable(L, MT_LIST);
        lua_pop(L, 1);
        lua_getfield(L, LUA_REGISTRYINDEX, KEY_NULL);
        if (lua_isnil(L, -1)) {
                /* hybrid.null: a unique empty table (hybrid.lua gives it __tostring) */
                lua_newtable(L);
                lua_setfield(L, LUA_REGISTRYINDEX, KEY_NULL);
        }
        lua_pop(L, 1);
}

/* metatables() -> Bus, Store, Slot, Error, Uri, Typed, List metatables and null */
static int l_metatables(lua_State *L)
{
        hybrid_core_init(L);
        luaL_getmetatable(L, MT_BUS);
        luaL_getmetatable(L, MT_STORE);
        luaL_getmetatable(L, MT_SLOT);
        luaL_getmetatable(L, MT_ERROR);
        luaL_getmetatable(L, MT_URI);
        luaL_getmetatable(L, MT_TYPED);
        luaL_getmetatable(L, MT_LIST);
        lua_getfield(L, LUA_REGISTRYINDEX, KEY_NULL);
        return 8;
}
%}

/* ---------------------------------------------------------------- SWIG-wrapped */

/* hybrid/common.h as it is: hyb_version, hyb_strerror, hyb_err_name, hyb_err_to_status,
 * hyb_err_from_status, hyb_now_usec and the constants (HYB_E_FORBIDDEN, ...).  The error
 * struct, hyb_free and the slot functions are the glue's business, not Lua's. */
%include <stdint.i>
/* SWIG 4.1's Lua typemaps return every number as a float; Lua 5.4 has integers, and a
 * status or error code must come back as one (404, not 404.0). */
%typemap(out) int "lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++;"
%typemap(out) uint64_t "lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++;"
#define HYB_EXPORT
%ignore hyb_error;
%ignore hyb_error_clear;
%ignore hyb_free;
%ignore hyb_destroy_fn;
%rename("$ignore", regextarget=1) "^hyb_slot_";
%include "hybrid/common.h"

/* From hybrid/furi.h: matching a fURI against a pattern (reterr is not given). */
%typemap(in, numinputs=0) hyb_error *reterr "$1 = NULL;";
int hyb_furi_match_str(const char *f, const char *pattern, hyb_error *reterr);

/* ---------------------------------------------------------------- native */

%native(connect) int l_connect(lua_State *L);
%native(bus_close) int l_bus_close(lua_State *L);
%native(bus_name) int l_bus_name(lua_State *L);
%native(bus_is_open) int l_bus_is_open(lua_State *L);
%native(bus_fd) int l_bus_fd(lua_State *L);
%native(bus_call) int l_bus_call(lua_State *L);
%native(bus_call_async) int l_bus_call_async(lua_State *L);
%native(bus_procedure) int l_bus_procedure(lua_State *L);
%native(bus_register_event) int l_bus_register_event(lua_State *L);
%native(bus_fire) int l_bus_fire(lua_State *L);
%native(bus_subscribe) int l_bus_subscribe(lua_State *L);
%native(bus_process) int l_bus_process(lua_State *L);
%native(bus_cork) int l_bus_cork(lua_State *L);
%native(bus_free) int l_bus_gc(lua_State *L);
%native(store_open) int l_store_open(lua_State *L);
%native(store_source) int l_store_source(lua_State *L);
%native(store_get) int l_store_get(lua_State *L);
%native(store_put) int l_store_put(lua_State *L);
%native(store_delete) int l_store_delete(lua_State *L);
%native(store_watch) int l_store_watch(lua_State *L);
%native(store_process) int l_store_process(lua_State *L);
%native(store_free) int l_store_gc(lua_State *L);
%native(slot_cancel) int l_slot_cancel(lua_State *L);
%native(mmadt_run) int l_mmadt_run(lua_State *L);
%native(token_keygen) int l_token_keygen(lua_State *L);
%native(token_issue) int l_token_issue(lua_State *L);
%native(token_verify) int l_token_verify(lua_State *L);
%native(error_new) int l_error_new(lua_State *L);
%native(rss_pages) int l_rss_pages(lua_State *L);
%native(metatables) int l_metatables(lua_State *L);
