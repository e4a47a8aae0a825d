/* SPDX-License-Identifier: MIT */
/*
 * The threads that check token signatures for the connect handshake (auth.c), so that
 * the event loop never waits for one and a token's signatures and its proof of
 * possession are checked at the same time (doc/config.md, auth.verify_threads).
 *
 * A job is one connection's verification: n_tasks independent tasks (a signature each),
 * run by whichever worker is free, in the order jobs were submitted.  When the last task
 * of a job has returned, the job goes on the done list and an eventfd wakes the loop,
 * which calls its done() there: everything but the tasks (the claims, the revocation hook,
 * the connection) is the loop's alone.  Workers see only the job's tasks, never the
 * broker or a connection, so a connection that closes meanwhile only detaches from its
 * job (auth.c), and stopping the broker joins the workers before anything is freed.
 *
 * Bounded: at most auth.max_verifying jobs in flight (queued, running or done but not yet
 * collected), of them at most auth.uid_max_verifying of one uid; a job counts until the
 * loop has collected it, even when its connection went away, so what is queued is
 * bounded, not only what is waited for.
 *
 * Tests only: when the environment names a FIFO in HYBRID_TEST_VERIFY_GATE as the pool
 * starts, a worker reads one byte from it before each task, so a test can hold the
 * verifications back and count what the daemon queues (tests/integration/token-verify-pool.sh).
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker-internal.h"

struct bauth_pool {
        hyb_broker *b;
        pthread_mutex_t lock;
        pthread_cond_t work;
        pthread_t *threads;
        unsigned n_threads;
        bool stop;
        bpool_job *queue_head, *queue_tail; /* jobs with tasks not yet started (lock) */
        bpool_job *done;                    /* jobs whose tasks all returned (lock) */
        bpool_job *inflight;                /* every job submitted and not collected (loop) */
        unsigned n_inflight;
        int efd;                            /* eventfd: the loop's wake-up */
        struct event *ev;
        int gate;                           /* HYBRID_TEST_VERIFY_GATE, or -1 */
};

static void *worker(void *ud)
{
        struct bauth_pool *p = ud;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                bpool_job *j;
                unsigned i;

                while (!p->stop && !p->queue_head)
                        pthread_cond_wait(&p->work, &p->lock);
                if (p->stop)
                        break;
                j = p->queue_head;
                i = j->next_task++;
                if (j->next_task == j->n_tasks) {
                        p->queue_head = j->qnext;
                        if (!p->queue_head)
                                p->queue_tail = NULL;
                }
                pthread_mutex_unlock(&p->lock);
                if (p->gate >= 0) {
                        char byte;
                        ssize_t k;

                        do
                                k = read(p->gate, &byte, 1);
                        while (k < 0 && errno == EINTR);
                }
                j->run(j, i);
                pthread_mutex_lock(&p->lock);
                if (--j->left == 0) {
                        uint64_t one = 1;

                        j->dnext = p->done;
                        p->done = j;
                        if (write(p->efd, &one, sizeof one) < 0) {
                                /* the counter is far from full: the loop wakes up anyway */
                        }
                }
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* On the loop: collects the finished jobs and calls their done(). */
static void pool_wake(evutil_socket_t fd, short what, void *ud)
{
        struct bauth_pool *p = ud;
        bpool_job *done, *rev = NULL;
        uint64_t n;

        (void)what;
        if (read(fd, &n, sizeof n) < 0) {
                /* EAGAIN: another wake-up took it */
        }
        pthread_mutex_lock(&p->lock);
        done = p->done;
        p->done = NULL;
        pthread_mutex_unlock(&p->lock);
        /* in the order they finished */
        while (done) {
                bpool_job *j = done;

                done = j->dnext;
                j->dnext = rev;
                rev = j;
        }
        while (rev) {
                bpool_job *j = rev;

                rev = j->dnext;
                *j->iprev = j->inext;
                if (j->inext)
                        j->inext->iprev = j->iprev;
                p->n_inflight--;
                j->done(j, false);
        }
        if (!p->inflight)
                event_del(p->ev);
        broker_flush_batches(p->b);
}

static void pool_stop(struct bauth_pool *p)
{
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
        if (p->gate >= 0) {
                /* a worker may wait for the gate: one byte each lets it go */
                for (unsigned i = 0; i < p->n_threads; i++)
                        if (write(p->gate, "", 1) < 0)
                                break;
        }
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        p->n_threads = 0;
}

unsigned auth_pool_threads(const hyb_broker *b)
{
        return b->tok_pool ? b->tok_pool->n_threads : (unsigned)b->c->auth_verify_threads;
}

unsigned auth_pool_in_flight(const hyb_broker *b)
{
        return b->tok_pool ? b->tok_pool->n_inflight : 0;
}

void auth_pool_shutdown(hyb_broker *b)
{
        if (b->tok_pool && b->tok_pool->ev)
                event_del(b->tok_pool->ev);
}

void auth_pool_free(hyb_broker *b)
{
        struct bauth_pool *p = b->tok_pool;

        if (!p)
                return;
        pool_stop(p);
        /* Jobs not collected: their done() frees them, told they were cancelled. */
        while (p->inflight) {
                bpool_job *j = p->inflight;

                p->inflight = j->inext;
                j->done(j, true);
        }
        if (p->ev)
                event_free(p->ev);
        if (p->efd >= 0)
                close(p->efd);
        if (p->gate >= 0)
                close(p->gate);
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->lock);
        free(p->threads);
        free(p);
        b->tok_pool = NULL;
}

