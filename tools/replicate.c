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
 * moved in one transaction per message (pds_store_commit), then ACKed.
 * A local write is sent to the server and answered when the server has
 * committed it and this client has applied it (so a read after the answer
 * sees it).
 *
 * Not yet here (next steps of the replication issue): snapshots for a
 * follower behind retention or with data of its own, the offline outbox,
 * the standby and its ack modes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commlog.h"
#include "daemon.h"

#define MAX_FOLLOWERS 256
#define MAX_INFLIGHT 20000       /* entries shipped and not yet ACKed */
#define SHIP_BYTES (1024 * 1024) /* per ENTRIES message */
#define MAX_FORWARDED 4096

struct follower {
    uint64_t conn;
    uint8_t pk[PDS_KEY_BYTES];
    pds_index next;  /* next index to send */
    pds_index acked; /* durable on the follower */
};

/* A client's write waiting for the server's answer and for its entry. */
struct forwarded {
    uint64_t rid;
    struct pds_local_conn *conn;
    uint64_t id;
    enum pds_req_op op;
    int is_acked;
    pds_epoch epoch;
    pds_index index;
};

/* pdsyncd is one process with one daemon: this state is the daemon's. */
static struct follower followers[MAX_FOLLOWERS];
static size_t n_followers;
static struct forwarded forwarded[MAX_FORWARDED];
static size_t n_forwarded;
static uint64_t next_rid = 1;
/* The store's data came from this group's log only (the "history" blob):
 * -1 unknown, 0 no, 1 yes. */
static int follows_group = -1;

/*
 * A write made on this node outside the client role (standalone, server):
 * its data is no longer the group's log alone, so a later SYNC must not
 * claim it is. Called before every such write; costs a transaction once.
 */
void pds__repl_local_write(struct daemon *d)
{
    if (follows_group == 0)
        return;
    pds_store_blob_put(d->store, "history", NULL, 0);
    follows_group = 0;
}

static struct follower *follower_find(uint64_t conn)
{
    size_t i;

    for (i = 0; i < n_followers; i++) {
        if (followers[i].conn == conn)
            return &followers[i];
    }
    return NULL;
}

void pds__repl_conn_closed(struct daemon *d, uint64_t conn)
{
    size_t i;

    (void)d;
    for (i = 0; i < n_followers; i++) {
        if (followers[i].conn == conn) {
            followers[i] = followers[--n_followers];
            return;
        }
    }
}

