/*
 * encode.c - the byte layouts of record keys, records and log entries.
 *
 * These are the only definitions of the formats: storage stores the bytes
 * as they are and the network sends log entries as they are stored. Every
 * decoder validates lengths and never trusts its input.
 */
#include <string.h>

#include "pds.h"

void pds_put_u64be(uint8_t *p, uint64_t v)
{
    int i;

    for (i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xffu);
        v >>= 8;
    }
}

uint64_t pds_get_u64be(const uint8_t *p)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void pds_put_u32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t pds_get_u32be(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        p[i] = (uint8_t)(v & 0xffu);
        v >>= 8;
    }
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    int i;

    for (i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

size_t pds_reckey_prefix(enum pds_scope scope,
                         const char *owner,
                         size_t owner_len,
                         uint8_t *buf)
{
    buf[0] = (uint8_t)scope;
    memcpy(buf + 1, owner, owner_len);
    buf[1 + owner_len] = 0;
    return owner_len + 2;
}

size_t pds_reckey_encode(const struct pds_key *key, uint8_t *buf)
{
    size_t n = pds_reckey_prefix(key->scope, key->owner, key->owner_len, buf);

    memcpy(buf + n, key->item, key->item_len);
    return n + key->item_len;
}

int pds_reckey_decode(const uint8_t *buf, size_t len, struct pds_key *key)
{
    const uint8_t *nul;

    if (len < 3 || buf[0] > PDS_SCOPE_GROUP)
        return PDS_ECORRUPT;
    nul = memchr(buf + 1, 0, len - 1);
    if (nul == NULL || nul == buf + 1)
        return PDS_ECORRUPT;
    key->scope = (enum pds_scope)buf[0];
    key->owner = (const char *)(buf + 1);
    key->owner_len = (size_t)(nul - (buf + 1));
    key->item = (const char *)(nul + 1);
    key->item_len = len - key->owner_len - 2;
    return 0;
}

size_t pds_record_size(const struct pds_record *rec)
{
    return PDS_RECORD_HDR + (rec->is_tombstone ? 0 : rec->value_len);
}

/* Record layout: u64 hlc, u64 node, u64 index, u8 flags, value. */
size_t pds_record_encode(const struct pds_record *rec, uint8_t *buf)
{
    put_le(buf, rec->version.hlc, 8);
    put_le(buf + 8, rec->version.node, 8);
    put_le(buf + 16, rec->index, 8);
    buf[24] = rec->is_tombstone ? 1u : 0u;
    if (!rec->is_tombstone && rec->value_len > 0)
        memcpy(buf + PDS_RECORD_HDR, rec->value, rec->value_len);
    return pds_record_size(rec);
}

int pds_record_decode(const uint8_t *buf, size_t len, struct pds_record *rec)
{
    if (len < PDS_RECORD_HDR || buf[24] > 1)
        return PDS_ECORRUPT;
    if (buf[24] == 1 && len != PDS_RECORD_HDR)
        return PDS_ECORRUPT;
    if (len - PDS_RECORD_HDR > PDS_VALUE_MAX)
        return PDS_ECORRUPT;
    rec->version.hlc = get_le(buf, 8);
    rec->version.node = get_le(buf + 8, 8);
    rec->index = get_le(buf + 16, 8);
    rec->is_tombstone = buf[24];
    rec->value = buf + PDS_RECORD_HDR;
    rec->value_len = (uint32_t)(len - PDS_RECORD_HDR);
    return 0;
}

void pds_clamp_encode(const struct pds_clamp *clamp, uint8_t *buf)
{
    pds_put_u64be(buf, clamp->origin.node);
    pds_put_u64be(buf + 8, clamp->origin.hlc);
    pds_put_u64be(buf + 16, clamp->version.hlc);
    pds_put_u64be(buf + 24, clamp->version.node);
    pds_put_u64be(buf + 32, clamp->epoch);
    pds_put_u64be(buf + 40, clamp->index);
}

void pds_clamp_decode(const uint8_t *buf, struct pds_clamp *clamp)
{
    clamp->origin.node = pds_get_u64be(buf);
    clamp->origin.hlc = pds_get_u64be(buf + 8);
    clamp->version.hlc = pds_get_u64be(buf + 16);
    clamp->version.node = pds_get_u64be(buf + 24);
    clamp->epoch = pds_get_u64be(buf + 32);
    clamp->index = pds_get_u64be(buf + 40);
}

size_t pds_entry_size(const struct pds_entry *entry)
{
    return PDS_ENTRY_HDR + entry->key.owner_len + entry->key.item_len +
           entry->value_len;
}

size_t pds_entry_encode(const struct pds_entry *entry, uint8_t *buf)
{
    uint8_t *p = buf + PDS_ENTRY_HDR;

    buf[0] = PDS_ENTRY_FORMAT;
    buf[1] = (uint8_t)entry->op;
    buf[2] = (uint8_t)entry->key.scope;
    buf[3] = 0;
    put_le(buf + 4, entry->epoch, 8);
    put_le(buf + 12, entry->index, 8);
    put_le(buf + 20, entry->version.hlc, 8);
    put_le(buf + 28, entry->version.node, 8);
    put_le(buf + 36, entry->key.owner_len, 2);
    put_le(buf + 38, entry->key.item_len, 2);
    put_le(buf + 40, entry->value_len, 4);
    memcpy(p, entry->key.owner, entry->key.owner_len);
    p += entry->key.owner_len;
    if (entry->key.item_len > 0)
        memcpy(p, entry->key.item, entry->key.item_len);
    p += entry->key.item_len;
    if (entry->value_len > 0)
        memcpy(p, entry->value, entry->value_len);
    return pds_entry_size(entry);
}

int pds_entry_decode(const uint8_t *buf, size_t len, struct pds_entry *entry)
{
    struct pds_entry e;
    uint64_t owner_len, item_len, value_len;

    if (len < PDS_ENTRY_HDR || buf[0] != PDS_ENTRY_FORMAT || buf[3] != 0)
        return PDS_ECORRUPT;
    if (buf[1] < PDS_OP_PUT || buf[1] > PDS_OP_SCOPE ||
        buf[2] > PDS_SCOPE_GROUP)
        return PDS_ECORRUPT;
    owner_len = get_le(buf + 36, 2);
    item_len = get_le(buf + 38, 2);
    value_len = get_le(buf + 40, 4);
    if (owner_len == 0 || owner_len > PDS_OWNER_MAX ||
        item_len > PDS_ITEM_MAX || value_len > PDS_VALUE_MAX)
        return PDS_ECORRUPT;
    if (len != PDS_ENTRY_HDR + owner_len + item_len + value_len)
        return PDS_ECORRUPT;
    if (buf[1] == PDS_OP_SCOPE && (value_len != 1 || buf[len - 1] > 1))
        return PDS_ECORRUPT;
    if (buf[1] != PDS_OP_PUT && buf[1] != PDS_OP_SCOPE && value_len != 0)
        return PDS_ECORRUPT;
    if (buf[1] != PDS_OP_DEL_OWNER && item_len == 0)
        return PDS_ECORRUPT;
    e.op = (enum pds_op)buf[1];
    e.key.scope = (enum pds_scope)buf[2];
    e.epoch = get_le(buf + 4, 8);
    e.index = get_le(buf + 12, 8);
    e.version.hlc = get_le(buf + 20, 8);
    e.version.node = get_le(buf + 28, 8);
    e.key.owner = (const char *)(buf + PDS_ENTRY_HDR);
    e.key.owner_len = (size_t)owner_len;
    e.key.item = e.key.owner + owner_len;
    e.key.item_len = (size_t)item_len;
    e.value = (const uint8_t *)e.key.item + item_len;
    e.value_len = (uint32_t)value_len;
    *entry = e;
    return 0;
}
