/*
 * sim_member.c - the server's client accounting under random faults.
 *
 * One server core and N nodes in one process, over a seeded fake network
 * with connection loss, lost and duplicated joins, stale connections,
 * administrator stop/start, clients leaving, and server crashes (the core
 * is rebuilt from the member rows it asked to store, which are the only
 * durable state). After every step the invariants are checked:
 *
 *   1. the core's member table equals the stored rows (but for who is
 *      connected, which is never stored);
 *   2. no node appears twice, and no node is counted twice;
 *   3. the machines counted never exceed max_machines;
 *   4. a stopped node is never welcomed;
 *   5. no node is enrolled without a valid join-secret proof;
 *   6. a member the core believes connected has that connection open.
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

#define N_NODES 12
#define MAX_MACHINES 6
#define MAX_CONNS 256

struct node {
    uint8_t pk[PDS_KEY_BYTES];
    int knows_secret;
    uint64_t conn; /* the node's current connection, 0 when none */
};

struct sim {
    uint64_t rng;
    struct pds_core *core;
    struct node nodes[N_NODES];
    /* Durable rows: what the core asked to store, by node index. */
    struct pds_member rows[N_NODES];
    int has_row[N_NODES];
    /* Open connections on the server side: conn id -> node index. */
    int conn_node[MAX_CONNS];
    int conn_open[MAX_CONNS];
    uint64_t next_conn;
    pds_time now;
    uint64_t seed;
    int step;
    char why[256];
};

static uint64_t rnd(struct sim *s)
{
    return sim_xorshift(&s->rng);
}

static int node_of(struct sim *s, const uint8_t *pk)
{
    int i;

    for (i = 0; i < N_NODES; i++) {
        if (memcmp(s->nodes[i].pk, pk, PDS_KEY_BYTES) == 0)
            return i;
    }
    return -1;
}

static int new_core(struct sim *s)
{
    struct pds_core_config cfg;
    int i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.node_id = 1;
    cfg.epoch = 1;
    cfg.role = PDS_ROLE_SERVER;
    cfg.max_machines = MAX_MACHINES;
    pds_limits_default(&cfg.limits);
    if (pds_core_new(&cfg, &s->core) != 0)
        return -1;
    for (i = 0; i < N_NODES; i++) {
        if (s->has_row[i] && pds_core_load_member(s->core, &s->rows[i]) != 0)
            return -1;
    }
    return 0;
}

static int fail(struct sim *s, const char *why)
{
    snprintf(s->why, sizeof(s->why), "%s", why);
    return -1;
}

/* Carry out an update as the daemon would, and check what it says. */
static int apply(struct sim *s, const struct pds_update *u)
{
    size_t i;

    for (i = 0; i < u->n_members; i++) {
        int k = node_of(s, u->members[i].pk);
        if (k < 0)
            return fail(s, "a row for an unknown key");
        s->rows[k] = u->members[i];
        s->has_row[k] = 1;
    }
    for (i = 0; i < u->n_disconnect; i++) {
        uint64_t c = u->disconnect[i];
        if (c < MAX_CONNS && s->conn_open[c]) {
            int k = s->conn_node[c];
            s->conn_open[c] = 0;
            if (s->nodes[k].conn == c)
                s->nodes[k].conn = 0;
        }
    }
    for (i = 0; i < u->n_joins; i++) {
        const struct pds_join_reply *r = &u->joins[i];
        if (r->conn >= MAX_CONNS || !s->conn_open[r->conn])
            continue;
        if (r->status != 0) {
            int k = s->conn_node[r->conn];
            s->conn_open[r->conn] = 0; /* refused: closed */
            if (s->nodes[k].conn == r->conn)
                s->nodes[k].conn = 0;
        }
    }
    return 0;
}

