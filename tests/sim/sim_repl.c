/*
 * sim_repl.c - log shipping, client writes and the standby under random
 * faults.
 *
 * One server and N_FOLLOWERS followers in one process, over a seeded fake
 * network and clock. The server is a real pds_core (its writes, the
 * last-writer-wins decision on clients' versions, acknowledgements after
 * persistence or the standby's confirmation, timeouts); when a write is
 * acknowledged is the rule of core/ack.h (each commit's own deadline, a
 * standby's lost link), and the decisions of log shipping are the core's
 * pds_repl_* functions, as in the daemon. The
 * storage of every node is a model: records of a few keys of three users,
 * each user's delete mark (its last delete-user), a position, and what an
 * fsync made durable. Follower 0 is the standby (acknowledgement
 * mode "standby": a write is answered once the standby made it durable,
 * and the server sends each batch to it before its own fsync).
 *
 * Faults: connections lost (everything in flight with them), partitions,
 * delays, server crashes (the unsynced batch is lost, even when it was
 * already sent to the standby), server commits that fail (a full disk),
 * follower crashes (losing the entries a catch-up held for one commit and
 * outbox removals not yet flushed),
 * clients writing while offline (a durable outbox replayed on reconnect,
 * duplicates included), a client whose clock is hours ahead, a short log
 * retention (refresh by a chunked snapshot: a copy taken at one position,
 * streamed while writes go on, delete marks included). Clients and the
 * server now and then delete a whole user (delete-user), online or queued
 * offline, decided by the core as the daemon asks it (the owner's records
 * newer than the delete, its delete mark). After every step:
 *
 *   1. every follower on the server's branch holds exactly the server's
 *      records at its position, and so does what it made durable;
 *   2. no position is ahead of what the server sent;
 *   3. no acknowledged write is missing on the server, nor, in standby
 *      mode, in what the standby made durable (its record at its version
 *      or a newer one, or a newer delete-user of its owner); a write told
 *      it lost to a newer version lost to one the server and the standby
 *      made durable (one the standby did not confirm decides nothing: the
 *      loser times out and comes again);
 *   3a. delete-users: no record anywhere is older than its owner's delete
 *      mark; an acknowledged delete-user leaves the mark at its version or
 *      newer on the server and the standby (so no record of the owner
 *      older than it: a newer write of the owner may be there); one told
 *      it lost lost to a newer change of the owner the server and the
 *      standby made durable; "no such owner" is answered only when the
 *      server holds none, and, for a delete-user queued offline (done for
 *      the client: the server writes one newer than the owner's mark, or
 *      of an owner without one), only when the standby made a mark as new
 *      as it durable (no record older than the delete there, then or
 *      later, whichever write reaches the server first);
 *   4. once faults stop, everyone converges: same position, records and
 *      delete marks as the server, every outbox empty;
 *   5. a write whose clock was too far ahead is restamped once: its replays
 *      are answered from the memo kept with its entry, never stamped
 *      again over the writes made since.
 *
 * A run is a pure function of the seed: PDS_TEST_SEED=S runs one seed,
 * PDS_SIM_SEEDS=N runs N seeds (default 2000), PDS_SIM_STEPS the steps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pds.h"
#include "sim.h"

#define N_FOLLOWERS 3
#define N_KEYS 6
#define N_OWNERS 3 /* users u0..u2; key k belongs to u(k / 2) */
#define MAX_HIST 8192
#define RETAIN 10       /* log entries the server keeps */
#define WINDOW 12       /* entries in flight per follower */
#define MSG_ENTRIES 3   /* entries per ENTRIES message */
#define SNAP_KEYS 2     /* keys per snapshot chunk */
#define MAX_MSGS 4096   /* messages in flight */
#define MAX_OUTBOX 64   /* a client's queued writes */
#define MAX_ACKED 20000 /* acknowledged writes, for invariant 3 */
#define MAX_REQS 4096   /* writes the server core has not answered */
#define ACK_TIMEOUT 40  /* steps the server waits for the standby */
#define DEL_OWNER_PCT 5 /* of clients' writes: a delete-user */

struct rec {
    int has;
    int is_tomb;
    struct pds_version v;
    uint32_t value;
    pds_index index; /* of the entry that wrote it */
};

/* An owner's delete mark: its latest delete-user applied. */
struct gone {
    int has;
    struct pds_version v;
    pds_index index;
};

struct state {
    struct rec r[N_KEYS];
    struct gone g[N_OWNERS];
};

struct hentry {
    pds_index index;
    pds_epoch epoch; /* the server's term that wrote it */
    int key;         /* -1 for a delete-user */
    int owner;       /* of key, or the owner a delete-user removes */
    int op;          /* PDS_OP_PUT, PDS_OP_DEL or PDS_OP_DEL_OWNER */
    struct pds_version v;
    uint32_t value;
    int is_clamped; /* stamped with the server's clock instead of: */
    struct pds_version clamped_from;
};

enum msg_type {
    M_SYNC = 1,
    M_ENTRIES,
    M_ACK,
    M_SNAP,
    M_SNAP_ACK,
    M_WRITE,
    M_WACK
};

struct msg {
    int to_server; /* direction */
    int f;         /* the follower at the other end */
    uint64_t conn;
    uint64_t at; /* delivery step */
    enum msg_type type;
    pds_index index;         /* SYNC position, ENTRIES first, ACK, SNAP p0 */
    pds_epoch epoch;         /* SYNC: of the entry at index; SNAP: stamp */
    struct pds_version last; /* SYNC */
    pds_index server_last;   /* ENTRIES: the sender's last; SNAP: end */
    pds_index window_end;    /* ENTRIES: the last sent before an ACK */
    struct hentry e[MSG_ENTRIES];
    int n;
    uint64_t seq; /* SNAP chunk, WRITE rid */
    int is_last;
    struct rec chunk[SNAP_KEYS];
    int chunk_first;
    /* SNAP, last chunk: the delete marks; WACK of a delete-user: gone[0],
     * the owner's mark it was decided against. */
    struct gone gone[N_OWNERS];
    int sb_older; /* WACK of a delete-user: what the standby made durable
                   * held a record of the owner older than it then */
    /* WRITE / WACK */
    int key, owner, op, status, outcome, is_queued;
    uint32_t value;
    struct pds_version v;
};

struct queued {
    uint64_t rid;
    int key, owner, op; /* key -1: a delete-user of owner */
    uint32_t value;
    struct pds_version v;
    int is_queued; /* made while offline (else sent at once) */
    int is_sent;
    int is_done; /* answered; removal not flushed yet */
};

struct follower {
    /* Storage model. */
    struct state cur, dur;
    pds_index pos, dur_pos;
    /* A catch-up's entries held for one commit, not yet applied. */
    struct hentry held[WINDOW + MSG_ENTRIES];
    int n_held;
    struct pds_version last, dur_last;    /* version at pos (hlc 0: unknown) */
    pds_epoch last_epoch, dur_last_epoch; /* epoch at pos (0 at 0) */
    struct state staged;
    int staging;
    uint64_t staged_next;
    struct queued outbox[MAX_OUTBOX];
    int n_outbox;
    /* Runtime. */
    uint64_t conn;   /* 0: disconnected */
    int down_until;  /* partition or crash */
    int crash_until; /* a crash: no writes (cut off, its users write) */
    int64_t clock_skew;
    pds_hlc hlc;
    uint64_t next_rid;
};

struct req {
    int used;
    int f; /* -1: a local write on the server */
    uint64_t rid;
    uint64_t conn;
    int key, owner, op;
    struct pds_version origin; /* a client's */
};

struct acked {
    int key; /* -1: a delete-user of owner */
    int owner;
    int not_found; /* a delete-user answered PDS_ENOTFOUND */
    struct pds_version v;
    int standby; /* acknowledged in standby mode */
};

