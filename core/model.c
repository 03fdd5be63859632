/*
 * model.c - keys, versions, limits and the hybrid logical clock.
 */
#include <stdio.h>
#include <string.h>

#include "pds.h"

int pds_version_cmp(const struct pds_version *a, const struct pds_version *b)
{
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    if (a->node != b->node)
        return a->node < b->node ? -1 : 1;
    return 0;
}

void pds_limits_default(struct pds_limits *limits)
{
    memset(limits, 0, sizeof(*limits));
    limits->max_users = 1000;
    limits->user_policy = PDS_USER_POLICY_REFUSE;
    limits->max_value = 1024u * 1024u;
    limits->max_owner = 64;
    limits->max_item = 128;
    strcpy(limits->owner_chars, "._-@");
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

int pds_key_same_owner(const struct pds_key *a, const struct pds_key *b)
{
    return a->scope == b->scope && a->owner_len == b->owner_len &&
           memcmp(a->owner, b->owner, a->owner_len) == 0;
}

int pds_entry_covers(const struct pds_entry *e, const struct pds_key *key)
{
    if (!pds_key_same_owner(&e->key, key))
        return 0;
    return e->op == PDS_OP_DEL_OWNER ||
           (e->key.item_len == key->item_len &&
            memcmp(e->key.item, key->item, key->item_len) == 0);
}

int pds_value_validate(const struct pds_limits *limits,
                       uint64_t value_len,
                       char *errmsg)
{
    if (value_len <= limits->max_value)
        return 0;
    snprintf(errmsg, PDS_ERRMSG_SIZE,
             "value is %llu bytes; the limit is %u bytes (setting "
             "max_value_size); nothing was written",
             (unsigned long long)value_len, (unsigned)limits->max_value);
    return PDS_ETOOBIG;
}

const char *pds_find_control(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return s + i;
    }
    return NULL;
}

void pds_replace_controls(char *s)
{
    char *p;

    while ((p = (char *)(uintptr_t)pds_find_control(s, strlen(s))) != NULL)
        *p = '?';
}

int pds_owner_validate(const struct pds_limits *limits,
                       const char *owner,
                       size_t owner_len,
                       char *errmsg)
{
    struct pds_key k = {PDS_SCOPE_USER, owner, owner_len, NULL, 0};
    const struct pds_key *key = &k;
    size_t i;

    if (key->owner == NULL || key->owner_len == 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "owner name is empty");
        return PDS_EBADNAME;
    }
    if (key->owner_len > limits->max_owner || key->owner_len > PDS_OWNER_MAX) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "owner name is %zu bytes long; the limit is %u "
                 "(setting max_owner_len)",
                 key->owner_len, (unsigned)limits->max_owner);
        return PDS_EBADNAME;
    }
    for (i = 0; i < key->owner_len; i++) {
        char c = key->owner[i];
        if (is_alnum(c))
            continue;
        if (c != '\0' && strchr(limits->owner_chars, c) != NULL && i > 0)
            continue;
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "owner name has character 0x%02x at offset %zu; allowed "
                 "are letters, digits and \"%s\" (not first) "
                 "(setting owner_chars)",
                 (unsigned)(unsigned char)c, i, limits->owner_chars);
        return PDS_EBADNAME;
    }
    return 0;
}

static int validate_item(const struct pds_limits *limits,
                         const struct pds_key *key,
                         char *errmsg)
{
    size_t i;
    size_t seg = 0;

    if (key->item == NULL || key->item_len == 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "item name is empty");
        return PDS_EBADNAME;
    }
    if (key->item_len > limits->max_item || key->item_len > PDS_ITEM_MAX) {
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "item name is %zu bytes long; the limit is %u "
                 "(setting max_item_len)",
                 key->item_len, (unsigned)limits->max_item);
        return PDS_EBADNAME;
    }
    for (i = 0; i < key->item_len; i++) {
        char c = key->item[i];
        if (c == '.') {
            if (seg == 0)
                goto empty_segment;
            seg = 0;
            continue;
        }
        if (is_alnum(c) || c == '_' || c == '-') {
            seg++;
            continue;
        }
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "item name has character 0x%02x at offset %zu; item names "
                 "are dot-separated words of letters, digits, '_' and '-'",
                 (unsigned)(unsigned char)c, i);
        return PDS_EBADNAME;
    }
    if (seg == 0)
        goto empty_segment;
    return 0;

empty_segment:
    snprintf(errmsg, PDS_ERRMSG_SIZE,
             "item name \"%.*s\" has an empty segment (a leading, trailing "
             "or double '.')",
             (int)key->item_len, key->item);
    return PDS_EBADNAME;
}

int pds_key_validate(const struct pds_limits *limits,
                     const struct pds_key *key,
                     char *errmsg)
{
    int rv;

    if (key->scope != PDS_SCOPE_USER && key->scope != PDS_SCOPE_GROUP) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "unknown scope %d", (int)key->scope);
        return PDS_EINVAL;
    }
    rv = pds_owner_validate(limits, key->owner, key->owner_len, errmsg);
    if (rv != 0)
        return rv;
    return validate_item(limits, key, errmsg);
}

pds_hlc pds_hlc_next(pds_hlc *last, pds_time wall_ms)
{
    pds_hlc wall = PDS_HLC_MAKE(wall_ms & ((UINT64_C(1) << 48) - 1), 0u);
    pds_hlc next;

    if (wall > *last)
        next = wall;
    else
        next = *last + 1; /* A logical overflow carries into the ms. */
    *last = next;
    return next;
}

void pds_hlc_observe(pds_hlc *last, pds_hlc remote)
{
    if (remote > *last)
        *last = remote;
}
