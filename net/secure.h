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
 * initiator-to-responder direction, the last 32 the other, each a
 * crypto_secretstream_xchacha20poly1305 stream whose header is the first
 * frame in its direction. A modified, replayed, reordered or truncated
 * frame fails to decrypt and ends the connection.
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

#include <sodium.h>

#include "../core/pds.h"

/* 2: ENTRIES carry where the sender's window ends ("w"), and the window
 * may be smaller than a follower of protocol 1 would wait for. */
#define PDS_PROTOCOL_VERSION 2
#define PDS_SECRET_MIN 16 /* bytes of a join secret */
#define PDS_SECRET_MAX 128
#define PDS_PROOF_BYTES 32
#define PDS_HASH_BYTES 32
#define PDS_STREAM_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define PDS_STREAM_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES

struct pds_identity {
    uint8_t pk[PDS_KEY_BYTES];
    uint8_t sk[PDS_KEY_BYTES];
};

/*
 * Load DIR/node.key, or create it (mode 0600) with a new key pair. A file
 * of the wrong size or mode is an error (PDS_ECORRUPT / PDS_EPERM), never
 * replaced.
 */
int pds_identity_load(const char *dir, struct pds_identity *id, char *errmsg);

/* One side's handshake state. */
struct pds_handshake {
    int is_initiator;
    uint8_t e_pk[PDS_KEY_BYTES];
    uint8_t e_sk[PDS_KEY_BYTES];
    uint8_t hash[PDS_HASH_BYTES]; /* transcript hash, set by finish */
};

/* Make the ephemeral key pair. */
void pds_handshake_init(struct pds_handshake *hs, int is_initiator);

/* The two directions of an established session. */
struct pds_session {
    crypto_secretstream_xchacha20poly1305_state tx;
    crypto_secretstream_xchacha20poly1305_state rx;
    uint8_t tx_key[32];
    uint8_t rx_key[32];
    uint8_t tx_header[PDS_STREAM_HEADER];
    int has_rx;
};

/*
 * Derive the session from both hellos (their exact bytes) and the peer's
 * keys. Fails (PDS_EAUTH) on a degenerate key. Wipes the ephemeral secret.
 */
int pds_handshake_finish(struct pds_handshake *hs,
                         const struct pds_identity *id,
                         const uint8_t *my_hello,
                         size_t my_len,
                         const uint8_t *peer_hello,
                         size_t peer_len,
                         const uint8_t peer_pk[PDS_KEY_BYTES],
                         const uint8_t peer_epk[PDS_KEY_BYTES],
                         struct pds_session *s);

/* The peer's stream header arrived: start decrypting. PDS_EAUTH if bad. */
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
void pds_session_wipe(struct pds_session *s);

/* Join-secret proof of one side ('c' client, 's' server). */
void pds_join_proof(const uint8_t *secret,
                    size_t secret_len,
                    const uint8_t hash[PDS_HASH_BYTES],
                    char side,
                    uint8_t out[PDS_PROOF_BYTES]);

#endif /* PDS_SECURE_H */
