/*
 * core.c - the pdsync state machine: pds_core_step(event) -> update.
 *
 * A single node already runs every write through here: the core validates
 * the write against the limits, keeps the table of owners (for the users
 * limit and its least-recently-used eviction), assigns each accepted change
 * its log position and version, asks the host to persist the entries, and
 * answers the writer only once the host reports them durable. When the host
 * reports that persisting failed, the core undoes what those entries did to
 * its owner table and answers their writers with the error.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pds.h"

/* An owner in the hash table (separate chaining). */
struct owner {
    struct owner *next;
    enum pds_scope scope;
    pds_time last_used;
    size_t len;
    char name[];
};

/* A change handed to the host and not yet reported durable. */
struct pending {
    struct pds_entry entry; /* strings and value point into buf */
    uint8_t *buf;
    uint64_t req;
    int has_req; /* 0 for an eviction made on the writer's behalf */
    int outcome; /* enum pds_outcome, for the reply */
    /* Writes this one superseded before it was durable: answered with it,
     * so that "a newer version won" is never said of one not yet kept. */
    uint64_t *losers;
    size_t n_losers;
    int is_clamped; /* stamped with this node's clock instead of: */
    struct pds_version clamped_from;
    int created_owner; /* undo: remove the owner */
    int removed_owner; /* undo: re-insert the owner with last_used */
    pds_time removed_last_used;
};

struct pds_core {
    struct pds_core_config config;
    pds_hlc hlc;
    pds_index durable;    /* last index reported durable */
    pds_index next_index; /* index of the next accepted change */
    uint64_t n_superseded;
    uint64_t n_clamped;

    struct owner **buckets;
    size_t n_buckets; /* a power of two */
    size_t n_users;
    size_t n_groups;

    struct pending *pending;
    size_t n_pending;
    size_t cap_pending;

    struct pds_member *members;
    uint64_t *member_conn; /* the connection of each connected member */
    size_t n_members;
    size_t cap_members;

    /* The update of the last step. */
    struct pds_entry *out_entries;
    size_t n_out_entries;
    size_t cap_out_entries;
    struct pds_clamp *out_clamps;
    size_t n_out_clamps;
    size_t cap_out_clamps;
    struct pds_reply *out_replies;
    size_t n_out_replies;
    size_t cap_out_replies;
    struct pds_member *out_members;
    size_t n_out_members;
    size_t cap_out_members;
    struct pds_join_reply *out_joins;
    size_t n_out_joins;
    size_t cap_out_joins;
    uint64_t *out_disconnect;
    size_t n_out_disconnect;
    size_t cap_out_disconnect;
    int out_has_role;
    int out_has_epoch;
    char out_errmsg[PDS_ERRMSG_SIZE];

    /* A role move or an epoch waiting to be stored (role.h). */
    int has_pending_role;
    enum pds_role pending_role;
    int has_pending_epoch;
    pds_epoch pending_epoch;
};

/* ---- Owner table ------------------------------------------------------ */

static size_t owner_hash(enum pds_scope scope, const char *name, size_t len)
{
    uint64_t h = UINT64_C(1469598103934665603) ^ (uint64_t)scope;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (uint8_t)name[i];
        h *= UINT64_C(1099511628211);
    }
    return (size_t)h;
}

static struct owner **owner_slot(struct pds_core *core,
                                 enum pds_scope scope,
                                 const char *name,
                                 size_t len)
{
    size_t b = owner_hash(scope, name, len) & (core->n_buckets - 1);
    struct owner **slot = &core->buckets[b];

    while (*slot != NULL) {
        struct owner *o = *slot;
        if (o->scope == scope && o->len == len &&
            memcmp(o->name, name, len) == 0)
            break;
        slot = &o->next;
    }
    return slot;
}

static struct owner *owner_find(struct pds_core *core,
                                enum pds_scope scope,
                                const char *name,
                                size_t len)
{
    return *owner_slot(core, scope, name, len);
}

static int owner_grow(struct pds_core *core)
{
    size_t n = core->n_buckets * 2;
    struct owner **buckets = calloc(n, sizeof(*buckets));
    size_t i;

    if (buckets == NULL)
        return PDS_ENOMEM;
    for (i = 0; i < core->n_buckets; i++) {
        struct owner *o = core->buckets[i];
        while (o != NULL) {
            struct owner *next = o->next;
            size_t b = owner_hash(o->scope, o->name, o->len) & (n - 1);
            o->next = buckets[b];
            buckets[b] = o;
            o = next;
        }
    }
    free(core->buckets);
    core->buckets = buckets;
    core->n_buckets = n;
    return 0;
}

static void owner_count(struct pds_core *core, enum pds_scope scope, int d)
{
    size_t *n = scope == PDS_SCOPE_USER ? &core->n_users : &core->n_groups;

    if (d > 0)
        (*n)++;
    else
        (*n)--;
}

static int owner_insert(struct pds_core *core,
                        enum pds_scope scope,
                        const char *name,
                        size_t len,
                        pds_time last_used)
{
    struct owner **slot;
    struct owner *o;
    int rv;

    if (core->n_users + core->n_groups >= core->n_buckets) {
        rv = owner_grow(core);
        if (rv != 0)
            return rv;
    }
    slot = owner_slot(core, scope, name, len);
    if (*slot != NULL) {
        (*slot)->last_used = last_used;
        return 0;
    }
    o = malloc(sizeof(*o) + len);
    if (o == NULL)
        return PDS_ENOMEM;
    o->next = NULL;
    o->scope = scope;
    o->last_used = last_used;
    o->len = len;
    memcpy(o->name, name, len);
    *slot = o;
    owner_count(core, scope, 1);
    return 0;
}

static void owner_remove(struct pds_core *core,
                         enum pds_scope scope,
                         const char *name,
                         size_t len)
{
    struct owner **slot = owner_slot(core, scope, name, len);
    struct owner *o = *slot;

    if (o == NULL)
        return;
    *slot = o->next;
    owner_count(core, o->scope, -1);
    free(o);
}

/* The user (scope user) used least recently, other than the given name. */
static struct owner *
owner_lru(struct pds_core *core, const char *except, size_t except_len)
{
    struct owner *best = NULL;
    size_t i;

    for (i = 0; i < core->n_buckets; i++) {
        struct owner *o;
        for (o = core->buckets[i]; o != NULL; o = o->next) {
            if (o->scope != PDS_SCOPE_USER)
                continue;
            if (o->len == except_len &&
                memcmp(o->name, except, except_len) == 0)
                continue;
            if (best == NULL || o->last_used < best->last_used)
                best = o;
        }
    }
    return best;
}

/* ---- Lifecycle -------------------------------------------------------- */

