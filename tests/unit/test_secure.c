/*
 * test_secure.c - unit tests of the handshake key schedule, the encrypted
 * streams, join proofs, the node identity file, and the group messages.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peer.h"
#include "secure.h"
#include "test.h"

struct side {
    struct pds_identity id;
    struct pds_handshake hs;
    struct pds_session s;
    uint8_t *hello;
    size_t hello_len;
};

static void make_side(struct side *x, int is_initiator)
{
    struct pds_msg m;

    if (sodium_init() < 0)
        abort();
    memset(x, 0, sizeof(*x)); /* free_side wipes a session never made */
    crypto_kx_keypair(x->id.pk, x->id.sk);
    pds_handshake_init(&x->hs, is_initiator);
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_HELLO;
    m.version = PDS_PROTOCOL_VERSION;
    memcpy(m.pk, x->id.pk, PDS_KEY_BYTES);
    memcpy(m.epk, x->hs.e_pk, PDS_KEY_BYTES);
    m.aead = x->hs.aead;
    if (pds_msg_encode(&m, &x->hello, &x->hello_len) != 0)
        abort();
}

/* x's side of a handshake with peer, told that peer's hello says
 * peer_aead. */
static int finish(struct side *x, struct side *peer, unsigned peer_aead)
{
    return pds_handshake_finish(&x->hs, &x->id, x->hello, x->hello_len,
                                peer->hello, peer->hello_len, peer->id.pk,
                                peer->hs.e_pk, peer_aead, &x->s);
}

/* Run a full handshake between i (initiator) and r; 0 on success. */
static int handshake(struct side *i, struct side *r)
{
    if (finish(i, r, r->hs.aead) != 0 || finish(r, i, i->hs.aead) != 0)
        return -1;
    if (pds_session_rx_start(&i->s, r->s.tx_header) != 0 ||
        pds_session_rx_start(&r->s, i->s.tx_header) != 0)
        return -1;
    return 0;
}

static void free_side(struct side *x)
{
    free(x->hello);
    pds_session_wipe(&x->s);
}

TEST(handshake_both_directions)
{
    struct side a, b;
    uint8_t ct[64 + PDS_STREAM_ABYTES];
    uint8_t pt[64];
    size_t n;

    make_side(&a, 1);
    make_side(&b, 0);
    CHECK_EQ(handshake(&a, &b), 0);
    CHECK(memcmp(a.hs.hash, b.hs.hash, PDS_HASH_BYTES) == 0);
    pds_session_seal(&a.s, (const uint8_t *)"hello server", 12, ct);
    CHECK_EQ(pds_session_open(&b.s, ct, 12 + PDS_STREAM_ABYTES, pt, &n), 0);
    CHECK_EQ(n, 12);
    CHECK(memcmp(pt, "hello server", 12) == 0);
    pds_session_seal(&b.s, (const uint8_t *)"hi client", 9, ct);
    CHECK_EQ(pds_session_open(&a.s, ct, 9 + PDS_STREAM_ABYTES, pt, &n), 0);
    CHECK(memcmp(pt, "hi client", 9) == 0);
    free_side(&a);
    free_side(&b);
}

