/*
 * group.c - pdsyncd's part in a group: the node's role (server, client or
 * none), enrollment with the join secret, the server's client accounting
 * (decided by the core, stored here), and a client's link to its server
 * with capped exponential back-off and jitter.
 *
 * Role configuration is stored in the meta table ("role", "group",
 * "secret", "server", "server_pk", "name") so that role changes take
 * effect without a restart and survive restarts; it is written on the
 * storage queue and changed in memory once stored (see Settings).
 *
 * A remote administrator's password is checked in admin.c; the requests
 * it lets through are served like local ones (pds__group_request here).
 * The status reply, group fields included, is made in status.c.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "admin.h"
#include "commlog.h"
#include "daemon.h"

#define RETRY_MIN_MS 100

static const char *hex(const uint8_t *b, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, b, n);
    return out;
}

/* ---- Settings ----------------------------------------------------------
 *
 * A command that changes the node's settings (its role, group, secret,
 * server...) stores them first, on the storage queue, and changes them in
 * memory only once they are stored; then it answers. When a write fails,
 * the writes after it are not made (the role is always written last), the
 * node keeps its settings in memory and the error is logged and answered.
 * The administrator's commands are stored one at a time: one that comes
 * while another is being stored is refused as busy.
 */
#define SETTING_MAX 128 /* the longest setting: a secret, a password hash */
#define SETTINGS_MAX 8

struct settings_job {
    struct pds_diskq_job job;
    struct daemon *d;
    struct pds_local_conn *conn; /* the requester (a reference), or NULL */
    uint64_t id;                 /* its request */
    int is_admin;                /* an administrator's command */
    /* Into memory and answered, once every write is done. */
    void (*apply)(struct settings_job *sj);
    /* Instead of the error answer when a write failed (NULL: the answer). */
    void (*failed)(struct settings_job *sj);
    struct {
        const char *name;
        uint8_t value[SETTING_MAX];
        size_t len;
        int is_delete;
    } puts[SETTINGS_MAX];
    size_t n_puts;
    size_t n_stored;    /* of puts, before a failure */
    size_t secret_put;  /* server start: the index of the secret's put */
    int changes_server; /* client start: the link changes */
    int has_role;       /* role is written last; a server's epoch after it */
    enum pds_role role;
    enum pds_role role_from;
    enum pds_role_cause cause;
    int holds_follower; /* counted in d->is_role_changing */
    struct epoch_result epoch;
    int rv;
    char errmsg[PDS_ERRMSG_SIZE];
    /* What the command changes, for apply. */
    uint8_t group[PDS_GROUP_ID_BYTES];
    int has_new_group;
    uint8_t secret[PDS_SECRET_MAX];
    size_t secret_len;
    int has_new_secret;
    char generated[2 * 32 + 1];
    char server[128];
    char name[PDS_MEMBER_TEXT];
    uint8_t pk[PDS_KEY_BYTES];
    char hash[crypto_pwhash_STRBYTES];
    uint64_t conn_id;
    uint64_t member_id;
    int is_first_contact;
};

/* A new job for the requester on conn (NULL: none), or NULL with conn
 * answered when memory runs out. */
static struct settings_job *settings_new(struct daemon *d,
                                         struct pds_local_conn *conn,
                                         uint64_t id,
                                         void (*apply)(struct settings_job *))
{
    struct settings_job *sj = calloc(1, sizeof(*sj));

    if (sj == NULL) {
        if (conn != NULL)
            pds__daemon_send(conn,
                             pds_reply_new(id, PDS_ENOMEM, "out of memory"));
        return NULL;
    }
    sj->d = d;
    sj->conn = conn;
    sj->id = id;
    sj->apply = apply;
    if (conn != NULL)
        pds_local_conn_ref(conn);
    return sj;
}

/* Store value (NULL: remove the setting). */
static void setting(struct settings_job *sj,
                    const char *name,
                    const void *value,
                    size_t len)
{
    size_t i = sj->n_puts++;

    assert(i < SETTINGS_MAX && len <= SETTING_MAX);
    sj->puts[i].name = name;
    sj->puts[i].is_delete = value == NULL;
    sj->puts[i].len = value != NULL ? len : 0;
    if (value != NULL && len > 0)
        memcpy(sj->puts[i].value, value, len);
}

static void
reply_err(struct pds_local_conn *conn, uint64_t id, int rv, const char *msg);

static void settings_free(struct settings_job *sj)
{
    if (sj->conn != NULL)
        pds_local_conn_unref(sj->conn);
    sodium_memzero(sj, sizeof(*sj));
    free(sj);
}

/*
 * The job also moves the node to another role: the only way a role
 * changes. The core checks the move against its table (role.h) now; the
 * role is stored last, and the core takes it once stored (settings_done).
 * When the core refuses, the requester is answered why, the job is freed
 * and -1 returned: nothing was changed.
 */
static int settings_role(struct settings_job *sj,
                         enum pds_role to,
                         enum pds_role_cause cause)
{
    struct daemon *d = sj->d;
    struct pds_event ev;
    struct pds_update up;
    int rv;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_ROLE_CHANGE;
    ev.u.role_change.to = to;
    ev.u.role_change.cause = cause;
    rv = pds_core_step(d->core, &ev, &up);
    if (rv != 0 || !up.has_role) {
        if (sj->conn != NULL)
            reply_err(sj->conn, sj->id, rv != 0 ? rv : PDS_EINVAL,
                      up.errmsg[0] != '\0' ? up.errmsg : pds_strerror(rv));
        else
            pds_commlog(PDS_LOG_WARNING, "role %s not taken: %s",
                        pds_role_name(to),
                        up.errmsg[0] != '\0' ? up.errmsg : pds_strerror(rv));
        settings_free(sj);
        return -1;
    }
    sj->has_role = 1;
    sj->role = to;
    sj->role_from = pds_core_role(d->core);
    sj->cause = cause;
    return 0;
}

/* The role's write is done (status 0) or failed: the core takes it or
 * stays what it was. 0, or -1 when the core's bookkeeping disagrees. */
static int role_stored(struct settings_job *sj)
{
    struct pds_event ev;
    struct pds_update up;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_ROLE_STORED;
    ev.u.role_stored.role = sj->role;
    ev.u.role_stored.status = sj->rv;
    if (pds_core_step(sj->d->core, &ev, &up) != 0) {
        pds_commlog(PDS_LOG_ERROR, "role change to %s: %s",
                    pds_role_name(sj->role), up.errmsg);
        return -1;
    }
    if (sj->rv == 0)
        pds_commlog(PDS_LOG_INFO, "role: %s -> %s (%s)",
                    pds_role_name(sj->role_from), pds_role_name(sj->role),
                    pds_role_cause_name(sj->cause));
    return 0;
}

static void settings_work(struct pds_diskq_job *job)
{
    struct settings_job *sj = PDS_DISKQ_OWNER(job, struct settings_job, job);
    struct pds_store *store = sj->d->store;
    uint8_t r = (uint8_t)sj->role;
    size_t i;

    for (i = 0; i < sj->n_puts && sj->rv == 0; i++) {
        sj->rv = pds_store_blob_put(
            store, sj->puts[i].name,
            sj->puts[i].is_delete ? NULL : sj->puts[i].value, sj->puts[i].len);
        if (sj->rv == 0)
            sj->n_stored++;
    }
    if (sj->rv == 0 && sj->has_role)
        sj->rv = pds_store_blob_put(store, "role", &r, 1);
    if (sj->rv != 0) {
        snprintf(sj->errmsg, sizeof(sj->errmsg), "%s",
                 pds_store_commit_errmsg(store));
        return;
    }
    if (sj->has_role && sj->role == PDS_ROLE_SERVER)
        pds__daemon_epoch_begin(store, &sj->epoch);
}

