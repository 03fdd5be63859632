/*
 * test_core.c - unit tests of core/: HLC, last-writer-wins order, the
 * encodings, key validation and the state machine.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pds.h"
#include "test.h"

TEST(hlc_monotonic_across_clock_steps)
{
    const pds_time T0 = 1700000000000ull;
    pds_hlc last = 0;
    pds_hlc prev;
    pds_hlc h;
    int i;

    prev = pds_hlc_next(&last, T0);
    CHECK_EQ(PDS_HLC_MS(prev), T0);
    CHECK_EQ(PDS_HLC_LOGICAL(prev), 0);
    /* Same millisecond: the logical counter moves. */
    h = pds_hlc_next(&last, T0);
    CHECK(h > prev);
    CHECK_EQ(PDS_HLC_LOGICAL(h), 1);
    prev = h;
    /* The wall clock steps back by an hour: never go back. */
    for (i = 0; i < 1000; i++) {
        h = pds_hlc_next(&last, T0 - 3600000 + (pds_time)i);
        CHECK(h > prev);
        prev = h;
    }
    CHECK_EQ(PDS_HLC_MS(prev), T0);
    /* The wall clock moves forward: follow it, logical resets. */
    h = pds_hlc_next(&last, T0 + 5000);
    CHECK(h > prev);
    CHECK_EQ(PDS_HLC_MS(h), T0 + 5000);
    CHECK_EQ(PDS_HLC_LOGICAL(h), 0);
}

TEST(hlc_logical_overflow_carries)
{
    pds_hlc last = PDS_HLC_MAKE(7, 0xffff);
    pds_hlc h = pds_hlc_next(&last, 7);

    CHECK(h > PDS_HLC_MAKE(7, 0xffff));
    CHECK_EQ(PDS_HLC_MS(h), 8);
}

TEST(hlc_observe_remote)
{
    pds_hlc last = PDS_HLC_MAKE(100, 0);
    pds_hlc h;

    pds_hlc_observe(&last, PDS_HLC_MAKE(200, 5));
    h = pds_hlc_next(&last, 150);
    CHECK(h > PDS_HLC_MAKE(200, 5));
    pds_hlc_observe(&last, PDS_HLC_MAKE(10, 0));
    CHECK(pds_hlc_next(&last, 150) > h);
}

TEST(lww_order)
{
    struct pds_version a = {PDS_HLC_MAKE(10, 0), 5};
    struct pds_version b = {PDS_HLC_MAKE(10, 1), 1};
    struct pds_version c = {PDS_HLC_MAKE(10, 1), 2};

    CHECK(pds_version_cmp(&a, &b) < 0);
    CHECK(pds_version_cmp(&b, &a) > 0);
    CHECK(pds_version_cmp(&b, &c) < 0); /* same clock: node id decides */
    CHECK(pds_version_cmp(&c, &c) == 0);
}

TEST(reckey_round_trip)
{
    struct pds_key k = {PDS_SCOPE_GROUP, "sales", 5, "buttons.shared", 14};
    struct pds_key out;
    uint8_t buf[PDS_RECKEY_MAX];
    size_t n = pds_reckey_encode(&k, buf);

    CHECK_EQ(n, 2 + 5 + 14);
    CHECK_EQ(pds_reckey_decode(buf, n, &out), 0);
    CHECK_EQ(out.scope, PDS_SCOPE_GROUP);
    CHECK_EQ(out.owner_len, 5);
    CHECK(memcmp(out.owner, "sales", 5) == 0);
    CHECK_EQ(out.item_len, 14);
    CHECK(memcmp(out.item, "buttons.shared", 14) == 0);
    /* Malformed keys are errors, not crashes. */
    CHECK_EQ(pds_reckey_decode(buf, 2, &out), PDS_ECORRUPT);
    buf[0] = 9;
    CHECK_EQ(pds_reckey_decode(buf, n, &out), PDS_ECORRUPT);
    buf[0] = 1;
    buf[1 + 5] = 'x'; /* no separator left */
    CHECK_EQ(pds_reckey_decode(buf, n, &out), PDS_ECORRUPT);
}

TEST(record_round_trip)
{
    struct pds_record r = {
        {PDS_HLC_MAKE(42, 3), 77}, 9, 0, (const uint8_t *)"hello", 5};
    struct pds_record out;
    uint8_t buf[64];
    size_t n = pds_record_encode(&r, buf);

    CHECK_EQ(n, PDS_RECORD_HDR + 5);
    CHECK_EQ(pds_record_decode(buf, n, &out), 0);
    CHECK_EQ(out.version.hlc, r.version.hlc);
    CHECK_EQ(out.version.node, 77);
    CHECK_EQ(out.index, 9);
    CHECK_EQ(out.is_tombstone, 0);
    CHECK_EQ(out.value_len, 5);
    CHECK(memcmp(out.value, "hello", 5) == 0);

    r.is_tombstone = 1;
    n = pds_record_encode(&r, buf);
    CHECK_EQ(n, PDS_RECORD_HDR);
    CHECK_EQ(pds_record_decode(buf, n, &out), 0);
    CHECK_EQ(out.is_tombstone, 1);
    CHECK_EQ(out.value_len, 0);
    CHECK_EQ(pds_record_decode(buf, 10, &out), PDS_ECORRUPT);
    buf[24] = 7;
    CHECK_EQ(pds_record_decode(buf, n, &out), PDS_ECORRUPT);
}

TEST(entry_round_trip)
{
    struct pds_entry e;
    struct pds_entry out;
    uint8_t buf[256];
    size_t n;
    size_t cut;

    memset(&e, 0, sizeof(e));
    e.epoch = 3;
    e.index = 123456789012ull;
    e.op = PDS_OP_PUT;
    e.key.scope = PDS_SCOPE_USER;
    e.key.owner = "alice";
    e.key.owner_len = 5;
    e.key.item = "ui.language";
    e.key.item_len = 11;
    e.version.hlc = PDS_HLC_MAKE(1700000000000ull, 17);
    e.version.node = 0xdeadbeefcafef00dull;
    e.value = (const uint8_t *)"en-GB";
    e.value_len = 5;
    n = pds_entry_encode(&e, buf);
    CHECK_EQ(n, pds_entry_size(&e));
    CHECK_EQ(n, PDS_ENTRY_HDR + 5 + 11 + 5);
    CHECK_EQ(pds_entry_decode(buf, n, &out), 0);
    CHECK_EQ(out.epoch, 3);
    CHECK_EQ(out.index, e.index);
    CHECK_EQ(out.op, PDS_OP_PUT);
    CHECK_EQ(out.version.hlc, e.version.hlc);
    CHECK_EQ(out.version.node, e.version.node);
    CHECK(memcmp(out.key.owner, "alice", 5) == 0);
    CHECK(memcmp(out.key.item, "ui.language", 11) == 0);
    CHECK(memcmp(out.value, "en-GB", 5) == 0);

    /* Every truncation is refused. */
    for (cut = 0; cut < n; cut++)
        CHECK_EQ(pds_entry_decode(buf, cut, &out), PDS_ECORRUPT);
    /* A wrong format byte, op or scope is refused. */
    buf[0] = 2;
    CHECK_EQ(pds_entry_decode(buf, n, &out), PDS_ECORRUPT);
    buf[0] = PDS_ENTRY_FORMAT;
    buf[1] = 9;
    CHECK_EQ(pds_entry_decode(buf, n, &out), PDS_ECORRUPT);
    buf[1] = PDS_OP_DEL; /* a delete may not carry a value */
    CHECK_EQ(pds_entry_decode(buf, n, &out), PDS_ECORRUPT);

    /* SCOPE carries one byte: 0 shared, 1 device; anything else is bad. */
    e.op = PDS_OP_SCOPE;
    e.value = (const uint8_t *)"\001";
    e.value_len = 1;
    n = pds_entry_encode(&e, buf);
    CHECK_EQ(pds_entry_decode(buf, n, &out), 0);
    CHECK_EQ(out.op, PDS_OP_SCOPE);
    CHECK_EQ(out.value[0], 1);
    buf[n - 1] = 2;
    CHECK_EQ(pds_entry_decode(buf, n, &out), PDS_ECORRUPT);

    /* DEL_OWNER has no item. */
    e.op = PDS_OP_DEL_OWNER;
    e.key.item_len = 0;
    e.value_len = 0;
    n = pds_entry_encode(&e, buf);
    CHECK_EQ(pds_entry_decode(buf, n, &out), 0);
    CHECK_EQ(out.op, PDS_OP_DEL_OWNER);
    CHECK_EQ(out.key.item_len, 0);
}

static int validate(const char *owner, const char *item, char *errmsg)
{
    struct pds_limits lim;
    struct pds_key k = {PDS_SCOPE_USER, owner, strlen(owner), item,
                        strlen(item)};

    pds_limits_default(&lim);
    return pds_key_validate(&lim, &k, errmsg);
}

TEST(key_validation)
{
    char errmsg[PDS_ERRMSG_SIZE];
    char long_owner[80];

    CHECK_EQ(validate("alice", "ui.language", errmsg), 0);
    CHECK_EQ(validate("bob.smith@example", "addressbook.personal", errmsg), 0);
    CHECK_EQ(validate("", "x", errmsg), PDS_EBADNAME);
    CHECK_EQ(validate("al ice", "x", errmsg), PDS_EBADNAME);
    CHECK(strstr(errmsg, "owner_chars") != NULL);
    CHECK_EQ(validate(".alice", "x", errmsg), PDS_EBADNAME);
    CHECK_EQ(validate("alice", "ui..language", errmsg), PDS_EBADNAME);
    CHECK_EQ(validate("alice", ".ui", errmsg), PDS_EBADNAME);
    CHECK_EQ(validate("alice", "ui.", errmsg), PDS_EBADNAME);
    CHECK_EQ(validate("alice", "ui/lang", errmsg), PDS_EBADNAME);
    memset(long_owner, 'a', sizeof(long_owner) - 1);
    long_owner[sizeof(long_owner) - 1] = '\0';
    CHECK_EQ(validate(long_owner, "x", errmsg), PDS_EBADNAME);
    CHECK(strstr(errmsg, "max_owner_len") != NULL);
}

TEST(errors_have_text)
{
    CHECK_STR(pds_strerror(PDS_ENOTFOUND), "not found");
    CHECK_STR(pds_strerror(PDS_ENOSPC), "storage budget exhausted");
    CHECK_STR(pds_errname(PDS_ELIMIT), "ELIMIT");
    CHECK_STR(pds_strerror(-1), "unknown error");
    CHECK_STR(pds_strerror(0), "success");
}

/* ---- The state machine ------------------------------------------------ */

static struct pds_core *new_core(uint32_t max_users,
                                 enum pds_user_policy policy)
{
    struct pds_core_config cfg;
    struct pds_core *core = NULL;

    memset(&cfg, 0, sizeof(cfg));
    cfg.node_id = 42;
    cfg.epoch = 1;
    cfg.last_index = 0;
    pds_limits_default(&cfg.limits);
    cfg.limits.max_users = max_users;
    cfg.limits.user_policy = policy;
    if (pds_core_new(&cfg, &core) != 0)
        return NULL;
    return core;
}

