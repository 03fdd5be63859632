/*
 * pds_testtool - helpers for the integration tests that bash can't do:
 *
 *   pds_testtool set-format DBDIR N   write storage format N into the meta
 *                                     table of the LMDB environment DBDIR
 *   pds_testtool raw SOCKET HEX       send the bytes HEX on the node's
 *                                     socket; print "closed" when the node
 *                                     closes the connection, "reply" when
 *                                     it answers
 *   pds_testtool tcp HOST:PORT HEX|@FILE
 *                                     the same on a group port (IPv4)
 *   pds_testtool proxy ADDRFILE HOST:PORT CAPDIR SECONDS [FLIP_AFTER]
 *                                     a TCP proxy on 127.0.0.1 (its address
 *                                     written to ADDRFILE) that copies each
 *                                     connection's bytes to CAPDIR/N.c2s and
 *                                     N.s2c, optionally flipping one bit of
 *                                     the first connection's server-to-client
 *                                     stream after FLIP_AFTER bytes; it ends
 *                                     after SECONDS
 *   pds_testtool trickle HOST:PORT N MS ANNOUNCE BYTES
 *                                     open N connections that each announce
 *                                     a frame of ANNOUNCE bytes, then send
 *                                     BYTES zero bytes of it every 200 ms;
 *                                     after MS milliseconds print "open X
 *                                     closed Y" (Y: closed by the node)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <time.h>

#include <lmdb.h>

static int set_format(const char *dir, unsigned n)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {6, (void *)"format"};
    unsigned char v[8] = {0,
                          0,
                          0,
                          0,
                          (unsigned char)(n >> 24),
                          (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8),
                          (unsigned char)n};
    MDB_val val = {sizeof(v), v};
    int rv;

    if ((rv = mdb_env_create(&env)) != 0 ||
        (rv = mdb_env_set_maxdbs(env, 16)) != 0 ||
        (rv = mdb_env_open(env, dir, 0, 0600)) != 0 ||
        (rv = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
        (rv = mdb_dbi_open(txn, "meta", 0, &dbi)) != 0 ||
        (rv = mdb_put(txn, dbi, &k, &val, 0)) != 0 ||
        (rv = mdb_txn_commit(txn)) != 0) {
        fprintf(stderr, "set-format: %s\n", mdb_strerror(rv));
        return 1;
    }
    mdb_env_close(env);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Bytes from hex, or from @FILE. */
static unsigned char *load_bytes(const char *arg, size_t *len)
{
    unsigned char *buf;
    size_t i;

    if (arg[0] == '@') {
        FILE *f = fopen(arg + 1, "rb");
        long n;
        if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0)
            return NULL;
        rewind(f);
        buf = malloc((size_t)n + 1);
        if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
            return NULL;
        fclose(f);
        *len = (size_t)n;
        return buf;
    }
    *len = strlen(arg) / 2;
    buf = malloc(*len + 1);
    if (buf == NULL)
        return NULL;
    for (i = 0; i < *len; i++) {
        int hi = hexval(arg[2 * i]), lo = hexval(arg[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(buf);
            return NULL;
        }
        buf[i] = (unsigned char)(hi << 4 | lo);
    }
    return buf;
}

