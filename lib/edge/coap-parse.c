/* SPDX-License-Identifier: MIT */
/*
 * What the CoAP edge reads out of a request's options itself (libcoap parses the datagram):
 * the path of its Uri-Path options, the params of its Uri-Query options, an option's value;
 * and the copy of a request an async hands back (coap.c).  fuzz_coap drives the readers.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "coap-internal.h"

/* An unreserved or sub-delim character of a path segment (RFC 3986) stays as it is. */
static bool path_char(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

int edge_coap_path(const coap_pdu_t *pdu, char *out, size_t size)
{
        coap_opt_iterator_t it;
        coap_opt_filter_t f;
        coap_opt_t *o;
        size_t n = 0;

        coap_option_filter_clear(&f);
        coap_option_filter_set(&f, COAP_OPTION_URI_PATH);
        coap_option_iterator_init(pdu, &it, &f);
        while ((o = coap_option_next(&it))) {
                const uint8_t *v = coap_opt_value(o);
                uint32_t len = coap_opt_length(o);

                if (n + 1 >= size)
                        return -E2BIG;
                out[n++] = '/';
                for (uint32_t i = 0; i < len; i++) {
                        if (path_char(v[i])) {
                                if (n + 1 >= size)
                                        return -E2BIG;
                                out[n++] = (char)v[i];
                        } else {
                                if (n + 3 >= size)
                                        return -E2BIG;
                                snprintf(out + n, 4, "%%%02X", v[i]);
                                n += 3;
                        }
                }
        }
        if (n == 0) {
                if (size < 2)
                        return -E2BIG;
                out[n++] = '/';
        }
        out[n] = 0;
        return 0;
}

int edge_coap_query_params(const coap_pdu_t *pdu, char **ret)
{
        coap_opt_iterator_t it;
        coap_opt_filter_t f;
        coap_opt_t *o;
        json_t *obj = json_object();
        int r = 0;

        if (!obj)
                return -ENOMEM;
        coap_option_filter_clear(&f);
        coap_option_filter_set(&f, COAP_OPTION_URI_QUERY);
        coap_option_iterator_init(pdu, &it, &f);
        while (r == 0 && (o = coap_option_next(&it))) {
                const char *v = (const char *)coap_opt_value(o);
                uint32_t len = coap_opt_length(o);
                const char *eq = memchr(v, '=', len);
                char *key, *value;

                if (memchr(v, 0, len)) {
                        r = -EINVAL;
                        break;
                }
                /* "k=v"; a bare "k" is the empty string */
                key = strndup(v, eq ? (size_t)(eq - v) : len);
                value = eq ? strndup(eq + 1, len - (size_t)(eq + 1 - v)) : strdup("");
                r = key && value ? edge_params_add(obj, key, value) : -ENOMEM;
                free(key);
                free(value);
        }
        if (r == 0 && !(*ret = json_dumps(obj, JSON_COMPACT)))
                r = -ENOMEM;
        json_decref(obj);
        return r;
}

bool edge_coap_option(const coap_pdu_t *pdu, uint16_t num, uint32_t *value)
{
        coap_opt_iterator_t it;
        coap_opt_t *o = coap_check_option(pdu, num, &it);

        if (!o)
                return false;
        if (value)
                *value = coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o));
        return true;
}

/*
 * The copy of req an async hands back: its type, code, token and options without Block1
 * and Size1 (nor its payload: the request was read already).  With obs (an observer's
 * id), its Uri-Path and Uri-Query are hyb-obs/<obs>: the registration lands on the
 * observer's own resource.
 */
