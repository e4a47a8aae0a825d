/* SPDX-License-Identifier: MIT */
/*
 * Bus calls between hosts on the daemon's MQTT link (lib/cluster/link.h): xhost's messages
 * (xhost.h) as MQTT 5 messages.  The payload is the bus frame as it is; the response topic,
 * correlation data, message expiry and the user properties "token", "forHost", "forApp",
 * "ts" and "mac" (xhost-sign.c) are MQTT 5 properties.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker-internal.h"
#include "xhost.h"

#ifdef HYB_HAVE_CLUSTER
#include <mqtt_protocol.h>

#include "cluster/link.h"

static int lk_publish(void *ud, const xmsg *m)
{
        hyb_broker *b = ud;
        mosquitto_property *props = NULL;
        int rc = MOSQ_ERR_SUCCESS, r;

        if (!b->link)
                return -ENOTCONN;
        if (m->event && cluster_link_out_bytes(b->link) + m->len > XHOST_EVENT_BACKLOG)
                return -ENOBUFS;
        if (m->response_topic)
                rc = mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, m->response_topic);
        if (rc == MOSQ_ERR_SUCCESS && m->corr)
                rc = mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, m->corr,
                                                   (uint16_t)m->corr_len);
        if (rc == MOSQ_ERR_SUCCESS && m->expiry_s)
                rc = mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, m->expiry_s);
        if (rc == MOSQ_ERR_SUCCESS && m->token)
                rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "token", m->token);
        if (rc == MOSQ_ERR_SUCCESS && m->for_host)
                rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "forHost", m->for_host);
        if (rc == MOSQ_ERR_SUCCESS && m->for_app)
                rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "forApp", m->for_app);
        if (rc == MOSQ_ERR_SUCCESS && m->ts)
                rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "ts", m->ts);
        if (rc == MOSQ_ERR_SUCCESS && m->mac)
                rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "mac", m->mac);
        if (rc != MOSQ_ERR_SUCCESS) {
                mosquitto_property_free_all(&props);
                return -ENOMEM;
        }
        r = cluster_link_publish(b->link, m->topic, m->payload, m->len, b->c->cluster.qos, m->retain, props,
                                 NULL, NULL);
        mosquitto_property_free_all(&props);
        return r;
}

static int lk_subscribe(void *ud, const char *filter)
{
        hyb_broker *b = ud;
        return b->link ? cluster_link_subscribe(b->link, filter, b->c->cluster.qos, NULL, NULL) : -ENOTCONN;
}

static int lk_unsubscribe(void *ud, const char *filter)
{
        hyb_broker *b = ud;
        return b->link ? cluster_link_unsubscribe(b->link, filter) : -ENOTCONN;
}

static const xhost_ops link_ops = { lk_publish, lk_subscribe, lk_unsubscribe };

static void on_message(cluster_link *l, const char *topic, const void *payload, size_t len, bool retain,
                       int qos, const mosquitto_property *props, void *ud)
{
        hyb_broker *b = ud;
        char *rt = NULL, *name = NULL, *value = NULL, *token = NULL, *fh = NULL, *fa = NULL, *ts = NULL,
             *mac = NULL;
        void *corr = NULL;
        uint16_t corr_len = 0;

        if (props) {
                mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false);
                mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, false);
                for (const mosquitto_property *p =
                             mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
                     p; p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true)) {
                        char **slot = !strcmp(name, "token") ? &token : !strcmp(name, "forHost") ? &fh
                                      : !strcmp(name, "forApp") ? &fa : !strcmp(name, "ts") ? &ts
                                      : !strcmp(name, "mac") ? &mac : NULL;
                        if (slot && !*slot) {
                                *slot = value;
                                value = NULL;
                        }
                        free(name);
                        free(value);
                        name = value = NULL;
                }
        }
        xmsg m = { .topic = topic, .payload = payload, .len = len, .response_topic = rt, .corr = corr,
                   .corr_len = corr_len, .token = token, .for_host = fh, .for_app = fa, .ts = ts, .mac = mac,
                   .retain = retain };
        xhost_receive(b, &m);
        free(rt);
        free(corr);
        free(token);
        free(fh);
        free(fa);
        free(ts);
        free(mac);
}

static void on_state(cluster_link *l, bool connected, bool session_present, void *ud)
{
        if (connected)
                xhost_online(ud);
}

int xhost_link_start(hyb_broker *b)
{
        char t[XHOST_TOPIC_MAX], p[XHOST_TOPIC_MAX];
        const char *prefix = b->c->cluster.prefix ? b->c->cluster.prefix : "";
        int r;

        if (!b->link || b->xhost)
                return 0;
        r = xhost_attach(b, prefix, &link_ops, b);
        if (r == HYB_E_CONFIG) {
                broker_log(b, HYB_LOG_WARNING,
                           "cluster: no bus calls between hosts: set `host` to this host's name (not "
                           "localhost)");
                return 0;
        }
        if (r < 0)
                return r;
        /* With the cluster's secret the link's "seq" numbers carry a MAC: a client of the
         * MQTT broker without it cannot number a message as another daemon's next one
         * (which every daemon would then drop as a duplicate: lib/cluster/link.h). */
        size_t klen;
        const uint8_t *key = xhost_secret(b, &klen);
        if (key && (r = cluster_link_set_seq_key(b->link, key, klen)) < 0) {
                xhost_detach(b);
                return r;
        }
        snprintf(p, sizeof p, "%s_hybrid/", prefix);
        if ((r = xhost_will_topic(b, t)) < 0 ||
            (r = cluster_link_set_will(b->link, t, "offline", 7, b->c->cluster.qos, true)) < 0 ||
            (r = cluster_link_on_message(b->link, p, on_message, b)) < 0 ||
            (r = cluster_link_on_state(b->link, on_state, b)) < 0) {
                xhost_detach(b);
                return r;
        }
        if (cluster_link_is_connected(b->link))
                xhost_online(b);
        if (!xhost_signed(b) && b->c->auth_tokens != BROKER_AUTH_OFF)
                broker_log(b, HYB_LOG_WARNING,
                           "cluster: calls to other hosts carry their callers' tokens unprotected: any "
                           "client of the MQTT broker that can read %scall/<host> can use them until "
                           "they expire; set cluster.call_secret_file (doc/cluster.md \"Signed calls\")", p);
        return 0;
}

void xhost_link_stop(hyb_broker *b)
{
        char t[XHOST_TOPIC_MAX];

        if (!b->xhost)
                return;
        if (b->link && xhost_will_topic(b, t) == 0) {
                xmsg m = { .topic = t, .payload = (const uint8_t *)"offline", .len = 7, .retain = true };
                lk_publish(b, &m);
        }
}

#else

int xhost_link_start(hyb_broker *b)
{
        return 0;
}

void xhost_link_stop(hyb_broker *b)
{
}

#endif
