/*
 * role.c - the table of role moves and their causes (see role.h).
 */
#include "pds.h"

/* allowed[from][to]: the moves of role.h's table. */
static const unsigned char allowed[PDS_ROLE_LAST + 1][PDS_ROLE_LAST + 1] = {
    /*                  standalone server client standby candidate */
    [PDS_ROLE_STANDALONE] = {0, 1, 1, 0, 0},
    [PDS_ROLE_SERVER] = {1, 0, 0, 0, 0},
    [PDS_ROLE_CLIENT] = {1, 0, 0, 1, 1},
    [PDS_ROLE_STANDBY] = {1, 0, 1, 0, 1},
    [PDS_ROLE_CANDIDATE] = {1, 1, 1, 1, 0},
};

const char *pds_role_name(enum pds_role role)
{
    switch (role) {
    case PDS_ROLE_STANDALONE:
        return "standalone";
    case PDS_ROLE_SERVER:
        return "server";
    case PDS_ROLE_CLIENT:
        return "client";
    case PDS_ROLE_STANDBY:
        return "standby";
    case PDS_ROLE_CANDIDATE:
        return "candidate";
    }
    return "unknown";
}

const char *pds_role_cause_name(enum pds_role_cause cause)
{
    switch (cause) {
    case PDS_ROLE_CAUSE_SERVER_START:
        return "server start";
    case PDS_ROLE_CAUSE_SERVER_STOP:
        return "server stop";
    case PDS_ROLE_CAUSE_CLIENT_START:
        return "client start";
    case PDS_ROLE_CAUSE_CLIENT_STOP:
        return "client stop";
    case PDS_ROLE_CAUSE_DESIGNATED:
        return "named the replication destination by the server";
    case PDS_ROLE_CAUSE_RELEASED:
        return "released as the replication destination by the server";
    }
    return "unknown cause";
}

static int in_range(enum pds_role role)
{
    return (unsigned)role <= (unsigned)PDS_ROLE_LAST;
}

int pds_role_may_move(enum pds_role from, enum pds_role to)
{
    if (!in_range(from) || !in_range(to))
        return 0;
    return allowed[from][to];
}

int pds_role_cause_fits(enum pds_role from,
                        enum pds_role to,
                        enum pds_role_cause cause)
{
    if (!pds_role_may_move(from, to))
        return 0;
    switch (cause) {
    case PDS_ROLE_CAUSE_SERVER_START:
        return to == PDS_ROLE_SERVER;
    case PDS_ROLE_CAUSE_SERVER_STOP:
        return from == PDS_ROLE_SERVER && to == PDS_ROLE_STANDALONE;
    case PDS_ROLE_CAUSE_CLIENT_START:
        /* A standby enrolled again is a client until its server says. */
        return (from == PDS_ROLE_STANDALONE || from == PDS_ROLE_STANDBY) &&
               to == PDS_ROLE_CLIENT;
    case PDS_ROLE_CAUSE_CLIENT_STOP:
        return pds_role_follows(from) && to == PDS_ROLE_STANDALONE;
    case PDS_ROLE_CAUSE_DESIGNATED:
        return to == PDS_ROLE_STANDBY;
    case PDS_ROLE_CAUSE_RELEASED:
        return from == PDS_ROLE_STANDBY && to == PDS_ROLE_CLIENT;
    }
    return 0;
}

int pds_role_follows(enum pds_role role)
{
    return role == PDS_ROLE_CLIENT || role == PDS_ROLE_STANDBY ||
           role == PDS_ROLE_CANDIDATE;
}