struct sim {
    uint64_t rng, seed;
    int step, faults;
    uint64_t now;
    /* Server. */
    struct pds_core *core;
    struct hentry hist[MAX_HIST + 1]; /* durable log, index 1.. */
    struct state at[MAX_HIST + 1];    /* records after each index */
    pds_index durable, first;
    pds_epoch epoch;    /* the server's term: one more at each restart */
    pds_index max_sent; /* the highest index ever sent to a follower */
    struct hentry batch[64];
    int n_batch;
    int shipped_early; /* the batch went to the standby already */
    /* When writes are acknowledged: the product's rule (core/ack.h) in
     * standby mode, its clock the step count. */
    struct pds_ack ack;
    int server_down_until;
    /* The followers, as the daemon keeps them (core/follow.h), and the
     * connection of each that the server accepted (0: none). */
    struct pds_follow follow;
    uint64_t sconn[N_FOLLOWERS];
    struct req reqs[MAX_REQS];
    uint64_t next_conn;
    /* Followers, network, records of acknowledged writes. */
    struct follower fl[N_FOLLOWERS];
    struct msg msgs[MAX_MSGS];
    int n_msgs;
    struct acked acked[MAX_ACKED];
    int n_acked;
    char why[256];
};

static uint64_t rnd(struct sim *s)
{
    return sim_xorshift(&s->rng);
}

static int chance(struct sim *s, int percent)
{
    return (int)(rnd(s) % 100) < percent;
}

static const char *key_name(int k)
{
    static const char *const names[N_KEYS] = {"k0", "k1", "k2",
                                              "k3", "k4", "k5"};
    return names[k];
}

static int owner_of(int k)
{
    return k / 2;
}

static const char *owner_name(int o)
{
    static const char *const names[N_OWNERS] = {"u0", "u1", "u2"};
    return names[o];
}

static void apply(struct state *st, const struct hentry *e)
{
    struct rec *r;

    if (e->op == PDS_OP_DEL_OWNER) {
        /* Every record of the owner goes, tombstones too; the delete mark
         * moves on when this one is newer. */
        struct gone *g = &st->g[e->owner];
        int k;
        for (k = 0; k < N_KEYS; k++) {
            if (owner_of(k) == e->owner)
                memset(&st->r[k], 0, sizeof(st->r[k]));
        }
        if (!g->has || pds_version_cmp(&g->v, &e->v) < 0) {
            g->has = 1;
            g->v = e->v;
            g->index = e->index;
        }
        return;
    }
    r = &st->r[e->key];
    r->has = 1;
    r->is_tomb = e->op == PDS_OP_DEL;
    r->v = e->v;
    r->value = e->op == PDS_OP_DEL ? 0 : e->value;
    r->index = e->index;
}

static int same_state(const struct state *a, const struct state *b)
{
    int k;

    for (k = 0; k < N_KEYS; k++) {
        const struct rec *x = &a->r[k], *y = &b->r[k];
        if (x->has != y->has)
            return 0;
        if (x->has && (x->is_tomb != y->is_tomb || x->value != y->value ||
                       pds_version_cmp(&x->v, &y->v) != 0))
            return 0;
    }
    for (k = 0; k < N_OWNERS; k++) {
        const struct gone *x = &a->g[k], *y = &b->g[k];
        if (x->has != y->has || (x->has && pds_version_cmp(&x->v, &y->v) != 0))
            return 0;
    }
    return 1;
}

/* Does st hold a record of owner o, live or deleted? */
static int owner_present(const struct state *st, int o)
{
    int k;

    for (k = 0; k < N_KEYS; k++) {
        if (owner_of(k) == o && st->r[k].has)
            return 1;
    }
    return 0;
}

/* The highest index of a record of owner o newer than v (0: none), as
 * pds_store_owner_newer. */
static pds_index
owner_newer(const struct state *st, int o, const struct pds_version *v)
{
    pds_index newer = 0;
    int k;

    for (k = 0; k < N_KEYS; k++) {
        const struct rec *r = &st->r[k];
        if (owner_of(k) == o && r->has && pds_version_cmp(&r->v, v) > 0 &&
            r->index > newer)
            newer = r->index;
    }
    return newer;
}

/* A record of owner o older than v, or -1. */
static int
owner_older(const struct state *st, int o, const struct pds_version *v)
{
    int k;

    for (k = 0; k < N_KEYS; k++) {
        const struct rec *r = &st->r[k];
        if (owner_of(k) == o && r->has && pds_version_cmp(&r->v, v) < 0)
            return k;
    }
    return -1;
}

/* Is v kept in st for key (or, for a delete-user, owner): the record's
 * version or the owner's delete mark is at least v? */
static int
kept(const struct state *st, int key, int o, const struct pds_version *v)
{
    const struct gone *g = &st->g[o];

    if (key >= 0 && st->r[key].has && pds_version_cmp(&st->r[key].v, v) >= 0)
        return 1;
    return g->has && pds_version_cmp(&g->v, v) >= 0;
}

/* ---- Network ------------------------------------------------------------ */

static void send_msg(struct sim *s, const struct msg *m)
{
    struct msg *q;
    uint64_t at = s->now + 1 + rnd(s) % 3;
    int i;

    if (s->n_msgs == MAX_MSGS)
        return; /* a full pipe: as if the connection stalled */
    /* In order per connection and direction, like TCP. */
    for (i = 0; i < s->n_msgs; i++) {
        if (s->msgs[i].conn == m->conn &&
            s->msgs[i].to_server == m->to_server && s->msgs[i].at > at)
            at = s->msgs[i].at;
    }
    q = &s->msgs[s->n_msgs++];
    *q = *m;
    q->at = at;
}

static void server_drop_follower(struct sim *s, int f);

/* A connection ends: its messages are lost, both ends notice. */
static void conn_lost(struct sim *s, int f)
{
    struct follower *fl = &s->fl[f];
    int i, j;

    if (fl->conn == 0)
        return;
    for (i = 0, j = 0; i < s->n_msgs; i++) {
        if (s->msgs[i].conn != fl->conn)
            s->msgs[j++] = s->msgs[i];
    }
    s->n_msgs = j;
    fl->conn = 0;
    fl->staging = 0;
    fl->n_held = 0;
    for (i = 0; i < fl->n_outbox; i++)
        fl->outbox[i].is_sent = 0;
    server_drop_follower(s, f);
}

/* ---- Server --------------------------------------------------------------
 */

static pds_time server_now(struct sim *s)
{
    return 1000000 + s->now * 10;
}

static int core_make(struct sim *s)
{
    struct pds_core_config cfg;
    pds_hlc hlc = 0;
    pds_index i;
    int o;

    memset(&cfg, 0, sizeof(cfg));
    cfg.node_id = 1;
    cfg.epoch = s->epoch;
    cfg.last_index = s->durable;
    for (i = 1; i <= s->durable; i++) {
        if (s->hist[i].v.hlc > hlc)
            hlc = s->hist[i].v.hlc;
    }
    cfg.last_hlc = hlc;
    pds_limits_default(&cfg.limits);
    cfg.role = PDS_ROLE_SERVER;
    cfg.max_skew_ms = 60000;
    if (pds_core_new(&cfg, &s->core) != 0)
        return -1;
    /* The owners the durable records hold, as the daemon loads them. */
    for (o = 0; o < N_OWNERS; o++) {
        struct pds_owner_info oi;
        if (!owner_present(&s->at[s->durable], o))
            continue;
        memset(&oi, 0, sizeof(oi));
        oi.scope = PDS_SCOPE_USER;
        oi.owner = owner_name(o);
        oi.owner_len = 2;
        oi.last_used = server_now(s);
        if (pds_core_load_owner(s->core, &oi) != 0)
            return -1;
    }
    return 0;
}

static struct req *req_new(struct sim *s)
{
    int i;

    for (i = 0; i < MAX_REQS; i++) {
        if (!s->reqs[i].used) {
            memset(&s->reqs[i], 0, sizeof(s->reqs[i]));
            s->reqs[i].used = 1;
            return &s->reqs[i];
        }
    }
    return NULL;
}

static void note_acked(struct sim *s, int key, int owner, struct pds_version v)
{
    if (s->n_acked == MAX_ACKED)
        return;
    s->acked[s->n_acked].key = key;
    s->acked[s->n_acked].owner = owner;
    s->acked[s->n_acked].not_found = 0;
    s->acked[s->n_acked].v = v;
    s->acked[s->n_acked].standby = 1;
    s->n_acked++;
}

/* Does the server hold a record of owner o, durable or in the batch? */
static int owner_held(const struct sim *s, int o)
{
    int held = owner_present(&s->at[s->durable], o), i;

    for (i = 0; i < s->n_batch; i++) {
        if (s->batch[i].owner == o)
            held = s->batch[i].op != PDS_OP_DEL_OWNER;
    }
    return held;
}

