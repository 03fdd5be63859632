/*
 * fuzz_entry.c - libFuzzer target for the decoders of stored bytes: log
 * entries, records and record keys. Any bytes decode or are refused with
 * PDS_ECORRUPT; a decoded entry re-encodes to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pds_entry e;
    struct pds_record r;
    struct pds_key k;

    if (pds_entry_decode(data, size, &e) == 0) {
        uint8_t *buf = malloc(pds_entry_size(&e));
        if (buf == NULL)
            return 0;
        if (pds_entry_size(&e) != size || pds_entry_encode(&e, buf) != size ||
            memcmp(buf, data, size) != 0)
            abort();
        free(buf);
    }
    if (pds_record_decode(data, size, &r) == 0 && pds_record_size(&r) != size)
        abort();
    if (pds_reckey_decode(data, size, &k) == 0 &&
        k.owner_len + k.item_len + 2 != size)
        abort();
    return 0;
}
