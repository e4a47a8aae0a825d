/* SPDX-License-Identifier: MIT */
/*
 * The `auth:` key of the daemon's configuration (doc/config.md): whether peers
 * may or must present a security token (doc/token.md), which audience the daemon
 * answers to, which issuers it trusts and the longest token lifetime it accepts.
 *
 *   auth:
 *     tokens: accept                      off (default) | accept | require
 *     audience: hub1                      default: the machine's host name
 *     issuers:                            issuer name: its public key file (PEM or JWK)
 *       acme: /etc/hybrid/acme.pub
 *     max_lifetime_s: 86400               default 30 days
 *     verify_threads: 2                   threads checking signatures (at start only)
 *     max_verifying: 32                   connects being verified, in all (then 503)
 *     uid_max_verifying: 8                of one uid (then 429)
 *     feed_peers:                         daemons asked for missing revocation entries
 *       - /run/hub-a.sock                 a bus socket or URL (no token), or a mapping:
 *       - {bus: wss://h:8443/bus/ws, token: FILE, key: FILE, ca: FILE, pin: SHA256}
 *
 * The issuer key files are read while the configuration is loaded, so a missing
 * or unreadable key is a configuration error with its line, like any other.
 */
#include <jansson.h>
#include <stdio.h>

#include "broker/config-internal.h"
#include "bus/names.h"
#include "hybrid/token.h"

#include "common/util.h"

static const char *const token_modes[] = {"off", "accept", "require"};

static int set_tokens(loader *l, const char *path, const field *f)
{
        size_t i = 0;
        int r;

        r = loader_get_choice(l, path, "a token mode", token_modes, ELEMENTSOF(token_modes), &i);
        if (r < 0)
                return r;
        loader_config(l)->auth_tokens = (int)i;
        return 0;
}

static int set_audience(loader *l, const char *path, const field *f)
{
        const char *s = NULL;
        size_t len = 0;
        char *dup;
        int r;

        r = loader_get_string(l, path, "an audience id", &s, &len);
        if (r < 0)
                return r;
        if (len == 0 || len > 255)
                return loader_fail(l, loader_event(l)->start_mark, path,
                                   "an audience id has 1 to 255 bytes");
        dup = strndup_safe(s, len);
        if (!dup)
                return -ENOMEM;
        free(loader_config(l)->auth_audience);
        loader_config(l)->auth_audience = dup;
        return 0;
}

static int set_issuers(loader *l, const char *path, const field *f)
{
        const yaml_event_t *e = loader_event(l);
        hyb_token_trust *trust = NULL;
        int r;

        if (loader_is_null(e)) {
                broker_config *c = loader_config(l);

                c->auth_trust = hyb_token_trust_unref(c->auth_trust);
                return 0;
        }
        if (e->type != YAML_MAPPING_START_EVENT)
                return loader_fail(l, e->start_mark, path,
                                   "expected a mapping of issuer name to public key file, got %s",
                                   e->type == YAML_SEQUENCE_START_EVENT ? "a list" : "a scalar");
        r = hyb_token_trust_new(&trust);
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_free_ char *name = NULL;
                hyb_key *key = NULL;
                const char *s = NULL;
                size_t len = 0;
                char sub[200], file[4096];
                hyb_error err;

                r = loader_next(l);
                if (r < 0)
                        goto out;
                e = loader_event(l);
                if (e->type == YAML_MAPPING_END_EVENT)
                        break;
                r = loader_get_string(l, path, "an issuer name", &s, &len);
                if (r < 0)
                        goto out;
                if (len == 0 || len > 255) {
                        r = loader_fail(l, e->start_mark, path,
                                        "an issuer name has 1 to 255 bytes");
                        goto out;
                }
                name = strndup_safe(s, len);
                if (!name) {
                        r = -ENOMEM;
                        goto out;
                }
                if (hyb_token_trust_get(trust, name)) {
                        r = loader_fail(l, e->start_mark, path, "repeated issuer '%.64s'", name);
                        goto out;
                }
                snprintf(sub, sizeof(sub), "%.120s.%.64s", path, name);
                r = loader_next(l);
                if (r < 0)
                        goto out;
                r = loader_get_string(l, sub, "a public key file", &s, &len);
                if (r < 0)
                        goto out;
                if (len == 0 || len >= sizeof(file)) {
                        r = loader_fail(l, loader_event(l)->start_mark, sub, "bad key file name");
                        goto out;
                }
                memcpy(file, s, len);
                file[len] = '\0';
                hyb_error_clear(&err);
                r = hyb_key_load_file(file, &key, &err);
                if (r < 0) {
                        r = loader_fail(l, loader_event(l)->start_mark, sub,
                                        "cannot load key %s: %s", file,
                                        err.message[0] ? err.message : hyb_strerror(r));
                        goto out;
                }
                r = hyb_token_trust_add(trust, name, key);
                hyb_key_unref(key);
                if (r < 0) {
                        r = loader_fail(l, loader_event(l)->start_mark, sub,
                                        "cannot trust key %s: %s", file, hyb_strerror(r));
                        goto out;
                }
        }
        hyb_token_trust_unref(loader_config(l)->auth_trust);
        loader_config(l)->auth_trust = trust;
        return 0;