/* Carry out a core update: entries join the batch, replies go out. */
static int carry_out(struct sim *s, const struct pds_update *u)
{
    size_t i;

    for (i = 0; i < u->n_entries; i++) {
        const struct pds_entry *e = &u->entries[i];
        struct hentry *h = &s->batch[s->n_batch++];
        if (s->n_batch > 64) {
            snprintf(s->why, sizeof(s->why), "batch overflow");
            return -1;
        }
        {
            /* Nor applied again with its own clock (which beats every
             * write made since). */
            pds_index k;
            for (k = 1; k <= s->durable; k++) {
                if (s->hist[k].is_clamped &&
                    pds_version_cmp(&s->hist[k].clamped_from, &e->version) ==
                        0) {
                    snprintf(s->why, sizeof(s->why),
                             "a write restamped at %llu was applied again "
                             "with its own clock",
                             (unsigned long long)k);
                    return -1;
                }
            }
        }
        memset(h, 0, sizeof(*h));
        h->index = e->index;
        h->epoch = e->epoch;
        h->owner = e->key.owner[1] - '0';
        h->key = e->op == PDS_OP_DEL_OWNER ? -1 : e->key.item[1] - '0';
        h->op = e->op;
        h->v = e->version;
        if (e->op == PDS_OP_PUT && e->value_len == 4)
            memcpy(&h->value, e->value, 4);
    }
    for (i = 0; i < u->n_clamps; i++) {
        /* The memo goes with its entry (into the batch, durable with it).
         * A version restamped once is never restamped again: a replay
         * stamped anew would land over every write made since. */
        const struct pds_clamp *c = &u->clamps[i];
        int j;
        pds_index k;
        for (k = 1; k <= s->durable; k++) {
            if (s->hist[k].is_clamped &&
                pds_version_cmp(&s->hist[k].clamped_from, &c->origin) == 0) {
                snprintf(s->why, sizeof(s->why),
                         "a write restamped at %llu was restamped again",
                         (unsigned long long)k);
                return -1;
            }
        }
        for (j = 0; j < s->n_batch; j++) {
            if (s->batch[j].index == c->index) {
                s->batch[j].is_clamped = 1;
                s->batch[j].clamped_from = c->origin;
            }
        }
    }
    for (i = 0; i < u->n_replies; i++) {
        const struct pds_reply *r = &u->replies[i];
        struct req *q = &s->reqs[r->req];
        struct msg m;
        if (r->req >= MAX_REQS || !q->used) {
            snprintf(s->why, sizeof(s->why), "reply to an unknown request");
            return -1;
        }
        q->used = 0;
        if (q->op == PDS_OP_DEL_OWNER && r->status == PDS_ENOTFOUND &&
            owner_held(s, q->owner)) {
            snprintf(s->why, sizeof(s->why),
                     "delete-user of %s answered \"no such owner\" while "
                     "the server holds records of it",
                     owner_name(q->owner));
            return -1;
        }
        if (q->f < 0) {
            if (r->status == 0)
                note_acked(s, q->key, q->owner, r->version);
            continue;
        }
        if (s->fl[q->f].conn != q->conn)
            continue; /* its connection is gone: no answer */
        memset(&m, 0, sizeof(m));
        m.type = M_WACK;
        m.f = q->f;
        m.conn = q->conn;
        m.seq = q->rid;
        m.status = r->status;
        m.outcome = r->outcome;
        m.v = r->version;
        m.key = q->key;
        /* For the checks of a delete-user's answer: the owner's delete mark
         * it was decided against, and whether what the standby made
         * durable held a record of the owner older than it then. */
        m.gone[0] = s->at[s->durable].g[q->owner];
        m.sb_older = q->op == PDS_OP_DEL_OWNER &&
                     owner_older(&s->fl[0].dur, q->owner, &q->origin) >= 0;
        send_msg(s, &m);
    }
    return 0;
}

static int server_write(struct sim *s,
                        int f,
                        uint64_t rid,
                        int key,
                        int owner,
                        int op,
                        int is_queued,
                        uint32_t value,
                        const struct pds_version *origin)
{
    const struct state *st = &s->at[s->durable];
    const struct rec *cur = key >= 0 ? &st->r[key] : NULL;
    struct pds_event ev;
    struct pds_update u;
    struct req *q = req_new(s);
    int rv;

    if (q == NULL || s->n_batch > 60)
        return 0; /* overloaded: the write is not taken */
    q->f = f;
    q->rid = rid;
    q->conn = f >= 0 ? s->fl[f].conn : 0;
    q->key = key;
    q->owner = owner;
    q->op = op;
    if (origin != NULL)
        q->origin = *origin;
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_WRITE;
    ev.now = server_now(s);
    ev.u.write.req = (uint64_t)(q - s->reqs);
    ev.u.write.op = (enum pds_op)op;
    ev.u.write.key.scope = PDS_SCOPE_USER;
    ev.u.write.key.owner = owner_name(owner);
    ev.u.write.key.owner_len = 2;
    ev.u.write.key.item = key >= 0 ? key_name(key) : "";
    ev.u.write.key.item_len = key >= 0 ? 2 : 0;
    ev.u.write.value = (const uint8_t *)&value;
    ev.u.write.value_len = 4;
    ev.u.write.exists = cur != NULL && cur->has && !cur->is_tomb;
    if (cur != NULL && cur->has) {
        ev.u.write.has_current = 1;
        ev.u.write.current = cur->v;
        ev.u.write.current_index = cur->index;
    }
    ev.u.write.trusted = s->ack.standby_acked; /* standby mode */
    ev.u.write.is_queued = is_queued;
    if (origin != NULL) {
        pds_index k;
        ev.u.write.has_origin = 1;
        ev.u.write.origin = *origin;
        /* The host's memo of restamped writes: the durable log here. */
        for (k = 1; k <= s->durable; k++) {
            if (s->hist[k].is_clamped &&
                pds_version_cmp(&s->hist[k].clamped_from, origin) == 0) {
                ev.u.write.has_clamp = 1;
                ev.u.write.clamp_version = s->hist[k].v;
                ev.u.write.clamp_epoch = 1;
                ev.u.write.clamp_index = k;
            }
        }
        /* As the daemon (tools/replicate.c): a delete-user is decided
         * against the owner's records newer than it, and every write
         * against the owner's last delete-user. */
        if (op == PDS_OP_DEL_OWNER)
            ev.u.write.owner_newer = owner_newer(st, owner, origin);
        if (st->g[owner].has) {
            ev.u.write.has_gone = 1;
            ev.u.write.gone = st->g[owner].v;
            ev.u.write.gone_index = st->g[owner].index;
            ev.u.write.gone_epoch = s->hist[st->g[owner].index].epoch;
        }
    }
    rv = pds_core_step(s->core, &ev, &u);
    if (rv != 0) {
        snprintf(s->why, sizeof(s->why), "core write: %s", pds_strerror(rv));
        return -1;
    }
    return carry_out(s, &u);
}

static void ship(struct sim *s, int f);

/* A follower's node key: follower 0 is the standby. */
static void pk_of(int f, uint8_t *pk)
{
    memset(pk, f + 1, PDS_KEY_BYTES);
}

/* The server's followers as a new server process starts them. */
static int follow_start(struct sim *s)
{
    struct pds_follow_config c;
    uint8_t pk[PDS_KEY_BYTES];

    pds_follow_close(&s->follow);
    memset(&c, 0, sizeof(c));
    c.max_peers = N_FOLLOWERS;
    c.max_inflight = WINDOW;
    c.snap_inflight = 2;
    c.max_per_message = MSG_ENTRIES;
    if (pds_follow_init(&s->follow, &c) != 0)
        return -1;
    pk_of(0, pk);
    pds_follow_set_standby(&s->follow, pk);
    return 0;
}

/* The copy for a refresh the core began: taken at once, at the server's
 * durable position (one read transaction), while writes go on. */
static void make_copy(struct sim *s, int f, uint64_t job)
{
    pds_index p0 = s->durable;

    if (pds_follow_snap_made(&s->follow, s->sconn[f], job, 0,
                             p0 > 0 ? s->hist[p0].epoch : 0, p0) != 0)
        return;
    if (p0 > s->max_sent)
        s->max_sent = p0;
}