TEST(modified_replayed_reordered_frames_fail)
{
    struct side a, b;
    uint8_t c1[16 + PDS_STREAM_ABYTES];
    uint8_t c2[16 + PDS_STREAM_ABYTES];
    uint8_t pt[16];
    size_t n;
    size_t len = 16 + PDS_STREAM_ABYTES;

    make_side(&a, 1);
    make_side(&b, 0);
    CHECK_EQ(handshake(&a, &b), 0);
    pds_session_seal(&a.s, (const uint8_t *)"message number 1", 16, c1);
    pds_session_seal(&a.s, (const uint8_t *)"message number 2", 16, c2);
    /* Reordered: the second frame first. */
    CHECK_EQ(pds_session_open(&b.s, c2, len, pt, &n), PDS_EAUTH);
    free_side(&a);
    free_side(&b);

    make_side(&a, 1);
    make_side(&b, 0);
    CHECK_EQ(handshake(&a, &b), 0);
    pds_session_seal(&a.s, (const uint8_t *)"message number 1", 16, c1);
    c1[5] ^= 1; /* modified */
    CHECK_EQ(pds_session_open(&b.s, c1, len, pt, &n), PDS_EAUTH);
    free_side(&a);
    free_side(&b);

    make_side(&a, 1);
    make_side(&b, 0);
    CHECK_EQ(handshake(&a, &b), 0);
    pds_session_seal(&a.s, (const uint8_t *)"message number 1", 16, c1);
    CHECK_EQ(pds_session_open(&b.s, c1, len, pt, &n), 0);
    CHECK_EQ(pds_session_open(&b.s, c1, len, pt, &n), PDS_EAUTH); /* replay */
    CHECK_EQ(pds_session_open(&b.s, c1, 3, pt, &n), PDS_EAUTH);   /* short */
    free_side(&a);
    free_side(&b);
}

TEST(impostor_cannot_derive_keys)
{
    struct side a, b, eve;
    uint8_t ct[16 + PDS_STREAM_ABYTES];
    uint8_t pt[16];
    size_t n;

    make_side(&a, 1);
    make_side(&b, 0);
    make_side(&eve, 0);
    /* Eve answers with b's long-term public key but her own private key:
     * the keys differ, so a's first frame does not open. */
    memcpy(eve.id.pk, b.id.pk, PDS_KEY_BYTES);
    free(eve.hello);
    {
        struct pds_msg m;
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_HELLO;
        m.version = PDS_PROTOCOL_VERSION;
        memcpy(m.pk, b.id.pk, PDS_KEY_BYTES);
        memcpy(m.epk, eve.hs.e_pk, PDS_KEY_BYTES);
        CHECK_EQ(pds_msg_encode(&m, &eve.hello, &eve.hello_len), 0);
    }
    CHECK_EQ(pds_handshake_finish(&a.hs, &a.id, a.hello, a.hello_len, eve.hello,
                                  eve.hello_len, b.id.pk, eve.hs.e_pk, 0, &a.s),
             0);
    CHECK_EQ(pds_handshake_finish(&eve.hs, &eve.id, eve.hello, eve.hello_len,
                                  a.hello, a.hello_len, a.id.pk, a.hs.e_pk,
                                  a.hs.aead, &eve.s),
             0);
    /* Her keys differ: a's stream header does not confirm them, and
     * neither does a frame after it. */
    CHECK_EQ(pds_session_rx_start(&eve.s, a.s.tx_header), PDS_EAUTH);
    CHECK_EQ(pds_session_rx_start(&a.s, eve.s.tx_header), PDS_EAUTH);
    eve.s.has_rx = 1;
    pds_session_seal(&a.s, (const uint8_t *)"for the server!!", 16, ct);
    CHECK_EQ(pds_session_open(&eve.s, ct, sizeof(ct), pt, &n), PDS_EAUTH);
    free_side(&a);
    free_side(&b);
    free_side(&eve);
}

/* Seal count frames from x to y and open them; 0 when all opened. */
static int exchange(struct side *x, struct side *y, int count)
{
    uint8_t ct[32 + PDS_STREAM_ABYTES];
    uint8_t pt[32];
    size_t n;
    int k;

    for (k = 0; k < count; k++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "frame %d", k);
        pds_session_seal(&x->s, (const uint8_t *)msg, sizeof(msg), ct);
        if (pds_session_open(&y->s, ct, sizeof(ct), pt, &n) != 0 ||
            n != sizeof(msg) || memcmp(pt, msg, n) != 0)
            return -1;
    }
    return 0;
}