static void settings_done(struct pds_diskq_job *job)
{
    struct settings_job *sj = PDS_DISKQ_OWNER(job, struct settings_job, job);
    struct daemon *d = sj->d;
    char msg[PDS_ERRMSG_SIZE + 64];

    if (sj->is_admin)
        d->is_settings_busy = 0;
    if (sj->holds_follower)
        d->is_role_changing--;
    if (!d->is_stopping && sj->has_role && role_stored(sj) != 0 &&
        sj->rv == 0) {
        sj->rv = PDS_EINVAL;
        snprintf(sj->errmsg, sizeof(sj->errmsg),
                 "the role %s was stored but the node did not take it: "
                 "restart pdsyncd",
                 pds_role_name(sj->role));
    }
    if (d->is_stopping) {
        /* Nothing runs any more: what was stored counts at the next start. */
        if (sj->conn != NULL)
            reply_err(sj->conn, sj->id, PDS_ECANCELED,
                      sj->rv == 0 ? "pdsyncd is shutting down: the change "
                                    "was stored and counts from its next "
                                    "start"
                                  : "pdsyncd is shutting down; nothing was "
                                    "changed");
    } else if (sj->rv == 0) {
        sj->apply(sj);
    } else {
        pds_commlog(PDS_LOG_ERROR, "%s", sj->errmsg);
        if (sj->failed != NULL) {
            sj->failed(sj);
        } else if (sj->conn != NULL) {
            snprintf(msg, sizeof(msg),
                     "not done: %s; the node keeps its previous settings",
                     sj->errmsg);
            reply_err(sj->conn, sj->id, PDS_EIO, msg);
        }
    }
    if (!d->is_stopping)
        pds__repl_resume(d);
    settings_free(sj);
}

static void settings_push(struct settings_job *sj)
{
    struct daemon *d = sj->d;

    if (sj->is_admin)
        d->is_settings_busy = 1;
    /* Leaving or changing the client role: the server's entries wait in
     * memory meanwhile (not stored for a role that is ending). */
    if ((sj->has_role || sj->changes_server) &&
        pds_role_follows(pds_core_role(d->core))) {
        sj->holds_follower = 1;
        d->is_role_changing++;
    }
    pds__diskq_push(&d->diskq, &sj->job, settings_work, settings_done);
}

/* The role the core took once stored (settings_done): its effects in
 * memory, for the job's apply. */
static void set_role(struct settings_job *sj)
{
    struct daemon *d = sj->d;

    assert(sj->has_role && pds_core_role(d->core) == sj->role);
    d->unconfirmed_until = 0; /* a new role: its own answers */
    if (sj->role == PDS_ROLE_SERVER)
        pds__daemon_epoch_begun(d, &sj->epoch);
}

/* ---- Client link ------------------------------------------------------ */

static void link_connect(struct daemon *d);

static void on_retry(uv_timer_t *t)
{
    link_connect(t->data);
}

/* Try the server again after the core's back-off (pds_link_retry_ms). */
static void link_schedule(struct daemon *d)
{
    uint64_t delay;

    if (d->is_stopping || !pds_role_follows(pds_core_role(d->core)))
        return;
    delay = pds_link_retry_ms(d->n_retries, RETRY_MIN_MS, d->cfg.retry_max_ms,
                              randombytes_random());
    d->n_retries++;
    uv_timer_start(&d->retry_timer, on_retry, delay, 0);
}

static void link_connect(struct daemon *d)
{
    char errmsg[PDS_ERRMSG_SIZE];

    if (d->is_stopping || !pds_role_follows(pds_core_role(d->core)) ||
        d->link_conn != 0)
        return;
    if (pds_net_connect(d->net, d->server, &d->link_conn, errmsg) != 0) {
        snprintf(d->link_error, sizeof(d->link_error), "%s", errmsg);
        link_schedule(d);
    }
}

static void link_drop(struct daemon *d, const char *why)
{
    struct pds_conn *c;

    uv_timer_stop(&d->retry_timer);
    if (d->link_conn != 0) {
        c = pds_net_find(d->net, d->link_conn);
        d->link_conn = 0;
        if (c != NULL)
            pds_conn_close(c, why);
    }
    d->is_linked = 0;
    pds__repl_link_lost(d);
}

/* ---- Net callbacks ---------------------------------------------------- */

static void send_join(struct daemon *d, struct pds_conn *c)
{
    struct pds_msg m;
    char host[64] = "";

    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_JOIN;
    if (d->name[0] != '\0')
        snprintf(m.name, sizeof(m.name), "%s", d->name);
    else if (gethostname(host, sizeof(host) - 1) == 0)
        snprintf(m.name, sizeof(m.name), "%s", host);
    snprintf(m.product, sizeof(m.product), "%s", d->cfg.product);
    snprintf(m.location, sizeof(m.location), "%s", d->cfg.location);
    snprintf(m.version_text, sizeof(m.version_text), "pdsync %s/p%d",
             PDS_VERSION, PDS_PROTOCOL_VERSION);
    if (d->secret_len > 0) {
        pds_join_proof(d->secret, d->secret_len, pds_conn_hash(c), 'c',
                       m.proof);
        m.has_proof = 1;
    }
    if (pds_conn_send(c, &m) != 0)
        pds_conn_close(c, "cannot send join");
}

static void on_open(void *arg, struct pds_conn *c)
{
    struct daemon *d = arg;

    if (!pds_conn_is_initiator(c))
        return; /* a client will say who it is with JOIN */
    if (pds_conn_id(c) != d->link_conn) {
        pds_conn_close(c, "stale connection");
        return;
    }
    if (d->has_server_pk &&
        sodium_memcmp(d->server_pk, pds_conn_peer_pk(c), PDS_KEY_BYTES) != 0) {
        pds_conn_close(c, "the server's key is not the one this client "
                          "enrolled with: refusing to talk to it (re-enroll "
                          "with 'pdsync client start' if the server was "
                          "replaced)");
        return;
    }
    send_join(d, c);
}

/* Server side: a connected node introduced itself. */
static void
on_join(struct daemon *d, struct pds_conn *c, const struct pds_msg *m)
{
    struct pds_event ev;
    int rv;
    uint8_t expect[PDS_PROOF_BYTES];

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_PEER_JOIN;
    ev.now = pds__wall_ms();
    ev.u.join.conn = pds_conn_id(c);
    memcpy(ev.u.join.pk, pds_conn_peer_pk(c), PDS_KEY_BYTES);
    if (m->has_proof) {
        if (d->secret_len == 0) {
            ev.u.join.proof = -1;
        } else {
            pds_join_proof(d->secret, d->secret_len, pds_conn_hash(c), 'c',
                           expect);
            ev.u.join.proof =
                sodium_memcmp(expect, m->proof, PDS_PROOF_BYTES) == 0 ? 1 : -1;
        }
    }
    ev.u.join.name = m->name;
    ev.u.join.product = m->product;
    ev.u.join.location = m->location;
    ev.u.join.address = pds_conn_address(c);
    ev.u.join.version = m->version_text;
    /* Remember who is on this connection, for on_close. */
    {
        uint8_t *pk = malloc(PDS_KEY_BYTES);
        if (pk != NULL) {
            memcpy(pk, pds_conn_peer_pk(c), PDS_KEY_BYTES);
            free(pds_conn_data(c));
            pds_conn_set_data(c, pk);
        }
    }
    rv = pds__daemon_step(d, &ev);
    if (rv != 0) {
        char why[PDS_ERRMSG_SIZE];
        snprintf(why, sizeof(why), "the server could not take the join: %s",
                 pds_strerror(rv));
        pds_commlog(PDS_LOG_ERROR, "client at %s: %s", pds_conn_address(c),
                    why);
        pds_conn_close(c, why);
    }
}

/* Client side: the welcome's settings are stored; the link begins. */
static void welcome_apply(struct settings_job *sj)
{
    struct daemon *d = sj->d;
    struct pds_conn *c = pds__daemon_conn(d, sj->conn_id);
    char gid[2 * PDS_GROUP_ID_BYTES + 1];

    if (sj->is_first_contact) {
        memcpy(d->server_pk, sj->pk, PDS_KEY_BYTES);
        d->has_server_pk = 1;
        /* The secret was proven once; the key pair is enough now. */
        sodium_memzero(d->secret, sizeof(d->secret));
        d->secret_len = 0;
        pds_commlog(PDS_LOG_INFO,
                    "enrolled in group %s as client %016llx of server %s",
                    hex(sj->group, PDS_GROUP_ID_BYTES, gid),
                    (unsigned long long)sj->member_id, d->server);
    }
    if (sj->has_new_group) {
        memcpy(d->group, sj->group, PDS_GROUP_ID_BYTES);
        d->has_group = 1;
        pds_net_set_group(d->net, d->group);
    }
    if (c == NULL || sj->conn_id != d->link_conn ||
        !pds_role_follows(pds_core_role(d->core)))
        return; /* gone meanwhile: the next connection starts over */
    if (!sj->is_first_contact)
        pds_commlog(PDS_LOG_INFO, "connected to server %s (%s)", d->server,
                    pds_conn_cipher(c));
    d->is_linked = 1;
    d->n_retries = 0;
    d->link_error[0] = '\0';
    pds__repl_start(d, c);
}