out:
        hyb_token_trust_unref(trust);
        return r;
}

static int set_max_lifetime(loader *l, const char *path, const field *f)
{
        const char *s = NULL;
        size_t len = 0;
        uint64_t v = 0;
        int r;

        r = loader_get_string(l, path, "a number of seconds", &s, &len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9' || v > BROKER_AUTH_MAX_LIFETIME_S) {
                        v = 0;
                        break;
                }
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (v < 1 || v > BROKER_AUTH_MAX_LIFETIME_S)
                return loader_fail(l, loader_event(l)->start_mark, path,
                                   "expected seconds 1..%llu, got '%.*s'",
                                   (unsigned long long)BROKER_AUTH_MAX_LIFETIME_S,
                                   (int)(len > 40 ? 40 : len), s);
        loader_config(l)->auth_max_lifetime_s = v;
        return 0;
}

/* A count lo..hi written in decimal digits. */
static int get_count(loader *l, const char *path, uint32_t lo, uint32_t hi, uint32_t *ret)
{
        const char *s = NULL;
        size_t len = 0;
        uint64_t v = 0;
        int r;

        r = loader_get_string(l, path, "a count", &s, &len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9' || v > hi) {
                        v = 0;
                        break;
                }
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (len == 0 || v < lo || v > hi)
                return loader_fail(l, loader_event(l)->start_mark, path, "expected a count %u..%u, got '%.*s'",
                                   lo, hi, (int)(len > 40 ? 40 : len), s);
        *ret = (uint32_t)v;
        return 0;
}

static int set_verify_threads(loader *l, const char *path, const field *f)
{
        return get_count(l, path, 1, BROKER_AUTH_VERIFY_THREADS_MAX, &loader_config(l)->auth_verify_threads);
}

static int set_max_verifying(loader *l, const char *path, const field *f)
{
        return get_count(l, path, 1, BROKER_AUTH_VERIFYING_MAX, &loader_config(l)->auth_max_verifying);
}

static int set_uid_max_verifying(loader *l, const char *path, const field *f)
{
        return get_count(l, path, 1, BROKER_AUTH_VERIFYING_MAX, &loader_config(l)->auth_uid_max_verifying);
}

/* ---------------------------------------------------------- feed_peers */

/* A string member of the feed peer being read (loader_user: its json object). */
static int peer_string(loader *l, const char *path, const char *member, const char *what)
{
        json_t *peer = *loader_user(l);
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = loader_get_string(l, path, what, &s, &len);
        if (r < 0)
                return r;
        if (len == 0 || len > 4095 || memchr(s, 0, len))
                return loader_fail(l, loader_event(l)->start_mark, path, "expected %s", what);
        return json_object_set_new(peer, member, json_stringn(s, len)) < 0 ? -ENOMEM : 0;
}

static int set_peer_bus(loader *l, const char *path, const field *f)
{
        return peer_string(l, path, "bus", "a bus socket path or a ws:// or wss:// URL");
}

/* The token in file (one line; trailing white space dropped) into *ret (free()). */
static int read_token(const char *file, char **ret, hyb_error *e)
{
        FILE *f = fopen(file, "re");
        char *buf;
        size_t n;

        if (!f)
                return err_set(e, -errno, -1, "%s: %s", file, strerror(errno));
        buf = malloc(HYB_TOKEN_MAX_SIZE + 2);
        if (!buf) {
                fclose(f);
                return -ENOMEM;
        }
        n = fread(buf, 1, HYB_TOKEN_MAX_SIZE + 1, f);
        fclose(f);
        while (n > 0 && strchr("\r\n\t ", buf[n - 1]))
                n--;
        buf[n] = 0;
        if (n == 0 || n > HYB_TOKEN_MAX_SIZE || strlen(buf) != n) {
                free(buf);
                return err_set(e, -EINVAL, -1, "%s: empty, too long, or not one token", file);
        }
        *ret = buf;
        return 0;
}

