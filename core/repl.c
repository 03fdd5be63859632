/*
 * repl.c - the decisions of log shipping (see repl.h).
 */
#include "pds.h"

enum pds_sync_verdict pds_repl_decide(const struct pds_sync *sync,
                                      const struct pds_log_view *view,
                                      const char **why)
{
    *why = "";
    if (sync->index > 0 && !sync->is_fresh) {
        *why = "data of its own (first join)";
        return PDS_SYNC_REFRESH;
    }
    if (sync->index > view->last_index) {
        *why = "a position the server never had";
        return PDS_SYNC_REFRESH;
    }
    if (sync->index == 0) {
        /* Empty: the whole log must still be there. */
        if (view->last_index > 0 && view->first_index != 1) {
            *why = "empty, and the log does not start at 1";
            return PDS_SYNC_REFRESH;
        }
        return PDS_SYNC_FOLLOW;
    }
    if (view->has_entry) {
        if (view->entry_epoch != sync->epoch ||
            (sync->last.hlc != 0 &&
             pds_version_cmp(&view->entry_version, &sync->last) != 0)) {
            *why = "on a branch that diverged";
            return PDS_SYNC_REFRESH;
        }
        return PDS_SYNC_FOLLOW;
    }
    /* Its last entry is gone here: the next one must still be kept, or the
     * server itself started from a snapshot at exactly that position. Each
     * term of a server has an epoch of its own, so one (epoch, index) is
     * one entry on every node: the same epoch there means the same history
     * up to it. */
    if (pds_repl_retained(sync->index, view->first_index, view->last_index)) {
        if (view->index_epoch != sync->epoch) {
            *why = "on a branch that diverged";
            return PDS_SYNC_REFRESH;
        }
        return PDS_SYNC_FOLLOW;
    }
    *why = "behind the log retention";
    return PDS_SYNC_REFRESH;
}

int pds_repl_retained(pds_index position,
                      pds_index first_index,
                      pds_index last_index)
{
    if (position >= last_index)
        return 1; /* nothing to catch up (or ahead: decided elsewhere) */
    return first_index != 0 && position + 1 >= first_index;
}

void pds_repl_follow(struct pds_follower *f, pds_index position)
{
    f->next = position + 1;
    f->acked = position;
}

pds_index pds_repl_window(const struct pds_follower *f,
                          pds_index last,
                          pds_index max_inflight)
{
    pds_index room, ready;

    if (f->next > last || f->next - f->acked > max_inflight)
        return 0;
    ready = last - f->next + 1;
    room = max_inflight - (f->next - f->acked) + 1;
    return ready < room ? ready : room;
}

pds_index pds_repl_window_end(const struct pds_follower *f,
                              pds_index last,
                              pds_index max_inflight)
{
    pds_index end = f->acked + max_inflight;

    return end < last ? end : last;
}

void pds_repl_sent(struct pds_follower *f, pds_index n)
{
    f->next += n;
}

int pds_repl_ack(struct pds_follower *f, pds_index index)
{
    if (index >= f->next)
        return PDS_EPROTO;
    if (index > f->acked)
        f->acked = index;
    return 0;
}

int pds_repl_accept(pds_index last, pds_index first)
{
    return first == last + 1 ? 0 : PDS_EPROTO;
}

void pds_repl_fit(const uint8_t *buf,
                  size_t *len,
                  size_t *n,
                  pds_index first,
                  const struct pds_clamp *cl,
                  size_t *n_cl,
                  size_t budget)
{
    size_t off = 0, k = 0, m = 0;

    if (*len + *n_cl * PDS_CLAMP_BYTES <= budget)
        return;
    while (k < *n) {
        size_t next = off + 4 + pds_get_u32be(buf + off);
        size_t mm = m;
        while (mm < *n_cl && cl[mm].index <= first + k)
            mm++;
        if (k > 0 && next + mm * PDS_CLAMP_BYTES > budget)
            break;
        off = next;
        m = mm;
        k++;
    }
    *len = off;
    *n = k;
    *n_cl = m;
}

int pds_repl_defer_flush(pds_index applied,
                         pds_index window_end,
                         pds_index n_held,
                         pds_index max_hold,
                         int more_here)
{
    return more_here && applied < window_end && n_held < max_hold;
}