int pds_core_new(const struct pds_core_config *config, struct pds_core **out)
{
    struct pds_core *core;

    if (config->epoch == 0 || config->node_id == 0)
        return PDS_EINVAL;
    core = calloc(1, sizeof(*core));
    if (core == NULL)
        goto err;
    core->config = *config;
    core->hlc = config->last_hlc;
    core->durable = config->last_index;
    core->next_index = config->last_index + 1;
    if (core->config.max_machines == 0)
        core->config.max_machines = 10;
    core->n_buckets = 64;
    core->buckets = calloc(core->n_buckets, sizeof(*core->buckets));
    if (core->buckets == NULL)
        goto err_after_core;
    *out = core;
    return 0;

err_after_core:
    free(core);
err:
    return PDS_ENOMEM;
}

static void pending_release(struct pending *p)
{
    free(p->buf);
    p->buf = NULL;
    free(p->losers);
    p->losers = NULL;
    p->n_losers = 0;
}

void pds_core_free(struct pds_core *core)
{
    size_t i;

    if (core == NULL)
        return;
    for (i = 0; i < core->n_buckets; i++) {
        struct owner *o = core->buckets[i];
        while (o != NULL) {
            struct owner *next = o->next;
            free(o);
            o = next;
        }
    }
    for (i = 0; i < core->n_pending; i++)
        pending_release(&core->pending[i]);
    free(core->buckets);
    free(core->pending);
    free(core->out_entries);
    free(core->out_clamps);
    free(core->out_replies);
    free(core->out_members);
    free(core->out_joins);
    free(core->out_disconnect);
    free(core->members);
    free(core->member_conn);
    free(core);
}

int pds_core_load_owner(struct pds_core *core, const struct pds_owner_info *o)
{
    if (o->owner_len == 0 || o->owner_len > PDS_OWNER_MAX)
        return PDS_EINVAL;
    return owner_insert(core, o->scope, o->owner, o->owner_len, o->last_used);
}

/* ---- Output arrays ---------------------------------------------------- */

static int grow(void **array, size_t *cap, size_t need, size_t size)
{
    size_t n;
    void *p;

    if (need <= *cap)
        return 0;
    n = *cap == 0 ? 16 : *cap * 2;
    while (n < need)
        n *= 2;
    p = realloc(*array, n * size);
    if (p == NULL)
        return PDS_ENOMEM;
    *array = p;
    *cap = n;
    return 0;
}

static struct pds_reply *reply_add(struct pds_core *core, uint64_t req)
{
    struct pds_reply *r;

    if (grow((void **)&core->out_replies, &core->cap_out_replies,
             core->n_out_replies + 1, sizeof(*r)) != 0)
        return NULL;
    r = &core->out_replies[core->n_out_replies++];
    memset(r, 0, sizeof(*r));
    r->req = req;
    return r;
}

static int
reply_error(struct pds_core *core, uint64_t req, int status, const char *errmsg)
{
    struct pds_reply *r = reply_add(core, req);

    if (r == NULL)
        return PDS_ENOMEM;
    r->status = status;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg);
    return 0;
}

/* A write the standby has not confirmed what of (it timed out there): a
 * failover could still undo it, so nothing is decided against it. */
static int
reply_unconfirmed(struct pds_core *core, uint64_t req, const char *what)
{
    char errmsg[PDS_ERRMSG_SIZE];

    snprintf(errmsg, sizeof(errmsg),
             "%s is on the server, but the replication destination has not "
             "confirmed it: not decided, send it again",
             what);
    return reply_error(core, req, PDS_ETIMEDOUT, errmsg);
}

/* The same write again (its answer was lost): answered as done, with the
 * entry that holds it. */
static int reply_duplicate(struct pds_core *core,
                           uint64_t req,
                           const struct pds_version *version,
                           pds_epoch epoch,
                           pds_index index)
{
    struct pds_reply *r = reply_add(core, req);

    if (r == NULL)
        return PDS_ENOMEM;
    r->outcome = PDS_OUTCOME_DUPLICATE;
    r->version = *version;
    r->epoch = epoch;
    r->index = index;
    return 0;
}

/*
 * Accept one change: copy it, give it a position and a version, and add it
 * to the pending list and to this step's entries.
 */
static int accept_change(struct pds_core *core,
                         const struct pds_write *w,
                         int has_req,
                         pds_time now,
                         const struct pds_version *version,
                         struct pending **out)
{
    size_t owner_len = w->key.owner_len;
    size_t item_len = w->op == PDS_OP_DEL_OWNER ? 0 : w->key.item_len;
    uint32_t value_len =
        w->op == PDS_OP_PUT || w->op == PDS_OP_SCOPE ? w->value_len : 0;
    struct pending *p;
    uint8_t *buf;
    int rv;

    rv = grow((void **)&core->pending, &core->cap_pending, core->n_pending + 1,
              sizeof(*p));
    if (rv != 0)
        return rv;
    rv = grow((void **)&core->out_entries, &core->cap_out_entries,
              core->n_out_entries + 1, sizeof(struct pds_entry));
    if (rv != 0)
        return rv;
    buf = malloc(owner_len + item_len + value_len + 1);
    if (buf == NULL)
        return PDS_ENOMEM;
    memcpy(buf, w->key.owner, owner_len);
    if (item_len > 0)
        memcpy(buf + owner_len, w->key.item, item_len);
    if (value_len > 0)
        memcpy(buf + owner_len + item_len, w->value, value_len);

    p = &core->pending[core->n_pending++];
    memset(p, 0, sizeof(*p));
    p->buf = buf;
    p->req = w->req;
    p->has_req = has_req;
    p->entry.epoch = core->config.epoch;
    p->entry.index = core->next_index++;
    p->entry.op = w->op;
    p->entry.key.scope = w->key.scope;
    p->entry.key.owner = (const char *)buf;
    p->entry.key.owner_len = owner_len;
    p->entry.key.item = (const char *)buf + owner_len;
    p->entry.key.item_len = item_len;
    p->entry.value = buf + owner_len + item_len;
    p->entry.value_len = value_len;
    if (version != NULL) {
        p->entry.version = *version;
    } else {
        p->entry.version.hlc = pds_hlc_next(&core->hlc, now);
        p->entry.version.node = core->config.node_id;
    }
    core->out_entries[core->n_out_entries++] = p->entry;
    *out = p;
    return 0;
}

/* Evict the least recently used user to make room for a new one. */
static int
evict_lru(struct pds_core *core, const struct pds_write *w, pds_time now)
{
    struct owner *victim = owner_lru(core, w->key.owner, w->key.owner_len);
    struct pds_write del;
    struct pending *p;
    int rv;

    if (victim == NULL)
        return PDS_ELIMIT;
    memset(&del, 0, sizeof(del));
    del.op = PDS_OP_DEL_OWNER;
    del.key.scope = PDS_SCOPE_USER;
    del.key.owner = victim->name;
    del.key.owner_len = victim->len;
    rv = accept_change(core, &del, 0, now, NULL, &p);
    if (rv != 0)
        return rv;
    p->removed_owner = 1;
    p->removed_last_used = victim->last_used;
    owner_remove(core, PDS_SCOPE_USER, victim->name, victim->len);
    return 0;
}

