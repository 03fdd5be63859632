/*
 * fuzz_request.c - libFuzzer target for the local API's request decoder:
 * any bytes must decode or be refused with PDS_EPROTO, never crash, and a
 * decoded request must encode and decode again to the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pds_request req;
    struct pds_request again;
    char errmsg[PDS_ERRMSG_SIZE];
    uint8_t *frame;
    size_t len;

    if (pds_request_decode(data, size, &req, errmsg) != 0)
        return 0;
    if (pds_request_encode(&req, &frame, &len) == 0) {
        if (pds_request_decode(frame + 4, len - 4, &again, errmsg) != 0 ||
            again.op != req.op || again.id != req.id ||
            again.owner_len != req.owner_len ||
            again.value_len != req.value_len)
            abort();
        pds_request_free(&again);
        free(frame);
    }
    pds_request_free(&req);
    return 0;
}
