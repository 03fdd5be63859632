/*
 * replicate.c - the server's log reaches its clients, and clients write
 * through the server.
 *
 * Server: a member that sends SYNC with its position becomes a follower
 * when that position is on the server's history and still retained; the
 * server then ships the log from there as stored (many entries per
 * message, without waiting for each ACK, at most MAX_INFLIGHT entries
 * unacknowledged), and ships every later commit as it happens.
 *
 * Client: entries from the server are stored, applied and the position
 * moved in one transaction (pds_store_commit, on the storage queue), then
 * ACKed; in a catch-up, one transaction takes the messages that wait on
 * the link, or that came while the last commit ran.
 * A local write is sent to the server and answered when the server has
 * committed it and this client has applied it (so a read after the answer
 * sees it).
 *
 * A follower that cannot continue from the log (behind the retention, on
 * a diverged branch, holding data of its own at a first join) gets a
 * snapshot: a copy read in one transaction by a pool thread into an
 * unlinked file, sent in chunks, then the log from the copy's position.
 *
 * While the server is unreachable, a client's writes wait in a durable
 * outbox (served locally, replayed in order on reconnect); the server
 * decides each by last-writer-wins on the version it was made with.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commlog.h"
#include "daemon.h"

#define MAX_FOLLOWERS 256
#define MAX_INFLIGHT                                                           \
    100000 /* entries shipped and not yet ACKed, and about                     \
              catchup_memory bytes (the configuration) */
#define SHIP_BYTES (3 * 1024 * 1024) /* per ENTRIES message */
/* Sealed for a follower and not yet taken by the socket, at most. */
#define QUEUED_BYTES (2 * SHIP_BYTES)
#define SNAP_BYTES (1024 * 1024) /* per SNAPSHOT chunk */
#define SNAP_INFLIGHT 4          /* chunks sent, not confirmed stored */
#define MAX_FORWARDED 4096
#define OUTBOX_RID ((uint64_t)1 << 63) /* rid of a replayed outbox write */
#define COMMIT_RING 4096               /* recent commits, for lag figures */

/* The host's side of a follower (the core's is in d->follow): whether
 * its link was full, and the file of the copy its refresh sends. */
struct follower_io {
    uint64_t conn;
    int is_paused; /* more to ship once the link drains */
    int snap_fd;   /* -1 until the copy is made */
    uint64_t snap_size, snap_off;
};

/* A commit on the server: its last index, when, the log bytes so far. */
struct commit_mark {
    pds_index last;
    pds_time at;
    uint64_t bytes;
};

/* A client's write waiting for the server's answer and for its entry. */
struct forwarded {
    uint64_t rid;
    struct pds_local_conn *conn;
    uint64_t id;
    enum pds_req_op op;
    int is_acked;
    struct pds_write_result res; /* the answer once the server gave it */
};

/*
 * The outbox: writes made while the server was unreachable, durable in the
 * store and mirrored here in order. Reads on this node see them on top of
 * the group's data. On reconnect they are sent in order with the version
 * they were made with; each leaves when the server has answered it (and,
 * when it was applied, once its entry reached this node).
 */
struct queued {
    uint64_t seq;
    struct pds_entry e; /* strings and value point into buf */
    uint8_t *buf;
    struct pds_outbox_state st; /* its replay (core/outbox.h): loop ms */
    int is_removing;            /* its removal from the store is under way */
};

/*
 * The server's entries held in memory until they are committed together
 * (see pds__repl_on_entries): the messages' buffers, taken from them, and
 * the entries decoded from them, and the memos of the restamped ones.
 */
struct held_batch {
    uint8_t **blobs;
    size_t n_blobs, cap_blobs;
    struct pds_entry *e;
    size_t n, cap;
    struct pds_clamp *clamps;
    size_t n_clamps, cap_clamps;
    uint64_t bytes;
};

/* A snapshot chunk received, waiting for the store (oldest first). */
struct snap_chunk {
    struct snap_chunk *next;
    uint64_t rid;
    int is_last;
    pds_epoch epoch;
    pds_index index;
    uint8_t *blob;
    size_t len;
};

/* The "history" blob's removal on the storage queue. */
struct history_job {
    struct pds_diskq_job job;
    struct daemon *d;
    int is_busy;
    int rv;
    char errmsg[PDS_ERRMSG_SIZE];
};

/*
 * The follower's storage job, one at a time, in the order the server
 * sent: a commit of held entries (then their ACK), or one snapshot chunk
 * (then its SNAP_ACK; the last one swaps the copy in, then the ACK). The
 * next waits in memory (held, chunks) until it is done.
 */
struct follower_job {
    struct pds_diskq_job job;
    struct daemon *d;
    int is_busy;
    uint64_t conn; /* the link it came on */
    pds_time now;
    int rv;
    char errmsg[PDS_ERRMSG_SIZE];
    /* A commit: its entries (the context's committing batch, left alone
     * while the job runs), and the "history" blob set once the data is the
     * group's. */
    const struct held_batch *batch;
    int set_history;
    int history_rv;
    uint8_t group[PDS_GROUP_ID_BYTES];
    /* A snapshot chunk. */
    struct snap_chunk *chunk;
    uint64_t gen;
    enum pds_snap_keep keep;
    uint64_t n_uploaded;
};

/*
 * The replication state of the daemon (d->repl), on the loop thread; the
 * storage jobs' work reaches only their own job and the store.
 */
struct pds_repl {
    /* The store's data came from this group's log only (the "history"
     * blob): -1 unknown, 0 no, 1 yes. */
    int follows_group;
    struct history_job history_job;

    /* Server: the I/O side of the followers of d->follow. */
    struct follower_io io[MAX_FOLLOWERS];
    size_t n_io;
    /* Server: the last commits, for the followers' lag in bytes and
     * time. */
    struct commit_mark commits[COMMIT_RING];
    size_t n_commits_seen; /* commits recorded since start */
    uint64_t log_bytes;    /* log bytes committed since start */

    /* Client: the local writes sent to the server. */
    struct forwarded forwarded[MAX_FORWARDED];
    size_t n_forwarded;
    uint64_t next_rid;

    /* Client: the outbox, in order. */
    struct queued *outbox;
    size_t n_outbox, cap_outbox;
    uint64_t outbox_bytes;
    size_t n_outbox_sent; /* sent and not answered */
    int outbox_loaded;
    uint64_t n_rejected, n_lost;
    char outbox_error[PDS_ERRMSG_SIZE + 96];
    int outbox_error_is_transient; /* cleared once a write is taken */
    /* Outbox writes on the storage queue (counted against the limits),
     * and the removal of the answered ones (one at a time). */
    size_t n_outbox_adding;
    uint64_t outbox_adding_bytes;
    int outbox_removing;

    /* Client: held takes the server's entries as they arrive; committing
     * is what the follower's job stores. */
    struct held_batch held, committing;
    pds_index held_window_end; /* the last message's window_end */
    /* Snapshot being received: chunks still to come (up to the last
     * one). */
    int snap_receiving;
    uint64_t snap_next_chunk;
    /* Its last chunk came: entries from its position on may follow. */
    int snap_pending;
    pds_index snap_pending_index;
    /* Bumped when a snapshot begins or is abandoned: the chunk a job
     * stores belongs to the current one only if its generation is this. */
    uint64_t snap_gen;
    struct snap_chunk *chunks, *chunks_tail;
    struct follower_job fjob;
};

static void history_work(struct pds_diskq_job *job)
{
    struct history_job *hj = PDS_DISKQ_OWNER(job, struct history_job, job);

    hj->rv = pds_store_blob_put(hj->d->store, "history", NULL, 0);
    if (hj->rv != 0)
        snprintf(hj->errmsg, sizeof(hj->errmsg), "%s",
                 pds_store_commit_errmsg(hj->d->store));
}

static void history_done(struct pds_diskq_job *job)
{
    struct history_job *hj = PDS_DISKQ_OWNER(job, struct history_job, job);

    hj->is_busy = 0;
    if (hj->rv == 0)
        hj->d->repl->follows_group = 0;
    else /* tried again before the next such write */
        pds_log(PDS_LOG_ERROR, "%s", hj->errmsg);
}

/*
 * A write made on this node outside the client role (standalone, server):
 * its data is no longer the group's log alone, so a later SYNC must not
 * claim it is. Called before every such write; costs a transaction once,
 * queued before the write's commit.
 */
void pds__repl_local_write(struct daemon *d)
{
    struct pds_repl *r = d->repl;

    if (r->follows_group == 0 || r->history_job.is_busy)
        return;
    r->history_job.d = d;
    r->history_job.is_busy = 1;
    pds__diskq_push(&d->diskq, &r->history_job.job, history_work, history_done);
}

/*
 * The server cannot serve the follower on c (its own fault: a log it
 * cannot read, a snapshot it cannot make): it tells the follower why
 * (NOTICE, shown in the follower's status and log), then closes the link
 * once that is sent. The follower connects again later and is served
 * from where it is.
 */
static void drop_follower(struct daemon *d, struct pds_conn *c, const char *why)
{
    struct pds_msg m;

    /* Out of the followers now: nothing more is shipped to it, and an
     * acknowledgement still on its way counts for nothing. */
    pds__repl_conn_closed(d, pds_conn_id(c));
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_NOTICE;
    snprintf(m.err, sizeof(m.err), "%s", why);
    if (pds_conn_send(c, &m) != 0) {
        pds_conn_close(c, why);
        return;
    }
    pds_conn_finish(c, why);
}

static struct follower_io *io_find(struct pds_repl *r, uint64_t conn)
{
    size_t i;

    for (i = 0; i < r->n_io; i++) {
        if (r->io[i].conn == conn)
            return &r->io[i];
    }
    return NULL;
}

/* The end of a refresh, sent or abandoned: its file goes. */
static void snap_end(struct follower_io *io)
{
    if (io->snap_fd >= 0)
        close(io->snap_fd);
    io->snap_fd = -1;
    io->snap_size = io->snap_off = 0;
}

/* The I/O side of the follower on conn, started over (the core's table
 * holds a follower for it, so there is room). */
static struct follower_io *io_reset(struct pds_repl *r, uint64_t conn)
{
    struct follower_io *io = io_find(r, conn);

    if (io == NULL) {
        if (r->n_io == MAX_FOLLOWERS)
            return NULL; /* not reached: as many as the core follows */
        io = &r->io[r->n_io++];
    } else
        snap_end(io);
    memset(io, 0, sizeof(*io));
    io->conn = conn;
    io->snap_fd = -1;
    return io;
}