static void welcome_failed(struct settings_job *sj)
{
    struct daemon *d = sj->d;
    struct pds_conn *c = pds__daemon_conn(d, sj->conn_id);
    char why[PDS_ERRMSG_SIZE + 64];

    if (c == NULL || sj->conn_id != d->link_conn)
        return;
    snprintf(why, sizeof(why), "cannot store the server's welcome: %s",
             sj->errmsg);
    pds_conn_close(c, why); /* connects again later */
}

/*
 * Client side: the server accepted us. What it proved (its key, at the
 * first contact) and the group are stored before the link begins; the
 * position this node presents comes after every earlier write (storage
 * queue order), so it is durable.
 */
static void
on_welcome(struct daemon *d, struct pds_conn *c, const struct pds_msg *m)
{
    struct settings_job *sj;
    uint8_t expect[PDS_PROOF_BYTES];

    if (!d->has_server_pk) {
        /* First contact: the server must prove the join secret too. */
        if (!m->has_proof || d->secret_len == 0) {
            pds_conn_close(c, "the server did not prove the join secret");
            return;
        }
        pds_join_proof(d->secret, d->secret_len, pds_conn_hash(c), 's', expect);
        if (sodium_memcmp(expect, m->proof, PDS_PROOF_BYTES) != 0) {
            pds_conn_close(c, "the server's join-secret proof is wrong: not "
                              "the group's server");
            return;
        }
    }
    sj = settings_new(d, NULL, 0, welcome_apply);
    if (sj == NULL) {
        pds_conn_close(c, "out of memory");
        return;
    }
    sj->failed = welcome_failed;
    sj->conn_id = pds_conn_id(c);
    sj->member_id = m->member_id;
    memcpy(sj->group, m->group, PDS_GROUP_ID_BYTES);
    if (!d->has_server_pk) {
        sj->is_first_contact = 1;
        memcpy(sj->pk, pds_conn_peer_pk(c), PDS_KEY_BYTES);
        setting(sj, "server_pk", sj->pk, PDS_KEY_BYTES);
        setting(sj, "secret", NULL, 0);
    }
    if (!d->has_group || memcmp(d->group, m->group, PDS_GROUP_ID_BYTES) != 0) {
        sj->has_new_group = 1;
        setting(sj, "group", sj->group, PDS_GROUP_ID_BYTES);
    }
    settings_push(sj);
}

/* Server side: a client stopped its own synchronization. */
static void on_leave(struct daemon *d, struct pds_conn *c)
{
    struct pds_event ev;
    int rv;
    char target[17];

    snprintf(target, sizeof(target), "%016llx",
             (unsigned long long)pds_member_id(pds_conn_peer_pk(c)));
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_MEMBER_ADMIN;
    ev.now = pds__wall_ms();
    ev.u.member_admin.req = 0; /* nobody waits for the answer */
    ev.u.member_admin.op = PDS_MEMBER_OP_STOP;
    ev.u.member_admin.target = target;
    pds_commlog(PDS_LOG_INFO, "client %s (%s) stopped its synchronization",
                target, pds_conn_address(c));
    rv = pds__daemon_step(d, &ev);
    if (rv != 0)
        pds_commlog(PDS_LOG_ERROR,
                    "client %s stopped its synchronization, but the server "
                    "could not record it (it still counts the machine): %s",
                    target, pds_strerror(rv));
}

/* An epoch heard from a peer, being stored on the storage queue. */
struct heard_job {
    struct pds_diskq_job job;
    struct daemon *d;
    pds_epoch epoch;
    pds_epoch was;
    int rv;
    char from[64];
    char errmsg[PDS_ERRMSG_SIZE];
};

static void heard_work(struct pds_diskq_job *job)
{
    struct heard_job *j = PDS_DISKQ_OWNER(job, struct heard_job, job);

    j->rv = pds_store_raise_epoch(j->d->store, j->epoch);
    if (j->rv != 0)
        snprintf(j->errmsg, sizeof(j->errmsg), "%s",
                 pds_store_commit_errmsg(j->d->store));
}

/* The store of an epoch heard from `from` ended with rv: the core takes
 * it (or forgets it, to hear it again), and the log says which. */
static void epoch_stored(struct daemon *d,
                         pds_epoch epoch,
                         pds_epoch was,
                         const char *from,
                         int rv,
                         const char *errmsg)
{
    struct pds_event ev;
    struct pds_update up;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_EPOCH_STORED;
    ev.u.epoch_stored.epoch = epoch;
    ev.u.epoch_stored.status = rv;
    if (pds_core_step(d->core, &ev, &up) != 0) {
        pds_commlog(PDS_LOG_ERROR, "epoch %llu heard from %s: %s",
                    (unsigned long long)epoch, from, up.errmsg);
    } else if (rv != 0) {
        pds_commlog(PDS_LOG_ERROR,
                    "epoch %llu heard from %s could not be recorded: %s",
                    (unsigned long long)epoch, from, errmsg);
    } else {
        if (d->net != NULL)
            pds_net_set_epoch(d->net, pds_core_epoch(d->core));
        if (pds_core_role(d->core) == PDS_ROLE_SERVER)
            pds_commlog(PDS_LOG_WARNING,
                        "%s is at epoch %llu, above this server's %llu: "
                        "another node has been a server of the group since "
                        "this one began its term",
                        from, (unsigned long long)epoch,
                        (unsigned long long)was);
        else
            pds_commlog(PDS_LOG_INFO, "epoch %llu heard from %s (was %llu)",
                        (unsigned long long)epoch, from,
                        (unsigned long long)was);
    }
}

static void heard_done(struct pds_diskq_job *job)
{
    struct heard_job *j = PDS_DISKQ_OWNER(job, struct heard_job, job);

    if (!j->d->is_stopping)
        epoch_stored(j->d, j->epoch, j->was, j->from, j->rv, j->errmsg);
    free(j);
}

/*
 * A peer's message carried an epoch above this node's: record it (the
 * core decides whether it is news; the epoch is stored on a pool thread,
 * off the loop, then taken), so that status shows it and a later term of
 * this node begins above it. A server that hears it from its own group
 * says so: another node has been the server since.
 */
static void on_epoch(void *arg, struct pds_conn *c, uint64_t epoch)
{
    struct daemon *d = arg;
    struct pds_event ev;
    struct pds_update up;
    struct heard_job *j;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_EPOCH_HEARD;
    ev.u.epoch_heard.epoch = epoch;
    if (pds_core_step(d->core, &ev, &up) != 0) {
        pds_commlog(PDS_LOG_ERROR, "epoch %llu heard from %s: %s",
                    (unsigned long long)epoch, pds_conn_address(c), up.errmsg);
        return;
    }
    if (!up.has_epoch)
        return; /* not news, or one is being stored */
    j = calloc(1, sizeof(*j));
    if (j != NULL) {
        j->d = d;
        j->epoch = up.epoch;
        j->was = pds_core_epoch(d->core);
        snprintf(j->from, sizeof(j->from), "%s", pds_conn_address(c));
        pds__diskq_push(&d->diskq, &j->job, heard_work, heard_done);
        return;
    }
    epoch_stored(d, up.epoch, pds_core_epoch(d->core), pds_conn_address(c),
                 PDS_ENOMEM, "out of memory");
}

static void role_told(struct settings_job *sj)
{
    struct daemon *d = sj->d;

    set_role(sj);
    pds_commlog(PDS_LOG_INFO,
                sj->role == PDS_ROLE_STANDBY
                    ? "this node is the replication destination of server %s"
                    : "this node is no longer the replication destination of "
                      "server %s",
                d->server);
}

/* Client side: the server says whether this node is its replication
 * destination (ROLE). */
