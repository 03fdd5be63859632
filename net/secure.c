/*
 * secure.c - identity, handshake key schedule and encrypted streams.
 * The handshake's constructions are libsodium's, the stream's AEADs are
 * OpenSSL's (EVP); this file only composes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "secure.h"

#define KEY_FILE "node.key"

static const uint8_t stream_label[PDS_STREAM_LABEL] = "pdsync-stream-3";

unsigned pds_aead_local(void)
{
    /* Debug knob for the tests: act as a CPU without AES instructions. */
    if (getenv("PDSYNC_DEBUG_NO_AES") != NULL)
        return 0;
#if defined(__aarch64__) && defined(__linux__)
    {
        unsigned long hw = getauxval(AT_HWCAP);
        return (hw & HWCAP_AES) && (hw & HWCAP_PMULL) ? PDS_AEAD_AES_HW : 0;
    }
#else
    /* libsodium checks AES-NI and PCLMUL at sodium_init(); OpenSSL uses
     * the same instructions unless told not to (OPENSSL_ia32cap), which
     * would make its AES table-based software. */
    return crypto_aead_aes256gcm_is_available() ? PDS_AEAD_AES_HW : 0;
#endif
}

int pds_identity_load(const char *dir, struct pds_identity *id, char *errmsg)
{
    char path[1024];
    uint8_t buf[2 * PDS_KEY_BYTES + 1];
    uint8_t derived[crypto_scalarmult_BYTES];
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
    /* The public key is the private key's (crypto_kx_keypair): a changed
     * bit in either would otherwise show only as every handshake failing
     * on both ends, which looks like the network. */
    if (crypto_scalarmult_base(derived, buf + PDS_KEY_BYTES) != 0 ||
        sodium_memcmp(derived, buf, PDS_KEY_BYTES) != 0) {
        sodium_memzero(buf, sizeof(buf));
        snprintf(errmsg, PDS_ERRMSG_SIZE,
                 "%s is damaged (its public key does not match its private "
                 "key): restore it from a backup, or remove it to make a new "
                 "identity (the node must then be enrolled again)",
                 path);
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
    hs->aead = pds_aead_local();
    crypto_kx_keypair(hs->e_pk, hs->e_sk);
}

/* Make a direction's cipher context, keyed; the nonce comes per frame. */
static int stream_init(struct pds_stream *st, int aes, int encrypt)
{
    const EVP_CIPHER *c = aes ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();

    st->ctx = EVP_CIPHER_CTX_new();
    if (st->ctx == NULL)
        return PDS_ENOMEM;
    if (EVP_CipherInit_ex(st->ctx, c, NULL, st->key, NULL, encrypt) != 1)
        return PDS_ENOMEM;
    return 0;
}

int pds_handshake_finish(struct pds_handshake *hs,
                         const struct pds_identity *id,
                         const uint8_t *my_hello,
                         size_t my_len,
                         const uint8_t *peer_hello,
                         size_t peer_len,
                         const uint8_t peer_pk[PDS_KEY_BYTES],
                         const uint8_t peer_epk[PDS_KEY_BYTES],
                         unsigned peer_aead,
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
        s->rekey_every = PDS_REKEY_FRAMES;
        s->aes = (hs->aead & peer_aead & PDS_AEAD_AES_HW) != 0;
        memcpy(s->tx.key, hs->is_initiator ? k : k + 32, 32);
        memcpy(s->rx.key, hs->is_initiator ? k + 32 : k, 32);
        if (stream_init(&s->tx, s->aes, 1) != 0 ||
            stream_init(&s->rx, s->aes, 0) != 0) {
            pds_session_wipe(s);
            rv = PDS_ENOMEM;
        } else {
            pds_session_seal(s, stream_label, sizeof(stream_label),
                             s->tx_header);
        }
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
    uint8_t label[PDS_STREAM_LABEL];
    size_t n;

    s->has_rx = 1;
    if (pds_session_open(s, hdr, PDS_STREAM_HEADER, label, &n) != 0 ||
        n != sizeof(label) ||
        sodium_memcmp(label, stream_label, sizeof(label)) != 0) {
        s->has_rx = 0;
        return PDS_EAUTH;
    }
    return 0;
}

/* The nonce of frame seq: four zero bytes, then seq big-endian. A
 * direction's key is its own and seq never repeats under it. */
static void make_nonce(uint64_t seq, uint8_t nonce[12])
{
    memset(nonce, 0, 4);
    pds_put_u32be(nonce + 4, (uint32_t)(seq >> 32));
    pds_put_u32be(nonce + 8, (uint32_t)seq);
}

/* After every rekey_every frames the key becomes a keyed hash of itself,
 * at the same frame on both ends. */
static int stream_next(struct pds_stream *st, uint64_t every)
{
    st->seq++;
    if (every < 2 || st->seq % every != 0)
        return 0;
    crypto_generichash(st->key, sizeof(st->key),
                       (const uint8_t *)"pdsync-rekey-1", 14, st->key,
                       sizeof(st->key));
    /* -1: the context keeps its direction. */
    if (EVP_CipherInit_ex(st->ctx, NULL, NULL, st->key, NULL, -1) != 1)
        st->failed = 1; /* the peer has the new key: nothing more opens */
    return st->failed ? PDS_EAUTH : 0;
}

void pds_session_seal(struct pds_session *s,
                      const uint8_t *in,
                      size_t len,
                      uint8_t *out)
{
    uint8_t nonce[12];
    int n1 = 0, n2 = 0;

    make_nonce(s->tx.seq, nonce);
    /* Frames are bounded far below INT_MAX (max_frame); a failure here is
     * a broken library, and the tag left unset makes the peer refuse the
     * frame rather than take it. */
    if (s->tx.failed || len > INT_MAX ||
        EVP_EncryptInit_ex(s->tx.ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(s->tx.ctx, out, &n1, in, (int)len) != 1 ||
        EVP_EncryptFinal_ex(s->tx.ctx, out + n1, &n2) != 1 ||
        EVP_CIPHER_CTX_ctrl(s->tx.ctx, EVP_CTRL_AEAD_GET_TAG, PDS_STREAM_ABYTES,
                            out + len) != 1)
        memset(out, 0, len + PDS_STREAM_ABYTES);
    stream_next(&s->tx, s->rekey_every);
}

int pds_session_open(struct pds_session *s,
                     const uint8_t *in,
                     size_t len,
                     uint8_t *out,
                     size_t *out_len)
{
    uint8_t nonce[12];
    size_t n;
    int n1 = 0, n2 = 0;

    if (!s->has_rx || s->rx.failed || len < PDS_STREAM_ABYTES ||
        len - PDS_STREAM_ABYTES > INT_MAX)
        return PDS_EAUTH;
    n = len - PDS_STREAM_ABYTES;
    make_nonce(s->rx.seq, nonce);
    if (EVP_DecryptInit_ex(s->rx.ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_DecryptUpdate(s->rx.ctx, out, &n1, in, (int)n) != 1 ||
        EVP_CIPHER_CTX_ctrl(s->rx.ctx, EVP_CTRL_AEAD_SET_TAG, PDS_STREAM_ABYTES,
                            (void *)(in + n)) != 1 ||
        EVP_DecryptFinal_ex(s->rx.ctx, out + n1, &n2) != 1) {
        sodium_memzero(out, n); /* never leave unauthenticated bytes */
        return PDS_EAUTH;
    }
    *out_len = n;
    return stream_next(&s->rx, s->rekey_every);
}

const char *pds_session_cipher(const struct pds_session *s)
{
    return s->aes ? "AES-256-GCM" : "ChaCha20-Poly1305";
}

void pds_session_wipe(struct pds_session *s)
{
    EVP_CIPHER_CTX_free(s->tx.ctx); /* also wipes the key schedule */
    EVP_CIPHER_CTX_free(s->rx.ctx);
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
