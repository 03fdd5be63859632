/*
 * pdsyncd - the pdsync node daemon: main, start and stop, and the local
 * API's requests.
 *
 * Wires the core, storage and the local API onto one libuv loop. Requests
 * that arrive during one loop turn are stepped through the core and the
 * update carried out by host.c (the group commit in the check phase after
 * the turn's I/O, then the answers). The files of tools/ and their order
 * are in daemon.h.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "../core/pds.h"
#include "../net/net.h"
#include "../storage/store.h"
#include "commlog.h"
#include "config.h"
#include "daemon.h"

/* A write's names and value against this node's limits, before it is
 * kept here or sent on (a client's server checks them again). */
static int write_validate(const struct daemon *d,
                          const struct pds_request *req,
                          char *errmsg)
{
    struct pds_key key = {req->scope, req->owner, req->owner_len, req->item,
                          req->item_len};
    int rv;

    if (req->op == PDS_REQ_DELETE_USER)
        return pds_owner_validate(&d->cfg.limits, req->owner, req->owner_len,
                                  errmsg);
    rv = pds_key_validate(&d->cfg.limits, &key, errmsg);
    if (rv == 0 && req->value_len > d->cfg.limits.max_value) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "value is %zu bytes; the limit is %u bytes (setting "
                 "max_value_size); nothing was written",
                 req->value_len, (unsigned)d->cfg.limits.max_value);
        rv = PDS_ETOOBIG;
    }
    return rv;
}

/* A device-specific item's write, on the storage queue (its strings and
 * value in buf). */
struct local_job {
    struct pds_diskq_job job;
    struct daemon *d;
    struct pds_local_conn *conn; /* a reference, until answered */
    uint64_t id;
    struct pds_key key;
    struct pds_record rec;
    int is_put;
    int rv;
    char errmsg[PDS_ERRMSG_SIZE];
    char buf[];
};

static void local_work(struct pds_diskq_job *job)
{
    struct local_job *j = PDS_DISKQ_OWNER(job, struct local_job, job);

    j->rv =
        pds_store_local_put(j->d->store, &j->key, j->is_put ? &j->rec : NULL);
    if (j->rv != 0)
        snprintf(j->errmsg, sizeof(j->errmsg), "%s",
                 pds_store_commit_errmsg(j->d->store));
}

static void local_done(struct pds_diskq_job *job)
{
    struct local_job *j = PDS_DISKQ_OWNER(job, struct local_job, job);
    struct pds_reply_buf *rb;

    if (j->rv == PDS_ENOTFOUND) {
        snprintf(j->errmsg, sizeof(j->errmsg),
                 "%s \"%.*s\" has no item \"%.*s\"",
                 j->key.scope == PDS_SCOPE_USER ? "user" : "group",
                 (int)j->key.owner_len, j->key.owner, (int)j->key.item_len,
                 j->key.item);
        pds__daemon_reply_error(j->conn, j->id, j->rv, j->errmsg);
    } else if (j->rv != 0) {
        pds__daemon_reply_error(j->conn, j->id, j->rv, j->errmsg);
    } else {
        /* Position 0/0: stored on this device only. */
        rb = pds_reply_new(j->id, 0, NULL);
        if (rb != NULL) {
            struct pds_write_result res;
            memset(&res, 0, sizeof(res));
            res.version = j->rec.version;
            pds_reply_write(rb, &res);
        }
        pds__daemon_send(j->conn, rb);
    }
    pds_local_conn_unref(j->conn);
    free(j);
}

/* A device-specific item: kept on this node only, never in the log;
 * answered once stored. */