void pds__repl_conn_closed(struct daemon *d, uint64_t conn)
{
    struct pds_repl *r = d->repl;
    struct follower_io *io = io_find(r, conn);

    /* Known again from its next SYNC. */
    if (pds_follow_drop(&d->follow, conn))
        pds__daemon_standby_gone(d);
    if (io != NULL) {
        snap_end(io);
        *io = r->io[--r->n_io];
    }
}

/* Server: note a commit (its entries) for lag figures. */
void pds__repl_note_commit(struct daemon *d,
                           const struct pds_entry *entries,
                           size_t n)
{
    struct pds_repl *r = d->repl;
    struct commit_mark *mk;
    size_t i;

    if (n == 0)
        return;
    for (i = 0; i < n; i++)
        r->log_bytes += pds_entry_size(&entries[i]);
    mk = &r->commits[r->n_commits_seen % COMMIT_RING];
    mk->last = entries[n - 1].index;
    mk->at = pds__wall_ms();
    mk->bytes = r->log_bytes;
    r->n_commits_seen++;
}

/*
 * The lag of a follower durable at acked: bytes and milliseconds of the
 * commits it has not confirmed (at commit granularity, as far back as the
 * ring reaches).
 */
static void
lag_of(struct daemon *d, pds_index acked, uint64_t *bytes, uint64_t *ms)
{
    struct pds_repl *r = d->repl;
    size_t n =
        r->n_commits_seen < COMMIT_RING ? r->n_commits_seen : COMMIT_RING;
    size_t k;
    const struct commit_mark *oldest = NULL, *before = NULL;

    *bytes = 0;
    *ms = 0;
    /* Walk back from the newest commit to the first one past acked. */
    for (k = 0; k < n; k++) {
        const struct commit_mark *mk =
            &r->commits[(r->n_commits_seen - 1 - k) % COMMIT_RING];
        if (mk->last <= acked) {
            before = mk;
            break;
        }
        oldest = mk;
    }
    if (before == NULL && acked < d->committed) {
        /* The ring does not reach back to it (this server restarted since,
         * or it is far behind): from the log itself. */
        pds_time first_ms;
        if (pds_store_log_span(d->store, acked + 1, bytes, &first_ms) == 0 &&
            first_ms != 0)
            *ms = pds__wall_ms() > first_ms ? pds__wall_ms() - first_ms : 0;
        return;
    }
    if (oldest == NULL)
        return;
    *bytes = r->log_bytes - (before != NULL ? before->bytes : 0);
    *ms = pds__wall_ms() > oldest->at ? pds__wall_ms() - oldest->at : 0;
}

static void start_copy(struct daemon *d, struct pds_conn *c, uint64_t job);
static void settle_forwarded(struct daemon *d);
static void update_hold(struct daemon *d);

/* Put the memos of restamped entries on an ENTRIES message (m->clamps,
 * to be freed by the caller); -1 without memory. */
static int
attach_clamps(struct pds_msg *m, const struct pds_clamp *cl, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    m->clamps = malloc(n * PDS_CLAMP_BYTES);
    if (m->clamps == NULL)
        return -1;
    for (i = 0; i < n; i++)
        pds_clamp_encode(&cl[i], m->clamps + i * PDS_CLAMP_BYTES);
    m->clamps_len = n * PDS_CLAMP_BYTES;
    return 0;
}

/* A refresh of the follower on c that the core began (out); why goes to
 * the log. */
static void refresh_begun(struct daemon *d,
                          struct pds_conn *c,
                          const struct pds_follow_out *out)
{
    pds_commlog(PDS_LOG_INFO, "client at %s gets a snapshot: %s",
                pds_conn_address(c), out->why);
    if (io_reset(d->repl, pds_conn_id(c)) == NULL) {
        drop_follower(d, c, "the server follows too many connections");
        return;
    }
    /* Its copy will be stamped at the core's hold or later: kept from now,
     * not from the next loop turn (a commit may start before it). */
    update_hold(d);
    start_copy(d, c, out->snap_job);
}

/*
 * Send what the follower on conn misses, as far as the core's window
 * allows. At most QUEUED_BYTES wait sealed for the socket: the rest goes
 * as the link drains (pds__repl_flush, every loop turn), so that a big
 * catch-up neither holds the loop nor fills the memory with sealed frames.
 */
static int ship(struct daemon *d, uint64_t conn, pds_index last)
{
    struct pds_conn *c = pds_net_find(d->net, conn);
    struct pds_follow_peer *p = pds_follow_find(&d->follow, conn);
    struct follower_io *io = io_find(d->repl, conn);
    pds_index window_end;

    if (io != NULL)
        io->is_paused = 0;
    if (c == NULL || p == NULL || io == NULL)
        return 0;
    while (pds_follow_want(&d->follow, p, last, &window_end) > 0) {
        struct pds_follow_out out;
        struct pds_msg m;
        struct pds_clamp *cl = NULL;
        uint8_t *buf;
        size_t len, n, n_cl = 0;
        int rv;
        if (pds_conn_queued(c) >= QUEUED_BYTES) {
            io->is_paused = 1;
            return 0;
        }
        rv = pds_store_log_range(d->store, p->log.next, SHIP_BYTES, &buf, &len,
                                 &n);
        if (rv == PDS_ENOTFOUND) {
            /* Trimmed before it was sent (a slow follower): a refresh. */
            if (pds_follow_refresh(&d->follow, conn,
                                   "fell behind the log retention",
                                   d->committed, &out) == 0)
                refresh_begun(d, c, &out);
            return 0;
        }
        if (rv == 0 && n > 0) {
            /* The memos of restamped entries go with them. */
            rv = pds_store_clamps_range(d->store, p->log.next,
                                        p->log.next + n - 1, &cl, &n_cl);
            if (rv != 0)
                free(buf);
            else
                pds_repl_fit(buf, &len, &n, p->log.next, cl, &n_cl, SHIP_BYTES);
        }
        if (rv != 0 || n == 0) {
            /* Nothing more would go: the follower would wait for what the
             * window promised. It reconnects and syncs instead. */
            char why[PDS_ERRMSG_SIZE + 64];
            snprintf(why, sizeof(why), "cannot read the log at %llu: %s",
                     (unsigned long long)p->log.next,
                     rv != 0 ? pds_store_errmsg(d->store) : "empty read");
            pds_commlog(PDS_LOG_ERROR, "%s", why);
            drop_follower(d, c, why);
            return rv != 0 ? rv : PDS_EIO;
        }
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_ENTRIES;
        m.index = p->log.next;
        m.last_index = last;
        m.window_end = pds_follow_window_end(&d->follow, p, last, n);
        m.blob = buf;
        m.blob_len = len;
        rv = attach_clamps(&m, cl, n_cl) != 0 ? PDS_ENOMEM
                                              : pds_conn_send(c, &m);
        free(buf);
        free(cl);
        free(m.clamps);
        if (rv != 0) {
            pds_conn_close(c, "cannot send the log");
            return rv;
        }
        pds_follow_sent(p, n, len);
    }
    return 0;
}

/*
 * A refresh: the copy's chunks, as many in flight as the core allows (the
 * follower confirms each one it stored), then the log from the position
 * the copy is stamped with.
 */
static void snap_pump(struct daemon *d, uint64_t conn)
{
    struct pds_conn *c = pds_net_find(d->net, conn);
    struct pds_follow_peer *p = pds_follow_find(&d->follow, conn);
    struct follower_io *io = io_find(d->repl, conn);

    while (c != NULL && p != NULL && io != NULL && io->snap_fd >= 0 &&
           pds_follow_snap_may_send(&d->follow, p)) {
        struct pds_msg m;
        char errmsg[PDS_ERRMSG_SIZE];
        uint8_t *buf;
        size_t len;
        int rv = pds_store_snap_read(io->snap_fd, io->snap_off, io->snap_size,
                                     SNAP_BYTES, &buf, &len, errmsg);
        if (rv != 0) {
            char why[PDS_ERRMSG_SIZE + 64];
            pds_commlog(PDS_LOG_ERROR, "snapshot for %s: %s",
                        pds_conn_address(c), errmsg);
            snap_end(io);
            snprintf(why, sizeof(why),
                     "the server cannot read its snapshot: %s", errmsg);
            drop_follower(d, c, why);
            return;
        }
        io->snap_off += len;
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_SNAPSHOT;
        m.index = p->snap_index;
        m.epoch = p->snap_epoch;
        m.rid = p->snap_chunk;
        m.is_last = io->snap_off >= io->snap_size;
        m.blob = buf != NULL ? buf : (uint8_t *)"";
        m.blob_len = len;
        pds_follow_snap_sent(p, m.is_last);
        rv = pds_conn_send(c, &m);
        free(buf);
        if (rv != 0)
            return;
        if (m.is_last) {
            /* The log from the stamped position follows at once. */
            pds_log(PDS_LOG_INFO,
                    "snapshot of %llu chunks sent to %s at %llu/%llu",
                    (unsigned long long)p->snap_chunk, pds_conn_address(c),
                    (unsigned long long)p->snap_epoch,
                    (unsigned long long)p->snap_index);
            snap_end(io);
            ship(d, conn, d->committed); /* may drop it: not used after */
            return;
        }
    }
}

/* A copy being written by a pool thread for the follower on conn. */
struct snap_job {
    uv_work_t req;
    struct daemon *d;
    uint64_t conn;
    uint64_t id;
    int fd;
    int rv;
    pds_epoch epoch;
    pds_index index;
    uint64_t bytes;
    char errmsg[PDS_ERRMSG_SIZE];
};

static void snap_work(uv_work_t *req)
{
    struct snap_job *j = req->data;

    j->rv = pds_store_snap_write(j->d->store, j->fd, &j->epoch, &j->index,
                                 &j->bytes, j->errmsg);
}

