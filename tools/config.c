/*
 * config.c - the configuration file, parsed with libinih.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "commlog.h"
#include "config.h"

struct load_ctx {
    struct pds_config *cfg;
    const char *path;
    FILE *f;
    int line;      /* lines read so far */
    int fail_line; /* the line of the first setting refused */
    int long_line; /* the first line longer than inih takes */
    int max_line;  /* the bytes of a line inih takes */
    char why[PDS_ERRMSG_SIZE];
    int failed;
};

/* inih's reader: fgets, counting the lines (inih tells a handler none). */
static char *read_line(char *str, int num, void *stream)
{
    struct load_ctx *ctx = stream;
    char *r = fgets(str, num, ctx->f);
    int ch;

    if (r == NULL)
        return NULL;
    ctx->line++;
    ctx->max_line = num - 1;
    if (strchr(str, '\n') == NULL) {
        /* The buffer is full, or this is the last line. Its end just
         * after (a newline, CR LF, or the end of the file): taken. */
        ch = fgetc(ctx->f);
        if (ch == '\r') {
            int ch2 = fgetc(ctx->f);
            if (ch2 != '\n' && ch2 != EOF)
                ungetc(ch2, ctx->f);
            ch = ch2 == '\n' || ch2 == EOF ? '\n' : 'x';
        }
        if (ch != '\n' && ch != EOF) {
            /* Longer than inih takes: it would read the rest as lines
             * of their own. Skipped, and refused below. */
            if (ctx->long_line == 0)
                ctx->long_line = ctx->line;
            while ((ch = fgetc(ctx->f)) != EOF && ch != '\n')
                ;
            str[0] = '\0';
        }
    }
    return r;
}

void pds_config_default(struct pds_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    pds_limits_default(&cfg->limits);
    cfg->map_initial = 8u << 20;
    cfg->budget = 512u << 20;
    cfg->retain_entries = 100000;
    cfg->retain_bytes = (uint64_t)256 << 20;
    cfg->retain_age_s = 30u * 86400;
    cfg->log_level = PDS_LOG_INFO;
    cfg->commlog_max = 1u << 20;
    cfg->max_machines = 10;
    cfg->heartbeat_ms = 1000;
    cfg->dead_ms = 3000;
    cfg->retry_max_ms = 10000;
    cfg->ack_mode = PDS_ACK_AUTO;
    cfg->standby_timeout_ms = 2000;
    cfg->max_skew_s = 60;
    cfg->outbox_max = 10000;
    cfg->outbox_max_bytes = (size_t)64 << 20;
    cfg->catchup_memory = (size_t)24 << 20;
}

/* Parse an unsigned number with an optional K/M/G suffix. */
static int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;

    errno = 0;
    if (*s == '-' || *s == '\0')
        return -1;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    if (*end == 'K' || *end == 'k')
        mult = 1024;
    else if (*end == 'M' || *end == 'm')
        mult = 1024 * 1024;
    else if (*end == 'G' || *end == 'g')
        mult = 1024 * 1024 * 1024;
    if (mult != 1)
        end++;
    if (*end != '\0' || v > max / mult || v * mult < min)
        return -1;
    *out = v * mult;
    return 0;
}

static int fail(struct load_ctx *ctx,
                const char *section,
                const char *name,
                const char *why)
{
    /* inih goes on after a handler returns 0 and reports the first line
     * of any error: the setting's own line is counted here. */
    if (!ctx->failed) {
        snprintf(ctx->why, sizeof(ctx->why), "[%s] %s: %s", section, name, why);
        ctx->fail_line = ctx->line;
    }
    ctx->failed = 1;
    return 0;
}

#define MATCH(s, n) (strcmp(section, s) == 0 && strcmp(name, n) == 0)

