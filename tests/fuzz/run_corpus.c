/*
 * run_corpus.c - runs a fuzz target over the files of its corpus (given
 * as arguments, files or directories) without libFuzzer, so that the
 * corpus is an ordinary test under any compiler.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
        fprintf(stderr, "%s: can't read\n", path);
        return 1;
    }
    rewind(f);
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: can't read\n", path);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int n_files = 0;
    int i;

    for (i = 1; i < argc; i++) {
        struct stat st;
        DIR *dir;
        struct dirent *de;
        if (stat(argv[i], &st) != 0)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0)
                return 1;
            n_files++;
            continue;
        }
        dir = opendir(argv[i]);
        while (dir != NULL && (de = readdir(dir)) != NULL) {
            char path[4096];
            if (de->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
            if (run_file(path) != 0)
                return 1;
            n_files++;
        }
        if (dir != NULL)
            closedir(dir);
    }
    printf("%d inputs ran without a crash\n", n_files);
    return n_files > 0 ? 0 : 1;
}
