/*
 * admin.c - remote administration: a request that comes over the group
 * port (ADMIN, from a connection that is not a member's) carries the
 * administrator password. The password is checked against its stored
 * hash on a thread of libuv's pool, one check at a time; a request whose
 * password holds is served like one from the local socket, through a
 * virtual local connection whose replies go back as ADMIN_REPLY on the
 * group connection. A wrong password is answered after a delay against
 * guessing, and the connection ends.
 *
 * The state is the daemon's (d->admin, admin.h); the password is set by
 * the administrator's 'admin-password set' (group.c, a settings job).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "admin.h"
#include "commlog.h"
#include "daemon.h"

static void
reply_err(struct pds_local_conn *conn, uint64_t id, int rv, const char *msg)
{
    pds__daemon_send(conn, pds_reply_new(id, rv, msg));
}

/* Where the replies of one remote request go: owned by its virtual
 * connection, freed with it. */
struct route {
    struct daemon *d;
    uint64_t conn;
};

/* A reply to a remote request: wrap it and send it on its connection. */
static void remote_send(void *arg, uint8_t *frame, size_t len)
{
    const struct route *r = arg;
    struct pds_conn *c =
        r->d->net != NULL ? pds_net_find(r->d->net, r->conn) : NULL;
    struct pds_msg m;

    if (c != NULL && len >= 4) {
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_ADMIN_REPLY;
        m.blob = frame + 4;
        m.blob_len = len - 4;
        pds_conn_send(c, &m);
        pds_conn_hold(c, 0); /* answered: the usual deadlines again */
    }
    free(frame);
}

static void route_free(void *arg)
{
    free(arg);
}

/* A virtual connection whose replies go out on the group connection
 * conn, or NULL when memory runs out. */
static struct pds_local_conn *remote_conn(struct daemon *d, uint64_t conn)
{
    struct route *r = malloc(sizeof(*r));
    struct pds_local_conn *v;

    if (r == NULL)
        return NULL;
    r->d = d;
    r->conn = conn;
    v = pds_local_conn_virtual(remote_send, route_free, r);
    if (v == NULL)
        free(r);
    return v;
}

struct denial {
    uv_timer_t timer;
    struct daemon *d;
    uint64_t conn;
    uint64_t req_id;
};

static void on_denial_closed(uv_handle_t *h)
{
    free(h->data);
}

/* After the delay against guessing: answer and end the connection. */
static void on_denial(uv_timer_t *t)
{
    struct denial *dn = t->data;
    struct daemon *d = dn->d;
    struct pds_conn *c = d->net != NULL ? pds_net_find(d->net, dn->conn) : NULL;

    if (c != NULL) {
        struct pds_local_conn *v = remote_conn(d, dn->conn);
        if (v != NULL) {
            reply_err(v, dn->req_id, PDS_EAUTH,
                      "wrong administrator password (the attempt was "
                      "logged)");
            pds_local_conn_unref(v);
        }
        pds_conn_finish(c, NULL);
    }
    uv_close((uv_handle_t *)t, on_denial_closed);
}

/*
 * A remote administrator's password is checked on a thread of libuv's pool:
 * the memory-hard hash takes a good part of a second, and on the loop it
 * would stall every client's synchronization (anyone who reaches the
 * group port can try a password). One check at a time, so that attempts
 * cannot take the pool's threads (and their 64 MiB each) from the commits;
 * the others wait their turn, at most ADMIN_QUEUE_MAX of them and one per
 * host, so that one host trying passwords cannot keep the administrator at
 * another out. More are refused at once, as busy.
 */
#define ADMIN_QUEUE_MAX 8

struct admin_check {
    uv_work_t work;
    struct daemon *d;
    uint64_t conn;
    char hash[crypto_pwhash_STRBYTES];
    uint8_t pw[PDS_SECRET_MAX];
    size_t pw_len;
    uint8_t *blob; /* the request, decoded again once the password holds */
    size_t blob_len;
    uint64_t gen; /* d->admin.pw_gen when the check began */
    int ok;
    char host[64]; /* where it comes from, without the port */
    struct admin_check *next;
};