static void ship(struct sim *s, int f);

/* Send the next snapshot chunks, as many as the core lets go: of the copy
 * taken at the snapshot's position. */
static void snap_pump(struct sim *s, int f)
{
    struct pds_follow_peer *p = pds_follow_find(&s->follow, s->sconn[f]);

    while (p != NULL && pds_follow_snap_may_send(&s->follow, p)) {
        struct msg m;
        pds_index p0 = p->snap_index;
        int first = (int)p->snap_chunk * SNAP_KEYS, k;
        memset(&m, 0, sizeof(m));
        m.type = M_SNAP;
        m.f = f;
        m.conn = p->conn;
        m.seq = p->snap_chunk;
        m.index = p0;
        m.epoch = p->snap_epoch;
        m.chunk_first = first;
        for (k = 0; k < SNAP_KEYS && first + k < N_KEYS; k++)
            m.chunk[k] = s->at[p0].r[first + k];
        m.is_last = first + SNAP_KEYS >= N_KEYS;
        if (m.is_last) /* the delete marks (kind 4), of the same copy */
            memcpy(m.gone, s->at[p0].g, sizeof(m.gone));
        m.server_last = s->durable;
        send_msg(s, &m);
        pds_follow_snap_sent(p, m.is_last);
        if (m.is_last) {
            ship(s, f);
            return;
        }
    }
}

static void ship(struct sim *s, int f)
{
    struct pds_follow_peer *p = pds_follow_find(&s->follow, s->sconn[f]);

    while (p != NULL) {
        pds_index window_end;
        pds_index n = pds_follow_want(&s->follow, p, s->durable, &window_end);
        struct pds_follow_out out;
        struct msg m;
        pds_index i;
        if (n == 0)
            return;
        if (p->log.next < s->first) {
            /* Trimmed before it was sent: a refresh. */
            if (pds_follow_refresh(&s->follow, p->conn, "behind the log",
                                   s->durable, &out) == 0) {
                make_copy(s, f, out.snap_job);
                snap_pump(s, f);
            }
            return;
        }
        memset(&m, 0, sizeof(m));
        m.type = M_ENTRIES;
        m.f = f;
        m.conn = p->conn;
        m.index = p->log.next;
        m.server_last = s->durable;
        m.window_end = window_end;
        for (i = 0; i < n; i++)
            m.e[i] = s->hist[p->log.next + i];
        m.n = (int)n;
        send_msg(s, &m);
        pds_follow_sent(p, n, n);
        if (p->log.next - 1 > s->max_sent)
            s->max_sent = p->log.next - 1;
    }
}

/* The server notices the end of follower f's connection. */
static void server_drop_follower(struct sim *s, int f)
{
    if (s->sconn[f] != 0 && pds_follow_drop(&s->follow, s->sconn[f]))
        pds_ack_standby_gone(&s->ack); /* known again from its next SYNC */
    s->sconn[f] = 0;
}

static int settle(struct sim *s, pds_index index, int timeout)
{
    struct pds_event ev;
    struct pds_update u;
    int rv;

    if (index <= pds_core_last_index(s->core))
        return 0;
    memset(&ev, 0, sizeof(ev));
    ev.now = server_now(s);
    if (timeout) {
        ev.type = PDS_EVENT_ACK_TIMEOUT;
        ev.u.ack_timeout.index = index;
        ev.u.ack_timeout.errmsg = "timeout";
    } else {
        ev.type = PDS_EVENT_PERSISTED;
        ev.u.persisted.index = index;
    }
    rv = pds_core_step(s->core, &ev, &u);
    if (rv != 0) {
        snprintf(s->why, sizeof(s->why), "core settle: %s", pds_strerror(rv));
        return -1;
    }
    return carry_out(s, &u);
}

/* Carry out what the acknowledgement rule says (host.c's ack_apply). */
static int ack_apply(struct sim *s, const struct pds_ack_out *out)
{
    if (out->timeout != 0 && settle(s, out->timeout, 1) != 0)
        return -1;
    if (out->answer != 0 && settle(s, out->answer, 0) != 0)
        return -1;
    return 0;
}

/* The server's rule as a new server process starts it. */
static void ack_start(struct sim *s)
{
    struct pds_ack_out out;

    pds_ack_close(&s->ack);
    pds_ack_init(&s->ack, PDS_ACK_STANDBY, ACK_TIMEOUT);
    pds_ack_set_standby(&s->ack, 1, &out);
}

/* Before the commit: the batch goes to the standby (the fsyncs overlap). */
static void ship_early(struct sim *s)
{
    struct pds_follow_peer *p;
    struct msg m;
    int i;

    if (s->n_batch == 0 || s->n_batch > MSG_ENTRIES ||
        (p = pds_follow_early(&s->follow, s->batch[0].index,
                              (pds_index)s->n_batch)) == NULL)
        return;
    memset(&m, 0, sizeof(m));
    m.type = M_ENTRIES;
    m.f = 0;
    m.conn = p->conn;
    m.index = s->batch[0].index;
    m.server_last = s->batch[s->n_batch - 1].index;
    m.window_end = m.server_last; /* committed at once */
    for (i = 0; i < s->n_batch; i++)
        m.e[i] = s->batch[i];
    m.n = s->n_batch;
    send_msg(s, &m);
    pds_follow_sent(p, (pds_index)s->n_batch, (uint64_t)s->n_batch);
    if (p->log.next - 1 > s->max_sent)
        s->max_sent = p->log.next - 1;
    s->shipped_early = 1;
}

/*
 * The server's commit fails (a full disk): the core fails every write from
 * the batch on; a standby that got the batch early holds entries the
 * server does not, so its link ends (the daemon's pds__repl_unship).
 */
static int server_commit_fails(struct sim *s)
{
    struct pds_event ev;
    struct pds_update u;
    int rv;

    if (s->n_batch == 0)
        return 0;
    s->faults++;
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_PERSIST_FAILED;
    ev.now = server_now(s);
    ev.u.persist_failed.index = s->batch[0].index;
    ev.u.persist_failed.status = PDS_EFULL;
    ev.u.persist_failed.errmsg = "disk full";
    s->n_batch = 0;
    if (s->shipped_early)
        conn_lost(s, 0);
    s->shipped_early = 0;
    rv = pds_core_step(s->core, &ev, &u);
    if (rv != 0) {
        snprintf(s->why, sizeof(s->why), "core persist failed: %s",
                 pds_strerror(rv));
        return -1;
    }
    return carry_out(s, &u);
}

static int server_commit(struct sim *s)
{
    int i, f;

    if (s->n_batch == 0)
        return 0;
    if (s->durable + (pds_index)s->n_batch > MAX_HIST) {
        s->n_batch = 0; /* the run is long enough; drop (never acked) */
        return 0;
    }
    for (i = 0; i < s->n_batch; i++) {
        pds_index ix = s->batch[i].index;
        if (ix != s->durable + 1) {
            snprintf(s->why, sizeof(s->why), "batch index %llu after %llu",
                     (unsigned long long)ix, (unsigned long long)s->durable);
            return -1;
        }
        s->hist[ix] = s->batch[i];
        s->at[ix] = s->at[ix - 1];
        apply(&s->at[ix], &s->batch[i]);
        s->durable = ix;
    }
    s->n_batch = 0;
    s->shipped_early = 0;
    if (s->durable >= RETAIN)
        s->first = s->durable - RETAIN + 1;
    else
        s->first = 1;
    for (f = 0; f < N_FOLLOWERS; f++)
        ship(s, f);
    {
        struct pds_ack_out out;
        pds_ack_committed(&s->ack, s->durable, 1, (uint64_t)s->step, &out);
        return ack_apply(s, &out);
    }
}

static int server_crash(struct sim *s)
{
    int f;

    s->faults++;
    for (f = 0; f < N_FOLLOWERS; f++)
        conn_lost(s, f);
    pds_core_free(s->core);
    s->core = NULL;
    s->n_batch = 0; /* not durable: lost, even if the standby has it */
    s->shipped_early = 0;
    memset(s->reqs, 0, sizeof(s->reqs));
    ack_start(s);
    if (follow_start(s) != 0) {
        snprintf(s->why, sizeof(s->why), "follow_start");
        return -1;
    }
    s->server_down_until = s->step + 1 + (int)(rnd(s) % 10);
    s->epoch++; /* its restart begins a new term */
    if (core_make(s) != 0) {
        snprintf(s->why, sizeof(s->why), "core_make");
        return -1;
    }
    return 0;
}