/* The event of a put of owner/item (a user's), made on this node. */
static void put_event(struct pds_event *ev,
                      uint64_t req,
                      const char *owner,
                      const char *item,
                      const char *value,
                      pds_time now)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = PDS_EVENT_WRITE;
    ev->now = now;
    ev->u.write.req = req;
    ev->u.write.op = PDS_OP_PUT;
    ev->u.write.key.scope = PDS_SCOPE_USER;
    ev->u.write.key.owner = owner;
    ev->u.write.key.owner_len = strlen(owner);
    ev->u.write.key.item = item;
    ev->u.write.key.item_len = strlen(item);
    ev->u.write.value = (const uint8_t *)value;
    ev->u.write.value_len = (uint32_t)strlen(value);
}

static int put(struct pds_core *core,
               uint64_t req,
               const char *owner,
               const char *item,
               const char *value,
               pds_time now,
               struct pds_update *u)
{
    struct pds_event ev;

    put_event(&ev, req, owner, item, value, now);
    return pds_core_step(core, &ev, u);
}

static int
persisted(struct pds_core *core, pds_index index, struct pds_update *u)
{
    struct pds_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_PERSISTED;
    ev.u.persisted.index = index;
    return pds_core_step(core, &ev, u);
}

/* The event of a client's write of alice/ui.language with its own
 * version, against the held one (current may be NULL). */
static void client_put_event(struct pds_event *ev,
                             uint64_t req,
                             const char *value,
                             pds_hlc hlc,
                             pds_node_id node,
                             const struct pds_version *current,
                             pds_time now)
{
    put_event(ev, req, "alice", "ui.language", value, now);
    ev->u.write.has_origin = 1;
    ev->u.write.origin.hlc = hlc;
    ev->u.write.origin.node = node;
    if (current != NULL) {
        ev->u.write.has_current = 1;
        ev->u.write.current = *current;
        ev->u.write.exists = 1;
    }
}

/* A client's write with its own version, against the held one. */
static int client_put(struct pds_core *core,
                      uint64_t req,
                      const char *value,
                      pds_hlc hlc,
                      pds_node_id node,
                      const struct pds_version *current,
                      pds_time now,
                      struct pds_update *u)
{
    struct pds_event ev;

    client_put_event(&ev, req, value, hlc, node, current, now);
    return pds_core_step(core, &ev, u);
}

TEST(core_client_writes_last_writer_wins_by_their_own_version)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_version held = {PDS_HLC_MAKE(5000, 0), 7};
    struct pds_update u;
    pds_hlc next;

    CHECK(core != NULL);
    /* Newer than the held version: applied with the client's version. */
    CHECK_EQ(
        client_put(core, 1, "de", PDS_HLC_MAKE(6000, 0), 9, &held, 6500, &u),
        0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.entries[0].version.hlc, PDS_HLC_MAKE(6000, 0));
    CHECK_EQ(u.entries[0].version.node, 9);
    CHECK_EQ(persisted(core, 1, &u), 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_APPLIED);
    /* The server's own next write is newer still. */
    next = pds_core_stamp(core, 10).hlc;
    CHECK(next > PDS_HLC_MAKE(6000, 0));
    /* Older: answered at once, nothing logged, counted. */
    held.hlc = PDS_HLC_MAKE(6000, 0);
    held.node = 9;
    CHECK_EQ(
        client_put(core, 2, "fr", PDS_HLC_MAKE(5500, 0), 3, &held, 6600, &u),
        0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_SUPERSEDED);
    CHECK_EQ(pds_core_n_superseded(core), 1);
    /* Same clock, lower node id: loses too (node breaks the tie). */
    CHECK_EQ(
        client_put(core, 3, "fr", PDS_HLC_MAKE(6000, 0), 8, &held, 6600, &u),
        0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_SUPERSEDED);
    /* The very same version (a replayed write) held durably: a duplicate,
     * not a loss, answered at once with where it is; no second entry. */
    CHECK_EQ(
        client_put(core, 4, "de", PDS_HLC_MAKE(6000, 0), 9, &held, 6600, &u),
        0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_DUPLICATE);
    CHECK_EQ(u.replies[0].version.hlc, PDS_HLC_MAKE(6000, 0));
    CHECK_EQ(pds_core_n_superseded(core), 2);
    {
        /* Held, but not confirmed by the standby yet: not decided. */
        struct pds_event ev;
        client_put_event(&ev, 5, "de", PDS_HLC_MAKE(6000, 0), 9, &held, 6600);
        ev.u.write.current_index = 7;
        ev.u.write.current_epoch = 2;
        ev.u.write.trusted = 6;
        CHECK_EQ(pds_core_step(core, &ev, &u), 0);
        CHECK_EQ(u.n_entries, 0);
        CHECK_EQ(u.n_replies, 1);
        CHECK_EQ(u.replies[0].status, PDS_ETIMEDOUT);
        ev.u.write.req = 6;
        ev.u.write.trusted = 7;
        CHECK_EQ(pds_core_step(core, &ev, &u), 0);
        CHECK_EQ(u.n_entries, 0);
        CHECK_EQ(u.replies[0].status, 0);
        CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_DUPLICATE);
        CHECK_EQ(u.replies[0].epoch, 2);
        CHECK_EQ(u.replies[0].index, 7);
    }
    CHECK_EQ(pds_core_n_superseded(core), 2);
    pds_core_free(core);
}

/*
 * In standby acknowledgement mode a write that loses to a version the
 * standby has not confirmed (its own writer got a timeout) is not told it
 * lost: a failover could still undo the winner. It times out and comes
 * again; once the standby confirmed the winner, it is told it lost.
 */
TEST(core_loser_to_an_unconfirmed_version_is_not_decided)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_version held = {PDS_HLC_MAKE(6000, 0), 9};
    struct pds_event ev;
    struct pds_update u;

    CHECK(core != NULL);
    client_put_event(&ev, 1, "fr", PDS_HLC_MAKE(5500, 0), 3, &held, 7000);
    ev.u.write.current_index = 5;
    ev.u.write.trusted = 4;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].req, 1);
    CHECK_EQ(u.replies[0].status, PDS_ETIMEDOUT);
    CHECK(strstr(u.replies[0].errmsg, "not confirmed") != NULL ||
          strstr(u.replies[0].errmsg, "has not") != NULL);
    CHECK_EQ(pds_core_n_superseded(core), 0);
    /* The standby confirmed it: now the write is told it lost. */
    ev.u.write.req = 2;
    ev.u.write.trusted = 5;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_SUPERSEDED);
    CHECK_EQ(pds_core_n_superseded(core), 1);
    pds_core_free(core);
}

/* A client's delete-user of alice made at ms by node. */
static void
client_delete_user_event(struct pds_event *ev, uint64_t req, uint64_t ms)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = PDS_EVENT_WRITE;
    ev->now = 10000;
    ev->u.write.req = req;
    ev->u.write.op = PDS_OP_DEL_OWNER;
    ev->u.write.key.scope = PDS_SCOPE_USER;
    ev->u.write.key.owner = "alice";
    ev->u.write.key.owner_len = 5;
    ev->u.write.key.item = "";
    ev->u.write.has_origin = 1;
    ev->u.write.origin.hlc = PDS_HLC_MAKE(ms, 0);
    ev->u.write.origin.node = 8;
    ev->u.write.trusted = (pds_index)-1;
}

/*
 * A client's delete-user is a write like the others: it loses to any
 * change of the owner made after it (and deletes nothing then); one made
 * after every change is stamped with its own version, so a write of the
 * owner made after it still wins over it, and one made before it loses.
 */
/* The owner's delete mark the host found for a write: made at ms by node,
 * at log index. */
static void
mark_gone(struct pds_event *ev, uint64_t ms, pds_node_id node, pds_index index)
{
    ev->u.write.has_gone = 1;
    ev->u.write.gone.hlc = PDS_HLC_MAKE(ms, 0);
    ev->u.write.gone.node = node;
    ev->u.write.gone_index = index;
}

TEST(core_delete_user_by_last_writer_wins)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_version held = {PDS_HLC_MAKE(3000, 0), 9};
    struct pds_event ev;
    struct pds_update u;

    CHECK(core != NULL);
    CHECK_EQ(
        client_put(core, 1, "en", PDS_HLC_MAKE(3000, 0), 9, NULL, 10000, &u),
        0);
    CHECK_EQ(persisted(core, 1, &u), 0);
    /* Made at 2000, before alice/ui.language@3000 (index 1): lost. */
    client_delete_user_event(&ev, 2, 2000);
    ev.u.write.owner_newer = 1;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_SUPERSEDED);
    CHECK_EQ(pds_core_n_users(core), 1);
    /* ... not decided while the standby has not confirmed that change. */
    ev.u.write.req = 3;
    ev.u.write.trusted = 0;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].status, PDS_ETIMEDOUT);
    /* An older put still loses to the durable 3000. */
    CHECK_EQ(
        client_put(core, 4, "fr", PDS_HLC_MAKE(2500, 0), 7, &held, 10000, &u),
        0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_SUPERSEDED);
    /* Made at 4000, after everything: applied with its own version. */
    client_delete_user_event(&ev, 5, 4000);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.entries[0].op, PDS_OP_DEL_OWNER);
    CHECK_EQ(u.entries[0].version.hlc, PDS_HLC_MAKE(4000, 0));
    CHECK_EQ(pds_core_n_users(core), 0);
    /* While it is pending, a delete-user older than it is not decided. */
    client_delete_user_event(&ev, 6, 3500);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].status, PDS_ETIMEDOUT);
    /* A put made after the delete-user wins over it; one made before
     * loses to it. */
    CHECK_EQ(
        client_put(core, 7, "de", PDS_HLC_MAKE(4500, 0), 7, &held, 10000, &u),
        0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(
        client_put(core, 8, "it", PDS_HLC_MAKE(3900, 0), 7, &held, 10000, &u),
        0);
    CHECK_EQ(u.n_entries, 0);
    pds_core_free(core);
}

/* A delete-user queued offline for an owner deleted before it, newer than
 * that delete, is still written: it moves the owner's delete mark on, so
 * that a write older than it loses to it whichever of the two reaches the
 * server first. The same delete again is answered from the mark (not
 * decided while the standby has not confirmed it); one older than the mark,
 * or made online, is "no such user". One of an owner never held leaves a
 * mark too. */