/* On a pool thread: the check's own data only. */
static void admin_check_work(uv_work_t *w)
{
    struct admin_check *ac = w->data;

    ac->ok = crypto_pwhash_str_verify(ac->hash, (const char *)ac->pw,
                                      ac->pw_len) == 0;
}

static void admin_check_free(struct admin_check *ac)
{
    sodium_memzero(ac->pw, sizeof(ac->pw));
    sodium_memzero(ac->hash, sizeof(ac->hash));
    free(ac->blob);
    free(ac);
}

static void admin_check_done(uv_work_t *w, int status);

/* Start the next waiting check, if none runs. */
static void admin_next(struct daemon *d)
{
    struct pds_admin *a = &d->admin;

    while (a->running == NULL && a->queue != NULL) {
        struct admin_check *ac = a->queue;
        struct pds_conn *c;
        a->queue = ac->next;
        a->n_waiting--;
        c = d->net != NULL ? pds_net_find(d->net, ac->conn) : NULL;
        if (c == NULL) {
            admin_check_free(ac); /* gone while it waited */
            continue;
        }
        /* The password in force now. */
        ac->gen = a->pw_gen;
        snprintf(ac->hash, sizeof(ac->hash), "%s", a->pw);
        ac->work.data = ac;
        if (uv_queue_work(&d->loop, &ac->work, admin_check_work,
                          admin_check_done) != 0) {
            pds_conn_close(c, "cannot check the password now");
            admin_check_free(ac);
            continue;
        }
        a->running = ac;
    }
}

static void admin_check_done(uv_work_t *w, int status)
{
    struct admin_check *ac = w->data;
    struct daemon *d = ac->d;
    struct pds_conn *c = d->net != NULL ? pds_net_find(d->net, ac->conn) : NULL;
    struct pds_local_conn *v;
    struct pds_request req;
    char errmsg[PDS_ERRMSG_SIZE];

    d->admin.running = NULL;
    if (c == NULL || status != 0 ||
        pds_request_decode(ac->blob, ac->blob_len, &req, errmsg) != 0) {
        /* Gone meanwhile (or the loop is closing): nobody to answer. */
        admin_check_free(ac);
        if (status == 0)
            admin_next(d);
        return;
    }
    if (ac->ok && ac->gen != d->admin.pw_gen) {
        /* Checked against a password replaced meanwhile. */
        v = remote_conn(d, pds_conn_id(c));
        if (v != NULL) {
            reply_err(v, req.id, PDS_EAUTH,
                      "the administrator password was changed while this "
                      "request was checked: nothing was done");
            pds_local_conn_unref(v);
        }
    } else if (!ac->ok) {
        struct denial *dn = calloc(1, sizeof(*dn));
        pds_commlog(PDS_LOG_WARNING,
                    "wrong administrator password from %s (%s refused)",
                    pds_conn_address(c), pds_req_op_name(req.op));
        if (dn != NULL) {
            dn->d = d;
            dn->conn = pds_conn_id(c);
            dn->req_id = req.id;
            uv_timer_init(&d->loop, &dn->timer);
            dn->timer.data = dn;
            uv_timer_start(&dn->timer, on_denial, 1000, 0);
        } else {
            pds_conn_close(c, "out of memory");
        }
    } else {
        v = remote_conn(d, pds_conn_id(c));
        if (v == NULL) {
            pds_conn_close(c, "out of memory");
        } else {
            pds_log(PDS_LOG_INFO, "remote administration from %s: %s",
                    pds_conn_address(c), pds_req_op_name(req.op));
            /* Until answered (a write may wait for the standby), neither
             * the claim deadline nor silence ends it; no request takes
             * longer than the standby's timeout, and a little more. */
            pds_conn_hold(c,
                          d->cfg.standby_timeout_ms + d->cfg.dead_ms + 10000);
            d->hooks.request(d, v, &req);
            pds_local_conn_unref(v);
        }
    }
    pds_request_free(&req);
    admin_check_free(ac);
    admin_next(d);
}