static int server_on_msg(struct sim *s, const struct msg *m)
{
    struct pds_follow_out out;

    if (s->sconn[m->f] != m->conn)
        return 0;
    switch (m->type) {
    case M_SYNC: {
        struct pds_sync sy;
        struct pds_log_view v;
        uint8_t pk[PDS_KEY_BYTES];
        memset(&sy, 0, sizeof(sy));
        sy.epoch = m->epoch;
        sy.index = m->index;
        sy.last = m->last;
        sy.is_fresh = 1;
        memset(&v, 0, sizeof(v));
        v.first_index = s->durable > 0 ? s->first : 0;
        v.last_index = s->durable;
        /* The epochs table: the term of each index it ever wrote. */
        if (m->index > 0 && m->index <= s->durable)
            v.index_epoch = s->hist[m->index].epoch;
        if (m->index > 0 && m->index <= s->durable && m->index >= s->first) {
            v.has_entry = 1;
            v.entry_epoch = s->hist[m->index].epoch;
            v.entry_version = s->hist[m->index].v;
        }
        pk_of(m->f, pk);
        if (pds_follow_sync(&s->follow, m->conn, pk, &sy, &v, s->durable,
                            &out) != 0) {
            snprintf(s->why, sizeof(s->why), "follower %d not served", m->f);
            return -1;
        }
        if (out.verdict == PDS_SYNC_REFRESH) {
            make_copy(s, m->f, out.snap_job);
            snap_pump(s, m->f);
            return 0;
        }
        if (out.has_confirmed) {
            struct pds_ack_out ao;
            pds_ack_confirmed(&s->ack, out.confirmed, &ao);
            if (ack_apply(s, &ao) != 0)
                return -1;
        }
        ship(s, m->f);
        return 0;
    }
    case M_ACK:
        if (pds_follow_ack(&s->follow, m->conn, m->index, &out) != 0) {
            snprintf(s->why, sizeof(s->why),
                     "follower %d acknowledged %llu out of range", m->f,
                     (unsigned long long)m->index);
            return -1;
        }
        if (out.has_confirmed) {
            struct pds_ack_out ao;
            pds_ack_confirmed(&s->ack, out.confirmed, &ao);
            if (ack_apply(s, &ao) != 0)
                return -1;
        }
        ship(s, m->f);
        return 0;
    case M_SNAP_ACK:
        if (pds_follow_snap_ack(&s->follow, m->conn, m->seq))
            snap_pump(s, m->f);
        return 0;
    case M_WRITE:
        return server_write(s, m->f, m->seq, m->key, m->owner, m->op,
                            m->is_queued, m->value, &m->v);
    default:
        snprintf(s->why, sizeof(s->why), "server got message %d", m->type);
        return -1;
    }
}

/* ---- Followers ------------------------------------------------------------
 */

static pds_time follower_now(struct sim *s, int f)
{
    return (pds_time)((int64_t)server_now(s) + s->fl[f].clock_skew);
}

static void follower_commit(struct follower *fl);

/* Send the queued writes not sent yet, in order (outbox_pump). */
static void outbox_pump(struct sim *s, int f)
{
    struct follower *fl = &s->fl[f];
    struct msg m;
    int i;

    for (i = 0; i < fl->n_outbox && fl->conn != 0; i++) {
        struct queued *q = &fl->outbox[i];
        if (q->is_sent || q->is_done)
            continue;
        memset(&m, 0, sizeof(m));
        m.type = M_WRITE;
        m.f = f;
        m.conn = fl->conn;
        m.to_server = 1;
        m.seq = q->rid;
        m.key = q->key;
        m.owner = q->owner;
        m.op = q->op;
        m.is_queued = q->is_queued;
        m.value = q->value;
        m.v = q->v;
        send_msg(s, &m);
        q->is_sent = 1;
    }
}

static void follower_connect(struct sim *s, int f)
{
    struct follower *fl = &s->fl[f];
    struct msg m;

    fl->n_held = 0; /* the server sends them again */
    fl->conn = ++s->next_conn;
    s->sconn[f] = fl->conn;
    memset(&m, 0, sizeof(m));
    m.type = M_SYNC;
    m.f = f;
    m.conn = fl->conn;
    m.to_server = 1;
    m.index = fl->pos;
    m.epoch = fl->last_epoch;
    m.last = fl->last;
    send_msg(s, &m);
    /* Replay the outbox in order, with the versions it was made with. */
    outbox_pump(s, f);
}

/* Has the server sent more entries on the connection, not yet delivered? */
static int entries_coming(const struct sim *s, uint64_t conn)
{
    int i;

    for (i = 0; i < s->n_msgs; i++) {
        if (s->msgs[i].conn == conn && !s->msgs[i].to_server &&
            s->msgs[i].type == M_ENTRIES)
            return 1;
    }
    return 0;
}

/* A commit on the follower, flushed: what it applied is durable. */
static void follower_commit(struct follower *fl)
{
    fl->dur = fl->cur;
    fl->dur_pos = fl->pos;
    fl->dur_last = fl->last;
    fl->dur_last_epoch = fl->last_epoch;
}

/* Every commit of a follower is flushed: a crash loses what it held. */
static void follower_crash(struct sim *s, int f)
{
    struct follower *fl = &s->fl[f];
    int i;

    s->faults++;
    conn_lost(s, f);
    fl->cur = fl->dur;
    fl->pos = fl->dur_pos;
    fl->last = fl->dur_last;
    fl->last_epoch = fl->dur_last_epoch;
    /* Answered outbox writes whose removal was not flushed come back. */
    for (i = 0; i < fl->n_outbox; i++) {
        fl->outbox[i].is_sent = 0;
        fl->outbox[i].is_done = 0;
    }
    fl->down_until = s->step + 1 + (int)(rnd(s) % 8);
    fl->crash_until = fl->down_until;
}

static void outbox_flush(struct follower *fl)
{
    int i, j;

    for (i = 0, j = 0; i < fl->n_outbox; i++) {
        if (!fl->outbox[i].is_done)
            fl->outbox[j++] = fl->outbox[i];
    }
    fl->n_outbox = j;
}

/* A follower's ACK (index) or SNAP_ACK (seq) on its connection. */
static void follower_reply(
    struct sim *s, int f, enum msg_type type, pds_index index, uint64_t seq)
{
    struct msg a;

    memset(&a, 0, sizeof(a));
    a.type = type;
    a.f = f;
    a.conn = s->fl[f].conn;
    a.to_server = 1;
    a.index = index;
    a.seq = seq;
    send_msg(s, &a);
}

/*
 * The answer to a client's delete-user (of owner, with version v), done
 * for the client:
 *   - applied (or restamped, or the same delete again): the owner's delete
 *     mark, on the server and in what the standby made durable, is at
 *     least its version (checked from then on, with the acknowledged
 *     writes; no record older than the mark survives, see check());
 *   - lost: to a change of the owner newer than v (a record, or a newer
 *     delete-user's mark) that the server and the standby made durable;
 *   - PDS_ENOTFOUND: the server held no record of the owner when it
 *     decided (checked in carry_out). A delete-user queued offline takes it
 *     as done: when the owner's delete mark was as new as it, from then on
 *     neither the server nor what the standby made durable holds a record
 *     of the owner older than v (the mark it was decided against was
 *     confirmed by the standby). The server writes a queued delete-user
 *     newer than the mark, or of an owner without one, so a queued one
 *     answered so always had such a mark.
 */
