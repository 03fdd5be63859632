/*
 * ack.c - when the server acknowledges a write that waits for the standby
 * (ack.h).
 */
#include <stdlib.h>
#include <string.h>

#include "pds.h"

void pds_ack_init(struct pds_ack *ack,
                  enum pds_ack_mode mode,
                  uint32_t timeout_ms)
{
    memset(ack, 0, sizeof(*ack));
    ack->mode = mode;
    ack->timeout_ms = timeout_ms;
}

void pds_ack_close(struct pds_ack *ack)
{
    free(ack->waits);
    ack->waits = NULL;
    ack->n_waits = 0;
    ack->cap_waits = 0;
}

static void out_clear(struct pds_ack_out *out)
{
    memset(out, 0, sizeof(*out));
}

int pds_ack_waits(const struct pds_ack *ack, int is_server)
{
    if (!is_server || !ack->has_standby || ack->mode == PDS_ACK_LOCAL)
        return 0;
    return !(ack->mode == PDS_ACK_STANDBY_OPTIONAL && ack->is_degraded);
}

const char *pds_ack_mode_text(const struct pds_ack *ack)
{
    if (!ack->has_standby) {
        if (ack->mode == PDS_ACK_STANDBY)
            return "local (ack_mode = standby, but no replication "
                   "destination is set)";
        if (ack->mode == PDS_ACK_STANDBY_OPTIONAL)
            return "local (ack_mode = standby-optional, but no replication "
                   "destination is set)";
    }
    switch (ack->mode) {
    case PDS_ACK_LOCAL:
        return "local";
    case PDS_ACK_STANDBY:
        return "standby";
    case PDS_ACK_STANDBY_OPTIONAL:
        return ack->is_degraded ? "standby-optional (degraded to local: the "
                                  "standby is unreachable)"
                                : "standby-optional";
    default:
        return ack->has_standby ? "standby" : "local";
    }
}

/* Forget the waits of the writes answered up to `answered`. */
static void drop_answered(struct pds_ack *ack, pds_index answered)
{
    size_t k = 0;

    while (k < ack->n_waits && ack->waits[k].last <= answered)
        k++;
    if (k > 0) {
        memmove(ack->waits, ack->waits + k,
                (ack->n_waits - k) * sizeof(*ack->waits));
        ack->n_waits -= k;
    }
}

/* What the standby confirmed and is durable here is answered; the waits
 * before it are done. */
static void settle(struct pds_ack *ack, struct pds_ack_out *out)
{
    pds_index up_to = ack->standby_acked < ack->committed ? ack->standby_acked
                                                          : ack->committed;

    if (up_to > out->answer)
        out->answer = up_to;
    drop_answered(ack, up_to);
}

/* The commit up to last waits from now. Without memory it shares the
 * deadline of the commit before; 0 when none waits to share with. */
static int wait_add(struct pds_ack *ack, pds_index last, uint64_t now)
{
    if (ack->n_waits == ack->cap_waits) {
        size_t cap = ack->cap_waits != 0 ? 2 * ack->cap_waits : 64;
        struct pds_ack_wait *w = realloc(ack->waits, cap * sizeof(*w));
        if (w == NULL) {
            if (ack->n_waits == 0)
                return 0;
            ack->waits[ack->n_waits - 1].last = last;
            return 1;
        }
        ack->waits = w;
        ack->cap_waits = cap;
    }
    ack->waits[ack->n_waits].last = last;
    ack->waits[ack->n_waits].at = now;
    ack->n_waits++;
    return 1;
}

void pds_ack_committed(struct pds_ack *ack,
                       pds_index last,
                       int waits,
                       uint64_t now,
                       struct pds_ack_out *out)
{
    out_clear(out);
    if (last > ack->committed)
        ack->committed = last;
    if (!waits || !wait_add(ack, last, now)) {
        out->answer = last;
        return;
    }
    settle(ack, out);
}

void pds_ack_confirmed(struct pds_ack *ack,
                       pds_index index,
                       struct pds_ack_out *out)
{
    out_clear(out);
    if (index > ack->standby_acked)
        ack->standby_acked = index;
    if (ack->is_degraded) {
        ack->is_degraded = 0;
        out->recovered = 1;
    }
    settle(ack, out);
}

void pds_ack_tick(struct pds_ack *ack,
                  pds_index answered,
                  uint64_t now,
                  struct pds_ack_out *out)
{
    size_t k = 0;

    out_clear(out);
    drop_answered(ack, answered);
    while (k < ack->n_waits && now - ack->waits[k].at >= ack->timeout_ms)
        k++;
    if (k == 0)
        return;
    if (ack->mode == PDS_ACK_STANDBY_OPTIONAL) {
        ack->is_degraded = 1;
        out->degraded = 1;
        out->answer = ack->committed;
        drop_answered(ack, ack->committed);
        return;
    }
    out->timeout = ack->waits[k - 1].last;
    drop_answered(ack, out->timeout);
}

void pds_ack_set_standby(struct pds_ack *ack,
                         int has_standby,
                         struct pds_ack_out *out)
{
    out_clear(out);
    ack->standby_acked = 0; /* from its next confirmation */
    ack->has_standby = has_standby;
    if (!has_standby) {
        ack->is_degraded = 0;
        out->answer = ack->committed;
        ack->n_waits = 0;
    }
}

void pds_ack_standby_gone(struct pds_ack *ack)
{
    ack->standby_acked = 0;
}

void pds_ack_server_stopped(struct pds_ack *ack, struct pds_ack_out *out)
{
    out_clear(out);
    if (ack->n_waits > 0)
        out->timeout = ack->waits[ack->n_waits - 1].last;
    ack->n_waits = 0;
    ack->is_degraded = 0;
}