TEST(cipher_follows_both_hellos)
{
    struct side a, b;

    /* Both say AES: AES-256-GCM; either does not: ChaCha20-Poly1305, on
     * both ends, and the two directions work either way. */
    static const unsigned bits[4][3] = {{PDS_AEAD_AES_HW, PDS_AEAD_AES_HW, 1},
                                        {PDS_AEAD_AES_HW, 0, 0},
                                        {0, PDS_AEAD_AES_HW, 0},
                                        {0, 0, 0}};
    int k;

    for (k = 0; k < 4; k++) {
        make_side(&a, 1);
        make_side(&b, 0);
        a.hs.aead = bits[k][0];
        b.hs.aead = bits[k][1];
        CHECK_EQ(handshake(&a, &b), 0);
        CHECK_EQ(a.s.aes, (int)bits[k][2]);
        CHECK_EQ(b.s.aes, (int)bits[k][2]);
        CHECK_EQ(exchange(&a, &b, 3), 0);
        CHECK_EQ(exchange(&b, &a, 3), 0);
        free_side(&a);
        free_side(&b);
    }

    /* Ends that disagree on the cipher do not get past the header. */
    make_side(&a, 1);
    make_side(&b, 0);
    a.hs.aead = PDS_AEAD_AES_HW;
    b.hs.aead = 0;
    CHECK_EQ(finish(&a, &b, PDS_AEAD_AES_HW), 0);
    CHECK_EQ(finish(&b, &a, PDS_AEAD_AES_HW), 0);
    CHECK_EQ(a.s.aes, 1);
    CHECK_EQ(b.s.aes, 0);
    CHECK_EQ(pds_session_rx_start(&b.s, a.s.tx_header), PDS_EAUTH);
    free_side(&a);
    free_side(&b);

    /* A hello whose cipher bits were changed on the way, even to bits
     * that pick the same cipher: the transcripts differ, so the keys do,
     * and neither header opens. */
    make_side(&a, 1);
    make_side(&b, 0);
    a.hs.aead = b.hs.aead = PDS_AEAD_AES_HW;
    {
        struct pds_msg m;
        char errmsg[PDS_ERRMSG_SIZE];
        uint8_t *forged;
        size_t forged_len;
        CHECK_EQ(pds_msg_decode(a.hello, a.hello_len, &m, errmsg), 0);
        m.aead = PDS_AEAD_AES_HW | 2;
        CHECK_EQ(pds_msg_encode(&m, &forged, &forged_len), 0);
        free(a.hello);
        a.hello = forged; /* what b received */
        a.hello_len = forged_len;
        CHECK_EQ(finish(&b, &a, m.aead), 0);
        CHECK_EQ(b.s.aes, 1);
        m.aead = PDS_AEAD_AES_HW; /* what a sent */
        CHECK_EQ(pds_msg_encode(&m, &forged, &forged_len), 0);
        free(a.hello);
        a.hello = forged;
        a.hello_len = forged_len;
        CHECK_EQ(finish(&a, &b, b.hs.aead), 0);
        CHECK_EQ(a.s.aes, 1);
        pds_msg_free(&m);
    }
    CHECK_EQ(pds_session_rx_start(&b.s, a.s.tx_header), PDS_EAUTH);
    CHECK_EQ(pds_session_rx_start(&a.s, b.s.tx_header), PDS_EAUTH);
    free_side(&a);
    free_side(&b);
}

TEST(rekey_keeps_both_ends_in_step)
{
    struct side a, b;
    uint8_t key0[32];

    make_side(&a, 1);
    make_side(&b, 0);
    CHECK_EQ(handshake(&a, &b), 0);
    a.s.rekey_every = b.s.rekey_every = 4;
    memcpy(key0, a.s.tx.key, sizeof(key0));
    CHECK_EQ(exchange(&a, &b, 21), 0); /* five rekeys on the way */
    CHECK_EQ(exchange(&b, &a, 21), 0);
    CHECK(memcmp(key0, a.s.tx.key, sizeof(key0)) != 0);
    CHECK(memcmp(a.s.tx.key, b.s.rx.key, sizeof(key0)) == 0);
    free_side(&a);
    free_side(&b);

    /* An end that rekeys at another frame cannot read what follows. */
    make_side(&a, 1);
    make_side(&b, 0);
    CHECK_EQ(handshake(&a, &b), 0);
    a.s.rekey_every = 4;
    b.s.rekey_every = 5;
    CHECK_EQ(exchange(&a, &b, 3), 0); /* frames 1..3 (0 was the header) */
    CHECK_EQ(exchange(&a, &b, 1), -1);
    free_side(&a);
    free_side(&b);
}

