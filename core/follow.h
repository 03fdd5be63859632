/*
 * follow.h - the server's followers, I/O-free (part of pds_core).
 * Included by pds.h.
 *
 * A server keeps one struct pds_follow_peer per connection of a member
 * that follows its log, in a struct pds_follow table. The table decides,
 * and the host does what it says:
 *
 *   - a member's SYNC (pds_follow_sync): follow it from its position, or
 *     refresh it with a snapshot (pds_repl_decide()), and what it made
 *     durable;
 *   - what to ship (pds_follow_want): how many entries from which index,
 *     within the in-flight window, and the window's end that the message
 *     carries; the host reads them and reports them sent
 *     (pds_follow_sent); a log trimmed under a slow follower turns into a
 *     refresh (pds_follow_refresh);
 *   - acknowledgements (pds_follow_ack): what the follower made durable,
 *     and, when it is the standby, the position that certifies writes
 *     (for the rule of core/ack.h);
 *   - a refresh: the copy the host is asked to make (a job number), then
 *     its chunks, a few in flight (pds_follow_snap_made, _snap_may_send,
 *     _snap_sent, _snap_ack), then the log from the copy's position; the
 *     log the refreshes still need is held against retention
 *     (pds_follow_hold);
 *   - the standby's batch sent before the server's own commit
 *     (pds_follow_early), and which followers must start over when that
 *     commit fails (pds_follow_unship).
 *
 * The table holds no pointers to the host's objects: a peer is its
 * connection number and its node key. Times and sizes are the host's.
 * Not thread-safe: one table per server, on one thread.
 */
#ifndef PDS_FOLLOW_H
#define PDS_FOLLOW_H

/* Where a follower is. */
enum pds_follow_phase {
    PDS_FOLLOW_LOG = 0,     /* following the log */
    PDS_FOLLOW_SNAP_MAKING, /* a refresh: its copy is being made */
    PDS_FOLLOW_SNAP_SENDING /* a refresh: its chunks are being sent */
};

struct pds_follow_peer {
    uint64_t conn;             /* the host's connection number */
    uint8_t pk[PDS_KEY_BYTES]; /* the member's node key */
    int is_standby;            /* the server's replication destination */
    enum pds_follow_phase phase;
    struct pds_follower log; /* next to send, acknowledged */
    uint64_t entry_bytes;    /* per entry in the last message (0: none) */
    int has_durable;         /* durable is what it confirmed: its SYNC */
    pds_index durable;       /* position, then its acknowledgements */
    /* A refresh: the log after hold is needed; the copy it waits for;
     * the copy's position; chunks sent and confirmed stored. */
    pds_index hold;
    uint64_t snap_job;
    pds_epoch snap_epoch;
    pds_index snap_index;
    uint64_t snap_chunk;
    uint64_t snap_confirmed;
    char why[PDS_MEMBER_TEXT]; /* why it was refreshed */
};

struct pds_follow_config {
    size_t max_peers;          /* connections followed at most (> 0) */
    pds_index max_inflight;    /* entries sent and unacknowledged (> 0) */
    uint64_t inflight_bytes;   /* ... and about this many bytes (0: none) */
    uint64_t snap_inflight;    /* snapshot chunks unconfirmed (> 0) */
    pds_index max_per_message; /* entries per message (0: no limit) */
};

struct pds_follow {
    struct pds_follow_config cfg;
    struct pds_follow_peer *peers; /* n of cfg.max_peers, in no order */
    size_t n;
    uint64_t snap_jobs; /* copies asked for so far */
    int has_standby;
    uint8_t standby_pk[PDS_KEY_BYTES];
};

/*
 * Set up an empty table. PDS_EINVAL for a zero limit, PDS_ENOMEM without
 * memory (nothing to close then). Close with pds_follow_close().
 */
int pds_follow_init(struct pds_follow *fl, const struct pds_follow_config *cfg);
void pds_follow_close(struct pds_follow *fl);

/* The follower on conn, or NULL. */
struct pds_follow_peer *pds_follow_find(struct pds_follow *fl, uint64_t conn);

/*
 * The replication destination is the member with key pk (NULL: none).
 * Marks its connections. Returns 1 when a connection of the previous
 * standby was followed (its certification ends: pds_ack_standby_gone()),
 * else 0.
 */
int pds_follow_set_standby(struct pds_follow *fl, const uint8_t *pk);

/* What a SYNC or an acknowledgement means. */
struct pds_follow_out {
    enum pds_sync_verdict verdict; /* of a SYNC */
    const char *why;               /* static text: why it is refreshed */
    uint64_t snap_job;             /* a refresh: make this copy */
    int has_confirmed;             /* the standby made confirmed durable */
    pds_index confirmed;
};

