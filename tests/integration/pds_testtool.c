/*
 * pds_testtool - helpers for the integration tests that bash can't do:
 *
 *   pds_testtool set-format DBDIR N   write storage format N into the meta
 *                                     table of the LMDB environment DBDIR
 *   pds_testtool raw SOCKET HEX       send the bytes HEX on the node's
 *                                     socket; print "closed" when the node
 *                                     closes the connection, "reply" when
 *                                     it answers
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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
    fprintf(stderr,
            "usage: pds_testtool set-format DBDIR N | raw SOCKET HEX\n");
    return 2;
}