static int pool_start(hyb_broker *b)
{
        struct bauth_pool *p;
        sigset_t all, old;
        const char *gate;
        int r = 0;

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->b = b;
        p->efd = -1;
        p->gate = -1;
        b->tok_pool = p;
        if (pthread_mutex_init(&p->lock, NULL) != 0 || pthread_cond_init(&p->work, NULL) != 0) {
                free(p);
                b->tok_pool = NULL;
                return -ENOMEM;
        }
        p->threads = calloc(b->c->auth_verify_threads, sizeof *p->threads);
        p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!p->threads || p->efd < 0) {
                r = p->threads ? -errno : -ENOMEM;
                goto fail;
        }
        /* Added only while jobs are in flight: an idle pool does not keep the loop running
         * (hybridd's loop ends when nothing is left to wait for). */
        p->ev = event_new(b->base, p->efd, EV_READ | EV_PERSIST, pool_wake, p);
        if (!p->ev) {
                r = -ENOMEM;
                goto fail;
        }
        if ((gate = secure_getenv("HYBRID_TEST_VERIFY_GATE")) && *gate &&
            (p->gate = open(gate, O_RDWR | O_CLOEXEC)) < 0) {
                r = -errno;
                broker_log(b, HYB_LOG_ERROR, "HYBRID_TEST_VERIFY_GATE %s: %s", gate, strerror(-r));
                goto fail;
        }
        /* The workers take no signal: the loop's thread handles them. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (unsigned i = 0; i < b->c->auth_verify_threads; i++) {
                int k = pthread_create(&p->threads[i], NULL, worker, p);

                if (k != 0) {
                        r = -k;
                        break;
                }
                p->n_threads++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (p->n_threads == 0)
                goto fail;
        if (r < 0)
                broker_log(b, HYB_LOG_WARNING, "token verification: %u of %u threads (%s)", p->n_threads,
                           (unsigned)b->c->auth_verify_threads, strerror(-r));
        return 0;
fail:
        auth_pool_free(b);
        return r < 0 ? r : -ENOMEM;
}

int auth_pool_submit(hyb_broker *b, bpool_job *j)
{
        struct bauth_pool *p = b->tok_pool;
        unsigned of_uid = 0;
        int r;

        if (p) {
                if (p->n_inflight >= b->c->auth_max_verifying)
                        return -EBUSY;
                for (bpool_job *k = p->inflight; k; k = k->inext)
                        of_uid += k->uid == j->uid;
                if (of_uid >= b->c->auth_uid_max_verifying)
                        return -EAGAIN;
        } else if ((r = pool_start(b)) < 0) {
                return r;
        }
        p = b->tok_pool;
        if (b->shutting_down)
                return -ESHUTDOWN;
        if (!p->inflight && event_add(p->ev, NULL) < 0)
                return -ENOMEM;
        j->next_task = 0;
        j->left = j->n_tasks;
        j->qnext = NULL;
        j->dnext = NULL;
        j->inext = p->inflight;
        j->iprev = &p->inflight;
        if (p->inflight)
                p->inflight->iprev = &j->inext;
        p->inflight = j;
        p->n_inflight++;
        pthread_mutex_lock(&p->lock);
        if (j->n_tasks == 0) {
                /* nothing to check: done at once (the loop collects it on its next turn) */
                uint64_t one = 1;

                j->dnext = p->done;
                p->done = j;
                if (write(p->efd, &one, sizeof one) < 0) {
                        /* as in worker() */
                }
        } else {
                if (p->queue_tail)
                        p->queue_tail->qnext = j;
                else
                        p->queue_head = j;
                p->queue_tail = j;
                if (j->n_tasks > 1)
                        pthread_cond_broadcast(&p->work);
                else
                        pthread_cond_signal(&p->work);
        }
        pthread_mutex_unlock(&p->lock);
        return 0;
}
