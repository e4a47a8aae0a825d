/* SPDX-License-Identifier: MIT */
/*
 * Group commit.  Writers apply their change to the in-memory index, append
 * its database ops to st->pending and, for a synchronous write, wait:
 *
 *   pending: op → op → op(waiter A) → op(async cb) → op(waiter B)
 *                 │
 *   leader:  takes the whole list (inflight), drops st->lock, commits it in
 *            ONE transaction, retakes the lock, marks every waiter done and
 *            queues every async completion, then wakes the followers.
 *
 * Whoever finds no leader becomes it; the others sleep on st->committed, and
 * what they queued while the leader was busy forms the next batch.  So FULL
 * durability pays one fsync per batch, not per write, and no write is
 * acknowledged (waiter done, callback queued) before its batch committed.
 *
 * st->lock is not held during the commit (only the connection's own lock,
 * db.lock), and readers and writers never wait for db.lock (their journal
 * poll is skipped while it is busy): writers queue while the fsync runs.
 * When a batch is acknowledged, all its writers wake at once and the first
 * one back would commit its next write alone; so a leader first waits until
 * every synchronous writer inside the store has queued or left
 * (sync_writers == pending_waiters).  One writer never waits.
 *
 * With opts.commit_thread, asynchronous writes (hyb_store_write_async) are led by
 * the store's own committer thread, which sleeps on commit_cv until some are
 * queued: a daemon's loop queues a write and goes on serving, the fsync of
 * durability FULL runs on the committer, and the write's completion reaches the
 * loop through hyb_store_process once it is on disk.
 */
#include <stdio.h>

#include "store-internal.h"


void db_op_free(db_op *op)
{
        while (op) {
                db_op *next = op->next;
                free(op->key);
                db_value_done(&op->value);
                free(op);
                op = next;
        }
}

void commit_enqueue(hyb_store *st, db_op *op)
{
        op->next = NULL;
        *st->pending_tail = op;
        st->pending_tail = &op->next;
}

/* Reloads memory from the database after a failed commit, so memory and disk agree again. */
int store_resync_locked(hyb_store *st);

void commit_writer(hyb_store *st, bool enter)
{
        if (enter)
                st->sync_writers++;
        else {
                st->sync_writers--;
                pthread_cond_signal(&st->queued);
        }
}

/*
 * With st->lock held and st->committing set: lets the other synchronous writers queue first.
 * No timeout is needed: every writer counted in sync_writers either queues its op (counted in
 * pending_waiters) or leaves (its write is done, failed or had nothing to commit), both under
 * st->lock, which this wait releases, and both signal queued; none of them can be waiting for
 * this batch (no commit runs while a leader gathers).
 */
static void gather(hyb_store *st)
{
        while (st->pending_waiters < st->sync_writers)
                pthread_cond_wait(&st->queued, &st->lock);
}

static int lead(hyb_store *st, bool sync)
{
        db_op *batch;
        hyb_error e = { 0 };
        int r;

        st->committing = true;
        if (sync)
                gather(st);
        batch = st->pending;
        st->pending = NULL;
        st->pending_tail = &st->pending;
        st->pending_waiters = 0;
        st->inflight = batch;
        pthread_mutex_unlock(&st->lock);
        r = db_commit(&st->db, batch, &e);
        pthread_mutex_lock(&st->lock);
        st->inflight = NULL;
        st->committing = false;
        for (db_op *op = batch; op; op = op->next) {
                if (op->waiter) {
                        op->waiter->done = true;
                        op->waiter->r = r;
                        if (r < 0)
                                snprintf(op->waiter->why, sizeof(op->waiter->why), "%s",
                                         e.message[0] ? e.message : hyb_strerror(r));
                }
                if (op->done)
                        store_queue_done(st, op->done, op->userdata, r);
        }
        db_op_free(batch);
        if (r < 0)
                /* memory already holds the failed writes: take the disk's word back */
                store_resync_locked(st);
        pthread_cond_broadcast(&st->committed);
        return r;
}

int commit_run(hyb_store *st, commit_waiter *w)
{
        int r = 0;

        if (!w) {
                /* flush/process: commit what is queued unless a leader is already at it */
                while (st->committing)
                        pthread_cond_wait(&st->committed, &st->lock);
                if (st->pending)
                        r = lead(st, false);
                return r;
        }
        st->pending_waiters++;
        pthread_cond_signal(&st->queued);
        while (!w->done) {
                if (!st->committing && st->pending)
                        lead(st, true);
                else
                        pthread_cond_wait(&st->committed, &st->lock);
        }
        return w->r;
}

static void *committer(void *ud)
{
        hyb_store *st = ud;

        pthread_mutex_lock(&st->lock);
        while (!st->stop_committer) {
                if (st->pending)
                        commit_run(st, NULL); /* after a leader at work, if one is */
                else
                        pthread_cond_wait(&st->commit_cv, &st->lock);
        }
        pthread_mutex_unlock(&st->lock);
        return NULL;
}

int commit_thread_start(hyb_store *st)
{
        int r = pthread_create(&st->committer, NULL, committer, st);

        if (r)
                return -r;
        st->has_committer = true;
        return 0;
}

void commit_thread_stop(hyb_store *st)
{
        if (!st->has_committer)
                return;
        pthread_mutex_lock(&st->lock);
        st->stop_committer = true;
        pthread_cond_signal(&st->commit_cv);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->committer, NULL);
        st->has_committer = false;
}

void commit_wake(hyb_store *st)
{
        if (st->has_committer)
                pthread_cond_signal(&st->commit_cv);
        else
                store_kick(st); /* hyb_store_process commits */
}
