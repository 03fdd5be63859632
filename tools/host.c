/*
 * host.c - pdsyncd's host of the core: the one place a core update is
 * carried out, the group commit, the standby's acknowledgements, the
 * server's epochs, sharing scopes and the core's reload.
 *
 * pds__daemon_step() steps the core with one event and carries out the
 * update in its fixed order: entries join the turn's batch (persisted in
 * the check phase), member rows go to the storage queue, then the joins,
 * disconnects and replies go out (after the rows when there are any).
 * The check phase after each loop turn hands the batch to one LMDB
 * transaction with one fsync (group commit) on the storage queue (diskq.h:
 * a pool thread, so that the loop never waits on the disk), and only once
 * it is done are the writers answered (or, with a standby, once it
 * confirmed: core/ack.h decides). The order "persist, then reply" lives in
 * commit_batch() and commit_done() alone.
 *
 * This file calls no other file of tools/ but the storage queue and the
 * log: what the group and replication layers do at a commit, at an update
 * and every turn, they register in d->hooks (pdsyncd.c sets them), so
 * that the files of tools/ depend on each other in one direction only.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "../core/pds.h"
#include "../net/net.h"
#include "../storage/store.h"
#include "commlog.h"
#include "daemon.h"
#include "diskq.h"

pds_time pds__wall_ms(void)
{
    /* Tests: a node whose clock is off by this many ms (may be negative). */
    static long long skew = -1;
    struct timespec ts;

    if (skew == -1) {
        const char *s = getenv("PDSYNC_DEBUG_CLOCK_SKEW_MS");
        skew = s != NULL ? atoll(s) : 0;
        if (skew == -1)
            skew = 0;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (pds_time)((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
                      skew);
}

/* ---- Replies ---------------------------------------------------------- */

void pds__daemon_send(struct pds_local_conn *conn, struct pds_reply_buf *rb)
{
    uint8_t *frame;
    size_t len;

    if (rb == NULL)
        return;
    if (pds_reply_take(rb, &frame, &len) != 0) {
        /* The reply was too large or memory ran out: say so instead. */
        pds_log(PDS_LOG_WARNING, "local API: reply could not be encoded");
        return;
    }
    pds_local_send(conn, frame, len);
}

void pds__daemon_reply_error(struct pds_local_conn *conn,
                             uint64_t id,
                             int rc,
                             const char *msg)
{
    pds__daemon_send(conn, pds_reply_new(id, rc, msg));
}

void pds__daemon_deliver(struct daemon *d,
                         const struct pds_reply *replies,
                         size_t n_replies)
{
    size_t i;

    for (i = 0; i < n_replies; i++) {
        const struct pds_reply *r = &replies[i];
        struct waiter *w = (struct waiter *)(uintptr_t)r->req;
        struct pds_reply_buf *rb;

        if (w == NULL)
            continue; /* the daemon's own request, nobody to answer */
        if (w->conn == NULL) {
            w->answer(d, w, r);
            free(w);
            continue;
        }
        if (r->status == 0 &&
            (w->op == PDS_REQ_CLIENTS_STOP || w->op == PDS_REQ_CLIENTS_START)) {
            pds__daemon_send(w->conn, pds_reply_new(w->id, 0, NULL));
            pds_local_conn_unref(w->conn);
            free(w);
            continue;
        }

        if (r->status != 0) {
            /* Refusals an administrator should see go to the comm log;
             * storage failures were logged once for the whole batch. */
            if (r->status == PDS_ELIMIT || r->status == PDS_ETOOBIG)
                pds_commlog(PDS_LOG_WARNING, "write refused: %s", r->errmsg);
            rb = pds_reply_new(w->id, r->status, r->errmsg);
        } else {
            struct pds_write_result res;
            memset(&res, 0, sizeof(res));
            res.epoch = r->epoch;
            res.index = r->index;
            res.version = r->version;
            res.outcome = r->outcome;
            rb = pds_reply_new(w->id, 0, NULL);
            if (rb != NULL)
                pds_reply_write(rb, &res);
        }
        pds__daemon_send(w->conn, rb);
        pds_local_conn_unref(w->conn);
        free(w);
    }
}

/* ---- Stepping the core ------------------------------------------------ */

int pds__append(void **arr,
                size_t *n,
                size_t *cap,
                const void *items,
                size_t k,
                size_t size)
{
    size_t need = *n + k;

    if (need > *cap) {
        size_t c = *cap == 0 ? 64 : *cap;
        void *p;
        while (c < need)
            c *= 2;
        p = realloc(*arr, c * size);
        if (p == NULL)
            return PDS_ENOMEM;
        *arr = p;
        *cap = c;
    }
    if (k > 0)
        memcpy((char *)*arr + *n * size, items, k * size);
    *n = need;
    return 0;
}

/* The update's entries and clamps join the turn's batch: 0, or PDS_ENOMEM
 * with the batch as it was. */
static int batch_add(struct daemon *d, const struct pds_update *u)
{
    size_t n_clamps = d->batch.n_clamps;

    if (d->debug_oom_batch > 0 && --d->debug_oom_batch == 0)
        return PDS_ENOMEM; /* tests: PDSYNC_DEBUG_OOM_BATCH */
    if (pds__append((void **)&d->batch.clamps, &d->batch.n_clamps,
                    &d->batch.cap_clamps, u->clamps, u->n_clamps,
                    sizeof(*u->clamps)) != 0)
        return PDS_ENOMEM;
    if (pds__append((void **)&d->batch.e, &d->batch.n, &d->batch.cap,
                    u->entries, u->n_entries, sizeof(*u->entries)) != 0) {
        d->batch.n_clamps = n_clamps;
        return PDS_ENOMEM;
    }
    return 0;
}

/*
 * Step the core with one event and carry out the update: entries join the
 * turn's batch (persisted in the check phase), replies go out now (the
 * core only returns replies for writes that are durable or refused), or
 * once the update's member rows are stored. When memory runs out for the
 * entries, the core takes them back (as after a failed commit: their
 * writers are answered with the error and their indexes are used again).
 */
int pds__daemon_step(struct daemon *d, const struct pds_event *ev)
{
    struct pds_update u;
    pds_index lost = 0;
    size_t n_lost = 0;
    int rv;

    rv = pds_core_step(d->core, ev, &u);
    if (u.n_entries > 0 && batch_add(d, &u) != 0) {
        lost = u.entries[0].index;
        n_lost = u.n_entries;
    }
    if (!d->hooks.update(d, &u))
        pds__daemon_deliver(d, u.replies, u.n_replies);
    if (lost != 0) {
        struct pds_event fe;
        int frv;

        pds_commlog(PDS_LOG_ERROR,
                    "out of memory queuing %zu writes: they were refused",
                    n_lost);
        memset(&fe, 0, sizeof(fe));
        fe.type = PDS_EVENT_PERSIST_FAILED;
        fe.now = ev->now;
        fe.u.persist_failed.index = lost;
        fe.u.persist_failed.status = PDS_ENOMEM;
        fe.u.persist_failed.errmsg =
            "pdsyncd ran out of memory: the write was not stored (nothing "
            "was changed); try again";
        frv = pds__daemon_step(d, &fe); /* no entries: no deeper */
        if (frv != 0)
            pds_commlog(PDS_LOG_ERROR,
                        "the core could not take back writes from index "
                        "%llu: %s",
                        (unsigned long long)lost, pds_strerror(frv));
    }
    return rv;
}

int pds__daemon_waits_for_standby(const struct daemon *d)
{
    return pds_ack_waits(&d->ack, pds_core_role(d->core) == PDS_ROLE_SERVER);
}

/*
 * Group commit. The writes stepped while no commit runs become one
 * transaction with one fsync, handed to the storage queue in the check
 * phase: the loop goes on taking requests, heartbeats and the standby's
 * confirmations meanwhile, and the writes that arrive during that commit
 * form the next one, handed over in the check phase of the turn it
 * completes in (with the next writes of the writers it answered, see
 * COMMIT_WAIT_NS: else the writers split into two halves that take turns,
 * each commit half as big). One commit at a time; its entries move from
 * d->batch to d->cbatch from the moment it is queued until it is done. The
 * daemon's other storage writes go through the same queue, so they keep their
 * order with the commits and never wait for one in LMDB's writer lock.
 */
static void settle_committed(struct daemon *d, pds_index index, int timeout);
static void ack_apply(struct daemon *d, const struct pds_ack_out *out);

static void finish_commit(struct daemon *d, int rv, int shipped)
{
    struct pds_event ev;
    pds_index first = d->cbatch.e[0].index;
    pds_index last = d->cbatch.e[d->cbatch.n - 1].index;
    struct pds_ack_out out;
    int unconfirmed;
    int waits;

    if (rv != 0 && shipped) {
        /* The standby may hold entries that are not ours now: the next
         * ones, at the same indexes, belong to another term (begun by the
         * commit's job, before any of them is stepped). */
        d->hooks.unship(d, first);
        pds__daemon_epoch_begun(d, &d->commit_epoch);
    }
    if (rv == 0)
        pds__scope_after_commit(d, d->cbatch.e, d->cbatch.n);
    memset(&ev, 0, sizeof(ev));
    ev.now = pds__wall_ms();
    if (rv == 0) {
        d->n_commits++;
        d->n_committed += d->cbatch.n;
        d->committed = last;
        d->hooks.committed(d, d->cbatch.e, d->cbatch.n);
        d->cbatch.n = 0;
        d->cbatch.n_clamps = 0;
        waits = pds__daemon_waits_for_standby(d);
        pds_ack_committed(&d->ack, last, waits, uv_now(&d->loop), &out);
        if (waits) {
            /* Answered when the standby confirms, or at the timeout. The
             * standby, sent the batch before our fsync, may have confirmed
             * already. */
            ack_apply(d, &out);
            d->hooks.after_commit(d);
            return;
        }
        /* Not waiting: answered below (out says "all of it"), or failed
         * when the commit was begun for a standby that is gone. */
        unconfirmed = d->commit_waits || first <= d->unconfirmed_until;
        if (last >= d->unconfirmed_until)
            d->unconfirmed_until = 0; /* those writes are answered now */
        if (unconfirmed && pds_core_role(d->core) != PDS_ROLE_SERVER) {
            /* Begun for the standby, and the server stopped meanwhile:
             * never confirmed, so not acknowledged. */
            settle_committed(d, last, 1);
            d->hooks.after_commit(d);
            return;
        }
        ev.type = PDS_EVENT_PERSISTED;
        ev.u.persisted.index = last;
    } else {
        const char *msg = d->commit_errmsg;
        pds_commlog(PDS_LOG_ERROR, "%zu writes failed: %s",
                    d->cbatch.n + d->batch.n, msg);
        ev.type = PDS_EVENT_PERSIST_FAILED;
        ev.u.persist_failed.index = first;
        ev.u.persist_failed.status = rv;
        ev.u.persist_failed.errmsg = msg;
        /* The core fails every write from first on, those that arrived
         * during the commit too, and frees their bytes (and their
         * indexes are taken again). */
        d->unconfirmed_until = 0;
        d->cbatch.n = 0;
        d->batch.n = 0;
        d->cbatch.n_clamps = 0;
        d->batch.n_clamps = 0;
    }
    rv = pds__daemon_step(d, &ev);
    if (rv != 0)
        pds_log(PDS_LOG_ERROR, "core refused storage result: %s",
                pds_strerror(rv));
    if (ev.type == PDS_EVENT_PERSISTED)
        d->hooks.after_commit(d);
}

/* Move the turn's writes, and their clamps, to the commit slot; the slot's
 * arrays come back empty for the next turn. */
static void take_batch(struct daemon *d)
{
    struct pds_batch spare = d->cbatch;

    d->cbatch = d->batch;
    d->batch = spare;
    d->batch.n = 0;
    d->batch.n_clamps = 0;
}

/* On a pool thread: the commit slot's writes, in one durable transaction
 * (and, when it fails after they were sent to the standby, a new epoch). */
static void commit_work(struct pds_diskq_job *job)
{
    struct daemon *d = PDS_DISKQ_OWNER(job, struct daemon, commit_job);

    d->commit_rv = pds_store_commit_clamped(d->store, d->cbatch.e, d->cbatch.n,
                                            d->cbatch.clamps,
                                            d->cbatch.n_clamps, d->commit_time);
    if (d->commit_rv == 0)
        return;
    snprintf(d->commit_errmsg, sizeof(d->commit_errmsg), "%s",
             pds_store_commit_errmsg(d->store));
    if (d->commit_shipped)
        pds__daemon_epoch_begin(d->store, &d->commit_epoch);
}

static void start_commit(struct daemon *d);

static void commit_done(struct pds_diskq_job *job)
{
    struct daemon *d = PDS_DISKQ_OWNER(job, struct daemon, commit_job);

    d->is_committing = 0;
    /* Those that came meanwhile, and the writers answered now, who send
     * their next write in a moment. */
    d->commit_goal = d->batch.n + d->cbatch.n;
    finish_commit(d, d->commit_rv, d->commit_shipped);
    d->answered_at = uv_hrtime();
    /* The writes that came meanwhile go in this turn's check phase, with
     * those of the writers just answered (commit_batch); once stopping,
     * that phase is closed: now. */
    if (d->is_stopping && d->batch.n > 0)
        start_commit(d);
}

static void start_commit(struct daemon *d)
{
    take_batch(d);
    d->commit_waits = pds__daemon_waits_for_standby(d);
    /* The standby's fsync runs while ours does. */
    d->commit_shipped = d->commit_waits && d->hooks.ship_early(d, &d->cbatch);
    d->commit_time = pds__wall_ms();
    d->is_committing = 1;
    pds__diskq_push(&d->diskq, &d->commit_job, commit_work, commit_done);
}

static void on_commit_idle(uv_idle_t *handle)
{
    (void)handle; /* only keeps the loop polling without blocking */
}

/*
 * The check phase: hand the turn's writes to a commit. After a commit was
 * answered, a batch smaller than the writes that came during it and the
 * writes of the writers it answered waits up to COMMIT_WAIT_NS, polling,
 * for those writers: each of a closed loop of writers sends its next write
 * when answered, and without the wait they fall into a commit of their own
 * (the writers of one commit and of the next then take turns).
 */
#define COMMIT_WAIT_NS 250000u

static void commit_batch(uv_check_t *handle)
{
    struct daemon *d = handle->data;

    d->hooks.turn(d);
    if (d->batch.n == 0 || d->is_committing) {
        uv_idle_stop(&d->commit_idle);
        return;
    }
    if (!d->is_stopping && d->batch.n < d->commit_goal &&
        uv_hrtime() - d->answered_at < COMMIT_WAIT_NS) {
        uv_idle_start(&d->commit_idle, on_commit_idle);
        return;
    }
    uv_idle_stop(&d->commit_idle);
    start_commit(d);
}

static void on_ack_timer(uv_timer_t *t);

const char *pds__daemon_ack_mode(const struct daemon *d)
{
    return pds_ack_mode_text(&d->ack);
}

static void settle_committed(struct daemon *d, pds_index index, int timeout)
{
    struct pds_event ev;
    char msg[PDS_ERRMSG_SIZE];

    if (index <= pds_core_last_index(d->core))
        return;
    memset(&ev, 0, sizeof(ev));
    ev.now = pds__wall_ms();
    if (timeout) {
        if (pds_core_role(d->core) != PDS_ROLE_SERVER)
            snprintf(msg, sizeof(msg), "%s",
                     "the write is durable on this node, but it stopped "
                     "being the server before the replication destination "
                     "confirmed it: not acknowledged");
        else
            snprintf(msg, sizeof(msg),
                     "the write is durable on the server, but the "
                     "replication destination did not confirm it within %u "
                     "ms (it is unreachable or behind): not acknowledged",
                     (unsigned)d->cfg.standby_timeout_ms);
        ev.type = PDS_EVENT_ACK_TIMEOUT;
        ev.u.ack_timeout.index = index;
        ev.u.ack_timeout.errmsg = msg;
    } else {
        ev.type = PDS_EVENT_PERSISTED;
        ev.u.persisted.index = index;
    }
    if (pds__daemon_step(d, &ev) != 0)
        pds_log(PDS_LOG_ERROR, "core refused an acknowledgement");
}

/* Carry out what the acknowledgement rule (core/ack.h) says. */
static void ack_apply(struct daemon *d, const struct pds_ack_out *out)
{
    if (out->recovered)
        pds_commlog(PDS_LOG_INFO,
                    "the replication destination is back: writes are "
                    "acknowledged after its fsync again");
    if (out->degraded)
        pds_commlog(PDS_LOG_WARNING,
                    "the replication destination did not confirm within "
                    "%u ms: acknowledging after the server's fsync alone "
                    "until it is back",
                    (unsigned)d->cfg.standby_timeout_ms);
    if (out->timeout != 0 && out->timeout > pds_core_last_index(d->core) &&
        pds_core_role(d->core) == PDS_ROLE_SERVER)
        pds_commlog(PDS_LOG_ERROR,
                    "the replication destination did not confirm writes "
                    "up to %llu within %u ms: their writers got a timeout "
                    "error",
                    (unsigned long long)out->timeout,
                    (unsigned)d->cfg.standby_timeout_ms);
    if (out->timeout != 0)
        settle_committed(d, out->timeout, 1);
    if (out->answer != 0)
        settle_committed(d, out->answer, 0);
}

void pds__daemon_standby_ack(struct daemon *d, pds_index index)
{
    struct pds_ack_out out;

    pds_ack_confirmed(&d->ack, index, &out);
    ack_apply(d, &out);
}

void pds__daemon_standby_set(struct daemon *d, int has_standby)
{
    struct pds_ack_out out;

    d->has_standby = has_standby;
    if (pds_follow_set_standby(&d->follow, has_standby ? d->standby_pk : NULL))
        pds_ack_standby_gone(&d->ack); /* the one before is no more */
    pds_ack_set_standby(&d->ack, has_standby, &out);
    ack_apply(d, &out);
}

void pds__daemon_standby_gone(struct daemon *d)
{
    pds_ack_standby_gone(&d->ack);
}

void pds__daemon_server_stopped(struct daemon *d, int waited)
{
    struct pds_ack_out out;

    /* Taken in while the server waited for the standby, not committed
     * yet: answered as the commit's writes are, not acknowledged. */
    if (waited && d->batch.n > 0)
        d->unconfirmed_until = d->batch.e[d->batch.n - 1].index;
    pds_ack_server_stopped(&d->ack, &out);
    ack_apply(d, &out);
}

/* Every 100 ms: writes waiting too long for the standby time out, or the
 * server degrades; a client's timed-out outbox writes go again. */
static void on_ack_timer(uv_timer_t *t)
{
    struct daemon *d = t->data;
    struct pds_ack_out out;

    d->hooks.tick(d);
    if (d->epoch_owed && pds_core_role(d->core) == PDS_ROLE_SERVER)
        pds__daemon_retry_epoch(d);
    pds_ack_tick(&d->ack, pds_core_last_index(d->core), uv_now(&d->loop), &out);
    ack_apply(d, &out);
}

/* ---- Request handlers ------------------------------------------------- */

/*
 * A waiter for a request the core answers later: holds a reference on
 * conn. NULL (the requester already answered) when memory runs out.
 */
struct waiter *pds__daemon_waiter(struct pds_local_conn *conn,
                                  const struct pds_request *req)
{
    struct waiter *w = malloc(sizeof(*w));

    if (w == NULL) {
        pds__daemon_reply_error(conn, req->id, PDS_ENOMEM, "out of memory");
        return NULL;
    }
    w->conn = conn;
    w->id = req->id;
    w->op = req->op;
    w->remote_conn = 0;
    w->answer = NULL;
    pds_local_conn_ref(conn);
    return w;
}

/* ---- Sharing scopes ---------------------------------------------------- */

static int add_device_item(void *arg, const char *item, size_t len)
{
    struct daemon *d = arg;
    char **p;

    p = realloc(d->device_items, (d->n_device_items + 1) * sizeof(*p));
    if (p == NULL)
        return PDS_ENOMEM;
    d->device_items = p;
    p[d->n_device_items] = strndup(item, len);
    if (p[d->n_device_items] == NULL)
        return PDS_ENOMEM;
    d->n_device_items++;
    return 0;
}

void pds__scope_reload(struct daemon *d)
{
    size_t i;

    for (i = 0; i < d->n_device_items; i++)
        free(d->device_items[i]);
    free(d->device_items);
    d->device_items = NULL;
    d->n_device_items = 0;
    if (pds_store_scopes(d->store, add_device_item, d) != 0)
        pds_log(PDS_LOG_ERROR, "sharing scopes: %s",
                pds_store_errmsg(d->store));
}

void pds__scope_after_commit(struct daemon *d,
                             const struct pds_entry *entries,
                             size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (entries[i].op == PDS_OP_SCOPE) {
            pds__scope_reload(d);
            return;
        }
    }
}

