/*
 * pdsync - the command line of a pdsync node, for administrators and the
 * printer's panel. It talks to the node's local socket through the client
 * library in net/.
 *
 * Exit codes: 0 ok, 1 the operation failed, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "../core/pds.h"
#include "../net/net.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

struct cli {
    const char *data;
    const char *socket;
    const char *node;          /* remote administration: HOST:PORT */
    const char *password_file; /* its password */
    int json;
    struct pds_client *client;
    char sock_path[PATH_MAX];
};

struct command {
    const char *name;
    const char *args;
    const char *help;
    int (*run)(struct cli *cli, int argc, char **argv);
};

static const struct command *find_command(const char *name);

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: pdsync [--data DIR | --socket PATH | --node HOST:PORT "
            "--password-file F]\n"
            "              [--json] COMMAND [ARGS]\n"
            "\n"
            "Commands:\n"
            "  put [--group] OWNER ITEM VALUE   write an item (or --file F "
            "instead of VALUE)\n"
            "  get [--group] OWNER ITEM         print an item's value\n"
            "  del [--group] OWNER ITEM         delete an item\n"
            "  list [--group] [OWNER]           list items of one owner or "
            "all\n"
            "  users                            list users and groups\n"
            "  delete-user [--group] OWNER      delete all data of a user\n"
            "  status                           show the node's status\n"
            "  log [-n N]                       show the communication log\n"
            "  server start [--join-secret-file F] | stop\n"
            "                                   be the server of a group\n"
            "  client start HOST:PORT --join-secret-file F [--name N] | stop\n"
            "                                   be a client of a server\n"
            "  clients [stop|start ID|NAME|HOST:PORT]\n"
            "                                   the server's clients\n"
            "  replication start ID|NAME|HOST:PORT | stop\n"
            "                                   the replication destination\n"
            "  scope set ITEM shared|device | list  sharing scope of items\n"
            "  admin-password set --password-file F\n"
            "                                   allow remote administration\n"
            "  help [COMMAND]                   show help\n"
            "\n"
            "Options:\n"
            "  -d, --data DIR     the node's data directory (default %s, or "
            "$PDSYNC_DATA)\n"
            "  -s, --socket PATH  the node's socket (default "
            "DIR/" PDS_SOCKET_NAME ")\n"
            "  -n, --node HOST:PORT  administer a node remotely over its "
            "group port\n"
            "  -p, --password-file F  the administrator password, for "
            "--node\n"
            "  -j, --json         machine-readable output\n"
            "  -h, --help         show this help\n"
            "\n"
            "'pdsync COMMAND --help' shows a command's help. Exit codes: 0 "
            "ok, 1 the operation failed, 2 usage error.\n",
            PDS_DEFAULT_DATA_DIR);
}

static int usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
    const struct command *c = cmd != NULL ? find_command(cmd) : NULL;
    va_list ap;

    fprintf(stderr, "pdsync: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (c != NULL)
        fprintf(stderr, "usage: pdsync %s %s\n", c->name, c->args);
    else
        fprintf(stderr, "Run 'pdsync --help' for the commands.\n");
    return EXIT_USAGE;
}

static int fail(struct cli *cli, int rv)
{
    const char *msg = cli->client != NULL ? pds_client_errmsg(cli->client) : "";

    if (cli->json) {
        printf("{\"ok\":false,\"error\":\"%s\",\"message\":\"",
               pds_errname(rv));
        for (; *msg != '\0'; msg++) {
            if (*msg == '"' || *msg == '\\')
                printf("\\%c", *msg);
            else if ((unsigned char)*msg < 0x20)
                printf("\\u%04x", (unsigned char)*msg);
            else
                putchar(*msg);
        }
        printf("\"}\n");
    }
    {
        const char *base = pds_strerror(rv);
        const char *text =
            cli->client != NULL ? pds_client_errmsg(cli->client) : "";
        /* The message may begin with the kind of error already. */
        if (strncmp(text, base, strlen(base)) == 0)
            fprintf(stderr, "pdsync: %s\n", text);
        else
            fprintf(stderr, "pdsync: %s: %s\n", base, text);
    }
    return EXIT_FAIL;
}

static int
read_file(const char *path, uint8_t **out, size_t *len, char *errmsg);
static int
read_secret(const char *what, const char *path, uint8_t **out, size_t *len);

static int connect_node(struct cli *cli)
{
    char errmsg[PDS_ERRMSG_SIZE];
    int rv;

    if (cli->node != NULL) {
        uint8_t *pw = NULL;
        size_t pw_len = 0;
        if (read_secret("password", cli->password_file, &pw, &pw_len) != 0)
            return EXIT_FAIL;
        rv =
            pds_client_open_remote(cli->node, pw, pw_len, &cli->client, errmsg);
        sodium_memzero(pw, pw_len);
        free(pw);
        if (rv != 0) {
            if (cli->json)
                printf("{\"ok\":false,\"error\":\"%s\"}\n", pds_errname(rv));
            fprintf(stderr, "pdsync: %s\n", errmsg);
            return EXIT_FAIL;
        }
        return 0;
    }
    if (cli->socket != NULL) {
        snprintf(cli->sock_path, sizeof(cli->sock_path), "%s", cli->socket);
    } else {
        snprintf(cli->sock_path, sizeof(cli->sock_path), "%s/%s", cli->data,
                 PDS_SOCKET_NAME);
    }
    rv = pds_client_open(cli->sock_path, &cli->client, errmsg);
    if (rv != 0) {
        if (cli->json)
            printf("{\"ok\":false,\"error\":\"%s\"}\n", pds_errname(rv));
        fprintf(stderr, "pdsync: %s\n", errmsg);
        return EXIT_FAIL;
    }
    return 0;
}

/* ---- JSON output ------------------------------------------------------ */

static void json_str(const char *s, size_t n)
{
    size_t i;

    putchar('"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            printf("\\n");
        else if (c == '\t')
            printf("\\t");
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* Text values are valid UTF-8 without control characters other than
 * newline and tab; everything else is shown as base64 or a byte count. */
static int is_text(const uint8_t *v, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = v[i];
        size_t len;
        size_t k;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0 && c >= 0xc2)
            len = 2;
        else if ((c & 0xf0) == 0xe0)
            len = 3;
        else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
            len = 4;
        else
            return 0;
        if (i + len > n)
            return 0;
        for (k = 1; k < len; k++) {
            if ((v[i + k] & 0xc0) != 0x80)
                return 0;
        }
        i += len;
    }
    return 1;
}

