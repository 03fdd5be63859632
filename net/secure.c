/*
 * secure.c - identity, handshake key schedule and encrypted streams.
 * Every construction is libsodium's; this file only composes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secure.h"

#define KEY_FILE "node.key"

int pds_identity_load(const char *dir, struct pds_identity *id, char *errmsg)
{
    char path[1024];
    uint8_t buf[2 * PDS_KEY_BYTES + 1];
    struct stat st;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, KEY_FILE);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        struct pds_identity fresh;
        crypto_kx_keypair(fresh.pk, fresh.sk);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, fresh.pk, PDS_KEY_BYTES) != PDS_KEY_BYTES ||
            write(fd, fresh.sk, PDS_KEY_BYTES) != PDS_KEY_BYTES ||
            fsync(fd) != 0) {
            snprintf(errmsg, PDS_ERRMSG_SIZE, "create %s: %s", path,
                     strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(path);
            }
            sodium_memzero(&fresh, sizeof(fresh));
            return PDS_EIO;
        }
        close(fd);
        *id = fresh;
        sodium_memzero(&fresh, sizeof(fresh));
        return 0;
    }
    if (fd < 0) {
        snprintf(errmsg, PDS_ERRMSG_SIZE, "open %s: %s", path, strerror(errno));
        return PDS_EIO;
    }
    if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
        close(fd);
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "%s is readable by others (mode %03o): the node's private "
                 "key must be mode 0600; fix it with chmod 600",
                 path, (unsigned)(st.st_mode & 0777));
        return PDS_EPERM;
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n != 2 * PDS_KEY_BYTES) {
        sodium_memzero(buf, sizeof(buf));
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "%s is damaged (%zd bytes, expected %d): restore it from a "
                 "backup (the node's identity cannot be recreated)",
                 path, n, 2 * PDS_KEY_BYTES);
        return PDS_ECORRUPT;
    }
    memcpy(id->pk, buf, PDS_KEY_BYTES);
    memcpy(id->sk, buf + PDS_KEY_BYTES, PDS_KEY_BYTES);
    sodium_memzero(buf, sizeof(buf));
    return 0;
}

void pds_handshake_init(struct pds_handshake *hs, int is_initiator)
{
    memset(hs, 0, sizeof(*hs));
    hs->is_initiator = is_initiator;
    crypto_kx_keypair(hs->e_pk, hs->e_sk);
}

int pds_handshake_finish(struct pds_handshake *hs,
                         const struct pds_identity *id,
                         const uint8_t *my_hello,
                         size_t my_len,
                         const uint8_t *peer_hello,
                         size_t peer_len,
                         const uint8_t peer_pk[PDS_KEY_BYTES],
                         const uint8_t peer_epk[PDS_KEY_BYTES],
                         struct pds_session *s)
{
    static const char label[] = "pdsync-hs-1";
    crypto_generichash_state st;
    uint8_t ee[crypto_scalarmult_BYTES];
    uint8_t es[crypto_scalarmult_BYTES]; /* initiator e, responder S */
    uint8_t se[crypto_scalarmult_BYTES]; /* initiator S, responder e */
    uint8_t k[64];
    int rv = 0;

    /* Transcript: initiator's hello first. */
    crypto_generichash_init(&st, NULL, 0, PDS_HASH_BYTES);
    if (hs->is_initiator) {
        crypto_generichash_update(&st, my_hello, my_len);
        crypto_generichash_update(&st, peer_hello, peer_len);
    } else {
        crypto_generichash_update(&st, peer_hello, peer_len);
        crypto_generichash_update(&st, my_hello, my_len);
    }
    crypto_generichash_final(&st, hs->hash, PDS_HASH_BYTES);

    if (crypto_scalarmult(ee, hs->e_sk, peer_epk) != 0)
        rv = PDS_EAUTH;
    if (hs->is_initiator) {
        if (crypto_scalarmult(es, hs->e_sk, peer_pk) != 0 ||
            crypto_scalarmult(se, id->sk, peer_epk) != 0)
            rv = PDS_EAUTH;
    } else {
        if (crypto_scalarmult(es, id->sk, peer_epk) != 0 ||
            crypto_scalarmult(se, hs->e_sk, peer_pk) != 0)
            rv = PDS_EAUTH;
    }
    if (rv == 0) {
        crypto_generichash_init(&st, NULL, 0, sizeof(k));
        crypto_generichash_update(&st, (const uint8_t *)label,
                                  sizeof(label) - 1);
        crypto_generichash_update(&st, hs->hash, PDS_HASH_BYTES);
        crypto_generichash_update(&st, ee, sizeof(ee));
        crypto_generichash_update(&st, es, sizeof(es));
        crypto_generichash_update(&st, se, sizeof(se));
        crypto_generichash_final(&st, k, sizeof(k));
        memset(s, 0, sizeof(*s));
        memcpy(s->tx_key, hs->is_initiator ? k : k + 32, 32);
        memcpy(s->rx_key, hs->is_initiator ? k + 32 : k, 32);
        crypto_secretstream_xchacha20poly1305_init_push(&s->tx, s->tx_header,
                                                        s->tx_key);
    }
    sodium_memzero(ee, sizeof(ee));
    sodium_memzero(es, sizeof(es));
    sodium_memzero(se, sizeof(se));
    sodium_memzero(k, sizeof(k));
    sodium_memzero(hs->e_sk, sizeof(hs->e_sk));
    sodium_memzero(&st, sizeof(st));
    return rv;
}

int pds_session_rx_start(struct pds_session *s, const uint8_t *hdr)
{
    if (crypto_secretstream_xchacha20poly1305_init_pull(&s->rx, hdr,
                                                        s->rx_key) != 0)
        return PDS_EAUTH;
    s->has_rx = 1;
    return 0;
}

void pds_session_seal(struct pds_session *s,
                      const uint8_t *in,
                      size_t len,
                      uint8_t *out)
{
    crypto_secretstream_xchacha20poly1305_push(
        &s->tx, out, NULL, in, len, NULL, 0,
        crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
}

int pds_session_open(struct pds_session *s,
                     const uint8_t *in,
                     size_t len,
                     uint8_t *out,
                     size_t *out_len)
{
    unsigned long long n;
    unsigned char tag;

    if (!s->has_rx || len < PDS_STREAM_ABYTES)
        return PDS_EAUTH;
    if (crypto_secretstream_xchacha20poly1305_pull(&s->rx, out, &n, &tag, in,
                                                   len, NULL, 0) != 0 ||
        tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
        return PDS_EAUTH;
    *out_len = (size_t)n;
    return 0;
}

void pds_session_wipe(struct pds_session *s)
{
    sodium_memzero(s, sizeof(*s));
}

void pds_join_proof(const uint8_t *secret,
                    size_t secret_len,
                    const uint8_t hash[PDS_HASH_BYTES],
                    char side,
                    uint8_t out[PDS_PROOF_BYTES])
{
    crypto_generichash_state st;
    uint8_t key[crypto_generichash_KEYBYTES];
    uint8_t s = (uint8_t)side;

    /* The secret is hashed to a key of the right size first. */
    crypto_generichash(key, sizeof(key), secret, secret_len, NULL, 0);
    crypto_generichash_init(&st, key, sizeof(key), PDS_PROOF_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)"pdsync-join-1", 13);
    crypto_generichash_update(&st, hash, PDS_HASH_BYTES);
    crypto_generichash_update(&st, &s, 1);
    crypto_generichash_final(&st, out, PDS_PROOF_BYTES);
    sodium_memzero(key, sizeof(key));
    sodium_memzero(&st, sizeof(st));
}