static void snap_done(uv_work_t *req, int status)
{
    struct snap_job *j = req->data;
    struct daemon *d = j->d;
    struct follower_io *io = io_find(d->repl, j->conn);
    struct pds_conn *c = d->net != NULL ? pds_net_find(d->net, j->conn) : NULL;

    if (status != 0 && j->rv == 0) {
        j->rv = PDS_ECANCELED;
        snprintf(j->errmsg, sizeof(j->errmsg), "snapshot: canceled");
    }
    if (c == NULL || io == NULL ||
        pds_follow_snap_made(&d->follow, j->conn, j->id, j->rv, j->epoch,
                             j->index) != 0) {
        close(j->fd); /* the follower is gone or started over */
        free(j);
        return;
    }
    if (j->rv != 0) {
        char why[PDS_ERRMSG_SIZE + 64];
        pds_commlog(PDS_LOG_ERROR, "snapshot for %s: %s", pds_conn_address(c),
                    j->errmsg);
        close(j->fd);
        snprintf(why, sizeof(why), "the server could not make a snapshot: %s",
                 j->errmsg);
        drop_follower(d, c, why);
        free(j);
        return;
    }
    snap_end(io);
    io->snap_fd = j->fd;
    io->snap_size = j->bytes;
    io->snap_off = 0;
    free(j);
    update_hold(d);
    snap_pump(d, io->conn);
}

/*
 * Server, before its own commit of these entries: send them to the standby
 * now, so that its fsync and ours overlap. Returns whether they were sent.
 */
int pds__repl_ship_early(struct daemon *d, const struct pds_batch *b)
{
    const struct pds_entry *entries = b->e;
    size_t n = b->n;
    struct pds_follow_peer *p;
    struct pds_conn *c;
    struct pds_msg m;
    uint8_t *buf, *q;
    size_t i, len = 0;
    int rv;

    if (n == 0 || d->net == NULL ||
        (p = pds_follow_early(&d->follow, entries[0].index, n)) == NULL ||
        (c = pds_net_find(d->net, p->conn)) == NULL)
        return 0;
    for (i = 0; i < n; i++)
        len += 4 + pds_entry_size(&entries[i]);
    if (len + b->n_clamps * PDS_CLAMP_BYTES > SHIP_BYTES ||
        (buf = malloc(len)) == NULL)
        return 0;
    for (i = 0, q = buf; i < n; i++) {
        size_t el = pds_entry_size(&entries[i]);
        pds_put_u32be(q, (uint32_t)el);
        pds_entry_encode(&entries[i], q + 4);
        q += 4 + el;
    }
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_ENTRIES;
    m.index = entries[0].index;
    m.last_index = entries[n - 1].index;
    m.window_end = entries[n - 1].index; /* committed at once */
    m.blob = buf;
    m.blob_len = len;
    rv = attach_clamps(&m, b->clamps, b->n_clamps) != 0 ? PDS_ENOMEM
                                                        : pds_conn_send(c, &m);
    free(buf);
    free(m.clamps);
    if (rv != 0 || pds_conn_flush(c) != 0)
        return 0;
    pds_follow_sent(p, n, len);
    return 1;
}

/*
 * The commit of entries from index first failed after they were sent to
 * the standby: it now holds entries the server does not. Its connection
 * ends; when it comes back, its position tells the server to refresh it.
 */
void pds__repl_unship(struct daemon *d, pds_index first)
{
    uint64_t conns[MAX_FOLLOWERS];
    size_t i, n;

    if (d->net == NULL)
        return;
    n = pds_follow_unship(&d->follow, first, conns, MAX_FOLLOWERS);
    for (i = 0; i < n && i < MAX_FOLLOWERS; i++) {
        struct pds_conn *c = pds_net_find(d->net, conns[i]);
        if (c != NULL)
            drop_follower(d, c,
                          "the server could not commit entries it had "
                          "sent: resynchronizing");
        else
            pds__repl_conn_closed(d, conns[i]);
    }
}

void pds__group_after_commit(struct daemon *d)
{
    pds_index last = d->committed;
    size_t i;

    if (d->net == NULL)
        return;                     /* stopping */
    for (i = d->follow.n; i-- > 0;) /* ship() may drop peers[i] */
        ship(d, d->follow.peers[i].conn, last);
}

/* Tell the follower on c whether it is the replication destination
 * (it shows itself as standby or client, and stores that). */
static void tell_role(struct daemon *d, struct pds_conn *c)
{
    struct pds_msg m;
    int rv;

    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_ROLE;
    m.is_standby = d->has_standby && memcmp(pds_conn_peer_pk(c), d->standby_pk,
                                            PDS_KEY_BYTES) == 0;
    rv = pds_conn_send(c, &m);
    if (rv != 0)
        pds_commlog(PDS_LOG_ERROR, "cannot tell %s its role: %s",
                    pds_conn_address(c), pds_strerror(rv));
}

void pds__repl_tell_roles(struct daemon *d)
{
    size_t i;

    for (i = 0; i < d->follow.n; i++) {
        struct pds_conn *c = pds_net_find(d->net, d->follow.peers[i].conn);
        if (c != NULL)
            tell_role(d, c);
    }
}

/* Make the copy job for the refresh of the follower on c. */
static void start_copy(struct daemon *d, struct pds_conn *c, uint64_t job)
{
    struct snap_job *j;
    char path[PATH_MAX];

    j = calloc(1, sizeof(*j));
    snprintf(path, sizeof(path), "%s/snapshot.XXXXXX", d->data_dir);
    if (j == NULL || (j->fd = mkstemp(path)) < 0) {
        char msg[PDS_ERRMSG_SIZE];
        snprintf(msg, sizeof(msg),
                 "the server could not make a snapshot: cannot make %s: %s",
                 path, j == NULL ? "out of memory" : strerror(errno));
        pds_commlog(PDS_LOG_ERROR, "snapshot for %s: %s", pds_conn_address(c),
                    msg);
        free(j);
        drop_follower(d, c, msg);
        return;
    }
    unlink(path); /* the file lives as long as the descriptor */
    j->d = d;
    j->conn = pds_conn_id(c);
    j->id = job;
    j->req.data = j;
    if (uv_queue_work(&d->loop, &j->req, snap_work, snap_done) != 0) {
        snap_work(&j->req); /* no thread to be had: here */
        snap_done(&j->req, 0);
    }
}

/* Server: a member gives its position. */
void pds__repl_on_sync(struct daemon *d,
                       struct pds_conn *c,
                       const struct pds_msg *m)
{
    struct pds_store_meta meta;
    struct pds_log_view view;
    struct pds_sync sync;
    struct pds_follow_out out;
    uint8_t *buf = NULL;
    size_t len;

    if (pds_core_role(d->core) != PDS_ROLE_SERVER ||
        pds_store_meta(d->store, &meta) != 0)
        return;
    tell_role(d, c);
    memset(&sync, 0, sizeof(sync));
    sync.epoch = m->epoch;
    sync.index = m->index;
    sync.last.hlc = m->hlc;
    sync.last.node = m->node;
    sync.is_fresh = m->is_fresh;
    memset(&view, 0, sizeof(view));
    view.first_index = meta.first_index;
    view.last_index = meta.last_index;
    if (m->index > 0 && m->index <= meta.last_index &&
        pds_store_log_get(d->store, m->index, &buf, &len) == 0) {
        struct pds_entry e;
        if (pds_entry_decode(buf, len, &e) == 0) {
            view.has_entry = 1;
            view.entry_epoch = e.epoch;
            view.entry_version = e.version;
        } else {
            /* Unreadable here: take it as another history. */
            view.has_entry = 1;
            view.entry_epoch = m->epoch + 1;
        }
        free(buf);
    }
    if (!view.has_entry && m->index > 0 &&
        pds_store_epoch_of(d->store, m->index, &view.index_epoch) != 0)
        view.index_epoch = m->epoch + 1; /* unreadable: another history */
    if (pds_follow_sync(&d->follow, pds_conn_id(c), pds_conn_peer_pk(c), &sync,
                        &view, d->committed, &out) != 0) {
        /* Said on both sides; the follower tries again later. */
        pds_commlog(PDS_LOG_WARNING,
                    "client at %s not served: the server follows %d "
                    "connections already",
                    pds_conn_address(c), MAX_FOLLOWERS);
        pds_conn_close(c, "the server follows too many connections: "
                          "try again later");
        return;
    }
    if (out.verdict == PDS_SYNC_REFRESH) {
        if (m->index > meta.last_index)
            pds_commlog(PDS_LOG_WARNING,
                        "client at %s presented position %llu/%llu, one this "
                        "server never had (it is at %llu/%llu)",
                        pds_conn_address(c), (unsigned long long)m->epoch,
                        (unsigned long long)m->index,
                        (unsigned long long)meta.last_epoch,
                        (unsigned long long)meta.last_index);
        refresh_begun(d, c, &out);
        return;
    }
    if (io_reset(d->repl, pds_conn_id(c)) == NULL) {
        drop_follower(d, c, "the server follows too many connections");
        return;
    }
    if (out.has_confirmed)
        pds__daemon_standby_ack(d, out.confirmed);
    ship(d, pds_conn_id(c), d->committed);
}

void pds__repl_on_snap_ack(struct daemon *d,
                           struct pds_conn *c,
                           const struct pds_msg *m)
{
    if (pds_follow_snap_ack(&d->follow, pds_conn_id(c), m->rid))
        snap_pump(d, pds_conn_id(c));
}

void pds__repl_on_ack(struct daemon *d,
                      struct pds_conn *c,
                      const struct pds_msg *m)
{
    struct pds_follow_out out;

    if (pds_follow_ack(&d->follow, pds_conn_id(c), m->index, &out) != 0) {
        pds_conn_close(c, "protocol error: acknowledgement out of range");
        return;
    }
    if (out.has_confirmed)
        pds__daemon_standby_ack(d, out.confirmed);
    ship(d, pds_conn_id(c), d->committed);
}

static void
write_ack(struct daemon *d, const struct waiter *w, const struct pds_reply *r);

/* Server: a client's write answered with an error before the core saw it
 * (w is freed). */
static void
refuse_write(struct daemon *d, struct waiter *w, int status, const char *err)
{
    struct pds_reply r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    snprintf(r.errmsg, sizeof(r.errmsg), "%s", err);
    write_ack(d, w, &r);
    free(w);
}

