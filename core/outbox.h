/*
 * outbox.h - a client's queued writes and their replay, I/O-free (part of
 * pds_core). Included by pds.h.
 *
 * A write made on a client while its server is away is stored in the
 * client's outbox and sent when the link is back, oldest first, up to
 * PDS_OUTBOX_WINDOW unanswered at a time. The server's answer decides what
 * becomes of it (pds_outbox_answer()):
 *   taken       acknowledged at an index of the server's log; done once the
 *               client has applied the log up to there;
 *   lost        the server holds a newer version: done (counted, logged);
 *   refused     the write itself is wrong for the server (a limit, a name,
 *               a permission): done (counted, logged);
 *   holds       a delete-user of an owner the server no longer has: what it
 *               asked for holds, done;
 *   retry soon  committed on the server but not confirmed by its standby in
 *               time (or lost to a version the standby has not confirmed):
 *               sent again after PDS_OUTBOX_RETRY_MS, then decided;
 *   retry later the server cannot take writes for now (its disk or budget
 *               is full, an I/O error, it is stopping): kept in its place
 *               and sent again after PDS_OUTBOX_TRANSIENT_MS.
 * A write waiting for its retry time holds back the ones after it (order).
 * When the link is lost, the unanswered writes are sent again on the next
 * one (the server recognizes duplicates by their version).
 *
 * The host keeps one struct pds_outbox_state per queued write, in the
 * order queued, beside its bytes; times are its monotonic milliseconds.
 */
#ifndef PDS_OUTBOX_H
#define PDS_OUTBOX_H

#define PDS_OUTBOX_WINDOW 1024       /* writes sent and not answered */
#define PDS_OUTBOX_RETRY_MS 1000     /* "retry soon" */
#define PDS_OUTBOX_TRANSIENT_MS 5000 /* "retry later" */

struct pds_outbox_state {
    int is_sent;       /* on the current link, not answered */
    int is_acked;      /* taken by the server at index */
    int is_done;       /* answered for good: leaves the outbox */
    pds_index index;   /* the server's index of it, once acked */
    uint64_t retry_at; /* not sent again before */
};

enum pds_outbox_verdict {
    PDS_OUTBOX_IGNORED = 0, /* not an answer it waits for (stale, late) */
    PDS_OUTBOX_TAKEN,
    PDS_OUTBOX_LOST,
    PDS_OUTBOX_REFUSED,
    PDS_OUTBOX_HOLDS,
    PDS_OUTBOX_RETRY_SOON,
    PDS_OUTBOX_RETRY_LATER
};

/* Whether the write in state s goes now (oldest first, while fewer than
 * PDS_OUTBOX_WINDOW are sent and unanswered). */
enum pds_outbox_due {
    PDS_OUTBOX_SKIP = 0, /* sent on this link, or done */
    PDS_OUTBOX_SEND,     /* send it, then pds_outbox_sent() */
    PDS_OUTBOX_WAIT      /* its retry time has not come: it, and every
                          * write after it, wait (their order holds) */
};
enum pds_outbox_due pds_outbox_due(const struct pds_outbox_state *s,
                                   uint64_t now);
void pds_outbox_sent(struct pds_outbox_state *s);

/*
 * The server's answer to the write in state s: status 0 or its PDS_E*
 * error; for status 0, is_superseded (the server held a newer version) or
 * the index it took the write at; is_delete_user: the write is a
 * delete-user; applied: the client's applied position. Updates s and says
 * what became of it. *was_sent: it counted among the sent and unanswered
 * (the caller's n_sent goes down by one).
 */
enum pds_outbox_verdict pds_outbox_answer(struct pds_outbox_state *s,
                                          int status,
                                          int is_superseded,
                                          pds_index index,
                                          int is_delete_user,
                                          pds_index applied,
                                          uint64_t now,
                                          int *was_sent);

/* The link was lost: a write sent and not taken goes again. */
void pds_outbox_link_lost(struct pds_outbox_state *s);

/* The client applied the log up to `applied`: a write taken at or below
 * it is done. */
void pds_outbox_settle(struct pds_outbox_state *s, pds_index applied);

#endif