static void on_role(struct daemon *d, const struct pds_msg *m)
{
    enum pds_role now = pds_core_role(d->core);
    enum pds_role want = m->is_standby ? PDS_ROLE_STANDBY : PDS_ROLE_CLIENT;
    struct settings_job *sj;

    /* Already so, no longer a follower, or a move is being stored (the
     * server says it again at its next SYNC). */
    if (now == want || !pds_role_follows(now) ||
        pds_core_role_pending(d->core) != now)
        return;
    sj = settings_new(d, NULL, 0, role_told);
    if (sj == NULL)
        return; /* told again at the next link */
    if (settings_role(sj, want,
                      m->is_standby ? PDS_ROLE_CAUSE_DESIGNATED
                                    : PDS_ROLE_CAUSE_RELEASED) != 0)
        return; /* logged */
    settings_push(sj);
}

static void on_message(void *arg, struct pds_conn *c, struct pds_msg *m)
{
    struct daemon *d = arg;

    switch (m->type) {
    case PDS_MSG_JOIN:
        if (pds_conn_is_initiator(c)) {
            pds_conn_close(c, "protocol error: join sent to a client");
            return;
        }
        on_join(d, c, m);
        return;
    case PDS_MSG_SYNC:
    case PDS_MSG_ACK:
    case PDS_MSG_SNAP_ACK:
    case PDS_MSG_WRITE:
        /* From a member of this server's group only. */
        if (pds_conn_is_initiator(c) || pds_conn_data(c) == NULL ||
            pds_core_role(d->core) != PDS_ROLE_SERVER) {
            pds_conn_close(c, "protocol error: not a member");
            return;
        }
        if (m->type == PDS_MSG_SYNC)
            pds__repl_on_sync(d, c, m);
        else if (m->type == PDS_MSG_ACK)
            pds__repl_on_ack(d, c, m);
        else if (m->type == PDS_MSG_SNAP_ACK)
            pds__repl_on_snap_ack(d, c, m);
        else
            pds__repl_on_write(d, c, m);
        return;
    case PDS_MSG_ENTRIES:
    case PDS_MSG_SNAPSHOT:
    case PDS_MSG_WRITE_ACK:
    case PDS_MSG_NOTICE:
    case PDS_MSG_ROLE:
        /* From our server, once it welcomed us. */
        if (!pds_conn_is_initiator(c) || pds_conn_id(c) != d->link_conn ||
            !d->is_linked) {
            pds_conn_close(c, "protocol error: unexpected message");
            return;
        }
        if (m->type == PDS_MSG_ENTRIES)
            pds__repl_on_entries(d, c, m);
        else if (m->type == PDS_MSG_SNAPSHOT)
            pds__repl_on_snapshot(d, c, m);
        else if (m->type == PDS_MSG_WRITE_ACK)
            pds__repl_on_write_ack(d, m);
        else if (m->type == PDS_MSG_ROLE)
            on_role(d, m);
        else
            pds__repl_on_notice(d, m);
        return;
    case PDS_MSG_ADMIN:
        if (pds_conn_is_initiator(c) || pds_conn_data(c) != NULL) {
            pds_conn_close(c, "protocol error: unexpected admin request");
            return;
        }
        pds__admin_on_request(d, c, m);
        return;
    case PDS_MSG_LEAVE:
        if (pds_conn_is_initiator(c) || pds_conn_data(c) == NULL) {
            pds_conn_close(c, "protocol error: unexpected leave");
            return;
        }
        on_leave(d, c);
        return;
    case PDS_MSG_WELCOME:
        if (!pds_conn_is_initiator(c) || pds_conn_id(c) != d->link_conn) {
            pds_conn_close(c, "protocol error: unexpected welcome");
            return;
        }
        on_welcome(d, c, m);
        return;
    default:
        pds_conn_close(c, "protocol error: unexpected message");
    }
}

static void on_close(void *arg, struct pds_conn *c, const char *error)
{
    struct daemon *d = arg;
    uint8_t *pk = pds_conn_data(c);

    if (pk != NULL) {
        struct pds_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = PDS_EVENT_PEER_LEFT;
        ev.now = pds__wall_ms();
        ev.u.left.conn = pds_conn_id(c);
        memcpy(ev.u.left.pk, pk, PDS_KEY_BYTES);
        ev.u.left.error = error != NULL ? error : "disconnected";
        ev.u.left.has_position =
            pds__repl_durable(d, pds_conn_id(c), &ev.u.left.position);
        free(pk);
        pds_conn_set_data(c, NULL);
        /* At shutdown only what a follower confirmed is kept (it tells
         * after a restart whether it will need a refresh), no error. */
        if (d->is_stopping)
            ev.u.left.error = "";
        if ((!d->is_stopping || ev.u.left.has_position) &&
            pds__daemon_step(d, &ev) != 0)
            pds_commlog(PDS_LOG_ERROR,
                        "the end of the connection of %s could not be "
                        "recorded (out of memory)",
                        pds_conn_address(c));
    } else if (error != NULL && !pds_conn_is_initiator(c) &&
               strncmp(error, "refused: ", 9) != 0) {
        /* Our own refusals were logged when they were decided. */
        pds_commlog(PDS_LOG_WARNING, "connection from %s: %s",
                    pds_conn_address(c), error);
    }
    pds__repl_conn_closed(d, pds_conn_id(c));
    if (pds_conn_id(c) == d->link_conn) {
        d->link_conn = 0;
        d->is_linked = 0;
        pds__repl_link_lost(d);
        if (pds_conn_id(c) == d->notice_conn) {
            /* The server said why it closed: that stays the error. */
            d->notice_conn = 0;
        } else {
            if (error != NULL &&
                strncmp(d->link_error, error, sizeof(d->link_error) - 1) != 0) {
                pds_commlog(PDS_LOG_WARNING, "server %s: %s", d->server, error);
            }
            if (error != NULL)
                snprintf(d->link_error, sizeof(d->link_error), "%s", error);
        }
        link_schedule(d);
    }
}

/* ---- Core updates ----------------------------------------------------- */

/* Answer a join: welcome, or refuse and close. */
static void answer_join(struct daemon *d, const struct pds_join_reply *r)
{
    char gid[2 * PDS_GROUP_ID_BYTES + 1];
    struct pds_conn *c = pds__daemon_conn(d, r->conn);
    struct pds_msg m;

    if (c == NULL)
        return;
    if (r->status != 0) {
        /* A refused node retries: log a refusal once a minute. */
        uint64_t now = pds__wall_ms();
        if (strcmp(d->last_refusal, r->errmsg) != 0 ||
            now - d->last_refusal_ms > 60000) {
            pds_commlog(PDS_LOG_WARNING, "refused node at %s: %s",
                        pds_conn_address(c), r->errmsg);
            snprintf(d->last_refusal, sizeof(d->last_refusal), "%s", r->errmsg);
            d->last_refusal_ms = now;
        }
        free(pds_conn_data(c));
        pds_conn_set_data(c, NULL);
        pds_conn_refuse(c, r->status, r->errmsg);
        return;
    }
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_WELCOME;
    memcpy(m.group, d->group, PDS_GROUP_ID_BYTES);
    m.member_id = r->member_id;
    if (d->secret_len > 0) {
        pds_join_proof(d->secret, d->secret_len, pds_conn_hash(c), 's',
                       m.proof);
        m.has_proof = 1;
    }
    if (r->is_new)
        pds_commlog(PDS_LOG_INFO, "enrolled client %016llx from %s in group %s",
                    (unsigned long long)r->member_id, pds_conn_address(c),
                    hex(d->group, PDS_GROUP_ID_BYTES, gid));
    pds_conn_send(c, &m);
}

/* Close a stopped member's connection. */
static void send_disconnect(struct daemon *d, uint64_t conn)
{
    struct pds_conn *c = pds__daemon_conn(d, conn);

    if (c != NULL) {
        free(pds_conn_data(c));
        pds_conn_set_data(c, NULL);
        pds_conn_refuse(c, PDS_EPERM,
                        "synchronization of this client was stopped by "
                        "the administrator");
    }
}

/*
 * A join answered before its member row is stored: a refusal, or the
 * welcome of a member enrolled before (its row only updates its address
 * and last contact). A new enrollment's welcome waits for the row: no
 * client may be welcomed by a server that could forget it after a crash.
 */
static int join_is_urgent(const struct pds_join_reply *r)
{
    return r->status != 0 || !r->is_new;
}

