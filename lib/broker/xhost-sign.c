/* SPDX-License-Identifier: MIT */
/*
 * Calls between hosts signed with the cluster's shared secret (cluster.call_secret_file,
 * doc/cluster.md "Signed calls"): a CALL, CANCEL or RESULT carries the MQTT 5 user properties
 * "ts" (the caller's wall clock, ms since 1970, decimal) and "mac", the lower-case hex of
 *
 *   HMAC-SHA256(secret, "hybrid-call-1" NUL topic NUL response-topic NUL ts NUL
 *               correlation-data-in-hex NUL token NUL frame)
 *
 * (an absent response topic or token is empty; the frame is the message's payload).  The
 * receiver checks the MAC and, for a CALL, that ts is within XSIGN_SKEW_MS of its own
 * clock and that it has not taken that call before:
 *
 *   replay cache: the last XSIGN_REPLAY_MAX calls taken, (host, call id) -> ts, in a ring
 *    in arrival order with a hash index; floor[hash of the host] = the newest ts the ring
 *    let go of for a host of that slot, below which (and at which) nothing of those hosts
 *    is taken: a call the ring forgot cannot come again.  The floor is per host (slot):
 *    a host whose clock is behind another's (within the skew) would otherwise see all its
 *    calls refused once the ring let go of a call of the host ahead.
 *
 * Only calls whose MAC verified enter it, so a client of the broker without the secret
 * cannot fill it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker-internal.h"
#include "token/crypto.h"
#include "xhost.h"

#define XSIGN_SKEW_MS 60000
#define XSIGN_REPLAY_MAX 16384u
#define XSIGN_BUCKETS (2 * XSIGN_REPLAY_MAX) /* a power of two */
#define XSIGN_FLOORS 1024u /* a power of two */
#define XSIGN_SECRET_MIN 16u
#define XSIGN_SECRET_MAX 4096u

struct xsign {
        uint8_t *secret;
        size_t len;
        uint64_t key[XSIGN_REPLAY_MAX];
        int64_t ts[XSIGN_REPLAY_MAX];
        uint32_t next[XSIGN_REPLAY_MAX]; /* chain of its bucket: index + 1, 0 ends */
        uint16_t fl[XSIGN_REPLAY_MAX];   /* the floor slot of its host */
        uint32_t bucket[XSIGN_BUCKETS];  /* index + 1 of the chain's first, 0: empty */
        unsigned n, head;                /* entries; the slot written next (the oldest) */
        int64_t floor[XSIGN_FLOORS];     /* per host hash (floor_of) */
};

int xsign_load(const char *path, xsign **ret, char *err, size_t err_size)
{
        uint8_t buf[XSIGN_SECRET_MAX + 2];
        size_t n = 0;
        ssize_t k;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        xsign *s;

        if (fd < 0) {
                snprintf(err, err_size, "cluster.call_secret_file %s: %s", path, strerror(errno));
                return -errno;
        }
        while (n < sizeof buf && (k = read(fd, buf + n, sizeof buf - n)) > 0)
                n += (size_t)k;
        close(fd);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        if (n < XSIGN_SECRET_MIN || n > XSIGN_SECRET_MAX) {
                crypto_zero(buf, sizeof buf);
                snprintf(err, err_size, "cluster.call_secret_file %s: the secret must have %u to %u "
                         "bytes (without a final newline)", path, XSIGN_SECRET_MIN, XSIGN_SECRET_MAX);
                return -EINVAL;
        }
        s = calloc(1, sizeof *s);
        if (s)
                s->secret = malloc(n);
        if (!s || !s->secret) {
                free(s);
                crypto_zero(buf, sizeof buf);
                return -ENOMEM;
        }
        memcpy(s->secret, buf, n);
        s->len = n;
        crypto_zero(buf, sizeof buf);
        *ret = s;
        return 0;
}