static void local_write(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req)
{
    struct local_job *j;
    char errmsg[PDS_ERRMSG_SIZE];
    size_t value_len = req->op == PDS_REQ_PUT ? req->value_len : 0;
    int rv;

    rv = write_validate(d, req, errmsg);
    if (rv != 0) {
        pds__daemon_reply_error(conn, req->id, rv, errmsg);
        return;
    }
    j = calloc(1, sizeof(*j) + req->owner_len + req->item_len + value_len + 1);
    if (j == NULL) {
        pds__daemon_reply_error(conn, req->id, PDS_ENOMEM, "out of memory");
        return;
    }
    j->d = d;
    j->conn = conn;
    pds_local_conn_ref(conn);
    j->id = req->id;
    memcpy(j->buf, req->owner, req->owner_len);
    memcpy(j->buf + req->owner_len, req->item, req->item_len);
    if (value_len > 0)
        memcpy(j->buf + req->owner_len + req->item_len, req->value, value_len);
    j->key.scope = req->scope;
    j->key.owner = j->buf;
    j->key.owner_len = req->owner_len;
    j->key.item = j->buf + req->owner_len;
    j->key.item_len = req->item_len;
    j->is_put = req->op == PDS_REQ_PUT;
    j->rec.version.hlc = PDS_HLC_MAKE(pds__wall_ms(), 0);
    j->rec.value = (const uint8_t *)j->buf + req->owner_len + req->item_len;
    j->rec.value_len = (uint32_t)value_len;
    pds__diskq_push(&d->diskq, &j->job, local_work, local_done);
}

