/*
 * outbox.c - a client's queued writes and their replay (outbox.h).
 */
#include "pds.h"

enum pds_outbox_due pds_outbox_due(const struct pds_outbox_state *s,
                                   uint64_t now)
{
    if (s->is_sent || s->is_done)
        return PDS_OUTBOX_SKIP;
    return s->retry_at > now ? PDS_OUTBOX_WAIT : PDS_OUTBOX_SEND;
}

void pds_outbox_sent(struct pds_outbox_state *s)
{
    s->is_sent = 1;
}

/* Errors that refuse the write itself: sending it again changes nothing. */
static int is_refusal(int status)
{
    return status == PDS_ETOOBIG || status == PDS_ELIMIT ||
           status == PDS_EINVAL || status == PDS_EBADNAME ||
           status == PDS_ENOTFOUND || status == PDS_EPERM;
}

enum pds_outbox_verdict pds_outbox_answer(struct pds_outbox_state *s,
                                          int status,
                                          int is_superseded,
                                          pds_index index,
                                          int is_delete_user,
                                          pds_index applied,
                                          uint64_t now,
                                          int *was_sent)
{
    *was_sent = 0;
    if (s->is_done || !s->is_sent)
        return PDS_OUTBOX_IGNORED;
    *was_sent = !s->is_acked;
    if (status == PDS_ETIMEDOUT) {
        s->is_sent = 0;
        s->retry_at = now + PDS_OUTBOX_RETRY_MS;
        return PDS_OUTBOX_RETRY_SOON;
    }
    if (status == PDS_ENOTFOUND && is_delete_user) {
        s->is_done = 1;
        return PDS_OUTBOX_HOLDS;
    }
    if (status != 0 && !is_refusal(status)) {
        s->is_sent = 0;
        s->retry_at = now + PDS_OUTBOX_TRANSIENT_MS;
        return PDS_OUTBOX_RETRY_LATER;
    }
    if (status != 0) {
        s->is_done = 1;
        return PDS_OUTBOX_REFUSED;
    }
    if (is_superseded) {
        s->is_done = 1;
        return PDS_OUTBOX_LOST;
    }
    s->is_acked = 1;
    s->index = index;
    if (index <= applied)
        s->is_done = 1;
    return PDS_OUTBOX_TAKEN;
}

void pds_outbox_link_lost(struct pds_outbox_state *s)
{
    if (!s->is_acked)
        s->is_sent = 0;
}

void pds_outbox_settle(struct pds_outbox_state *s, pds_index applied)
{
    if (s->is_acked && s->index <= applied)
        s->is_done = 1;
}