TEST(core_delete_user_of_a_deleted_owner_moves_the_mark_on)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_event ev;
    struct pds_update u;
    pds_index first;

    CHECK(core != NULL);
    /* alice was deleted at 1000 (index 4); a delete made online at 2000:
     * "no user". */
    client_delete_user_event(&ev, 1, 2000);
    mark_gone(&ev, 1000, 7, 4);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].status, PDS_ENOTFOUND);
    /* The same delete, queued offline: written. */
    client_delete_user_event(&ev, 1, 2000);
    ev.u.write.is_queued = 1;
    mark_gone(&ev, 1000, 7, 4);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_replies, 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.entries[0].op, PDS_OP_DEL_OWNER);
    CHECK_EQ(u.entries[0].version.hlc, PDS_HLC_MAKE(2000, 0));
    CHECK_EQ(persisted(core, u.entries[0].index, &u), 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(pds_core_n_users(core), 0);
    /* Made at 500, before the mark at 1000: nothing to do, "no user"; not
     * decided while the standby has not confirmed the mark. */
    client_delete_user_event(&ev, 2, 500);
    ev.u.write.is_queued = 1;
    mark_gone(&ev, 1000, 7, 4);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].status, PDS_ENOTFOUND);
    ev.u.write.trusted = 3;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].status, PDS_ETIMEDOUT);
    /* The delete of the mark itself again (its answer was lost): done,
     * answered with the mark's entry. */
    client_delete_user_event(&ev, 3, 1000);
    ev.u.write.origin.node = 7;
    ev.u.write.is_queued = 1;
    mark_gone(&ev, 1000, 7, 4);
    ev.u.write.gone_epoch = 2;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_DUPLICATE);
    CHECK_EQ(u.replies[0].index, 4);
    CHECK_EQ(u.replies[0].epoch, 2);
    /* An owner never deleted and not held: made online, "no user"; queued
     * offline, it leaves a mark (a write made before it, still queued
     * elsewhere, loses to it when it comes). */
    client_delete_user_event(&ev, 3, 3000);
    ev.u.write.key.owner = "bruno";
    ev.u.write.key.owner_len = 5;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].status, PDS_ENOTFOUND);
    ev.u.write.is_queued = 1;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.entries[0].op, PDS_OP_DEL_OWNER);
    CHECK_EQ(persisted(core, u.entries[0].index, &u), 0);
    CHECK_EQ(u.replies[0].status, 0);
    /* Held, deleted at 4000, and a delete queued at 4500 while that one is
     * being committed: written too. Both fail: the owner is back. */
    CHECK_EQ(
        client_put(core, 4, "en", PDS_HLC_MAKE(3500, 0), 9, NULL, 10000, &u),
        0);
    CHECK_EQ(persisted(core, u.entries[0].index, &u), 0);
    CHECK_EQ(pds_core_n_users(core), 1);
    client_delete_user_event(&ev, 5, 4000);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    first = u.entries[0].index;
    client_delete_user_event(&ev, 6, 4500);
    ev.u.write.is_queued = 1;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.entries[0].version.hlc, PDS_HLC_MAKE(4500, 0));
    CHECK_EQ(pds_core_n_users(core), 0);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_PERSIST_FAILED;
    ev.u.persist_failed.index = first;
    ev.u.persist_failed.status = PDS_ENOSPC;
    ev.u.persist_failed.errmsg = "storage budget exhausted: test";
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_replies, 2);
    CHECK_EQ(u.replies[0].status, PDS_ENOSPC);
    CHECK_EQ(pds_core_n_users(core), 1);
    pds_core_free(core);
}

/* A delete-user from a clock hours ahead is stamped with this node's clock
 * and leaves a memo; sent again, the host finds the memo and it is that
 * delete, answered as done, not applied over what was written since. */
TEST(core_restamped_delete_user_sent_again_is_the_same_delete)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_event ev;
    struct pds_update u;
    struct pds_clamp memo;

    CHECK(core != NULL);
    CHECK_EQ(
        client_put(core, 1, "en", PDS_HLC_MAKE(5000, 0), 9, NULL, 10000, &u),
        0);
    CHECK_EQ(persisted(core, 1, &u), 0);
    client_delete_user_event(&ev, 2, 10000 + 3600 * 1000);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK(PDS_HLC_MS(u.entries[0].version.hlc) <= 10000);
    CHECK_EQ(u.n_clamps, 1);
    memo = u.clamps[0];
    CHECK_EQ(memo.origin.hlc, PDS_HLC_MAKE(10000 + 3600 * 1000, 0));
    CHECK_EQ(persisted(core, 2, &u), 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_CLAMPED);
    /* Alice written again after it, then the delete comes again. */
    CHECK_EQ(
        client_put(core, 3, "de", PDS_HLC_MAKE(11000, 0), 9, NULL, 11000, &u),
        0);
    CHECK_EQ(persisted(core, 3, &u), 0);
    client_delete_user_event(&ev, 4, 10000 + 3600 * 1000);
    ev.now = 12000;
    ev.u.write.has_clamp = 1;
    ev.u.write.clamp_version = memo.version;
    ev.u.write.clamp_epoch = memo.epoch;
    ev.u.write.clamp_index = memo.index;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_DUPLICATE);
    CHECK_EQ(pds_core_n_users(core), 1);
    pds_core_free(core);
}

/* A write older than the owner's last delete-user, coming after it (a
 * queued write, or an answer lost and sent again), loses to it: the
 * deleted record does not come back. */
TEST(core_write_older_than_a_delete_user_loses)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_event ev;
    struct pds_update u;

    CHECK(core != NULL);
    client_put_event(&ev, 1, "en", PDS_HLC_MAKE(1000, 0), 7, NULL, 10000);
    mark_gone(&ev, 2000, 8, 4);
    ev.u.write.trusted = 4;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_SUPERSEDED);
    /* The delete not confirmed by the standby yet: not decided. */
    ev.u.write.req = 2;
    ev.u.write.trusted = 3;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].status, PDS_ETIMEDOUT);
    /* The same write, made after the delete-user: applied. */
    ev.u.write.req = 3;
    ev.u.write.origin.hlc = PDS_HLC_MAKE(3000, 0);
    ev.u.write.trusted = 4;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    pds_core_free(core);
}

TEST(core_superseded_is_answered_once_the_winner_is_durable)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_update u;

    CHECK(core != NULL);
    /* A newer write, not yet durable... */
    CHECK_EQ(
        client_put(core, 1, "new", PDS_HLC_MAKE(7000, 0), 9, NULL, 7000, &u),
        0);
    CHECK_EQ(u.n_entries, 1);
    /* ...beats an older one in the same turn, which waits for it. */
    CHECK_EQ(
        client_put(core, 2, "old", PDS_HLC_MAKE(6000, 0), 8, NULL, 7000, &u),
        0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 0);
    CHECK_EQ(pds_core_n_superseded(core), 1);
    CHECK_EQ(persisted(core, 1, &u), 0);
    CHECK_EQ(u.n_replies, 2);
    CHECK_EQ(u.replies[1].req, 2);
    CHECK_EQ(u.replies[1].status, 0);
    CHECK_EQ(u.replies[1].outcome, PDS_OUTCOME_SUPERSEDED);
    CHECK_EQ(u.replies[1].version.hlc, PDS_HLC_MAKE(7000, 0));
    pds_core_free(core);
}

TEST(core_client_clock_far_ahead_is_restamped)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_version held = {PDS_HLC_MAKE(5000, 0), 7};
    pds_time now = 1000000;
    struct pds_update u;

    CHECK(core != NULL);
    /* Three hours ahead, beyond the default 60 s bound. */
    CHECK_EQ(client_put(core, 1, "x", PDS_HLC_MAKE(now + 3 * 3600000, 0), 9,
                        &held, now, &u),
             0);
    CHECK_EQ(u.n_entries, 1);
    CHECK(PDS_HLC_MS(u.entries[0].version.hlc) <= now + 1);
    CHECK_EQ(u.entries[0].version.node, 9);
    CHECK_EQ(persisted(core, 1, &u), 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_CLAMPED);
    CHECK_EQ(pds_core_n_clamped(core), 1);
    /* Within the bound: believed. */
    held = (struct pds_version){PDS_HLC_MAKE(now, 5), 9};
    CHECK_EQ(client_put(core, 2, "y", PDS_HLC_MAKE(now + 30000, 0), 9, &held,
                        now, &u),
             0);
    CHECK_EQ(u.entries[0].version.hlc, PDS_HLC_MAKE(now + 30000, 0));
    pds_core_free(core);
}

/*
 * A restamped write whose answer was lost comes again with the version it
 * first came with. It is that write again: never stamped a second time
 * (which would put it over every write made since), answered from the
 * host's memo of the first stamp.
 */
/* Client 9's write "x" of origin clock hlc sent again, with the host's
 * memo of its stamp (at index, epoch 1) and the index it trusts. */
static void replay_event(struct pds_event *ev,
                         uint64_t req,
                         pds_hlc hlc,
                         pds_time now,
                         const struct pds_version *stamped,
                         pds_index index,
                         pds_index trusted)
{
    client_put_event(ev, req, "x", hlc, 9, NULL, now);
    ev->u.write.has_clamp = 1;
    ev->u.write.clamp_version = *stamped;
    ev->u.write.clamp_epoch = 1;
    ev->u.write.clamp_index = index;
    ev->u.write.trusted = trusted;
}

TEST(core_restamped_write_sent_again_is_the_same_write)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    pds_time now = 1000000;
    pds_hlc ahead = PDS_HLC_MAKE(now + 3 * 3600000, 0);
    struct pds_version stamped;
    pds_index index;
    struct pds_event ev;
    struct pds_update u;

    CHECK(core != NULL);
    CHECK_EQ(client_put(core, 1, "x", ahead, 9, NULL, now, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.n_clamps, 1);
    CHECK_EQ(u.clamps[0].origin.hlc, ahead);
    CHECK_EQ(u.clamps[0].origin.node, 9);
    CHECK_EQ(u.clamps[0].version.hlc, u.entries[0].version.hlc);
    CHECK_EQ(u.clamps[0].version.node, u.entries[0].version.node);
    CHECK_EQ(u.clamps[0].index, u.entries[0].index);
    CHECK_EQ(u.clamps[0].epoch, u.entries[0].epoch);
    stamped = u.entries[0].version;
    index = u.entries[0].index;
    /* Again before the first is durable: not decided yet. */
    CHECK_EQ(client_put(core, 2, "x", ahead, 9, NULL, now, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_clamps, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, PDS_ETIMEDOUT);
    CHECK(strstr(u.replies[0].errmsg, "send it again") != NULL);
    CHECK_EQ(persisted(core, index, &u), 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_CLAMPED);
    /* Again, with the host's memo, the standby not there yet. */
    replay_event(&ev, 3, ahead, now + 5000, &stamped, index, index - 1);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, PDS_ETIMEDOUT);
    /* Confirmed: a duplicate of the first, with its position. */
    ev.u.write.req = 4;
    ev.u.write.trusted = (pds_index)-1;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].req, 4);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_DUPLICATE);
    CHECK_EQ(u.replies[0].version.hlc, stamped.hlc);
    CHECK_EQ(u.replies[0].index, index);
    CHECK_EQ(pds_core_n_clamped(core), 1);
    /* Come again once this node's clock caught up with it (within the
     * bound now): still that write, not a new one with its own clock. */
    replay_event(&ev, 6, ahead, now + 3 * 3600000 - 1000, &stamped, index,
                 (pds_index)-1);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].outcome, PDS_OUTCOME_DUPLICATE);
    CHECK_EQ(u.replies[0].version.hlc, stamped.hlc);
    /* Another write from that clock (another version) is stamped. */
    CHECK_EQ(client_put(core, 5, "y", ahead + 1, 9, NULL, now + 6000, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.n_clamps, 1);
    CHECK(u.entries[0].version.hlc > stamped.hlc);
    pds_core_free(core);
}