/* Member rows on the storage queue, and what goes out once they are
 * stored (copies of the update's arrays, which live until the next
 * step): the welcomes of new members, the disconnects of stopped ones,
 * the replies of the update (an administrator's 'clients stop'). */
struct members_job {
    struct pds_diskq_job job;
    struct daemon *d;
    struct pds_member *members;
    size_t n_members;
    struct pds_join_reply *joins;
    size_t n_joins;
    uint64_t *disconnect;
    size_t n_disconnect;
    struct pds_reply *replies;
    size_t n_replies;
    int rv;
    char errmsg[PDS_ERRMSG_SIZE];
};

static void members_job_free(struct members_job *j)
{
    free(j->members);
    free(j->joins);
    free(j->disconnect);
    free(j->replies);
    free(j);
}

static void members_work(struct pds_diskq_job *job)
{
    struct members_job *j = PDS_DISKQ_OWNER(job, struct members_job, job);

    j->rv = pds_store_members_put(j->d->store, j->members, j->n_members);
    if (j->rv != 0)
        snprintf(j->errmsg, sizeof(j->errmsg), "%s",
                 pds_store_commit_errmsg(j->d->store));
}

static void members_done(struct pds_diskq_job *job)
{
    struct members_job *j = PDS_DISKQ_OWNER(job, struct members_job, job);
    struct daemon *d = j->d;
    size_t i;

    d->n_member_jobs--;
    if (j->rv != 0)
        pds_commlog(PDS_LOG_ERROR, "%s", j->errmsg);
    for (i = 0; i < j->n_joins; i++)
        answer_join(d, &j->joins[i]);
    for (i = 0; i < j->n_disconnect; i++)
        send_disconnect(d, j->disconnect[i]);
    pds__daemon_deliver(d, j->replies, j->n_replies);
    members_job_free(j);
}

int pds__group_update(struct daemon *d, const struct pds_update *u)
{
    struct members_job *j;
    size_t i, n_later = u->n_disconnect;

    for (i = 0; i < u->n_joins; i++) {
        if (join_is_urgent(&u->joins[i]))
            answer_join(d, &u->joins[i]);
        else
            n_later++;
    }
    if (u->n_members == 0 && (n_later == 0 || d->n_member_jobs == 0)) {
        for (i = 0; i < u->n_joins; i++) {
            if (!join_is_urgent(&u->joins[i]))
                answer_join(d, &u->joins[i]);
        }
        for (i = 0; i < u->n_disconnect; i++)
            send_disconnect(d, u->disconnect[i]);
        return 0;
    }
    /* After the rows, and after the rows of the updates before. */
    j = calloc(1, sizeof(*j));
    if (j != NULL && u->n_members > 0 &&
        (j->members = malloc(u->n_members * sizeof(*u->members))) != NULL)
        memcpy(j->members, u->members, u->n_members * sizeof(*u->members));
    if (j != NULL && n_later > u->n_disconnect &&
        (j->joins = malloc(n_later * sizeof(*u->joins))) != NULL) {
        for (i = 0; i < u->n_joins; i++) {
            if (!join_is_urgent(&u->joins[i]))
                j->joins[j->n_joins++] = u->joins[i];
        }
    }
    if (j != NULL && u->n_disconnect > 0 &&
        (j->disconnect = malloc(u->n_disconnect * sizeof(uint64_t))) != NULL) {
        memcpy(j->disconnect, u->disconnect,
               u->n_disconnect * sizeof(uint64_t));
        j->n_disconnect = u->n_disconnect;
    }
    if (j != NULL && u->n_members > 0 && u->n_replies > 0 &&
        (j->replies = malloc(u->n_replies * sizeof(*u->replies))) != NULL) {
        memcpy(j->replies, u->replies, u->n_replies * sizeof(*u->replies));
        j->n_replies = u->n_replies;
    }
    if (j == NULL || (u->n_members > 0 && j->members == NULL) ||
        j->n_joins + j->n_disconnect != n_later ||
        (u->n_members > 0 && j->n_replies != u->n_replies)) {
        /* No memory: the rows are the core's and go with its next change
         * of them; the answers go now. */
        pds_commlog(PDS_LOG_ERROR, "save clients: out of memory");
        for (i = 0; i < u->n_joins; i++) {
            if (!join_is_urgent(&u->joins[i]))
                answer_join(d, &u->joins[i]);
        }
        for (i = 0; i < u->n_disconnect; i++)
            send_disconnect(d, u->disconnect[i]);
        if (j != NULL)
            members_job_free(j);
        return 0;
    }
    j->d = d;
    j->n_members = u->n_members;
    d->n_member_jobs++;
    pds__diskq_push(&d->diskq, &j->job, members_work, members_done);
    return j->n_replies > 0;
}

/* ---- Administration --------------------------------------------------- */

static void reply_ok(struct pds_local_conn *conn, uint64_t id)
{
    pds__daemon_send(conn, pds_reply_new(id, 0, NULL));
}

static void
reply_err(struct pds_local_conn *conn, uint64_t id, int rv, const char *msg)
{
    pds__daemon_send(conn, pds_reply_new(id, rv, msg));
}

/* A job for an administrator's change of settings, or NULL with conn
 * answered (busy: another one is being stored; no memory). */
static struct settings_job *admin_settings(struct daemon *d,
                                           struct pds_local_conn *conn,
                                           const struct pds_request *req,
                                           void (*apply)(struct settings_job *))
{
    struct settings_job *sj;

    if (d->is_settings_busy) {
        reply_err(conn, req->id, PDS_EBUSY,
                  "another change of this node's settings is being stored: "
                  "try again in a moment (nothing was changed)");
        return NULL;
    }
    sj = settings_new(d, conn, req->id, apply);
    if (sj != NULL)
        sj->is_admin = 1;
    return sj;
}

static int check_secret(const struct pds_request *req, char *errmsg)
{
    if (req->secret_len < PDS_SECRET_MIN || req->secret_len > PDS_SECRET_MAX) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "the join secret is %zu bytes; it must be %d to %d bytes",
                 req->secret_len, PDS_SECRET_MIN, PDS_SECRET_MAX);
        return PDS_EINVAL;
    }
    return 0;
}

static void server_started(struct settings_job *sj)
{
    struct daemon *d = sj->d;
    struct pds_server_started st;
    struct pds_reply_buf *rb;
    char gid[2 * PDS_GROUP_ID_BYTES + 1];

    if (sj->has_new_group) {
        memcpy(d->group, sj->group, PDS_GROUP_ID_BYTES);
        d->has_group = 1;
    }
    if (sj->has_new_secret) {
        memcpy(d->secret, sj->secret, sj->secret_len);
        d->secret_len = sj->secret_len;
    }
    pds_net_set_group(d->net, d->group);
    if (sj->has_role) {
        set_role(sj);
        pds_commlog(PDS_LOG_INFO, "server started for group %s",
                    hex(d->group, PDS_GROUP_ID_BYTES, gid));
    }
    st.group = hex(d->group, PDS_GROUP_ID_BYTES, gid);
    st.secret = sj->generated[0] != '\0' ? sj->generated : NULL;
    st.listen = d->listen;
    rb = pds_reply_new(sj->id, 0, NULL);
    if (rb != NULL)
        pds_reply_server_started(rb, &st);
    pds__daemon_send(sj->conn, rb);
}

/* A write failed: a join secret made for it and stored before the failure
 * is the node's now, and said, so that the next try is not a surprise. */
static void server_start_failed(struct settings_job *sj)
{
    struct daemon *d = sj->d;
    char msg[PDS_ERRMSG_SIZE + 256];

    if (sj->has_new_secret && sj->n_stored > sj->secret_put) {
        memcpy(d->secret, sj->secret, sj->secret_len);
        d->secret_len = sj->secret_len;
    } else {
        sj->generated[0] = '\0';
    }
    if (sj->has_new_group && sj->n_stored > 0) {
        memcpy(d->group, sj->group, PDS_GROUP_ID_BYTES);
        d->has_group = 1;
    }
    snprintf(msg, sizeof(msg), "%s%s%snot done: %s; the node is still %s",
             sj->generated[0] != '\0' ? "the join secret is " : "",
             sj->generated, sj->generated[0] != '\0' ? "; " : "", sj->errmsg,
             pds_role_name(pds_core_role(d->core)));
    reply_err(sj->conn, sj->id, PDS_EIO, msg);
    sodium_memzero(msg, sizeof(msg));
}

