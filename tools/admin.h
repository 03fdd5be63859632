/*
 * admin.h - remote administration of pdsyncd (admin.c): a request that
 * comes over the group port with the administrator password is checked
 * on a thread of libuv's pool, one check at a time, and then served like
 * one from the local socket; its replies go back on that connection.
 *
 * The state lives in struct daemon (d->admin), zeroed with it; everything
 * here runs on the loop thread.
 */
#ifndef PDS_ADMIN_H
#define PDS_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "../net/net.h"
#include "../net/peer.h"

struct daemon;
struct admin_check;

struct pds_admin {
    /* crypto_pwhash_str of the password; "" when remote administration is
     * disabled. Loaded at the start (group.c), then changed only through
     * pds__admin_password_set(). */
    char pw[crypto_pwhash_STRBYTES];
    uint64_t pw_gen;             /* bumped when the password is set */
    struct admin_check *running; /* the check under way */
    struct admin_check *queue;   /* those waiting, in order */
    size_t n_waiting;
    uint64_t busy_log; /* when the last "busy" Warning went (loop ms) */
    uint64_t busy_n;   /* attempts refused as busy since */
};

/* An ADMIN message on c (group.c checked that c may send one): the
 * password is checked, then the request is served and answered on c, or
 * refused; c is closed when memory runs out. */
void pds__admin_on_request(struct daemon *d,
                           struct pds_conn *c,
                           const struct pds_msg *m);

/* The password in force is now hash (stored already): the checks under
 * way against the old one answer that it changed. */
void pds__admin_password_set(struct daemon *d, const char *hash);

/* The group port closes: the checks waiting for their turn are dropped
 * unanswered (the one under way ends without an answer too). */
void pds__admin_close(struct daemon *d);

#endif /* PDS_ADMIN_H */