TEST(repl_fit_keeps_entries_with_their_memos)
{
    uint8_t buf[5 * 14];
    struct pds_clamp cl[2];
    size_t len, n, n_cl, i;

    /* Five entries of 10 bytes (14 with the prefix) from index 100; memos
     * under 101 and 103. */
    memset(buf, 0, sizeof(buf));
    for (i = 0; i < 5; i++)
        pds_put_u32be(buf + i * 14, 10);
    memset(cl, 0, sizeof(cl));
    cl[0].index = 101;
    cl[1].index = 103;
    /* Everything fits: nothing cut. */
    len = sizeof(buf), n = 5, n_cl = 2;
    pds_repl_fit(buf, &len, &n, 100, cl, &n_cl, 70 + 2 * PDS_CLAMP_BYTES);
    CHECK_EQ(len, 70);
    CHECK_EQ(n, 5);
    CHECK_EQ(n_cl, 2);
    /* 100 bytes: entries 100..102 and the memo of 101 (42 + 48); 103 with
     * its memo would be 56 + 96. */
    pds_repl_fit(buf, &len, &n, 100, cl, &n_cl, 100);
    CHECK_EQ(len, 42);
    CHECK_EQ(n, 3);
    CHECK_EQ(n_cl, 1);
    /* Whatever the budget, one entry goes, with its memo. */
    len = sizeof(buf), n = 5, n_cl = 2;
    pds_repl_fit(buf, &len, &n, 101, cl, &n_cl, 10);
    CHECK_EQ(len, 14);
    CHECK_EQ(n, 1);
    CHECK_EQ(n_cl, 1);
}

TEST(repl_decide_follow_or_refresh)
{
    struct pds_sync sy;
    struct pds_log_view v;
    struct pds_follower f;
    const char *why;

    memset(&sy, 0, sizeof(sy));
    memset(&v, 0, sizeof(v));
    /* Empty follower, whole log kept: follow from 1. */
    v.first_index = 1;
    v.last_index = 10;
    sy.is_fresh = 1;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_FOLLOW);
    /* Empty follower, log trimmed: refresh. */
    v.first_index = 5;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_REFRESH);
    CHECK_STR(why, "empty, and the log does not start at 1");
    /* Data of its own. */
    sy.index = 3;
    sy.epoch = 1;
    sy.is_fresh = 0;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_REFRESH);
    CHECK_STR(why, "data of its own (first join)");
    sy.is_fresh = 1;
    /* Behind the retention (its entry and the next one are gone). */
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_REFRESH);
    CHECK_STR(why, "behind the log retention");
    /* Its entry is gone but the next is kept: follow, when the server's
     * record of its epochs puts that index in the follower's epoch. */
    sy.index = 4;
    v.index_epoch = 1;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_FOLLOW);
    /* The same index written in another term (a server that restarted,
     * or was restored, and wrote past it): another history. */
    v.index_epoch = 2;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_REFRESH);
    CHECK_STR(why, "on a branch that diverged");
    /* A server that took a snapshot and has no log: the stamp's epoch. */
    v.first_index = 0;
    v.last_index = 4;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_REFRESH);
    v.index_epoch = 1;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_FOLLOW);
    v.first_index = 5;
    v.last_index = 10;
    /* A position the server never had. */
    sy.index = 11;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_REFRESH);
    CHECK_STR(why, "a position the server never had");
    /* Same index, another entry there: diverged, by epoch or version. */
    sy.index = 7;
    sy.last.hlc = 100;
    sy.last.node = 2;
    v.has_entry = 1;
    v.entry_epoch = 1;
    v.entry_version.hlc = 100;
    v.entry_version.node = 2;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_FOLLOW);
    v.entry_version.node = 3;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_REFRESH);
    CHECK_STR(why, "on a branch that diverged");
    v.entry_version.node = 2;
    v.entry_epoch = 2;
    CHECK_EQ(pds_repl_decide(&sy, &v, &why), PDS_SYNC_REFRESH);
    /* The window and acknowledgements. */
    pds_repl_follow(&f, 7);
    CHECK_EQ(pds_repl_window(&f, 10, 100), 3);
    CHECK_EQ(pds_repl_window(&f, 1000, 100), 100);
    pds_repl_sent(&f, 100);
    CHECK_EQ(pds_repl_window(&f, 1000, 100), 0);
    CHECK_EQ(pds_repl_ack(&f, 6), 0); /* stale: no change */
    CHECK_EQ(f.acked, 7);
    CHECK_EQ(pds_repl_ack(&f, 108), PDS_EPROTO);
    CHECK_EQ(pds_repl_ack(&f, 57), 0);
    CHECK_EQ(pds_repl_window(&f, 1000, 100), 50);
    CHECK_EQ(pds_repl_accept(5, 6), 0);
    CHECK_EQ(pds_repl_accept(5, 7), PDS_EPROTO);
    CHECK_EQ(pds_repl_accept(5, 5), PDS_EPROTO);
    /* The window's end goes with each message: the log up to the
     * server's last, within the window of what was acknowledged. */
    CHECK_EQ(pds_repl_window_end(&f, 1000, 100), 157);
    CHECK_EQ(pds_repl_window_end(&f, 120, 100), 120);
    /* A catch-up holds entries for one commit while more is already
     * here and more comes before the window closes, up to max_hold; never
     * the window's last. */
    CHECK(pds_repl_defer_flush(149, 200, 49, 50, 1));
    CHECK(!pds_repl_defer_flush(149, 200, 49, 50, 0));
    CHECK(!pds_repl_defer_flush(150, 200, 50, 50, 1));
    CHECK(!pds_repl_defer_flush(200, 200, 10, 50, 1));
    CHECK(!pds_repl_defer_flush(201, 200, 10, 50, 1));
}

TEST(core_write_is_answered_after_persist)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_update u;

    CHECK(core != NULL);
    CHECK_EQ(put(core, 1, "alice", "ui.language", "en", 1000, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.n_replies, 0); /* not durable yet: no answer */
    CHECK_EQ(u.entries[0].index, 1);
    CHECK_EQ(u.entries[0].epoch, 1);
    CHECK_EQ(u.entries[0].version.node, 42);
    CHECK_EQ(PDS_HLC_MS(u.entries[0].version.hlc), 1000);
    CHECK_EQ(put(core, 2, "alice", "ui.theme", "dark", 1000, &u), 0);
    CHECK_EQ(u.entries[0].index, 2);
    CHECK_EQ(pds_core_n_pending(core), 2);
    /* Both entries are committed together (group commit). */
    CHECK_EQ(persisted(core, 2, &u), 0);
    CHECK_EQ(u.n_replies, 2);
    CHECK_EQ(u.replies[0].req, 1);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.replies[0].index, 1);
    CHECK_EQ(u.replies[1].req, 2);
    CHECK_EQ(u.replies[1].index, 2);
    CHECK_EQ(pds_core_last_index(core), 2);
    CHECK_EQ(pds_core_n_pending(core), 0);
    /* Persisted beyond what was asked is a host bug. */
    CHECK_EQ(persisted(core, 5, &u), PDS_EINVAL);
    pds_core_free(core);
}

TEST(core_refuses_bad_writes_at_once)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_update u;
    static char big[2 * 1024 * 1024];

    CHECK(core != NULL);
    CHECK_EQ(put(core, 7, "bad owner", "x", "v", 1, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].req, 7);
    CHECK_EQ(u.replies[0].status, PDS_EBADNAME);

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_EQ(put(core, 8, "alice", "x", big, 1, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.replies[0].status, PDS_ETOOBIG);
    CHECK(strstr(u.replies[0].errmsg, "max_value_size") != NULL);
    CHECK_EQ(pds_core_n_users(core), 0);
    pds_core_free(core);
}

TEST(core_user_limit_refuse)
{
    struct pds_core *core = new_core(3, PDS_USER_POLICY_REFUSE);
    struct pds_update u;
    char name[16];
    int i;

    CHECK(core != NULL);
    for (i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        CHECK_EQ(put(core, (uint64_t)i, name, "x", "v", 10, &u), 0);
        CHECK_EQ(u.n_entries, 1);
    }
    CHECK_EQ(put(core, 99, "user3", "x", "v", 10, &u), 0);
    CHECK_EQ(u.n_entries, 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, PDS_ELIMIT);
    CHECK(strstr(u.replies[0].errmsg, "max_users") != NULL);
    /* Existing users can still write. */
    CHECK_EQ(put(core, 100, "user1", "y", "v", 10, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(pds_core_n_users(core), 3);
    pds_core_free(core);
}

TEST(core_user_limit_evicts_lru)
{
    struct pds_core *core = new_core(2, PDS_USER_POLICY_EVICT_LRU);
    struct pds_update u;
    struct pds_event ev;

    CHECK(core != NULL);
    CHECK_EQ(put(core, 1, "old", "x", "v", 10, &u), 0);
    CHECK_EQ(put(core, 2, "mid", "x", "v", 20, &u), 0);
    /* "old" is read later than "mid" was written: "mid" is the LRU. */
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_TOUCH;
    ev.now = 30;
    ev.u.touch.scope = PDS_SCOPE_USER;
    ev.u.touch.owner = "old";
    ev.u.touch.owner_len = 3;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(put(core, 3, "new", "x", "v", 40, &u), 0);
    CHECK_EQ(u.n_entries, 2);
    CHECK_EQ(u.entries[0].op, PDS_OP_DEL_OWNER);
    CHECK_EQ(u.entries[0].key.owner_len, 3);
    CHECK(memcmp(u.entries[0].key.owner, "mid", 3) == 0);
    CHECK_EQ(u.entries[1].op, PDS_OP_PUT);
    CHECK_EQ(pds_core_n_users(core), 2);
    CHECK_EQ(persisted(core, 4, &u), 0);
    /* Only real writers get replies, not the eviction. */
    CHECK_EQ(u.n_replies, 3);
    pds_core_free(core);
}

TEST(core_persist_failure_undoes)
{
    struct pds_core *core = new_core(2, PDS_USER_POLICY_EVICT_LRU);
    struct pds_update u;
    struct pds_event ev;

    CHECK(core != NULL);
    CHECK_EQ(put(core, 1, "a", "x", "v", 10, &u), 0);
    CHECK_EQ(put(core, 2, "b", "x", "v", 20, &u), 0);
    CHECK_EQ(persisted(core, 2, &u), 0);
    /* c evicts a; then the commit fails: a must come back, c must go. */
    CHECK_EQ(put(core, 3, "c", "x", "v", 30, &u), 0);
    CHECK_EQ(u.n_entries, 2);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_PERSIST_FAILED;
    ev.u.persist_failed.index = 3;
    ev.u.persist_failed.status = PDS_ENOSPC;
    ev.u.persist_failed.errmsg = "storage budget exhausted: test";
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].req, 3);
    CHECK_EQ(u.replies[0].status, PDS_ENOSPC);
    CHECK(strstr(u.replies[0].errmsg, "budget") != NULL);
    CHECK_EQ(pds_core_n_users(core), 2);
    CHECK_EQ(pds_core_n_pending(core), 0);
    /* Positions are reused: the next write gets index 3 again. */
    CHECK_EQ(put(core, 4, "a", "y", "v", 40, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.entries[0].index, 3);
    pds_core_free(core);
}

TEST(core_delete_and_delete_owner)
{
    struct pds_core *core = new_core(10, PDS_USER_POLICY_REFUSE);
    struct pds_update u;
    struct pds_event ev;

    CHECK(core != NULL);
    CHECK_EQ(put(core, 1, "alice", "x", "v", 10, &u), 0);
    CHECK_EQ(persisted(core, 1, &u), 0);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_WRITE;
    ev.now = 11;
    ev.u.write.req = 2;
    ev.u.write.op = PDS_OP_DEL;
    ev.u.write.key.owner = "alice";
    ev.u.write.key.owner_len = 5;
    ev.u.write.key.item = "y";
    ev.u.write.key.item_len = 1;
    ev.u.write.exists = 0;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, PDS_ENOTFOUND);
    ev.u.write.exists = 1;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.entries[0].op, PDS_OP_DEL);
    CHECK_EQ(u.entries[0].value_len, 0);
    ev.u.write.op = PDS_OP_DEL_OWNER;
    ev.u.write.req = 3;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_entries, 1);
    CHECK_EQ(u.entries[0].op, PDS_OP_DEL_OWNER);
    CHECK_EQ(pds_core_n_users(core), 0);
    ev.u.write.req = 4;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, PDS_ENOTFOUND);
    pds_core_free(core);
}