static int
on_setting(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *ctx = user;
    struct pds_config *cfg = ctx->cfg;
    uint64_t v;

    if (MATCH("limits", "max_users")) {
        if (parse_size(value, 1, 10000000, &v) != 0)
            return fail(ctx, section, name, "not a number in 1..10000000");
        cfg->limits.max_users = (uint32_t)v;
    } else if (MATCH("limits", "user_limit_policy")) {
        if (strcmp(value, "refuse-new") == 0)
            cfg->limits.user_policy = PDS_USER_POLICY_REFUSE;
        else if (strcmp(value, "evict-lru") == 0)
            cfg->limits.user_policy = PDS_USER_POLICY_EVICT_LRU;
        else
            return fail(ctx, section, name, "must be refuse-new or evict-lru");
    } else if (MATCH("limits", "max_value_size")) {
        /* A change travels to the group in one frame of at most 4 MiB. */
        if (parse_size(value, 1, (uint64_t)3 << 20, &v) != 0)
            return fail(ctx, section, name,
                        "not a size in 1..3M (a change must fit one "
                        "replication frame)");
        cfg->limits.max_value = (uint32_t)v;
    } else if (MATCH("limits", "max_owner_len")) {
        if (parse_size(value, 1, PDS_OWNER_MAX, &v) != 0)
            return fail(ctx, section, name, "not a number in 1..255");
        cfg->limits.max_owner = (uint32_t)v;
    } else if (MATCH("limits", "max_item_len")) {
        if (parse_size(value, 1, PDS_ITEM_MAX, &v) != 0)
            return fail(ctx, section, name, "not a number in 1..255");
        cfg->limits.max_item = (uint32_t)v;
    } else if (MATCH("limits", "owner_chars")) {
        const char *p;
        if (strlen(value) >= sizeof(cfg->limits.owner_chars))
            return fail(ctx, section, name, "too many characters");
        for (p = value; *p != '\0'; p++) {
            if (*p <= ' ' || *p > '~' || *p == '/' || *p == '\\')
                return fail(ctx, section, name,
                            "only printable ASCII punctuation, no '/'");
        }
        strcpy(cfg->limits.owner_chars, value);
    } else if (MATCH("storage", "map_initial")) {
        if (parse_size(value, 64 * 1024, SIZE_MAX, &v) != 0)
            return fail(ctx, section, name, "not a size of at least 64K");
        cfg->map_initial = (size_t)v;
    } else if (MATCH("storage", "storage_budget")) {
        if (parse_size(value, 64 * 1024, SIZE_MAX, &v) != 0)
            return fail(ctx, section, name, "not a size of at least 64K");
        cfg->budget = (size_t)v;
    } else if (MATCH("storage", "log_retain_entries")) {
        if (parse_size(value, 1, UINT64_MAX, &v) != 0)
            return fail(ctx, section, name, "not a number of at least 1");
        cfg->retain_entries = v;
    } else if (MATCH("storage", "log_retain_bytes")) {
        if (parse_size(value, 0, UINT64_MAX, &v) != 0)
            return fail(ctx, section, name, "not a size (0: no bound)");
        cfg->retain_bytes = v;
    } else if (MATCH("storage", "log_retain_age_s")) {
        if (parse_size(value, 0, 100u * 365 * 86400, &v) != 0)
            return fail(ctx, section, name, "not a number of seconds");
        cfg->retain_age_s = v;
    } else if (MATCH("log", "level")) {
        int level = pds_log_level_parse(value);
        if (level < 0)
            return fail(ctx, section, name,
                        "must be error, warning, info or debug");
        cfg->log_level = level;
    } else if (MATCH("log", "commlog_max_bytes")) {
        if (parse_size(value, 4096, SIZE_MAX, &v) != 0)
            return fail(ctx, section, name, "not a size of at least 4K");
        cfg->commlog_max = (size_t)v;
    } else if (MATCH("node", "product") || MATCH("node", "location")) {
        char *dst = strcmp(name, "product") == 0 ? cfg->product : cfg->location;
        if (strlen(value) >= PDS_MEMBER_TEXT)
            return fail(ctx, section, name, "longer than 63 bytes");
        if (pds_find_control(value, strlen(value)) != NULL)
            return fail(ctx, section, name,
                        "holds a control character: use printable text");
        strcpy(dst, value);
    } else if (MATCH("group", "max_machines")) {
        /* The server follows at most 256 clients at once. */
        if (parse_size(value, 1, 257, &v) != 0)
            return fail(ctx, section, name,
                        "not a number in 1..257 (the server and up to 256 "
                        "clients)");
        cfg->max_machines = (uint32_t)v;
    } else if (MATCH("group", "heartbeat_ms")) {
        if (parse_size(value, 10, 600000, &v) != 0)
            return fail(ctx, section, name, "not a number in 10..600000");
        cfg->heartbeat_ms = (uint32_t)v;
    } else if (MATCH("group", "dead_ms")) {
        if (parse_size(value, 30, 3600000, &v) != 0)
            return fail(ctx, section, name, "not a number in 30..3600000");
        cfg->dead_ms = (uint32_t)v;
    } else if (MATCH("replication", "ack_mode")) {
        if (strcmp(value, "auto") == 0)
            cfg->ack_mode = PDS_ACK_AUTO;
        else if (strcmp(value, "local") == 0)
            cfg->ack_mode = PDS_ACK_LOCAL;
        else if (strcmp(value, "standby") == 0)
            cfg->ack_mode = PDS_ACK_STANDBY;
        else if (strcmp(value, "standby-optional") == 0)
            cfg->ack_mode = PDS_ACK_STANDBY_OPTIONAL;
        else
            return fail(ctx, section, name,
                        "must be auto, local, standby or standby-optional");
    } else if (MATCH("replication", "standby_timeout_ms")) {
        if (parse_size(value, 10, 3600000, &v) != 0)
            return fail(ctx, section, name, "not a number in 10..3600000");
        cfg->standby_timeout_ms = (uint32_t)v;
    } else if (MATCH("replication", "max_clock_skew_s")) {
        if (parse_size(value, 1, 86400, &v) != 0)
            return fail(ctx, section, name, "not a number in 1..86400");
        cfg->max_skew_s = (uint32_t)v;
    } else if (MATCH("replication", "outbox_max")) {
        if (parse_size(value, 1, 10000000, &v) != 0)
            return fail(ctx, section, name, "not a number in 1..10000000");
        cfg->outbox_max = (uint32_t)v;
    } else if (MATCH("replication", "catchup_memory")) {
        if (parse_size(value, (uint64_t)1 << 20, (uint64_t)1 << 30, &v) != 0)
            return fail(ctx, section, name, "not a size in 1M..1G");
        cfg->catchup_memory = (size_t)v;
    } else if (MATCH("replication", "outbox_max_bytes")) {
        if (parse_size(value, 4096, SIZE_MAX, &v) != 0)
            return fail(ctx, section, name, "not a size of at least 4K");
        cfg->outbox_max_bytes = (size_t)v;
    } else if (MATCH("group", "reclaim_after_s")) {
        if (parse_size(value, 0, 100u * 365 * 86400, &v) != 0)
            return fail(ctx, section, name, "not a number of seconds");
        cfg->reclaim_after_s = (uint32_t)v;
    } else if (MATCH("group", "retry_max_ms")) {
        if (parse_size(value, 10, 3600000, &v) != 0)
            return fail(ctx, section, name, "not a number in 10..3600000");
        cfg->retry_max_ms = (uint32_t)v;
    } else {
        return fail(ctx, section, name, "unknown setting");
    }
    return 1;
}