/* scope set ITEM shared|device: a log entry, so every node applies it. */
static void handle_scope_set(struct daemon *d,
                             struct pds_local_conn *conn,
                             const struct pds_request *req)
{
    struct pds_event ev;
    struct waiter *w;
    uint8_t flag;

    if (req->target_len == 6 && memcmp(req->target, "shared", 6) == 0)
        flag = 0;
    else if (req->target_len == 6 && memcmp(req->target, "device", 6) == 0)
        flag = 1;
    else {
        pds__daemon_reply_error(conn, req->id, PDS_EINVAL,
                                "a scope is shared or device");
        return;
    }
    if (pds_role_follows(pds_core_role(d->core))) {
        pds__daemon_reply_error(
            conn, req->id, PDS_EPERM,
            "sharing scopes are set on the group's server (nothing "
            "was changed)");
        return;
    }
    w = pds__daemon_waiter(conn, req);
    if (w == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_WRITE;
    ev.now = pds__wall_ms();
    ev.u.write.req = (uint64_t)(uintptr_t)w;
    ev.u.write.op = PDS_OP_SCOPE;
    ev.u.write.key.scope = PDS_SCOPE_GROUP;
    ev.u.write.key.owner = PDS_SCOPE_OWNER;
    ev.u.write.key.owner_len = strlen(PDS_SCOPE_OWNER);
    ev.u.write.key.item = req->item;
    ev.u.write.key.item_len = req->item_len;
    ev.u.write.value = &flag;
    ev.u.write.value_len = 1;
    if (pds__daemon_step(d, &ev) != 0) {
        pds__daemon_reply_error(conn, req->id, PDS_ENOMEM, "out of memory");
        pds_local_conn_unref(conn);
        free(w);
    }
}

static void handle_scopes(struct daemon *d,
                          struct pds_local_conn *conn,
                          const struct pds_request *req)
{
    struct pds_reply_buf *rb = pds_reply_new(req->id, 0, NULL);

    if (rb != NULL)
        pds_reply_log(rb, (const char *const *)d->device_items,
                      d->n_device_items);
    pds__daemon_send(conn, rb);
}

static void handle_write(struct daemon *d,
                         struct pds_local_conn *conn,
                         const struct pds_request *req)
{
    struct pds_event ev;
    struct waiter *w;
    int rv;

    if ((req->op == PDS_REQ_PUT || req->op == PDS_REQ_DEL) &&
        pds__scope_is_device(d, req->item, req->item_len)) {
        local_write(d, conn, req);
        return;
    }
    if (pds_role_follows(pds_core_role(d->core))) {
        /* A client writes through its server: what this node's limits
         * refuse is not sent (a value over the frame limit would end the
         * link, and the writes in flight on it). */
        char errmsg[PDS_ERRMSG_SIZE];
        rv = write_validate(d, req, errmsg);
        if (rv != 0) {
            pds__daemon_reply_error(conn, req->id, rv, errmsg);
            return;
        }
        pds__group_forward(d, conn, req);
        return;
    }
    if (pds_core_role(d->core) == PDS_ROLE_STANDALONE)
        pds__repl_local_write(d);
    w = pds__daemon_waiter(conn, req);
    if (w == NULL)
        return;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_WRITE;
    ev.now = pds__wall_ms();
    ev.u.write.req = (uint64_t)(uintptr_t)w;
    ev.u.write.key.scope = req->scope;
    ev.u.write.key.owner = req->owner;
    ev.u.write.key.owner_len = req->owner_len;
    ev.u.write.key.item = req->item;
    ev.u.write.key.item_len = req->item_len;
    if (req->op == PDS_REQ_PUT) {
        ev.u.write.op = PDS_OP_PUT;
        ev.u.write.value = req->value;
        ev.u.write.value_len =
            req->value_len > UINT32_MAX ? UINT32_MAX : (uint32_t)req->value_len;
    } else if (req->op == PDS_REQ_DEL) {
        struct pds_record rec;
        uint8_t *value = NULL;
        ev.u.write.op = PDS_OP_DEL;
        rv = pds_store_get(d->store, &ev.u.write.key, &rec, &value);
        ev.u.write.exists = rv == 0 && !rec.is_tombstone;
        free(value);
    } else {
        ev.u.write.op = PDS_OP_DEL_OWNER;
        ev.u.write.key.item = NULL;
        ev.u.write.key.item_len = 0;
    }
    rv = pds__daemon_step(d, &ev);
    if (rv != 0) {
        /* The core took nothing: the waiter was not handed out. */
        pds__daemon_reply_error(conn, req->id, rv, pds_strerror(rv));
        pds_local_conn_unref(conn);
        free(w);
    }
}

static void touch(struct daemon *d,
                  enum pds_scope scope,
                  const char *owner,
                  size_t owner_len)
{
    struct pds_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_TOUCH;
    ev.now = pds__wall_ms();
    ev.u.touch.scope = scope;
    ev.u.touch.owner = owner;
    ev.u.touch.owner_len = owner_len;
    /* Only the owner's last use for the user limit: a read goes on. */
    if (pds__daemon_step(d, &ev) != 0)
        pds_log(PDS_LOG_WARNING, "the last use of %.*s was not recorded",
                (int)owner_len, owner);
}

static const char *scope_word(enum pds_scope scope)
{
    return scope == PDS_SCOPE_USER ? "user" : "group";
}

static int same_owner(const struct pds_entry *e,
                      enum pds_scope scope,
                      const char *owner,
                      size_t owner_len)
{
    return e->key.scope == scope && e->key.owner_len == owner_len &&
           memcmp(e->key.owner, owner, owner_len) == 0;
}

/* On a client: the newest queued write that decides a read of key. */
static const struct pds_entry *queued_for(struct daemon *d,
                                          const struct pds_key *key)
{
    const struct pds_entry *e = NULL;
    size_t i;

    if (!pds_role_follows(pds_core_role(d->core)))
        return NULL;
    for (i = pds__repl_outbox(d, &e, SIZE_MAX); i-- > 0;) {
        pds__repl_outbox(d, &e, i);
        if (e != NULL && pds_entry_covers(e, key))
            return e;
    }
    return NULL;
}

static void handle_get(struct daemon *d,
                       struct pds_local_conn *conn,
                       const struct pds_request *req)
{
    const struct pds_entry *q;
    struct pds_key key = {req->scope, req->owner, req->owner_len, req->item,
                          req->item_len};
    char errmsg[PDS_ERRMSG_SIZE];
    struct pds_record rec;
    struct pds_item it;
    struct pds_reply_buf *rb;
    uint8_t *value = NULL;
    int rv;

    rv = pds_key_validate(&d->cfg.limits, &key, errmsg);
    if (rv != 0) {
        pds__daemon_reply_error(conn, req->id, rv, errmsg);
        return;
    }
    if (pds__scope_is_device(d, key.item, key.item_len)) {
        rv = pds_store_local_get(d->store, &key, &rec, &value);
    } else if ((q = queued_for(d, &key)) != NULL) {
        /* A write queued for the server rules what this node shows. */
        memset(&rec, 0, sizeof(rec));
        rec.version = q->version;
        rec.is_tombstone = q->op != PDS_OP_PUT;
        rec.value = q->value;
        rec.value_len = q->value_len;
        rv = 0;
    } else {
        rv = pds_store_get(d->store, &key, &rec, &value);
    }
    if (rv == PDS_ENOTFOUND || (rv == 0 && rec.is_tombstone)) {
        snprintf(errmsg, sizeof(errmsg), "%s \"%.*s\" has no item \"%.*s\"",
                 scope_word(req->scope), (int)req->owner_len, req->owner,
                 (int)req->item_len, req->item);
        pds__daemon_reply_error(conn, req->id, PDS_ENOTFOUND, errmsg);
        free(value);
        return;
    }
    if (rv != 0) {
        pds__daemon_reply_error(conn, req->id, rv, pds_store_errmsg(d->store));
        return;
    }
    touch(d, req->scope, req->owner, req->owner_len);
    memset(&it, 0, sizeof(it));
    it.scope = key.scope;
    it.owner = key.owner;
    it.owner_len = key.owner_len;
    it.item = key.item;
    it.item_len = key.item_len;
    it.value = rec.value;
    it.value_len = rec.value_len;
    it.version = rec.version;
    rb = pds_reply_new(req->id, 0, NULL);
    if (rb != NULL)
        pds_reply_get(rb, &it);
    pds__daemon_send(conn, rb);
    free(value);
}

/* Records copied out of a read transaction for a list reply. */
struct list_ctx {
    struct daemon *d;
    int skip_device; /* records: device items are read from the local table */
    struct pds_item *items;
    size_t n;
    size_t cap;
    size_t bytes;
    int too_big;
};

static int collect_record(void *arg,
                          const struct pds_key *key,
                          const struct pds_record *rec)
{
    struct list_ctx *ctx = arg;
    struct pds_item *it;
    char *mem;

    if (ctx->skip_device &&
        pds__scope_is_device(ctx->d, key->item, key->item_len))
        return 0;
    ctx->bytes += key->owner_len + key->item_len + rec->value_len + 64;
    if (ctx->bytes > PDS_LOCAL_FRAME_MAX - 4096) {
        ctx->too_big = 1;
        return 1;
    }
    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap == 0 ? 64 : ctx->cap * 2;
        struct pds_item *p = realloc(ctx->items, cap * sizeof(*p));
        if (p == NULL)
            return PDS_ENOMEM;
        ctx->items = p;
        ctx->cap = cap;
    }
    mem = malloc(key->owner_len + key->item_len + rec->value_len + 1);
    if (mem == NULL)
        return PDS_ENOMEM;
    it = &ctx->items[ctx->n++];
    memcpy(mem, key->owner, key->owner_len);
    memcpy(mem + key->owner_len, key->item, key->item_len);
    if (rec->value_len > 0)
        memcpy(mem + key->owner_len + key->item_len, rec->value,
               rec->value_len);
    it->scope = key->scope;
    it->owner = mem;
    it->owner_len = key->owner_len;
    it->item = mem + key->owner_len;
    it->item_len = key->item_len;
    it->value = (const uint8_t *)mem + key->owner_len + key->item_len;
    it->value_len = rec->value_len;
    it->version = rec->version;
    return 0;
}

