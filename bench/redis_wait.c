/*
 * pds_redis_wait - the peer of the replication benchmark: N concurrent
 * clients doing SET key value + WAIT 1 0 against a Redis primary with one
 * replica (each SET acknowledged by the replica, as pdsync's standby mode
 * acknowledges each write). Speaks RESP over plain sockets. Prints one JSON
 * line like pds_load's.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read until two complete single-line replies (+OK and :N) are in. */
static int read_replies(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    int lines = 0;

    while (lines < 2) {
        ssize_t n = recv(fd, buf + have, cap - have - 1, 0);
        size_t i;
        if (n <= 0)
            return -1;
        for (i = have; i < have + (size_t)n; i++)
            if (buf[i] == '\n')
                lines++;
        have += (size_t)n;
    }
    buf[have] = '\0';
    return buf[0] == '+' && strchr(buf, ':') != NULL &&
                   strstr(buf, ":0\r\n") == NULL
               ? 0
               : -1;
}

static void *run(void *p)
{
    struct job *j = p;
    struct sockaddr_in sa;
    char *cmd = malloc(j->value_size + 256);
    char *value = malloc(j->value_size + 1);
    char buf[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    long seq = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short)j->port);
    if (cmd == NULL || value == NULL || fd < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        j->errors++;
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(value, 'x', j->value_size);
    value[j->value_size] = '\0';
    while (now_s() < j->t_end) {
        char key[64];
        int klen = snprintf(key, sizeof(key), "u%d:item.n%ld", j->id, seq++);
        int n = snprintf(cmd, j->value_size + 256,
                         "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%zu\r\n%s\r\n"
                         "*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$1\r\n0\r\n",
                         klen, key, j->value_size, value);
        double t0 = now_s();
        if (send(fd, cmd, (size_t)n, MSG_NOSIGNAL) != n ||
            read_replies(fd, buf, sizeof(buf)) != 0) {
            j->errors++;
            break;
        }
        if (j->n_lat == j->cap_lat) {
            j->cap_lat = j->cap_lat ? j->cap_lat * 2 : 4096;
            j->lat = realloc(j->lat, j->cap_lat * sizeof(*j->lat));
            if (j->lat == NULL)
                break;
        }
        j->lat[j->n_lat++] = (uint32_t)((now_s() - t0) * 1e6);
        j->ops++;
    }
    close(fd);
    free(cmd);
    free(value);
    return NULL;
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
    pthread_t *t;
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
    t = calloc((size_t)clients, sizeof(*t));
    if (jobs == NULL || t == NULL)
        return 1;
    t0 = now_s();
    for (i = 0; i < clients; i++) {
        jobs[i].port = port;
        jobs[i].id = i;
        jobs[i].value_size = value_size;
        jobs[i].t_end = t0 + seconds;
        pthread_create(&t[i], NULL, run, &jobs[i]);
    }
    for (i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
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
    free(t);
    return ops > 0 && errors == 0 ? 0 : 1;
}