TEST(join_proofs)
{
    uint8_t h[PDS_HASH_BYTES] = {1, 2, 3};
    uint8_t p1[PDS_PROOF_BYTES], p2[PDS_PROOF_BYTES], p3[PDS_PROOF_BYTES];

    pds_join_proof((const uint8_t *)"secret-secret-16", 16, h, 'c', p1);
    pds_join_proof((const uint8_t *)"secret-secret-16", 16, h, 'c', p2);
    CHECK(memcmp(p1, p2, sizeof(p1)) == 0);
    pds_join_proof((const uint8_t *)"secret-secret-17", 16, h, 'c', p3);
    CHECK(memcmp(p1, p3, sizeof(p1)) != 0);
    pds_join_proof((const uint8_t *)"secret-secret-16", 16, h, 's', p3);
    CHECK(memcmp(p1, p3, sizeof(p1)) != 0); /* sides differ */
    h[0] = 9;
    pds_join_proof((const uint8_t *)"secret-secret-16", 16, h, 'c', p3);
    CHECK(memcmp(p1, p3, sizeof(p1)) != 0); /* bound to the session */
}

TEST(identity_file)
{
    char dir[] = "/tmp/pds-id-XXXXXX";
    char path[64];
    char errmsg[PDS_ERRMSG_SIZE];
    struct pds_identity a, b;
    struct stat st;
    FILE *f;

    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ(pds_identity_load(dir, &a, errmsg), 0);
    snprintf(path, sizeof(path), "%s/node.key", dir);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    CHECK_EQ(pds_identity_load(dir, &b, errmsg), 0);
    CHECK(memcmp(a.pk, b.pk, PDS_KEY_BYTES) == 0);
    f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("short", f);
    fclose(f);
    CHECK_EQ(pds_identity_load(dir, &b, errmsg), PDS_ECORRUPT);
    CHECK(strstr(errmsg, "damaged") != NULL);
    unlink(path);
    rmdir(dir);
}

/* Flip one bit of node.key at offset at. */
static int flip_key_bit(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    int c;

    if (f == NULL || fseek(f, at, SEEK_SET) != 0 || (c = fgetc(f)) == EOF ||
        fseek(f, at, SEEK_SET) != 0 || fputc(c ^ 0x01, f) == EOF) {
        if (f != NULL)
            fclose(f);
        return -1;
    }
    return fclose(f);
}

TEST(identity_file_with_a_changed_bit_is_damaged)
{
    char dir[] = "/tmp/pds-id-XXXXXX";
    char path[64];
    char errmsg[PDS_ERRMSG_SIZE];
    struct pds_identity a, b;

    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ(pds_identity_load(dir, &a, errmsg), 0);
    snprintf(path, sizeof(path), "%s/node.key", dir);
    /* In the private key (bytes 32-63; not one the X25519 clamp drops),
     * then in the public key (bytes 0-31). */
    CHECK_EQ(flip_key_bit(path, 40), 0);
    CHECK_EQ(pds_identity_load(dir, &b, errmsg), PDS_ECORRUPT);
    CHECK(strstr(errmsg, "node.key is damaged (its public key does not "
                         "match its private key): restore it from a backup, "
                         "or remove it to make a new identity") != NULL);
    CHECK_EQ(flip_key_bit(path, 40), 0);
    CHECK_EQ(pds_identity_load(dir, &b, errmsg), 0);
    CHECK(memcmp(a.pk, b.pk, PDS_KEY_BYTES) == 0);
    CHECK(memcmp(a.sk, b.sk, PDS_KEY_BYTES) == 0);
    CHECK_EQ(flip_key_bit(path, 5), 0);
    CHECK_EQ(pds_identity_load(dir, &b, errmsg), PDS_ECORRUPT);
    CHECK(strstr(errmsg, "does not match") != NULL);
    unlink(path);
    rmdir(dir);
}

