/* SPDX-License-Identifier: MIT */
/*
 * A program built against an older, shorter size-stamped struct: the library must
 * write no byte past the caller's size when it initialises the struct, and read none
 * past it when it uses the struct (the members the old layout lacks are absent).
 * The exact-size heap copies make any overrun visible to ASan and valgrind; the guard
 * bytes make it visible in a plain build.
 */
#include <hybrid/hybrid.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define GUARD 0xA5
#define FAIL(...)                                                                          \
        do {                                                                               \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
                fprintf(stderr, __VA_ARGS__);                                              \
                fputc('\n', stderr);                                                       \
                exit(1);                                                                   \
        } while (0)

/* hyb_bus_connect_options as it was before ca_file and pin were added. */
typedef struct old_connect_options {
        size_t size;
        const char *path;
        const char *app;
        const char *runner;
        const char *token;
        const hyb_key *key;
} old_connect_options;

/* The old struct with what a newer library would take for ca_file and pin behind it. */
typedef struct old_and_more {
        old_connect_options o;
        const char *ca_file;
        const char *pin;
} old_and_more;

static size_t stamped(const void *p)
{
        size_t size;

        memcpy(&size, p, sizeof(size));
        return size;
}

static void expect_untouched(const unsigned char *b, size_t from, size_t to, const char *what)
{
        for (size_t i = from; i < to; i++)
                if (b[i] != GUARD)
                        FAIL("%s wrote byte %zu (past its size %zu)", what, i, from);
}

typedef void (*sized_init_fn)(void *p, size_t size);

/* Every sized initialiser: a short size, a too small one and a newer caller's longer one. */
static void check_sized(const char *name, sized_init_fn fn, size_t lib_size)
{
        unsigned char buf[1024];
        size_t shortsz = 2 * sizeof(size_t), longsz = lib_size + 64;

        if (longsz > sizeof(buf))
                FAIL("%s: struct of %zu bytes is larger than the test's buffer", name, lib_size);
        memset(buf, GUARD, sizeof(buf));
        fn(buf, shortsz);
        if (stamped(buf) != shortsz)
                FAIL("%s: size %zu stamped, not %zu", name, stamped(buf), shortsz);
        expect_untouched(buf, shortsz, sizeof(buf), name);

        memset(buf, GUARD, sizeof(buf));
        fn(buf, sizeof(size_t) - 1);
        expect_untouched(buf, 0, sizeof(buf), name);
        fn(NULL, lib_size);

        memset(buf, GUARD, sizeof(buf));
        fn(buf, longsz);
        if (stamped(buf) != longsz)
                FAIL("%s: size %zu stamped, not %zu", name, stamped(buf), longsz);
        for (size_t i = lib_size; i < longsz; i++)
                if (buf[i] != 0)
                        FAIL("%s: byte %zu of a longer struct not zeroed", name, i);
        expect_untouched(buf, longsz, sizeof(buf), name);

        /* exactly the short size on the heap: an overrun is an ASan/valgrind error */
        void *p = malloc(shortsz);
        if (!p)
                FAIL("malloc");
        fn(p, shortsz);
        if (stamped(p) != shortsz)
                FAIL("%s: heap copy stamped %zu", name, stamped(p));
        free(p);
}

/* Each initialiser behind one signature, called with the type it takes. */
#define WRAP(name, type)                                                                   \
        static void name##_w(void *p, size_t size)                                         \
        {                                                                                  \
                name##_sized((type *)p, size);                                             \
        }
WRAP(hyb_bus_connect_options_init, hyb_bus_connect_options)
WRAP(hyb_furi_limits_init, hyb_furi_limits)
WRAP(hyb_mmadt_options_init, hyb_mmadt_options)
WRAP(hyb_store_options_init, hyb_store_options)
WRAP(hyb_token_issue_opts_init, hyb_token_issue_opts)
WRAP(hyb_token_attenuate_opts_init, hyb_token_attenuate_opts)
WRAP(hyb_token_verify_opts_init, hyb_token_verify_opts)
WRAP(hyb_token_feed_rev_init, hyb_token_feed_rev)
#define SIZED(name, type) check_sized(#name, name##_w, sizeof(type))

