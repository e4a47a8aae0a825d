/* SPDX-License-Identifier: MIT */
/*
 * Capabilities: `{"resource": PATTERN, "actions": [...]}` entries, their
 * intersection across the blocks of a token, and authorisation.
 *
 * A resource is a fURI pattern (`+` one segment, `#` the rest) in canonical
 * form: store fURIs as they are, bus names as `bus://host/app/runner/name`,
 * lower-cased.  Text a verifier must not have to reason about is refused
 * outright, in a capability and in a question alike:
 *
 *   home//temp        empty segment (a fURI parse error)
 *   home/../admin     not canonical (it means `admin`)
 *   home/%2F/temp     a segment holding a `/` once decoded
 *   ../x, ./x         dot segments
 *   home/x?q          a query
 *
 * Authorisation asks "does the resource lie within a granted pattern": the
 * store's matcher (hyb_furi_match) answers pattern-within-pattern too, so a
 * subscription to `home/#` is not covered by a grant of `home/+/temp`.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "token-internal.h"

static const char *const action_names[] = {
        "call", "reg", "sub", "pub", "read", "write", "delete", "admin",
};

unsigned token_action_from_name(const char *s, size_t n)
{
        for (size_t i = 0; i < ELEMENTSOF(action_names); i++)
                if (strlen(action_names[i]) == n && memcmp(action_names[i], s, n) == 0)
                        return 1u << i;
        return 0;
}

const char *token_action_name(unsigned bit)
{
        for (size_t i = 0; i < ELEMENTSOF(action_names); i++)
                if (bit == 1u << i)
                        return action_names[i];
        return NULL;
}

HYB_EXPORT int hyb_token_actions_parse(const char *text, unsigned *ret_actions)
{
        unsigned acts = 0;
        const char *p = text;

        hyb_assert_return(text && ret_actions, -EINVAL);
        for (;;) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                unsigned a = token_action_from_name(p, n);

                if (!a)
                        return HYB_E_PARSE;
                acts |= a;
                if (!comma)
                        break;
                p = comma + 1;
        }
        *ret_actions = acts;
        return 0;
}

/* No dot segment and no decoded `/` in a segment (see the table above). */
static bool segments_sane(const hyb_furi *f)
{
        size_t n = hyb_furi_get_n_segments(f);

        for (size_t i = 0; i < n; i++) {
                size_t len;
                const char *s = hyb_furi_get_segment(f, i, &len);

                if (memchr(s, '/', len) || (len == 1 && s[0] == '.') ||
                    (len == 2 && s[0] == '.' && s[1] == '.'))
                        return false;
        }
        return true;
}

int token_resource_parse(const char *text, size_t len, hyb_furi **ret, hyb_error *e)
{
        char buf[TOKEN_MAX_STRING + 1];
        hyb_furi *f = NULL;
        bool bus;

        if (len == 0 || len > TOKEN_MAX_STRING || memchr(text, 0, len))
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "resource of %zu bytes", len);
        memcpy(buf, text, len);
        buf[len] = 0;
        bus = len > 6 && strncasecmp(buf, "bus://", 6) == 0;
        if (bus)
                for (size_t i = 0; i < len; i++)
                        buf[i] = (char)tolower((unsigned char)buf[i]);
        if (hyb_furi_parse(buf, len, NULL, &f, NULL) < 0)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "resource %s is not a fURI", buf);
        if (strcmp(hyb_furi_get_str(f), buf) != 0 || hyb_furi_get_query(f) || !segments_sane(f)) {
                err_set(e, HYB_E_UNAUTHORIZED, -1, "resource %s is not in canonical form", buf);
                hyb_furi_unref(f);
                return HYB_E_UNAUTHORIZED;
        }
        *ret = f;
        return 0;
}

void token_cap_set(token_cap *c, hyb_furi *pattern, unsigned actions)
{
        const char *text = hyb_furi_get_path_str(pattern), *host = hyb_furi_get_host(pattern);
        const char *scheme = hyb_furi_get_scheme(pattern);
        size_t len = strlen(text), start = 0;

        c->pattern = pattern;
        c->actions = actions;
        c->prefix = text;
        c->prefix_len = 0;
        /* A wildcard scheme or host (with its user and port rules) stands anywhere. */
        if ((host && strcmp(host, "+") == 0) || (scheme && strcmp(scheme, "+") == 0))
                return;
        /* Segment by segment: stop at the first `+` (keeping the `/` before it: the fURI
         * has a segment there) or `#` (dropping the `/`: `a/#` matches `a`). */
        for (size_t i = 0; i <= len; i++) {
                if (i < len && text[i] != '/')
                        continue;
                if (i - start == 1 && text[start] == '+') {
                        c->prefix_len = (uint32_t)start;
                        return;
                }
                if (i - start == 1 && text[start] == '#') {
                        c->prefix_len = (uint32_t)(start ? start - 1 : 0);
                        return;
                }
                start = i + 1;
        }
        c->prefix_len = (uint32_t)len;
}

void token_caps_free(token_cap *caps, size_t n)
{
        for (size_t i = 0; caps && i < n; i++)
                hyb_furi_unref(caps[i].pattern);
        free(caps);
}