TEST(core_loads_owners_and_hlc)
{
    struct pds_core_config cfg;
    struct pds_core *core = NULL;
    struct pds_owner_info o = {PDS_SCOPE_USER, "alice", 5, 5};
    struct pds_update u;

    memset(&cfg, 0, sizeof(cfg));
    cfg.node_id = 1;
    cfg.epoch = 2;
    cfg.last_index = 50;
    cfg.last_hlc = PDS_HLC_MAKE(999999, 3);
    pds_limits_default(&cfg.limits);
    cfg.limits.max_users = 1;
    CHECK_EQ(pds_core_new(&cfg, &core), 0);
    CHECK_EQ(pds_core_load_owner(core, &o), 0);
    CHECK_EQ(pds_core_n_users(core), 1);
    /* A restart with a slow clock still issues newer versions. */
    CHECK_EQ(put(core, 1, "alice", "x", "v", 10, &u), 0);
    CHECK_EQ(u.entries[0].index, 51);
    CHECK_EQ(u.entries[0].epoch, 2);
    CHECK(u.entries[0].version.hlc > cfg.last_hlc);
    CHECK_EQ(put(core, 2, "bob", "x", "v", 10, &u), 0);
    CHECK_EQ(u.replies[0].status, PDS_ELIMIT);
    pds_core_free(core);
    cfg.epoch = 0;
    CHECK_EQ(pds_core_new(&cfg, &core), PDS_EINVAL);
}

/* ---- Membership -------------------------------------------------------- */

static struct pds_core *server_core(uint32_t max_machines)
{
    struct pds_core_config cfg;
    struct pds_core *core = NULL;

    memset(&cfg, 0, sizeof(cfg));
    cfg.node_id = 1;
    cfg.epoch = 1;
    cfg.role = PDS_ROLE_SERVER;
    cfg.max_machines = max_machines;
    pds_limits_default(&cfg.limits);
    if (pds_core_new(&cfg, &core) != 0)
        return NULL;
    return core;
}

static int join(struct pds_core *core,
                uint64_t conn,
                uint8_t key,
                int proof,
                struct pds_update *u)
{
    struct pds_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_PEER_JOIN;
    ev.now = 1000 + conn;
    ev.u.join.conn = conn;
    memset(ev.u.join.pk, key, PDS_KEY_BYTES);
    ev.u.join.proof = proof;
    ev.u.join.name = "printer";
    ev.u.join.address = "127.0.0.1:1";
    return pds_core_step(core, &ev, u);
}

static int admin(struct pds_core *core,
                 enum pds_member_op op,
                 const char *target,
                 struct pds_update *u)
{
    struct pds_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_MEMBER_ADMIN;
    ev.u.member_admin.req = 77;
    ev.u.member_admin.op = op;
    ev.u.member_admin.target = target;
    return pds_core_step(core, &ev, u);
}

TEST(members_enroll_refuse_limit)
{
    struct pds_core *core = server_core(3);
    struct pds_update u;

    CHECK(core != NULL);
    /* No proof, wrong proof: refused, nothing stored. */
    CHECK_EQ(join(core, 1, 0xa1, 0, &u), 0);
    CHECK_EQ(u.n_joins, 1);
    CHECK_EQ(u.joins[0].status, PDS_EPERM);
    CHECK(strstr(u.joins[0].errmsg, "unknown node") != NULL);
    CHECK_EQ(u.n_members, 0);
    CHECK_EQ(join(core, 2, 0xa1, -1, &u), 0);
    CHECK_EQ(u.joins[0].status, PDS_EAUTH);
    CHECK(strstr(u.joins[0].errmsg, "wrong join secret") != NULL);
    /* Proof: enrolled and stored. */
    CHECK_EQ(join(core, 3, 0xa1, 1, &u), 0);
    CHECK_EQ(u.joins[0].status, 0);
    CHECK_EQ(u.joins[0].is_new, 1);
    CHECK_EQ(u.n_members, 1);
    CHECK_EQ(u.members[0].state, PDS_MEMBER_ENROLLED);
    CHECK_EQ(pds_core_n_machines(core), 2);
    CHECK_EQ(join(core, 4, 0xa2, 1, &u), 0);
    CHECK_EQ(u.joins[0].status, 0);
    /* The 4th machine: refused by the limit. */
    CHECK_EQ(join(core, 5, 0xa3, 1, &u), 0);
    CHECK_EQ(u.joins[0].status, PDS_ELIMIT);
    CHECK(strstr(u.joins[0].errmsg, "max_machines = 3") != NULL);
    CHECK_EQ(pds_core_n_machines(core), 3);
    /* An enrolled node comes back without a proof: welcome. */
    CHECK_EQ(join(core, 6, 0xa1, 0, &u), 0);
    CHECK_EQ(u.joins[0].status, 0);
    CHECK_EQ(u.joins[0].is_new, 0);
    /* Its old connection 3 is closed: never counted twice. */
    CHECK_EQ(u.n_disconnect, 1);
    CHECK_EQ(u.disconnect[0], 3);
    CHECK_EQ(pds_core_n_machines(core), 3);
    pds_core_free(core);
}

TEST(members_stop_and_start)
{
    struct pds_core *core = server_core(3);
    struct pds_update u;
    struct pds_event ev;
    char id[17];

    CHECK(core != NULL);
    CHECK_EQ(join(core, 1, 0xb1, 1, &u), 0);
    snprintf(id, sizeof(id), "%016llx",
             (unsigned long long)u.joins[0].member_id);
    CHECK_EQ(admin(core, PDS_MEMBER_OP_STOP, id, &u), 0);
    CHECK_EQ(u.n_replies, 1);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(u.n_disconnect, 1);
    CHECK_EQ(u.disconnect[0], 1);
    CHECK_EQ(u.members[0].state, PDS_MEMBER_STOPPED);
    CHECK_EQ(pds_core_n_machines(core), 1);
    /* Stopped stays refused, even with the secret. */
    CHECK_EQ(join(core, 2, 0xb1, 1, &u), 0);
    CHECK_EQ(u.joins[0].status, PDS_EPERM);
    CHECK(strstr(u.joins[0].errmsg, "stopped by the administrator") != NULL);
    /* The old connection's close does not change anything. */
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_PEER_LEFT;
    ev.u.left.conn = 1;
    memset(ev.u.left.pk, 0xb1, PDS_KEY_BYTES);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_members, 0);
    CHECK_EQ(admin(core, PDS_MEMBER_OP_START, "printer", &u), 0);
    CHECK_EQ(u.replies[0].status, 0);
    CHECK_EQ(join(core, 3, 0xb1, 0, &u), 0);
    CHECK_EQ(u.joins[0].status, 0);
    CHECK_EQ(admin(core, PDS_MEMBER_OP_STOP, "nobody", &u), 0);
    CHECK_EQ(u.replies[0].status, PDS_ENOTFOUND);
    pds_core_free(core);
}

/* A role move through the core: asked, then reported stored with
 * store_status. Returns the first step's result. */
static int move(struct pds_core *core,
                enum pds_role to,
                enum pds_role_cause cause,
                int store_status)
{
    struct pds_event ev;
    struct pds_update u;
    int rv;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_ROLE_CHANGE;
    ev.u.role_change.to = to;
    ev.u.role_change.cause = cause;
    rv = pds_core_step(core, &ev, &u);
    if (rv != 0)
        return rv;
    if (!u.has_role || u.role != to)
        return PDS_EINVAL;
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_ROLE_STORED;
    ev.u.role_stored.role = to;
    ev.u.role_stored.status = store_status;
    return pds_core_step(core, &ev, &u);
}