static void server_start(struct daemon *d,
                         struct pds_local_conn *conn,
                         const struct pds_request *req)
{
    struct settings_job *sj;
    char errmsg[PDS_ERRMSG_SIZE];

    if (pds_role_follows(pds_core_role(d->core))) {
        snprintf(errmsg, sizeof(errmsg),
                 "this node is a client of %s: run 'pdsync client stop' "
                 "first (nothing was changed)",
                 d->server);
        reply_err(conn, req->id, PDS_EBUSY, errmsg);
        return;
    }
    if (req->secret != NULL && check_secret(req, errmsg) != 0) {
        reply_err(conn, req->id, PDS_EINVAL, errmsg);
        return;
    }
    sj = admin_settings(d, conn, req, server_started);
    if (sj == NULL)
        return;
    if (!d->has_group) {
        randombytes_buf(sj->group, PDS_GROUP_ID_BYTES);
        sj->has_new_group = 1;
        setting(sj, "group", sj->group, PDS_GROUP_ID_BYTES);
    }
    if (req->secret != NULL) {
        memcpy(sj->secret, req->secret, req->secret_len);
        sj->secret_len = req->secret_len;
        sj->has_new_secret = 1;
    } else if (d->secret_len == 0) {
        uint8_t raw[32];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2hex(sj->generated, sizeof(sj->generated), raw, sizeof(raw));
        sodium_memzero(raw, sizeof(raw));
        memcpy(sj->secret, sj->generated, 64);
        sj->secret_len = 64;
        sj->has_new_secret = 1;
    }
    sj->secret_put = sj->n_puts;
    if (sj->has_new_secret)
        setting(sj, "secret", sj->secret, sj->secret_len);
    sj->failed = server_start_failed;
    if (pds_core_role(d->core) != PDS_ROLE_SERVER &&
        settings_role(sj, PDS_ROLE_SERVER, PDS_ROLE_CAUSE_SERVER_START) != 0)
        return;
    settings_push(sj);
}

static void server_stopped(struct settings_job *sj)
{
    struct daemon *d = sj->d;
    int waited = pds__daemon_waits_for_standby(d);

    if (sj->has_role) {
        set_role(sj);
        pds__daemon_server_stopped(d, waited);
        pds_net_close_all(d->net, NULL);
    }
    pds_commlog(PDS_LOG_INFO, "server stopped; the group's clients were "
                              "disconnected");
    reply_ok(sj->conn, sj->id);
}

static void server_stop(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req)
{
    struct settings_job *sj;

    if (pds_core_role(d->core) != PDS_ROLE_SERVER) {
        reply_err(conn, req->id, PDS_EINVAL,
                  "this node is not a server (nothing was changed)");
        return;
    }
    sj = admin_settings(d, conn, req, server_stopped);
    if (sj == NULL)
        return;
    if (settings_role(sj, PDS_ROLE_STANDALONE, PDS_ROLE_CAUSE_SERVER_STOP) != 0)
        return;
    settings_push(sj);
}

static void client_started(struct settings_job *sj)
{
    struct daemon *d = sj->d;

    /* A (re)start with a secret enrolls anew: forget the pinned server. */
    link_drop(d, NULL);
    snprintf(d->server, sizeof(d->server), "%s", sj->server);
    memcpy(d->secret, sj->secret, sj->secret_len);
    d->secret_len = sj->secret_len;
    d->has_server_pk = 0;
    d->has_group = 0;
    pds_net_set_group(d->net, NULL);
    snprintf(d->name, sizeof(d->name), "%s", sj->name);
    if (sj->has_role)
        set_role(sj);
    d->n_retries = 0;
    d->link_error[0] = '\0';
    pds_commlog(PDS_LOG_INFO, "client started: server %s", d->server);
    link_connect(d);
    reply_ok(sj->conn, sj->id);
}

static void client_start(struct daemon *d,
                         struct pds_local_conn *conn,
                         const struct pds_request *req)
{
    struct settings_job *sj;
    char errmsg[PDS_ERRMSG_SIZE];
    char host[256];
    char port[8];
    char server[128];

    if (pds_core_role(d->core) == PDS_ROLE_SERVER) {
        reply_err(conn, req->id, PDS_EBUSY,
                  "this node is the server of its group: run 'pdsync "
                  "server stop' first (nothing was changed)");
        return;
    }
    if (req->target_len >= sizeof(server)) {
        reply_err(conn, req->id, PDS_EINVAL, "server address too long");
        return;
    }
    memcpy(server, req->target, req->target_len);
    server[req->target_len] = '\0';
    if (pds_net_split(server, host, sizeof(host), port, sizeof(port)) != 0 ||
        host[0] == '\0' || strcmp(port, "0") == 0) {
        snprintf(errmsg, sizeof(errmsg),
                 "'%s' is not HOST:PORT (use [ADDRESS]:PORT for IPv6)", server);
        reply_err(conn, req->id, PDS_EINVAL, errmsg);
        return;
    }
    if (check_secret(req, errmsg) != 0) {
        reply_err(conn, req->id, PDS_EINVAL, errmsg);
        return;
    }
    if (req->name_len >= sizeof(d->name)) {
        reply_err(conn, req->id, PDS_EINVAL, "name longer than 63 bytes");
        return;
    }
    if (req->name != NULL &&
        pds_find_control(req->name, req->name_len) != NULL) {
        reply_err(conn, req->id, PDS_EINVAL,
                  "the name holds a control character (a line break, a "
                  "tab...): use printable text (nothing was changed)");
        return;
    }
    sj = admin_settings(d, conn, req, client_started);
    if (sj == NULL)
        return;
    snprintf(sj->server, sizeof(sj->server), "%s", server);
    memcpy(sj->secret, req->secret, req->secret_len);
    sj->secret_len = req->secret_len;
    if (req->name != NULL)
        memcpy(sj->name, req->name, req->name_len);
    setting(sj, "server", sj->server, strlen(sj->server));
    setting(sj, "secret", sj->secret, sj->secret_len);
    setting(sj, "server_pk", NULL, 0);
    setting(sj, "group", NULL, 0);
    setting(sj, "name", sj->name, strlen(sj->name));
    /* At the first snapshot: keep the newer of each record (--merge), or
     * the server's copy of every owner it holds. */
    setting(sj, "join_mode", req->limit == 1 ? "merge" : NULL,
            req->limit == 1 ? 5 : 0);
    sj->changes_server = 1;
    if (pds_core_role(d->core) != PDS_ROLE_CLIENT &&
        settings_role(sj, PDS_ROLE_CLIENT, PDS_ROLE_CAUSE_CLIENT_START) != 0)
        return;
    settings_push(sj);
}

static void client_stopped(struct settings_job *sj)
{
    struct daemon *d = sj->d;
    struct pds_conn *c;
    struct pds_msg m;

    /* Tell the server, so that it stops counting this machine. */
    c = d->is_linked ? pds__daemon_conn(d, d->link_conn) : NULL;
    set_role(sj);
    if (c != NULL) {
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_LEAVE;
        d->link_conn = 0;
        d->is_linked = 0;
        if (pds_conn_send(c, &m) == 0)
            pds_conn_finish(c, NULL);
        else
            pds_conn_close(c, NULL);
    } else {
        pds_commlog(PDS_LOG_WARNING,
                    "client stopped while the server %s was unreachable: "
                    "it still counts this machine until its administrator "
                    "runs 'pdsync clients stop'",
                    d->server);
    }
    link_drop(d, NULL);
    pds_commlog(PDS_LOG_INFO, "client stopped (server %s)", d->server);
    reply_ok(sj->conn, sj->id);
}

static void client_stop(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req)
{
    struct settings_job *sj;

    if (!pds_role_follows(pds_core_role(d->core))) {
        reply_err(conn, req->id, PDS_EINVAL,
                  "this node is not a client (nothing was changed)");
        return;
    }
    sj = admin_settings(d, conn, req, client_stopped);
    if (sj == NULL)
        return;
    if (settings_role(sj, PDS_ROLE_STANDALONE, PDS_ROLE_CAUSE_CLIENT_STOP) != 0)
        return;
    settings_push(sj);
}

