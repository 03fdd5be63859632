/*
 * fuzz_msg.c - libFuzzer target for the group protocol: any bytes are a
 * peer's hello, then its stream header and frames. Decoding and the
 * handshake refuse what is malformed; nothing crashes, nothing decrypts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"
#include "secure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pds_identity id;
    static int is_ready;
    struct pds_handshake hs;
    struct pds_session s;
    struct pds_msg m;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t out[512];
    size_t n;
    size_t hello_len;

    if (!is_ready) {
        if (sodium_init() < 0)
            abort();
        crypto_kx_keypair(id.pk, id.sk);
        is_ready = 1;
    }
    /* The first byte says how long the hello is. */
    if (size < 1)
        return 0;
    hello_len = data[0] < size - 1 ? data[0] : size - 1;
    if (pds_msg_decode(data + 1, hello_len, &m, errmsg) != 0)
        return 0;
    if (m.type != PDS_MSG_HELLO) {
        pds_msg_free(&m);
        return 0;
    }
    pds_handshake_init(&hs, 0);
    if (pds_handshake_finish(&hs, &id, (const uint8_t *)"mine", 4, data + 1,
                             hello_len, m.pk, m.epk, m.aead, &s) != 0)
        return 0;
    data += 1 + hello_len;
    size -= 1 + hello_len;
    if (size >= PDS_STREAM_HEADER && pds_session_rx_start(&s, data) == 0)
        abort();  /* a forged stream header must never authenticate */
    s.has_rx = 1; /* and neither must a forged frame after it */
    if (size <= sizeof(out) && pds_session_open(&s, data, size, out, &n) == 0)
        abort();
    pds_session_wipe(&s);
    return 0;
}