TEST(role_moves_follow_the_table)
{
    struct pds_core *core = server_core(10);
    struct pds_event ev;
    struct pds_update u;
    int from;
    int to;

    CHECK(core != NULL);
    /* The table itself: no role moves to itself; a server only stops;
     * a standby comes from a client; candidates end in a role. */
    for (from = 0; from <= PDS_ROLE_LAST; from++)
        CHECK(!pds_role_may_move((enum pds_role)from, (enum pds_role)from));
    CHECK(pds_role_may_move(PDS_ROLE_STANDALONE, PDS_ROLE_SERVER));
    CHECK(pds_role_may_move(PDS_ROLE_STANDALONE, PDS_ROLE_CLIENT));
    CHECK(!pds_role_may_move(PDS_ROLE_STANDALONE, PDS_ROLE_STANDBY));
    CHECK(pds_role_may_move(PDS_ROLE_SERVER, PDS_ROLE_STANDALONE));
    for (to = 0; to <= PDS_ROLE_LAST; to++)
        CHECK(pds_role_may_move(PDS_ROLE_SERVER, (enum pds_role)to) ==
              (to == PDS_ROLE_STANDALONE));
    CHECK(pds_role_may_move(PDS_ROLE_CLIENT, PDS_ROLE_STANDBY));
    CHECK(pds_role_may_move(PDS_ROLE_STANDBY, PDS_ROLE_CLIENT));
    CHECK(!pds_role_may_move(PDS_ROLE_CLIENT, PDS_ROLE_SERVER));
    CHECK(pds_role_may_move(PDS_ROLE_CANDIDATE, PDS_ROLE_SERVER));
    CHECK(!pds_role_may_move((enum pds_role)(PDS_ROLE_LAST + 1),
                             PDS_ROLE_STANDALONE));
    CHECK_STR(pds_role_name(PDS_ROLE_STANDBY), "standby");
    CHECK_STR(pds_role_name((enum pds_role)99), "unknown");
    CHECK(pds_role_follows(PDS_ROLE_STANDBY));
    CHECK(!pds_role_follows(PDS_ROLE_SERVER));

    /* A move the table refuses: an error that names both roles, and the
     * node stays. */
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_ROLE_CHANGE;
    ev.u.role_change.to = PDS_ROLE_STANDBY;
    ev.u.role_change.cause = PDS_ROLE_CAUSE_DESIGNATED;
    CHECK_EQ(pds_core_step(core, &ev, &u), PDS_EINVAL);
    CHECK(!u.has_role);
    CHECK(strstr(u.errmsg, "a server cannot become standby") != NULL);
    CHECK_EQ(pds_core_role(core), PDS_ROLE_SERVER);
    /* A cause that does not explain the move. */
    ev.u.role_change.to = PDS_ROLE_STANDALONE;
    ev.u.role_change.cause = PDS_ROLE_CAUSE_CLIENT_STOP;
    CHECK_EQ(pds_core_step(core, &ev, &u), PDS_EINVAL);
    CHECK_EQ(pds_core_role(core), PDS_ROLE_SERVER);

    /* Asked: still a server until it is stored; a second move meanwhile
     * is busy; a store that failed leaves it a server. */
    ev.u.role_change.cause = PDS_ROLE_CAUSE_SERVER_STOP;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK(u.has_role);
    CHECK_EQ(u.role, PDS_ROLE_STANDALONE);
    CHECK_EQ(u.role_from, PDS_ROLE_SERVER);
    CHECK_EQ(pds_core_role(core), PDS_ROLE_SERVER);
    CHECK_EQ(pds_core_role_pending(core), PDS_ROLE_STANDALONE);
    CHECK_EQ(pds_core_step(core, &ev, &u), PDS_EBUSY);
    CHECK(strstr(u.errmsg, "still being stored") != NULL);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_ROLE_STORED;
    ev.u.role_stored.role = PDS_ROLE_CLIENT; /* not the one asked for */
    CHECK_EQ(pds_core_step(core, &ev, &u), PDS_EINVAL);
    ev.u.role_stored.role = PDS_ROLE_STANDALONE;
    ev.u.role_stored.status = PDS_EIO;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(pds_core_role(core), PDS_ROLE_SERVER);
    CHECK_EQ(pds_core_step(core, &ev, &u), PDS_EINVAL); /* none pending */

    /* The path of a replication destination, and back. */
    CHECK_EQ(move(core, PDS_ROLE_STANDALONE, PDS_ROLE_CAUSE_SERVER_STOP, 0), 0);
    CHECK_EQ(pds_core_role(core), PDS_ROLE_STANDALONE);
    CHECK_EQ(move(core, PDS_ROLE_CLIENT, PDS_ROLE_CAUSE_CLIENT_START, 0), 0);
    CHECK_EQ(move(core, PDS_ROLE_STANDBY, PDS_ROLE_CAUSE_DESIGNATED, 0), 0);
    CHECK_EQ(pds_core_role(core), PDS_ROLE_STANDBY);
    CHECK_EQ(move(core, PDS_ROLE_CLIENT, PDS_ROLE_CAUSE_RELEASED, 0), 0);
    CHECK_EQ(move(core, PDS_ROLE_STANDBY, PDS_ROLE_CAUSE_DESIGNATED, 0), 0);
    /* Enrolled again: a client until its server says. */
    CHECK_EQ(move(core, PDS_ROLE_CLIENT, PDS_ROLE_CAUSE_CLIENT_START, 0), 0);
    CHECK_EQ(move(core, PDS_ROLE_SERVER, PDS_ROLE_CAUSE_SERVER_START, 0),
             PDS_EINVAL);
    CHECK_EQ(move(core, PDS_ROLE_STANDALONE, PDS_ROLE_CAUSE_CLIENT_STOP, 0), 0);
    CHECK_EQ(pds_core_role(core), PDS_ROLE_STANDALONE);
    CHECK_EQ(pds_core_load_role(core, (enum pds_role)7), PDS_EINVAL);
    pds_core_free(core);
}

TEST(ack_standby_waits_then_times_out_per_commit)
{
    struct pds_ack a;
    struct pds_ack_out o;

    pds_ack_init(&a, PDS_ACK_STANDBY, 1000);
    CHECK(!pds_ack_waits(&a, 1)); /* no destination yet */
    CHECK_STR(pds_ack_mode_text(&a), "local (ack_mode = standby, but no "
                                     "replication destination is set)");
    pds_ack_set_standby(&a, 1, &o);
    CHECK(pds_ack_waits(&a, 1));
    CHECK(!pds_ack_waits(&a, 0)); /* only a server waits */
    CHECK_STR(pds_ack_mode_text(&a), "standby");
    pds_ack_committed(&a, 10, 1, 0, &o);
    CHECK_EQ(o.answer, 0);
    pds_ack_committed(&a, 20, 1, 500, &o);
    CHECK_EQ(o.answer, 0);
    pds_ack_confirmed(&a, 5, &o); /* within the first commit */
    CHECK_EQ(o.answer, 5);
    CHECK(!o.recovered);
    pds_ack_tick(&a, 5, 999, &o);
    CHECK_EQ(o.answer, 0);
    CHECK_EQ(o.timeout, 0);
    /* Each commit keeps its own deadline. */
    pds_ack_tick(&a, 5, 1000, &o);
    CHECK_EQ(o.timeout, 10);
    CHECK(!o.degraded);
    CHECK_EQ(a.n_waits, 1);
    pds_ack_confirmed(&a, 25, &o); /* ahead of the server: up to ours */
    CHECK_EQ(o.answer, 20);
    CHECK_EQ(a.n_waits, 0);
    pds_ack_tick(&a, 20, 5000, &o);
    CHECK_EQ(o.timeout, 0);
    /* Confirmed before the server's own fsync: answered at the commit. */
    pds_ack_confirmed(&a, 30, &o);
    CHECK_EQ(o.answer, 20);
    pds_ack_committed(&a, 30, 1, 6000, &o);
    CHECK_EQ(o.answer, 30);
    CHECK_EQ(a.n_waits, 0);
    /* A lost link: its position is known again from its next word. */
    pds_ack_standby_gone(&a);
    pds_ack_committed(&a, 40, 1, 7000, &o);
    CHECK_EQ(o.answer, 0);
    pds_ack_server_stopped(&a, &o);
    CHECK_EQ(o.timeout, 40);
    CHECK_EQ(a.n_waits, 0);
    pds_ack_close(&a);
}

TEST(ack_optional_degrades_and_recovers)
{
    struct pds_ack a;
    struct pds_ack_out o;

    pds_ack_init(&a, PDS_ACK_STANDBY_OPTIONAL, 1000);
    pds_ack_set_standby(&a, 1, &o);
    pds_ack_committed(&a, 10, pds_ack_waits(&a, 1), 0, &o);
    CHECK_EQ(o.answer, 0);
    pds_ack_tick(&a, 0, 1000, &o);
    CHECK(o.degraded);
    CHECK_EQ(o.answer, 10); /* durable here: answered */
    CHECK_EQ(o.timeout, 0);
    CHECK(!pds_ack_waits(&a, 1));
    CHECK_STR(pds_ack_mode_text(&a), "standby-optional (degraded to local: "
                                     "the standby is unreachable)");
    pds_ack_committed(&a, 15, pds_ack_waits(&a, 1), 1100, &o);
    CHECK_EQ(o.answer, 15);
    /* A new destination does not end the degraded state; its word does. */
    pds_ack_set_standby(&a, 1, &o);
    CHECK(a.is_degraded);
    pds_ack_confirmed(&a, 15, &o);
    CHECK(o.recovered);
    CHECK(pds_ack_waits(&a, 1));
    pds_ack_committed(&a, 16, 1, 2000, &o);
    CHECK_EQ(o.answer, 15);
    /* Replication stop: what waited is answered, nothing waits. */
    pds_ack_set_standby(&a, 0, &o);
    CHECK_EQ(o.answer, 16);
    CHECK_EQ(a.n_waits, 0);
    CHECK(!pds_ack_waits(&a, 1));
    CHECK_STR(pds_ack_mode_text(&a), "local (ack_mode = standby-optional, "
                                     "but no replication destination is set)");
    pds_ack_close(&a);
}

TEST(ack_local_and_auto)
{
    struct pds_ack a;
    struct pds_ack_out o;

    pds_ack_init(&a, PDS_ACK_LOCAL, 1000);
    pds_ack_set_standby(&a, 1, &o);
    CHECK(!pds_ack_waits(&a, 1));
    CHECK_STR(pds_ack_mode_text(&a), "local");
    pds_ack_committed(&a, 3, pds_ack_waits(&a, 1), 0, &o);
    CHECK_EQ(o.answer, 3);
    pds_ack_close(&a);
    pds_ack_init(&a, PDS_ACK_AUTO, 1000);
    CHECK_STR(pds_ack_mode_text(&a), "local");
    pds_ack_set_standby(&a, 1, &o);
    CHECK(pds_ack_waits(&a, 1));
    CHECK_STR(pds_ack_mode_text(&a), "standby");
    pds_ack_close(&a);
}

TEST(outbox_answers_decide_each_write)
{
    struct pds_outbox_state st;
    int was;

    memset(&st, 0, sizeof(st));
    CHECK_EQ(pds_outbox_due(&st, 0), PDS_OUTBOX_SEND);
    CHECK_EQ(pds_outbox_answer(&st, 0, 0, 3, 0, 0, 0, &was),
             PDS_OUTBOX_IGNORED); /* never sent: not its answer */
    CHECK_EQ(was, 0);
    pds_outbox_sent(&st);
    CHECK_EQ(pds_outbox_due(&st, 0), PDS_OUTBOX_SKIP);
    /* Not confirmed by the server's standby: again, soon. */
    CHECK_EQ(pds_outbox_answer(&st, PDS_ETIMEDOUT, 0, 0, 0, 0, 100, &was),
             PDS_OUTBOX_RETRY_SOON);
    CHECK_EQ(was, 1);
    CHECK_EQ(pds_outbox_due(&st, 100 + PDS_OUTBOX_RETRY_MS - 1),
             PDS_OUTBOX_WAIT);
    CHECK_EQ(pds_outbox_due(&st, 100 + PDS_OUTBOX_RETRY_MS), PDS_OUTBOX_SEND);
    /* The server cannot take writes now: kept, later. */
    pds_outbox_sent(&st);
    CHECK_EQ(pds_outbox_answer(&st, PDS_EIO, 0, 0, 0, 0, 2000, &was),
             PDS_OUTBOX_RETRY_LATER);
    CHECK_EQ(st.retry_at, 2000 + PDS_OUTBOX_TRANSIENT_MS);
    CHECK(!st.is_done);
    /* A refusal of the write itself: done, and later answers ignored. */
    pds_outbox_sent(&st);
    CHECK_EQ(pds_outbox_answer(&st, PDS_ELIMIT, 0, 0, 0, 0, 9000, &was),
             PDS_OUTBOX_REFUSED);
    CHECK(st.is_done);
    CHECK_EQ(pds_outbox_due(&st, 99999), PDS_OUTBOX_SKIP);
    CHECK_EQ(pds_outbox_answer(&st, 0, 0, 5, 0, 0, 9001, &was),
             PDS_OUTBOX_IGNORED);

    /* A delete-user of an owner the server no longer has holds. */
    memset(&st, 0, sizeof(st));
    pds_outbox_sent(&st);
    CHECK_EQ(pds_outbox_answer(&st, PDS_ENOTFOUND, 0, 0, 1, 0, 0, &was),
             PDS_OUTBOX_HOLDS);
    CHECK(st.is_done);
    memset(&st, 0, sizeof(st));
    pds_outbox_sent(&st);
    CHECK_EQ(pds_outbox_answer(&st, PDS_ENOTFOUND, 0, 0, 0, 0, 0, &was),
             PDS_OUTBOX_REFUSED);

    /* A newer version on the server: lost. */
    memset(&st, 0, sizeof(st));
    pds_outbox_sent(&st);
    CHECK_EQ(pds_outbox_answer(&st, 0, 1, 0, 0, 0, 0, &was), PDS_OUTBOX_LOST);
    CHECK(st.is_done);

    /* Taken at 7 while 5 is applied: done once 7 is. */
    memset(&st, 0, sizeof(st));
    pds_outbox_sent(&st);
    CHECK_EQ(pds_outbox_answer(&st, 0, 0, 7, 0, 5, 0, &was), PDS_OUTBOX_TAKEN);
    CHECK(!st.is_done);
    pds_outbox_link_lost(&st); /* taken: not sent again */
    CHECK_EQ(pds_outbox_due(&st, 0), PDS_OUTBOX_SKIP);
    pds_outbox_settle(&st, 6);
    CHECK(!st.is_done);
    pds_outbox_settle(&st, 7);
    CHECK(st.is_done);
    /* Taken at an index applied already: done at once. */
    memset(&st, 0, sizeof(st));
    pds_outbox_sent(&st);
    CHECK_EQ(pds_outbox_answer(&st, 0, 0, 4, 0, 5, 0, &was), PDS_OUTBOX_TAKEN);
    CHECK(st.is_done);

    /* Sent, the link lost before an answer: it goes again. */
    memset(&st, 0, sizeof(st));
    pds_outbox_sent(&st);
    pds_outbox_link_lost(&st);
    CHECK_EQ(pds_outbox_due(&st, 0), PDS_OUTBOX_SEND);
}

