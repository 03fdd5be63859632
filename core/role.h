/*
 * role.h - the node's role and the moves between roles, I/O-free (part of
 * pds_core). Included by pds.h.
 *
 * A node is in one role at a time. Every change passes through one event
 * of pds_core_step(), PDS_EVENT_ROLE_CHANGE, checked against the table of
 * allowed moves (pds_role_may_move()); the core does not change its role
 * then, it asks the host to store the new one (pds_update.has_role). Only
 * once the host reports it stored (PDS_EVENT_ROLE_STORED, status 0) does the
 * core move, so that a node never acts in a role it would not come back
 * in after a crash. One move is under way at a time.
 *
 * Epochs are recorded the same way: a node that hears a higher epoch than
 * its own from a peer (PDS_EVENT_EPOCH_HEARD) asks the host to store it
 * (pds_update.has_epoch) and takes it on PDS_EVENT_EPOCH_STORED.
 */
#ifndef PDS_ROLE_H
#define PDS_ROLE_H

enum pds_role {
    PDS_ROLE_STANDALONE = 0, /* no group */
    PDS_ROLE_SERVER = 1,     /* owns the log, accounts for the clients */
    PDS_ROLE_CLIENT = 2,     /* a machine of a server's group */
    PDS_ROLE_STANDBY = 3,    /* the client that is the server's replication
                              * destination: it receives the log durably */
    PDS_ROLE_CANDIDATE = 4   /* a standby or client asking to become the
                              * server (an election; not entered yet) */
};
#define PDS_ROLE_LAST PDS_ROLE_CANDIDATE

/* Why a role changes (PDS_EVENT_ROLE_CHANGE). */
enum pds_role_cause {
    PDS_ROLE_CAUSE_SERVER_START = 1, /* 'server start' */
    PDS_ROLE_CAUSE_SERVER_STOP,      /* 'server stop' */
    PDS_ROLE_CAUSE_CLIENT_START,     /* 'client start' */
    PDS_ROLE_CAUSE_CLIENT_STOP,      /* 'client stop' */
    PDS_ROLE_CAUSE_DESIGNATED,       /* the server named this node its
                                      * replication destination */
    PDS_ROLE_CAUSE_RELEASED          /* the server released it (replication
                                      * stopped, or another destination) */
};
#define PDS_ROLE_CAUSE_LAST PDS_ROLE_CAUSE_RELEASED

/* "standalone", "server", "client", "standby", "candidate"; "unknown" for
 * a value out of range. Static text. */
const char *pds_role_name(enum pds_role role);
/* "server start", "designated by the server"...; static text. */
const char *pds_role_cause_name(enum pds_role_cause cause);

/*
 * Whether the table allows the move from -> to. Staying in a role is not
 * a move (0). Returns 1 or 0; never fails.
 *
 *   standalone -> server (server start), client (client start)
 *   server     -> standalone (server stop)
 *   client     -> standalone (client stop), standby (designated),
 *                 candidate
 *   standby    -> standalone (client stop), client (released), candidate
 *   candidate  -> server, standby, client, standalone
 */
int pds_role_may_move(enum pds_role from, enum pds_role to);

/*
 * Whether cause explains the move from -> to ('server stop' makes no
 * client, a designation makes a standby of a client). Returns 1 or 0.
 */
int pds_role_cause_fits(enum pds_role from,
                        enum pds_role to,
                        enum pds_role_cause cause);

/* The roles that follow a server's log: client, standby, candidate. */
int pds_role_follows(enum pds_role role);

#endif /* PDS_ROLE_H */