/* Names a peer gives reach the logs: a control character in them would
 * forge a line there. They are shown as '?' (a node enrolled before names
 * were checked still joins). */
TEST(join_texts_with_control_characters_are_shown_as_question_marks)
{
    static const char *const bad[] = {"mfp\nWARNING forged", "tab\there",
                                      "esc\x1b[2J", "del\x7f", "cr\r"};
    struct pds_msg m, out;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *buf;
    size_t len;
    size_t i;
    int field;

    for (field = 0; field < 4; field++) {
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            memset(&m, 0, sizeof(m));
            m.type = PDS_MSG_JOIN;
            strcpy(m.name, "printer-1");
            strcpy(m.product, "MFP");
            strcpy(m.location, "Floor 2");
            strcpy(m.version_text, "pdsync 0.1.0/p4");
            strcpy(field == 0   ? m.name
                   : field == 1 ? m.product
                   : field == 2 ? m.location
                                : m.version_text,
                   bad[i]);
            CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
            CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
            free(buf);
            {
                const char *t = field == 0   ? out.name
                                : field == 1 ? out.product
                                : field == 2 ? out.location
                                             : out.version_text;
                const char *p;
                CHECK(strlen(t) == strlen(bad[i]));
                for (p = t; *p != '\0'; p++)
                    CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
                CHECK(strchr(t, '?') != NULL);
            }
        }
    }
    /* Printable text, UTF-8 included, is taken as it is. */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_JOIN;
    strcpy(m.name, "Drucker-Büro 2 (Süd)");
    strcpy(m.location, "~ \"Étage\" 3 ~");
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    free(buf);
    CHECK_STR(out.name, "Drucker-Büro 2 (Süd)");
    CHECK_STR(out.location, "~ \"Étage\" 3 ~");
    /* A peer's reason is kept, its control characters shown as '?'. */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_REFUSE;
    m.code = PDS_EPERM;
    strcpy(m.err, "no\n2026-01-01T00:00:00Z WARNING forged\x1b[0m");
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    free(buf);
    CHECK_STR(out.err, "no?2026-01-01T00:00:00Z WARNING forged?[0m");
    m.type = PDS_MSG_NOTICE;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    free(buf);
    CHECK(strchr(out.err, '\n') == NULL && strchr(out.err, 0x1b) == NULL);
    m.type = PDS_MSG_WRITE_ACK;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    free(buf);
    CHECK(strchr(out.err, '\n') == NULL && strchr(out.err, 0x1b) == NULL);
}

TEST(messages_round_trip_and_refuse_garbage)
{
    struct pds_msg m, out;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *buf;
    size_t len;
    size_t cut;

    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_JOIN;
    strcpy(m.name, "printer-1");
    strcpy(m.product, "MFP");
    strcpy(m.version_text, "pdsync 0.1.0/p1");
    m.has_proof = 1;
    memset(m.proof, 7, sizeof(m.proof));
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    CHECK_EQ(out.type, PDS_MSG_JOIN);
    CHECK_STR(out.name, "printer-1");
    CHECK_STR(out.product, "MFP");
    CHECK_EQ(out.has_proof, 1);
    CHECK_EQ(out.proof[31], 7);
    for (cut = 0; cut < len; cut++)
        CHECK_EQ(pds_msg_decode(buf, cut, &out, errmsg), PDS_EPROTO);
    free(buf);
    CHECK_EQ(
        pds_msg_decode((const uint8_t *)"\x81\xa1t\xa3zzz", 7, &out, errmsg),
        PDS_EPROTO);
    CHECK(strstr(errmsg, "no known type") != NULL);
}

