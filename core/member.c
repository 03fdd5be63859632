/*
 * member.c - the byte layout of a member row (defined once) and member
 * ids.
 */
#include <string.h>

#include "pds.h"

uint64_t pds_member_id(const uint8_t pk[PDS_KEY_BYTES])
{
    return pds_get_u64be(pk);
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t max)
{
    size_t n = strnlen(s, max - 1);

    *p++ = (uint8_t)n;
    memcpy(p, s, n);
    return p + n;
}

static const uint8_t *
get_str(const uint8_t *p, const uint8_t *end, char *s, size_t max)
{
    size_t n;

    if (p >= end)
        return NULL;
    n = *p++;
    if (n >= max || (size_t)(end - p) < n || memchr(p, 0, n) != NULL)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return p + n;
}

/* Layout: pk, u8 state, u64be first_enrolled, u64be last_seen, then name,
 * product, location, address, version and last_error as u8 length +
 * bytes, then u64be position (absent in rows written before it: 0). */
size_t pds_member_encode(const struct pds_member *m, uint8_t *buf)
{
    uint8_t *p = buf;

    memcpy(p, m->pk, PDS_KEY_BYTES);
    p += PDS_KEY_BYTES;
    *p++ = (uint8_t)m->state;
    pds_put_u64be(p, m->first_enrolled);
    pds_put_u64be(p + 8, m->last_seen);
    p += 16;
    p = put_str(p, m->name, PDS_MEMBER_TEXT);
    p = put_str(p, m->product, PDS_MEMBER_TEXT);
    p = put_str(p, m->location, PDS_MEMBER_TEXT);
    p = put_str(p, m->address, PDS_MEMBER_TEXT);
    p = put_str(p, m->version, PDS_MEMBER_TEXT);
    p = put_str(p, m->last_error, PDS_MEMBER_ERROR);
    pds_put_u64be(p, m->position);
    return (size_t)(p - buf) + 8;
}

int pds_member_decode(const uint8_t *buf, size_t len, struct pds_member *m)
{
    const uint8_t *end = buf + len;
    const uint8_t *p = buf;
    struct pds_member out;

    memset(&out, 0, sizeof(out));
    if (len < PDS_KEY_BYTES + 17)
        return PDS_ECORRUPT;
    memcpy(out.pk, p, PDS_KEY_BYTES);
    p += PDS_KEY_BYTES;
    if (*p != PDS_MEMBER_ENROLLED && *p != PDS_MEMBER_STOPPED)
        return PDS_ECORRUPT;
    out.state = (enum pds_member_state) * p++;
    out.first_enrolled = pds_get_u64be(p);
    out.last_seen = pds_get_u64be(p + 8);
    p += 16;
    if ((p = get_str(p, end, out.name, PDS_MEMBER_TEXT)) == NULL ||
        (p = get_str(p, end, out.product, PDS_MEMBER_TEXT)) == NULL ||
        (p = get_str(p, end, out.location, PDS_MEMBER_TEXT)) == NULL ||
        (p = get_str(p, end, out.address, PDS_MEMBER_TEXT)) == NULL ||
        (p = get_str(p, end, out.version, PDS_MEMBER_TEXT)) == NULL ||
        (p = get_str(p, end, out.last_error, PDS_MEMBER_ERROR)) == NULL)
        return PDS_ECORRUPT;
    if (end - p == 8)
        out.position = pds_get_u64be(p);
    else if (p != end)
        return PDS_ECORRUPT;
    out.id = pds_member_id(out.pk);
    *m = out;
    return 0;
}
