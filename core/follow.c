/*
 * follow.c - the server's followers (see follow.h).
 */
#include <stdlib.h>
#include <string.h>

#include "pds.h"

int pds_follow_init(struct pds_follow *fl, const struct pds_follow_config *cfg)
{
    memset(fl, 0, sizeof(*fl));
    if (cfg->max_peers == 0 || cfg->max_inflight == 0 ||
        cfg->snap_inflight == 0)
        return PDS_EINVAL;
    fl->peers = calloc(cfg->max_peers, sizeof(*fl->peers));
    if (fl->peers == NULL)
        return PDS_ENOMEM;
    fl->cfg = *cfg;
    return 0;
}

void pds_follow_close(struct pds_follow *fl)
{
    free(fl->peers);
    memset(fl, 0, sizeof(*fl));
}

struct pds_follow_peer *pds_follow_find(struct pds_follow *fl, uint64_t conn)
{
    size_t i;

    for (i = 0; i < fl->n; i++) {
        if (fl->peers[i].conn == conn)
            return &fl->peers[i];
    }
    return NULL;
}

static int is_standby_pk(const struct pds_follow *fl, const uint8_t *pk)
{
    return fl->has_standby && memcmp(fl->standby_pk, pk, PDS_KEY_BYTES) == 0;
}

int pds_follow_set_standby(struct pds_follow *fl, const uint8_t *pk)
{
    int was = 0;
    size_t i;

    for (i = 0; i < fl->n; i++)
        was |= fl->peers[i].is_standby;
    fl->has_standby = pk != NULL;
    if (pk != NULL)
        memcpy(fl->standby_pk, pk, PDS_KEY_BYTES);
    else
        memset(fl->standby_pk, 0, PDS_KEY_BYTES);
    for (i = 0; i < fl->n; i++)
        fl->peers[i].is_standby = is_standby_pk(fl, fl->peers[i].pk);
    return was;
}

/* The follower on conn, reset, added when new: NULL when the table is
 * full. */
static struct pds_follow_peer *
peer_reset(struct pds_follow *fl, uint64_t conn, const uint8_t *pk)
{
    struct pds_follow_peer *p = pds_follow_find(fl, conn);

    if (p == NULL) {
        if (fl->n == fl->cfg.max_peers)
            return NULL;
        p = &fl->peers[fl->n++];
    }
    memset(p, 0, sizeof(*p));
    p->conn = conn;
    memcpy(p->pk, pk, PDS_KEY_BYTES);
    p->is_standby = is_standby_pk(fl, pk);
    return p;
}

static void out_clear(struct pds_follow_out *out)
{
    memset(out, 0, sizeof(*out));
}

/* Begin a refresh of p: its copy is stamped at committed or later, so the
 * log from there on is kept from now. */
static void start_refresh(struct pds_follow *fl,
                          struct pds_follow_peer *p,
                          const char *why,
                          pds_index committed,
                          struct pds_follow_out *out)
{
    size_t n = strlen(why);

    if (n >= sizeof(p->why))
        n = sizeof(p->why) - 1;
    memcpy(p->why, why, n);
    p->why[n] = '\0';
    p->phase = PDS_FOLLOW_SNAP_MAKING;
    p->has_durable = 0;
    p->hold = committed > 0 ? committed : 1;
    p->snap_job = ++fl->snap_jobs;
    out->verdict = PDS_SYNC_REFRESH;
    out->why = why;
    out->snap_job = p->snap_job;
}

int pds_follow_sync(struct pds_follow *fl,
                    uint64_t conn,
                    const uint8_t *pk,
                    const struct pds_sync *sync,
                    const struct pds_log_view *view,
                    pds_index committed,
                    struct pds_follow_out *out)
{
    const char *why = NULL;
    enum pds_sync_verdict v = pds_repl_decide(sync, view, &why);
    struct pds_follow_peer *p;

