/*
 * repl.h - the decisions of log shipping, I/O-free (part of pds_core).
 * Included by pds.h.
 *
 * The server keeps one struct pds_follower per member following its log.
 * A member's SYNC names its position and the version of its last entry;
 * pds_repl_decide() says whether the log can continue from there or the
 * member needs a snapshot (a refresh). Entries are shipped within a window
 * of unacknowledged ones; acknowledgements move forward only.
 */
#ifndef PDS_REPL_H
#define PDS_REPL_H

/* A follower's claim (SYNC). */
struct pds_sync {
    pds_epoch epoch; /* of its last entry */
    pds_index index; /* its position, 0 when empty */
    /* The version of its last entry; hlc 0 when unknown (it started from
     * a snapshot and holds no entry at its position). */
    struct pds_version last;
    int is_fresh; /* its data came from this group's log alone */
};

/* What the server's log says about that position. */
struct pds_log_view {
    pds_index first_index; /* oldest retained entry, 0 when none */
    pds_index last_index;  /* the server's position */
    int has_entry;         /* the entry at the follower's index is kept */
    pds_epoch entry_epoch; /* ... and its epoch and version */
    struct pds_version entry_version;
    /* The epoch of the entry at the follower's index when the log no
     * longer holds it (from the server's record of its epochs). */
    pds_epoch index_epoch;
};

enum pds_sync_verdict {
    PDS_SYNC_FOLLOW = 0, /* ship the log from index + 1 */
    PDS_SYNC_REFRESH = 1 /* send a snapshot first */
};

/*
 * Decide how a follower continues. *why (static text) says why it needs a
 * refresh: data of its own, a position the server never had, behind the
 * retention, a diverged branch, empty while the log does not start at 1.
 */
enum pds_sync_verdict pds_repl_decide(const struct pds_sync *sync,
                                      const struct pds_log_view *view,
                                      const char **why);

/* The server's bookkeeping of one follower. */
struct pds_follower {
    pds_index next;  /* the next index to send */
    pds_index acked; /* durable on the follower */
};

/* Start following from position (after a FOLLOW verdict or a snapshot). */
void pds_repl_follow(struct pds_follower *f, pds_index position);
/* How many entries may go now: the log up to last, at most max_inflight
 * unacknowledged. */
pds_index pds_repl_window(const struct pds_follower *f,
                          pds_index last,
                          pds_index max_inflight);
/* The last index sent before another acknowledgement is heard: the log up
 * to last, within max_inflight of what the follower acknowledged. Every
 * ENTRIES message carries it, so that a follower knows how long it may
 * hold entries back. */
pds_index pds_repl_window_end(const struct pds_follower *f,
                              pds_index last,
                              pds_index max_inflight);
/*
 * Whether the server's retained log (first_index..last_index; first_index
 * 0 when it keeps no entry) still continues from a member's position, so
 * that it can catch up from the log: 1, or 0 when it will need a refresh
 * (a snapshot) when it comes back ("needs refresh" in the client list).
 * pds_repl_decide() follows the same rule for a position it knows.
 */
int pds_repl_retained(pds_index position,
                      pds_index first_index,
                      pds_index last_index);

/* n entries were sent. */
void pds_repl_sent(struct pds_follower *f, pds_index n);
/* An acknowledgement: PDS_EPROTO (nothing changed) for one of what was
 * never sent. One below the last is stale (sent before a refresh moved the
 * follower on) and changes nothing. */
int pds_repl_ack(struct pds_follower *f, pds_index index);

/* Follower: may entries starting at first be applied at position last?
 * PDS_EPROTO when they do not follow it. */
int pds_repl_accept(pds_index last, pds_index first);

/*
 * Follower holding n_held entries, up to applied: may they wait,
 * unacknowledged, to be committed together with the next ones? Only while
 * more from the sender is already here (more_here), the sender sends more
 * before it needs an acknowledgement (up to window_end), and fewer than
 * max_hold wait. So one commit takes what piled up during the last one,
 * the sender's window never closes on entries held back, and with
 * max_hold half the window, the sender's next messages arrive during the
 * commit.
 */
int pds_repl_defer_flush(pds_index applied,
                         pds_index window_end,
                         pds_index n_held,
                         pds_index max_hold,
                         int more_here);

struct pds_clamp;
/*
 * Entries read from the log (*len bytes of length-prefixed entries in buf,
 * *n of them, the first at index first) and the memos under them (*n_cl,
 * in index order, PDS_CLAMP_BYTES each on the wire) go in one message:
 * keep the longest run of entries whose bytes and memos stay within
 * budget, at least one. Cuts *len, *n and *n_cl.
 */
void pds_repl_fit(const uint8_t *buf,
                  size_t *len,
                  size_t *n,
                  pds_index first,
                  const struct pds_clamp *cl,
                  size_t *n_cl,
                  size_t budget);

#endif /* PDS_REPL_H */