static void list_drop(struct list_ctx *ctx, size_t i)
{
    free((void *)ctx->items[i].owner);
    ctx->items[i] = ctx->items[--ctx->n];
}

/* On a client: the queued writes on top of the listed records. */
static int list_queued(struct daemon *d,
                       struct list_ctx *ctx,
                       const struct pds_request *req)
{
    const struct pds_entry *e = NULL;
    size_t n, i, j;
    int rv;

    if (!pds_role_follows(pds_core_role(d->core)))
        return 0;
    n = pds__repl_outbox(d, &e, SIZE_MAX);
    for (i = 0; i < n; i++) {
        pds__repl_outbox(d, &e, i);
        if (e == NULL || e->key.scope != req->scope ||
            (req->owner != NULL &&
             !same_owner(e, req->scope, req->owner, req->owner_len)) ||
            (e->op != PDS_OP_DEL_OWNER &&
             pds__scope_is_device(d, e->key.item, e->key.item_len)))
            continue;
        for (j = ctx->n; j-- > 0;) {
            const struct pds_item *it = &ctx->items[j];
            struct pds_key k = {it->scope, it->owner, it->owner_len, it->item,
                                it->item_len};
            if (pds_entry_covers(e, &k))
                list_drop(ctx, j);
        }
        if (e->op == PDS_OP_PUT) {
            struct pds_record rec;
            memset(&rec, 0, sizeof(rec));
            rec.version = e->version;
            rec.value = e->value;
            rec.value_len = e->value_len;
            rv = collect_record(ctx, &e->key, &rec);
            if (rv != 0)
                return rv;
        }
    }
    return 0;
}