    out_clear(out);
    p = peer_reset(fl, conn, pk);
    if (p == NULL)
        return PDS_EBUSY;
    if (v == PDS_SYNC_REFRESH) {
        start_refresh(fl, p, why != NULL ? why : "refresh", committed, out);
        return 0;
    }
    pds_repl_follow(&p->log, sync->index);
    p->has_durable = 1;
    p->durable = sync->index;
    out->verdict = PDS_SYNC_FOLLOW;
    if (p->is_standby) {
        out->has_confirmed = 1;
        out->confirmed = sync->index;
    }
    return 0;
}

int pds_follow_refresh(struct pds_follow *fl,
                       uint64_t conn,
                       const char *why,
                       pds_index committed,
                       struct pds_follow_out *out)
{
    struct pds_follow_peer *p = pds_follow_find(fl, conn);
    uint8_t pk[PDS_KEY_BYTES];

    out_clear(out);
    if (p == NULL)
        return PDS_ENOTFOUND;
    memcpy(pk, p->pk, PDS_KEY_BYTES);
    p = peer_reset(fl, conn, pk);
    start_refresh(fl, p, why, committed, out);
    return 0;
}

/* The in-flight window in entries: max_inflight, fewer when entries are
 * big, so that about inflight_bytes wait for a slow follower. */
static pds_index window_of(const struct pds_follow *fl,
                           const struct pds_follow_peer *p)
{
    pds_index w;

    if (p->entry_bytes == 0 || fl->cfg.inflight_bytes == 0)
        return fl->cfg.max_inflight;
    w = fl->cfg.inflight_bytes / p->entry_bytes;
    return w < 1 ? 1 : w > fl->cfg.max_inflight ? fl->cfg.max_inflight : w;
}

pds_index pds_follow_want(const struct pds_follow *fl,
                          const struct pds_follow_peer *p,
                          pds_index last,
                          pds_index *window_end)
{
    pds_index w = window_of(fl, p);
    pds_index n;

    *window_end = 0;
    if (p->phase != PDS_FOLLOW_LOG)
        return 0;
    n = pds_repl_window(&p->log, last, w);
    if (n == 0)
        return 0;
    if (fl->cfg.max_per_message != 0 && n > fl->cfg.max_per_message)
        n = fl->cfg.max_per_message;
    *window_end = pds_repl_window_end(&p->log, last, w);
    return n;
}

pds_index pds_follow_window_end(const struct pds_follow *fl,
                                const struct pds_follow_peer *p,
                                pds_index last,
                                pds_index n)
{
    pds_index end = pds_repl_window_end(&p->log, last, window_of(fl, p));

    if (n > 0 && end < p->log.next + n - 1)
        end = p->log.next + n - 1; /* the window shrank */
    return end;
}

void pds_follow_sent(struct pds_follow_peer *p, pds_index n, uint64_t bytes)
{
    if (n == 0)
        return;
    p->entry_bytes = bytes / n;
    pds_repl_sent(&p->log, n);
}

int pds_follow_ack(struct pds_follow *fl,
                   uint64_t conn,
                   pds_index index,
                   struct pds_follow_out *out)
{
    struct pds_follow_peer *p = pds_follow_find(fl, conn);

    out_clear(out);
    if (p == NULL || p->phase != PDS_FOLLOW_LOG)
        return 0;
    if (pds_repl_ack(&p->log, index) != 0)
        return PDS_EPROTO;
    /* What it said, not p->log.acked: after a refresh that is the copy's
     * position, which it has not confirmed yet. */
    p->has_durable = 1;
    p->durable = index;
    if (p->is_standby) {
        out->has_confirmed = 1;
        out->confirmed = index;
    }
    return 0;
}

