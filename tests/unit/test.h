/*
 * test.h - a minimal unit test harness: TEST(name) functions registered in
 * a table, CHECK macros that report file:line and fail the test, and a
 * main() that runs them all and prints "N passed, N failed".
 */
#ifndef PDS_TEST_H
#define PDS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pds_test {
    const char *name;
    void (*fn)(int *failed);
};

#define TEST(name) static void name(int *pds__failed)

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            *pds__failed = 1;                                                  \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long pds__a = (long long)(a), pds__b = (long long)(b);            \
        if (pds__a != pds__b) {                                                \
            fprintf(stderr,                                                    \
                    "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n",        \
                    __FILE__, __LINE__, #a, pds__a, #b, pds__b);               \
            *pds__failed = 1;                                                  \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_STR(a, b)                                                        \
    do {                                                                       \
        const char *pds__a = (a), *pds__b = (b);                               \
        if (pds__a == NULL || pds__b == NULL || strcmp(pds__a, pds__b)) {      \
            fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n",     \
                    __FILE__, __LINE__, pds__a ? pds__a : "(null)",            \
                    pds__b ? pds__b : "(null)");                               \
            *pds__failed = 1;                                                  \
            return;                                                            \
        }                                                                      \
    } while (0)

#define TEST_MAIN(...)                                                         \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        static const struct pds_test tests[] = {__VA_ARGS__};                  \
        size_t n = sizeof(tests) / sizeof(tests[0]), i;                        \
        int n_pass = 0, n_fail = 0;                                            \
        for (i = 0; i < n; i++) {                                              \
            int failed = 0;                                                    \
            if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)               \
                continue;                                                      \
            tests[i].fn(&failed);                                              \
            printf("%s %s\n", failed ? "FAIL" : "ok  ", tests[i].name);        \
            if (failed)                                                        \
                n_fail++;                                                      \
            else                                                               \
                n_pass++;                                                      \
        }                                                                      \
        printf("%d passed, %d failed\n", n_pass, n_fail);                      \
        return n_fail ? 1 : 0;                                                 \
    }

#define T(fn)                                                                  \
    {                                                                          \
#fn, fn                                                                \
    }

#endif /* PDS_TEST_H */