coap_pdu_t *edge_coap_request_copy(coap_session_t *s, const coap_pdu_t *req, const char *obs)
{
        coap_bin_const_t tok = coap_pdu_get_token(req);
        coap_pdu_t *c = coap_pdu_init(coap_pdu_get_type(req), coap_pdu_get_code(req),
                                      coap_pdu_get_mid(req), coap_session_max_pdu_size(s));
        coap_opt_iterator_t it;
        coap_opt_t *o;
        bool added = !obs;

        if (!c || !coap_add_token(c, tok.length, tok.s))
                goto fail;
        coap_option_iterator_init(req, &it, COAP_OPT_ALL);
        while ((o = coap_option_next(&it))) {
                if (!added && it.number > COAP_OPTION_URI_PATH) {
                        if (!coap_add_option(c, COAP_OPTION_URI_PATH, strlen(EDGE_COAP_OBS_PATH),
                                             (const uint8_t *)EDGE_COAP_OBS_PATH) ||
                            !coap_add_option(c, COAP_OPTION_URI_PATH, strlen(obs),
                                             (const uint8_t *)obs))
                                goto fail;
                        added = true;
                }
                if (it.number == COAP_OPTION_BLOCK1 || it.number == COAP_OPTION_SIZE1 ||
                    (obs &&
                     (it.number == COAP_OPTION_URI_PATH || it.number == COAP_OPTION_URI_QUERY)))
                        continue;
                if (!coap_add_option(c, it.number, coap_opt_length(o), coap_opt_value(o)))
                        goto fail;
        }
        if (!added &&
            (!coap_add_option(c, COAP_OPTION_URI_PATH, strlen(EDGE_COAP_OBS_PATH),
                              (const uint8_t *)EDGE_COAP_OBS_PATH) ||
             !coap_add_option(c, COAP_OPTION_URI_PATH, strlen(obs), (const uint8_t *)obs)))
                goto fail;
        return c;
fail:
        if (c)
                coap_delete_pdu(c);
        return NULL;
}

/* ----------------------------------------------------------------- credentials */

int edge_coap_cred_read(const coap_pdu_t *pdu, edge_coap_cred *c)
{
        coap_opt_iterator_t it;
        coap_opt_t *o;
        int found = 0;

        memset(c, 0, sizeof *c);
        coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
        while ((o = coap_option_next(&it))) {
                const uint8_t *v = coap_opt_value(o);
                uint64_t iat = 0;

                if (it.number != EDGE_COAP_OPT_PROOF)
                        continue;
                if (found || coap_opt_length(o) != EDGE_COAP_PROOF_LEN)
                        return -EINVAL;
                memcpy(c->th, v, sizeof c->th);
                v += sizeof c->th;
                for (int i = 0; i < 8; i++)
                        iat = iat << 8 | v[i];
                c->iat = (int64_t)iat;
                memcpy(c->jti, v + 8, sizeof c->jti);
                memcpy(c->sig, v + 8 + sizeof c->jti, sizeof c->sig);
                found = 1;
        }
        return found;
}

/* Appends n bytes of v to out (at *at), percent-encoding what keep does not take. */
static int put_enc(char *out, size_t size, size_t *at, const uint8_t *v, size_t n,
                   bool (*keep)(unsigned char))
{
        for (size_t i = 0; i < n; i++) {
                if (keep(v[i])) {
                        if (*at + 1 >= size)
                                return -E2BIG;
                        out[(*at)++] = (char)v[i];
                } else {
                        if (*at + 3 >= size)
                                return -E2BIG;
                        snprintf(out + *at, 4, "%%%02X", v[i]);
                        *at += 3;
                }
        }
        out[*at] = 0;
        return 0;
}

static int put_str(char *out, size_t size, size_t *at, const char *s)
{
        size_t n = strlen(s);

        if (*at + n >= size)
                return -E2BIG;
        memcpy(out + *at, s, n + 1);
        *at += n;
        return 0;
}

static bool host_char(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               strchr("-._~!$&'()*+,;=", c) != NULL;
}

static bool query_char(unsigned char c)
{
        return c != '&' && (path_char(c) || c == '/' || c == '?');
}