/* A field of a hand-built message: an unsigned value. */
struct raw_field {
    const char *key;
    uint64_t value;
};

/*
 * Decode {"t": type, fields..., "b": blob} (no "b" when blob is NULL), a
 * message built by hand as another implementation could send it. Returns
 * what pds_msg_decode() returns.
 */
static int decode_raw(const char *type,
                      const struct raw_field *fields,
                      size_t n_fields,
                      const char *blob,
                      struct pds_msg *out,
                      char *errmsg)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t i;
    int rv;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1 + n_fields + (blob != NULL ? 1 : 0));
    msgpack_pack_str_with_body(&pk, "t", 1);
    msgpack_pack_str_with_body(&pk, type, strlen(type));
    for (i = 0; i < n_fields; i++) {
        msgpack_pack_str_with_body(&pk, fields[i].key, strlen(fields[i].key));
        msgpack_pack_uint64(&pk, fields[i].value);
    }
    if (blob != NULL) {
        msgpack_pack_str_with_body(&pk, "b", 1);
        msgpack_pack_bin_with_body(&pk, blob, strlen(blob));
    }
    rv = pds_msg_decode((const uint8_t *)sb.data, sb.size, out, errmsg);
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

TEST(replication_messages_round_trip)
{
    struct pds_msg m, out;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *buf;
    size_t len, cut;

    /* A client's write carries the version it was made with. */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_WRITE;
    m.rid = 5;
    m.op = PDS_OP_PUT;
    strcpy(m.owner, "alice");
    strcpy(m.item, "ui.language");
    m.blob = (uint8_t *)"de";
    m.blob_len = 2;
    m.hlc = PDS_HLC_MAKE(123456, 7);
    m.node = 0x1122334455667788ull;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    CHECK_EQ(out.hlc, PDS_HLC_MAKE(123456, 7));
    CHECK_EQ(out.node, 0x1122334455667788ull);
    CHECK_EQ(out.blob_len, 2);
    CHECK_EQ(out.is_upload, 0);
    pds_msg_free(&out);
    free(buf);
    /* A first join's upload says so (an optional key). */
    m.is_upload = 1;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    CHECK_EQ(out.is_upload, 1);
    CHECK_EQ(out.is_queued, 0);
    CHECK_EQ(out.hlc, PDS_HLC_MAKE(123456, 7));
    pds_msg_free(&out);
    free(buf);
    /* A write from the outbox says so (an optional key). */
    m.is_upload = 0;
    m.is_queued = 1;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    CHECK_EQ(out.is_queued, 1);
    CHECK_EQ(out.is_upload, 0);
    pds_msg_free(&out);
    free(buf);
    /* Entries: the first index, the sender's last, where its window ends;
     * a sender without the window's end (protocol 1) decodes as 0. */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_ENTRIES;
    m.index = 11;
    m.last_index = 500;
    m.sender_epoch = 7;
    m.window_end = 210;
    m.blob = (uint8_t *)"entries";
    m.blob_len = 7;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    CHECK_EQ(out.type, PDS_MSG_ENTRIES);
    CHECK_EQ(out.index, 11);
    CHECK_EQ(out.last_index, 500);
    CHECK_EQ(out.sender_epoch, 7);
    CHECK_EQ(out.window_end, 210);
    CHECK_EQ(out.blob_len, 7);
    pds_msg_free(&out);
    free(buf);
    {
        /* No "w": the window is the message's last entry. */
        static const struct raw_field f[] = {{"se", 3}, {"i", 11}, {"l", 500}};
        CHECK_EQ(decode_raw("entries", f, 3, "x", &out, errmsg), 0);
        CHECK_EQ(out.window_end, 0);
        CHECK_EQ(out.sender_epoch, 3);
        CHECK(out.clamps == NULL); /* no memos: none */
        pds_msg_free(&out);
    }
    {
        /* No sender's epoch: malformed. */
        static const struct raw_field f[] = {{"i", 4}};
        CHECK_EQ(decode_raw("ack", f, 1, NULL, &out, errmsg), PDS_EPROTO);
        CHECK(strstr(errmsg, "malformed ack message") != NULL);
    }
    /* The role notice: round trip; a flag other than 0 or 1 is refused. */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_ROLE;
    m.is_standby = 1;
    m.sender_epoch = 9;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    CHECK_EQ(out.type, PDS_MSG_ROLE);
    CHECK_EQ(out.is_standby, 1);
    CHECK_EQ(out.sender_epoch, 9);
    pds_msg_free(&out);
    free(buf);
    {
        static const struct raw_field f[] = {{"se", 1}, {"sb", 2}};
        CHECK_EQ(decode_raw("role", f, 2, NULL, &out, errmsg), PDS_EPROTO);
    }
    /* Entries with the memos of restamped ones: round trip; memos that
     * are not whole are refused. */
    {
        struct pds_clamp cl = {
            {PDS_HLC_MAKE(9000, 1), 7}, {PDS_HLC_MAKE(8000, 0), 1}, 3, 12};
        struct pds_clamp back;
        uint8_t wire[PDS_CLAMP_BYTES];
        pds_clamp_encode(&cl, wire);
        memset(&m, 0, sizeof(m));
        m.type = PDS_MSG_ENTRIES;
        m.index = 11;
        m.last_index = 12;
        m.blob = (uint8_t *)"entries";
        m.blob_len = 7;
        m.clamps = wire;
        m.clamps_len = sizeof(wire);
        CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
        CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
        CHECK_EQ(out.clamps_len, PDS_CLAMP_BYTES);
        pds_clamp_decode(out.clamps, &back);
        CHECK(memcmp(&back, &cl, sizeof(cl)) == 0);
        pds_msg_free(&out);
        free(buf);
        m.clamps_len = sizeof(wire) - 1;
        CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
        CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), PDS_EPROTO);
        CHECK(strstr(errmsg, "malformed entries") != NULL);
        free(buf);
    }
    /* A snapshot chunk: position, number, last flag, bytes. */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_SNAPSHOT;
    m.index = 40;
    m.epoch = 2;
    m.rid = 3;
    m.is_last = 1;
    m.blob = (uint8_t *)"chunk";
    m.blob_len = 5;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    CHECK_EQ(out.type, PDS_MSG_SNAPSHOT);
    CHECK_EQ(out.index, 40);
    CHECK_EQ(out.epoch, 2);
    CHECK_EQ(out.rid, 3);
    CHECK_EQ(out.is_last, 1);
    CHECK_EQ(memcmp(out.blob, "chunk", 5), 0);
    pds_msg_free(&out);
    for (cut = 0; cut < len; cut++)
        CHECK_EQ(pds_msg_decode(buf, cut, &out, errmsg), PDS_EPROTO);
    free(buf);
    /* The outcome of a write; one out of range is refused. */
    memset(&m, 0, sizeof(m));
    m.type = PDS_MSG_WRITE_ACK;
    m.outcome = PDS_WRITE_SUPERSEDED;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), 0);
    CHECK_EQ(out.outcome, PDS_WRITE_SUPERSEDED);
    free(buf);
    m.outcome = 9;
    CHECK_EQ(pds_msg_encode(&m, &buf, &len), 0);
    CHECK_EQ(pds_msg_decode(buf, len, &out, errmsg), PDS_EPROTO);
    CHECK(strstr(errmsg, "malformed write-ack") != NULL);
    free(buf);
}

TEST_MAIN(T(handshake_both_directions),
          T(cipher_follows_both_hellos),
          T(rekey_keeps_both_ends_in_step),
          T(modified_replayed_reordered_frames_fail),
          T(impostor_cannot_derive_keys),
          T(join_proofs),
          T(identity_file),
          T(identity_file_with_a_changed_bit_is_damaged),
          T(join_texts_with_control_characters_are_shown_as_question_marks),
          T(messages_round_trip_and_refuse_garbage),
          T(replication_messages_round_trip))