/*
 * Last writer wins for a client's write: an older version than the one
 * held is answered at once (superseded), a newer one is applied with its
 * own version, a clock too far ahead is replaced by this node's. The same
 * version again (a replayed write whose answer was lost) is written again
 * as it is: harmless to every copy, and its answer then waits, like any
 * other, until the write is durable where the acknowledgement mode says.
 */
/*
 * The newest change to key among the writes not yet durable (the host's
 * store does not show them yet): its entry, or NULL.
 */
static struct pending *pending_latest(const struct pds_core *core,
                                      const struct pds_key *key)
{
    size_t i;

    for (i = core->n_pending; i-- > 0;) {
        if (pds_entry_covers(&core->pending[i].entry, key))
            return &core->pending[i];
    }
    return NULL;
}

/*
 * A clock too far ahead is not believed: the write is stamped with this
 * node's clock. Its replay is recognised by the version it came with (the
 * host's memo, or a write of this turn not durable yet) and is not stamped
 * again: a second stamp would put it over every write made since.
 * Returns 1 when w is answered here, 0 to stamp it, or a PDS_E code.
 */
static int answered(int rv)
{
    return rv != 0 ? rv : 1;
}

static int decide_clamp(struct pds_core *core, const struct pds_write *w)
{
    size_t i;

    for (i = 0; i < core->n_pending; i++) {
        const struct pending *p = &core->pending[i];
        if (p->is_clamped && pds_version_cmp(&p->clamped_from, &w->origin) == 0)
            return answered(reply_error(core, w->req, PDS_ETIMEDOUT,
                                        "the first copy of this write is "
                                        "being committed: not decided, "
                                        "send it again"));
    }
    if (!w->has_clamp)
        return 0;
    if (w->clamp_index > w->trusted)
        return answered(reply_unconfirmed(core, w->req, "this write"));
    return answered(reply_duplicate(core, w->req, &w->clamp_version,
                                    w->clamp_epoch, w->clamp_index));
}

/* Is a client's clock further ahead of this node's than max_skew_ms (60 s
 * when unset)? Such a version is not believed: it is restamped. */
static int too_far_ahead(const struct pds_core *core,
                         const struct pds_version *origin,
                         pds_time now)
{
    uint64_t skew =
        core->config.max_skew_ms != 0 ? core->config.max_skew_ms : 60000;

    return PDS_HLC_MS(origin->hlc) > now + skew;
}

static int decide_origin(struct pds_core *core,
                         const struct pds_write *w,
                         pds_time now,
                         struct pds_version *version,
                         int *outcome)
{
    struct pending *latest = pending_latest(core, &w->key);
    struct pds_version current = w->current;
    int has_current = w->has_current;
    pds_index index_of_current = w->current_index;
    struct pds_reply *r;
    int replayed;
    int cmp;

    *outcome = PDS_OUTCOME_APPLIED;
    *version = w->origin;
    /* A write restamped before, come again: whatever its clock says now
     * (the server's may have caught up with it), it is that write. */
    replayed = decide_clamp(core, w);
    if (replayed != 0) {
        /* Answered: no entry, like a loser. */
        *outcome = PDS_OUTCOME_SUPERSEDED;
        return replayed == 1 ? 0 : replayed;
    }
    if (too_far_ahead(core, &w->origin, now)) {
        *outcome = PDS_OUTCOME_CLAMPED;
        version->hlc = pds_hlc_next(&core->hlc, now);
        return 0;
    }
    if (latest == NULL && w->has_gone &&
        (!has_current || pds_version_cmp(&w->gone, &current) > 0)) {
        /* The owner was deleted after the record it held (or it holds
         * none): that delete is what this write is decided against. */
        current = w->gone;
        has_current = 1;
        index_of_current = w->gone_index;
    }
    if (latest != NULL) {
        /* Decided against the newest write, durable or not. */
        current = latest->entry.version;
        has_current = 1;
    }
    if (!has_current)
        return 0;
    cmp = pds_version_cmp(&w->origin, &current);
    if (cmp > 0)
        return 0;
    if (cmp == 0) {
        /* The same write again (its answer was lost). Its first copy not
         * durable yet: written again, answered once durable. Durable and
         * confirmed where the acknowledgement mode says: answered now, no
         * second entry (a client retrying while the standby is away would
         * otherwise add one to the log each time). Not confirmed by the
         * standby yet: not decided, sent again later. */
        *outcome = PDS_OUTCOME_DUPLICATE;
        if (latest != NULL)
            return 0;
        *outcome = PDS_OUTCOME_SUPERSEDED; /* answered here: no entry */
        if (index_of_current > w->trusted)
            return reply_unconfirmed(core, w->req, "this write");
        return reply_duplicate(core, w->req, &current, w->current_epoch,
                               index_of_current);
    }
    *outcome = PDS_OUTCOME_SUPERSEDED;
    if (latest == NULL && index_of_current > w->trusted)
        /* The winner is durable here, but the standby has not confirmed
         * it (it timed out): a failover could still undo it. */
        return reply_unconfirmed(core, w->req, "a newer version of the item");
    core->n_superseded++;
    if (latest != NULL) {
        /* The winner is not durable yet: answer with it. */
        uint64_t *p =
            realloc(latest->losers, (latest->n_losers + 1) * sizeof(*p));
        if (p == NULL)
            return PDS_ENOMEM;
        latest->losers = p;
        latest->losers[latest->n_losers++] = w->req;
        return 0;
    }
    r = reply_add(core, w->req);
    if (r == NULL)
        return PDS_ENOMEM;
    r->outcome = *outcome;
    r->version = current;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s",
             "a newer version of the item was already there");
    return 0;
}

/*
 * A delete-user of an owner this node does not hold. One a client queued
 * offline is written all the same when it is newer than the owner's delete
 * mark (or there is none): it moves the mark on, so that a write older
 * than it that comes later loses to it, whichever of the two reaches the
 * server first. The same delete again is answered as done, from the mark;
 * an older one is not decided while the standby has not confirmed the
 * mark. Otherwise (an older one, or one made online): "no such user".
 * Returns 0 to write it, 1 when answered here, or a PDS_E code.
 */
