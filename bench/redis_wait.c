/*
 * pds_redis_wait - the peer of the replication benchmark: N concurrent
 * clients doing SET key value + WAIT 1 0 against a Redis primary with one
 * replica (each SET acknowledged by the replica, as pdsync's standby mode
 * acknowledges each write). Speaks RESP over plain sockets; one thread
 * drives every client with epoll, as pds_load drives its writers, so both
 * load generators cost the machine the same. Prints one JSON line like
 * pds_load's.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct job {
    int port;
    int id;
    size_t value_size;
    double t_end;
    long ops;
    long errors;
    uint32_t *lat;
    size_t n_lat;
    size_t cap_lat;
    /* The command outstanding and its replies so far. */
    int fd;
    long seq;
    double t0;
    char *cmd;
    char *value;
    char buf[256];
    size_t have;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Send the client's next SET + WAIT; 0, or -1 (the client is done). */
static int job_send(struct job *j)
{
    char key[64];
    int klen = snprintf(key, sizeof(key), "u%d:item.n%ld", j->id, j->seq++);
    int n = snprintf(j->cmd, j->value_size + 256,
                     "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%zu\r\n%s\r\n"
                     "*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$1\r\n0\r\n",
                     klen, key, j->value_size, j->value);

    j->have = 0;
    j->t0 = now_s();
    if (send(j->fd, j->cmd, (size_t)n, MSG_NOSIGNAL) != n) {
        j->errors++;
        return -1;
    }
    return 0;
}

/*
 * Read what is there of the two single-line replies (+OK and :N, N > 0).
 * 1 when both are in (the write counted), 0 when more is to come, -1 on
 * an error.
 */
static int job_read(struct job *j)
{
    ssize_t n = recv(j->fd, j->buf + j->have, sizeof(j->buf) - 1 - j->have,
                     MSG_DONTWAIT);
    size_t i;
    int lines = 0;

    if (n <= 0) {
        j->errors++;
        return -1;
    }
    j->have += (size_t)n;
    for (i = 0; i < j->have; i++)
        lines += j->buf[i] == '\n';
    if (lines < 2)
        return j->have < sizeof(j->buf) - 1 ? 0 : -1;
    j->buf[j->have] = '\0';
    if (j->buf[0] != '+' || strchr(j->buf, ':') == NULL ||
        strstr(j->buf, ":0\r\n") != NULL) {
        j->errors++;
        return -1;
    }
    if (j->n_lat == j->cap_lat) {
        uint32_t *p;
        j->cap_lat = j->cap_lat ? j->cap_lat * 2 : 4096;
        p = realloc(j->lat, j->cap_lat * sizeof(*j->lat));
        if (p == NULL) {
            j->errors++;
            return -1;
        }
        j->lat = p;
    }
    j->lat[j->n_lat++] = (uint32_t)((now_s() - j->t0) * 1e6);
    j->ops++;
    return 1;
}

/* Connect a client and send its first command; 0 or -1. */
static int job_start(struct job *j, int ep)
{
    struct sockaddr_in sa;
    struct epoll_event ev;
    int one = 1;

    j->cmd = malloc(j->value_size + 256);
    j->value = malloc(j->value_size + 1);
    j->fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short)j->port);
    if (j->cmd == NULL || j->value == NULL || j->fd < 0 ||
        connect(j->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        j->errors++;
        return -1;
    }
    setsockopt(j->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(j->value, 'x', j->value_size);
    j->value[j->value_size] = '\0';
    ev.events = EPOLLIN;
    ev.data.ptr = j;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, j->fd, &ev) != 0) {
        j->errors++;
        return -1;
    }
    return job_send(j);
}

static void job_end(struct job *j)
{
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    free(j->cmd);
    free(j->value);
    j->cmd = NULL;
    j->value = NULL;
}

/* Drive every client until the time is up (and a minute for stragglers). */
static void run(struct job *jobs, int n)
{
    struct epoll_event evs[64];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int active = 0;
    int i;

    for (i = 0; i < n; i++) {
        jobs[i].fd = -1;
        if (ep >= 0 && job_start(&jobs[i], ep) == 0)
            active++;
        else
            job_end(&jobs[i]);
    }
    while (active > 0 && ep >= 0) {
        int k = epoll_wait(ep, evs, 64, 1000);
        if (k < 0 && errno != EINTR)
            break;
        for (i = 0; i < k; i++) {
            struct job *j = evs[i].data.ptr;
            int rv = job_read(j);
            if (rv == 0)
                continue;
            if (rv < 0 || now_s() >= j->t_end || job_send(j) != 0) {
                job_end(j);
                active--;
            }
        }
        if (k == 0 && now_s() > jobs[0].t_end + 60)
            break;
    }
    for (i = 0; i < n; i++)
        job_end(&jobs[i]);
    if (ep >= 0)
        close(ep);
}

static int cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int port = 6379, clients = 64;
    double seconds = 5;
    size_t value_size = 256;
    struct job *jobs;
    uint32_t *all;
    size_t n_all = 0, k = 0;
    long ops = 0, errors = 0;
    double t0, el;
    int opt, i;

    while ((opt = getopt(argc, argv, "p:c:s:b:h")) != -1) {
        if (opt == 'p')
            port = atoi(optarg);
        else if (opt == 'c')
            clients = atoi(optarg);
        else if (opt == 's')
            seconds = atof(optarg);
        else if (opt == 'b')
            value_size = (size_t)atol(optarg);
        else {
            fprintf(stderr, "usage: pds_redis_wait [-p PORT] [-c CLIENTS] "
                            "[-s SECONDS] [-b VALUE_SIZE]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (clients < 1 || clients > 4096 || seconds <= 0 || value_size < 1 ||
        value_size > (1u << 20))
        return 2;
    jobs = calloc((size_t)clients, sizeof(*jobs));
    if (jobs == NULL)
        return 1;
    t0 = now_s();
    for (i = 0; i < clients; i++) {
        jobs[i].port = port;
        jobs[i].id = i;
        jobs[i].value_size = value_size;
        jobs[i].t_end = t0 + seconds;
    }
    run(jobs, clients);
    for (i = 0; i < clients; i++) {
        ops += jobs[i].ops;
        errors += jobs[i].errors;
        n_all += jobs[i].n_lat;
    }
    el = now_s() - t0;
    all = malloc((n_all + 1) * sizeof(*all));
    if (all == NULL)
        return 1;
    for (i = 0; i < clients; i++) {
        if (jobs[i].n_lat > 0)
            memcpy(all + k, jobs[i].lat, jobs[i].n_lat * sizeof(*all));
        k += jobs[i].n_lat;
        free(jobs[i].lat);
    }
    qsort(all, n_all, sizeof(*all), cmp);
    printf("{\"bench\":\"redis_set_wait\",\"clients\":%d,\"value_size\":%zu,"
           "\"ops\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"ops_per_s\":%.0f,"
           "\"p50_us\":%u,\"p99_us\":%u}\n",
           clients, value_size, ops, errors, el, ops / el,
           n_all ? all[n_all / 2] : 0,
           n_all ? all[(size_t)((double)n_all * 0.99)] : 0);
    free(all);
    free(jobs);
    return ops > 0 && errors == 0 ? 0 : 1;
}