/*
 * A member's SYNC on conn (key pk), judged against the server's log by
 * pds_repl_decide(), with the server durable at committed. Either it
 * follows from its position (out->verdict PDS_SYNC_FOLLOW: ship with
 * pds_follow_want()), or it is refreshed (PDS_SYNC_REFRESH: make copy
 * out->snap_job, report it with pds_follow_snap_made()). A SYNC starts the
 * connection over: what it was sent before counts no more.
 * Returns 0, or PDS_EBUSY when the table is full (nothing changed: the
 * host turns the member away, and it comes again later).
 */
int pds_follow_sync(struct pds_follow *fl,
                    uint64_t conn,
                    const uint8_t *pk,
                    const struct pds_sync *sync,
                    const struct pds_log_view *view,
                    pds_index committed,
                    struct pds_follow_out *out);

/*
 * Refresh the follower on conn (the log it needs was trimmed, why in
 * static text), the server durable at committed: out->snap_job is the
 * copy to make. PDS_ENOTFOUND when conn is not followed.
 */
int pds_follow_refresh(struct pds_follow *fl,
                       uint64_t conn,
                       const char *why,
                       pds_index committed,
                       struct pds_follow_out *out);

/*
 * How many entries may be shipped to p now, the server's log ending at
 * last: from p->log.next, at most cfg.max_per_message, within the window.
 * *window_end is the last index sent before another acknowledgement is
 * heard (the message carries it). 0 while a refresh is under way.
 */
pds_index pds_follow_want(const struct pds_follow *fl,
                          const struct pds_follow_peer *p,
                          pds_index last,
                          pds_index *window_end);

/*
 * The window's end for a message of n entries from p->log.next when the
 * host read more than pds_follow_want() allowed (it reads by bytes): never
 * before the message's last entry.
 */
pds_index pds_follow_window_end(const struct pds_follow *fl,
                                const struct pds_follow_peer *p,
                                pds_index last,
                                pds_index n);

/* n entries (bytes in all) went to p. */
void pds_follow_sent(struct pds_follow_peer *p, pds_index n, uint64_t bytes);

/*
 * An acknowledgement from conn: index is durable there. Stale ones (a
 * follower gone or in a refresh) change nothing and return 0. PDS_EPROTO
 * for one of what was never sent (the host closes the link).
 * out->has_confirmed when it is the standby's.
 */
int pds_follow_ack(struct pds_follow *fl,
                   uint64_t conn,
                   pds_index index,
                   struct pds_follow_out *out);

/*
 * The copy job for conn's refresh ended with status (0: made, at
 * epoch/index). Returns PDS_ENOTFOUND when the follower is gone or started
 * over: the host discards the copy. Otherwise 0: when status is 0 the
 * copy's chunks may go; when not, nothing changed and the host ends the
 * follower's link (its next SYNC tries again).
 */
int pds_follow_snap_made(struct pds_follow *fl,
                         uint64_t conn,
                         uint64_t job,
                         int status,
                         pds_epoch epoch,
                         pds_index index);

/* Whether another chunk may go to p now (its copy is made, and fewer than
 * cfg.snap_inflight are unconfirmed). */
int pds_follow_snap_may_send(const struct pds_follow *fl,
                             const struct pds_follow_peer *p);

/*
 * A chunk went to p (chunk number p->snap_chunk before the call). After
 * the last one p follows the log from the copy's position.
 */
void pds_follow_snap_sent(struct pds_follow_peer *p, int is_last);

/*
 * conn stored chunk rid. Returns 1 when more chunks may go, 0 for a stale
 * or unknown confirmation (nothing changed).
 */
int pds_follow_snap_ack(struct pds_follow *fl, uint64_t conn, uint64_t rid);

/*
 * The lowest index a refresh in flight still needs from the log, to be
 * kept against retention; 0 when none.
 */
pds_index pds_follow_hold(const struct pds_follow *fl);

/*
 * Before the server's commit of n entries from first: the standby's
 * follower to send them to now (so that both fsyncs overlap), or NULL
 * when they must wait for the commit (no standby followed, a refresh, a
 * gap, or a full window).
 */
struct pds_follow_peer *
pds_follow_early(struct pds_follow *fl, pds_index first, pds_index n);

/*
 * The commit of the entries from first failed after some were sent:
 * the connections (up to max of them into conns) of the followers that
 * hold entries the server does not. They must start over (the host closes
 * them; each one's next SYNC refreshes it). Returns how many there are.
 */
size_t pds_follow_unship(const struct pds_follow *fl,
                         pds_index first,
                         uint64_t *conns,
                         size_t max);

/*
 * The connection ended: the follower leaves the table. Returns 1 when it
 * was the standby's (its certification ends), 0 otherwise (also when conn
 * was not followed).
 */
int pds_follow_drop(struct pds_follow *fl, uint64_t conn);

/*
 * What the standby with key pk made durable on any of its connections:
 * 1 and *position, or 0 when none of them said.
 */
int pds_follow_durable_of(const struct pds_follow *fl,
                          const uint8_t *pk,
                          pds_index *position);

#endif /* PDS_FOLLOW_H */
