/*
 * test_peer.c - unit tests of net/peer.c's connections on a real libuv
 * loop over loopback TCP: two pds_net instances, a handshake, and the end
 * of a connection by pds_conn_finish() (what was sent before arrives,
 * nothing is sent or delivered after, on_close once with the reason), and
 * a peer that refuses in place of its stream header.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "peer.h"
#include "secure.h"
#include "test.h"

struct end {
    struct pds_net *net;
    struct pds_identity id;
    int n_open;
    int n_close;
    char close_error[PDS_ERRMSG_SIZE];
    int n_notice;
    char notice[PDS_ERRMSG_SIZE];
    int n_other;
    /* The accepting end: what finishing did. */
    int is_acceptor;
    int send_after_finish;
};

static struct end server_end, client_end;
static uv_timer_t guard;
static int timed_out;

static void on_open(void *arg, struct pds_conn *c)
{
    struct end *e = arg;
    struct pds_msg m;

    e->n_open++;
    if (!e->is_acceptor)
        return;
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_NOTICE;
    snprintf(m.err, sizeof(m.err), "%s", "the server is leaving you");
    if (pds_conn_send(c, &m) != 0)
        abort();
    pds_conn_finish(c, "dropped: the server is leaving you");
    /* From now on nothing more goes; finishing again does nothing. */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_PING;
    e->send_after_finish = pds_conn_send(c, &m);
    pds_conn_finish(c, "a second reason");
}

static void on_message(void *arg, struct pds_conn *c, struct pds_msg *m)
{
    struct end *e = arg;

    (void)c;
    if (m->type == PDS_MSG_NOTICE) {
        e->n_notice++;
        snprintf(e->notice, sizeof(e->notice), "%s", m->err);
    } else if (m->type != PDS_MSG_PING && m->type != PDS_MSG_PONG) {
        e->n_other++;
    }
}