/* HOST:PORT (IPv4) into sa: 0, or -1 when it is not one. */
static int parse_addr(const char *host_port, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(host_port, ':');

    if (colon == NULL || (size_t)(colon - host_port) >= sizeof(host))
        return -1;
    memcpy(host, host_port, (size_t)(colon - host_port));
    host[colon - host_port] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int tcp_connect(const char *host_port)
{
    struct sockaddr_in sa;
    int fd;

    if (parse_addr(host_port, &sa) != 0)
        return -1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Send the bytes, then report whether the peer closed or answered. */
static int send_and_watch(int fd, const unsigned char *buf, size_t n)
{
    struct pollfd pfd;
    char reply[4096];
    int rv;
    int got_reply = 0;

    if (send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n) {
        printf("closed\n");
        close(fd);
        return 0;
    }
    /* Read until the peer closes or stays quiet for 3 s. */
    for (;;) {
        pfd.fd = fd;
        pfd.events = POLLIN;
        rv = poll(&pfd, 1, 3000);
        if (rv <= 0) {
            printf(got_reply ? "reply\n" : "timeout\n");
            break;
        }
        rv = (int)recv(fd, reply, sizeof(reply), 0);
        if (rv <= 0) {
            printf("closed\n");
            break;
        }
        got_reply = 1;
    }
    close(fd);
    return 0;
}

static int tcp_raw(const char *host_port, const char *arg)
{
    size_t n;
    unsigned char *buf = load_bytes(arg, &n);
    int fd;
    int rv;

    if (buf == NULL) {
        fprintf(stderr, "tcp: bad bytes\n");
        return 2;
    }
    fd = tcp_connect(host_port);
    if (fd < 0) {
        fprintf(stderr, "tcp: connect %s: %s\n", host_port, strerror(errno));
        free(buf);
        return 1;
    }
    rv = send_and_watch(fd, buf, n);
    free(buf);
    return rv;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A non-blocking connection to HOST:PORT (IPv4) under way, or -1. */
static int tcp_connect_start(const char *host_port)
{
    struct sockaddr_in sa;
    int fd;

    if (parse_addr(host_port, &sa) != 0)
        return -1;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
                   errno != EINPROGRESS)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/*
 * Connections that never finish the handshake, kept alive by a trickle.
 * The connections are made without blocking, so that one slow to be
 * accepted does not hold up the trickle on the others; the MS count from
 * when every connection is made.
 */
static int trickle(
    const char *host_port, int n, long ms, unsigned long announce, size_t step)
{
    static unsigned char zeros[65536];
    unsigned char hdr[4] = {
        (unsigned char)(announce >> 24), (unsigned char)(announce >> 16),
        (unsigned char)(announce >> 8), (unsigned char)announce};
    struct pollfd *pfds = calloc((size_t)n, sizeof(*pfds));
    char *connecting = calloc((size_t)n, 1);
    long give_up = now_ms() + 10000;
    long end = 0;
    long next_send = 0;
    int n_connecting = n;
    int n_open = 0, n_closed = 0;
    int i;

    if (pfds == NULL || connecting == NULL || step > sizeof(zeros))
        return 2;
    for (i = 0; i < n; i++) {
        /* In bursts of 16: the node's accept queue (its listen backlog)
         * is not overrun, which would delay a connection by a second. */
        if (i > 0 && i % 16 == 0)
            usleep(20000);
        pfds[i].fd = tcp_connect_start(host_port);
        pfds[i].events = POLLOUT;
        connecting[i] = 1;
        if (pfds[i].fd < 0) {
            fprintf(stderr, "trickle: connect %s: %s\n", host_port,
                    strerror(errno));
            return 1;
        }
    }
    while (end == 0 || now_ms() < end) {
        if (n_connecting == 0 && end == 0)
            end = now_ms() + ms;
        if (now_ms() > give_up && end == 0) {
            fprintf(stderr, "trickle: connections not made in 10 s\n");
            return 1;
        }
        if (now_ms() >= next_send) {
            for (i = 0; i < n; i++) {
                if (pfds[i].fd >= 0 && !connecting[i] &&
                    send(pfds[i].fd, zeros, step, MSG_NOSIGNAL) < 0 &&
                    errno != EAGAIN) {
                    close(pfds[i].fd);
                    pfds[i].fd = -1; /* poll ignores it from now on */
                    n_closed++;
                }
            }
            next_send = now_ms() + 200;
        }
        if (poll(pfds, (nfds_t)n, 20) <= 0)
            continue;
        for (i = 0; i < n; i++) {
            unsigned char buf[4096];
            ssize_t got;
            int err = 0;
            socklen_t len = sizeof(err);
            if (pfds[i].fd < 0 || pfds[i].revents == 0)
                continue;
            if (connecting[i]) {
                /* Made (or failed): announce the frame. */
                connecting[i] = 0;
                n_connecting--;
                pfds[i].events = POLLIN;
                if (getsockopt(pfds[i].fd, SOL_SOCKET, SO_ERROR, &err, &len) !=
                        0 ||
                    err != 0 || send(pfds[i].fd, hdr, 4, MSG_NOSIGNAL) != 4) {
                    close(pfds[i].fd);
                    pfds[i].fd = -1;
                    n_closed++;
                }
                continue;
            }
            /* A refusal may come first: read until the end. */
            got = recv(pfds[i].fd, buf, sizeof(buf), 0);
            if (got == 0 ||
                (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                close(pfds[i].fd);
                pfds[i].fd = -1;
                n_closed++;
            }
        }
    }
    for (i = 0; i < n; i++) {
        if (pfds[i].fd >= 0) {
            n_open++;
            close(pfds[i].fd);
        }
    }
    printf("open %d closed %d\n", n_open, n_closed);
    free(pfds);
    free(connecting);
    return 0;
}

struct pair {
    int a; /* client side */
    int b; /* server side */
    FILE *c2s;
    FILE *s2c;
    long n_s2c;
    int idx;
};

static int proxy(const char *addr_file,
                 const char *target,
                 const char *dir,
                 int seconds,
                 long flip_after)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    struct pair pairs[64];
    int n_pairs = 0;
    int n_conns = 0;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    time_t end = time(NULL) + seconds;
    FILE *f;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0)
        return 1;
    f = fopen(addr_file, "w");
    if (f == NULL)
        return 1;
    fprintf(f, "127.0.0.1:%u\n", (unsigned)ntohs(sa.sin_port));
    fclose(f);
    while (time(NULL) < end) {
        struct pollfd pfds[1 + 2 * 64];
        int n = 0;
        int i;
        pfds[n].fd = lfd;
        pfds[n++].events = POLLIN;
        for (i = 0; i < n_pairs; i++) {
            pfds[n].fd = pairs[i].a;
            pfds[n++].events = POLLIN;
            pfds[n].fd = pairs[i].b;
            pfds[n++].events = POLLIN;
        }
        if (poll(pfds, (nfds_t)n, 200) <= 0)
            continue;
        if ((pfds[0].revents & POLLIN) && n_pairs < 64) {
            int a = accept(lfd, NULL, NULL);
            int b = a >= 0 ? tcp_connect(target) : -1;
            char path[512];
            if (b < 0) {
                if (a >= 0)
                    close(a);
            } else {
                struct pair *p = &pairs[n_pairs++];
                p->a = a;
                p->b = b;
                p->idx = ++n_conns;
                p->n_s2c = 0;
                snprintf(path, sizeof(path), "%s/%d.c2s", dir, p->idx);
                p->c2s = fopen(path, "wb");
                snprintf(path, sizeof(path), "%s/%d.s2c", dir, p->idx);
                p->s2c = fopen(path, "wb");
            }
        }
        for (i = 0; i < n_pairs; i++) {
            struct pair *p = &pairs[i];
            int k;
            for (k = 0; k < 2; k++) {
                struct pollfd *pf = &pfds[1 + 2 * i + k];
                unsigned char buf[65536];
                ssize_t got;
                if (!(pf->revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                got = recv(pf->fd, buf, sizeof(buf), 0);
                if (got <= 0) {
                    close(p->a);
                    close(p->b);
                    fclose(p->c2s);
                    fclose(p->s2c);
                    pairs[i] = pairs[--n_pairs];
                    i = n_pairs; /* the arrays moved: next poll round */
                    break;
                }
                if (k == 1 && p->idx == 1 && flip_after >= 0 &&
                    p->n_s2c <= flip_after && p->n_s2c + got > flip_after) {
                    buf[flip_after - p->n_s2c] ^= 0x01;
                }
                fwrite(buf, 1, (size_t)got, k == 0 ? p->c2s : p->s2c);
                fflush(k == 0 ? p->c2s : p->s2c);
                if (k == 1)
                    p->n_s2c += got;
                send(k == 0 ? p->b : p->a, buf, (size_t)got, MSG_NOSIGNAL);
            }
        }
    }
    return 0;
}

static int raw(const char *path, const char *hex)
{
    struct sockaddr_un sa;
    struct pollfd pfd;
    size_t n = strlen(hex) / 2;
    unsigned char *buf = malloc(n + 1);
    char reply[4096];
    size_t i;
    int fd;
    int rv;

    if (buf == NULL)
        return 1;
    for (i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            fprintf(stderr, "raw: bad hex\n");
            return 2;
        }
        buf[i] = (unsigned char)(hi << 4 | lo);
    }
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "raw: connect %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n) {
        printf("closed\n");
        return 0;
    }
    pfd.fd = fd;
    pfd.events = POLLIN;
    rv = poll(&pfd, 1, 10000);
    if (rv <= 0) {
        printf("timeout\n");
        return 0;
    }
    rv = (int)recv(fd, reply, sizeof(reply), 0);
    printf(rv <= 0 ? "closed\n" : "reply\n");
    close(fd);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "set-format") == 0)
        return set_format(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "raw") == 0)
        return raw(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "tcp") == 0)
        return tcp_raw(argv[2], argv[3]);
    if (argc == 7 && strcmp(argv[1], "trickle") == 0)
        return trickle(argv[2], atoi(argv[3]), atol(argv[4]),
                       strtoul(argv[5], NULL, 0),
                       (size_t)strtoul(argv[6], NULL, 0));
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "proxy") == 0)
        return proxy(argv[2], argv[3], argv[4], atoi(argv[5]),
                     argc == 7 ? atol(argv[6]) : -1);
    fprintf(stderr,
            "usage: pds_testtool set-format DBDIR N | raw SOCKET HEX\n");
    return 2;
}