static int
owner_answer(struct sim *s, const struct queued *q, const struct msg *m)
{
    const struct state *ss = &s->at[s->durable];
    const struct state *sb = &s->fl[0].dur;
    const struct gone *gs = &ss->g[q->owner], *gb = &sb->g[q->owner];

    if (m->status == 0 && m->outcome == PDS_OUTCOME_SUPERSEDED) {
        if ((owner_newer(ss, q->owner, &q->v) == 0 &&
             !(gs->has && pds_version_cmp(&gs->v, &q->v) > 0)) ||
            (owner_newer(sb, q->owner, &q->v) == 0 &&
             !(gb->has && pds_version_cmp(&gb->v, &q->v) > 0))) {
            snprintf(s->why, sizeof(s->why),
                     "delete-user of %s (hlc %llu/%llu) told it lost, with "
                     "no newer change of the owner kept (server: newer at "
                     "%llu, mark %llu; standby: newer at %llu, mark %llu)",
                     owner_name(q->owner), (unsigned long long)q->v.hlc,
                     (unsigned long long)q->v.node,
                     (unsigned long long)owner_newer(ss, q->owner, &q->v),
                     (unsigned long long)gs->v.hlc,
                     (unsigned long long)owner_newer(sb, q->owner, &q->v),
                     (unsigned long long)gb->v.hlc);
            return -1;
        }
        return 0;
    }
    if (m->status == 0) {
        /* The version it is kept under: its own, or the server's stamp. */
        note_acked(s, -1, q->owner, m->v.hlc != 0 ? m->v : q->v);
        return 0;
    }
    if (m->status == PDS_ENOTFOUND && q->is_queued) {
        if (m->sb_older) {
            /* Done for the client while a failover would bring back
             * records it deleted: the mark was not confirmed. */
            snprintf(s->why, sizeof(s->why),
                     "queued delete-user of %s (hlc %llu/%llu) answered "
                     "\"no such owner\" (done for the client) from the "
                     "owner's delete mark %llu/%llu at %llu, while what the "
                     "standby made durable (at %llu) held records of the "
                     "owner older than it",
                     owner_name(q->owner), (unsigned long long)q->v.hlc,
                     (unsigned long long)q->v.node,
                     (unsigned long long)m->gone[0].v.hlc,
                     (unsigned long long)m->gone[0].v.node,
                     (unsigned long long)m->gone[0].index,
                     (unsigned long long)s->fl[0].dur_pos);
            return -1;
        }
        if (s->n_acked < MAX_ACKED) {
            note_acked(s, -1, q->owner, q->v);
            s->acked[s->n_acked - 1].not_found = 1;
        }
    }
    return 0;
}

static int follower_on_msg(struct sim *s, const struct msg *m)
{
    struct follower *fl = &s->fl[m->f];
    int i;

    if (fl->conn != m->conn)
        return 0;
    switch (m->type) {
    case M_ENTRIES: {
        pds_index last;
        if (fl->staging ||
            pds_repl_accept(fl->pos + (pds_index)fl->n_held, m->index) != 0 ||
            fl->n_held + m->n > WINDOW + MSG_ENTRIES) {
            conn_lost(s, m->f); /* out of order: the daemon closes */
            return 0;
        }
        for (i = 0; i < m->n; i++)
            fl->held[fl->n_held++] = m->e[i];
        last = fl->held[fl->n_held - 1].index;
        /* A catch-up holds entries for one commit, unacknowledged. */
        if (pds_repl_defer_flush(last, m->window_end, (pds_index)fl->n_held,
                                 WINDOW / 2, entries_coming(s, fl->conn)))
            return 0;
        for (i = 0; i < fl->n_held; i++) {
            apply(&fl->cur, &fl->held[i]);
            pds_hlc_observe(&fl->hlc, fl->held[i].v.hlc);
        }
        fl->pos = last;
        fl->last = fl->held[fl->n_held - 1].v;
        fl->last_epoch = fl->held[fl->n_held - 1].epoch;
        fl->n_held = 0;
        follower_commit(fl);
        follower_reply(s, m->f, M_ACK, fl->pos, 0);
        return 0;
    }
    case M_SNAP:
        if (m->seq == 0) {
            fl->n_held = 0; /* a refresh replaces what a catch-up held */
            fl->staging = 1;
            fl->staged_next = 0;
            memset(&fl->staged, 0, sizeof(fl->staged));
        }
        if (!fl->staging || m->seq != fl->staged_next) {
            conn_lost(s, m->f);
            return 0;
        }
        for (i = 0; i < SNAP_KEYS && m->chunk_first + i < N_KEYS; i++)
            fl->staged.r[m->chunk_first + i] = m->chunk[i];
        if (m->is_last) /* the delete marks replace the follower's */
            memcpy(fl->staged.g, m->gone, sizeof(fl->staged.g));
        fl->staged_next++;
        if (!m->is_last) {
            follower_reply(s, m->f, M_SNAP_ACK, 0, m->seq);
            return 0;
        }
        /* Swap in, flushed, at the position of the first chunk. */
        fl->staging = 0;
        fl->cur = fl->staged;
        fl->pos = m->index;
        fl->last.hlc = 0;
        fl->last.node = 0;
        fl->last_epoch = m->epoch;
        for (i = 0; i < N_KEYS; i++) {
            if (fl->cur.r[i].has)
                pds_hlc_observe(&fl->hlc, fl->cur.r[i].v.hlc);
        }
        for (i = 0; i < N_OWNERS; i++) {
            if (fl->cur.g[i].has)
                pds_hlc_observe(&fl->hlc, fl->cur.g[i].v.hlc);
        }
        follower_commit(fl);
        follower_reply(s, m->f, M_ACK, fl->pos, 0);
        return 0;
    case M_WACK:
        for (i = 0; i < fl->n_outbox; i++) {
            struct queued *q = &fl->outbox[i];
            if (q->rid != m->seq || q->is_done)
                continue;
            if (m->status == PDS_ETIMEDOUT) {
                /* Committed, not confirmed by the standby: again. */
                q->is_sent = 0;
                outbox_pump(s, m->f);
                return 0;
            }
            q->is_done = 1;
            if (q->op == PDS_OP_DEL_OWNER)
                return owner_answer(s, q, m);
            if (m->status == 0 && m->outcome == PDS_OUTCOME_SUPERSEDED) {
                /* It lost to a version the server and the standby made
                 * durable (the record's, or a newer delete-user of its
                 * owner), never to one a crash or a failover can still
                 * undo. */
                const struct state *ss = &s->at[s->durable];
                const struct state *sb = &s->fl[0].dur;
                if (!kept(ss, q->key, q->owner, &m->v) ||
                    !kept(sb, q->key, q->owner, &m->v)) {
                    snprintf(s->why, sizeof(s->why),
                             "write of %s told it lost to hlc %llu/%llu, a "
                             "version not kept (server %d %llu/%llu, "
                             "standby %d %llu/%llu)",
                             key_name(q->key), (unsigned long long)m->v.hlc,
                             (unsigned long long)m->v.node, ss->r[q->key].has,
                             (unsigned long long)ss->r[q->key].v.hlc,
                             (unsigned long long)ss->r[q->key].v.node,
                             sb->r[q->key].has,
                             (unsigned long long)sb->r[q->key].v.hlc,
                             (unsigned long long)sb->r[q->key].v.node);
                    return -1;
                }
            }
            if (m->status == 0 && (m->outcome == PDS_OUTCOME_APPLIED ||
                                   m->outcome == PDS_OUTCOME_CLAMPED))
                note_acked(s, q->key, q->owner, m->v);
            else if (m->status == 0 && m->outcome == PDS_OUTCOME_DUPLICATE)
                /* The version it is kept under: its own, or the server's
                 * stamp of a restamped write that came again. */
                note_acked(s, q->key, q->owner, m->v.hlc != 0 ? m->v : q->v);
            return 0;
        }
        return 0;
    default:
        snprintf(s->why, sizeof(s->why), "follower got message %d", m->type);
        return -1;
    }
}

/* A write made on follower f: sent, or queued while offline. */
static void follower_write(struct sim *s, int f)
{
    struct follower *fl = &s->fl[f];
    struct queued *q;

    if (fl->n_outbox == MAX_OUTBOX)
        return; /* the outbox is full: refused */
    q = &fl->outbox[fl->n_outbox++];
    memset(q, 0, sizeof(*q));
    q->rid = ++fl->next_rid;
    q->is_queued = fl->conn == 0;
    q->key = (int)(rnd(s) % N_KEYS);
    q->owner = owner_of(q->key);
    q->op = chance(s, 20) ? PDS_OP_DEL : PDS_OP_PUT;
    q->value = (uint32_t)rnd(s);
    q->v.hlc = pds_hlc_next(&fl->hlc, follower_now(s, f));
    q->v.node = 100 + (pds_node_id)f;
    if (chance(s, DEL_OWNER_PCT)) {
        /* A delete-user, of an owner this copy holds or not (the server
         * may hold it, or may have deleted it already). */
        q->op = PDS_OP_DEL_OWNER;
        q->key = -1;
        outbox_pump(s, f);
        return;
    }
    if (q->op == PDS_OP_DEL &&
        !(fl->cur.r[q->key].has && !fl->cur.r[q->key].is_tomb)) {
        q->op = PDS_OP_PUT; /* nothing to delete here */
    }
    outbox_pump(s, f); /* sent now when connected */
}

