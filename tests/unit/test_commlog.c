/*
 * test_commlog.c - the communication log: one entry is one line, whatever
 * text from outside (a node's name, a request's target) it holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../tools/commlog.h"
#include "test.h"

TEST(an_entry_with_control_characters_stays_one_line)
{
    char dir[] = "/tmp/pds-commlog-XXXXXX";
    char **lines = NULL;
    size_t n = 0, i;
    char path[64];

    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ(pds_log_open(dir, PDS_LOG_ERROR, 1 << 20), 0);
    pds_commlog(PDS_LOG_WARNING, "client %s refused",
                "ghost\n2026-01-01T00:00:00.000Z WARNING forged\x1b[2J\r");
    pds_commlog(PDS_LOG_WARNING, "%s", "the next entry");
    CHECK_EQ(pds_commlog_tail(10, &lines, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(strstr(lines[0], "WARNING client ghost?2026-01-01T00:00:00.000Z "
                           "WARNING forged?[2J? refused") != NULL);
    CHECK(strstr(lines[1], "WARNING the next entry") != NULL);
    for (i = 0; i < n; i++)
        CHECK(strchr(lines[i], 0x1b) == NULL && strchr(lines[i], '\r') == NULL);
    pds_commlog_tail_free(lines, n);
    pds_log_close();
    snprintf(path, sizeof(path), "%s/comm.log", dir);
    unlink(path);
    rmdir(dir);
}

TEST_MAIN(T(an_entry_with_control_characters_stays_one_line))