static void handle_list(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req)
{
    struct list_ctx ctx;
    struct pds_reply_buf *rb;
    char errmsg[PDS_ERRMSG_SIZE];
    size_t i;
    int rv;

    if (req->owner != NULL) {
        rv = pds_owner_validate(&d->cfg.limits, req->owner, req->owner_len,
                                errmsg);
        if (rv != 0) {
            pds__daemon_reply_error(conn, req->id, rv, errmsg);
            return;
        }
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.d = d;
    ctx.skip_device = 1;
    rv = pds_store_list(d->store, req->scope, req->owner, req->owner_len,
                        collect_record, &ctx);
    if (rv == 0 && !ctx.too_big) {
        ctx.skip_device = 0;
        rv = pds_store_local_list(d->store, req->scope, req->owner,
                                  req->owner_len, collect_record, &ctx);
    }
    if (rv == 0 && !ctx.too_big)
        rv = list_queued(d, &ctx, req);
    if (ctx.too_big) {
        pds__daemon_reply_error(
            conn, req->id, PDS_ETOOBIG,
            "the list is larger than one reply can carry: list one "
            "owner at a time");
    } else if (rv < 0) {
        pds__daemon_reply_error(conn, req->id, rv,
                                rv == PDS_ENOMEM ? "out of memory"
                                                 : pds_store_errmsg(d->store));
    } else {
        rb = pds_reply_new(req->id, 0, NULL);
        if (rb != NULL)
            pds_reply_list(rb, ctx.items, ctx.n);
        pds__daemon_send(conn, rb);
    }
    for (i = 0; i < ctx.n; i++)
        free((void *)ctx.items[i].owner);
    free(ctx.items);
}

struct users_ctx {
    struct pds_user *users;
    size_t n;
    size_t cap;
};

static int collect_owner(void *arg, const struct pds_owner_info *o)
{
    struct users_ctx *ctx = arg;
    struct pds_user *u;
    char *name;

    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap == 0 ? 64 : ctx->cap * 2;
        struct pds_user *p = realloc(ctx->users, cap * sizeof(*p));
        if (p == NULL)
            return PDS_ENOMEM;
        ctx->users = p;
        ctx->cap = cap;
    }
    name = malloc(o->owner_len + 1);
    if (name == NULL)
        return PDS_ENOMEM;
    memcpy(name, o->owner, o->owner_len);
    u = &ctx->users[ctx->n++];
    u->scope = o->scope;
    u->owner = name;
    u->owner_len = o->owner_len;
    u->last_used = o->last_used;
    return 0;
}

static void handle_users(struct daemon *d,
                         struct pds_local_conn *conn,
                         const struct pds_request *req)
{
    struct users_ctx ctx;
    struct pds_reply_buf *rb;
    size_t i;
    int rv;

    memset(&ctx, 0, sizeof(ctx));
    rv = pds_store_owners(d->store, collect_owner, &ctx);
    if (rv != 0) {
        pds__daemon_reply_error(conn, req->id, rv, pds_store_errmsg(d->store));
    } else {
        rb = pds_reply_new(req->id, 0, NULL);
        if (rb != NULL)
            pds_reply_users(rb, ctx.users, ctx.n);
        pds__daemon_send(conn, rb);
    }
    for (i = 0; i < ctx.n; i++)
        free((void *)ctx.users[i].owner);
    free(ctx.users);
}

static void handle_log(struct pds_local_conn *conn,
                       const struct pds_request *req)
{
    struct pds_reply_buf *rb;
    char **lines;
    size_t n;

    if (pds_commlog_tail(req->limit, &lines, &n) != 0) {
        pds__daemon_reply_error(conn, req->id, PDS_EIO,
                                "the communication log could not be read");
        return;
    }
    rb = pds_reply_new(req->id, 0, NULL);
    if (rb != NULL)
        pds_reply_log(rb, (const char *const *)lines, n);
    pds__daemon_send(conn, rb);
    pds_commlog_tail_free(lines, n);
}