static void clients_list(struct daemon *d,
                         struct pds_local_conn *conn,
                         const struct pds_request *req)
{
    const struct pds_member *members;
    struct pds_member *copy;
    struct pds_store_meta meta;
    struct pds_reply_buf *rb;
    size_t n;
    size_t i;

    members = pds_core_members(d->core, &n);
    copy = calloc(n + 1, sizeof(*copy));
    if (copy == NULL) {
        reply_err(conn, req->id, PDS_ENOMEM, "out of memory");
        return;
    }
    if (pds_store_meta(d->store, &meta) != 0)
        memset(&meta, 0, sizeof(meta));
    for (i = 0; i < n; i++) {
        copy[i] = members[i];
        copy[i].is_following = pds__repl_follower(d, copy[i].pk, &copy[i]);
        /* Away with a position the retained log no longer follows: it
         * takes a snapshot when it comes back. */
        if (!copy[i].is_following && copy[i].state == PDS_MEMBER_ENROLLED &&
            !pds_repl_retained(copy[i].position, meta.first_index,
                               meta.last_index))
            snprintf(copy[i].sync, sizeof(copy[i].sync), "needs refresh");
    }
    rb = pds_reply_new(req->id, 0, NULL);
    if (rb != NULL)
        pds_reply_members(rb, copy, n, pds_core_last_index(d->core));
    pds__daemon_send(conn, rb);
    free(copy);
}