int edge_coap_uri(const coap_pdu_t *pdu, const struct sockaddr_storage *local, char *out,
                  size_t size)
{
        coap_opt_iterator_t it;
        coap_opt_t *o;
        char ip[INET6_ADDRSTRLEN + 2], num[8];
        unsigned port;
        size_t at = 0;
        bool first;
        int r;

        if (size == 0)
                return -E2BIG;
        out[0] = 0;
        if ((r = put_str(out, size, &at, "coap://")) < 0)
                return r;
        if ((o = coap_check_option(pdu, COAP_OPTION_URI_HOST, &it))) {
                r = put_enc(out, size, &at, coap_opt_value(o), coap_opt_length(o), host_char);
        } else if (local->ss_family == AF_INET) {
                inet_ntop(AF_INET, &((const struct sockaddr_in *)local)->sin_addr, ip, sizeof ip);
                r = put_str(out, size, &at, ip);
        } else if (local->ss_family == AF_INET6) {
                ip[0] = '[';
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)local)->sin6_addr, ip + 1,
                          sizeof ip - 2);
                strcat(ip, "]");
                r = put_str(out, size, &at, ip);
        } else {
                return -EINVAL;
        }
        if (r < 0)
                return r;
        if ((o = coap_check_option(pdu, COAP_OPTION_URI_PORT, &it)))
                port = coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o));
        else if (local->ss_family == AF_INET)
                port = ntohs(((const struct sockaddr_in *)local)->sin_port);
        else
                port = ntohs(((const struct sockaddr_in6 *)local)->sin6_port);
        if (port != COAP_DEFAULT_PORT) {
                snprintf(num, sizeof num, ":%u", port & 0xffffu);
                if ((r = put_str(out, size, &at, num)) < 0)
                        return r;
        }
        first = true;
        coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
        while ((o = coap_option_next(&it))) {
                if (it.number != COAP_OPTION_URI_PATH)
                        continue;
                if ((r = put_str(out, size, &at, "/")) < 0 ||
                    (r = put_enc(out, size, &at, coap_opt_value(o), coap_opt_length(o),
                                 path_char)) < 0)
                        return r;
                first = false;
        }
        if (first && (r = put_str(out, size, &at, "/")) < 0)
                return r;
        first = true;
        coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
        while ((o = coap_option_next(&it))) {
                if (it.number != COAP_OPTION_URI_QUERY)
                        continue;
                if ((r = put_str(out, size, &at, first ? "?" : "&")) < 0 ||
                    (r = put_enc(out, size, &at, coap_opt_value(o), coap_opt_length(o),
                                 query_char)) < 0)
                        return r;
                first = false;
        }
        return 0;
}

int edge_coap_proof_input(int code, const char *uri, const uint8_t body_hash[32],
                          const uint8_t th[32], const edge_coap_cred *c, uint8_t **ret,
                          size_t *len)
{
        size_t ctx = sizeof EDGE_COAP_PROOF_CONTEXT; /* with its NUL */
        size_t ul = strlen(uri), n = ctx + 1 + 2 + ul + 32 + 32 + 8 + EDGE_COAP_JTI_LEN, at = 0;
        uint64_t iat = (uint64_t)c->iat;
        uint8_t *b;

        if (ul > 0xffff)
                return -E2BIG;
        b = malloc(n);
        if (!b)
                return -ENOMEM;
        memcpy(b, EDGE_COAP_PROOF_CONTEXT, ctx);
        at = ctx;
        b[at++] = (uint8_t)code;
        b[at++] = (uint8_t)(ul >> 8);
        b[at++] = (uint8_t)ul;
        memcpy(b + at, uri, ul);
        at += ul;
        memcpy(b + at, body_hash, 32);
        at += 32;
        memcpy(b + at, th, 32);
        at += 32;
        for (int i = 7; i >= 0; i--)
                b[at++] = (uint8_t)(iat >> (8 * i));
        memcpy(b + at, c->jti, EDGE_COAP_JTI_LEN);
        at += EDGE_COAP_JTI_LEN;
        *ret = b;
        *len = at;
        return 0;
}