static int step_core(struct sim *s, struct pds_event *ev)
{
    struct pds_update u;

    ev->now = s->now;
    if (pds_core_step(s->core, ev, &u) != 0)
        return fail(s, "the core refused an event");
    /* Invariant 4 and 5, on the answers themselves. */
    if (ev->type == PDS_EVENT_PEER_JOIN && u.n_joins == 1 &&
        u.joins[0].status == 0) {
        int k = node_of(s, ev->u.join.pk);
        if (s->has_row[k] && s->rows[k].state == PDS_MEMBER_STOPPED)
            return fail(s, "a stopped node was welcomed");
        if (!s->has_row[k] && ev->u.join.proof != 1)
            return fail(s, "a node was enrolled without a valid proof");
    }
    return apply(s, &u);
}

static int check(struct sim *s)
{
    const struct pds_member *m;
    size_t n;
    size_t i, j;
    size_t counted = 1;

    m = pds_core_members(s->core, &n);
    for (i = 0; i < n; i++) {
        int k = node_of(s, m[i].pk);
        struct pds_member a = m[i], b;
        if (k < 0)
            return fail(s, "a member with an unknown key");
        for (j = i + 1; j < n; j++) {
            if (memcmp(m[i].pk, m[j].pk, PDS_KEY_BYTES) == 0)
                return fail(s, "a node appears twice");
        }
        if (!s->has_row[k])
            return fail(s, "a member was never stored");
        b = s->rows[k];
        a.is_connected = b.is_connected = 0;
        if (memcmp(&a, &b, sizeof(a)) != 0)
            return fail(s, "a member differs from its stored row");
        if (m[i].state == PDS_MEMBER_ENROLLED)
            counted++;
        if (m[i].is_connected) {
            uint64_t c = s->nodes[k].conn;
            if (c == 0 || !s->conn_open[c])
                return fail(s, "a member is connected without a connection");
            if (m[i].state == PDS_MEMBER_STOPPED)
                return fail(s, "a stopped member is connected");
        }
    }
    for (i = 0; i < N_NODES; i++) {
        if (s->has_row[i] && node_of(s, s->rows[i].pk) != (int)i)
            return fail(s, "stored rows are mixed up");
    }
    if (counted != pds_core_n_machines(s->core))
        return fail(s, "machines counted twice or not at all");
    if (counted > MAX_MACHINES)
        return fail(s, "more machines than max_machines");
    return 0;
}

static int one_step(struct sim *s)
{
    struct pds_event ev;
    int k = (int)(rnd(s) % N_NODES);
    struct node *nd = &s->nodes[k];
    uint64_t r = rnd(s) % 100;
    char target[32];

    memset(&ev, 0, sizeof(ev));
    s->now += 1 + rnd(s) % 50;
    if (r < 35) {
        /* A node (re)connects and joins; a stale old connection may still
         * be open on the server. */
        uint64_t c = ++s->next_conn;
        if (c >= MAX_CONNS)
            return 0;
        s->conn_open[c] = 1;
        s->conn_node[c] = k;
        nd->conn = c;
        ev.type = PDS_EVENT_PEER_JOIN;
        ev.u.join.conn = c;
        memcpy(ev.u.join.pk, nd->pk, PDS_KEY_BYTES);
        /* Proof: right secret, wrong secret, or none. */
        ev.u.join.proof = nd->knows_secret ? (rnd(s) % 4 == 0 ? 0 : 1)
                                           : (rnd(s) % 2 ? -1 : 0);
        ev.u.join.name = "node";
        ev.u.join.address = "sim";
        return step_core(s, &ev);
    }
    if (r < 55) {
        /* A connection ends (loss, crash of the node, timeout). */
        uint64_t c = nd->conn;
        if (c == 0 || !s->conn_open[c])
            return 0;
        s->conn_open[c] = 0;
        nd->conn = 0;
        ev.type = PDS_EVENT_PEER_LEFT;
        ev.u.left.conn = c;
        memcpy(ev.u.left.pk, nd->pk, PDS_KEY_BYTES);
        ev.u.left.error = "lost";
        return step_core(s, &ev);
    }
    if (r < 62) {
        /* A stale connection's close arrives late (after a reconnect). */
        uint64_t c = 1 + rnd(s) % (s->next_conn + 1);
        if (c >= MAX_CONNS || s->conn_open[c] || s->next_conn == 0)
            return 0;
        ev.type = PDS_EVENT_PEER_LEFT;
        ev.u.left.conn = c;
        memcpy(ev.u.left.pk, s->nodes[s->conn_node[c]].pk, PDS_KEY_BYTES);
        ev.u.left.error = "late close";
        return step_core(s, &ev);
    }
    if (r < 80) {
        /* The administrator stops or starts a client by id. */
        snprintf(target, sizeof(target), "%016llx",
                 (unsigned long long)pds_member_id(nd->pk));
        ev.type = PDS_EVENT_MEMBER_ADMIN;
        ev.u.member_admin.req = 1;
        ev.u.member_admin.op =
            rnd(s) % 2 ? PDS_MEMBER_OP_STOP : PDS_MEMBER_OP_START;
        ev.u.member_admin.target = target;
        return step_core(s, &ev);
    }
    if (r < 85) {
        /* The server crashes and restarts from its stored rows: every
         * connection is gone. */
        size_t c;
        pds_core_free(s->core);
        s->core = NULL;
        for (c = 0; c < MAX_CONNS; c++)
            s->conn_open[c] = 0;
        for (c = 0; c < N_NODES; c++)
            s->nodes[c].conn = 0;
        return new_core(s) == 0 ? 0 : fail(s, "restart failed");
    }
    /* Time passes. */
    ev.type = PDS_EVENT_TICK;
    return step_core(s, &ev);
}

