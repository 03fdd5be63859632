/*
 * error.c - the error table of pdsync.
 */
#include "pds.h"

static const char *const error_text[] = {
#define PDS__ERR_TEXT(name, text) text,
    PDS_ERRNO_MAP(PDS__ERR_TEXT)
#undef PDS__ERR_TEXT
};

static const char *const error_name[] = {
#define PDS__ERR_NAME(name, text) #name,
    PDS_ERRNO_MAP(PDS__ERR_NAME)
#undef PDS__ERR_NAME
};

const char *pds_strerror(int rv)
{
    if (rv == 0)
        return "success";
    if (rv <= PDS_EFIRST || rv >= PDS_ELAST)
        return "unknown error";
    return error_text[rv - PDS_EFIRST - 1];
}

const char *pds_errname(int rv)
{
    if (rv == 0)
        return "OK";
    if (rv <= PDS_EFIRST || rv >= PDS_ELAST)
        return "EUNKNOWN";
    return error_name[rv - PDS_EFIRST - 1];
}
