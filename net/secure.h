/*
 * secure.h - node identity, the authenticated handshake and the encrypted
 * stream of every group connection (libsodium).
 *
 * Identity: a long-term X25519 key pair (crypto_kx) made at first start and
 * kept in DIR/node.key (mode 0600).
 *
 * Handshake: each side sends a plaintext hello (protocol version, group id,
 * long-term public key, a fresh ephemeral public key). Both then compute
 *   K = BLAKE2b-512("pdsync-hs-1" | H(hello_i | hello_r) |
 *                   DH(e_i, e_r) | DH(e_i, S_r) | DH(S_i, e_r))
 * where i is the side that connected. Only the holders of both long-term
 * private keys can compute it, and fresh ephemerals make every session's
 * keys new (a replayed hello gets nowhere). The first 32 bytes key the
 * initiator-to-responder direction, the last 32 the other.
 *
 * Stream: each direction is an AEAD (OpenSSL's EVP) protected the way
 * TLS 1.3 protects its records (RFC 8446 section 5.3): the nonce is the
 * frame's sequence number in that direction, so a modified, replayed,
 * reordered or dropped frame fails to authenticate and ends the
 * connection. The cipher is AES-256-GCM when both hellos say their CPU
 * has AES instructions, ChaCha20-Poly1305 otherwise (constant time in
 * software); the hellos are in the transcript hash, so the choice cannot
 * be downgraded. Every PDS_REKEY_FRAMES frames the direction's key is
 * replaced by a hash of itself. The first frame in each direction (the
 * "stream header") seals a fixed label: it confirms the keys before any
 * message is taken.
 *
 * Enrollment: a node that knows the group's join secret proves it with
 * BLAKE2b-256 keyed by the secret over the transcript hash and its role
 * byte; the server answers with its own proof, so a client pins the right
 * server the first time.
 */
#ifndef PDS_SECURE_H
#define PDS_SECURE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "../core/pds.h"

/* 2: ENTRIES carry where the sender's window ends ("w"), and the window
 * may be smaller than a follower of protocol 1 would wait for.
 * 3: the stream is an EVP AEAD with sequence-number nonces (was
 * libsodium's secretstream); hellos carry "aead", the CPU's ciphers.
 * 4: snapshots carry the memos of restamped writes and the delete marks
 * (items of kinds 3 and 4, which a follower of protocol 3 refuses), and a
 * WRITE from a client's outbox says so ("q"). */
#define PDS_PROTOCOL_VERSION 5
#define PDS_SECRET_MIN 16 /* bytes of a join secret */
#define PDS_SECRET_MAX 128
#define PDS_PROOF_BYTES 32
#define PDS_HASH_BYTES 32
#define PDS_STREAM_ABYTES 16 /* the AEAD tag */
#define PDS_STREAM_LABEL 16  /* bytes of the sealed confirmation label */
#define PDS_STREAM_HEADER (PDS_STREAM_LABEL + PDS_STREAM_ABYTES)
#define PDS_REKEY_FRAMES (1u << 20)

/* Bits of a hello's "aead": what this CPU runs fast and in constant time. */
#define PDS_AEAD_AES_HW 1u

/* This machine's bits (AES-256-GCM when the CPU has AES and carry-less
 * multiply instructions). */
unsigned pds_aead_local(void);

struct pds_identity {
    uint8_t pk[PDS_KEY_BYTES];
    uint8_t sk[PDS_KEY_BYTES];
};

/*
 * Load DIR/node.key, or create it (mode 0600) with a new key pair. A file
 * of the wrong size or mode, or whose public key is not its private key's,
 * is an error (PDS_ECORRUPT / PDS_EPERM), never replaced.
 */
int pds_identity_load(const char *dir, struct pds_identity *id, char *errmsg);

/* One side's handshake state. */
struct pds_handshake {
    int is_initiator;
    uint8_t e_pk[PDS_KEY_BYTES];
    uint8_t e_sk[PDS_KEY_BYTES];
    uint8_t hash[PDS_HASH_BYTES]; /* transcript hash, set by finish */
    uint32_t aead;                /* PDS_AEAD_* bits this side's hello says */
};

/* Make the ephemeral key pair; aead is set to pds_aead_local(). */
void pds_handshake_init(struct pds_handshake *hs, int is_initiator);

/* One direction of a session: its cipher context, key and next frame. */
struct pds_stream {
    EVP_CIPHER_CTX *ctx;
    uint8_t key[32];
    uint64_t seq;
    int failed; /* a rekey failed: every later frame is refused */
};

/* The two directions of an established session (pds_session_wipe frees
 * it). rekey_every is PDS_REKEY_FRAMES; the tests lower it. */
struct pds_session {
    struct pds_stream tx;
    struct pds_stream rx;
    uint8_t tx_header[PDS_STREAM_HEADER];
    int aes; /* 1: AES-256-GCM, 0: ChaCha20-Poly1305 */
    int has_rx;
    uint64_t rekey_every;
};

/*
 * Derive the session from both hellos (their exact bytes), the peer's keys
 * and the peer's hello "aead" bits (AES-256-GCM when both hellos have
 * PDS_AEAD_AES_HW). Fails (PDS_EAUTH) on a degenerate key,
 * PDS_ENOMEM when no cipher context can be made. Wipes the ephemeral
 * secret.
 */
int pds_handshake_finish(struct pds_handshake *hs,
                         const struct pds_identity *id,
                         const uint8_t *my_hello,
                         size_t my_len,
                         const uint8_t *peer_hello,
                         size_t peer_len,
                         const uint8_t peer_pk[PDS_KEY_BYTES],
                         const uint8_t peer_epk[PDS_KEY_BYTES],
                         unsigned peer_aead,
                         struct pds_session *s);

/* The peer's stream header arrived: it must open to the label under the
 * peer's key. PDS_EAUTH if not. */
int pds_session_rx_start(struct pds_session *s, const uint8_t *hdr);

/* Encrypt len bytes into out (len + PDS_STREAM_ABYTES bytes). */
void pds_session_seal(struct pds_session *s,
                      const uint8_t *in,
                      size_t len,
                      uint8_t *out);
/*
 * Decrypt a frame into out (len - PDS_STREAM_ABYTES bytes); *out_len is
 * set. PDS_EAUTH for a frame that was modified, replayed, reordered or
 * encrypted with another key.
 */
int pds_session_open(struct pds_session *s,
                     const uint8_t *in,
                     size_t len,
                     uint8_t *out,
                     size_t *out_len);
/* The session's cipher: "AES-256-GCM" or "ChaCha20-Poly1305". */
const char *pds_session_cipher(const struct pds_session *s);

/* Free the cipher contexts and wipe the keys; safe to call twice. */
void pds_session_wipe(struct pds_session *s);

/* Join-secret proof of one side ('c' client, 's' server). */
void pds_join_proof(const uint8_t *secret,
                    size_t secret_len,
                    const uint8_t hash[PDS_HASH_BYTES],
                    char side,
                    uint8_t out[PDS_PROOF_BYTES]);

#endif /* PDS_SECURE_H */