void pds__daemon_request(struct daemon *d,
                         struct pds_local_conn *conn,
                         const struct pds_request *req)
{

    if (d->is_stopping) {
        pds__daemon_reply_error(
            conn, req->id, PDS_ECANCELED,
            "pdsyncd is shutting down; nothing was changed");
        return;
    }
    switch (req->op) {
    case PDS_REQ_PUT:
    case PDS_REQ_DEL:
    case PDS_REQ_DELETE_USER:
        handle_write(d, conn, req);
        break;
    case PDS_REQ_GET:
        handle_get(d, conn, req);
        break;
    case PDS_REQ_LIST:
        handle_list(d, conn, req);
        break;
    case PDS_REQ_USERS:
        handle_users(d, conn, req);
        break;
    case PDS_REQ_STATUS:
        pds__status_request(d, conn, req);
        break;
    case PDS_REQ_LOG:
        handle_log(conn, req);
        break;
    case PDS_REQ_SCOPE_SET:
        handle_scope_set(d, conn, req);
        break;
    case PDS_REQ_SCOPES:
        handle_scopes(d, conn, req);
        break;
    case PDS_REQ_SERVER_START:
    case PDS_REQ_SERVER_STOP:
    case PDS_REQ_CLIENT_START:
    case PDS_REQ_CLIENT_STOP:
    case PDS_REQ_CLIENTS:
    case PDS_REQ_CLIENTS_STOP:
    case PDS_REQ_CLIENTS_START:
    case PDS_REQ_ADMIN_PASSWORD:
    case PDS_REQ_REPLICATION_START:
    case PDS_REQ_REPLICATION_STOP:
        pds__group_request(d, conn, req);
        break;
    }
}

static void on_request(void *arg,
                       struct pds_local_conn *conn,
                       const struct pds_request *req)
{
    pds__daemon_request(arg, conn, req);
}

static void on_protocol_error(void *arg, const char *what)
{
    (void)arg;
    pds_commlog(PDS_LOG_WARNING, "%s", what);
}

/* ---- Start and stop --------------------------------------------------- */

static void on_handle_closed(uv_handle_t *handle)
{
    (void)handle;
}

/* The daemon's own handles (the loop ends once they and the rest close). */
static void close_handles(struct daemon *d)
{
    uv_close((uv_handle_t *)&d->commit_check, on_handle_closed);
    uv_close((uv_handle_t *)&d->commit_idle, on_handle_closed);
    uv_close((uv_handle_t *)&d->ack_timer, on_handle_closed);
    uv_close((uv_handle_t *)&d->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&d->sigint, on_handle_closed);
}

static void stop(struct daemon *d, const char *why)
{
    if (d->is_stopping)
        return;
    d->is_stopping = 1;
    pds_log(PDS_LOG_INFO, "%s: shutting down", why);
    /* Commit what this turn already accepted before closing anything. The
     * loop runs on until the storage queue is empty (its jobs are active
     * requests of the loop), so the store closes after the last write. */
    pds__daemon_commit_now(d);
    pds_local_close(d->local);
    pds__group_close(d);
    close_handles(d);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    stop(handle->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/*
 * Take the data directory's lock so that a second pdsyncd refuses to
 * start. Returns the lock's fd or -1 with a message.
 */
static int lock_data_dir(const char *dir, char *errmsg)
{
    char path[PATH_MAX];
    char pid[32];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/pdsyncd.lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "data directory %s is not writable (%s): fix its "
                 "permissions or choose another --data",
                 dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "another pdsyncd (pid %s) is already running on %s: stop "
                 "it first or use another --data",
                 pid[0] != '\0' ? pid : "unknown", dir);
        close(fd);
        return -1;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "data directory %s is not writable (%s)", dir,
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int open_node(struct daemon *d, char *errmsg)
{
    struct pds_store_config scfg;
    struct pds_store_meta meta;
    struct pds_core_config ccfg;
    char db_dir[PATH_MAX];
    int rv;

    snprintf(db_dir, sizeof(db_dir), "%s/db", d->data_dir);
    if (mkdir(db_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "data directory %s is not writable: mkdir %s: %s", d->data_dir,
                 db_dir, strerror(errno));
        return -1;
    }
    memset(&scfg, 0, sizeof(scfg));
    scfg.path = db_dir;
    scfg.map_initial = d->cfg.map_initial;
    scfg.budget = d->cfg.budget;
    scfg.retain_entries = d->cfg.retain_entries;
    scfg.retain_bytes = d->cfg.retain_bytes;
    scfg.retain_ms = d->cfg.retain_age_s * 1000u;
    rv = pds_store_open(&scfg, &d->store, errmsg);
    if (rv != 0)
        return -1;
    rv = pds_store_meta(d->store, &meta);
    if (rv == 0 && meta.node_id == 0) {
        /* First start: before the loop runs, so here. */
        pds_node_id id = 0;
        while (id == 0)
            randombytes_buf(&id, sizeof(id));
        rv = pds_store_init_node(d->store, id);
        if (rv != 0) {
            snprintf(errmsg, PDS_ERRMSG_SIZE, "%s",
                     pds_store_commit_errmsg(d->store));
            return -1;
        }
        rv = pds_store_meta(d->store, &meta);
    }
    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s", pds_store_errmsg(d->store));
        return -1;
    }
    memset(&ccfg, 0, sizeof(ccfg));
    ccfg.node_id = meta.node_id;
    ccfg.epoch = meta.epoch;
    ccfg.last_index = meta.last_index;
    ccfg.last_hlc = meta.last_hlc;
    d->committed = meta.last_index;
    ccfg.limits = d->cfg.limits;
    ccfg.max_machines = d->cfg.max_machines;
    ccfg.reclaim_after_ms = (uint64_t)d->cfg.reclaim_after_s * 1000u;
    ccfg.max_skew_ms = (uint64_t)d->cfg.max_skew_s * 1000u;
    rv = pds_core_new(&ccfg, &d->core);
    if (rv == 0)
        rv = pds_store_owners(d->store, pds__daemon_load_owner, d->core);
    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "start core: %s", pds_strerror(rv));
        return -1;
    }
    d->core_cfg = ccfg;
    pds__scope_reload(d);
    pds_log(PDS_LOG_INFO,
            "node %016llx, epoch %llu, position %llu/%llu, %zu users",
            (unsigned long long)meta.node_id, (unsigned long long)meta.epoch,
            (unsigned long long)meta.last_epoch,
            (unsigned long long)meta.last_index, pds_core_n_users(d->core));
    return 0;
}