static int cap_parse(json_t *o, token_cap *c, hyb_error *e)
{
        json_t *res = json_object_get(o, "resource"), *acts = json_object_get(o, "actions");
        size_t i;
        json_t *a;

        if (!json_is_object(o) || json_object_size(o) != 2 || !json_is_string(res) ||
            !json_is_array(acts) || json_array_size(acts) == 0 ||
            json_array_size(acts) > ELEMENTSOF(action_names))
                return err_set(e, HYB_E_UNAUTHORIZED, -1,
                               "a capability is not {\"resource\": ..., \"actions\": [...]}");
        unsigned actions = 0;
        hyb_furi *f = NULL;
        int r;

        json_array_foreach(acts, i, a)
        {
                unsigned bit = json_is_string(a) ? token_action_from_name(json_string_value(a),
                                                                          json_string_length(a))
                                                 : 0;

                if (!bit)
                        return err_set(e, HYB_E_UNAUTHORIZED, -1, "unknown action in a capability");
                actions |= bit;
        }
        r = token_resource_parse(json_string_value(res), json_string_length(res), &f, e);
        if (r < 0)
                return r;
        token_cap_set(c, f, actions);
        return 0;
}

int token_caps_parse(json_t *cap, token_cap **ret_caps, size_t *ret_n, hyb_error *e)
{
        token_cap *caps;
        size_t n = json_is_array(cap) ? json_array_size(cap) : 0;
        size_t i;
        json_t *o;
        int r;

        if (n == 0 || n > TOKEN_MAX_CAPS)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "cap is not an array of 1 to %d entries",
                               TOKEN_MAX_CAPS);
        caps = calloc(n, sizeof *caps);
        if (!caps)
                return -ENOMEM;
        json_array_foreach(cap, i, o)
        {
                r = cap_parse(o, &caps[i], e);
                if (r < 0) {
                        token_caps_free(caps, n);
                        return r;
                }
        }
        *ret_caps = caps;
        *ret_n = n;
        return 0;
}

int token_caps_intersect(token_cap **caps, size_t *n, const token_cap *child, size_t n_child,
                         hyb_error *e)
{
        token_cap *out = NULL;
        size_t n_out = 0, alloc = 0;

        for (size_t i = 0; i < *n; i++) {
                const token_cap *p = &(*caps)[i];

                for (size_t j = 0; j < n_child; j++) {
                        const token_cap *c = &child[j];
                        unsigned acts = p->actions & c->actions;
                        hyb_furi *keep;

                        if (!acts)
                                continue;
                        if (hyb_furi_match(c->pattern, p->pattern))
                                keep = c->pattern;
                        else if (hyb_furi_match(p->pattern, c->pattern))
                                keep = p->pattern;
                        else
                                continue; /* disjoint, or overlapping without nesting */
                        if (n_out == TOKEN_MAX_EFFECTIVE_CAPS) {
                                token_caps_free(out, n_out);
                                return err_set(e, HYB_E_UNAUTHORIZED, -1,
                                               "over %d effective capabilities",
                                               TOKEN_MAX_EFFECTIVE_CAPS);
                        }
                        if (grow_array((void **)&out, &alloc, n_out + 1, sizeof *out) < 0) {
                                token_caps_free(out, n_out);
                                return -ENOMEM;
                        }
                        token_cap_set(&out[n_out++], hyb_furi_ref(keep), acts);
                }
        }
        token_caps_free(*caps, *n);
        *caps = out;
        *n = n_out;
        return 0;
}

json_t *token_caps_to_json(const token_cap *caps, size_t n)
{
        json_t *arr = json_array();

        for (size_t i = 0; arr && i < n; i++) {
                json_t *acts = json_array();

                for (unsigned b = 0; acts && b < ELEMENTSOF(action_names); b++)
                        if (caps[i].actions & (1u << b))
                                json_array_append_new(acts, json_string(action_names[b]));
                if (!acts || json_array_append_new(arr, json_pack("{s:s,s:o}", "resource",
                                                                  hyb_furi_get_str(caps[i].pattern),
                                                                  "actions", acts)) < 0) {
                        json_decref(arr);
                        return NULL;
                }
        }
        return arr;
}

HYB_EXPORT bool hyb_token_allowed(const hyb_token_result *r, const hyb_furi *resource,
                                  unsigned actions)
{
        const char *text;
        size_t len;

        if (!r || !resource || actions == 0 || !segments_sane(resource))
                return false;
        text = hyb_furi_get_path_str(resource);
        len = strlen(text);
        for (size_t i = 0; i < r->n_caps; i++) {
                const token_cap *c = &r->caps[i];

                /* The last byte of the prefix first: capabilities of one token usually share
                 * their beginning and differ near the end of the literal part. */
                if ((c->actions & actions) == actions && c->prefix_len <= len &&
                    (c->prefix_len == 0 ||
                     text[c->prefix_len - 1] == c->prefix[c->prefix_len - 1]) &&
                    memcmp(text, c->prefix, c->prefix_len) == 0 &&
                    hyb_furi_match(resource, c->pattern))
                        return true;
        }
        return false;
}

HYB_EXPORT int hyb_token_allowed_str(const hyb_token_result *r, const char *resource,
                                     unsigned actions)
{
        hyb_furi *f = NULL;
        bool ok;

        hyb_assert_return(r && resource, -EINVAL);
        if (token_resource_parse(resource, strlen(resource), &f, NULL) < 0)
                return 0;
        ok = hyb_token_allowed(r, f, actions);
        hyb_furi_unref(f);
        return ok;
}