/* Whether a check from host runs or waits. */
static int admin_host_busy(const struct pds_admin *a, const char *host)
{
    const struct admin_check *ac;

    if (a->running != NULL && strcmp(a->running->host, host) == 0)
        return 1;
    for (ac = a->queue; ac != NULL; ac = ac->next) {
        if (strcmp(ac->host, host) == 0)
            return 1;
    }
    return 0;
}

void pds__admin_on_request(struct daemon *d,
                           struct pds_conn *c,
                           const struct pds_msg *m)
{
    struct pds_admin *a = &d->admin;
    struct pds_local_conn *v;
    struct pds_request req;
    struct admin_check *ac, **tail;
    char errmsg[PDS_ERRMSG_SIZE];
    char host[64];
    const char *why = NULL, *colon;
    int busy = 0;

    if (pds_request_decode(m->blob, m->blob_len, &req, errmsg) != 0) {
        pds_conn_close(c, "malformed administration request");
        return;
    }
    snprintf(host, sizeof(host), "%s", pds_conn_address(c));
    colon = strrchr(host, ':');
    if (colon != NULL)
        host[colon - host] = '\0';
    if (a->pw[0] == '\0') {
        why = "remote administration is disabled on this node: set a "
              "password there with 'pdsync admin-password set'";
    } else if (a->n_waiting >= ADMIN_QUEUE_MAX || admin_host_busy(a, host)) {
        why = "another administrator's password is being checked on this "
              "node: try again in a second";
        busy = 1;
    }
    if (why != NULL) {
        v = remote_conn(d, pds_conn_id(c));
        if (v == NULL) {
            pds_conn_close(c, "out of memory");
        } else {
            reply_err(v, req.id, busy ? PDS_EBUSY : PDS_EPERM, why);
            pds_local_conn_unref(v);
        }
        if (busy) {
            uint64_t now = uv_now(&d->loop);
            a->busy_n++;
            if (a->busy_log == 0 || now - a->busy_log >= 60000) {
                pds_commlog(PDS_LOG_WARNING,
                            "administration attempts while a password was "
                            "being checked: %llu refused (busy) since the "
                            "last such Warning, the latest from %s",
                            (unsigned long long)a->busy_n, pds_conn_address(c));
                a->busy_log = now;
                a->busy_n = 0;
            }
        }
        pds_request_free(&req);
        return;
    }
    pds_request_free(&req);
    ac = calloc(1, sizeof(*ac));
    if (ac != NULL && m->blob_len > 0)
        ac->blob = malloc(m->blob_len);
    if (ac == NULL || (m->blob_len > 0 && ac->blob == NULL)) {
        if (ac != NULL)
            admin_check_free(ac);
        pds_conn_close(c, "out of memory");
        return;
    }
    ac->d = d;
    ac->conn = pds_conn_id(c);
    snprintf(ac->host, sizeof(ac->host), "%s", host);
    memcpy(ac->pw, m->pw, m->pw_len); /* decoding bounds it to pw's size */
    ac->pw_len = m->pw_len;
    memcpy(ac->blob, m->blob, m->blob_len);
    ac->blob_len = m->blob_len;
    for (tail = &a->queue; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = ac;
    a->n_waiting++;
    admin_next(d);
}

void pds__admin_password_set(struct daemon *d, const char *hash)
{
    snprintf(d->admin.pw, sizeof(d->admin.pw), "%s", hash);
    d->admin.pw_gen++;
}

void pds__admin_close(struct daemon *d)
{
    struct pds_admin *a = &d->admin;

    /* The one under way ends in admin_check_done, which then finds no
     * network. */
    while (a->queue != NULL) {
        struct admin_check *ac = a->queue;
        a->queue = ac->next;
        admin_check_free(ac);
    }
    a->n_waiting = 0;
}