static int run(uint64_t seed, int steps)
{
    struct sim s;
    int i;

    memset(&s, 0, sizeof(s));
    s.seed = seed;
    s.rng = seed * 2654435761u + 0x9e3779b97f4a7c15ull;
    s.now = 1000;
    for (i = 0; i < N_NODES; i++) {
        memset(s.nodes[i].pk, 0, PDS_KEY_BYTES);
        s.nodes[i].pk[0] = (uint8_t)(i + 1);
        s.nodes[i].pk[31] = (uint8_t)(seed & 0xff);
        s.nodes[i].knows_secret = i < N_NODES - 3; /* 3 outsiders */
    }
    if (new_core(&s) != 0) {
        fprintf(stderr, "seed %llu: out of memory\n", (unsigned long long)seed);
        return -1;
    }
    for (s.step = 0; s.step < steps; s.step++) {
        if (one_step(&s) != 0 || check(&s) != 0) {
            fprintf(stderr,
                    "seed %llu step %d: %s (rerun with PDS_TEST_SEED=%llu)\n",
                    (unsigned long long)seed, s.step, s.why,
                    (unsigned long long)seed);
            pds_core_free(s.core);
            return -1;
        }
    }
    pds_core_free(s.core);
    return 0;
}

int main(void)
{
    const char *one = getenv("PDS_TEST_SEED");
    const char *n_env = getenv("PDS_SIM_SEEDS");
    const char *steps_env = getenv("PDS_SIM_STEPS");
    int n_seeds = n_env != NULL ? atoi(n_env) : 2000;
    int steps = steps_env != NULL ? atoi(steps_env) : 300;
    int n_pass = 0;
    int n_fail = 0;
    int i;

    if (one != NULL) {
        int rv = run(strtoull(one, NULL, 10), steps);
        printf("%d passed, %d failed\n", rv == 0, rv != 0);
        return rv == 0 ? 0 : 1;
    }
    for (i = 1; i <= n_seeds; i++) {
        if (run((uint64_t)i, steps) == 0)
            n_pass++;
        else
            n_fail++;
    }
    printf("%d seeds x %d steps: %d passed, %d failed\n", n_seeds, steps,
           n_pass, n_fail);
    printf("%d passed, %d failed\n", n_fail == 0 ? 1 : 0, n_fail != 0);
    return n_fail == 0 ? 0 : 1;
}