static int decide_gone_owner(struct pds_core *core,
                             const struct pds_write *w,
                             const struct pds_version *version)
{
    char errmsg[PDS_ERRMSG_SIZE];
    int cmp = 1;

    if (version != NULL && w->has_gone)
        cmp = pds_version_cmp(version, &w->gone);
    if (version != NULL && cmp > 0 && w->is_queued)
        return 0;
    if (version != NULL && w->has_gone && cmp <= 0 &&
        w->gone_index > w->trusted)
        return answered(
            reply_unconfirmed(core, w->req, "a delete of this owner"));
    if (version != NULL && w->has_gone && cmp == 0)
        return answered(reply_duplicate(core, w->req, &w->gone, w->gone_epoch,
                                        w->gone_index));
    snprintf(errmsg, sizeof(errmsg), "no %s \"%.*s\"",
             w->key.scope == PDS_SCOPE_USER ? "user" : "group",
             (int)w->key.owner_len, w->key.owner);
    return answered(reply_error(core, w->req, PDS_ENOTFOUND, errmsg));
}

static int on_write(struct pds_core *core, const struct pds_event *ev)
{
    const struct pds_write *w = &ev->u.write;
    const struct pds_limits *lim = &core->config.limits;
    char errmsg[PDS_ERRMSG_SIZE];
    struct pds_version version;
    int has_version = 0, outcome = PDS_OUTCOME_APPLIED;
    struct owner *o;
    struct pending *p;
    int rv;

    if (w->op == PDS_OP_DEL_OWNER)
        rv = pds_owner_validate(lim, w->key.owner, w->key.owner_len, errmsg);
    else
        rv = pds_key_validate(lim, &w->key, errmsg);
    if (rv != 0)
        return reply_error(core, w->req, rv, errmsg);
    if (w->op == PDS_OP_SCOPE) {
        /* Configuration, replicated like data; touches no owner. */
        if (w->value_len != 1 || w->value[0] > 1)
            return reply_error(core, w->req, PDS_EINVAL,
                               "a scope is shared or device");
        return accept_change(core, w, 1, ev->now, NULL, &p);
    }
    if (w->has_origin && w->op != PDS_OP_DEL_OWNER) {
        rv = decide_origin(core, w, ev->now, &version, &outcome);
        if (rv != 0 || outcome == PDS_OUTCOME_SUPERSEDED)
            return rv;
        has_version = 1;
    }
    if (w->has_origin && w->op == PDS_OP_DEL_OWNER) {
        /* A client's delete of a whole owner (maybe made offline, long
         * ago) is a write like the others: it loses to any change of that
         * owner made after it, and nothing is deleted. Otherwise it keeps
         * its own version (unless its clock is too far ahead), so that a
         * write of the owner made after it still wins over it. */
        struct pds_reply *r;
        size_t i;
        /* Restamped before (its clock was too far ahead), come again: that
         * delete, answered as done, never applied a second time over
         * what was written since. */
        rv = decide_clamp(core, w);
        if (rv != 0)
            return rv == 1 ? 0 : rv;
        for (i = 0; i < core->n_pending; i++) {
            const struct pending *q = &core->pending[i];
            if (pds_key_same_owner(&q->entry.key, &w->key) &&
                pds_version_cmp(&q->entry.version, &w->origin) > 0)
                return reply_error(core, w->req, PDS_ETIMEDOUT,
                                   "a newer change of this owner is being "
                                   "committed: not decided, send it again");
        }
        if (w->owner_newer > w->trusted)
            return reply_unconfirmed(core, w->req,
                                     "a newer change of this owner");
        if (w->owner_newer != 0) {
            core->n_superseded++;
            r = reply_add(core, w->req);
            if (r == NULL)
                return PDS_ENOMEM;
            r->outcome = PDS_OUTCOME_SUPERSEDED;
            r->version = w->origin;
            snprintf(r->errmsg, sizeof(r->errmsg), "%s",
                     "the owner was changed after this delete");
            return 0;
        }
        version = w->origin;
        has_version = 1;
        if (too_far_ahead(core, &w->origin, ev->now)) {
            /* Not believed: this node's clock, and a memo of it. */
            outcome = PDS_OUTCOME_CLAMPED;
            version.hlc = pds_hlc_next(&core->hlc, ev->now);
        }
    }

    o = owner_find(core, w->key.scope, w->key.owner, w->key.owner_len);
    switch (w->op) {
    case PDS_OP_PUT:
        rv = pds_value_validate(lim, w->value_len, errmsg);
        if (rv != 0)
            return reply_error(core, w->req, rv, errmsg);
        if (o == NULL && w->key.scope == PDS_SCOPE_USER &&
            core->n_users >= lim->max_users) {
            if (lim->user_policy == PDS_USER_POLICY_EVICT_LRU)
                rv = evict_lru(core, w, ev->now);
            else
                rv = PDS_ELIMIT;
            if (rv == PDS_ELIMIT) {
                snprintf(errmsg, sizeof(errmsg),
                         "user limit reached: the group holds %zu users "
                         "(setting max_users = %u, policy refuse-new); "
                         "new user \"%.*s\" was refused: delete a user or "
                         "raise max_users",
                         core->n_users, (unsigned)lim->max_users,
                         (int)w->key.owner_len, w->key.owner);
                return reply_error(core, w->req, PDS_ELIMIT, errmsg);
            }
            if (rv != 0)
                return rv;
        }
        break;
    case PDS_OP_DEL: {
        /* The host saw the durable record; a newer write may be pending. */
        const struct pending *latest = pending_latest(core, &w->key);
        int exists =
            latest != NULL ? latest->entry.op == PDS_OP_PUT : w->exists;
        if (o != NULL && outcome == PDS_OUTCOME_DUPLICATE)
            break; /* this delete again, its first copy not durable yet */
        if (o == NULL || !exists) {
            snprintf(errmsg, sizeof(errmsg), "%s \"%.*s\" has no item \"%.*s\"",
                     w->key.scope == PDS_SCOPE_USER ? "user" : "group",
                     (int)w->key.owner_len, w->key.owner, (int)w->key.item_len,
                     w->key.item);
            return reply_error(core, w->req, PDS_ENOTFOUND, errmsg);
        }
        break;
    }
    case PDS_OP_DEL_OWNER:
        if (o == NULL) {
            rv = decide_gone_owner(core, w, has_version ? &version : NULL);
            if (rv != 0)
                return rv == 1 ? 0 : rv;
        }
        break;
    default:
        snprintf(errmsg, sizeof(errmsg), "unknown operation %d", (int)w->op);
        return reply_error(core, w->req, PDS_EINVAL, errmsg);
    }

    rv = accept_change(core, w, 1, ev->now, has_version ? &version : NULL, &p);
    if (rv != 0)
        return rv;
    if (has_version) {
        pds_hlc_observe(&core->hlc, version.hlc);
        if (outcome == PDS_OUTCOME_CLAMPED) {
            struct pds_clamp *c;
            rv = grow((void **)&core->out_clamps, &core->cap_out_clamps,
                      core->n_out_clamps + 1, sizeof(*c));
            if (rv != 0)
                return rv;
            c = &core->out_clamps[core->n_out_clamps++];
            c->origin = w->origin;
            c->version = version;
            c->epoch = p->entry.epoch;
            c->index = p->entry.index;
            p->is_clamped = 1;
            p->clamped_from = w->origin;
            core->n_clamped++;
        }
        p->outcome = outcome;
    }
    if (w->op == PDS_OP_DEL_OWNER) {
        if (o != NULL) {
            p->removed_owner = 1;
            p->removed_last_used = o->last_used;
            owner_remove(core, w->key.scope, w->key.owner, w->key.owner_len);
        }
    } else if (o == NULL) {
        rv = owner_insert(core, w->key.scope, w->key.owner, w->key.owner_len,
                          ev->now);
        if (rv != 0)
            return rv;
        p->created_owner = 1;
    } else {
        o->last_used = ev->now;
    }
    return 0;
}