TEST(repl_retained_says_who_needs_refresh)
{
    /* Entries 5..9 kept. */
    CHECK(pds_repl_retained(9, 5, 9)); /* in step */
    CHECK(pds_repl_retained(4, 5, 9)); /* the next one is kept */
    CHECK(pds_repl_retained(7, 5, 9));
    CHECK(!pds_repl_retained(3, 5, 9)); /* 4 is gone */
    CHECK(!pds_repl_retained(0, 5, 9));
    CHECK(pds_repl_retained(0, 1, 9)); /* empty, the whole log kept */
    /* No entry kept at all: only a member at the end follows. */
    CHECK(pds_repl_retained(9, 0, 9));
    CHECK(!pds_repl_retained(8, 0, 9));
    CHECK(pds_repl_retained(0, 0, 0));
}

TEST(link_retry_backs_off_with_jitter)
{
    uint32_t r;
    uint32_t n;

    /* Without jitter's extremes: the centre doubles up to the cap. */
    CHECK_EQ(pds_link_retry_ms(0, 100, 5000, 25), 100);  /* 75 + 25 */
    CHECK_EQ(pds_link_retry_ms(1, 100, 5000, 50), 200);  /* 150 + 50 */
    CHECK_EQ(pds_link_retry_ms(3, 100, 5000, 200), 800); /* 600 + 200 */
    CHECK_EQ(pds_link_retry_ms(40, 100, 5000, 1250), 5000);
    /* Every random value stays within +-25% of the capped delay. */
    for (n = 0; n < 12; n++) {
        uint64_t centre = 100;
        uint32_t k;
        for (k = 0; k < n && centre < 3000; k++)
            centre *= 2;
        if (centre > 3000)
            centre = 3000;
        for (r = 0; r < 4000; r += 7) {
            uint64_t d = pds_link_retry_ms(n, 100, 3000, r * 2654435761u);
            CHECK(d >= centre - centre / 4);
            CHECK(d <= centre + centre / 4);
        }
    }
    /* Degenerate settings: never 0, never above the larger bound. */
    CHECK(pds_link_retry_ms(0, 0, 0, 0) >= 1);
    CHECK(pds_link_retry_ms(5, 200, 50, 0) >= 150);
    CHECK(pds_link_retry_ms(5, 200, 50, UINT32_MAX) <= 250);
}

TEST(epoch_heard_is_stored_then_taken)
{
    struct pds_core *core = server_core(10);
    struct pds_event ev;
    struct pds_update u;
    pds_epoch mine;

    CHECK(core != NULL);
    mine = pds_core_epoch(core);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_EPOCH_HEARD;
    ev.u.epoch_heard.epoch = mine; /* not news */
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK(!u.has_epoch);
    ev.u.epoch_heard.epoch = mine + 5;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK(u.has_epoch);
    CHECK_EQ(u.epoch, mine + 5);
    CHECK_EQ(pds_core_epoch(core), mine); /* not until stored */
    ev.u.epoch_heard.epoch = mine + 6;    /* one at a time */
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK(!u.has_epoch);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_EPOCH_STORED;
    ev.u.epoch_stored.epoch = mine + 6; /* not the one asked for */
    CHECK_EQ(pds_core_step(core, &ev, &u), PDS_EINVAL);
    ev.u.epoch_stored.epoch = mine + 5;
    ev.u.epoch_stored.status = PDS_ENOSPC; /* not stored: not taken */
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(pds_core_epoch(core), mine);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_EPOCH_HEARD;
    ev.u.epoch_heard.epoch = mine + 5;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK(u.has_epoch);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_EPOCH_STORED;
    ev.u.epoch_stored.epoch = mine + 5;
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(pds_core_epoch(core), mine + 5);
    pds_core_free(core);
}

TEST(members_survive_reload_and_roles)
{
    struct pds_core *core = server_core(10);
    struct pds_core *again;
    struct pds_member saved;
    struct pds_member decoded;
    struct pds_update u;
    uint8_t buf[PDS_MEMBER_ENCODED_MAX];
    size_t n;

    CHECK(core != NULL);
    CHECK_EQ(join(core, 1, 0xc1, 1, &u), 0);
    saved = u.members[0];
    n = pds_member_encode(&saved, buf);
    CHECK_EQ(pds_member_decode(buf, n, &decoded), 0);
    CHECK_EQ(decoded.id, saved.id);
    CHECK_STR(decoded.name, "printer");
    CHECK_EQ(decoded.is_connected, 0);
    CHECK_EQ(decoded.position, 0);
    CHECK_EQ(pds_member_decode(buf, n - 1, &decoded), PDS_ECORRUPT);
    /* The position a follower confirmed when it left is kept; a row
     * written before positions were stored reads as position 0. */
    {
        struct pds_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = PDS_EVENT_PEER_LEFT;
        ev.now = 5000;
        ev.u.left.conn = 1;
        memset(ev.u.left.pk, 0xc1, PDS_KEY_BYTES);
        ev.u.left.error = "";
        ev.u.left.has_position = 1;
        ev.u.left.position = 4242;
        CHECK_EQ(pds_core_step(core, &ev, &u), 0);
        CHECK_EQ(u.n_members, 1);
        CHECK_EQ(u.members[0].position, 4242);
        CHECK_STR(u.members[0].last_error, "");
        saved = u.members[0];
        n = pds_member_encode(&saved, buf);
        CHECK_EQ(pds_member_decode(buf, n, &decoded), 0);
        CHECK_EQ(decoded.position, 4242);
        CHECK_EQ(pds_member_decode(buf, n - 8, &decoded), 0);
        CHECK_EQ(decoded.position, 0);
        CHECK_STR(decoded.name, "printer");
    }
    buf[PDS_KEY_BYTES] = 9;
    CHECK_EQ(pds_member_decode(buf, n, &decoded), PDS_ECORRUPT);
    again = server_core(10);
    CHECK(again != NULL);
    CHECK_EQ(pds_core_load_member(again, &saved), 0);
    CHECK_EQ(pds_core_n_machines(again), 2);
    /* A client node refuses joins. */
    CHECK_EQ(move(again, PDS_ROLE_STANDALONE, PDS_ROLE_CAUSE_SERVER_STOP, 0),
             0);
    CHECK_EQ(move(again, PDS_ROLE_CLIENT, PDS_ROLE_CAUSE_CLIENT_START, 0), 0);
    CHECK_EQ(pds_core_role(again), PDS_ROLE_CLIENT);
    CHECK_EQ(join(again, 1, 0xc1, 1, &u), 0);
    CHECK_EQ(u.joins[0].status, PDS_EPERM);
    CHECK(strstr(u.joins[0].errmsg, "not a server") != NULL);
    pds_core_free(core);
    pds_core_free(again);
}

TEST(members_reclaim_after_silence)
{
    struct pds_core_config cfg;
    struct pds_core *core = NULL;
    struct pds_update u;
    struct pds_event ev;

    memset(&cfg, 0, sizeof(cfg));
    cfg.node_id = 1;
    cfg.epoch = 1;
    cfg.role = PDS_ROLE_SERVER;
    cfg.max_machines = 5;
    cfg.reclaim_after_ms = 10000;
    pds_limits_default(&cfg.limits);
    CHECK_EQ(pds_core_new(&cfg, &core), 0);
    CHECK_EQ(join(core, 1, 0xd1, 1, &u), 0); /* now = 1001 */
    CHECK_EQ(join(core, 2, 0xd2, 1, &u), 0); /* stays connected */
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_PEER_LEFT;
    ev.now = 2000;
    ev.u.left.conn = 1;
    memset(ev.u.left.pk, 0xd1, PDS_KEY_BYTES);
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_TICK;
    ev.now = 11000; /* 9 s of silence: kept */
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_members, 0);
    CHECK_EQ(pds_core_n_machines(core), 3);
    ev.now = 12001; /* over 10 s: reclaimed */
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_members, 1);
    CHECK_EQ(u.members[0].state, PDS_MEMBER_STOPPED);
    CHECK(strstr(u.members[0].last_error, "reclaimed") != NULL);
    CHECK_EQ(pds_core_n_machines(core), 2);
    ev.now = 99999999; /* the connected one is never reclaimed */
    CHECK_EQ(pds_core_step(core, &ev, &u), 0);
    CHECK_EQ(u.n_members, 0);
    pds_core_free(core);
}

static void follow_cfg(struct pds_follow_config *c, size_t peers)
{
    memset(c, 0, sizeof(*c));
    c->max_peers = peers;
    c->max_inflight = 10;
    c->inflight_bytes = 0;
    c->snap_inflight = 2;
    c->max_per_message = 4;
}