/* Server: a client's write, stepped like a local one. */
void pds__repl_on_write(struct daemon *d,
                        struct pds_conn *c,
                        const struct pds_msg *m)
{
    struct pds_event ev;
    struct waiter *w = malloc(sizeof(*w));
    struct pds_record rec;
    uint8_t *value = NULL;
    int rv;

    if (w == NULL) {
        /* Answered at once, from a waiter of our own. */
        struct waiter none;
        struct pds_reply r;
        memset(&none, 0, sizeof(none));
        none.id = m->rid;
        none.remote_conn = pds_conn_id(c);
        memset(&r, 0, sizeof(r));
        r.status = PDS_ENOMEM;
        snprintf(r.errmsg, sizeof(r.errmsg),
                 "the server ran out of memory: the write was not stored");
        write_ack(d, &none, &r);
        return;
    }
    memset(w, 0, sizeof(*w));
    w->id = m->rid;
    w->remote_conn = pds_conn_id(c);
    w->answer = write_ack;
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_WRITE;
    ev.now = pds__wall_ms();
    ev.u.write.req = (uint64_t)(uintptr_t)w;
    ev.u.write.op = (enum pds_op)m->op;
    ev.u.write.key.scope = (enum pds_scope)m->scope;
    ev.u.write.key.owner = m->owner;
    ev.u.write.key.owner_len = strlen(m->owner);
    ev.u.write.key.item = m->item;
    ev.u.write.key.item_len = strlen(m->item);
    ev.u.write.value = m->blob;
    ev.u.write.value_len =
        m->blob_len > UINT32_MAX ? UINT32_MAX : (uint32_t)m->blob_len;
    ev.u.write.is_queued = m->is_queued;
    if (m->hlc != 0) {
        struct pds_clamp memo;
        ev.u.write.has_origin = 1;
        ev.u.write.origin.hlc = m->hlc;
        ev.u.write.origin.node = m->node;
        /* Came before with a clock too far ahead, and restamped? */
        rv = pds_store_clamp_get(d->store, &ev.u.write.origin, &memo);
        if (rv == 0) {
            ev.u.write.has_clamp = 1;
            ev.u.write.clamp_version = memo.version;
            ev.u.write.clamp_epoch = memo.epoch;
            ev.u.write.clamp_index = memo.index;
        } else if (rv != PDS_ENOTFOUND) {
            /* Not knowing, it must not be stamped again: refused. */
            char msg[PDS_ERRMSG_SIZE];
            snprintf(msg, sizeof(msg),
                     "reading the memo of restamped writes: %s",
                     pds_strerror(rv));
            refuse_write(d, w, rv, msg);
            return;
        }
    }
    if (m->op == PDS_OP_DEL_OWNER && ev.u.write.has_origin &&
        pds_store_owner_newer(d->store, ev.u.write.key.scope,
                              ev.u.write.key.owner, ev.u.write.key.owner_len,
                              &ev.u.write.origin,
                              &ev.u.write.owner_newer) != 0) {
        refuse_write(d, w, PDS_EIO, pds_store_errmsg(d->store));
        return;
    }
    /* A first join's upload of the node's own owners is not decided
     * against the group's deletes: those owners go up (issue: first join).
     * A delete-user is decided against the last one too (core: on_write). */
    if (ev.u.write.has_origin && (m->op == PDS_OP_DEL_OWNER || !m->is_upload)) {
        rv = pds_store_owner_gone(
            d->store, ev.u.write.key.scope, ev.u.write.key.owner,
            ev.u.write.key.owner_len, &ev.u.write.gone, &ev.u.write.gone_index);
        if (rv == 0) {
            ev.u.write.has_gone = 1;
            if (pds_store_epoch_of(d->store, ev.u.write.gone_index,
                                   &ev.u.write.gone_epoch) != 0)
                ev.u.write.gone_epoch = 0;
        } else if (rv != PDS_ENOTFOUND) {
            refuse_write(d, w, rv, pds_store_errmsg(d->store));
            return;
        }
    }
    if (m->op != PDS_OP_DEL_OWNER && m->item[0] != '\0' &&
        pds_store_get(d->store, &ev.u.write.key, &rec, &value) == 0) {
        ev.u.write.exists = !rec.is_tombstone;
        ev.u.write.has_current = 1;
        ev.u.write.current = rec.version;
        ev.u.write.current_index = rec.index;
        if (pds_store_epoch_of(d->store, rec.index,
                               &ev.u.write.current_epoch) != 0)
            ev.u.write.current_epoch = 0;
    }
    /* A version the standby has not confirmed does not decide a loser. */
    ev.u.write.trusted =
        pds__daemon_waits_for_standby(d) ? d->ack.standby_acked : (pds_index)-1;
    free(value);
    rv = pds__daemon_step(d, &ev);
    if (rv != 0)
        refuse_write(d, w, rv, pds_strerror(rv));
}

static void
write_ack(struct daemon *d, const struct waiter *w, const struct pds_reply *r)
{
    struct pds_conn *c = pds__daemon_conn(d, w->remote_conn);
    struct pds_msg m;

    if (r->status == 0 && r->outcome == PDS_OUTCOME_CLAMPED)
        pds_commlog(PDS_LOG_WARNING,
                    "a write from client %s carried a clock more than "
                    "max_clock_skew_s = %u s ahead of the server's: it was "
                    "stamped with the server's clock (check the client's "
                    "time)",
                    c != NULL ? pds_conn_address(c) : "(gone)",
                    (unsigned)d->cfg.max_skew_s);
    if (c == NULL)
        return; /* the client will learn the outcome from the log */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_WRITE_ACK;
    m.rid = w->id;
    m.code = r->status;
    m.outcome = r->outcome;
    snprintf(m.err, sizeof(m.err), "%s", r->status != 0 ? r->errmsg : "");
    m.epoch = r->epoch;
    m.index = r->index;
    pds_conn_send(c, &m);
}

/* ---- Client side -------------------------------------------------------- */

static void follower_next(struct daemon *d);
static void held_drop(struct pds_repl *r);
static void chunks_drop(struct pds_repl *r);

/* Room in the outbox for `more` entries after those it holds: 0, or
 * PDS_ENOMEM with the outbox as it was. */
static int outbox_reserve(struct pds_repl *r, size_t more)
{
    size_t cap = r->cap_outbox == 0 ? 64 : r->cap_outbox;
    struct queued *p;

    while (cap < r->n_outbox + more)
        cap *= 2;
    if (cap == r->cap_outbox)
        return 0;
    p = realloc(r->outbox, cap * sizeof(*p));
    if (p == NULL)
        return PDS_ENOMEM;
    r->outbox = p;
    r->cap_outbox = cap;
    return 0;
}

/* Add e to the outbox. buf: memory for its bytes made beforehand (taken,
 * also on failure), or NULL to allocate it here. */
static int queued_add(struct pds_repl *r,
                      uint64_t seq,
                      const struct pds_entry *e,
                      uint8_t *buf)
{
    struct queued *q;
    size_t n = e->key.owner_len + e->key.item_len + e->value_len;

    if (outbox_reserve(r, 1) != 0) {
        free(buf);
        return PDS_ENOMEM;
    }
    q = &r->outbox[r->n_outbox];
    memset(q, 0, sizeof(*q));
    q->buf = buf != NULL ? buf : malloc(n + 1);
    if (q->buf == NULL)
        return PDS_ENOMEM;
    memcpy(q->buf, e->key.owner, e->key.owner_len);
    if (e->key.item_len > 0)
        memcpy(q->buf + e->key.owner_len, e->key.item, e->key.item_len);
    if (e->value_len > 0)
        memcpy(q->buf + e->key.owner_len + e->key.item_len, e->value,
               e->value_len);
    q->seq = seq;
    q->e = *e;
    q->e.key.owner = (const char *)q->buf;
    q->e.key.item = (const char *)q->buf + e->key.owner_len;
    q->e.value = q->buf + e->key.owner_len + e->key.item_len;
    r->outbox_bytes += n;
    r->n_outbox++;
    return 0;
}

/* The outbox entries read from the store into r, those after *after
 * only (all when after is NULL). */
struct load_arg {
    struct pds_repl *r;
    const uint64_t *after;
};

static int load_one(void *arg, uint64_t seq, const struct pds_entry *e)
{
    const struct load_arg *la = arg;

    if (la->after != NULL && seq <= *la->after)
        return 0; /* held already, with what was sent and answered */
    return queued_add(la->r, seq, e, NULL);
}

static void outbox_clear(struct pds_repl *r)
{
    size_t i;

    for (i = 0; i < r->n_outbox; i++)
        free(r->outbox[i].buf);
    r->n_outbox = 0;
    r->outbox_bytes = 0;
    r->n_outbox_sent = 0;
}

static void outbox_load(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    struct load_arg la = {r, NULL};
    int rv;

    outbox_clear(r);
    rv = pds_store_outbox_list(d->store, load_one, &la);
    if (rv != 0)
        pds_log(PDS_LOG_ERROR, "cannot read the outbox: %s",
                pds_store_errmsg(d->store));
    r->outbox_loaded = 1;
}

/* The entries added to the store since (a snapshot's uploads), after the
 * ones held, which keep their state: sent, answered. */
static void outbox_load_new(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    uint64_t after = r->n_outbox > 0 ? r->outbox[r->n_outbox - 1].seq : 0;
    struct load_arg la = {r, &after};
    int rv;

    if (!r->outbox_loaded) {
        outbox_load(d);
        return;
    }
    rv = pds_store_outbox_list(d->store, load_one, &la);
    if (rv != 0)
        pds_log(PDS_LOG_ERROR, "cannot read the outbox: %s",
                pds_store_errmsg(d->store));
}

static void ensure_loaded(struct daemon *d)
{
    struct pds_repl *r = d->repl;

    if (!r->outbox_loaded)
        outbox_load(d);
}

/* The removal of answered outbox entries on the storage queue. */
struct outbox_rm_job {
    struct pds_diskq_job job;
    struct daemon *d;
    int rv;
    char errmsg[PDS_ERRMSG_SIZE];
    size_t n;
    uint64_t seqs[];
};

static void outbox_rm_work(struct pds_diskq_job *job)
{
    struct outbox_rm_job *j = PDS_DISKQ_OWNER(job, struct outbox_rm_job, job);

    j->rv = pds_store_outbox_remove(j->d->store, j->seqs, j->n);
    if (j->rv != 0)
        snprintf(j->errmsg, sizeof(j->errmsg), "%s",
                 pds_store_commit_errmsg(j->d->store));
}

static void outbox_rm_done(struct pds_diskq_job *job)
{
    struct outbox_rm_job *j = PDS_DISKQ_OWNER(job, struct outbox_rm_job, job);
    struct pds_repl *r = j->d->repl;
    size_t i, k;

    r->outbox_removing = 0;
    if (j->rv != 0) {
        /* Kept: replayed later, the server answers "duplicate". */
        pds_log(PDS_LOG_ERROR, "outbox: %s", j->errmsg);
        for (i = 0; i < r->n_outbox; i++)
            r->outbox[i].is_removing = 0; /* tried again at the next flush */
        free(j);
        return;
    }
    free(j);
    for (i = 0, k = 0; i < r->n_outbox; i++) {
        if (r->outbox[i].is_removing) {
            r->outbox_bytes -= r->outbox[i].e.key.owner_len +
                               r->outbox[i].e.key.item_len +
                               r->outbox[i].e.value_len;
            free(r->outbox[i].buf);
            continue;
        }
        r->outbox[k++] = r->outbox[i];
    }
    r->n_outbox = k;
}