static int on_touch(struct pds_core *core, const struct pds_event *ev)
{
    struct owner *o = owner_find(core, ev->u.touch.scope, ev->u.touch.owner,
                                 ev->u.touch.owner_len);

    if (o != NULL && ev->now > o->last_used)
        o->last_used = ev->now;
    return 0;
}

/* Answer the writes p superseded: with its fate (durable, or not). */
static int answer_losers(struct pds_core *core,
                         const struct pending *p,
                         int status,
                         const char *errmsg)
{
    size_t i;

    for (i = 0; i < p->n_losers; i++) {
        struct pds_reply *r = reply_add(core, p->losers[i]);
        if (r == NULL)
            return PDS_ENOMEM;
        r->status = status;
        if (status != 0)
            snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg);
        else
            snprintf(r->errmsg, sizeof(r->errmsg), "%s",
                     "a newer version of the item was already there");
        r->outcome = PDS_OUTCOME_SUPERSEDED;
        r->version = p->entry.version;
    }
    return 0;
}

/* Drop the first n pending changes. */
static void pending_pop(struct pds_core *core, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        pending_release(&core->pending[i]);
    memmove(core->pending, core->pending + n,
            (core->n_pending - n) * sizeof(*core->pending));
    core->n_pending -= n;
}

/*
 * Entries up to index are durable: answer their writers, with success or,
 * when the standby did not confirm them in time, with a timeout error (the
 * entries stay: they are durable here).
 */
static int
settle(struct pds_core *core, pds_index index, int status, const char *errmsg)
{
    size_t n = 0;

    if (index < core->durable || index >= core->next_index)
        return PDS_EINVAL;
    while (n < core->n_pending && core->pending[n].entry.index <= index) {
        struct pending *p = &core->pending[n];
        if (p->has_req) {
            struct pds_reply *r = reply_add(core, p->req);
            if (r == NULL)
                return PDS_ENOMEM;
            r->status = status;
            if (status != 0)
                snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg);
            r->epoch = p->entry.epoch;
            r->index = p->entry.index;
            r->version = p->entry.version;
            r->outcome = p->outcome;
        }
        if (answer_losers(core, p, status, errmsg) != 0)
            return PDS_ENOMEM;
        n++;
    }
    pending_pop(core, n);
    core->durable = index;
    return 0;
}

static int on_persisted(struct pds_core *core, const struct pds_event *ev)
{
    return settle(core, ev->u.persisted.index, 0, NULL);
}

static int on_ack_timeout(struct pds_core *core, const struct pds_event *ev)
{
    return settle(core, ev->u.ack_timeout.index, PDS_ETIMEDOUT,
                  ev->u.ack_timeout.errmsg != NULL
                      ? ev->u.ack_timeout.errmsg
                      : "the replication destination did not confirm");
}

static int on_persist_failed(struct pds_core *core, const struct pds_event *ev)
{
    pds_index from = ev->u.persist_failed.index;
    const char *msg = ev->u.persist_failed.errmsg;
    size_t first;
    size_t i;

    if (from <= core->durable || from >= core->next_index)
        return PDS_EINVAL;
    first = 0;
    while (first < core->n_pending && core->pending[first].entry.index < from)
        first++;
    /* Undo the owner-table effects newest first. */
    for (i = core->n_pending; i > first; i--) {
        struct pending *p = &core->pending[i - 1];
        const struct pds_key *k = &p->entry.key;
        if (p->created_owner)
            owner_remove(core, k->scope, k->owner, k->owner_len);
        if (p->removed_owner &&
            owner_insert(core, k->scope, k->owner, k->owner_len,
                         p->removed_last_used) != 0)
            return PDS_ENOMEM;
    }
    for (i = first; i < core->n_pending; i++) {
        struct pending *p = &core->pending[i];
        if (p->has_req &&
            reply_error(core, p->req, ev->u.persist_failed.status,
                        msg != NULL
                            ? msg
                            : pds_strerror(ev->u.persist_failed.status)) != 0)
            return PDS_ENOMEM;
        if (answer_losers(core, p, ev->u.persist_failed.status,
                          msg != NULL
                              ? msg
                              : pds_strerror(ev->u.persist_failed.status)) != 0)
            return PDS_ENOMEM;
        pending_release(p);
    }
    core->n_pending = first;
    core->next_index = from;
    return 0;
}

/* ---- Membership -------------------------------------------------------- */

static struct pds_member *member_find(struct pds_core *core, const uint8_t *pk)
{
    size_t i;

    for (i = 0; i < core->n_members; i++) {
        if (memcmp(core->members[i].pk, pk, PDS_KEY_BYTES) == 0)
            return &core->members[i];
    }
    return NULL;
}

static size_t member_index(struct pds_core *core, const struct pds_member *m)
{
    return (size_t)(m - core->members);
}

static struct pds_member *member_add(struct pds_core *core, const uint8_t *pk)
{
    struct pds_member *m;

    if (grow((void **)&core->members, &core->cap_members, core->n_members + 1,
             sizeof(*m)) != 0)
        return NULL;
    /* member_conn is sized like members. */
    {
        uint64_t *c =
            realloc(core->member_conn, core->cap_members * sizeof(*c));
        if (c == NULL)
            return NULL;
        core->member_conn = c;
    }
    m = &core->members[core->n_members];
    memset(m, 0, sizeof(*m));
    memcpy(m->pk, pk, PDS_KEY_BYTES);
    m->id = pds_member_id(pk);
    core->member_conn[core->n_members] = 0;
    core->n_members++;
    return m;
}

int pds_core_load_member(struct pds_core *core, const struct pds_member *m)
{
    struct pds_member *slot = member_find(core, m->pk);

    if (slot == NULL)
        slot = member_add(core, m->pk);
    if (slot == NULL)
        return PDS_ENOMEM;
    *slot = *m;
    slot->is_connected = 0;
    return 0;
}