int pds__scope_is_device(const struct daemon *d, const char *item, size_t len)
{
    size_t i;

    for (i = 0; i < d->n_device_items; i++) {
        if (strlen(d->device_items[i]) == len &&
            memcmp(d->device_items[i], item, len) == 0)
            return 1;
    }
    return 0;
}

void pds__daemon_host_init(struct daemon *d)
{
    uv_timer_init(&d->loop, &d->ack_timer);
    d->ack_timer.data = d;
    uv_timer_start(&d->ack_timer, on_ack_timer, 100, 100);
    uv_check_init(&d->loop, &d->commit_check);
    d->commit_check.data = d;
    uv_check_start(&d->commit_check, commit_batch);
    uv_idle_init(&d->loop, &d->commit_idle);
}

void pds__daemon_commit_now(struct daemon *d)
{
    commit_batch(&d->commit_check);
}

/* ---- The core's reload ------------------------------------------------ */

int pds__daemon_load_owner(void *core, const struct pds_owner_info *o)
{
    return pds_core_load_owner(core, o);
}

int pds__daemon_load_member(void *core, const struct pds_member *m)
{
    return pds_core_load_member(core, m);
}

/*
 * A snapshot replaced the data under the core: build a new core from the
 * store (owners, members, role) and swap it in. A client's core holds no
 * pending writes, so nothing waits on the old one.
 */