/* ---- Invariants -------------------------------------------------------- */

static int on_branch(struct sim *s,
                     pds_index pos,
                     pds_epoch epoch,
                     struct pds_version last)
{
    if (pos > s->durable)
        return 0;
    if (pos == 0)
        return 1;
    /* One term writes an index once: the same epoch there is the same
     * history up to it. */
    return s->hist[pos].epoch == epoch &&
           (last.hlc == 0 || pds_version_cmp(&s->hist[pos].v, &last) == 0);
}

/* A record of st older than (or as old as) its owner's delete mark: the
 * delete-user removed every record before it, and a write older than it
 * that came later lost to it. */
static int
older_than_mark(struct sim *s, const struct state *st, int f, int durable)
{
    int k;

    for (k = 0; k < N_KEYS; k++) {
        const struct rec *r = &st->r[k];
        const struct gone *g = &st->g[k / 2]; /* owner_of(k) */
        if (r->has && g->has && pds_version_cmp(&r->v, &g->v) <= 0) {
            char who[64];
            if (f < 0)
                snprintf(who, sizeof(who), "the server");
            else
                snprintf(who, sizeof(who), "follower %d%s", f,
                         durable ? " (durable)" : "");
            snprintf(
                s->why, sizeof(s->why),
                "%s holds %s at hlc %llu/%llu (index %llu), not newer "
                "than the delete-user of %s at hlc %llu/%llu (index "
                "%llu)",
                who, key_name(k), (unsigned long long)r->v.hlc,
                (unsigned long long)r->v.node, (unsigned long long)r->index,
                owner_name(owner_of(k)), (unsigned long long)g->v.hlc,
                (unsigned long long)g->v.node, (unsigned long long)g->index);
            return -1;
        }
    }
    return 0;
}

/*
 * A delete-user answered PDS_ENOTFOUND is done for the client. What it
 * asked for must hold as for an acknowledged one: no record of the owner
 * older than it, on the server (an older write of the owner that comes
 * later loses to it, whichever comes first) nor in what the standby made
 * durable (the delete that made the owner absent was confirmed by the
 * standby, or a failover would bring the records back with the client's
 * delete-user dropped). Checked when the owner's delete mark was as new as
 * it (owner_answer).
 */
static int not_found_holds(struct sim *s, const struct acked *a)
{
    const struct state *ss = &s->at[s->durable];
    const struct state *sb = &s->fl[0].dur;
    const struct gone *gs = &ss->g[a->owner], *gb = &sb->g[a->owner];
    int on_server = 1, k = owner_older(ss, a->owner, &a->v);

    if (k < 0) {
        on_server = 0;
        k = owner_older(sb, a->owner, &a->v);
    }
    if (k < 0)
        return 0;
    snprintf(s->why, sizeof(s->why),
             "delete-user of %s (hlc %llu/%llu) answered \"no such owner\" "
             "(done for the client), yet %s holds %s at hlc %llu/%llu "
             "(server at %llu, mark %llu/%llu at %llu; standby durable at "
             "%llu, mark %llu/%llu; standby confirmed %llu)",
             owner_name(a->owner), (unsigned long long)a->v.hlc,
             (unsigned long long)a->v.node,
             on_server ? "the server" : "the standby's durable copy",
             key_name(k), (unsigned long long)(on_server ? ss : sb)->r[k].v.hlc,
             (unsigned long long)(on_server ? ss : sb)->r[k].v.node,
             (unsigned long long)s->durable, (unsigned long long)gs->v.hlc,
             (unsigned long long)gs->v.node, (unsigned long long)gs->index,
             (unsigned long long)s->fl[0].dur_pos,
             (unsigned long long)gb->v.hlc, (unsigned long long)gb->v.node,
             (unsigned long long)s->ack.standby_acked);
    return -1;
}

static int check(struct sim *s)
{
    const struct state *ss = &s->at[s->durable];
    const struct state *sb = &s->fl[0].dur;
    int f, i;

    for (f = 0; f < N_FOLLOWERS; f++) {
        struct follower *fl = &s->fl[f];
        if (on_branch(s, fl->pos, fl->last_epoch, fl->last) &&
            !same_state(&fl->cur, &s->at[fl->pos])) {
            snprintf(s->why, sizeof(s->why),
                     "follower %d at %llu does not hold the server's records "
                     "there",
                     f, (unsigned long long)fl->pos);
            return -1;
        }
        if (on_branch(s, fl->dur_pos, fl->dur_last_epoch, fl->dur_last) &&
            !same_state(&fl->dur, &s->at[fl->dur_pos])) {
            snprintf(s->why, sizeof(s->why),
                     "follower %d made durable position %llu without its "
                     "records",
                     f, (unsigned long long)fl->dur_pos);
            return -1;
        }
        if (fl->pos > s->max_sent) {
            snprintf(s->why, sizeof(s->why),
                     "follower %d at %llu, beyond anything sent", f,
                     (unsigned long long)fl->pos);
            return -1;
        }
    }
    /* No record older than its owner's last delete-user survives it, on
     * the server nor in any copy. */
    if (older_than_mark(s, ss, -1, 0) != 0)
        return -1;
    for (f = 0; f < N_FOLLOWERS; f++) {
        if (older_than_mark(s, &s->fl[f].cur, f, 0) != 0 ||
            older_than_mark(s, &s->fl[f].dur, f, 1) != 0)
            return -1;
    }
    /* An acknowledged write stays: its record at its version or a newer
     * one, or a newer delete-user of its owner; an acknowledged
     * delete-user, the owner's delete mark at its version or a newer one
     * (with the check above: no record of the owner older than it). */
    for (i = 0; i < s->n_acked; i++) {
        const struct acked *a = &s->acked[i];
        if (a->key >= 0) {
            /* The common case first: the record is there (this loop is
             * most of the run time). */
            const struct rec *r = &ss->r[a->key], *b = &sb->r[a->key];
            if (r->has && pds_version_cmp(&r->v, &a->v) >= 0 &&
                (!a->standby || (b->has && pds_version_cmp(&b->v, &a->v) >= 0)))
                continue;
        }
        if (a->not_found) {
            if (not_found_holds(s, a) != 0)
                return -1;
            continue;
        }
        if (!kept(ss, a->key, a->owner, &a->v)) {
            if (getenv("PDS_SIM_TRACE") != NULL) {
                pds_index ix;
                fprintf(stderr, "acked %d: key %d owner %d v %llu/%llu\n", i,
                        a->key, a->owner, (unsigned long long)a->v.hlc,
                        (unsigned long long)a->v.node);
                for (ix = 1; ix <= s->durable; ix++) {
                    if (s->hist[ix].owner == a->owner &&
                        (a->key < 0 || s->hist[ix].key == a->key ||
                         s->hist[ix].key < 0))
                        fprintf(stderr, "  %llu op %d key %d v %llu/%llu\n",
                                (unsigned long long)ix, s->hist[ix].op,
                                s->hist[ix].key,
                                (unsigned long long)s->hist[ix].v.hlc,
                                (unsigned long long)s->hist[ix].v.node);
                }
            }
            snprintf(s->why, sizeof(s->why),
                     "acknowledged %s of %s (hlc %llu) missing on the "
                     "server",
                     a->key >= 0 ? "write" : "delete-user",
                     a->key >= 0 ? key_name(a->key) : owner_name(a->owner),
                     (unsigned long long)a->v.hlc);
            return -1;
        }
        if (a->standby && !kept(sb, a->key, a->owner, &a->v)) {
            snprintf(s->why, sizeof(s->why),
                     "acknowledged %s of %s (hlc %llu) not durable on the "
                     "standby",
                     a->key >= 0 ? "write" : "delete-user",
                     a->key >= 0 ? key_name(a->key) : owner_name(a->owner),
                     (unsigned long long)a->v.hlc);
            return -1;
        }
    }
    return 0;
}