int pds_config_load(const char *path, struct pds_config *cfg, char *errmsg)
{
    struct pds_config tmp = *cfg;
    struct load_ctx ctx;
    FILE *f;
    int rv;

    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = &tmp;
    ctx.path = path;
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "config file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    {
        struct stat st;
        if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
            snprintf(errmsg, PDS_ERRMSG_SIZE,
                     "config file %s: not a regular file", path);
            fclose(f);
            return -1;
        }
    }
    ctx.f = f;
    rv = ini_parse_stream(read_line, &ctx, on_setting, &ctx);
    if (ferror(f)) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "config file %s: read error", path);
        fclose(f);
        return -1;
    }
    fclose(f);
    /* The first error in the file: a line too long, a refused setting or
     * a line that is not INI. */
    if (ctx.long_line != 0 && (rv == 0 || ctx.long_line <= rv) &&
        (!ctx.failed || ctx.long_line <= ctx.fail_line)) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "%s line %d: longer than the %d bytes a line may have", path,
                 ctx.long_line, ctx.max_line);
        return -1;
    }
    if (rv != 0 && (!ctx.failed || rv < ctx.fail_line)) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s line %d: not an INI line", path,
                 rv);
        return -1;
    }
    if (ctx.failed) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "%s line %d: %s", path, ctx.fail_line,
                 ctx.why);
        return -1;
    }
    if (tmp.dead_ms <= tmp.heartbeat_ms) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "%s: [group] dead_ms (%u) must be larger than heartbeat_ms "
                 "(%u): a peer is presumed dead after dead_ms without a "
                 "heartbeat (a few heartbeats, 3 or more, is usual)",
                 path, (unsigned)tmp.dead_ms, (unsigned)tmp.heartbeat_ms);
        return -1;
    }
    if (tmp.map_initial > tmp.budget) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "%s: [storage] map_initial (%zu) is larger than "
                 "storage_budget (%zu)",
                 path, tmp.map_initial, tmp.budget);
        return -1;
    }
    *cfg = tmp;
    return 0;
}