/* Queue a member row for the host to store. */
static int member_persist(struct pds_core *core, const struct pds_member *m)
{
    if (grow((void **)&core->out_members, &core->cap_out_members,
             core->n_out_members + 1, sizeof(*m)) != 0)
        return PDS_ENOMEM;
    core->out_members[core->n_out_members++] = *m;
    return 0;
}

static int disconnect_add(struct pds_core *core, uint64_t conn)
{
    if (grow((void **)&core->out_disconnect, &core->cap_out_disconnect,
             core->n_out_disconnect + 1, sizeof(conn)) != 0)
        return PDS_ENOMEM;
    core->out_disconnect[core->n_out_disconnect++] = conn;
    return 0;
}

static struct pds_join_reply *
join_reply(struct pds_core *core, uint64_t conn, int status)
{
    struct pds_join_reply *r;

    if (grow((void **)&core->out_joins, &core->cap_out_joins,
             core->n_out_joins + 1, sizeof(*r)) != 0)
        return NULL;
    r = &core->out_joins[core->n_out_joins++];
    memset(r, 0, sizeof(*r));
    r->conn = conn;
    r->status = status;
    return r;
}

static void copy_text(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src != NULL ? src : "");
}

static int on_join(struct pds_core *core, const struct pds_event *ev)
{
    const struct pds_join *j = &ev->u.join;
    struct pds_member *m = member_find(core, j->pk);
    struct pds_join_reply *r;
    uint64_t id = pds_member_id(j->pk);
    int is_new = 0;

    if (core->config.role != PDS_ROLE_SERVER) {
        r = join_reply(core, j->conn, PDS_EPERM);
        if (r == NULL)
            return PDS_ENOMEM;
        snprintf(r->errmsg, sizeof(r->errmsg),
                 "this node is not a server (its role is %s): point the "
                 "client at the group's server",
                 pds_role_name(core->config.role));
        return 0;
    }
    if (m != NULL && m->state == PDS_MEMBER_STOPPED) {
        int is_reclaimed = strncmp(m->last_error, "slot reclaimed", 14) == 0;
        r = join_reply(core, j->conn, PDS_EPERM);
        if (r == NULL)
            return PDS_ENOMEM;
        snprintf(r->errmsg, sizeof(r->errmsg),
                 "synchronization of client %016llx (%s) was stopped %s: "
                 "run 'pdsync clients start %016llx' on the server to allow "
                 "it again",
                 (unsigned long long)id, m->name,
                 is_reclaimed ? "(its slot was reclaimed after a time "
                                "without contact)"
                              : "by the administrator",
                 (unsigned long long)id);
        m->last_seen = ev->now;
        if (!is_reclaimed)
            copy_text(m->last_error, sizeof(m->last_error), "refused: stopped");
        return member_persist(core, m);
    }
    if (m == NULL) {
        if (j->proof != 1) {
            r = join_reply(core, j->conn, j->proof < 0 ? PDS_EAUTH : PDS_EPERM);
            if (r == NULL)
                return PDS_ENOMEM;
            if (j->proof < 0)
                snprintf(r->errmsg, sizeof(r->errmsg),
                         "wrong join secret: node %016llx (%s) was not "
                         "enrolled; check --join-secret-file",
                         (unsigned long long)id, j->name);
            else
                snprintf(r->errmsg, sizeof(r->errmsg),
                         "unknown node %016llx (%s): it is not enrolled in "
                         "this group; enroll it with 'pdsync client start "
                         "HOST:PORT --join-secret-file F'",
                         (unsigned long long)id, j->name);
            return 0;
        }
        if (pds_core_n_machines(core) >= core->config.max_machines) {
            r = join_reply(core, j->conn, PDS_ELIMIT);
            if (r == NULL)
                return PDS_ENOMEM;
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "group limit reached: the group has %zu machines "
                     "(setting max_machines = %u, the server included); "
                     "node %016llx (%s) was not enrolled: stop a client with "
                     "'pdsync clients stop ID' or raise max_machines",
                     pds_core_n_machines(core),
                     (unsigned)core->config.max_machines,
                     (unsigned long long)id, j->name);
            return 0;
        }
        m = member_add(core, j->pk);
        if (m == NULL)
            return PDS_ENOMEM;
        m->state = PDS_MEMBER_ENROLLED;
        m->first_enrolled = ev->now;
        is_new = 1;
    } else if (m->is_connected) {
        /* The same node connected again (its old connection may not have
         * been noticed dead yet): the new connection replaces it. */
        int rv = disconnect_add(core, core->member_conn[member_index(core, m)]);
        if (rv != 0)
            return rv;
    }
    m->is_connected = 1;
    core->member_conn[member_index(core, m)] = j->conn;
    m->last_seen = ev->now;
    copy_text(m->name, sizeof(m->name), j->name);
    copy_text(m->product, sizeof(m->product), j->product);
    copy_text(m->location, sizeof(m->location), j->location);
    copy_text(m->address, sizeof(m->address), j->address);
    copy_text(m->version, sizeof(m->version), j->version);
    m->last_error[0] = '\0';
    r = join_reply(core, j->conn, 0);
    if (r == NULL)
        return PDS_ENOMEM;
    r->member_id = m->id;
    r->is_new = is_new;
    return member_persist(core, m);
}

static int on_left(struct pds_core *core, const struct pds_event *ev)
{
    struct pds_member *m = member_find(core, ev->u.left.pk);

    if (m == NULL || !m->is_connected ||
        core->member_conn[member_index(core, m)] != ev->u.left.conn)
        return 0; /* not a member, or a connection already replaced */
    m->is_connected = 0;
    m->last_seen = ev->now;
    if (ev->u.left.has_position)
        m->position = ev->u.left.position;
    copy_text(m->last_error, sizeof(m->last_error), ev->u.left.error);
    return member_persist(core, m);
}

/* The host part of "HOST:PORT" or "[HOST]:PORT" (len 0 when none). */
static size_t host_part(const char *addr, const char **host)
{
    const char *colon = strrchr(addr, ':');

    *host = addr;
    if (colon == NULL)
        return 0;
    if (addr[0] == '[' && colon > addr && colon[-1] == ']') {
        *host = addr + 1;
        return (size_t)(colon - addr - 2);
    }
    if (memchr(addr, ':', (size_t)(colon - addr)) != NULL)
        return 0; /* a bare IPv6 address: no port */
    return (size_t)(colon - addr);
}

/*
 * A member by the address it connects from, as 'clients' lists it:
 * HOST:PORT exactly, else the one member whose address has that host (a
 * client's port is its connection's, the administrator knows the
 * printer's address). NULL with errmsg when none or several.
 */