/* ---- One step ----------------------------------------------------------- */

static int deliver(struct sim *s)
{
    int i;

    for (i = 0; i < s->n_msgs; i++) {
        struct msg m;
        if (s->msgs[i].at > s->now)
            continue;
        m = s->msgs[i];
        memmove(&s->msgs[i], &s->msgs[i + 1],
                (size_t)(s->n_msgs - i - 1) * sizeof(m));
        s->n_msgs--;
        i--;
        if (m.to_server ? server_on_msg(s, &m) : follower_on_msg(s, &m))
            return -1;
    }
    return 0;
}

static int step(struct sim *s, int faults)
{
    int f, r = (int)(rnd(s) % 100);

    s->now++;
    s->step++;
    if (s->step < s->server_down_until)
        goto net;
    if (faults && r < 2) {
        if (server_crash(s) != 0)
            return -1;
        goto net;
    }
    if (faults && r < 6) {
        f = (int)(rnd(s) % N_FOLLOWERS);
        follower_crash(s, f);
    } else if (faults && r < 12) {
        f = (int)(rnd(s) % N_FOLLOWERS);
        s->faults++;
        conn_lost(s, f);
        s->fl[f].down_until =
            s->step + (int)(rnd(s) % (chance(s, 10) ? 200 : 6));
    } else if (faults && r < 40) {
        f = (int)(rnd(s) % N_FOLLOWERS);
        if (s->step >= s->fl[f].crash_until)
            follower_write(s, f);
    } else if (faults && r < 60) {
        /* A write on the server itself: now and then a delete-user (an
         * administrator's, stamped with the server's clock). */
        int k = (int)(rnd(s) % N_KEYS);
        int rv = chance(s, 3)
                     ? server_write(s, -1, 0, -1, owner_of(k), PDS_OP_DEL_OWNER,
                                    0, 0, NULL)
                     : server_write(s, -1, 0, k, owner_of(k), PDS_OP_PUT, 0,
                                    (uint32_t)rnd(s), NULL);
        if (rv != 0)
            return -1;
    }
    /* The check phase: the standby first, then our own fsync. */
    if (chance(s, 70)) {
        ship_early(s);
        if (faults && chance(s, 3)) {
            if (server_crash(s) != 0) /* after the standby got it */
                return -1;
            goto net;
        }
        if (faults && chance(s, 2)) {
            if (server_commit_fails(s) != 0)
                return -1;
        } else if (server_commit(s) != 0) {
            return -1;
        }
    }
    {
        struct pds_ack_out out;
        pds_ack_tick(&s->ack, pds_core_last_index(s->core), (uint64_t)s->step,
                     &out);
        if (ack_apply(s, &out) != 0)
            return -1;
    }
net:
    for (f = 0; f < N_FOLLOWERS; f++) {
        struct follower *fl = &s->fl[f];
        if (fl->conn == 0 && s->step >= fl->down_until &&
            s->step >= s->server_down_until)
            follower_connect(s, f);
        if (chance(s, 50))
            outbox_flush(fl);
    }
    if (deliver(s) != 0)
        return -1;
    return check(s);
}

static int converged(struct sim *s)
{
    int f;

    if (s->n_batch > 0 || s->n_msgs > 0)
        return 0;
    for (f = 0; f < N_FOLLOWERS; f++) {
        struct follower *fl = &s->fl[f];
        int i;
        if (fl->conn == 0 || fl->pos != s->durable ||
            !same_state(&fl->cur, &s->at[s->durable]))
            return 0;
        for (i = 0; i < fl->n_outbox; i++) {
            if (!fl->outbox[i].is_done)
                return 0;
        }
    }
    return 1;
}

static int run(uint64_t seed, int steps, int *n_faults)
{
    struct sim *s = calloc(1, sizeof(*s));
    int i, rv = 0;

    if (s == NULL)
        return -1;
    s->seed = seed;
    s->rng = seed * 2654435761u + 1;
    ack_start(s);
    if (follow_start(s) != 0) {
        pds_ack_close(&s->ack);
        free(s);
        return -1;
    }
    s->first = 0;
    s->epoch = 1;
    for (i = 0; i < N_FOLLOWERS; i++) {
        /* One clock is hours ahead now and then, or just past the bound
         * (the server's clock catches up with its writes within the
         * run); the others are close. */
        if (chance(s, 15))
            s->fl[i].clock_skew = 3 * 3600 * 1000;
        else if (chance(s, 15))
            s->fl[i].clock_skew = 60000 + (int64_t)(rnd(s) % 5000);
        else
            s->fl[i].clock_skew = (int64_t)(rnd(s) % 200) - 100;
    }
    if (core_make(s) != 0) {
        pds_ack_close(&s->ack);
        pds_follow_close(&s->follow);
        free(s);
        return -1;
    }
    for (i = 0; i < steps && rv == 0; i++)
        rv = step(s, 1);
    /* Faults stop: heal and let everyone converge. */
    for (i = 0; i < N_FOLLOWERS && rv == 0; i++)
        s->fl[i].down_until = 0;
    s->server_down_until = 0;
    for (i = 0; i < 5000 && rv == 0 && !converged(s); i++) {
        rv = step(s, 0);
        if (rv == 0 && s->ack.n_waits == 0 &&
            pds_core_last_index(s->core) < s->durable)
            rv = settle(s,
                        s->ack.standby_acked < s->durable ? s->ack.standby_acked
                                                          : s->durable,
                        0);
    }
    if (rv == 0 && !converged(s) && getenv("PDS_SIM_TRACE") != NULL) {
        int f, q;
        fprintf(stderr, "batch %d msgs %d\n", s->n_batch, s->n_msgs);
        for (f = 0; f < N_FOLLOWERS; f++) {
            fprintf(stderr, "f%d conn %llu pos %llu same %d outbox %d:", f,
                    (unsigned long long)s->fl[f].conn,
                    (unsigned long long)s->fl[f].pos,
                    same_state(&s->fl[f].cur, &s->at[s->durable]),
                    s->fl[f].n_outbox);
            for (q = 0; q < s->fl[f].n_outbox; q++)
                fprintf(stderr, " [rid %llu op %d sent %d done %d]",
                        (unsigned long long)s->fl[f].outbox[q].rid,
                        s->fl[f].outbox[q].op, s->fl[f].outbox[q].is_sent,
                        s->fl[f].outbox[q].is_done);
            fprintf(stderr, "\n");
        }
    }
    if (rv == 0 && !converged(s)) {
        snprintf(
            s->why, sizeof(s->why),
            "no convergence once faults stopped (server at %llu; "
            "followers at %llu %llu %llu)",
            (unsigned long long)s->durable, (unsigned long long)s->fl[0].pos,
            (unsigned long long)s->fl[1].pos, (unsigned long long)s->fl[2].pos);
        rv = -1;
    }
    if (rv != 0)
        fprintf(stderr, "seed %llu step %d: %s\n", (unsigned long long)seed,
                s->step, s->why);
    *n_faults = s->faults;
    pds_core_free(s->core);
    pds_ack_close(&s->ack);
    pds_follow_close(&s->follow);
    free(s);
    return rv;
}

int main(void)
{
    const char *one = getenv("PDS_TEST_SEED");
    const char *n_env = getenv("PDS_SIM_SEEDS");
    const char *steps_env = getenv("PDS_SIM_STEPS");
    uint64_t n_seeds = n_env != NULL ? strtoull(n_env, NULL, 10) : 2000;
    int steps = steps_env != NULL ? atoi(steps_env) : 1500;
    uint64_t seed, first = 1, failed = 0, faults = 0;
    int nf = 0;

    if (one != NULL) {
        first = strtoull(one, NULL, 10);
        n_seeds = 1;
    }
    for (seed = first; seed < first + n_seeds; seed++) {
        if (run(seed, steps, &nf) != 0)
            failed++;
        faults += (uint64_t)nf;
    }
    printf("sim_repl: %llu seeds x %d steps, %llu faults injected, %llu "
           "failed\n",
           (unsigned long long)n_seeds, steps, (unsigned long long)faults,
           (unsigned long long)failed);
    return failed == 0 ? 0 : 1;
}