static void on_close(void *arg, struct pds_conn *c, const char *error)
{
    struct end *e = arg;

    (void)c;
    e->n_close++;
    snprintf(e->close_error, sizeof(e->close_error), "%s",
             error != NULL ? error : "(none)");
    if (server_end.n_close > 0 && client_end.n_close > 0)
        uv_timer_stop(&guard);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

static int make_end(uv_loop_t *loop, struct end *e, int is_acceptor)
{
    static const struct pds_net_callbacks cb = {on_open, on_message, on_close,
                                                NULL};
    struct pds_net_config cfg;

    memset(e, 0, sizeof(*e));
    e->is_acceptor = is_acceptor;
    crypto_kx_keypair(e->id.pk, e->id.sk);
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = &e->id;
    cfg.heartbeat_ms = 100;
    cfg.dead_ms = 1000;
    cfg.version = "test";
    return pds_net_new(loop, &cfg, &cb, e, &e->net);
}

TEST(finish_delivers_what_was_sent_then_closes_once_with_its_reason)
{
    uv_loop_t loop;
    char bound[64], errmsg[PDS_ERRMSG_SIZE];
    uint64_t id;

    CHECK(sodium_init() >= 0);
    CHECK_EQ(uv_loop_init(&loop), 0);
    CHECK_EQ(make_end(&loop, &server_end, 1), 0);
    CHECK_EQ(make_end(&loop, &client_end, 0), 0);
    CHECK_EQ(pds_net_listen(server_end.net, "127.0.0.1:0", bound, errmsg), 0);
    CHECK_EQ(pds_net_connect(client_end.net, bound, &id, errmsg), 0);
    /* Bounded: the test fails rather than hangs. */
    CHECK_EQ(uv_timer_init(&loop, &guard), 0);
    CHECK_EQ(uv_timer_start(&guard, on_guard, 5000, 0), 0);
    while (!timed_out && (server_end.n_close == 0 || client_end.n_close == 0) &&
           uv_run(&loop, UV_RUN_ONCE) >= 0)
        ;
    CHECK(!timed_out);
    CHECK_EQ(server_end.n_open, 1);
    CHECK_EQ(client_end.n_open, 1);
    CHECK_EQ(server_end.send_after_finish, PDS_ECONN);
    /* What was sent before the finish arrived, and nothing after it. */
    CHECK_EQ(client_end.n_notice, 1);
    CHECK_STR(client_end.notice, "the server is leaving you");
    CHECK_EQ(client_end.n_other, 0);
    CHECK_STR(client_end.close_error, "peer closed the connection");
    /* Closed once, with the first reason. */
    CHECK_EQ(server_end.n_close, 1);
    CHECK_STR(server_end.close_error, "dropped: the server is leaving you");
    pds_net_close(server_end.net);
    pds_net_close(client_end.net);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

/* A raw initiator on a blocking socket: it sends a true hello, reads the
 * acceptor's hello and stream header, then refuses in plaintext where its
 * own header should be. */
struct refuser {
    int port;
    int rv;
};

static int write_frame(int fd, const uint8_t *body, size_t len)
{
    uint8_t hdr[4];

    pds_put_u32be(hdr, (uint32_t)len);
    return write(fd, hdr, 4) == 4 && write(fd, body, len) == (ssize_t)len ? 0
                                                                          : -1;
}

static int read_frame(int fd, uint8_t *body, size_t cap)
{
    uint8_t hdr[4];
    size_t len, got = 0;

    if (recv(fd, hdr, 4, MSG_WAITALL) != 4)
        return -1;
    len = pds_get_u32be(hdr);
    if (len > cap)
        return -1;
    while (got < len) {
        ssize_t r = recv(fd, body + got, len - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return (int)len;
}

static void *refuse_after_hello(void *arg)
{
    struct refuser *r = arg;
    struct pds_identity id;
    struct pds_handshake hs;
    struct sockaddr_in sa;
    struct pds_msg m;
    uint8_t buf[512];
    uint8_t *enc;
    size_t enc_len;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    r->rv = -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)r->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    crypto_kx_keypair(id.pk, id.sk);
    pds_handshake_init(&hs, 1);
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_HELLO;
    m.version = PDS_PROTOCOL_VERSION;
    m.aead = hs.aead;
    memcpy(m.pk, id.pk, PDS_KEY_BYTES);
    memcpy(m.epk, hs.e_pk, PDS_KEY_BYTES);
    if (pds_msg_encode(&m, &enc, &enc_len) != 0)
        goto out;
    r->rv = write_frame(fd, enc, enc_len);
    free(enc);
    /* The acceptor's hello, then its stream header. */
    if (r->rv != 0 || read_frame(fd, buf, sizeof(buf)) <= 0 ||
        read_frame(fd, buf, sizeof(buf)) != PDS_STREAM_HEADER) {
        r->rv = -1;
        goto out;
    }
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_REFUSE;
    m.code = PDS_EPERM;
    snprintf(m.err, sizeof(m.err), "%s", "the initiator says no");
    if (pds_msg_encode(&m, &enc, &enc_len) != 0) {
        r->rv = -1;
        goto out;
    }
    r->rv = write_frame(fd, enc, enc_len);
    free(enc);
    /* Wait for the acceptor to close. */
    while (r->rv == 0 && recv(fd, buf, sizeof(buf), 0) > 0)
        ;
out:
    if (fd >= 0)
        close(fd);
    return NULL;
}

TEST(refusal_in_place_of_the_stream_header_is_reported_as_one)
{
    uv_loop_t loop;
    char bound[64], errmsg[PDS_ERRMSG_SIZE];
    struct refuser r;
    pthread_t t;
    const char *colon;

    CHECK(sodium_init() >= 0);
    CHECK_EQ(uv_loop_init(&loop), 0);
    CHECK_EQ(make_end(&loop, &server_end, 1), 0);
    CHECK_EQ(pds_net_listen(server_end.net, "127.0.0.1:0", bound, errmsg), 0);
    colon = strrchr(bound, ':');
    CHECK(colon != NULL);
    r.port = atoi(colon + 1);
    CHECK_EQ(pthread_create(&t, NULL, refuse_after_hello, &r), 0);
    timed_out = 0;
    CHECK_EQ(uv_timer_init(&loop, &guard), 0);
    CHECK_EQ(uv_timer_start(&guard, on_guard, 5000, 0), 0);
    while (!timed_out && server_end.n_close == 0 &&
           uv_run(&loop, UV_RUN_ONCE) >= 0)
        ;
    CHECK(!timed_out);
    CHECK_EQ(server_end.n_open, 0);
    CHECK_EQ(server_end.n_close, 1);
    CHECK(strstr(server_end.close_error, "refused by ") != NULL);
    CHECK(strstr(server_end.close_error, ": the initiator says no") != NULL);
    pds_net_close(server_end.net);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    CHECK_EQ(r.rv, 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

/* ---- Many connections, and ones that never finish the handshake ---- */

#define STORM 50

struct tally {
    struct pds_net *net;
    struct pds_identity id;
    int n_open;
    int n_close;
    char errors[4][PDS_ERRMSG_SIZE];
    uint32_t hold;           /* hold each connection as it opens (ms) */
    struct pds_conn *opened; /* the last one */
};

static void tally_open(void *arg, struct pds_conn *c)
{
    struct tally *t = arg;

    t->n_open++;
    t->opened = c;
    if (t->hold > 0)
        pds_conn_hold(c, t->hold);
}

static void tally_message(void *arg, struct pds_conn *c, struct pds_msg *m)
{
    (void)arg;
    (void)c;
    (void)m;
}

static void tally_close(void *arg, struct pds_conn *c, const char *error)
{
    struct tally *t = arg;

    (void)c;
    if (t->n_close < 4)
        snprintf(t->errors[t->n_close], PDS_ERRMSG_SIZE, "%s",
                 error != NULL ? error : "(none)");
    t->n_close++;
}

static int make_tally_claim(uv_loop_t *loop,
                            struct tally *t,
                            uint32_t handshake_ms,
                            uint32_t claim_ms);

static int make_tally(uv_loop_t *loop, struct tally *t, uint32_t handshake_ms)
{
    return make_tally_claim(loop, t, handshake_ms, 0);
}

static int make_tally_claim(uv_loop_t *loop,
                            struct tally *t,
                            uint32_t handshake_ms,
                            uint32_t claim_ms)
{
    static const struct pds_net_callbacks cb = {tally_open, tally_message,
                                                tally_close, NULL};
    struct pds_net_config cfg;

    memset(t, 0, sizeof(*t));
    crypto_kx_keypair(t->id.pk, t->id.sk);
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = &t->id;
    cfg.heartbeat_ms = 50;
    cfg.dead_ms = 1000;
    cfg.handshake_ms = handshake_ms;
    cfg.claim_ms = claim_ms;
    cfg.version = "test";
    return pds_net_new(loop, &cfg, &cb, t, &t->net);
}

/* A reconnect storm: fifty printers connect at once (under the cap of
 * connections in the handshake), and every one gets through. */
TEST(fifty_nodes_connecting_at_once_all_complete_the_handshake)
{
    static struct tally server, clients[STORM];
    uv_loop_t loop;
    char bound[64], errmsg[PDS_ERRMSG_SIZE];
    uint64_t id;
    int i, n_open;

    CHECK(sodium_init() >= 0);
    CHECK_EQ(uv_loop_init(&loop), 0);
    CHECK_EQ(make_tally(&loop, &server, 0), 0);
    CHECK_EQ(pds_net_listen(server.net, "127.0.0.1:0", bound, errmsg), 0);
    for (i = 0; i < STORM; i++) {
        CHECK_EQ(make_tally(&loop, &clients[i], 0), 0);
        CHECK_EQ(pds_net_connect(clients[i].net, bound, &id, errmsg), 0);
    }
    timed_out = 0;
    CHECK_EQ(uv_timer_init(&loop, &guard), 0);
    CHECK_EQ(uv_timer_start(&guard, on_guard, 5000, 0), 0);
    for (;;) {
        n_open = 0;
        for (i = 0; i < STORM; i++)
            n_open += clients[i].n_open;
        if (timed_out || (server.n_open == STORM && n_open == STORM))
            break;
        uv_run(&loop, UV_RUN_ONCE);
    }
    CHECK(!timed_out);
    CHECK_EQ(server.n_close, 0);
    for (i = 0; i < STORM; i++) {
        CHECK_EQ(clients[i].n_close, 0);
        pds_net_close(clients[i].net);
    }
    pds_net_close(server.net);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

static int raw_socket(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int trickle_fd = -1;

static void on_trickle(uv_timer_t *t)
{
    (void)t;
    if (trickle_fd >= 0 && send(trickle_fd, "", 1, MSG_NOSIGNAL) != 1) {
        close(trickle_fd);
        trickle_fd = -1;
    }
}

/* One connection announces a frame of 100 bytes and sends a byte of it
 * every 20 ms (never silent, never done); another announces 1 MiB, far
 * more than a hello or a stream header. */
TEST(handshake_has_a_deadline_and_takes_only_small_frames)
{
    static struct tally server;
    uv_loop_t loop;
    uv_timer_t tick;
    char bound[64], errmsg[PDS_ERRMSG_SIZE];
    uint8_t hdr[4];
    uint64_t t0;
    int port, big, slow;

    CHECK(sodium_init() >= 0);
    CHECK_EQ(uv_loop_init(&loop), 0);
    CHECK_EQ(make_tally(&loop, &server, 300), 0);
    CHECK_EQ(pds_net_listen(server.net, "127.0.0.1:0", bound, errmsg), 0);
    port = atoi(strrchr(bound, ':') + 1);
    big = raw_socket(port);
    CHECK(big >= 0);
    pds_put_u32be(hdr, 1u << 20);
    CHECK_EQ(send(big, hdr, 4, MSG_NOSIGNAL), 4);
    trickle_fd = slow = raw_socket(port);
    CHECK(slow >= 0);
    pds_put_u32be(hdr, 100);
    CHECK_EQ(send(slow, hdr, 4, MSG_NOSIGNAL), 4);
    CHECK_EQ(uv_timer_init(&loop, &tick), 0);
    CHECK_EQ(uv_timer_start(&tick, on_trickle, 20, 20), 0);
    timed_out = 0;
    CHECK_EQ(uv_timer_init(&loop, &guard), 0);
    CHECK_EQ(uv_timer_start(&guard, on_guard, 3000, 0), 0);
    t0 = uv_now(&loop);
    while (!timed_out && server.n_close < 2)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(!timed_out);
    CHECK_EQ(server.n_open, 0);
    CHECK_STR(server.errors[0], "handshake: malformed frame of 1048576 bytes "
                                "(at most 16384 before the handshake "
                                "completes)");
    CHECK_STR(server.errors[1], "handshake not completed within 300 ms");
    /* At the deadline, not at the guard's. */
    CHECK(uv_now(&loop) - t0 >= 300 && uv_now(&loop) - t0 < 2000);
    close(big);
    if (trickle_fd >= 0)
        close(trickle_fd);
    trickle_fd = -1;
    pds_net_close(server.net);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

/* A server (claim deadline claim_ms, holding each connection for hold_ms
 * when not 0) and a client connecting to it on loop, under a guard of
 * guard_ms. 0, or -1 when any of it fails. */
static int pair_start(uv_loop_t *loop,
                      struct tally *server,
                      struct tally *client,
                      uint32_t claim_ms,
                      uint32_t hold_ms,
                      uint64_t guard_ms)
{
    char bound[64], errmsg[PDS_ERRMSG_SIZE];
    uint64_t id;

    if (sodium_init() < 0 || uv_loop_init(loop) != 0 ||
        make_tally_claim(loop, server, 0, claim_ms) != 0)
        return -1;
    server->hold = hold_ms;
    if (make_tally(loop, client, 0) != 0 ||
        pds_net_listen(server->net, "127.0.0.1:0", bound, errmsg) != 0 ||
        pds_net_connect(client->net, bound, &id, errmsg) != 0)
        return -1;
    timed_out = 0;
    if (uv_timer_init(loop, &guard) != 0 ||
        uv_timer_start(&guard, on_guard, guard_ms, 0) != 0)
        return -1;
    return 0;
}

/* Run until the server closes a connection or the guard fires. */
static void until_server_closes(uv_loop_t *loop, const struct tally *server)
{
    while (!timed_out && server->n_close == 0)
        uv_run(loop, UV_RUN_ONCE);
}

/* Close what pair_start made: 0, or the loop's complaint. */
static int pair_end(uv_loop_t *loop, struct tally *server, struct tally *client)
{
    pds_net_close(client->net);
    pds_net_close(server->net);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop);
}

/* A node that completes the handshake (a key of its own making is enough)
 * and then neither joins nor asks anything is closed at the claim
 * deadline, although its heartbeats keep it from being silent. */
TEST(an_unclaimed_connection_is_closed_after_the_handshake)
{
    static struct tally server, client;
    uv_loop_t loop;
    uint64_t t0;

    CHECK_EQ(pair_start(&loop, &server, &client, 300, 0, 3000), 0);
    t0 = uv_now(&loop);
    until_server_closes(&loop, &server);
    CHECK(!timed_out);
    CHECK_EQ(server.n_open, 1);
    CHECK_EQ(client.n_open, 1);
    CHECK_STR(server.errors[0],
              "neither joined nor administered within 300 ms");
    CHECK(uv_now(&loop) - t0 >= 300);
    CHECK_EQ(pair_end(&loop, &server, &client), 0);
}

/* An administrator's request holds its connection: the claim deadline
 * does not end it while held, and does once it is released. */
TEST(a_held_connection_outlives_the_claim_deadline_until_released)
{
    static struct tally server, client;
    uv_loop_t loop;
    uint64_t t0;

    CHECK_EQ(pair_start(&loop, &server, &client, 200, 60000, 700), 0);
    until_server_closes(&loop, &server);
    CHECK(timed_out); /* 700 ms, more than three deadlines: still open */
    CHECK_EQ(server.n_open, 1);
    CHECK_EQ(server.n_close, 0);
    pds_conn_hold(server.opened, 0);
    timed_out = 0;
    CHECK_EQ(uv_timer_start(&guard, on_guard, 3000, 0), 0);
    t0 = uv_now(&loop);
    until_server_closes(&loop, &server);
    CHECK(!timed_out);
    CHECK_STR(server.errors[0],
              "neither joined nor administered within 200 ms");
    /* From the release on: not at once. */
    CHECK(uv_now(&loop) - t0 >= 200 && uv_now(&loop) - t0 < 1000);
    CHECK_EQ(pair_end(&loop, &server, &client), 0);
}

/* A request never answered does not hold its connection for ever: the
 * hold ends at its bound, and the claim deadline then applies. */
TEST(a_hold_ends_at_its_bound)
{
    static struct tally server, client;
    uv_loop_t loop;
    uint64_t t0;

    CHECK_EQ(pair_start(&loop, &server, &client, 200, 500, 3000), 0);
    t0 = uv_now(&loop);
    until_server_closes(&loop, &server);
    CHECK(!timed_out);
    CHECK_STR(server.errors[0],
              "neither joined nor administered within 200 ms");
    CHECK(uv_now(&loop) - t0 >= 500);
    CHECK_EQ(pair_end(&loop, &server, &client), 0);
}

TEST_MAIN(T(finish_delivers_what_was_sent_then_closes_once_with_its_reason),
          T(refusal_in_place_of_the_stream_header_is_reported_as_one),
          T(fifty_nodes_connecting_at_once_all_complete_the_handshake),
          T(handshake_has_a_deadline_and_takes_only_small_frames),
          T(an_unclaimed_connection_is_closed_after_the_handshake),
          T(a_held_connection_outlives_the_claim_deadline_until_released),
          T(a_hold_ends_at_its_bound))
