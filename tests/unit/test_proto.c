/*
 * test_proto.c - unit tests of the local API's msgpack messages: round
 * trips, and every kind of malformed request refused with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "net.h"
#include "test.h"

TEST(request_round_trip)
{
    struct pds_request req;
    struct pds_request out;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *frame;
    size_t len;

    memset(&req, 0, sizeof(req));
    req.id = 77;
    req.op = PDS_REQ_PUT;
    req.scope = PDS_SCOPE_GROUP;
    req.owner = "sales";
    req.owner_len = 5;
    req.item = "buttons.shared";
    req.item_len = 14;
    req.value = (const uint8_t *)"\x00\x01\x02";
    req.value_len = 3;
    CHECK_EQ(pds_request_encode(&req, &frame, &len), 0);
    CHECK_EQ((size_t)((frame[0] << 24) | (frame[1] << 16) | (frame[2] << 8) |
                      frame[3]),
             len - 4);
    CHECK_EQ(pds_request_decode(frame + 4, len - 4, &out, errmsg), 0);
    CHECK_EQ(out.id, 77);
    CHECK_EQ(out.op, PDS_REQ_PUT);
    CHECK_EQ(out.scope, PDS_SCOPE_GROUP);
    CHECK_EQ(out.owner_len, 5);
    CHECK(memcmp(out.owner, "sales", 5) == 0);
    CHECK_EQ(out.item_len, 14);
    CHECK_EQ(out.value_len, 3);
    CHECK(memcmp(out.value, "\x00\x01\x02", 3) == 0);
    pds_request_free(&out);
    free(frame);
}

/* Pack a map of string keys to the given objects with msgpack-c. */
static void
decode_expect_error(const msgpack_sbuffer *sb, const char *why, int *failed)
{
    struct pds_request out;
    char errmsg[PDS_ERRMSG_SIZE] = "";
    int rv =
        pds_request_decode((const uint8_t *)sb->data, sb->size, &out, errmsg);

    if (rv != PDS_EPROTO || strstr(errmsg, why) == NULL) {
        fprintf(stderr, "expected EPROTO with \"%s\", got %d \"%s\"\n", why, rv,
                errmsg);
        *failed = 1;
    }
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

TEST(malformed_requests)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int bad = 0;

    /* Not msgpack at all. */
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "\xc1\xc1\xc1", 3);
    decode_expect_error(&sb, "not valid msgpack", &bad);
    msgpack_sbuffer_clear(&sb);

    /* Truncated map. */
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "id");
    decode_expect_error(&sb, "not valid msgpack", &bad);
    msgpack_sbuffer_clear(&sb);

    /* Not a map. */
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int(&pk, 1);
    decode_expect_error(&sb, "not a map", &bad);
    msgpack_sbuffer_clear(&sb);

    /* No id. */
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "op");
    pack_str(&pk, "get");
    decode_expect_error(&sb, "\"id\"", &bad);
    msgpack_sbuffer_clear(&sb);

    /* Unknown op. */
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, 1);
    pack_str(&pk, "op");
    pack_str(&pk, "format-disk");
    decode_expect_error(&sb, "unknown", &bad);
    msgpack_sbuffer_clear(&sb);

    /* get without owner. */
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, 1);
    pack_str(&pk, "op");
    pack_str(&pk, "get");
    decode_expect_error(&sb, "owner", &bad);
    msgpack_sbuffer_clear(&sb);

    /* put with a string where binary is expected. */
    msgpack_pack_map(&pk, 6);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, 1);
    pack_str(&pk, "op");
    pack_str(&pk, "put");
    pack_str(&pk, "scope");
    pack_str(&pk, "user");
    pack_str(&pk, "owner");
    pack_str(&pk, "alice");
    pack_str(&pk, "item");
    pack_str(&pk, "x");
    pack_str(&pk, "value");
    msgpack_pack_int(&pk, -5);
    decode_expect_error(&sb, "value", &bad);
    msgpack_sbuffer_clear(&sb);

    /* Unknown scope. */
    msgpack_pack_map(&pk, 5);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, 1);
    pack_str(&pk, "op");
    pack_str(&pk, "get");
    pack_str(&pk, "scope");
    pack_str(&pk, "planet");
    pack_str(&pk, "owner");
    pack_str(&pk, "alice");
    pack_str(&pk, "item");
    pack_str(&pk, "x");
    decode_expect_error(&sb, "scope", &bad);
    msgpack_sbuffer_clear(&sb);

    /* A newer protocol version. */
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, 1);
    pack_str(&pk, "op");
    pack_str(&pk, "status");
    pack_str(&pk, "v");
    msgpack_pack_uint64(&pk, 99);
    decode_expect_error(&sb, "upgrade", &bad);
    msgpack_sbuffer_clear(&sb);

    /* Trailing bytes after a valid request. */
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, 1);
    pack_str(&pk, "op");
    pack_str(&pk, "status");
    msgpack_pack_nil(&pk);
    decode_expect_error(&sb, "trailing", &bad);
    msgpack_sbuffer_destroy(&sb);
    CHECK(!bad);
}

TEST(truncations_never_crash)
{
    struct pds_request req;
    struct pds_request out;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *frame;
    size_t len;
    size_t cut;

    memset(&req, 0, sizeof(req));
    req.id = 1;
    req.op = PDS_REQ_PUT;
    req.owner = "alice";
    req.owner_len = 5;
    req.item = "ui.language";
    req.item_len = 11;
    req.value = (const uint8_t *)"en";
    req.value_len = 2;
    CHECK_EQ(pds_request_encode(&req, &frame, &len), 0);
    for (cut = 0; cut < len - 4; cut++)
        CHECK_EQ(pds_request_decode(frame + 4, cut, &out, errmsg), PDS_EPROTO);
    free(frame);
}

TEST(reply_frames)
{
    struct pds_reply_buf *rb = pds_reply_new(5, PDS_ENOTFOUND, "no such");
    struct pds_version v = {1, 2};
    msgpack_unpacked up;
    uint8_t *frame;
    size_t len;
    size_t off = 0;

    CHECK(rb != NULL);
    CHECK_EQ(pds_reply_take(rb, &frame, &len), 0);
    msgpack_unpacked_init(&up);
    CHECK_EQ(msgpack_unpack_next(&up, (const char *)frame + 4, len - 4, &off),
             MSGPACK_UNPACK_SUCCESS);
    CHECK_EQ(up.data.type, MSGPACK_OBJECT_MAP);
    msgpack_unpacked_destroy(&up);
    free(frame);

    rb = pds_reply_new(6, 0, NULL);
    CHECK(rb != NULL);
    {
        struct pds_write_result wr;
        memset(&wr, 0, sizeof(wr));
        wr.epoch = 1;
        wr.index = 9;
        wr.version = v;
        CHECK_EQ(pds_reply_write(rb, &wr), 0);
    }
    CHECK_EQ(pds_reply_take(rb, &frame, &len), 0);
    CHECK(len > 4);
    free(frame);
}

TEST_MAIN(T(request_round_trip),
          T(malformed_requests),
          T(truncations_never_crash),
          T(reply_frames))