static void json_value(const uint8_t *v, size_t n)
{
    if (is_text(v, n)) {
        printf("\"value\":");
        json_str((const char *)v, n);
    } else {
        size_t b64_len =
            sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(b64_len);
        if (b64 == NULL) {
            printf("\"value_base64\":null");
            return;
        }
        sodium_bin2base64(b64, b64_len, v, n, sodium_base64_VARIANT_ORIGINAL);
        printf("\"value_base64\":\"%s\"", b64);
        free(b64);
    }
}

static const char *scope_word(enum pds_scope scope)
{
    return scope == PDS_SCOPE_GROUP ? "group" : "user";
}

static void json_item(const struct pds_item *it)
{
    printf("{\"scope\":\"%s\",\"owner\":", scope_word(it->scope));
    json_str(it->owner, it->owner_len);
    printf(",\"item\":");
    json_str(it->item, it->item_len);
    printf(",");
    json_value(it->value, it->value_len);
    printf(",\"size\":%zu,\"hlc\":%llu,\"node\":\"%016llx\"}", it->value_len,
           (unsigned long long)it->version.hlc,
           (unsigned long long)it->version.node);
}

static const char *write_status(const struct pds_write_result *r)
{
    if (r->queued > 0)
        return "queued";
    if (r->outcome == PDS_OUTCOME_SUPERSEDED)
        return "superseded";
    if (r->index == 0 && r->outcome == PDS_OUTCOME_APPLIED)
        return "device";
    return "committed";
}

static void json_write(const struct pds_write_result *r)
{
    printf("{\"ok\":true,\"status\":\"%s\",\"epoch\":%llu,"
           "\"index\":%llu,\"queued\":%llu,\"hlc\":%llu,"
           "\"node\":\"%016llx\"}\n",
           write_status(r), (unsigned long long)r->epoch,
           (unsigned long long)r->index, (unsigned long long)r->queued,
           (unsigned long long)r->version.hlc,
           (unsigned long long)r->version.node);
}

/* The outcome of a write for people; what is "deleted", "committed"... */
static void print_write(const char *what,
                        const char *done,
                        const struct pds_write_result *r)
{
    if (r->queued > 0)
        printf("queued %s: the server is unreachable; it is shown here and "
               "goes to the server when the link is back (outbox entry "
               "%llu)\n",
               what, (unsigned long long)r->queued);
    else if (r->outcome == PDS_OUTCOME_SUPERSEDED)
        printf("not applied: a newer version of %s is already on the server "
               "(last writer wins)\n",
               what);
    else if (r->index == 0)
        printf("stored %s on this device only (a device-specific item)\n",
               what);
    else
        printf("%s %s at %llu/%llu\n", done, what, (unsigned long long)r->epoch,
               (unsigned long long)r->index);
}