static void notice(struct pds_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void notice(struct pds_conn *c, int code, const char *fmt, ...)
{
    struct pds_msg m;
    va_list ap;

    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_NOTICE;
    m.code = code;
    va_start(ap, fmt);
    vsnprintf(m.err, sizeof(m.err), fmt, ap);
    va_end(ap);
    pds_commlog(PDS_LOG_WARNING, "client at %s not synchronized: %s",
                pds_conn_address(c), m.err);
    pds_conn_send(c, &m);
}

/* Send what the follower misses, within the in-flight window. */
static int ship(struct daemon *d, struct follower *f, pds_index last)
{
    struct pds_conn *c = pds_net_find(d->net, f->conn);

    if (c == NULL)
        return 0;
    while (f->next <= last && f->next - f->acked <= MAX_INFLIGHT) {
        struct pds_msg m;
        uint8_t *buf;
        size_t len, n;
        int rv =
            pds_store_log_range(d->store, f->next, SHIP_BYTES, &buf, &len, &n);
        if (rv == PDS_ENOTFOUND) {
            notice(c, PDS_ENOTFOUND,
                   "it fell behind the server's log retention (it needs "
                   "entry %llu): it needs a refresh",
                   (unsigned long long)f->next);
            pds__repl_conn_closed(d, f->conn);
            return 0;
        }
        if (rv != 0 || n == 0)
            return rv;
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_ENTRIES;
        m.index = f->next;
        m.epoch = last;
        m.blob = buf;
        m.blob_len = len;
        rv = pds_conn_send(c, &m);
        free(buf);
        if (rv != 0)
            return rv;
        f->next += n;
    }
    return 0;
}

void pds__group_after_commit(struct daemon *d)
{
    pds_index last = d->committed;
    size_t i;

    for (i = 0; i < n_followers; i++)
        ship(d, &followers[i], last);
}

/* Server: a member gives its position. */
void pds__repl_on_sync(struct daemon *d,
                       struct pds_conn *c,
                       const struct pds_msg *m)
{
    struct pds_store_meta meta;
    struct follower *f;
    uint8_t *buf = NULL;
    size_t len;

    if (pds_core_role(d->core) != PDS_ROLE_SERVER ||
        pds_store_meta(d->store, &meta) != 0)
        return;
    if (m->index > 0 && !m->is_fresh) {
        notice(c, PDS_EINVAL,
               "it holds data of its own (position %llu/%llu) that did not "
               "come from this group: it needs a refresh",
               (unsigned long long)m->epoch, (unsigned long long)m->index);
        return;
    }
    if (m->index > meta.last_index) {
        notice(c, PDS_EINVAL,
               "its position %llu/%llu is one the server never had (the "
               "server is at %llu/%llu): it needs a refresh",
               (unsigned long long)m->epoch, (unsigned long long)m->index,
               (unsigned long long)meta.last_epoch,
               (unsigned long long)meta.last_index);
        return;
    }
    if (m->index > 0) {
        struct pds_entry e;
        int rv = pds_store_log_get(d->store, m->index, &buf, &len);
        if (rv == 0 &&
            (pds_entry_decode(buf, len, &e) != 0 || e.epoch != m->epoch))
            rv = PDS_EINVAL; /* another history at that index */
        free(buf);
        if (rv == PDS_ENOTFOUND && m->index + 1 >= meta.first_index)
            rv = 0; /* trimmed, but the next entry is still there */
        if (rv != 0) {
            notice(c, rv == PDS_ENOTFOUND ? PDS_ENOTFOUND : PDS_EINVAL,
                   "its position %llu/%llu is %s the server's log: it "
                   "needs a refresh",
                   (unsigned long long)m->epoch, (unsigned long long)m->index,
                   rv == PDS_ENOTFOUND ? "behind the retention of"
                                       : "on a branch that diverged from");
            return;
        }
    } else if (meta.first_index > 1) {
        notice(c, PDS_ENOTFOUND,
               "it is empty and the server's log starts at %llu: it needs a "
               "refresh",
               (unsigned long long)meta.first_index);
        return;
    }
    f = follower_find(pds_conn_id(c));
    if (f == NULL) {
        if (n_followers == MAX_FOLLOWERS)
            return;
        f = &followers[n_followers++];
    }
    f->conn = pds_conn_id(c);
    memcpy(f->pk, pds_conn_peer_pk(c), PDS_KEY_BYTES);
    f->next = m->index + 1;
    f->acked = m->index;
    if (d->has_standby && memcmp(f->pk, d->standby_pk, PDS_KEY_BYTES) == 0)
        pds__daemon_standby_ack(d, m->index);
    ship(d, f, d->committed);
}

void pds__repl_on_ack(struct daemon *d,
                      struct pds_conn *c,
                      const struct pds_msg *m)
{
    struct follower *f = follower_find(pds_conn_id(c));

    if (f == NULL)
        return;
    if (m->index < f->acked || m->index >= f->next) {
        pds_conn_close(c, "protocol error: acknowledgement out of range");
        return;
    }
    f->acked = m->index;
    if (d->has_standby && memcmp(f->pk, d->standby_pk, PDS_KEY_BYTES) == 0)
        pds__daemon_standby_ack(d, m->index);
    ship(d, f, d->committed);
}

/* Server: a client's write, stepped like a local one. */
void pds__repl_on_write(struct daemon *d,
                        struct pds_conn *c,
                        const struct pds_msg *m)
{
    struct pds_event ev;
    struct waiter *w = malloc(sizeof(*w));
    struct pds_reply r;
    struct pds_record rec;
    uint8_t *value = NULL;
    int rv;

    if (w == NULL)
        return;
    memset(w, 0, sizeof(*w));
    w->id = m->rid;
    w->remote_conn = pds_conn_id(c);
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
    if (m->op == PDS_OP_DEL &&
        pds_store_get(d->store, &ev.u.write.key, &rec, &value) == 0)
        ev.u.write.exists = !rec.is_tombstone;
    free(value);
    rv = pds__daemon_step(d, &ev);
    if (rv != 0) {
        memset(&r, 0, sizeof(r));
        r.status = rv;
        snprintf(r.errmsg, sizeof(r.errmsg), "%s", pds_strerror(rv));
        pds__group_write_ack(d, w, &r);
        free(w);
    }
}

void pds__group_write_ack(struct daemon *d,
                          const struct waiter *w,
                          const struct pds_reply *r)
{
    struct pds_conn *c = pds_net_find(d->net, w->remote_conn);
    struct pds_msg m;

    if (c == NULL)
        return; /* the client will learn the outcome from the log */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_WRITE_ACK;
    m.rid = w->id;
    m.code = r->status;
    snprintf(m.err, sizeof(m.err), "%s", r->status != 0 ? r->errmsg : "");
    m.epoch = r->epoch;
    m.index = r->index;
    pds_conn_send(c, &m);
}

/* ---- Client side -------------------------------------------------------- */

void pds__repl_start(struct daemon *d, struct pds_conn *c)
{
    struct pds_store_meta meta;
    struct pds_msg m;
    uint8_t history[PDS_GROUP_ID_BYTES];
    size_t len = 0;

    if (pds_store_meta(d->store, &meta) != 0)
        return;
    if (pds_store_blob_get(d->store, "history", history, sizeof(history),
                           &len) != 0)
        len = 0;
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_SYNC;
    m.index = meta.last_index;
    m.epoch = meta.last_epoch;
    follows_group = len == PDS_GROUP_ID_BYTES &&
                    memcmp(history, d->group, PDS_GROUP_ID_BYTES) == 0;
    m.is_fresh = meta.last_index == 0 || follows_group;
    pds_conn_send(c, &m);
}

static void reply_forwarded(struct forwarded *f, int status, const char *err)
{
    struct pds_reply_buf *rb;

    if (status != 0) {
        rb = pds_reply_new(f->id, status, err);
    } else {
        struct pds_version v = {0, 0};
        rb = pds_reply_new(f->id, 0, NULL);
        if (rb != NULL)
            pds_reply_write(rb, f->epoch, f->index, &v);
    }
    pds__daemon_send(f->conn, rb);
    pds_local_conn_unref(f->conn);
}

/* Answer the forwarded writes that are now applied here. */
static void settle_forwarded(struct daemon *d)
{
    pds_index applied = pds_core_last_index(d->core);
    size_t i = 0;

    while (i < n_forwarded) {
        struct forwarded *f = &forwarded[i];
        if (f->is_acked && f->index <= applied) {
            reply_forwarded(f, 0, NULL);
            forwarded[i] = forwarded[--n_forwarded];
            continue;
        }
        i++;
    }
}

void pds__repl_on_entries(struct daemon *d,
                          struct pds_conn *c,
                          const struct pds_msg *m)
{
    struct pds_entry *entries = NULL;
    struct pds_event ev;
    struct pds_msg ack;
    size_t n = 0, cap = 0, off = 0;
    pds_index want = pds_core_last_index(d->core) + 1;
    int rv;

    if (m->index != want) {
        pds_conn_close(c, "entries out of order from the server");
        return;
    }
    d->server_last = m->epoch;
    while (off < m->blob_len) {
        size_t len;
        if (m->blob_len - off < 4)
            goto bad;
        len = ((size_t)m->blob[off] << 24) | ((size_t)m->blob[off + 1] << 16) |
              ((size_t)m->blob[off + 2] << 8) | m->blob[off + 3];
        off += 4;
        if (len > m->blob_len - off)
            goto bad;
        if (n == cap) {
            size_t ncap = cap == 0 ? 256 : cap * 2;
            struct pds_entry *p = realloc(entries, ncap * sizeof(*p));
            if (p == NULL)
                goto bad;
            entries = p;
            cap = ncap;
        }
        if (pds_entry_decode(m->blob + off, len, &entries[n]) != 0 ||
            entries[n].index != want + n)
            goto bad;
        off += len;
        n++;
    }
    if (n == 0)
        goto bad;
    /* Append, apply and move the position in one transaction. */
    rv = pds_store_commit(d->store, entries, n, pds__wall_ms());
    if (rv != 0) {
        char why[PDS_ERRMSG_SIZE + 32];
        snprintf(why, sizeof(why), "cannot apply the server's entries: %s",
                 pds_store_commit_errmsg(d->store));
        pds_commlog(PDS_LOG_ERROR, "%s", why);
        free(entries);
        pds_conn_close(c, why); /* reconnects and resumes from here */
        return;
    }
    d->n_commits++;
    d->n_committed += n;
    pds__scope_after_commit(d, entries, n);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_APPLIED;
    ev.now = pds__wall_ms();
    ev.u.applied.entries = entries;
    ev.u.applied.n_entries = n;
    rv = pds__daemon_step(d, &ev);
    free(entries);
    if (rv != 0) {
        pds_commlog(PDS_LOG_ERROR, "core refused applied entries: %s",
                    pds_strerror(rv));
        pds_conn_close(c, "internal error applying entries");
        return;
    }
    if (follows_group != 1 && pds_store_blob_put(d->store, "history", d->group,
                                                 PDS_GROUP_ID_BYTES) == 0)
        follows_group = 1;
    memset(&ack, 0, sizeof(ack));
    ack.type = PDS_MSG_ACK;
    ack.index = pds_core_last_index(d->core);
    pds_conn_send(c, &ack);
    settle_forwarded(d);
    return;

bad:
    free(entries);
    pds_conn_close(c, "malformed entries from the server");
}

void pds__repl_on_write_ack(struct daemon *d, const struct pds_msg *m)
{
    size_t i;

    for (i = 0; i < n_forwarded; i++) {
        struct forwarded *f = &forwarded[i];
        if (f->rid != m->rid || f->is_acked)
            continue;
        if (m->code != 0) {
            reply_forwarded(f, m->code, m->err);
            forwarded[i] = forwarded[--n_forwarded];
            return;
        }
        f->is_acked = 1;
        f->epoch = m->epoch;
        f->index = m->index;
        settle_forwarded(d);
        return;
    }
}

void pds__repl_on_notice(struct daemon *d, const struct pds_msg *m)
{
    snprintf(d->link_error, sizeof(d->link_error), "not synchronized: %s",
             m->err);
    pds_commlog(PDS_LOG_WARNING, "server %s: not synchronized: %s", d->server,
                m->err);
}

/* The link to the server is gone: writes in flight have no answer. */
void pds__repl_link_lost(struct daemon *d)
{
    size_t i;

    (void)d;
    for (i = 0; i < n_forwarded; i++)
        reply_forwarded(&forwarded[i], PDS_ECONN,
                        forwarded[i].is_acked
                            ? "the connection to the server was lost after "
                              "the server committed the write; it will "
                              "arrive here when the link is back"
                            : "the connection to the server was lost: the "
                              "write may or may not have been committed");
    n_forwarded = 0;
}

void pds__group_forward(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req)
{
    struct pds_conn *c =
        d->is_linked ? pds_net_find(d->net, d->link_conn) : NULL;
    struct pds_msg m;
    struct forwarded *f;

    if (c == NULL) {
        pds__daemon_send(
            conn, pds_reply_new(req->id, PDS_ECONN,
                                "the server is unreachable: the write was "
                                "not accepted ('pdsync status' shows the "
                                "link)"));
        return;
    }
    if (n_forwarded == MAX_FORWARDED || req->owner_len > PDS_OWNER_MAX ||
        (req->item != NULL && req->item_len > PDS_ITEM_MAX)) {
        pds__daemon_send(conn, pds_reply_new(req->id, PDS_EINVAL,
                                             "too many writes in flight or "
                                             "names too long"));
        return;
    }
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_WRITE;
    m.rid = next_rid++;
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
    if (pds_conn_send(c, &m) != 0) {
        pds__daemon_send(
            conn, pds_reply_new(req->id, PDS_ECONN, "cannot reach the server"));
        return;
    }
    f = &forwarded[n_forwarded++];
    memset(f, 0, sizeof(*f));
    f->rid = m.rid;
    f->conn = conn;
    f->id = req->id;
    f->op = req->op;
    pds_local_conn_ref(conn);
}

int pds__repl_follower(const uint8_t *pk, uint64_t *position)
{
    size_t i;

    for (i = 0; i < n_followers; i++) {
        if (memcmp(followers[i].pk, pk, PDS_KEY_BYTES) == 0) {
            *position = followers[i].acked;
            return 1;
        }
    }
    return 0;
}