int pds__daemon_core_reload(struct daemon *d)
{
    struct pds_store_meta meta;
    struct pds_core_config ccfg = d->core_cfg;
    struct pds_core *core;
    int rv;

    if (pds_core_n_pending(d->core) > 0)
        return PDS_EBUSY;
    rv = pds_store_meta(d->store, &meta);
    if (rv != 0)
        return rv;
    ccfg.epoch = meta.epoch;
    ccfg.last_index = meta.last_index;
    ccfg.last_hlc = meta.last_hlc;
    ccfg.role = pds_core_role(d->core);
    rv = pds_core_new(&ccfg, &core);
    if (rv != 0)
        return rv;
    rv = pds_store_owners(d->store, pds__daemon_load_owner, core);
    if (rv == 0)
        rv = pds_store_members(d->store, pds__daemon_load_member, core);
    if (rv != 0) {
        pds_core_free(core);
        return rv;
    }
    pds_core_free(d->core);
    d->core = core;
    d->committed = meta.last_index;
    return 0;
}

/* ---- Epochs ----------------------------------------------------------- */

/*
 * A server begins a new epoch each time it starts writing (pdsyncd's start
 * as the server, 'server start'): entries it made before and lost in a
 * crash can then never be mistaken, by the index and epoch a follower
 * presents, for the ones it makes now. The store's part runs where the
 * caller's storage job does; the core takes the epoch on the loop.
 */