/* The outbox entries answered for good leave the store, then memory (reads
 * no longer see them meanwhile: the store's data is the server's answer). */
static void outbox_flush_done(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    struct outbox_rm_job *j;
    size_t i, n = 0;

    if (r->outbox_removing)
        return; /* after the removal under way */
    for (i = 0; i < r->n_outbox; i++)
        n += r->outbox[i].st.is_done;
    if (n == 0)
        return;
    j = malloc(sizeof(*j) + n * sizeof(j->seqs[0]));
    if (j == NULL)
        return; /* next turn */
    j->d = d;
    j->rv = 0;
    j->n = 0;
    for (i = 0; i < r->n_outbox; i++) {
        if (r->outbox[i].st.is_done) {
            r->outbox[i].is_removing = 1;
            j->seqs[j->n++] = r->outbox[i].seq;
        }
    }
    r->outbox_removing = 1;
    pds__diskq_push(&d->diskq, &j->job, outbox_rm_work, outbox_rm_done);
}

/* The log that the snapshots in flight need is held against retention. */
static void update_hold(struct daemon *d)
{
    if (d->store != NULL)
        pds_store_hold_log(d->store, pds_follow_hold(&d->follow));
}

/*
 * Every loop turn: the server ships on to followers paused on a full link
 * and holds the log its refreshes need; a client removes the answered
 * writes from the store and from memory.
 */
void pds__repl_flush(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    size_t i;

    for (i = r->n_io; i-- > 0;) { /* ship() may drop io[i] */
        if (r->io[i].is_paused)
            ship(d, r->io[i].conn, d->committed);
    }
    /* Before the turn's commit. */
    update_hold(d);
    outbox_flush_done(d);
}

/* Send the queued writes not yet sent, in order, within the window. */
static void outbox_pump(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    struct pds_conn *c =
        d->is_linked ? pds__daemon_conn(d, d->link_conn) : NULL;
    uint64_t now = uv_now(&d->loop);
    size_t i;

    if (c == NULL || r->snap_receiving || r->snap_pending)
        return;
    for (i = 0; i < r->n_outbox && r->n_outbox_sent < PDS_OUTBOX_WINDOW; i++) {
        struct queued *q = &r->outbox[i];
        struct pds_msg m;
        enum pds_outbox_due due = pds_outbox_due(&q->st, now);
        if (due == PDS_OUTBOX_SKIP)
            continue;
        if (due == PDS_OUTBOX_WAIT)
            break;
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_WRITE;
        m.rid = OUTBOX_RID | q->seq;
        m.op = (int)q->e.op;
        m.scope = (int)q->e.key.scope;
        memcpy(m.owner, q->e.key.owner, q->e.key.owner_len);
        memcpy(m.item, q->e.key.item, q->e.key.item_len);
        m.blob = (uint8_t *)(uintptr_t)q->e.value;
        m.blob_len = q->e.value_len;
        m.hlc = q->e.version.hlc;
        m.node = q->e.version.node;
        m.is_upload = q->e.epoch == PDS_OUTBOX_UPLOAD;
        m.is_queued = 1;
        if (pds_conn_send(c, &m) != 0)
            return;
        pds_outbox_sent(&q->st);
        r->n_outbox_sent++;
    }
}