static void format_time(pds_time ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void format_bytes(uint64_t b, char *buf, size_t n)
{
    if (b >= (uint64_t)1 << 30)
        snprintf(buf, n, "%.1f GiB", (double)b / (double)((uint64_t)1 << 30));
    else if (b >= (uint64_t)1 << 20)
        snprintf(buf, n, "%.1f MiB", (double)b / (double)((uint64_t)1 << 20));
    else if (b >= 1024)
        snprintf(buf, n, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(buf, n, "%llu B", (unsigned long long)b);
}

/* ---- Commands --------------------------------------------------------- */

/*
 * Parse a command's options: --group, --help, and the extra ones given.
 * Returns -1 when the command's help was printed, EXIT_USAGE on an
 * error, 0 otherwise; argv is left at the first operand.
 */
struct cmd_opts {
    int group;
    const char *file;
    const char *output;
    const char *secret_file;
    const char *name;
    long lines;
    int merge;
};

static int parse_cmd(const char *name,
                     int argc,
                     char **argv,
                     const char *allowed,
                     struct cmd_opts *o,
                     int *first)
{
    static const struct option options[] = {
        {"group", no_argument, NULL, 'g'},
        {"file", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"lines", required_argument, NULL, 'n'},
        {"join-secret-file", required_argument, NULL, 's'},
        {"password-file", required_argument, NULL, 's'},
        {"name", required_argument, NULL, 'N'},
        {"merge", no_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const struct command *c = find_command(name);
    /* The group commands take options after their action word (GNU
     * permutation); data commands stop at the first operand, so that a
     * value may start with '-'. */
    int permute =
        strcmp(name, "server") == 0 || strcmp(name, "client") == 0 ||
        strcmp(name, "clients") == 0 || strcmp(name, "admin-password") == 0 ||
        strcmp(name, "replication") == 0 || strcmp(name, "scope") == 0;
    char *end;
    int opt;

    memset(o, 0, sizeof(*o));
    optind = 0; /* glibc: start over, the option string changed */
    opterr = 0;
    while ((opt = getopt_long(argc, argv,
                              permute ? "gf:o:n:s:N:Mh" : "+gf:o:n:s:N:Mh",
                              options, NULL)) != -1) {
        if (opt == 'h') {
            printf("usage: pdsync %s %s\n\n%s\n", c->name, c->args, c->help);
            return -1;
        }
        if (opt == '?' || opt == ':' || strchr(allowed, opt) == NULL) {
            const char *bad = argv[optind - 1];
            if (opt == '?' && optopt != 0)
                return usage_error(name, "%s: unknown option '-%c'", name,
                                   optopt);
            if (opt == ':' || (opt == '?' && optopt != 0))
                return usage_error(name, "%s: option '%s' needs a value", name,
                                   bad);
            return usage_error(name, "%s: unknown option '%s'", name, bad);
        }
        switch (opt) {
        case 'g':
            o->group = 1;
            break;
        case 'f':
            o->file = optarg;
            break;
        case 'o':
            o->output = optarg;
            break;
        case 's':
            o->secret_file = optarg;
            break;
        case 'N':
            o->name = optarg;
            break;
        case 'M':
            o->merge = 1;
            break;
        case 'n':
            errno = 0;
            o->lines = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || o->lines <= 0 ||
                o->lines > 100000)
                return usage_error(name, "%s: --lines must be 1..100000", name);
            break;
        }
    }
    *first = optind;
    return 0;
}

static int check_operands(const char *name, int n, int min, int max)
{
    if (n < min)
        return usage_error(name, "%s: missing arguments", name);
    if (n > max)
        return usage_error(name, "%s: too many arguments", name);
    return 0;
}

static void
make_key(struct pds_key *key, int group, const char *owner, const char *item)
{
    key->scope = group ? PDS_SCOPE_GROUP : PDS_SCOPE_USER;
    key->owner = owner;
    key->owner_len = strlen(owner);
    key->item = item;
    key->item_len = item != NULL ? strlen(item) : 0;
}

static int read_file(const char *path, uint8_t **out, size_t *len, char *errmsg)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0;
    size_t cap = 0;

    if (f == NULL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t got;
        if (n == cap) {
            uint8_t *p;
            cap = cap == 0 ? 65536 : cap * 2;
            if (cap > PDS_VALUE_MAX + 1u) {
                snprintf(errmsg, PDS_ERRMSG_SIZE,
                         "%s: larger than the %u-byte maximum of a value", path,
                         (unsigned)PDS_VALUE_MAX);
                goto err;
            }
            p = realloc(buf, cap);
            if (p == NULL) {
                snprintf(errmsg, PDS_ERRMSG_SIZE, "out of memory");
                goto err;
            }
            buf = p;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s: %s", path,
                 errno == EISDIR ? "is a directory (a file is expected)"
                                 : strerror(errno));
        goto err;
    }
    if (f != stdin)
        fclose(f);
    *out = buf;
    *len = n;
    return 0;

err:
    if (f != stdin)
        fclose(f);
    free(buf);
    return -1;
}

static int cmd_put(struct cli *cli, int argc, char **argv)
{
    struct cmd_opts o;
    struct pds_write_result res;
    struct pds_key key;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *file_value = NULL;
    const uint8_t *value;
    size_t value_len;
    int first;
    int rv;

    rv = parse_cmd("put", argc, argv, "gf", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    rv = check_operands("put", argc, o.file != NULL ? 2 : 3,
                        o.file != NULL ? 2 : 3);
    if (rv != 0)
        return rv;
    if (o.file != NULL) {
        if (read_file(o.file, &file_value, &value_len, errmsg) != 0) {
            fprintf(stderr, "pdsync: put: %s\n", errmsg);
            return EXIT_FAIL;
        }
        value = file_value;
    } else {
        value = (const uint8_t *)argv[2];
        value_len = strlen(argv[2]);
    }
    make_key(&key, o.group, argv[0], argv[1]);
    rv = connect_node(cli);
    if (rv == 0) {
        rv = pds_client_put(cli->client, &key, value, value_len, &res);
        if (rv != 0) {
            rv = fail(cli, rv);
        } else if (cli->json) {
            json_write(&res);
        } else {
            char what[600];
            snprintf(what, sizeof(what), "%s/%s", argv[0], argv[1]);
            print_write(what, "committed", &res);
        }
    }
    free(file_value);
    return rv;
}

static int cmd_get(struct cli *cli, int argc, char **argv)
{
    struct cmd_opts o;
    struct pds_item it;
    struct pds_key key;
    int first;
    int rv;

    rv = parse_cmd("get", argc, argv, "go", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    rv = check_operands("get", argc, 2, 2);
    if (rv != 0)
        return rv;
    make_key(&key, o.group, argv[0], argv[1]);
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv = pds_client_get(cli->client, &key, &it);
    if (rv != 0)
        return fail(cli, rv);
    if (o.output != NULL) {
        FILE *f = fopen(o.output, "wb");
        if (f == NULL || fwrite(it.value, 1, it.value_len, f) != it.value_len ||
            fclose(f) != 0) {
            fprintf(stderr, "pdsync: get: write %s: %s\n", o.output,
                    strerror(errno));
            return EXIT_FAIL;
        }
    } else if (cli->json) {
        json_item(&it);
        putchar('\n');
    } else {
        fwrite(it.value, 1, it.value_len, stdout);
        putchar('\n');
    }
    return 0;
}

static int cmd_del(struct cli *cli, int argc, char **argv)
{
    struct cmd_opts o;
    struct pds_write_result res;
    struct pds_key key;
    int first;
    int rv;

    rv = parse_cmd("del", argc, argv, "g", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    rv = check_operands("del", argc, 2, 2);
    if (rv != 0)
        return rv;
    make_key(&key, o.group, argv[0], argv[1]);
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv = pds_client_del(cli->client, &key, &res);
    if (rv != 0)
        return fail(cli, rv);
    if (cli->json)
        json_write(&res);
    else {
        char what[600];
        snprintf(what, sizeof(what), "%s/%s", argv[0], argv[1]);
        print_write(what, "deleted", &res);
    }
    return 0;
}

static int cmd_list(struct cli *cli, int argc, char **argv)
{
    const struct pds_item *items;
    struct cmd_opts o;
    size_t n;
    size_t i;
    int first;
    int rv;

    rv = parse_cmd("list", argc, argv, "g", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    rv = check_operands("list", argc, 0, 1);
    if (rv != 0)
        return rv;
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv =
        pds_client_list(cli->client, o.group ? PDS_SCOPE_GROUP : PDS_SCOPE_USER,
                        argc == 1 ? argv[0] : NULL, &items, &n);
    if (rv != 0)
        return fail(cli, rv);
    if (cli->json)
        printf("[");
    for (i = 0; i < n; i++) {
        const struct pds_item *it = &items[i];
        if (cli->json) {
            if (i > 0)
                printf(",");
            json_item(it);
            continue;
        }
        printf("%s\t%.*s\t%.*s\t", scope_word(it->scope), (int)it->owner_len,
               it->owner, (int)it->item_len, it->item);
        if (is_text(it->value, it->value_len) && it->value_len <= 80 &&
            memchr(it->value, '\n', it->value_len) == NULL)
            printf("%.*s\n", (int)it->value_len, (const char *)it->value);
        else
            printf("<%zu bytes>\n", it->value_len);
    }
    if (cli->json)
        printf("]\n");
    return 0;
}

static int cmd_users(struct cli *cli, int argc, char **argv)
{
    const struct pds_user *users;
    struct cmd_opts o;
    char when[32];
    size_t n;
    size_t i;
    int first;
    int rv;

    rv = parse_cmd("users", argc, argv, "", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    rv = check_operands("users", argc - first, 0, 0);
    if (rv != 0)
        return rv;
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv = pds_client_users(cli->client, &users, &n);
    if (rv != 0)
        return fail(cli, rv);
    if (cli->json)
        printf("[");
    for (i = 0; i < n; i++) {
        format_time(users[i].last_used, when, sizeof(when));
        if (cli->json) {
            printf("%s{\"scope\":\"%s\",\"owner\":", i > 0 ? "," : "",
                   scope_word(users[i].scope));
            json_str(users[i].owner, users[i].owner_len);
            printf(",\"last_used\":\"%s\"}", when);
        } else {
            printf("%s\t%.*s\tlast used %s\n", scope_word(users[i].scope),
                   (int)users[i].owner_len, users[i].owner, when);
        }
    }
    if (cli->json)
        printf("]\n");
    return 0;
}

static int cmd_delete_user(struct cli *cli, int argc, char **argv)
{
    struct pds_write_result res;
    struct cmd_opts o;
    int first;
    int rv;

    rv = parse_cmd("delete-user", argc, argv, "g", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    rv = check_operands("delete-user", argc, 1, 1);
    if (rv != 0)
        return rv;
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv = pds_client_delete_user(
        cli->client, o.group ? PDS_SCOPE_GROUP : PDS_SCOPE_USER, argv[0], &res);
    if (rv != 0)
        return fail(cli, rv);
    if (cli->json)
        json_write(&res);
    else {
        char what[600];
        snprintf(what, sizeof(what), "%s %s", o.group ? "group" : "user",
                 argv[0]);
        print_write(what, "deleted", &res);
    }
    return 0;
}

/*
 * The server's followers: positions sent and durable (a follower applies
 * in the transaction that makes entries durable, so applied = durable),
 * lag in entries, bytes and time, and whether it is being refreshed.
 */
static void print_followers(struct cli *cli, int json, pds_index last_index)
{
    const struct pds_member *m;
    size_t n, i, k = 0;

    if (pds_client_clients(cli->client, &m, &n) != 0)
        return;
    if (json)
        printf(",\"followers\":[");
    for (i = 0; i < n; i++) {
        uint64_t lag;
        if (!m[i].is_following)
            continue;
        lag = last_index > m[i].position ? last_index - m[i].position : 0;
        if (json) {
            printf("%s{\"id\":\"%016llx\",\"name\":", k > 0 ? "," : "",
                   (unsigned long long)m[i].id);
            json_str(m[i].name, strlen(m[i].name));
            printf(",\"sent\":%llu,\"durable\":%llu,\"applied\":%llu,"
                   "\"lag_entries\":%llu,\"lag_bytes\":%llu,"
                   "\"lag_ms\":%llu,\"state\":",
                   (unsigned long long)m[i].sent,
                   (unsigned long long)m[i].position,
                   (unsigned long long)m[i].position, (unsigned long long)lag,
                   (unsigned long long)m[i].lag_bytes,
                   (unsigned long long)m[i].lag_ms);
            json_str(m[i].sync, strlen(m[i].sync));
            printf("}");
        } else {
            if (k == 0)
                printf("followers:   %-16s  %-12s  %10s  %10s  %10s  %8s  "
                       "%10s  %8s  %s\n",
                       "ID", "NAME", "SENT", "DURABLE", "APPLIED", "LAG",
                       "LAG BYTES", "LAG MS", "STATE");
            printf("             %016llx  %-12s  %10llu  %10llu  %10llu  "
                   "%8llu  %10llu  %8llu  %s\n",
                   (unsigned long long)m[i].id,
                   m[i].name[0] != '\0' ? m[i].name : "-",
                   (unsigned long long)m[i].sent,
                   (unsigned long long)m[i].position,
                   (unsigned long long)m[i].position, (unsigned long long)lag,
                   (unsigned long long)m[i].lag_bytes,
                   (unsigned long long)m[i].lag_ms, m[i].sync);
        }
        k++;
    }
    if (json)
        printf("]");
    else if (k == 0)
        printf("followers:   none connected\n");
    /* Members away whose position the retained log no longer follows. */
    if (json)
        printf(",\"needs_refresh\":[");
    for (i = 0, k = 0; i < n; i++) {
        if (m[i].is_following || strcmp(m[i].sync, "needs refresh") != 0)
            continue;
        if (json) {
            printf("%s{\"id\":\"%016llx\",\"name\":", k > 0 ? "," : "",
                   (unsigned long long)m[i].id);
            json_str(m[i].name, strlen(m[i].name));
            printf(",\"position\":%llu}", (unsigned long long)m[i].position);
        } else {
            printf("needs refresh: %016llx (%s), away at %llu, behind the "
                   "retained log: it takes a snapshot when it returns\n",
                   (unsigned long long)m[i].id,
                   m[i].name[0] != '\0' ? m[i].name : "-",
                   (unsigned long long)m[i].position);
        }
        k++;
    }
    if (json)
        printf("]");
}

static int cmd_status(struct cli *cli, int argc, char **argv)
{
    struct pds_status st;
    struct cmd_opts o;
    char used[32];
    char budget[32];
    uint64_t lag;
    int first;
    int rv;

    rv = parse_cmd("status", argc, argv, "", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    rv = check_operands("status", argc - first, 0, 0);
    if (rv != 0)
        return rv;
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv = pds_client_status(cli->client, &st);
    if (rv != 0)
        return fail(cli, rv);
    /* A follower's lag in entries: behind what its server last sent. */
    lag = st.server_last > st.last_index ? st.server_last - st.last_index : 0;
    if (cli->json) {
        printf(
            "{\"role\":\"%s\",\"node_id\":\"%016llx\",\"epoch\":%llu,"
            "\"last_epoch\":%llu,\"last_index\":%llu,\"records\":%llu,"
            "\"users\":%llu,\"max_users\":%llu,\"groups\":%llu,"
            "\"log_entries\":%llu,\"restamp_memos\":%llu,"
            "\"bytes_used\":%llu,\"budget\":%llu,"
            "\"commits\":%llu,\"committed_entries\":%llu,"
            "\"machines\":%llu,\"max_machines\":%llu,"
            "\"reclaim_after_s\":%llu,\"pid\":%llu,",
            st.role, (unsigned long long)st.node_id,
            (unsigned long long)st.epoch, (unsigned long long)st.last_epoch,
            (unsigned long long)st.last_index, (unsigned long long)st.n_records,
            (unsigned long long)st.n_users, (unsigned long long)st.max_users,
            (unsigned long long)st.n_groups, (unsigned long long)st.n_log,
            (unsigned long long)st.n_clamps, (unsigned long long)st.bytes_used,
            (unsigned long long)st.budget, (unsigned long long)st.n_commits,
            (unsigned long long)st.n_committed,
            (unsigned long long)st.n_machines,
            (unsigned long long)st.max_machines,
            (unsigned long long)st.reclaim_after_s, (unsigned long long)st.pid);
        printf("\"group\":\"%s\",\"listen\":", st.group);
        json_str(st.listen, strlen(st.listen));
        printf(",\"server\":");
        json_str(st.server, strlen(st.server));
        printf(",\"server_last\":%llu", (unsigned long long)st.server_last);
        printf(",\"lag_entries\":%llu", (unsigned long long)lag);
        printf(",\"standby\":");
        json_str(st.standby, strlen(st.standby));
        printf(",\"ack_mode\":");
        json_str(st.ack_mode, strlen(st.ack_mode));
        printf(",\"outbox\":%llu,\"outbox_rejected\":%llu,"
               "\"outbox_lost\":%llu,\"outbox_error\":",
               (unsigned long long)st.n_outbox,
               (unsigned long long)st.n_rejected,
               (unsigned long long)st.n_lost);
        json_str(st.outbox_error, strlen(st.outbox_error));
        printf(",\"conflicts_lost\":%llu,\"clocks_restamped\":%llu",
               (unsigned long long)st.n_superseded,
               (unsigned long long)st.n_clamped);
        printf(",\"link\":\"%s\",\"cipher\":\"%s\",\"last_error\":", st.link,
               st.cipher);
        json_str(st.last_error, strlen(st.last_error));
        printf(",\"data_dir\":");
        json_str(st.data_dir, strlen(st.data_dir));
        printf(",\"version\":");
        json_str(st.version, strlen(st.version));
        /* Last: another request ends the life of st's strings. */
        if (strcmp(st.role, "server") == 0)
            print_followers(cli, 1, st.last_index);
        printf("}\n");
        return 0;
    }
    format_bytes(st.bytes_used, used, sizeof(used));
    format_bytes(st.budget, budget, sizeof(budget));
    printf("role:        %s\n"
           "node id:     %016llx\n",
           st.role, (unsigned long long)st.node_id);
    if (st.group[0] != '\0')
        printf("group:       %s\n", st.group);
    if (st.listen[0] != '\0')
        printf("group port:  %s\n", st.listen);
    if (strcmp(st.role, "server") == 0) {
        printf("standby:     %s\n"
               "acks:        %s\n",
               st.standby[0] != '\0' ? st.standby : "none", st.ack_mode);
        printf("machines:    %llu of %llu\n", (unsigned long long)st.n_machines,
               (unsigned long long)st.max_machines);
        if (st.reclaim_after_s > 0)
            printf("reclaim:     slots of clients silent for %llu s\n",
                   (unsigned long long)st.reclaim_after_s);
        printf("conflicts:   %llu client writes lost to newer versions, "
               "%llu clocks restamped (too far ahead)\n",
               (unsigned long long)st.n_superseded,
               (unsigned long long)st.n_clamped);
    }
    if (strcmp(st.role, "client") == 0 || strcmp(st.role, "standby") == 0) {
        printf("server:      %s (%s)\n", st.server, st.link);
        if (st.cipher[0] != '\0')
            printf("link cipher: %s\n", st.cipher);
        if (st.server_last > 0)
            printf("lag:         %llu entries (the server was at %llu when "
                   "it last sent)\n",
                   (unsigned long long)lag, (unsigned long long)st.server_last);
        if (st.last_error[0] != '\0')
            printf("last error:  %s\n", st.last_error);
        printf("outbox:      %llu writes queued for the server",
               (unsigned long long)st.n_outbox);
        if (st.n_rejected > 0 || st.n_lost > 0)
            printf(" (%llu refused by it, %llu lost to newer versions)",
                   (unsigned long long)st.n_rejected,
                   (unsigned long long)st.n_lost);
        printf("\n");
        if (st.outbox_error[0] != '\0')
            printf("last refusal: %s\n", st.outbox_error);
    }
    printf("epoch:       %llu\n"
           "position:    %llu/%llu\n"
           "records:     %llu\n"
           "users:       %llu of %llu\n"
           "groups:      %llu\n"
           "log entries: %llu\n"
           "storage:     %s used of %s budget\n"
           "commits:     %llu transactions for %llu entries since start\n"
           "data dir:    %s\n"
           "pid:         %llu\n"
           "version:     %s\n",
           (unsigned long long)st.epoch, (unsigned long long)st.last_epoch,
           (unsigned long long)st.last_index, (unsigned long long)st.n_records,
           (unsigned long long)st.n_users, (unsigned long long)st.max_users,
           (unsigned long long)st.n_groups, (unsigned long long)st.n_log, used,
           budget, (unsigned long long)st.n_commits,
           (unsigned long long)st.n_committed, st.data_dir,
           (unsigned long long)st.pid, st.version);
    /* Last: another request ends the life of st's strings. */
    if (strcmp(st.role, "server") == 0)
        print_followers(cli, 0, st.last_index);
    return 0;
}

static int cmd_log(struct cli *cli, int argc, char **argv)
{
    const char *const *lines;
    struct cmd_opts o;
    size_t n;
    size_t i;
    int first;
    int rv;

    rv = parse_cmd("log", argc, argv, "n", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    rv = check_operands("log", argc - first, 0, 0);
    if (rv != 0)
        return rv;
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv = pds_client_log(cli->client, (uint32_t)(o.lines > 0 ? o.lines : 100),
                        &lines, &n);
    if (rv != 0)
        return fail(cli, rv);
    if (cli->json)
        printf("[");
    for (i = 0; i < n; i++) {
        if (cli->json) {
            if (i > 0)
                printf(",");
            json_str(lines[i], strlen(lines[i]));
        } else {
            printf("%s\n", lines[i]);
        }
    }
    if (cli->json)
        printf("]\n");
    return 0;
}

/* Read a secret file (what: "join secret", "password"): its bytes, a final
 * newline removed. */
static int
read_secret(const char *what, const char *path, uint8_t **out, size_t *len)
{
    char errmsg[PDS_ERRMSG_SIZE];

    if (read_file(path, out, len, errmsg) != 0) {
        fprintf(stderr, "pdsync: %s: %s\n", what, errmsg);
        return EXIT_FAIL;
    }
    while (*len > 0 && ((*out)[*len - 1] == '\n' || (*out)[*len - 1] == '\r'))
        (*len)--;
    return 0;
}

static int cmd_server(struct cli *cli, int argc, char **argv)
{
    struct pds_server_started st;
    struct cmd_opts o;
    uint8_t *secret = NULL;
    size_t secret_len = 0;
    int first;
    int rv;

    rv = parse_cmd("server", argc, argv, "s", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    rv = check_operands("server", argc, 1, 1);
    if (rv != 0)
        return rv;
    if (strcmp(argv[0], "start") != 0 && strcmp(argv[0], "stop") != 0)
        return usage_error("server", "server: unknown action '%s'", argv[0]);
    if (strcmp(argv[0], "stop") == 0 && o.secret_file != NULL)
        return usage_error("server",
                           "server stop: --join-secret-file is for start");
    if (o.secret_file != NULL &&
        read_secret("join secret", o.secret_file, &secret, &secret_len) != 0)
        return EXIT_FAIL;
    rv = connect_node(cli);
    if (rv != 0)
        goto out;
    if (strcmp(argv[0], "stop") == 0) {
        rv = pds_client_server_stop(cli->client);
        if (rv != 0) {
            rv = fail(cli, rv);
            goto out;
        }
        if (cli->json)
            printf("{\"ok\":true}\n");
        else
            printf("server stopped\n");
        goto out;
    }
    rv = pds_client_server_start(cli->client, secret, secret_len, &st);
    if (rv != 0) {
        rv = fail(cli, rv);
        goto out;
    }
    if (cli->json) {
        printf("{\"ok\":true,\"group\":\"%s\",\"listen\":\"%s\"", st.group,
               st.listen);
        if (st.secret != NULL)
            printf(",\"join_secret\":\"%s\"", st.secret);
        printf("}\n");
    } else {
        printf("server of group %s\n", st.group);
        if (st.listen[0] != '\0')
            printf("group port: %s\n", st.listen);
        else
            printf("warning: this node has no group port: restart pdsyncd "
                   "with --listen HOST:PORT so that clients can join\n");
        if (st.secret != NULL)
            printf("join secret (shown once; give it to clients with "
                   "--join-secret-file): %s\n",
                   st.secret);
    }
out:
    if (secret != NULL)
        sodium_memzero(secret, secret_len);
    free(secret);
    return rv;
}

static int cmd_client(struct cli *cli, int argc, char **argv)
{
    struct cmd_opts o;
    uint8_t *secret = NULL;
    size_t secret_len = 0;
    int first;
    int rv;

    rv = parse_cmd("client", argc, argv, "sNM", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    if (argc >= 1 && strcmp(argv[0], "stop") == 0) {
        rv = check_operands("client", argc, 1, 1);
        if (rv != 0)
            return rv;
        rv = connect_node(cli);
        if (rv != 0)
            return rv;
        rv = pds_client_client_stop(cli->client);
        if (rv != 0)
            return fail(cli, rv);
        if (cli->json)
            printf("{\"ok\":true}\n");
        else
            printf("client stopped\n");
        return 0;
    }
    if (argc < 1 || strcmp(argv[0], "start") != 0)
        return usage_error("client", "client: unknown or missing action");
    rv = check_operands("client", argc, 2, 2);
    if (rv != 0)
        return rv;
    if (o.secret_file == NULL)
        return usage_error("client",
                           "client start: --join-secret-file F is required");
    if (read_secret("join secret", o.secret_file, &secret, &secret_len) != 0)
        return EXIT_FAIL;
    rv = connect_node(cli);
    if (rv == 0) {
        rv = pds_client_client_start(cli->client, argv[1], secret, secret_len,
                                     o.name, o.merge);
        if (rv != 0)
            rv = fail(cli, rv);
        else if (cli->json)
            printf("{\"ok\":true,\"server\":\"%s\"}\n", argv[1]);
        else
            printf("client started: joining the server at %s ('pdsync "
                   "status' shows the link)\n",
                   argv[1]);
    }
    sodium_memzero(secret, secret_len);
    free(secret);
    return rv;
}

static int cmd_clients(struct cli *cli, int argc, char **argv)
{
    const struct pds_member *m;
    struct cmd_opts o;
    char first_s[32];
    char last_s[32];
    size_t n;
    size_t i;
    int first;
    int rv;

    rv = parse_cmd("clients", argc, argv, "", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    if (argc > 0) {
        int start;
        if (strcmp(argv[0], "stop") != 0 && strcmp(argv[0], "start") != 0)
            return usage_error("clients", "clients: unknown action '%s'",
                               argv[0]);
        rv = check_operands("clients", argc, 2, 2);
        if (rv != 0)
            return rv;
        start = strcmp(argv[0], "start") == 0;
        rv = connect_node(cli);
        if (rv != 0)
            return rv;
        rv = pds_client_clients_admin(cli->client, start, argv[1]);
        if (rv != 0)
            return fail(cli, rv);
        if (cli->json)
            printf("{\"ok\":true}\n");
        else
            printf("client %s %s\n", argv[1], start ? "started" : "stopped");
        return 0;
    }
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv = pds_client_clients(cli->client, &m, &n);
    if (rv != 0)
        return fail(cli, rv);
    if (cli->json)
        printf("[");
    else if (n > 0)
        printf("%-16s  %-12s  %-16s  %-12s  %-12s  %-21s  %-20s  %-20s  "
               "%-16s  %-14s  %-10s  %s\n",
               "ID", "STATE", "NAME", "PRODUCT", "LOCATION", "ADDRESS",
               "FIRST ENROLLED", "LAST SEEN", "VERSION", "POSITION", "SYNC",
               "LAST ERROR");
    for (i = 0; i < n; i++) {
        const char *state = m[i].state == PDS_MEMBER_STOPPED ? "stopped"
                            : m[i].is_connected              ? "connected"
                                                             : "disconnected";
        format_time(m[i].first_enrolled, first_s, sizeof(first_s));
        format_time(m[i].last_seen, last_s, sizeof(last_s));
        if (cli->json) {
            printf("%s{\"id\":\"%016llx\",\"state\":\"%s\",\"name\":",
                   i > 0 ? "," : "", (unsigned long long)m[i].id, state);
            json_str(m[i].name, strlen(m[i].name));
            printf(",\"product\":");
            json_str(m[i].product, strlen(m[i].product));
            printf(",\"location\":");
            json_str(m[i].location, strlen(m[i].location));
            printf(",\"address\":");
            json_str(m[i].address, strlen(m[i].address));
            printf(",\"first_enrolled\":\"%s\",\"last_seen\":\"%s\","
                   "\"version\":",
                   first_s, last_s);
            json_str(m[i].version, strlen(m[i].version));
            printf(",\"last_error\":");
            json_str(m[i].last_error, strlen(m[i].last_error));
            /* A follower's live position; one away, as it left (and
             * "needs refresh" when the retained log no longer follows it). */
            if (m[i].is_following || m[i].position > 0 || m[i].sync[0])
                printf(",\"position\":%llu", (unsigned long long)m[i].position);
            if (m[i].is_following || m[i].sync[0]) {
                printf(",\"sync\":");
                json_str(m[i].sync, strlen(m[i].sync));
            }
            printf("}");
        } else {
            char pos[32] = "-";
            if (m[i].is_following || m[i].position > 0 || m[i].sync[0])
                snprintf(pos, sizeof(pos), "%llu",
                         (unsigned long long)m[i].position);
            /* "following", or "refreshing: ..." while it takes a snapshot;
             * away: "needs refresh" when the log no longer follows it. */
            char sync[16];
            snprintf(sync, sizeof(sync), "%s",
                     !m[i].is_following ? (m[i].sync[0] ? m[i].sync : "-")
                     : strncmp(m[i].sync, "refreshing", 10) == 0 ? "refreshing"
                                                                 : "following");
            printf("%016llx  %-12s  %-16s  %-12s  %-12s  %-21s  %-20s  "
                   "%-20s  %-16s  %-14s  %-10s  %s\n",
                   (unsigned long long)m[i].id, state, m[i].name,
                   m[i].product[0] ? m[i].product : "-",
                   m[i].location[0] ? m[i].location : "-", m[i].address,
                   first_s, last_s, m[i].version, pos, sync,
                   m[i].last_error[0] ? m[i].last_error : "-");
        }
    }
    if (cli->json) {
        printf("]\n");
    } else {
        struct pds_status st;
        if (n == 0)
            printf("no clients\n");
        if (pds_client_status(cli->client, &st) == 0) {
            printf("%llu of %llu machines (the server included)",
                   (unsigned long long)st.n_machines,
                   (unsigned long long)st.max_machines);
            if (st.reclaim_after_s > 0)
                printf("; the slot of a client silent for more than %llu s "
                       "is reclaimed",
                       (unsigned long long)st.reclaim_after_s);
            printf("\n");
        }
    }
    return 0;
}

static int cmd_scope(struct cli *cli, int argc, char **argv)
{
    const char *const *items;
    struct cmd_opts o;
    size_t n;
    size_t i;
    int first;
    int rv;

    rv = parse_cmd("scope", argc, argv, "", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    if (argc >= 1 && strcmp(argv[0], "list") == 0) {
        rv = check_operands("scope", argc, 1, 1);
        if (rv != 0)
            return rv;
        rv = connect_node(cli);
        if (rv != 0)
            return rv;
        rv = pds_client_scopes(cli->client, &items, &n);
        if (rv != 0)
            return fail(cli, rv);
        if (cli->json)
            printf("[");
        for (i = 0; i < n; i++) {
            if (cli->json) {
                printf("%s", i > 0 ? "," : "");
                json_str(items[i], strlen(items[i]));
            } else {
                printf("%s\tdevice\n", items[i]);
            }
        }
        if (cli->json)
            printf("]\n");
        else if (n == 0)
            printf("every item is shared\n");
        return 0;
    }
    if (argc < 1 || strcmp(argv[0], "set") != 0)
        return usage_error("scope", "scope: unknown or missing action");
    rv = check_operands("scope", argc, 3, 3);
    if (rv != 0)
        return rv;
    if (strcmp(argv[2], "shared") != 0 && strcmp(argv[2], "device") != 0)
        return usage_error("scope", "scope set: the scope is shared or device");
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv = pds_client_scope_set(cli->client, argv[1], argv[2]);
    if (rv != 0)
        return fail(cli, rv);
    if (cli->json)
        printf("{\"ok\":true}\n");
    else
        printf("%s is %s%s\n", argv[1],
               strcmp(argv[2], "device") == 0 ? "device-specific" : "shared",
               strcmp(argv[2], "device") == 0
                   ? ": each printer keeps its own value from now on"
                   : ": the group's value applies everywhere again");
    return 0;
}

static int cmd_replication(struct cli *cli, int argc, char **argv)
{
    struct cmd_opts o;
    int first;
    int rv;

    rv = parse_cmd("replication", argc, argv, "", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    if (argc >= 1 && strcmp(argv[0], "stop") == 0)
        rv = check_operands("replication", argc, 1, 1);
    else if (argc >= 1 && strcmp(argv[0], "start") == 0)
        rv = check_operands("replication", argc, 2, 2);
    else
        return usage_error("replication",
                           "replication: unknown or missing action");
    if (rv != 0)
        return rv;
    rv = connect_node(cli);
    if (rv != 0)
        return rv;
    rv = pds_client_replication(cli->client, argc == 2 ? argv[1] : NULL);
    if (rv != 0)
        return fail(cli, rv);
    if (cli->json)
        printf("{\"ok\":true}\n");
    else if (argc == 2)
        printf("replication destination: %s ('pdsync status' shows it)\n",
               argv[1]);
    else
        printf("replication stopped\n");
    return 0;
}

static int cmd_admin_password(struct cli *cli, int argc, char **argv)
{
    struct cmd_opts o;
    uint8_t *pw = NULL;
    size_t pw_len = 0;
    int first;
    int rv;

    rv = parse_cmd("admin-password", argc, argv, "s", &o, &first);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    argc -= first;
    argv += first;
    rv = check_operands("admin-password", argc, 1, 1);
    if (rv != 0)
        return rv;
    if (strcmp(argv[0], "set") != 0)
        return usage_error("admin-password",
                           "admin-password: unknown action '%s'", argv[0]);
    if (o.secret_file == NULL)
        return usage_error("admin-password",
                           "admin-password set: --password-file F is "
                           "required");
    if (read_secret("password", o.secret_file, &pw, &pw_len) != 0)
        return EXIT_FAIL;
    rv = connect_node(cli);
    if (rv == 0) {
        rv = pds_client_admin_password(cli->client, pw, pw_len);
        if (rv != 0)
            rv = fail(cli, rv);
        else if (cli->json)
            printf("{\"ok\":true}\n");
        else
            printf("administrator password set: remote administration with "
                   "'pdsync --node HOST:PORT --password-file F' is on\n");
    }
    sodium_memzero(pw, pw_len);
    free(pw);
    return rv;
}

static int cmd_help(struct cli *cli, int argc, char **argv)
{
    const struct command *c;

    (void)cli;
    if (argc < 2) {
        print_usage(stdout);
        return 0;
    }
    if (argc > 2)
        return usage_error("help", "help: too many arguments");
    c = find_command(argv[1]);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        c = find_command("help");
    if (c == NULL)
        return usage_error(NULL, "unknown command '%s'", argv[1]);
    printf("usage: pdsync %s %s\n\n%s\n", c->name, c->args, c->help);
    return 0;
}

static const struct command commands[] = {
    {"put", "[--group] OWNER ITEM VALUE | [--group] --file F OWNER ITEM",
     "Write ITEM of user OWNER (or of group OWNER with --group). The value is\n"
     "VALUE, or the bytes of file F ('-' for standard input). Prints where\n"
     "the write was committed once it is durable. On a client whose server\n"
     "is unreachable the write is queued (a durable outbox, shown here at\n"
     "once and sent when the link is back) and 'queued' is printed.",
     cmd_put},
    {"get", "[--group] [--output F] OWNER ITEM",
     "Print the value of ITEM of OWNER (to file F with --output). Exits 1\n"
     "with \"not found\" when the item does not exist.",
     cmd_get},
    {"del", "[--group] OWNER ITEM",
     "Delete ITEM of OWNER. Exits 1 with \"not found\" when it does not "
     "exist.",
     cmd_del},
    {"list", "[--group] [OWNER]",
     "List the items of OWNER, or of every owner when OWNER is omitted.",
     cmd_list},
    {"users", "", "List the users and groups that have data on this node.",
     cmd_users},
    {"delete-user", "[--group] OWNER",
     "Delete every item of user OWNER (or group OWNER with --group).",
     cmd_delete_user},
    {"status", "",
     "Show the node's role, id, epoch, log position, record and user counts\n"
     "and the storage used of its budget.",
     cmd_status},
    {"log", "[-n|--lines N]",
     "Show the last N lines (default 100) of the communication log.", cmd_log},
    {"server", "start [--join-secret-file F] | stop",
     "Make this node the server of a new group (start), or end that role\n"
     "(stop). Without --join-secret-file a secret is generated and printed\n"
     "once. Takes effect at once and survives restarts.",
     cmd_server},
    {"client",
     "start HOST:PORT --join-secret-file F [--name NAME] [--merge] | stop",
     "Enroll this node as a client of the server at HOST:PORT, proving the\n"
     "group's join secret once (start), or end synchronization (stop). A node\n"
     "that holds data of its own takes the group's copy at its first join;\n"
     "owners only it has are uploaded. --merge keeps the newer version of\n"
     "each record instead (its own or the group's).",
     cmd_client},
    {"clients", "[stop|start ID|NAME|HOST:PORT]",
     "On the server: list the group's clients (id, state, name, product,\n"
     "location, address, first enrolled, last seen, version, position,\n"
     "sync state: following, refreshing, or 'needs refresh' for one away\n"
     "behind the retained log; last error), or stop / start one client's\n"
     "synchronization. A client is named by its id, its name, or its\n"
     "address (HOST:PORT as listed, or the only client from HOST).",
     cmd_clients},
    {"scope", "set ITEM shared|device | list",
     "On the server: make ITEM shared by the group (the default) or\n"
     "device-specific: its values are then kept on each printer, never\n"
     "synchronized; each printer starts from the group's current value.",
     cmd_scope},
    {"replication", "start ID|NAME|HOST:PORT | stop",
     "On the server: make an enrolled client the replication destination\n"
     "(standby), or stop replicating to it. With a standby, a write is\n"
     "acknowledged only once the standby has it durably too ([replication]\n"
     "ack_mode; a standby that does not confirm within standby_timeout_ms\n"
     "gives the writer a timeout error, or with standby-optional degrades\n"
     "to local acknowledgement with a Warning).",
     cmd_replication},
    {"admin-password", "set --password-file F",
     "Set the administrator password that remote administration\n"
     "('pdsync --node HOST:PORT --password-file F COMMAND') requires. Only\n"
     "a memory-hard hash of it is stored.",
     cmd_admin_password},
    {"help", "[COMMAND]", "Show the commands, or one command's help.",
     cmd_help},
};

static const struct command *find_command(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"data", required_argument, NULL, 'd'},
        {"socket", required_argument, NULL, 's'},
        {"node", required_argument, NULL, 'n'},
        {"password-file", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const struct command *c;
    struct cli cli;
    int opt;
    int rv;

    memset(&cli, 0, sizeof(cli));
    cli.data = getenv("PDSYNC_DATA");
    if (cli.data == NULL || cli.data[0] == '\0')
        cli.data = PDS_DEFAULT_DATA_DIR;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+d:s:n:p:jhV", options, NULL)) !=
           -1) {
        switch (opt) {
        case 'd':
            cli.data = optarg;
            break;
        case 's':
            cli.socket = optarg;
            break;
        case 'n':
            cli.node = optarg;
            break;
        case 'p':
            cli.password_file = optarg;
            break;
        case 'j':
            cli.json = 1;
            break;
        case 'h':
            print_usage(stdout);
            return 0;
        case 'V':
            printf("pdsync %s\n", PDS_VERSION);
            return 0;
        default:
            if (optopt != 0 && strchr("dsnp", optopt) != NULL)
                return usage_error(NULL, "option '%s' needs a value",
                                   argv[optind - 1]);
            return usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error(NULL, "missing command");
    if (cli.node != NULL && cli.password_file == NULL)
        return usage_error(NULL, "--node needs --password-file F (the "
                                 "administrator password)");
    if (cli.node != NULL && (cli.socket != NULL))
        return usage_error(NULL, "--node and --socket exclude each other");
    c = find_command(argv[optind]);
    if (c == NULL)
        return usage_error(NULL, "unknown command '%s'", argv[optind]);
    if (sodium_init() < 0) {
        fprintf(stderr, "pdsync: libsodium failed to initialize\n");
        return EXIT_FAIL;
    }
    rv = c->run(&cli, argc - optind, argv + optind);
    pds_client_close(cli.client);
    return rv;
}