/* A TCP port on 127.0.0.1 that accepts connections (the kernel's backlog answers). */
static int listener(int *ret_port)
{
        struct sockaddr_in sa = { .sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
                FAIL("cannot listen on 127.0.0.1");
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

/* A wss:// connect whose verification settings come from the members past the old
 * struct: absent, so it must fail for want of a CA or pin before anything is sent. */
static void check_connect(const old_connect_options *o, const char *what)
{
        hyb_error err = { 0 };
        hyb_bus *bus = NULL;
        int r;

        r = hyb_bus_connect_with((const hyb_bus_connect_options *)o, &bus, &err);
        if (r != -EINVAL || !strstr(err.message, "cannot be verified"))
                FAIL("%s: connect gave %d (%s), not -EINVAL for want of a CA file or pin: the "
                     "library read members past the old size",
                     what, r, err.message);
        if (bus)
                FAIL("%s: a bus despite the error", what);
}

int main(void)
{
        unsigned char mem[sizeof(old_connect_options) + 64];
        hyb_bus_connect_options full;
        hyb_key *key = NULL;
        char url[64];
        int port, lfd;

        /* the bug: the old init wrote the library's size into the caller's smaller struct */
        memset(mem, GUARD, sizeof(mem));
        hyb_bus_connect_options_init_sized((hyb_bus_connect_options *)mem,
                                           sizeof(old_connect_options));
        if (stamped(mem) != sizeof(old_connect_options))
                FAIL("old layout stamped %zu", stamped(mem));
        for (size_t i = sizeof(size_t); i < sizeof(old_connect_options); i++)
                if (mem[i] != 0)
                        FAIL("old layout byte %zu not zeroed", i);
        expect_untouched(mem, sizeof(old_connect_options), sizeof(mem), "connect options");

        /* the header's macro passes the caller's sizeof; the old symbol the library's */
        memset(&full, GUARD, sizeof(full));
        hyb_bus_connect_options_init(&full);
        if (full.size != sizeof(full) || full.pin || full.ca_file || full.path)
                FAIL("hyb_bus_connect_options_init did not initialise the whole struct");
        memset(&full, GUARD, sizeof(full));
        (hyb_bus_connect_options_init)(&full);
        if (full.size != sizeof(full) || full.pin || full.ca_file)
                FAIL("the old hyb_bus_connect_options_init symbol did not initialise");

        SIZED(hyb_bus_connect_options_init, hyb_bus_connect_options);
        SIZED(hyb_furi_limits_init, hyb_furi_limits);
        SIZED(hyb_mmadt_options_init, hyb_mmadt_options);
        SIZED(hyb_store_options_init, hyb_store_options);
        SIZED(hyb_token_issue_opts_init, hyb_token_issue_opts);
        SIZED(hyb_token_attenuate_opts_init, hyb_token_attenuate_opts);
        SIZED(hyb_token_verify_opts_init, hyb_token_verify_opts);
        SIZED(hyb_token_feed_rev_init, hyb_token_feed_rev);

        /* defaults are written only for the members that fit */
        {
                hyb_furi_limits lim;

                memset(&lim, GUARD, sizeof(lim));
                hyb_furi_limits_init_sized(&lim, offsetof(hyb_furi_limits, max_segments));
                if (lim.max_length != HYB_FURI_MAX_LENGTH)
                        FAIL("furi limits: max_length %zu, not the default", lim.max_length);
                expect_untouched((const unsigned char *)&lim,
                                 offsetof(hyb_furi_limits, max_segments), sizeof(lim),
                                 "furi limits");
        }

        /* hyb_furi_parse with limits of an older layout that knew only max_length: the
         * max_segments behind it is not the caller's, the default of 32 applies */
        {
                struct {
                        struct {
                                size_t size;
                                size_t max_length;
                        } o;
                        size_t more[2];
                } l = { .o = { 0, 64 }, .more = { 1, 1 } };
                hyb_furi *f = NULL;
                int r;

                hyb_furi_limits_init_sized((hyb_furi_limits *)&l.o, sizeof(l.o));
                l.o.max_length = 64;
                if (l.o.size != sizeof(l.o) || l.more[0] != 1)
                        FAIL("furi limits of the old layout: size %zu", l.o.size);
                r = hyb_furi_parse("/a/b/c", (size_t)-1, (const hyb_furi_limits *)&l.o, &f, NULL);
                if (r < 0)
                        FAIL("hyb_furi_parse with old-layout limits: %d (read past the size)", r);
                hyb_furi_unref(f);
        }

        /* hyb_bus_connect_with on the old layout: ca_file and pin are absent */
        unsetenv("HYBRID_CA");
        unsetenv("HYBRID_PIN");
        if (hyb_key_generate(&key) < 0)
                FAIL("hyb_key_generate");
        lfd = listener(&port);
        snprintf(url, sizeof(url), "wss://127.0.0.1:%d/bus/ws", port);

        old_and_more m;
        memset(&m, 0, sizeof(m));
        hyb_bus_connect_options_init_sized((hyb_bus_connect_options *)&m.o, sizeof(m.o));
        m.o.path = url;
        m.o.app = "abi";
        m.o.runner = "old";
        m.o.token = "a.b.c";
        m.o.key = key;
        m.ca_file = "/nonexistent/ca.pem"; /* not the caller's: must not be read */
        m.pin = NULL;
        check_connect(&m.o, "old layout followed by more memory");

        old_connect_options *heap = malloc(sizeof(*heap));
        if (!heap)
                FAIL("malloc");
        *heap = m.o;
        check_connect(heap, "old layout of exactly its size on the heap");
        free(heap);

        close(lfd);
        hyb_key_unref(key);
        printf("ok: sized initialisers and the old connect options layout\n");
        return 0;
}
