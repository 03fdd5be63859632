/*
 * ack.h - when the server acknowledges a write that waits for its
 * replication destination (the standby), I/O-free (part of pds_core).
 * Included by pds.h.
 *
 * The rule, by [replication] ack_mode:
 *   local             a write is acknowledged once durable on the server;
 *   standby           once durable on the standby too; a commit the
 *                     standby has not confirmed timeout_ms after it was
 *                     made fails its writers ("durable on the server, not
 *                     acknowledged");
 *   standby-optional  like standby, but when the standby does not confirm
 *                     within timeout_ms the server degrades to local (it
 *                     answers every durable write) until the standby
 *                     confirms again;
 *   auto              standby when a destination is set, else local.
 * Each commit keeps its own deadline: neither the standby's progress nor
 * its reconnecting gives a write more time.
 *
 * The host reports what happens — a commit (pds_ack_committed), the
 * standby's confirmation (pds_ack_confirmed), the time (pds_ack_tick), the
 * end of the server role or of replication — and each call says in a
 * struct pds_ack_out what to do with the writes: answer those up to
 * `answer`, fail those up to `timeout` as not confirmed, and whether the
 * server just degraded or recovered (to be logged). Times are monotonic
 * milliseconds chosen by the host. No call fails: when memory for a new
 * wait runs out, the commit shares the deadline of the one before (or, if
 * none waits, is answered at once as local would).
 */
#ifndef PDS_ACK_H
#define PDS_ACK_H

/* When a write is acknowledged ([replication] ack_mode). */
enum pds_ack_mode {
    PDS_ACK_AUTO = 0,
    PDS_ACK_LOCAL,           /* after the server's fsync */
    PDS_ACK_STANDBY,         /* after the standby's fsync too, or timeout */
    PDS_ACK_STANDBY_OPTIONAL /* standby, degrading to local when it is gone */
};

struct pds_ack_wait {
    pds_index last; /* the commit's last index */
    uint64_t at;    /* when it was made */
};

/* The rule's state. Set up with pds_ack_init(); the fields are read-only
 * for the host except through the calls below. */
struct pds_ack {
    enum pds_ack_mode mode;
    uint32_t timeout_ms;
    int has_standby;         /* a replication destination is set */
    int is_degraded;         /* standby-optional running as local */
    pds_index committed;     /* durable here */
    pds_index standby_acked; /* durable on the standby */
    /* Commits whose writes wait for the standby, oldest first. */
    struct pds_ack_wait *waits;
    size_t n_waits;
    size_t cap_waits;
};

/* What to do with the writes after a call. Zero: nothing. */
struct pds_ack_out {
    pds_index answer;  /* acknowledge the writes up to here */
    pds_index timeout; /* fail the writes up to here: not confirmed */
    int degraded;      /* standby-optional went local just now */
    int recovered;     /* the standby confirmed again after that */
};

/* A rule with no standby and nothing waiting. Never fails. */
void pds_ack_init(struct pds_ack *ack,
                  enum pds_ack_mode mode,
                  uint32_t timeout_ms);
/* Frees the waits; ack can be initialized again. */
void pds_ack_close(struct pds_ack *ack);

/*
 * Whether a server's commit made now waits for the standby: a destination
 * is set, the mode is not local, and standby-optional is not degraded.
 * is_server: the node is the server (nothing waits on another role).
 */
int pds_ack_waits(const struct pds_ack *ack, int is_server);

/*
 * "local", "standby", "standby-optional", or those with the reason they do
 * not apply now ("local (ack_mode = standby, but no replication destination
 * is set)", "standby-optional (degraded to local: ...)"). Static text.
 */
const char *pds_ack_mode_text(const struct pds_ack *ack);

/*
 * The commit up to `last` is durable here (now). With `waits` (what
 * pds_ack_waits() says now) its writes wait for the standby, which may
 * have confirmed them already (it is sent a batch before the server's own
 * fsync); else they are answered.
 */
void pds_ack_committed(struct pds_ack *ack,
                       pds_index last,
                       int waits,
                       uint64_t now,
                       struct pds_ack_out *out);

/* The standby says it holds the log up to index durably. */
void pds_ack_confirmed(struct pds_ack *ack,
                       pds_index index,
                       struct pds_ack_out *out);

/*
 * Time passes. answered: the writes up to here are answered already (the
 * host's own record, e.g. the core's last index); their waits are dropped.
 * The commits whose deadline has passed time out, or the server degrades.
 */
void pds_ack_tick(struct pds_ack *ack,
                  pds_index answered,
                  uint64_t now,
                  struct pds_ack_out *out);

/* A replication destination is set (a new one: confirmations count from
 * its own next one; a degraded server stays so until it confirms) or none
 * is (replication stop: whatever waited is durable here and answered,
 * out; no longer degraded). */
void pds_ack_set_standby(struct pds_ack *ack,
                         int has_standby,
                         struct pds_ack_out *out);

/* The standby's link ended: its position is known again from its next
 * confirmation (it may come back from a snapshot, behind). */
void pds_ack_standby_gone(struct pds_ack *ack);

/* The server role ended: whatever waited for the standby fails as not
 * confirmed (out), and nothing waits any more. */
void pds_ack_server_stopped(struct pds_ack *ack, struct pds_ack_out *out);

#endif