/* token: the file is read now (a token on one line), so a missing one is an error here. */
static int set_peer_token(loader *l, const char *path, const field *f)
{
        json_t *peer = *loader_user(l);
        yaml_mark_t m = loader_event(l)->start_mark;
        char *text = NULL;
        hyb_error e;
        int r;

        r = peer_string(l, path, "token", "a token file");
        if (r < 0)
                return r;
        hyb_error_clear(&e);
        r = read_token(json_string_value(json_object_get(peer, "token")), &text, &e);
        if (r < 0)
                return loader_fail(l, m, path, "cannot read the token: %s",
                                   e.message[0] ? e.message : hyb_strerror(r));
        r = json_object_set_new(peer, "token_text", json_string(text)) < 0 ? -ENOMEM : 0;
        free(text);
        return r;
}

static int set_peer_key(loader *l, const char *path, const field *f)
{
        json_t *peer = *loader_user(l);
        yaml_mark_t m = loader_event(l)->start_mark;
        hyb_key *key = NULL;
        hyb_error e;
        int r;

        r = peer_string(l, path, "key", "a private key file");
        if (r < 0)
                return r;
        hyb_error_clear(&e);
        r = hyb_key_load_file(json_string_value(json_object_get(peer, "key")), &key, &e);
        if (r >= 0 && !hyb_key_has_private(key))
                r = err_set(&e, -ENOKEY, -1, "it holds no private key");
        hyb_key_unref(key);
        if (r < 0)
                return loader_fail(l, m, path, "cannot load the key: %s",
                                   e.message[0] ? e.message : hyb_strerror(r));
        return 0;
}

static int set_peer_ca(loader *l, const char *path, const field *f)
{
        return peer_string(l, path, "ca", "a PEM file of CA certificates");
}

static int set_peer_pin(loader *l, const char *path, const field *f)
{
        return peer_string(l, path, "pin", "a SHA-256 public key pin");
}

static int feed_peer_item(loader *l, const char *path, size_t i, void *ud)
{
        static const field fields[] = {
                { "bus", set_peer_bus },
                { "token", set_peer_token },
                { "key", set_peer_key },
                { "ca", set_peer_ca },
                { "pin", set_peer_pin },
        };
        const yaml_event_t *e = loader_event(l);
        yaml_mark_t m = e->start_mark;
        json_t *peer = json_object();
        void *saved = *loader_user(l);
        int r;

        if (!peer)
                return -ENOMEM;
        if (json_array_size(ud) >= BROKER_FEED_PEERS_MAX) {
                json_decref(peer);
                return loader_fail(l, m, path, "at most %d feed peers", BROKER_FEED_PEERS_MAX);
        }
        *loader_user(l) = peer;
        if (e->type == YAML_MAPPING_START_EVENT)
                r = loader_walk_map(l, path, fields, ELEMENTSOF(fields));
        else
                r = set_peer_bus(l, path, NULL);
        *loader_user(l) = saved;
        if (r >= 0 && !json_object_get(peer, "bus"))
                r = loader_fail(l, m, path, "a feed peer needs bus");
        if (r >= 0 && !json_object_get(peer, "token") != !json_object_get(peer, "key"))
                r = loader_fail(l, m, path, "a feed peer's token needs its holder key, and a key a token");
        if (r >= 0)
                r = json_array_append(ud, peer) < 0 ? -ENOMEM : 0;
        json_decref(peer);
        return r;
}

static int set_feed_peers(loader *l, const char *path, const field *f)
{
        broker_config *c = loader_config(l);
        json_t *list = json_array();
        int r = 0;

        if (!list)
                return -ENOMEM;
        if (!loader_is_null(loader_event(l)))
                r = loader_walk_list(l, path,
                                     "a list of bus sockets or URLs ({bus, token, key, ca, pin})",
                                     feed_peer_item, list);
        if (r < 0) {
                json_decref(list);
                return r;
        }
        json_decref(c->auth_feed_peers);
        c->auth_feed_peers = json_array_size(list) ? list : NULL;
        if (!c->auth_feed_peers)
                json_decref(list);
        return 0;
}

int broker_config_set_auth(loader *l, const char *path, const field *f)
{
        /* Spaced inside the braces: tests/integration/example-config.sh finds the keys so. */
        static const field fields[] = {
                { "tokens", set_tokens },
                { "audience", set_audience },
                { "issuers", set_issuers },
                { "max_lifetime_s", set_max_lifetime },
                { "verify_threads", set_verify_threads },
                { "max_verifying", set_max_verifying },
                { "uid_max_verifying", set_uid_max_verifying },
                { "feed_peers", set_feed_peers },
        };

        return loader_walk_map(l, path, fields, ELEMENTSOF(fields));
}