/* What host.c and admin.c call above them (daemon.h). */
static const struct pds_host_hooks hooks = {
    .update = pds__group_update,
    .ship_early = pds__repl_ship_early,
    .unship = pds__repl_unship,
    .committed = pds__repl_note_commit,
    .after_commit = pds__group_after_commit,
    .turn = pds__repl_flush,
    .tick = pds__repl_tick,
    .request = pds__daemon_request,
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pdsyncd [--data DIR] [--config FILE] [--listen "
            "HOST:PORT]\n"
            "\n"
            "Run a pdsync node in the foreground. SIGTERM or SIGINT stop it "
            "cleanly.\n"
            "\n"
            "  -d, --data DIR     data directory (default %s, or "
            "$PDSYNC_DATA)\n"
            "  -c, --config FILE  configuration file (default "
            "DIR/pdsyncd.conf if present)\n"
            "  -l, --listen HOST:PORT  the group port ([ADDR]:PORT for IPv6; "
            "port 0 picks one,\n"
            "                     written to DIR/listen.addr when ready)\n"
            "  -h, --help         show this help\n"
            "  -V, --version      show the version\n",
            PDS_DEFAULT_DATA_DIR);
}

int main(int argc, char **argv)
{
    const struct option options[] = {
        {"data", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct daemon d;
    const char *data = getenv("PDSYNC_DATA");
    const char *config = NULL;
    char config_path[PATH_MAX];
    char sock_path[PATH_MAX];
    char errmsg[PDS_ERRMSG_SIZE];
    int opt;
    int rv = 1;

    memset(&d, 0, sizeof(d));
    d.hooks = hooks;
    if (data == NULL || data[0] == '\0')
        data = PDS_DEFAULT_DATA_DIR;
    if (getenv("PDSYNC_DEBUG_OOM_BATCH") != NULL)
        d.debug_oom_batch = atol(getenv("PDSYNC_DEBUG_OOM_BATCH"));
    while ((opt = getopt_long(argc, argv, "d:c:l:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            data = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'l':
            snprintf(d.listen_arg, sizeof(d.listen_arg), "%s", optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("pdsyncd %s\n", PDS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pdsyncd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (realpath(data, d.data_dir) == NULL) {
        if (errno != ENOENT || mkdir(data, 0700) != 0 ||
            realpath(data, d.data_dir) == NULL) {
            fprintf(stderr,
                    "pdsyncd: data directory %s can't be used (%s): create "
                    "it or choose another --data\n",
                    data, strerror(errno));
            return 1;
        }
    }

    if (strlen(d.data_dir) > PATH_MAX - 64) {
        fprintf(stderr, "pdsyncd: data directory path %s is too long\n",
                d.data_dir);
        return 1;
    }
    pds_config_default(&d.cfg);
    if (config == NULL) {
        snprintf(config_path, sizeof(config_path), "%s/pdsyncd.conf",
                 d.data_dir);
        if (access(config_path, F_OK) == 0)
            config = config_path;
    }
    if (config != NULL && pds_config_load(config, &d.cfg, errmsg) != 0) {
        fprintf(stderr, "pdsyncd: %s\n", errmsg);
        return 1;
    }
    pds_ack_init(&d.ack, (enum pds_ack_mode)d.cfg.ack_mode,
                 d.cfg.standby_timeout_ms);
    if (sodium_init() < 0) {
        fprintf(stderr, "pdsyncd: libsodium failed to initialize\n");
        return 1;
    }
    d.lock_fd = lock_data_dir(d.data_dir, errmsg);
    if (d.lock_fd < 0) {
        fprintf(stderr, "pdsyncd: %s\n", errmsg);
        return 1;
    }
    if (pds_log_open(d.data_dir, (enum pds_log_level)d.cfg.log_level,
                     d.cfg.commlog_max) != 0) {
        fprintf(stderr,
                "pdsyncd: data directory %s is not writable: comm.log: %s\n",
                d.data_dir, strerror(errno));
        goto err_after_lock;
    }
    if (open_node(&d, errmsg) != 0) {
        pds_commlog(PDS_LOG_ERROR, "start refused: %s", errmsg);
        goto err_after_node;
    }

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&d.loop);
    pds__diskq_init(&d.diskq, &d.loop);
    pds__daemon_host_init(&d);
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    snprintf(sock_path, sizeof(sock_path), "%s/%s", d.data_dir,
             PDS_SOCKET_NAME);
    if (pds_local_listen(&d.loop, sock_path, on_request, on_protocol_error, &d,
                         &d.local, errmsg) != 0) {
        pds_commlog(PDS_LOG_ERROR, "start refused: %s", errmsg);
        close_handles(&d);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        uv_loop_close(&d.loop);
        goto err_after_node;
    }
    /* The replication state first: the group calls into it. */
    if (pds__repl_new(&d, errmsg) != 0 || pds__group_open(&d, errmsg) != 0) {
        pds_commlog(PDS_LOG_ERROR, "start refused: %s", errmsg);
        pds_local_close(d.local);
        close_handles(&d);
        pds__group_close(&d);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        uv_loop_close(&d.loop);
        goto err_after_node;
    }
    pds_commlog(PDS_LOG_INFO, "pdsyncd %s started on %s (pid %ld)", PDS_VERSION,
                d.data_dir, (long)getpid());
    {
        /* Test knobs left set change behaviour (a clock skew decides which
         * write wins): never silently. */
        extern char **environ;
        char **e;
        for (e = environ; *e != NULL; e++) {
            if (strncmp(*e, "PDSYNC_DEBUG_", 13) == 0)
                pds_commlog(PDS_LOG_WARNING,
                            "test setting %s is in force: unset it outside "
                            "tests",
                            *e);
        }
    }

    uv_run(&d.loop, UV_RUN_DEFAULT);
    /* uv_run() returns once no request is active: every write is done. */
    assert(pds__diskq_pending(&d.diskq) == 0);
    if (uv_loop_close(&d.loop) != 0)
        pds_log(PDS_LOG_WARNING, "event loop closed with handles open");
    pds_commlog(PDS_LOG_INFO, "pdsyncd stopped");
    rv = 0;

err_after_node:
    /* After the loop: its last callbacks and pool jobs used it. */
    pds__repl_free(&d);
    pds_core_free(d.core);
    if (d.store != NULL)
        pds_store_close(d.store);
    free(d.batch.e);
    free(d.cbatch.e);
    pds_ack_close(&d.ack);
    free(d.batch.clamps);
    free(d.cbatch.clamps);
    {
        size_t i;
        for (i = 0; i < d.n_device_items; i++)
            free(d.device_items[i]);
        free(d.device_items);
    }
    pds_log_close();
err_after_lock:
    close(d.lock_fd);
    return rv;
}