xsign *xsign_free(xsign *s)
{
        if (s) {
                crypto_zero(s->secret, s->len);
                free(s->secret);
                free(s);
        }
        return NULL;
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The MAC of m (its ts set) over frame[0..len) as 64 hex digits into hex[65]. */
static int mac_of(const xsign *s, const xmsg *m, char hex[65])
{
        static const char prefix[] = "hybrid-call-1";
        static const char digits[] = "0123456789abcdef";
        char corr[2 * 255 + 1];
        uint8_t out[CRYPTO_SHA256_LEN];
        const char *rt = m->response_topic ? m->response_topic : "";
        const char *tok = m->token ? m->token : "";
        int r;

        if (m->corr_len > 255)
                return -EINVAL;
        for (size_t i = 0; i < m->corr_len; i++) {
                corr[2 * i] = digits[m->corr[i] >> 4];
                corr[2 * i + 1] = digits[m->corr[i] & 15];
        }
        corr[2 * m->corr_len] = 0;
        const void *parts[] = { prefix, m->topic, rt, m->ts, corr, tok, m->payload };
        size_t lens[] = { sizeof prefix, strlen(m->topic) + 1, strlen(rt) + 1, strlen(m->ts) + 1,
                          2 * m->corr_len + 1, strlen(tok) + 1, m->len };
        r = crypto_hmac_sha256_parts(s->secret, s->len, parts, lens, 7, out);
        if (r < 0)
                return r;
        for (size_t i = 0; i < sizeof out; i++) {
                hex[2 * i] = digits[out[i] >> 4];
                hex[2 * i + 1] = digits[out[i] & 15];
        }
        hex[64] = 0;
        return 0;
}

int xsign_make(const xsign *s, xmsg *m, char ts[24], char mac[65])
{
        snprintf(ts, 24, "%lld", (long long)now_ms());
        m->ts = ts;
        int r = mac_of(s, m, mac);
        if (r < 0) {
                m->ts = NULL;
                return r;
        }
        m->mac = mac;
        return 0;
}

static uint64_t host_hash(const char *host, size_t host_len)
{
        uint64_t h = 1469598103934665603ull; /* FNV-1a */

        for (size_t i = 0; i < host_len; i++) {
                h ^= (uint8_t)host[i];
                h *= 1099511628211ull;
        }
        return h;
}

static uint64_t key_of(uint64_t host_h, uint64_t id)
{
        return host_h ^ (id * 0x9e3779b97f4a7c15ull);
}

static unsigned floor_of(uint64_t host_h)
{
        return (unsigned)(host_h >> 32 ^ host_h) & (XSIGN_FLOORS - 1);
}

static uint32_t bucket_of(uint64_t key)
{
        return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (XSIGN_BUCKETS - 1);
}

static bool replay_has(const xsign *s, uint64_t key)
{
        for (uint32_t i = s->bucket[bucket_of(key)]; i; i = s->next[i - 1])
                if (s->key[i - 1] == key)
                        return true;
        return false;
}

static void replay_add(xsign *s, uint64_t key, unsigned fl, int64_t ts)
{
        unsigned slot = s->head;

        if (s->n == XSIGN_REPLAY_MAX) {
                /* the oldest goes: out of its chain, and the floor rises to its ts */
                uint32_t *pp = &s->bucket[bucket_of(s->key[slot])];
                while (*pp && *pp != slot + 1)
                        pp = &s->next[*pp - 1];
                if (*pp)
                        *pp = s->next[slot];
                if (s->ts[slot] > s->floor[s->fl[slot]])
                        s->floor[s->fl[slot]] = s->ts[slot];
                s->n--;
        }
        uint32_t b = bucket_of(key);
        s->key[slot] = key;
        s->ts[slot] = ts;
        s->fl[slot] = (uint16_t)fl;
        s->next[slot] = s->bucket[b];
        s->bucket[b] = slot + 1;
        s->head = (slot + 1) % XSIGN_REPLAY_MAX;
        s->n++;
}

int xsign_check(xsign *s, const xmsg *m, const char *host, size_t host_len, uint64_t id, bool call,
                const char **why)
{
        char mac[65];
        int64_t ts = 0, now = now_ms();
        const char *p;

        if (!m->ts || !m->mac) {
                *why = "this host takes only calls signed with the cluster's secret "
                       "(cluster.call_secret_file)";
                return -EACCES;
        }
        for (p = m->ts; *p >= '0' && *p <= '9' && p - m->ts < 18; p++)
                ts = ts * 10 + (*p - '0');
        if (p == m->ts || *p || strlen(m->mac) != 64 || mac_of(s, m, mac) < 0 ||
            !crypto_memeq(mac, m->mac, 64)) {
                *why = "the call's signature does not verify with the cluster's secret "
                       "(cluster.call_secret_file)";
                return -EACCES;
        }
        if (!call)
                return 0;
        if (ts < now - XSIGN_SKEW_MS || ts > now + XSIGN_SKEW_MS) {
                *why = "the call's time is more than 60 s away from this host's clock (a replay, "
                       "or clocks that differ)";
                return -EACCES;
        }
        uint64_t hh = host_hash(host, host_len), key = key_of(hh, id);
        unsigned fl = floor_of(hh);
        if (ts <= s->floor[fl] || replay_has(s, key)) {
                *why = "a replayed call: this host took it before";
                return -EACCES;
        }
        replay_add(s, key, fl, ts);
        return 0;
}

const uint8_t *xsign_secret(const xsign *s, size_t *len)
{
        *len = s ? s->len : 0;
        return s ? s->secret : NULL;
}

size_t xsign_replay_count(const xsign *s)
{
        return s ? s->n : 0;
}
