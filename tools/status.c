/*
 * status.c - the node's status reply ('pdsync status'): its storage
 * figures and position, its commits, and its part in a group (the role,
 * the group port, a server's standby and acknowledgements, a client's
 * link to its server and its outbox, from replicate.c).
 *
 * Everything is read on the loop, from the daemon, the core and one read
 * of the store's statistics; nothing is changed.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon.h"

/* The texts a status reply is made with that are not the daemon's own:
 * they live until the reply is encoded. */
struct status_text {
    char group[2 * PDS_GROUP_ID_BYTES + 1];
    char standby[160];
};

/* The group fields of a status reply (strings owned by d or by t). */
static void
group_status(struct daemon *d, struct pds_status *st, struct status_text *t)
{
    if (d->has_group) {
        sodium_bin2hex(t->group, sizeof(t->group), d->group,
                       PDS_GROUP_ID_BYTES);
        st->group = t->group;
    } else {
        st->group = "";
    }
    st->listen = d->listen;
    st->max_machines = d->cfg.max_machines;
    st->reclaim_after_s = d->cfg.reclaim_after_s;
    st->standby = "";
    st->ack_mode = "";
    if (pds_core_role(d->core) == PDS_ROLE_SERVER) {
        st->ack_mode = pds__daemon_ack_mode(d);
        if (d->has_standby) {
            struct pds_member fm;
            int on;
            memset(&fm, 0, sizeof(fm));
            on = pds__repl_follower(d, d->standby_pk, &fm);
            snprintf(t->standby, sizeof(t->standby), "%016llx, %s",
                     (unsigned long long)pds_member_id(d->standby_pk),
                     on ? "following" : "not connected");
            if (on)
                snprintf(t->standby + strlen(t->standby),
                         sizeof(t->standby) - strlen(t->standby),
                         ", durable at %llu", (unsigned long long)fm.position);
            st->standby = t->standby;
        }
    }
    st->n_superseded = pds_core_n_superseded(d->core);
    st->n_clamped = pds_core_n_clamped(d->core);
    st->n_machines = pds_core_role(d->core) == PDS_ROLE_SERVER
                         ? pds_core_n_machines(d->core)
                         : 0;
    if (pds_role_follows(pds_core_role(d->core))) {
        st->server = d->server;
        st->link = d->is_linked        ? "connected"
                   : d->n_retries == 0 ? "connecting"
                                       : "unreachable, retrying";
        st->last_error = d->link_error;
        {
            struct pds_conn *c = d->is_linked && d->link_conn != 0
                                     ? pds_net_find(d->net, d->link_conn)
                                     : NULL;
            st->cipher = c != NULL ? pds_conn_cipher(c) : "";
        }
        st->server_last = d->server_last;
        pds__repl_client_status(d, st);
    } else {
        st->server = "";
        st->link = "";
        st->last_error = "";
    }
}

void pds__status_request(struct daemon *d,
                         struct pds_local_conn *conn,
                         const struct pds_request *req)
{
    struct pds_store_stats stats;
    struct pds_store_meta meta;
    struct pds_status st;
    struct status_text text;
    struct pds_reply_buf *rb;
    int rv;

    rv = pds_store_stats(d->store, &stats);
    if (rv == 0)
        rv = pds_store_meta(d->store, &meta);
    if (rv != 0) {
        pds__daemon_send(
            conn, pds_reply_new(req->id, rv, pds_store_errmsg(d->store)));
        return;
    }
    memset(&st, 0, sizeof(st));
    st.role = pds_role_name(pds_core_role(d->core));
    st.node_id = meta.node_id;
    /* The current epoch: the server's term (the core's, which is never
     * below the store's), or on a follower the latest one it applied
     * entries of (its last entry's, after a restart). */
    st.epoch = pds_core_epoch(d->core) > meta.last_epoch
                   ? pds_core_epoch(d->core)
                   : meta.last_epoch;
    st.last_epoch = meta.last_epoch;
    st.last_index = meta.last_index;
    st.n_records = stats.n_records;
    st.n_users = stats.n_users;
    st.n_groups = stats.n_groups;
    st.n_log = stats.n_log;
    st.n_clamps = stats.n_clamps;
    st.bytes_used = stats.bytes_used;
    st.budget = stats.budget;
    st.max_users = d->cfg.limits.max_users;
    st.pid = (uint64_t)getpid();
    st.n_commits = d->n_commits;
    st.n_committed = d->n_committed;
    group_status(d, &st, &text);
    st.data_dir = d->data_dir;
    st.version = PDS_VERSION;
    rb = pds_reply_new(req->id, 0, NULL);
    if (rb != NULL)
        pds_reply_status(rb, &st);
    pds__daemon_send(conn, rb);
}