TEST(follow_sync_ship_ack_and_certify)
{
    struct pds_follow fl;
    struct pds_follow_config c;
    struct pds_follow_out o;
    struct pds_follow_peer *p;
    struct pds_sync sy;
    struct pds_log_view v;
    uint8_t a[PDS_KEY_BYTES], b[PDS_KEY_BYTES];
    pds_index wend, pos = 0;

    memset(a, 1, sizeof(a));
    memset(b, 2, sizeof(b));
    follow_cfg(&c, 2);
    c.max_peers = 0;
    CHECK_EQ(pds_follow_init(&fl, &c), PDS_EINVAL);
    follow_cfg(&c, 2);
    CHECK_EQ(pds_follow_init(&fl, &c), 0);
    CHECK_EQ(pds_follow_set_standby(&fl, b), 0);
    memset(&sy, 0, sizeof(sy));
    memset(&v, 0, sizeof(v));
    sy.index = 5;
    sy.epoch = 1;
    sy.last.hlc = 7;
    sy.is_fresh = 1;
    v.first_index = 1;
    v.last_index = 20;
    v.has_entry = 1;
    v.entry_epoch = 1;
    v.entry_version = sy.last;
    CHECK_EQ(pds_follow_sync(&fl, 100, a, &sy, &v, 20, &o), 0);
    CHECK_EQ(o.verdict, PDS_SYNC_FOLLOW);
    CHECK(!o.has_confirmed); /* not the standby */
    p = pds_follow_find(&fl, 100);
    CHECK(p != NULL);
    CHECK_EQ(p->durable, 5);
    /* At most 4 per message, within 10 unacknowledged. */
    CHECK_EQ(pds_follow_want(&fl, p, 20, &wend), 4);
    CHECK_EQ(p->log.next, 6);
    CHECK_EQ(wend, 15);
    pds_follow_sent(p, 4, 400);
    CHECK_EQ(pds_follow_want(&fl, p, 20, &wend), 4);
    pds_follow_sent(p, 4, 400);
    CHECK_EQ(pds_follow_want(&fl, p, 20, &wend), 2); /* 6..15 in flight */
    pds_follow_sent(p, 2, 200);
    CHECK_EQ(pds_follow_want(&fl, p, 20, &wend), 0);        /* window full */
    CHECK_EQ(pds_follow_ack(&fl, 100, 16, &o), PDS_EPROTO); /* never sent */
    CHECK_EQ(pds_follow_ack(&fl, 100, 12, &o), 0);
    CHECK_EQ(p->durable, 12);
    CHECK_EQ(pds_follow_ack(&fl, 100, 11, &o), 0); /* stale */
    CHECK_EQ(p->log.acked, 12);
    CHECK_EQ(pds_follow_want(&fl, p, 20, &wend), 4);
    CHECK_EQ(wend, 20);
    /* The standby certifies; a second one is refused when full. */
    CHECK_EQ(pds_follow_sync(&fl, 200, b, &sy, &v, 20, &o), 0);
    CHECK(o.has_confirmed);
    CHECK_EQ(o.confirmed, 5);
    CHECK_EQ(pds_follow_sync(&fl, 300, b, &sy, &v, 20, &o), PDS_EBUSY);
    CHECK(pds_follow_durable_of(&fl, b, &pos));
    CHECK_EQ(pos, 5);
    /* Early shipping goes to the standby only at its next index. */
    CHECK(pds_follow_early(&fl, 21, 1) == NULL); /* not at 21 */
    p = pds_follow_find(&fl, 200);
    pds_follow_sent(p, 15, 1500);
    CHECK(pds_follow_early(&fl, 21, 1) == NULL); /* window: 15 + 1 > 10 */
    CHECK_EQ(pds_follow_ack(&fl, 200, 20, &o), 0);
    CHECK(o.has_confirmed);
    CHECK_EQ(o.confirmed, 20);
    CHECK(pds_follow_early(&fl, 21, 3) == p);
    pds_follow_sent(p, 3, 300);
    {
        uint64_t conns[4];
        CHECK_EQ(pds_follow_unship(&fl, 21, conns, 4), 1);
        CHECK_EQ(conns[0], 200);
    }
    /* Another destination: the old one's certification ends. */
    CHECK_EQ(pds_follow_set_standby(&fl, a), 1);
    CHECK(pds_follow_find(&fl, 100)->is_standby);
    CHECK_EQ(pds_follow_drop(&fl, 100), 1);
    CHECK_EQ(pds_follow_drop(&fl, 100), 0);
    CHECK_EQ(pds_follow_drop(&fl, 200), 0);
    CHECK_EQ(fl.n, 0);
    pds_follow_close(&fl);
}

TEST(follow_refresh_holds_the_log_and_sends_chunks)
{
    struct pds_follow fl;
    struct pds_follow_config c;
    struct pds_follow_out o;
    struct pds_follow_peer *p;
    struct pds_sync sy;
    struct pds_log_view v;
    uint8_t a[PDS_KEY_BYTES];
    pds_index wend;
    uint64_t job;

    memset(a, 1, sizeof(a));
    follow_cfg(&c, 4);
    CHECK_EQ(pds_follow_init(&fl, &c), 0);
    memset(&sy, 0, sizeof(sy));
    memset(&v, 0, sizeof(v));
    sy.index = 2; /* behind the retention */
    sy.epoch = 1;
    sy.is_fresh = 1;
    v.first_index = 10;
    v.last_index = 30;
    CHECK_EQ(pds_follow_sync(&fl, 7, a, &sy, &v, 30, &o), 0);
    CHECK_EQ(o.verdict, PDS_SYNC_REFRESH);
    CHECK(o.why != NULL);
    job = o.snap_job;
    CHECK(job != 0);
    p = pds_follow_find(&fl, 7);
    CHECK_EQ(p->phase, PDS_FOLLOW_SNAP_MAKING);
    CHECK_EQ(pds_follow_hold(&fl), 30); /* stamped here or later */
    CHECK_EQ(pds_follow_want(&fl, p, 30, &wend), 0);
    CHECK(!pds_follow_snap_may_send(&fl, p)); /* no copy yet */
    CHECK_EQ(pds_follow_snap_made(&fl, 7, job + 1, 0, 1, 31), PDS_ENOTFOUND);
    CHECK_EQ(pds_follow_snap_made(&fl, 8, job, 0, 1, 31), PDS_ENOTFOUND);
    /* A failed copy changes nothing: the host ends the link. */
    CHECK_EQ(pds_follow_snap_made(&fl, 7, job, PDS_EIO, 0, 0), 0);
    CHECK_EQ(p->phase, PDS_FOLLOW_SNAP_MAKING);
    CHECK_EQ(pds_follow_snap_made(&fl, 7, job, 0, 1, 31), 0);
    CHECK_EQ(pds_follow_hold(&fl), 31);
    /* Two chunks in flight at most. */
    CHECK(pds_follow_snap_may_send(&fl, p));
    pds_follow_snap_sent(p, 0);
    CHECK(pds_follow_snap_may_send(&fl, p));
    pds_follow_snap_sent(p, 0);
    CHECK(!pds_follow_snap_may_send(&fl, p));
    CHECK_EQ(pds_follow_snap_ack(&fl, 7, 5), 0); /* never sent */
    CHECK_EQ(pds_follow_snap_ack(&fl, 7, 0), 1);
    CHECK(pds_follow_snap_may_send(&fl, p));
    pds_follow_snap_sent(p, 1); /* the last: the log follows */
    CHECK_EQ(p->phase, PDS_FOLLOW_LOG);
    CHECK_EQ(p->log.next, 32);
    CHECK_EQ(pds_follow_hold(&fl), 0);
    CHECK_EQ(pds_follow_snap_ack(&fl, 7, 2), 0); /* the last one's: stale */
    /* An acknowledgement sent before the refresh certifies what it says,
     * not the copy's position (not confirmed yet). */
    pds_follow_set_standby(&fl, a);
    CHECK_EQ(pds_follow_ack(&fl, 7, 20, &o), 0);
    CHECK(o.has_confirmed);
    CHECK_EQ(o.confirmed, 20);
    CHECK_EQ(p->log.acked, 31);
    CHECK_EQ(pds_follow_want(&fl, p, 35, &wend), 4);
    /* Trimmed under it: a refresh again, with a new copy. */
    CHECK_EQ(pds_follow_refresh(&fl, 7, "fell behind", 35, &o), 0);
    CHECK(o.snap_job > job);
    CHECK_STR(p->why, "fell behind");
    CHECK_EQ(pds_follow_refresh(&fl, 9, "x", 35, &o), PDS_ENOTFOUND);
    /* An acknowledgement during a refresh is stale. */
    CHECK_EQ(pds_follow_ack(&fl, 7, 40, &o), 0);
    CHECK(!o.has_confirmed);
    pds_follow_close(&fl);
}

TEST(follow_window_shrinks_with_big_entries)
{
    struct pds_follow fl;
    struct pds_follow_config c;
    struct pds_follow_out o;
    struct pds_follow_peer *p;
    struct pds_sync sy;
    struct pds_log_view v;
    uint8_t a[PDS_KEY_BYTES];
    pds_index wend;

    memset(a, 1, sizeof(a));
    follow_cfg(&c, 1);
    c.max_per_message = 0;
    c.inflight_bytes = 3000; /* three entries of 1000 bytes */
    CHECK_EQ(pds_follow_init(&fl, &c), 0);
    memset(&sy, 0, sizeof(sy));
    memset(&v, 0, sizeof(v));
    v.first_index = 1;
    v.last_index = 50;
    sy.is_fresh = 1;
    CHECK_EQ(pds_follow_sync(&fl, 1, a, &sy, &v, 50, &o), 0);
    CHECK_EQ(o.verdict, PDS_SYNC_FOLLOW);
    p = pds_follow_find(&fl, 1);
    CHECK_EQ(pds_follow_want(&fl, p, 50, &wend), 10);
    /* The host read more than allowed (by bytes): the window's end covers
     * what it sends. */
    CHECK_EQ(pds_follow_window_end(&fl, p, 50, 12), 12);
    pds_follow_sent(p, 2, 2000);
    CHECK_EQ(pds_follow_want(&fl, p, 50, &wend), 1); /* 3 - 2 in flight */
    CHECK_EQ(wend, 3);
    pds_follow_close(&fl);
}

TEST_MAIN(T(repl_decide_follow_or_refresh),
          T(follow_sync_ship_ack_and_certify),
          T(follow_refresh_holds_the_log_and_sends_chunks),
          T(follow_window_shrinks_with_big_entries),
          T(repl_fit_keeps_entries_with_their_memos),
          T(core_client_writes_last_writer_wins_by_their_own_version),
          T(core_superseded_is_answered_once_the_winner_is_durable),
          T(core_delete_user_by_last_writer_wins),
          T(core_write_older_than_a_delete_user_loses),
          T(core_delete_user_of_a_deleted_owner_moves_the_mark_on),
          T(core_restamped_delete_user_sent_again_is_the_same_delete),
          T(core_loser_to_an_unconfirmed_version_is_not_decided),
          T(core_client_clock_far_ahead_is_restamped),
          T(core_restamped_write_sent_again_is_the_same_write),
          T(members_enroll_refuse_limit),
          T(members_reclaim_after_silence),
          T(members_stop_and_start),
          T(members_survive_reload_and_roles),
          T(role_moves_follow_the_table),
          T(epoch_heard_is_stored_then_taken),
          T(ack_standby_waits_then_times_out_per_commit),
          T(ack_optional_degrades_and_recovers),
          T(ack_local_and_auto),
          T(outbox_answers_decide_each_write),
          T(repl_retained_says_who_needs_refresh),
          T(link_retry_backs_off_with_jitter),
          T(hlc_monotonic_across_clock_steps),
          T(hlc_logical_overflow_carries),
          T(hlc_observe_remote),
          T(lww_order),
          T(reckey_round_trip),
          T(record_round_trip),
          T(entry_round_trip),
          T(key_validation),
          T(errors_have_text),
          T(core_write_is_answered_after_persist),
          T(core_refuses_bad_writes_at_once),
          T(core_user_limit_refuse),
          T(core_user_limit_evicts_lru),
          T(core_persist_failure_undoes),
          T(core_delete_and_delete_owner),
          T(core_loads_owners_and_hlc))