static struct queued *queued_find(struct pds_repl *r, uint64_t seq)
{
    size_t lo = 0, hi = r->n_outbox;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->outbox[mid].seq == seq)
            return &r->outbox[mid];
        if (r->outbox[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The command that made a queued write, for the log and status. */
static const char *op_word(enum pds_op op)
{
    return op == PDS_OP_DEL_OWNER ? "delete-user"
           : op == PDS_OP_DEL     ? "del"
                                  : "put";
}

static void outbox_answer(struct daemon *d, const struct pds_msg *m)
{
    struct pds_repl *r = d->repl;
    struct queued *q = queued_find(r, m->rid & ~OUTBOX_RID);
    enum pds_outbox_verdict verdict;
    int was_sent;

    if (q == NULL)
        return;
    verdict = pds_outbox_answer(
        &q->st, m->code, m->outcome == PDS_WRITE_SUPERSEDED, m->index,
        q->e.op == PDS_OP_DEL_OWNER, pds_core_last_index(d->core),
        uv_now(&d->loop), &was_sent);
    if (was_sent && r->n_outbox_sent > 0)
        r->n_outbox_sent--;
    switch (verdict) {
    case PDS_OUTBOX_IGNORED:
        return;
    case PDS_OUTBOX_RETRY_SOON:
        /* Committed on the server and not confirmed by its standby in
         * time, or lost to a version the standby has not confirmed: sent
         * again a little later (pds__repl_tick), and then decided. */
        break;
    case PDS_OUTBOX_HOLDS:
        pds_commlog(PDS_LOG_INFO,
                    "a delete-user %.*s queued while offline: the server "
                    "holds no such owner any more",
                    (int)q->e.key.owner_len, q->e.key.owner);
        break;
    case PDS_OUTBOX_RETRY_LATER:
        snprintf(r->outbox_error, sizeof(r->outbox_error),
                 "%s %.*s/%.*s not taken by the server for now (kept, sent "
                 "again in %d s): %s",
                 op_word(q->e.op), (int)q->e.key.owner_len, q->e.key.owner,
                 (int)q->e.key.item_len, q->e.key.item,
                 PDS_OUTBOX_TRANSIENT_MS / 1000, m->err);
        pds_commlog(PDS_LOG_WARNING, "a write queued while offline was %s",
                    r->outbox_error);
        r->outbox_error_is_transient = 1;
        break;
    case PDS_OUTBOX_REFUSED:
        r->n_rejected++;
        snprintf(r->outbox_error, sizeof(r->outbox_error),
                 "%s %.*s/%.*s refused by the server: %s", op_word(q->e.op),
                 (int)q->e.key.owner_len, q->e.key.owner,
                 (int)q->e.key.item_len, q->e.key.item, m->err);
        pds_commlog(PDS_LOG_ERROR, "a write queued while offline was %s",
                    r->outbox_error);
        r->outbox_error_is_transient = 0;
        break;
    case PDS_OUTBOX_LOST:
        r->n_lost++;
        if (q->e.op == PDS_OP_DEL_OWNER)
            pds_commlog(PDS_LOG_WARNING,
                        "a delete-user %.*s queued while offline lost to a "
                        "later change of that user on the server",
                        (int)q->e.key.owner_len, q->e.key.owner);
        else
            pds_commlog(PDS_LOG_WARNING,
                        "a write queued while offline (%.*s/%.*s) lost to a "
                        "newer version on the server",
                        (int)q->e.key.owner_len, q->e.key.owner,
                        (int)q->e.key.item_len, q->e.key.item);
        break;
    case PDS_OUTBOX_TAKEN:
        if (r->outbox_error_is_transient) {
            r->outbox_error[0] = '\0'; /* the server takes writes again */
            r->outbox_error_is_transient = 0;
        }
        break;
    }
    outbox_pump(d);
}

void pds__repl_tick(struct daemon *d)
{
    struct pds_repl *r = d->repl;

    if (r->n_outbox > r->n_outbox_sent)
        outbox_pump(d); /* the writes whose retry time came */
}

/* The entries up to the applied index are here: their writes can go. */
static void outbox_settle(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    pds_index applied = pds_core_last_index(d->core);
    size_t i;

    for (i = 0; i < r->n_outbox; i++) {
        pds_outbox_settle(&r->outbox[i].st, applied);
    }
}

/* The queued writes the server has not answered yet, and their bytes. */
static size_t outbox_live(struct pds_repl *r, uint64_t *bytes)
{
    size_t i, n = 0;

    *bytes = 0;
    for (i = 0; i < r->n_outbox; i++) {
        if (r->outbox[i].st.is_done)
            continue;
        n++;
        *bytes += r->outbox[i].e.key.owner_len + r->outbox[i].e.key.item_len +
                  r->outbox[i].e.value_len;
    }
    return n;
}

/* A write into the outbox, on the storage queue (its strings in buf). */
struct outbox_add_job {
    struct pds_diskq_job job;
    struct daemon *d;
    struct pds_local_conn *conn; /* a reference, until answered */
    uint64_t id;
    struct pds_entry e;
    uint64_t seq;
    int rv;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *qbuf; /* the outbox's copy, made before the write is stored */
    uint8_t buf[];
};

static void outbox_add_work(struct pds_diskq_job *job)
{
    struct outbox_add_job *j = PDS_DISKQ_OWNER(job, struct outbox_add_job, job);

    j->rv = pds_store_outbox_add(j->d->store, &j->e, &j->seq);
    if (j->rv != 0)
        snprintf(j->errmsg, sizeof(j->errmsg), "%s",
                 pds_store_commit_errmsg(j->d->store));
}

/* Durable in the outbox: in memory (reads see it), answered, sent when the
 * server is reachable. */
static void outbox_add_done(struct pds_diskq_job *job)
{
    struct outbox_add_job *j = PDS_DISKQ_OWNER(job, struct outbox_add_job, job);
    struct pds_repl *r = j->d->repl;
    struct pds_write_result res;
    struct pds_reply_buf *rb;
    int rv = j->rv;

    r->n_outbox_adding--;
    r->outbox_adding_bytes -= j->e.value_len;
    if (rv == 0) {
        /* Room was made before the write was stored: cannot fail. */
        rv = queued_add(r, j->seq, &j->e, j->qbuf);
        j->qbuf = NULL;
        if (rv != 0) {
            /* Stored all the same: it goes at the next start. */
            pds_commlog(PDS_LOG_ERROR,
                        "out of memory: outbox entry %llu is stored but "
                        "waits for the next start of pdsyncd to be sent",
                        (unsigned long long)j->seq);
            rv = 0;
        }
    }
    free(j->qbuf);
    if (rv != 0) {
        pds__daemon_send(
            j->conn,
            pds_reply_new(j->id, rv,
                          rv == PDS_ENOMEM ? "out of memory" : j->errmsg));
    } else {
        memset(&res, 0, sizeof(res));
        res.version = j->e.version;
        res.queued = j->seq;
        rb = pds_reply_new(j->id, 0, NULL);
        if (rb != NULL)
            pds_reply_write(rb, &res);
        pds__daemon_send(j->conn, rb);
        outbox_pump(j->d);
    }
    pds_local_conn_unref(j->conn);
    free(j);
}

/* Client: accept a write into the outbox while the server is away; it is
 * answered once durable. */
static void queue_write(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req)
{
    struct pds_repl *r = d->repl;
    char errmsg[PDS_ERRMSG_SIZE];
    struct outbox_add_job *j;
    struct pds_entry e;
    uint64_t live_bytes;
    size_t n_live;
    int rv;

    ensure_loaded(d);
    memset(&e, 0, sizeof(e));
    e.op = req->op == PDS_REQ_PUT   ? PDS_OP_PUT
           : req->op == PDS_REQ_DEL ? PDS_OP_DEL
                                    : PDS_OP_DEL_OWNER;
    e.key.scope = req->scope;
    e.key.owner = req->owner;
    e.key.owner_len = req->owner_len;
    e.key.item = e.op == PDS_OP_DEL_OWNER ? "" : req->item;
    e.key.item_len = e.op == PDS_OP_DEL_OWNER ? 0 : req->item_len;
    e.value = req->value != NULL ? req->value : (const uint8_t *)"";
    e.value_len = e.op == PDS_OP_PUT ? (uint32_t)req->value_len : 0;
    rv = e.op == PDS_OP_DEL_OWNER
             ? pds_owner_validate(&d->cfg.limits, e.key.owner, e.key.owner_len,
                                  errmsg)
             : pds_key_validate(&d->cfg.limits, &e.key, errmsg);
    if (rv == 0 && e.op == PDS_OP_PUT)
        rv = pds_value_validate(&d->cfg.limits, req->value_len, errmsg);
    if (rv != 0) {
        pds__daemon_send(conn, pds_reply_new(req->id, rv, errmsg));
        return;
    }
    n_live = outbox_live(r, &live_bytes) + r->n_outbox_adding;
    live_bytes += r->outbox_adding_bytes;
    if (n_live >= d->cfg.outbox_max ||
        live_bytes + e.value_len > (uint64_t)d->cfg.outbox_max_bytes) {
        snprintf(errmsg, sizeof(errmsg),
                 "the server is unreachable and the outbox is full (%zu "
                 "writes, %llu bytes; settings outbox_max = %u, "
                 "outbox_max_bytes = %llu): the write was not accepted",
                 n_live, (unsigned long long)live_bytes,
                 (unsigned)d->cfg.outbox_max,
                 (unsigned long long)d->cfg.outbox_max_bytes);
        pds__daemon_send(conn, pds_reply_new(req->id, PDS_ELIMIT, errmsg));
        return;
    }
    j = calloc(1,
               sizeof(*j) + e.key.owner_len + e.key.item_len + e.value_len + 1);
    /* The outbox's room and copy now: once stored, the write must be
     * taken into it. */
    if (j == NULL || outbox_reserve(r, r->n_outbox_adding + 1) != 0 ||
        (j->qbuf = malloc(e.key.owner_len + e.key.item_len + e.value_len +
                          1)) == NULL) {
        free(j);
        pds__daemon_send(conn,
                         pds_reply_new(req->id, PDS_ENOMEM, "out of memory"));
        return;
    }
    memcpy(j->buf, e.key.owner, e.key.owner_len);
    memcpy(j->buf + e.key.owner_len, e.key.item, e.key.item_len);
    if (e.value_len > 0)
        memcpy(j->buf + e.key.owner_len + e.key.item_len, e.value, e.value_len);
    e.key.owner = (const char *)j->buf;
    e.key.item = (const char *)j->buf + e.key.owner_len;
    e.value = j->buf + e.key.owner_len + e.key.item_len;
    e.version = pds_core_stamp(d->core, pds__wall_ms());
    j->e = e;
    j->d = d;
    j->conn = conn;
    pds_local_conn_ref(conn);
    j->id = req->id;
    r->n_outbox_adding++;
    r->outbox_adding_bytes += e.value_len;
    pds__diskq_push(&d->diskq, &j->job, outbox_add_work, outbox_add_done);
}

/* The outbox as reads see it: the queued entries, oldest first. */
size_t pds__repl_outbox(struct daemon *d, const struct pds_entry **e, size_t i)
{
    struct pds_repl *r = d->repl;

    ensure_loaded(d);
    if (i < r->n_outbox)
        *e = r->outbox[i].st.is_done ? NULL : &r->outbox[i].e;
    return r->n_outbox;
}

void pds__repl_client_status(struct daemon *d, struct pds_status *st)
{
    struct pds_repl *r = d->repl;
    uint64_t bytes;

    ensure_loaded(d);
    st->n_outbox = outbox_live(r, &bytes);
    st->n_rejected = r->n_rejected;
    st->n_lost = r->n_lost;
    st->outbox_error = r->outbox_error;
}

void pds__repl_start(struct daemon *d, struct pds_conn *c)
{
    struct pds_repl *r = d->repl;
    struct pds_store_meta meta;
    struct pds_msg m;
    uint8_t history[PDS_GROUP_ID_BYTES];
    size_t len = 0;

    ensure_loaded(d);
    r->snap_receiving = 0;
    held_drop(r); /* a catch-up cut off: the server sends them again */
    if (pds_store_meta(d->store, &meta) != 0)
        return;
    if (pds_store_blob_get(d->store, "history", history, sizeof(history),
                           &len) != 0)
        len = 0;
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_SYNC;
    m.index = meta.last_index;
    m.epoch = meta.last_epoch;
    if (meta.last_index > 0) {
        /* Which entry is at that position, to spot a diverged branch. */
        uint8_t *buf;
        size_t blen;
        struct pds_entry e;
        if (pds_store_log_get(d->store, meta.last_index, &buf, &blen) == 0) {
            if (pds_entry_decode(buf, blen, &e) == 0) {
                m.hlc = e.version.hlc;
                m.node = e.version.node;
            }
            free(buf);
        }
    }
    r->follows_group = len == PDS_GROUP_ID_BYTES &&
                       memcmp(history, d->group, PDS_GROUP_ID_BYTES) == 0;
    m.is_fresh = meta.last_index == 0 || r->follows_group;
    pds_conn_send(c, &m);
    outbox_pump(d);
}

/* Client: a chunk of a refresh from the server (takes m->blob). It waits
 * in memory for its turn on the store (follower_next). */
void pds__repl_on_snapshot(struct daemon *d,
                           struct pds_conn *c,
                           struct pds_msg *m)
{
    struct pds_repl *r = d->repl;
    struct snap_chunk *ck;

    if (m->rid == 0) {
        /* A refresh replaces whatever a catch-up held (the server moved
         * this follower on to a snapshot: it fell behind the retention). */
        held_drop(r);
        chunks_drop(r);
        r->snap_receiving = 1;
        r->snap_pending = 0;
        r->snap_next_chunk = 0;
        r->snap_gen++;
        pds_log(PDS_LOG_INFO, "receiving a snapshot at %llu/%llu",
                (unsigned long long)m->epoch, (unsigned long long)m->index);
    }
    if (!r->snap_receiving || m->rid != r->snap_next_chunk) {
        pds_conn_close(c, "snapshot chunk out of order from the server");
        return;
    }
    ck = calloc(1, sizeof(*ck));
    if (ck == NULL) {
        r->snap_receiving = 0;
        pds_conn_close(c, "out of memory for a snapshot chunk");
        return;
    }
    ck->rid = m->rid;
    ck->is_last = m->is_last;
    ck->epoch = m->epoch;
    ck->index = m->index;
    ck->blob = m->blob;
    ck->len = m->blob_len;
    m->blob = NULL;
    if (r->chunks_tail != NULL)
        r->chunks_tail->next = ck;
    else
        r->chunks = ck;
    r->chunks_tail = ck;
    r->snap_next_chunk++;
    if (ck->is_last) {
        /* The log from its position follows at once. */
        r->snap_receiving = 0;
        r->snap_pending = 1;
        r->snap_pending_index = ck->index;
    }
    follower_next(d);
}

/* The follower's link, if it is still the one the job's data came on. */
static struct pds_conn *job_link(struct daemon *d)
{
    struct pds_repl *r = d->repl;

    if (!d->is_linked || d->link_conn != r->fjob.conn)
        return NULL;
    return pds__daemon_conn(d, r->fjob.conn);
}

/* On a pool thread: one chunk into the staging tables; the first clears
 * them, the last swaps the copy in. */
static void snap_chunk_work(struct pds_diskq_job *job)
{
    struct follower_job *fj = PDS_DISKQ_OWNER(job, struct follower_job, job);
    struct pds_store *store = fj->d->store;
    struct snap_chunk *ck = fj->chunk;
    int rv = 0;

    if (ck->rid == 0)
        rv = pds_store_snap_begin(store);
    if (rv == 0)
        rv = pds_store_snap_put(store, ck->blob, ck->len);
    if (rv == 0 && ck->is_last) {
        rv = pds_store_snap_finish(store, ck->epoch, ck->index, fj->group,
                                   PDS_GROUP_ID_BYTES, fj->keep, fj->now,
                                   &fj->n_uploaded);
        if (rv == 0)
            pds_store_blob_put(store, "join_mode", NULL, 0);
    }
    fj->rv = rv;
    if (rv != 0)
        snprintf(fj->errmsg, sizeof(fj->errmsg), "%s",
                 pds_store_commit_errmsg(store));
}

static void snap_chunk_done(struct daemon *d, struct snap_chunk *ck)
{
    struct pds_repl *r = d->repl;
    struct pds_conn *c = job_link(d);
    int is_current = r->fjob.gen == r->snap_gen;
    struct pds_msg ack;
    char why[PDS_ERRMSG_SIZE + 64];
    int rv;

    if (r->fjob.rv != 0) {
        if (is_current) {
            snprintf(why, sizeof(why), "cannot store the server's snapshot: %s",
                     r->fjob.errmsg);
            snprintf(d->link_error, sizeof(d->link_error), "%s", why);
            pds_commlog(PDS_LOG_ERROR, "%s", why);
            r->snap_receiving = 0;
            r->snap_pending = 0;
            r->snap_gen++;
            chunks_drop(r);
            held_drop(r);
            if (c != NULL) /* reconnects and starts the snapshot again */
                pds_conn_close(c, why);
        }
        return;
    }
    if (!ck->is_last) {
        if (c != NULL && is_current) {
            memset(&ack, 0, sizeof(ack));
            ack.type = PDS_MSG_SNAP_ACK;
            ack.rid = ck->rid;
            pds_conn_send(c, &ack);
        }
        return;
    }
    /* Swapped in: the store holds the copy, whatever became of the link
     * meanwhile, and this node's state follows it. */
    if (is_current)
        r->snap_pending = 0;
    r->follows_group = 1;
    d->server_last = ck->index; /* as far as this node knows now */
    rv = pds__daemon_core_reload(d);
    if (rv != 0) {
        pds_commlog(PDS_LOG_ERROR,
                    "cannot restart the core after a "
                    "snapshot: %s",
                    pds_strerror(rv));
        if (c != NULL)
            pds_conn_close(c, "internal error after a snapshot");
        return;
    }
    pds__scope_reload(d);
    if (c != NULL) {
        d->link_error[0] = '\0';
        /* Durable at the snapshot's position: say so (a standby's
         * waiters). */
        memset(&ack, 0, sizeof(ack));
        ack.type = PDS_MSG_ACK;
        ack.index = ck->index;
        pds_conn_send(c, &ack);
    }
    pds_commlog(PDS_LOG_INFO,
                "took the server's snapshot at %llu/%llu (%llu chunks)%s",
                (unsigned long long)ck->epoch, (unsigned long long)ck->index,
                (unsigned long long)ck->rid + 1,
                r->fjob.n_uploaded > 0 ? "; this node's own records go to the "
                                         "server"
                                       : "");
    if (r->fjob.n_uploaded > 0)
        pds_commlog(PDS_LOG_INFO,
                    "%llu records found only here are queued for the server",
                    (unsigned long long)r->fjob.n_uploaded);
    /* Writes of this node the snapshot already holds are answered now, not
     * when the next entry happens to come. */
    settle_forwarded(d);
    outbox_settle(d);
    outbox_flush_done(d);
    outbox_load_new(d);
    outbox_pump(d);
}

static void reply_forwarded(struct forwarded *f, int status, const char *err)
{
    struct pds_reply_buf *rb;

    if (status != 0) {
        rb = pds_reply_new(f->id, status, err);
    } else {
        rb = pds_reply_new(f->id, 0, NULL);
        if (rb != NULL)
            pds_reply_write(rb, &f->res);
    }
    pds__daemon_send(f->conn, rb);
    pds_local_conn_unref(f->conn);
}

/* Answer the forwarded writes that are now applied here. */
static void settle_forwarded(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    pds_index applied = pds_core_last_index(d->core);
    size_t i = 0;

    while (i < r->n_forwarded) {
        struct forwarded *f = &r->forwarded[i];
        if (f->is_acked && f->res.index <= applied) {
            reply_forwarded(f, 0, NULL);
            r->forwarded[i] = r->forwarded[--r->n_forwarded];
            continue;
        }
        i++;
    }
}

static void batch_drop(struct held_batch *b)
{
    size_t i;

    for (i = 0; i < b->n_blobs; i++)
        free(b->blobs[i]);
    b->n_blobs = 0;
    b->n = 0;
    b->n_clamps = 0;
    b->bytes = 0;
}

/* batch_drop, and the batch's arrays freed too. */
static void batch_free(struct held_batch *b)
{
    batch_drop(b);
    free(b->blobs);
    free(b->e);
    free(b->clamps);
    memset(b, 0, sizeof(*b));
}

/* Forget the entries held for a commit (never acknowledged). */
static void held_drop(struct pds_repl *r)
{
    batch_drop(&r->held);
}

/* Forget the snapshot chunks waiting for the store (never confirmed). */
static void chunks_drop(struct pds_repl *r)
{
    while (r->chunks != NULL) {
        struct snap_chunk *ck = r->chunks;
        r->chunks = ck->next;
        free(ck->blob);
        free(ck);
    }
    r->chunks_tail = NULL;
}

/* Keep a message's entries (taking its blob); 0, or -1 when malformed or
 * no memory. */
static int held_add(struct pds_repl *r, struct pds_msg *m, pds_index want)
{
    uint8_t *copy = m->blob;
    size_t off = 0, first = r->held.n, first_clamp = r->held.n_clamps;
    size_t i;

    if (pds__append((void **)&r->held.blobs, &r->held.n_blobs,
                    &r->held.cap_blobs, &copy, 1, sizeof(copy)) != 0)
        return -1;
    m->blob = NULL; /* freed by held_drop() */
    while (off < m->blob_len) {
        struct pds_entry e;
        size_t len;
        if (m->blob_len - off < 4)
            goto bad;
        len = pds_get_u32be(copy + off);
        off += 4;
        if (len > m->blob_len - off ||
            pds_entry_decode(copy + off, len, &e) != 0 ||
            e.index != want + (r->held.n - first) ||
            pds__append((void **)&r->held.e, &r->held.n, &r->held.cap, &e, 1,
                        sizeof(e)) != 0)
            goto bad;
        off += len;
    }
    if (r->held.n == first)
        goto bad;
    /* The memos of this message's restamped entries, each under one of
     * them: stored with them in the same transaction. */
    for (i = 0; i < m->clamps_len / PDS_CLAMP_BYTES; i++) {
        struct pds_clamp cl;
        pds_clamp_decode(m->clamps + i * PDS_CLAMP_BYTES, &cl);
        if (cl.index < want || cl.index >= want + (r->held.n - first) ||
            pds_version_cmp(&r->held.e[first + (cl.index - want)].version,
                            &cl.version) != 0 ||
            pds__append((void **)&r->held.clamps, &r->held.n_clamps,
                        &r->held.cap_clamps, &cl, 1, sizeof(cl)) != 0)
            goto bad;
    }
    r->held.bytes += m->blob_len;
    return 0;

bad:
    r->held.n = first;
    r->held.n_clamps = first_clamp;
    return -1;
}

/* The last index this follower has or has handed to the store: what the
 * server's next entry must follow (after the entries held). */
static pds_index follower_last(struct daemon *d)
{
    struct pds_repl *r = d->repl;

    if (r->snap_pending)
        return r->snap_pending_index;
    return pds_core_last_index(d->core) + r->committing.n;
}

void pds__repl_on_entries(struct daemon *d,
                          struct pds_conn *c,
                          struct pds_msg *m)
{
    struct pds_repl *r = d->repl;
    pds_index want = follower_last(d) + 1 + r->held.n;

    if (pds_repl_accept(want - 1, m->index) != 0 || r->snap_receiving) {
        pds_conn_close(c, "entries out of order from the server");
        return;
    }
    d->server_last = m->last_index;
    if (held_add(r, m, want) != 0) {
        held_drop(r);
        pds_conn_close(c, "malformed entries from the server");
        return;
    }
    r->held_window_end = m->window_end;
    follower_next(d);
}

/*
 * Append, apply and move the position in one transaction, on the storage
 * queue. In a catch-up, while more of the server's messages are already
 * here, the entries of several are held and committed together: one
 * transaction and one flush for what piled up (at most half the window,
 * or half of catchup_memory in bytes), acknowledged after it; and while a
 * commit runs, what arrives meanwhile waits for the next one. Held entries
 * were never acknowledged; a link lost drops them and the server sends
 * them again. May the held entries wait for the next message?
 */
static int held_may_wait(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    struct pds_conn *c =
        d->is_linked ? pds__daemon_conn(d, d->link_conn) : NULL;

    return c != NULL && r->held.n > 0 &&
           pds_repl_defer_flush(r->held.e[r->held.n - 1].index,
                                r->held_window_end, r->held.n, MAX_INFLIGHT / 2,
                                pds_conn_pending(c) > 0) &&
           r->held.bytes < d->cfg.catchup_memory / 2;
}

/* On a pool thread: the held entries, stored and applied in one durable
 * transaction, and the data marked as the group's the first time. */
static void commit_held_work(struct pds_diskq_job *job)
{
    struct follower_job *fj = PDS_DISKQ_OWNER(job, struct follower_job, job);
    struct pds_store *store = fj->d->store;
    const struct held_batch *b = fj->batch;

    fj->rv = pds_store_commit_clamped(store, b->e, b->n, b->clamps, b->n_clamps,
                                      fj->now);
    if (fj->rv != 0) {
        snprintf(fj->errmsg, sizeof(fj->errmsg), "%s",
                 pds_store_commit_errmsg(store));
        return;
    }
    if (fj->set_history)
        fj->history_rv =
            pds_store_blob_put(store, "history", fj->group, PDS_GROUP_ID_BYTES);
}

/* The commit is durable (or failed): into the core, then the ACK. */
static void commit_held_done(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    struct pds_conn *c = job_link(d);
    struct pds_event ev;
    struct pds_msg ack;
    int rv;

    if (r->fjob.rv != 0) {
        char why[PDS_ERRMSG_SIZE + 32];
        snprintf(why, sizeof(why), "cannot apply the server's entries: %s",
                 r->fjob.errmsg);
        snprintf(d->link_error, sizeof(d->link_error), "%s", why);
        pds_commlog(PDS_LOG_ERROR, "%s", why);
        batch_drop(&r->committing);
        held_drop(r); /* they follow the ones that failed */
        if (c != NULL)
            pds_conn_close(c, why); /* reconnects and resumes from here */
        return;
    }
    d->n_commits++;
    d->n_committed += r->committing.n;
    pds__scope_after_commit(d, r->committing.e, r->committing.n);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_APPLIED;
    ev.now = pds__wall_ms();
    ev.u.applied.entries = r->committing.e;
    ev.u.applied.n_entries = r->committing.n;
    rv = pds__daemon_step(d, &ev);
    batch_drop(&r->committing);
    if (rv != 0) {
        pds_commlog(PDS_LOG_ERROR, "core refused applied entries: %s",
                    pds_strerror(rv));
        held_drop(r);
        if (c != NULL)
            pds_conn_close(c, "internal error applying entries");
        return;
    }
    if (r->fjob.set_history && r->fjob.history_rv == 0)
        r->follows_group = 1;
    if (c != NULL) {
        memset(&ack, 0, sizeof(ack));
        ack.type = PDS_MSG_ACK;
        ack.index = pds_core_last_index(d->core);
        pds_conn_send(c, &ack);
    }
    settle_forwarded(d);
    outbox_settle(d);
}

static void follower_done(struct pds_diskq_job *job)
{
    struct follower_job *fj = PDS_DISKQ_OWNER(job, struct follower_job, job);
    struct daemon *d = fj->d;
    struct snap_chunk *ck = fj->chunk;

    fj->is_busy = 0;
    fj->chunk = NULL;
    if (ck != NULL) {
        snap_chunk_done(d, ck);
        free(ck->blob);
        free(ck);
    } else {
        commit_held_done(d);
    }
    follower_next(d);
}

/*
 * Hand the follower's next piece of work to the storage queue, unless one
 * is under way or the client role is being changed (then it waits: it is
 * not stored for a role that ends): the snapshot chunks first (a refresh
 * drops what was held), then the entries held.
 */
static void follower_next(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    struct snap_chunk *ck = r->chunks;

    if (r->fjob.is_busy || d->is_role_changing || d->is_stopping ||
        (ck == NULL && (r->held.n == 0 || held_may_wait(d))))
        return;
    memset(&r->fjob, 0, sizeof(r->fjob));
    r->fjob.d = d;
    r->fjob.conn = d->link_conn;
    r->fjob.now = pds__wall_ms();
    memcpy(r->fjob.group, d->group, PDS_GROUP_ID_BYTES);
    r->fjob.is_busy = 1;
    if (ck != NULL) {
        r->chunks = ck->next;
        if (r->chunks == NULL)
            r->chunks_tail = NULL;
        ck->next = NULL;
        r->fjob.chunk = ck;
        r->fjob.gen = r->snap_gen;
        if (ck->is_last) {
            /* What a first join keeps of this node's own records. */
            uint8_t mode[8];
            size_t mode_len = 0;
            if (pds_store_blob_get(d->store, "join_mode", mode, sizeof(mode),
                                   &mode_len) != 0)
                mode_len = 0;
            r->fjob.keep = r->follows_group == 1 ? PDS_SNAP_KEEP_NONE
                           : mode_len == 5 && memcmp(mode, "merge", 5) == 0
                               ? PDS_SNAP_KEEP_NEWER
                               : PDS_SNAP_KEEP_NEW_OWNERS;
        }
        pds__diskq_push(&d->diskq, &r->fjob.job, snap_chunk_work,
                        follower_done);
        return;
    }
    /* The held entries become the commit's; held starts empty. */
    {
        struct held_batch spare = r->committing;
        r->committing = r->held;
        r->held = spare;
        batch_drop(&r->held);
    }
    r->fjob.batch = &r->committing;
    r->fjob.set_history = r->follows_group != 1;
    pds__diskq_push(&d->diskq, &r->fjob.job, commit_held_work, follower_done);
}

void pds__repl_resume(struct daemon *d)
{
    follower_next(d);
}

void pds__repl_on_write_ack(struct daemon *d, const struct pds_msg *m)
{
    struct pds_repl *r = d->repl;
    size_t i;

    if (m->rid & OUTBOX_RID) {
        outbox_answer(d, m);
        return;
    }
    for (i = 0; i < r->n_forwarded; i++) {
        struct forwarded *f = &r->forwarded[i];
        if (f->rid != m->rid || f->is_acked)
            continue;
        if (m->code != 0) {
            reply_forwarded(f, m->code, m->err);
            r->forwarded[i] = r->forwarded[--r->n_forwarded];
            return;
        }
        f->res.outcome = m->outcome;
        if (m->outcome == PDS_WRITE_SUPERSEDED ||
            m->outcome == PDS_WRITE_DUPLICATE) {
            /* Nothing new to wait for in the log. */
            reply_forwarded(f, 0, NULL);
            r->forwarded[i] = r->forwarded[--r->n_forwarded];
            return;
        }
        f->is_acked = 1;
        f->res.epoch = m->epoch;
        f->res.index = m->index;
        settle_forwarded(d);
        return;
    }
}

void pds__repl_on_notice(struct daemon *d, const struct pds_msg *m)
{
    d->notice_conn = d->link_conn;
    snprintf(d->link_error, sizeof(d->link_error), "not synchronized: %s",
             m->err);
    pds_commlog(PDS_LOG_WARNING, "server %s: not synchronized: %s", d->server,
                m->err);
}

/* The link to the server is gone: writes in flight have no answer. */
void pds__repl_link_lost(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    size_t i;

    for (i = 0; i < r->n_forwarded; i++)
        reply_forwarded(&r->forwarded[i], PDS_ECONN,
                        r->forwarded[i].is_acked
                            ? "the connection to the server was lost after "
                              "the server committed the write; it will "
                              "arrive here when the link is back"
                            : "the connection to the server was lost: the "
                              "write may or may not have been committed");
    r->n_forwarded = 0;
    /* Unanswered queued writes go again; the server spots duplicates. */
    for (i = 0; i < r->n_outbox; i++) {
        pds_outbox_link_lost(&r->outbox[i].st);
    }
    r->n_outbox_sent = 0;
    r->snap_receiving = 0;
    r->snap_pending = 0;
    r->snap_gen++;
    chunks_drop(r);
    held_drop(r);
}

void pds__group_forward(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req)
{
    struct pds_repl *r = d->repl;
    struct pds_conn *c =
        d->is_linked ? pds_net_find(d->net, d->link_conn) : NULL;
    struct pds_version v;
    struct pds_msg m;
    struct forwarded *f;

    if (c == NULL) {
        queue_write(d, conn, req);
        return;
    }
    if (req->owner_len > PDS_OWNER_MAX ||
        (req->item != NULL && req->item_len > PDS_ITEM_MAX)) {
        pds__daemon_send(conn, pds_reply_new(req->id, PDS_EINVAL,
                                             "names too long (nothing was "
                                             "written)"));
        return;
    }
    if (r->n_forwarded == MAX_FORWARDED) {
        pds__daemon_send(conn, pds_reply_new(req->id, PDS_EBUSY,
                                             "too many writes in flight to the "
                                             "server: try again (nothing was "
                                             "written)"));
        return;
    }
    v = pds_core_stamp(d->core, pds__wall_ms());
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_WRITE;
    m.rid = r->next_rid++;
    m.op = req->op == PDS_REQ_PUT   ? PDS_OP_PUT
           : req->op == PDS_REQ_DEL ? PDS_OP_DEL
                                    : PDS_OP_DEL_OWNER;
    m.scope = (int)req->scope;
    memcpy(m.owner, req->owner, req->owner_len);
    if (req->item != NULL && req->op != PDS_REQ_DELETE_USER)
        memcpy(m.item, req->item, req->item_len);
    m.blob = (uint8_t *)(uintptr_t)(req->value != NULL ? req->value
                                                       : (const uint8_t *)"");
    m.blob_len = req->value != NULL ? req->value_len : 0;
    m.hlc = v.hlc;
    m.node = v.node;
    if (pds_conn_send(c, &m) != 0) {
        pds__daemon_send(
            conn, pds_reply_new(req->id, PDS_ECONN, "cannot reach the server"));
        return;
    }
    f = &r->forwarded[r->n_forwarded++];
    memset(f, 0, sizeof(*f));
    f->rid = m.rid;
    f->conn = conn;
    f->id = req->id;
    f->op = req->op;
    f->res.version = v;
    pds_local_conn_ref(conn);
}

int pds__repl_durable_of(struct daemon *d,
                         const uint8_t *pk,
                         pds_index *position)
{
    return pds_follow_durable_of(&d->follow, pk, position);
}

int pds__repl_durable(struct daemon *d, uint64_t conn, uint64_t *position)
{
    const struct pds_follow_peer *p = pds_follow_find(&d->follow, conn);

    if (p == NULL || !p->has_durable)
        return 0;
    *position = p->durable;
    return 1;
}

int pds__repl_follower(struct daemon *d,
                       const uint8_t *pk,
                       struct pds_member *out)
{
    size_t i;

    for (i = 0; i < d->follow.n; i++) {
        const struct pds_follow_peer *p = &d->follow.peers[i];
        if (memcmp(p->pk, pk, PDS_KEY_BYTES) != 0)
            continue;
        out->is_following = 1;
        out->position = p->log.acked;
        out->sent = p->log.next > 0 ? p->log.next - 1 : 0;
        lag_of(d, p->log.acked, &out->lag_bytes, &out->lag_ms);
        if (p->phase != PDS_FOLLOW_LOG)
            snprintf(out->sync, sizeof(out->sync),
                     "refreshing: snapshot chunk %llu (%s)",
                     (unsigned long long)p->snap_chunk, p->why);
        else
            snprintf(out->sync, sizeof(out->sync), "following");
        return 1;
    }
    return 0;
}

/* ---- Start and stop ---------------------------------------------------- */

int pds__repl_new(struct daemon *d, char *errmsg)
{
    struct pds_repl *r = calloc(1, sizeof(*r));
    struct pds_follow_config fcfg;

    if (r == NULL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "out of memory for the replication state (%zu bytes)",
                 sizeof(*r));
        return PDS_ENOMEM;
    }
    r->follows_group = -1;
    r->next_rid = 1;
    fcfg.max_peers = MAX_FOLLOWERS;
    fcfg.max_inflight = MAX_INFLIGHT;
    fcfg.inflight_bytes = d->cfg.catchup_memory;
    fcfg.snap_inflight = SNAP_INFLIGHT;
    fcfg.max_per_message = 0; /* by bytes: SHIP_BYTES */
    if (pds_follow_init(&d->follow, &fcfg) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "out of memory for the table of followers");
        free(r);
        return PDS_ENOMEM;
    }
    /* A replication destination set before: its connections are marked
     * as they come. */
    pds_follow_set_standby(&d->follow, d->has_standby ? d->standby_pk : NULL);
    d->repl = r;
    return 0;
}

void pds__repl_free(struct daemon *d)
{
    struct pds_repl *r = d->repl;
    size_t i;

    if (r == NULL)
        return;
    d->repl = NULL;
    /* The loop has ended: the links are closed and every job is done, so
     * what is left is memory, the descriptors of refreshes, and the
     * connection references of writes that can no longer be answered. */
    for (i = 0; i < r->n_io; i++)
        snap_end(&r->io[i]);
    for (i = 0; i < r->n_forwarded; i++)
        pds_local_conn_unref(r->forwarded[i].conn);
    for (i = 0; i < r->n_outbox; i++)
        free(r->outbox[i].buf);
    free(r->outbox);
    pds_follow_close(&d->follow);
    batch_free(&r->held);
    batch_free(&r->committing);
    chunks_drop(r);
    if (r->fjob.chunk != NULL) {
        free(r->fjob.chunk->blob);
        free(r->fjob.chunk);
    }
    free(r);
}