int pds_follow_snap_made(struct pds_follow *fl,
                         uint64_t conn,
                         uint64_t job,
                         int status,
                         pds_epoch epoch,
                         pds_index index)
{
    struct pds_follow_peer *p = pds_follow_find(fl, conn);

    if (p == NULL || p->phase != PDS_FOLLOW_SNAP_MAKING || p->snap_job != job)
        return PDS_ENOTFOUND;
    if (status != 0)
        return 0;
    p->phase = PDS_FOLLOW_SNAP_SENDING;
    p->snap_epoch = epoch;
    p->snap_index = index;
    p->snap_chunk = 0;
    p->snap_confirmed = 0;
    p->hold = index > 0 ? index : 1;
    return 0;
}

int pds_follow_snap_may_send(const struct pds_follow *fl,
                             const struct pds_follow_peer *p)
{
    return p->phase == PDS_FOLLOW_SNAP_SENDING &&
           p->snap_chunk < p->snap_confirmed + fl->cfg.snap_inflight;
}

void pds_follow_snap_sent(struct pds_follow_peer *p, int is_last)
{
    if (p->phase != PDS_FOLLOW_SNAP_SENDING)
        return;
    p->snap_chunk++;
    if (is_last) {
        /* The log from the copy's position follows at once. */
        p->phase = PDS_FOLLOW_LOG;
        p->hold = 0;
        pds_repl_follow(&p->log, p->snap_index);
    }
}

int pds_follow_snap_ack(struct pds_follow *fl, uint64_t conn, uint64_t rid)
{
    struct pds_follow_peer *p = pds_follow_find(fl, conn);

    if (p == NULL || p->phase != PDS_FOLLOW_SNAP_SENDING)
        return 0; /* the last chunk's confirmation, or a stale one */
    if (rid >= p->snap_chunk)
        return 0; /* of an earlier copy, still on its way */
    if (rid + 1 > p->snap_confirmed)
        p->snap_confirmed = rid + 1;
    return 1;
}

pds_index pds_follow_hold(const struct pds_follow *fl)
{
    pds_index hold = 0;
    size_t i;

    for (i = 0; i < fl->n; i++) {
        const struct pds_follow_peer *p = &fl->peers[i];
        if (p->phase != PDS_FOLLOW_LOG && (hold == 0 || p->hold < hold))
            hold = p->hold;
    }
    return hold;
}

struct pds_follow_peer *
pds_follow_early(struct pds_follow *fl, pds_index first, pds_index n)
{
    size_t i;

    if (n == 0)
        return NULL;
    for (i = 0; i < fl->n; i++) {
        struct pds_follow_peer *p = &fl->peers[i];
        if (!p->is_standby)
            continue;
        if (p->phase != PDS_FOLLOW_LOG || p->log.next != first ||
            p->log.next - p->log.acked + n > window_of(fl, p))
            return NULL;
        return p;
    }
    return NULL;
}

size_t pds_follow_unship(const struct pds_follow *fl,
                         pds_index first,
                         uint64_t *conns,
                         size_t max)
{
    size_t i, k = 0;

    for (i = 0; i < fl->n; i++) {
        const struct pds_follow_peer *p = &fl->peers[i];
        if (p->phase != PDS_FOLLOW_LOG || p->log.next <= first)
            continue;
        if (k < max)
            conns[k] = p->conn;
        k++;
    }
    return k;
}

int pds_follow_drop(struct pds_follow *fl, uint64_t conn)
{
    struct pds_follow_peer *p = pds_follow_find(fl, conn);
    int was;

    if (p == NULL)
        return 0;
    was = p->is_standby;
    *p = fl->peers[--fl->n];
    memset(&fl->peers[fl->n], 0, sizeof(fl->peers[fl->n]));
    return was;
}

int pds_follow_durable_of(const struct pds_follow *fl,
                          const uint8_t *pk,
                          pds_index *position)
{
    int found = 0;
    size_t i;

    for (i = 0; i < fl->n; i++) {
        const struct pds_follow_peer *p = &fl->peers[i];
        if (memcmp(p->pk, pk, PDS_KEY_BYTES) == 0 && p->has_durable &&
            (!found || p->durable > *position)) {
            *position = p->durable;
            found = 1;
        }
    }
    return found;
}
