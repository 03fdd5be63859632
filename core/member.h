/*
 * member.h - the group's membership as the server's core keeps it: which
 * machines are enrolled, which were stopped, and who is connected.
 * Included by pds.h; I/O-free like the rest of core/.
 *
 * A client counts as a machine of the group from its enrollment until its
 * synchronization is stopped. The server is a machine too, so a group of
 * max_machines holds max_machines - 1 clients.
 */
#ifndef PDS_MEMBER_H
#define PDS_MEMBER_H

#include <stddef.h>
#include <stdint.h>

#define PDS_KEY_BYTES 32
#define PDS_GROUP_ID_BYTES 16
#define PDS_MEMBER_TEXT 64
#define PDS_MEMBER_ERROR 160

enum pds_member_state {
    PDS_MEMBER_ENROLLED = 1, /* a machine of the group */
    PDS_MEMBER_STOPPED = 2   /* refused until started again */
};

struct pds_member {
    uint8_t pk[PDS_KEY_BYTES]; /* the node's long-term public key */
    uint64_t id;               /* its first 8 bytes, big-endian */
    enum pds_member_state state;
    int is_connected;           /* runtime only, never stored */
    int is_following;           /* runtime: receives the server's log */
    uint64_t position;          /* durable on it (ACKed index): live while it
                                   follows, else as stored when its last
                                   connection ended (0: nothing known) */
    uint64_t sent;              /* runtime: last index sent to it */
    uint64_t lag_bytes;         /* runtime: log bytes it has not confirmed */
    uint64_t lag_ms;            /* runtime: age of its oldest unconfirmed */
    char sync[PDS_MEMBER_TEXT]; /* runtime: following, refreshing... */
    uint64_t first_enrolled;    /* ms */
    uint64_t last_seen;         /* ms */
    char name[PDS_MEMBER_TEXT];
    char product[PDS_MEMBER_TEXT];
    char location[PDS_MEMBER_TEXT];
    char address[PDS_MEMBER_TEXT];
    char version[PDS_MEMBER_TEXT];
    char last_error[PDS_MEMBER_ERROR];
};

/* What a joining node says about itself (strings NUL-terminated). */
struct pds_join {
    uint64_t conn; /* the host's connection handle, echoed back */
    uint8_t pk[PDS_KEY_BYTES];
    int proof; /* 0 none, 1 valid join-secret proof, -1 wrong secret */
    const char *name;
    const char *product;
    const char *location;
    const char *address;
    const char *version;
};

/* The core's answer to a join: welcome or refuse, then maybe close. */
struct pds_join_reply {
    uint64_t conn;
    int status; /* 0 welcome, else PDS_E* and errmsg */
    uint64_t member_id;
    int is_new; /* first enrollment */
    char errmsg[PDS_MEMBER_ERROR];
};

/* Fixed-layout encoding of a member for the clients table. */
#define PDS_MEMBER_ENCODED_MAX                                                 \
    (PDS_KEY_BYTES + 1 + 16 + 5 * (1 + PDS_MEMBER_TEXT) + 1 +                  \
     PDS_MEMBER_ERROR + 8)
size_t pds_member_encode(const struct pds_member *m, uint8_t *buf);
/* PDS_ECORRUPT on a bad layout; is_connected is 0 after decoding. */
int pds_member_decode(const uint8_t *buf, size_t len, struct pds_member *m);

/* The id shown to administrators: the first 8 bytes of the key. */
uint64_t pds_member_id(const uint8_t pk[PDS_KEY_BYTES]);

#endif /* PDS_MEMBER_H */