static struct pds_member *
member_by_address(struct pds_core *core, const char *target, char *errmsg)
{
    struct pds_member *found = NULL;
    const char *thost, *mhost;
    size_t tlen = host_part(target, &thost), mlen, i, n = 0;

    for (i = 0; i < core->n_members; i++) {
        if (strcmp(core->members[i].address, target) == 0)
            return &core->members[i];
    }
    if (tlen == 0)
        return NULL;
    for (i = 0; i < core->n_members; i++) {
        mlen = host_part(core->members[i].address, &mhost);
        if (mlen == tlen && memcmp(mhost, thost, tlen) == 0) {
            found = &core->members[i];
            n++;
        }
    }
    if (n > 1) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "more than one client connects from %.*s: use its id or "
                 "name ('pdsync clients' lists them)",
                 (int)tlen, thost);
        return NULL;
    }
    return found;
}

static struct pds_member *
member_lookup(struct pds_core *core, const char *target, char *errmsg)
{
    struct pds_member *found = NULL;
    size_t i;

    for (i = 0; i < core->n_members; i++) {
        struct pds_member *m = &core->members[i];
        char hex[17];
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)m->id);
        if (strcmp(hex, target) == 0)
            return m;
        if (strcmp(m->name, target) == 0) {
            if (found != NULL) {
                snprintf(errmsg, PDS_ERRMSG_SIZE,
                         "more than one client is named \"%s\": use its id",
                         target);
                return NULL;
            }
            found = m;
        }
    }
    if (found == NULL) {
        errmsg[0] = '\0';
        found = member_by_address(core, target, errmsg);
        if (found == NULL && errmsg[0] == '\0')
            snprintf(errmsg, PDS_ERRMSG_SIZE,
                     "no client \"%s\" in this group ('pdsync clients' "
                     "lists them)",
                     target);
    }
    return found;
}

const struct pds_member *
pds_core_member_find(struct pds_core *core, const char *target, char *errmsg)
{
    return member_lookup(core, target, errmsg);
}

static int on_member_admin(struct pds_core *core, const struct pds_event *ev)
{
    uint64_t req = ev->u.member_admin.req;
    char errmsg[PDS_ERRMSG_SIZE];
    struct pds_member *m;
    struct pds_reply *r;
    int rv;

    if (core->config.role != PDS_ROLE_SERVER)
        return reply_error(core, req, PDS_EPERM,
                           "this node is not a server: run the command on "
                           "the group's server");
    m = member_lookup(core, ev->u.member_admin.target, errmsg);
    if (m == NULL)
        return reply_error(core, req, PDS_ENOTFOUND, errmsg);
    if (ev->u.member_admin.op == PDS_MEMBER_OP_STOP) {
        if (m->is_connected) {
            rv = disconnect_add(core, core->member_conn[member_index(core, m)]);
            if (rv != 0)
                return rv;
        }
        m->state = PDS_MEMBER_STOPPED;
        m->is_connected = 0;
        copy_text(m->last_error, sizeof(m->last_error),
                  "stopped by the administrator");
    } else {
        if (m->state != PDS_MEMBER_ENROLLED &&
            pds_core_n_machines(core) >= core->config.max_machines) {
            snprintf(errmsg, sizeof(errmsg),
                     "group limit reached: the group has %zu machines "
                     "(setting max_machines = %u): stop another client first",
                     pds_core_n_machines(core),
                     (unsigned)core->config.max_machines);
            return reply_error(core, req, PDS_ELIMIT, errmsg);
        }
        m->state = PDS_MEMBER_ENROLLED;
        m->last_error[0] = '\0';
    }
    rv = member_persist(core, m);
    if (rv != 0)
        return rv;
    r = reply_add(core, req);
    if (r == NULL)
        return PDS_ENOMEM;
    r->index = m->id; /* the member concerned */
    return 0;
}

/*
 * A follower stored entries of the server's log (the host committed them in
 * one transaction): take the position, the clock and the owners from them.
 */
static int on_applied(struct pds_core *core, const struct pds_event *ev)
{
    size_t i;
    int rv;

    if (core->n_pending > 0)
        return PDS_EINVAL; /* a follower makes no entries of its own */
    for (i = 0; i < ev->u.applied.n_entries; i++) {
        const struct pds_entry *e = &ev->u.applied.entries[i];
        if (e->index != core->durable + 1)
            return PDS_EINVAL;
        core->durable = e->index;
        core->next_index = e->index + 1;
        if (e->epoch > core->config.epoch)
            core->config.epoch = e->epoch;
        pds_hlc_observe(&core->hlc, e->version.hlc);
        if (e->op == PDS_OP_SCOPE) {
            continue; /* configuration: no owner */
        } else if (e->op == PDS_OP_DEL_OWNER) {
            owner_remove(core, e->key.scope, e->key.owner, e->key.owner_len);
        } else if (owner_find(core, e->key.scope, e->key.owner,
                              e->key.owner_len) == NULL) {
            rv = owner_insert(core, e->key.scope, e->key.owner,
                              e->key.owner_len, ev->now);
            if (rv != 0)
                return rv;
        }
    }
    return 0;
}