static void clients_admin(struct daemon *d,
                          struct pds_local_conn *conn,
                          const struct pds_request *req)
{
    struct pds_event ev;
    struct waiter *w;
    char target[PDS_MEMBER_TEXT];
    int was_enrolled;

    if (req->target_len >= sizeof(target)) {
        reply_err(conn, req->id, PDS_ENOTFOUND, "no such client");
        return;
    }
    memcpy(target, req->target, req->target_len);
    target[req->target_len] = '\0';
    {
        /* Logged below only when this stops an enrolled client. */
        char msg[PDS_ERRMSG_SIZE];
        const struct pds_member *m = pds_core_member_find(d->core, target, msg);
        was_enrolled = m != NULL && m->state == PDS_MEMBER_ENROLLED &&
                       pds_core_role(d->core) == PDS_ROLE_SERVER;
    }
    w = pds__daemon_waiter(conn, req);
    if (w == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_MEMBER_ADMIN;
    ev.now = pds__wall_ms();
    ev.u.member_admin.req = (uint64_t)(uintptr_t)w;
    ev.u.member_admin.op = req->op == PDS_REQ_CLIENTS_STOP
                               ? PDS_MEMBER_OP_STOP
                               : PDS_MEMBER_OP_START;
    ev.u.member_admin.target = target;
    if (pds__daemon_step(d, &ev) != 0) {
        reply_err(conn, req->id, PDS_ENOMEM, "out of memory");
        pds_local_conn_unref(conn);
        free(w);
        return;
    }
    if (req->op == PDS_REQ_CLIENTS_STOP) {
        /* Only a client that exists (the core answered "not found"
         * otherwise), by its id and name. */
        char msg[PDS_ERRMSG_SIZE];
        const struct pds_member *m = pds_core_member_find(d->core, target, msg);
        if (was_enrolled && m != NULL && m->state == PDS_MEMBER_STOPPED)
            pds_commlog(PDS_LOG_INFO,
                        "client %016llx (%s) stopped by the administrator",
                        (unsigned long long)m->id, m->name);
    }
}

static void replication_stopped(struct settings_job *sj)
{
    struct daemon *d = sj->d;

    /* Writes waiting for the standby are durable here: answered. */
    pds__daemon_standby_set(d, 0);
    pds__repl_tell_roles(d);
    pds_commlog(PDS_LOG_INFO, "replication stopped");
    reply_ok(sj->conn, sj->id);
}

static void replication_started(struct settings_job *sj)
{
    struct daemon *d = sj->d;
    pds_index durable;

    memcpy(d->standby_pk, sj->pk, PDS_KEY_BYTES);
    pds__daemon_standby_set(d, 1); /* from its next confirmation */
    pds__repl_tell_roles(d);
    pds_commlog(PDS_LOG_INFO,
                "replication destination: %s (%016llx); acknowledgements: %s",
                sj->name, (unsigned long long)sj->member_id,
                pds__daemon_ack_mode(d));
    /* Following already: what it confirmed counts at once. */
    if (pds__repl_durable_of(d, sj->pk, &durable))
        pds__daemon_standby_ack(d, durable);
    reply_ok(sj->conn, sj->id);
}

/* replication start NAME|ID, replication stop. */
static void replication(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req)
{
    const struct pds_member *found;
    struct settings_job *sj;
    char target[PDS_MEMBER_TEXT];
    char msg[PDS_ERRMSG_SIZE];

    if (pds_core_role(d->core) != PDS_ROLE_SERVER) {
        reply_err(conn, req->id, PDS_EPERM,
                  "this node is not a server: run the command on the "
                  "group's server (nothing was changed)");
        return;
    }
    if (req->op == PDS_REQ_REPLICATION_STOP) {
        if (!d->has_standby) {
            reply_err(conn, req->id, PDS_EINVAL,
                      "no replication destination is set");
            return;
        }
        sj = admin_settings(d, conn, req, replication_stopped);
        if (sj == NULL)
            return;
        setting(sj, "standby", NULL, 0);
        settings_push(sj);
        return;
    }
    if (req->target_len >= sizeof(target)) {
        reply_err(conn, req->id, PDS_ENOTFOUND, "no such client");
        return;
    }
    memcpy(target, req->target, req->target_len);
    target[req->target_len] = '\0';
    found = pds_core_member_find(d->core, target, msg);
    if (found != NULL && found->state != PDS_MEMBER_ENROLLED) {
        snprintf(msg, sizeof(msg),
                 "client \"%s\" is stopped: start it with 'pdsync clients "
                 "start' first (nothing was changed)",
                 target);
        found = NULL;
    }
    if (found == NULL) {
        reply_err(conn, req->id, PDS_ENOTFOUND, msg);
        return;
    }
    sj = admin_settings(d, conn, req, replication_started);
    if (sj == NULL)
        return;
    memcpy(sj->pk, found->pk, PDS_KEY_BYTES);
    snprintf(sj->name, sizeof(sj->name), "%s", found->name);
    sj->member_id = found->id;
    setting(sj, "standby", sj->pk, PDS_KEY_BYTES);
    settings_push(sj);
}

static void admin_password_set(struct settings_job *sj)
{
    struct daemon *d = sj->d;

    pds__admin_password_set(d, sj->hash);
    pds_commlog(PDS_LOG_INFO, "administrator password set");
    reply_ok(sj->conn, sj->id);
}

static void admin_password_failed(struct settings_job *sj)
{
    reply_err(sj->conn, sj->id, PDS_EIO, sj->errmsg);
}

static void admin_password(struct daemon *d,
                           struct pds_local_conn *conn,
                           const struct pds_request *req)
{
    struct settings_job *sj;

    if (req->secret_len < 8 || req->secret_len > PDS_SECRET_MAX) {
        reply_err(conn, req->id, PDS_EINVAL,
                  "the administrator password must be 8 to 128 bytes "
                  "(nothing was changed)");
        return;
    }
    sj = admin_settings(d, conn, req, admin_password_set);
    if (sj == NULL)
        return;
    sj->failed = admin_password_failed;
    /* A memory-hard hash: only the hash is stored. */
    if (crypto_pwhash_str(sj->hash, (const char *)req->secret, req->secret_len,
                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        reply_err(conn, req->id, PDS_ENOMEM,
                  "not enough memory to hash the password");
        pds_local_conn_unref(sj->conn);
        sodium_memzero(sj, sizeof(*sj));
        free(sj);
        return;
    }
    setting(sj, "admin_pw", sj->hash, strlen(sj->hash));
    settings_push(sj);
}

void pds__group_request(struct daemon *d,
                        struct pds_local_conn *conn,
                        const struct pds_request *req)
{
    switch (req->op) {
    case PDS_REQ_ADMIN_PASSWORD:
        admin_password(d, conn, req);
        break;
    case PDS_REQ_REPLICATION_START:
    case PDS_REQ_REPLICATION_STOP:
        replication(d, conn, req);
        break;
    case PDS_REQ_SERVER_START:
        server_start(d, conn, req);
        break;
    case PDS_REQ_SERVER_STOP:
        server_stop(d, conn, req);
        break;
    case PDS_REQ_CLIENT_START:
        client_start(d, conn, req);
        break;
    case PDS_REQ_CLIENT_STOP:
        client_stop(d, conn, req);
        break;
    case PDS_REQ_CLIENTS:
        clients_list(d, conn, req);
        break;
    case PDS_REQ_CLIENTS_STOP:
    case PDS_REQ_CLIENTS_START:
        clients_admin(d, conn, req);
        break;
    default:
        reply_err(conn, req->id, PDS_EINVAL, "not a group request");
    }
}

/* ---- Start and stop --------------------------------------------------- */

/*
 * A stored setting: 0 when read (or absent: *len 0), -1 when it cannot be
 * read or its size is not one of want (0: any up to cap), with errmsg.
 */
/* A stored setting that cannot be used, and why: -1 with errmsg. */
static int damaged_setting(const struct daemon *d,
                           const char *name,
                           const char *why,
                           char *errmsg)
{
    snprintf(errmsg, PDS_ERRMSG_SIZE,
             "%s/db: the stored setting \"%s\" is damaged (%s): the node "
             "was not started; restore the data directory from a backup",
             d->data_dir, name, why);
    return -1;
}

static int load_blob(struct daemon *d,
                     const char *name,
                     void *buf,
                     size_t cap,
                     size_t *len,
                     size_t want,
                     char *errmsg)
{
    int rv;

    *len = 0;
    rv = pds_store_blob_get(d->store, name, buf, cap, len);
    if (rv == PDS_ENOTFOUND) {
        *len = 0;
        return 0;
    }
    if (rv == 0 && (want == 0 || *len == want || *len == 0))
        return 0;
    *len = 0;
    return damaged_setting(
        d, name, rv != 0 ? pds_store_errmsg(d->store) : "not the expected size",
        errmsg);
}

/* The core's clock: slots of silent clients are reclaimed on ticks. */
static void on_tick(uv_timer_t *t)
{
    struct daemon *d = t->data;
    struct pds_event ev;
    int rv;

    memset(&ev, 0, sizeof(ev));
    ev.type = PDS_EVENT_TICK;
    ev.now = pds__wall_ms();
    rv = pds__daemon_step(d, &ev);
    if (rv != 0)
        pds_commlog(PDS_LOG_ERROR,
                    "reclaiming the slots of silent clients failed (tried "
                    "again at the next tick): %s",
                    pds_strerror(rv));
}

/* Write DIR/listen.addr atomically once the port is bound. */
static int write_listen_addr(struct daemon *d, char *errmsg)
{
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    int fd;
    int n;

    snprintf(path, sizeof(path), "%s/listen.addr", d->data_dir);
    snprintf(tmp, sizeof(tmp), "%s/listen.addr.tmp", d->data_dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    n = (int)strlen(d->listen);
    if (fd < 0 || write(fd, d->listen, (size_t)n) != n ||
        write(fd, "\n", 1) != 1 || close(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "write %s: %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int pds__group_open(struct daemon *d, char *errmsg)
{
    struct pds_net_config ncfg;
    struct pds_net_callbacks cb = {on_open, on_message, on_close, on_epoch};
    char path[PATH_MAX];
    uint8_t role = PDS_ROLE_STANDALONE;
    size_t len;
    int rv;

    snprintf(path, sizeof(path), "%s/listen.addr", d->data_dir);
    unlink(path);
    rv = pds_identity_load(d->data_dir, &d->id, errmsg);
    if (rv != 0)
        return -1;
    if (load_blob(d, "role", &role, 1, &len, 1, errmsg) != 0)
        return -1;
    if (len == 0)
        role = PDS_ROLE_STANDALONE;
    else if (role > PDS_ROLE_STANDBY) {
        char why[32];
        snprintf(why, sizeof(why), "%u", (unsigned)role);
        return damaged_setting(d, "role", why, errmsg);
    }
    if (load_blob(d, "group", d->group, PDS_GROUP_ID_BYTES, &len,
                  PDS_GROUP_ID_BYTES, errmsg) != 0)
        return -1;
    d->has_group = len == PDS_GROUP_ID_BYTES;
    if (load_blob(d, "secret", d->secret, sizeof(d->secret), &d->secret_len, 0,
                  errmsg) != 0 ||
        load_blob(d, "server", d->server, sizeof(d->server) - 1, &len, 0,
                  errmsg) != 0)
        return -1;
    d->server[len] = '\0';
    if (load_blob(d, "name", d->name, sizeof(d->name) - 1, &len, 0, errmsg) !=
        0)
        return -1;
    d->name[len] = '\0';
    if (load_blob(d, "server_pk", d->server_pk, PDS_KEY_BYTES, &len,
                  PDS_KEY_BYTES, errmsg) != 0)
        return -1;
    d->has_server_pk = len == PDS_KEY_BYTES;
    if (load_blob(d, "standby", d->standby_pk, PDS_KEY_BYTES, &len,
                  PDS_KEY_BYTES, errmsg) != 0)
        return -1;
    pds__daemon_standby_set(d, len == PDS_KEY_BYTES);
    if (load_blob(d, "admin_pw", d->admin.pw, sizeof(d->admin.pw) - 1, &len, 0,
                  errmsg) != 0)
        return -1;
    d->admin.pw[len] = '\0';
    rv = pds_store_members(d->store, pds__daemon_load_member, d->core);
    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s", pds_store_errmsg(d->store));
        return -1;
    }
    rv = pds_core_load_role(d->core, (enum pds_role)role);
    assert(rv == 0); /* checked above */
    if (role == PDS_ROLE_SERVER) {
        /* Before the loop runs: on this thread. */
        struct epoch_result er;
        pds__daemon_epoch_begin(d->store, &er);
        if (pds__daemon_epoch_begun(d, &er) != 0) {
            snprintf(errmsg, PDS_ERRMSG_SIZE,
                     "cannot begin a new epoch as the server: %s", er.errmsg);
            return -1;
        }
    }

    memset(&ncfg, 0, sizeof(ncfg));
    ncfg.id = &d->id;
    ncfg.heartbeat_ms = d->cfg.heartbeat_ms;
    ncfg.dead_ms = d->cfg.dead_ms;
    rv = pds_net_new(&d->loop, &ncfg, &cb, d, &d->net);
    if (rv != 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "out of memory");
        return -1;
    }
    if (d->has_group)
        pds_net_set_group(d->net, d->group);
    {
        /* The highest epoch this node knows of: its own term, or that of
         * the last entry it holds (from its server). */
        struct pds_store_meta meta;
        pds_epoch e = pds_core_epoch(d->core);
        if (pds_store_meta(d->store, &meta) == 0 && meta.last_epoch > e) {
            pds_core_set_epoch(d->core, meta.last_epoch);
            e = meta.last_epoch;
        }
        pds_net_set_epoch(d->net, e);
    }
    uv_timer_init(&d->loop, &d->retry_timer);
    d->retry_timer.data = d;
    uv_timer_init(&d->loop, &d->tick_timer);
    d->tick_timer.data = d;
    if (d->listen_arg[0] != '\0') {
        rv = pds_net_listen(d->net, d->listen_arg, d->listen, errmsg);
        if (rv == 0)
            rv = write_listen_addr(d, errmsg);
        if (rv != 0)
            return -1;
        pds_log(PDS_LOG_INFO, "group port %s", d->listen);
    }
    if (d->cfg.reclaim_after_s > 0)
        uv_timer_start(&d->tick_timer, on_tick, 1000, 1000);
    if (pds_role_follows((enum pds_role)role))
        link_connect(d);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

void pds__group_close(struct daemon *d)
{
    if (d->net == NULL)
        return;
    uv_timer_stop(&d->retry_timer);
    uv_close((uv_handle_t *)&d->retry_timer, on_timer_closed);
    uv_close((uv_handle_t *)&d->tick_timer, on_timer_closed);
    d->link_conn = 0;
    d->is_linked = 0;
    /* Checks waiting for their turn: nobody is left to answer. */
    pds__admin_close(d);
    pds_net_close(d->net);
    d->net = NULL;
    sodium_memzero(d->secret, sizeof(d->secret));
    sodium_memzero(&d->id, sizeof(d->id));
}