void pds__daemon_epoch_begin(struct pds_store *store, struct epoch_result *r)
{
    r->rv = pds_store_new_epoch(store, &r->epoch);
    if (r->rv != 0)
        snprintf(r->errmsg, sizeof(r->errmsg), "%s",
                 pds_store_commit_errmsg(store));
}

int pds__daemon_epoch_begun(struct daemon *d, const struct epoch_result *r)
{
    if (r->rv != 0) {
        if (!d->epoch_owed)
            pds_commlog(PDS_LOG_ERROR,
                        "cannot begin a new epoch (tried again every 100 "
                        "ms): %s",
                        r->errmsg);
        d->epoch_owed = 1;
        return -1;
    }
    d->epoch_owed = 0;
    pds_core_set_epoch(d->core, r->epoch);
    if (d->net != NULL)
        pds_net_set_epoch(d->net, r->epoch);
    pds_commlog(PDS_LOG_INFO, "epoch %llu begins at index %llu",
                (unsigned long long)r->epoch,
                (unsigned long long)pds_core_last_index(d->core) + 1);
    return 0;
}

struct epoch_job {
    struct pds_diskq_job job;
    struct daemon *d;
    struct epoch_result r;
};

static void epoch_work(struct pds_diskq_job *job)
{
    struct epoch_job *j = PDS_DISKQ_OWNER(job, struct epoch_job, job);

    pds__daemon_epoch_begin(j->d->store, &j->r);
}

static void epoch_done(struct pds_diskq_job *job)
{
    struct epoch_job *j = PDS_DISKQ_OWNER(job, struct epoch_job, job);
    struct daemon *d = j->d;

    d->is_epoch_pending = 0;
    if (pds_core_role(d->core) == PDS_ROLE_SERVER)
        pds__daemon_epoch_begun(d, &j->r);
    else
        d->epoch_owed = 0; /* the next start as the server begins one */
    free(j);
}

void pds__daemon_retry_epoch(struct daemon *d)
{
    struct epoch_job *j;

    if (d->is_epoch_pending || (j = calloc(1, sizeof(*j))) == NULL)
        return; /* under way, or tried again at the next tick */
    j->d = d;
    d->is_epoch_pending = 1;
    pds__diskq_push(&d->diskq, &j->job, epoch_work, epoch_done);
}

struct pds_conn *pds__daemon_conn(struct daemon *d, uint64_t id)
{
    return d->net != NULL && id != 0 ? pds_net_find(d->net, id) : NULL;
}