/* Reclaim the slots of clients silent for longer than reclaim_after_ms. */
static int on_tick(struct pds_core *core, const struct pds_event *ev)
{
    uint64_t after = core->config.reclaim_after_ms;
    size_t i;
    int rv;

    if (after == 0 || core->config.role != PDS_ROLE_SERVER)
        return 0;
    for (i = 0; i < core->n_members; i++) {
        struct pds_member *m = &core->members[i];
        if (m->state != PDS_MEMBER_ENROLLED || m->is_connected ||
            ev->now < m->last_seen || ev->now - m->last_seen <= after)
            continue;
        m->state = PDS_MEMBER_STOPPED;
        snprintf(m->last_error, sizeof(m->last_error),
                 "slot reclaimed after %llu s without contact",
                 (unsigned long long)(after / 1000));
        rv = member_persist(core, m);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* The move itself, once stored: the connections of the old role are
 * gone, whatever the new one. */
static void apply_role(struct pds_core *core, enum pds_role role)
{
    size_t i;

    for (i = 0; i < core->n_members; i++)
        core->members[i].is_connected = 0;
    core->config.role = role;
}

int pds_core_load_role(struct pds_core *core, enum pds_role role)
{
    if ((unsigned)role > (unsigned)PDS_ROLE_LAST)
        return PDS_EINVAL;
    apply_role(core, role);
    return 0;
}

enum pds_role pds_core_role_pending(const struct pds_core *core)
{
    return core->has_pending_role ? core->pending_role : core->config.role;
}

static int on_role_change(struct pds_core *core, const struct pds_event *ev)
{
    enum pds_role from = core->config.role;
    enum pds_role to = ev->u.role_change.to;
    enum pds_role_cause cause = ev->u.role_change.cause;

    if (core->has_pending_role) {
        snprintf(core->out_errmsg, sizeof(core->out_errmsg),
                 "the move from %s to %s is still being stored: try again",
                 pds_role_name(from), pds_role_name(core->pending_role));
        return PDS_EBUSY;
    }
    if (!pds_role_may_move(from, to) || !pds_role_cause_fits(from, to, cause)) {
        snprintf(core->out_errmsg, sizeof(core->out_errmsg),
                 "a %s cannot become %s by %s (nothing was changed)",
                 pds_role_name(from), pds_role_name(to),
                 pds_role_cause_name(cause));
        return PDS_EINVAL;
    }
    core->has_pending_role = 1;
    core->pending_role = to;
    core->out_has_role = 1;
    return 0;
}

static int on_role_stored(struct pds_core *core, const struct pds_event *ev)
{
    enum pds_role role = ev->u.role_stored.role;

    if (!core->has_pending_role || role != core->pending_role) {
        snprintf(core->out_errmsg, sizeof(core->out_errmsg),
                 "no move to %s was asked for", pds_role_name(role));
        return PDS_EINVAL;
    }
    core->has_pending_role = 0;
    if (ev->u.role_stored.status != 0)
        return 0; /* not stored: the node stays what it was */
    /* The table was checked when the move was asked for, and nothing
     * moved since (one move at a time). */
    assert(pds_role_may_move(core->config.role, role));
    apply_role(core, role);
    return 0;
}

/* The highest epoch this node knows of: its own, or one waiting to be
 * stored. */
static pds_epoch known_epoch(const struct pds_core *core)
{
    if (core->has_pending_epoch && core->pending_epoch > core->config.epoch)
        return core->pending_epoch;
    return core->config.epoch;
}

static int on_epoch_heard(struct pds_core *core, const struct pds_event *ev)
{
    pds_epoch e = ev->u.epoch_heard.epoch;

    /* One at a time: a higher one heard meanwhile is heard again with
     * the peer's next message. */
    if (e <= known_epoch(core) || core->has_pending_epoch)
        return 0;
    core->has_pending_epoch = 1;
    core->pending_epoch = e;
    core->out_has_epoch = 1;
    return 0;
}

static int on_epoch_stored(struct pds_core *core, const struct pds_event *ev)
{
    if (!core->has_pending_epoch ||
        ev->u.epoch_stored.epoch != core->pending_epoch) {
        snprintf(core->out_errmsg, sizeof(core->out_errmsg),
                 "no epoch %llu was asked to be stored",
                 (unsigned long long)ev->u.epoch_stored.epoch);
        return PDS_EINVAL;
    }
    core->has_pending_epoch = 0;
    if (ev->u.epoch_stored.status == 0 &&
        core->pending_epoch > core->config.epoch)
        core->config.epoch = core->pending_epoch;
    return 0;
}

int pds_core_step(struct pds_core *core,
                  const struct pds_event *event,
                  struct pds_update *update)
{
    int rv;

    core->n_out_entries = 0;
    core->n_out_clamps = 0;
    core->n_out_replies = 0;
    core->n_out_members = 0;
    core->n_out_joins = 0;
    core->n_out_disconnect = 0;
    core->out_has_role = 0;
    core->out_has_epoch = 0;
    core->out_errmsg[0] = '\0';
    switch (event->type) {
    case PDS_EVENT_WRITE:
        rv = on_write(core, event);
        break;
    case PDS_EVENT_TOUCH:
        rv = on_touch(core, event);
        break;
    case PDS_EVENT_PERSISTED:
        rv = on_persisted(core, event);
        break;
    case PDS_EVENT_PERSIST_FAILED:
        rv = on_persist_failed(core, event);
        break;
    case PDS_EVENT_TICK:
        rv = on_tick(core, event);
        break;
    case PDS_EVENT_PEER_JOIN:
        rv = on_join(core, event);
        break;
    case PDS_EVENT_PEER_LEFT:
        rv = on_left(core, event);
        break;
    case PDS_EVENT_MEMBER_ADMIN:
        rv = on_member_admin(core, event);
        break;
    case PDS_EVENT_APPLIED:
        rv = on_applied(core, event);
        break;
    case PDS_EVENT_ACK_TIMEOUT:
        rv = on_ack_timeout(core, event);
        break;
    case PDS_EVENT_ROLE_CHANGE:
        rv = on_role_change(core, event);
        break;
    case PDS_EVENT_ROLE_STORED:
        rv = on_role_stored(core, event);
        break;
    case PDS_EVENT_EPOCH_HEARD:
        rv = on_epoch_heard(core, event);
        break;
    case PDS_EVENT_EPOCH_STORED:
        rv = on_epoch_stored(core, event);
        break;
    default:
        rv = PDS_EINVAL;
        break;
    }
    update->entries = core->out_entries;
    update->n_entries = core->n_out_entries;
    update->clamps = core->out_clamps;
    update->n_clamps = core->n_out_clamps;
    update->replies = core->out_replies;
    update->n_replies = core->n_out_replies;
    update->members = core->out_members;
    update->n_members = core->n_out_members;
    update->joins = core->out_joins;
    update->n_joins = core->n_out_joins;
    update->disconnect = core->out_disconnect;
    update->n_disconnect = core->n_out_disconnect;
    update->has_role = core->out_has_role;
    update->role = core->pending_role;
    update->role_from = core->config.role;
    update->has_epoch = core->out_has_epoch;
    update->epoch = core->pending_epoch;
    update->errmsg = core->out_errmsg;
    return rv;
}

enum pds_role pds_core_role(const struct pds_core *core)
{
    return core->config.role;
}

const struct pds_member *pds_core_members(const struct pds_core *core,
                                          size_t *n_members)
{
    *n_members = core->n_members;
    return core->members;
}

size_t pds_core_n_machines(const struct pds_core *core)
{
    size_t n = 1; /* the server */
    size_t i;

    for (i = 0; i < core->n_members; i++) {
        if (core->members[i].state == PDS_MEMBER_ENROLLED)
            n++;
    }
    return n;
}

void pds_core_set_epoch(struct pds_core *core, pds_epoch epoch)
{
    if (epoch > core->config.epoch)
        core->config.epoch = epoch;
}

pds_epoch pds_core_epoch(const struct pds_core *core)
{
    return core->config.epoch;
}

pds_index pds_core_last_index(const struct pds_core *core)
{
    return core->durable;
}

size_t pds_core_n_users(const struct pds_core *core)
{
    return core->n_users;
}

size_t pds_core_n_groups(const struct pds_core *core)
{
    return core->n_groups;
}

struct pds_version pds_core_stamp(struct pds_core *core, pds_time now)
{
    struct pds_version v;

    v.hlc = pds_hlc_next(&core->hlc, now);
    v.node = core->config.node_id;
    return v;
}

uint64_t pds_core_n_superseded(const struct pds_core *core)
{
    return core->n_superseded;
}

uint64_t pds_core_n_clamped(const struct pds_core *core)
{
    return core->n_clamped;
}

size_t pds_core_n_pending(const struct pds_core *core)
{
    return core->n_pending;
}
