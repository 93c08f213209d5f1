/* fileio.c - whole-file reads and atomic, durable commits (see fileio.h). */
#define _POSIX_C_SOURCE 200809L  // fsync, openat, fdopendir, strdup

#include "ailora/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ailora/error.h"

int file_read_all(const char *path, char **buf, size_t *len) {
    *buf = NULL;
    if (AIL_FAULT("read")) return AIL_ERROR(AIL_ERR_IO, "%s: injected read fault (AILORA_FAULT)", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return AIL_ERROR(AIL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return AIL_ERROR(AIL_ERR_IO, "%s is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    char *text = ail_malloc(size + 1);
    if (!text) {
        close(fd);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory reading %s (%zu bytes)", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, text + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (got != size) {
        free(text);
        return AIL_ERROR(AIL_ERR_IO, "short read on %s", path);
    }
    text[size] = '\0';
    *buf = text;
    if (len) *len = size;
    return AIL_OK;
}

void file_partial_path(const char *path, char *buf, size_t len) { snprintf(buf, len, "%s.partial", path); }

int file_exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

// fsync of an open descriptor; directories on some file systems refuse it (EINVAL).
static int sync_fd(int fd, const char *what) {
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        return AIL_ERROR(AIL_ERR_IO, "fsync %s: %s", what, strerror(errno));
    return AIL_OK;
}

// fsync of path: a regular file, or a directory with everything below it.
static int sync_tree(const char *path, int depth) {
    if (depth > 8) return AIL_ERROR(AIL_ERR_IO, "%s: directories nested too deep to commit", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return AIL_ERROR(AIL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    int rc = fstat(fd, &sb) == 0 ? AIL_OK : AIL_ERROR(AIL_ERR_IO, "cannot stat %s", path);
    if (rc == AIL_OK && S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) rc = AIL_ERROR(AIL_ERR_IO, "cannot list %s: %s", path, strerror(errno));
        for (struct dirent *e; rc == AIL_OK && d && (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            size_t n = strlen(path) + strlen(e->d_name) + 2;
            char *child = ail_malloc(n);
            if (!child) {
                rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
                break;
            }
            snprintf(child, n, "%s/%s", path, e->d_name);
            rc = sync_tree(child, depth + 1);
            free(child);
        }
        if (d) closedir(d);
    }
    if (rc == AIL_OK) rc = sync_fd(fd, path);
    close(fd);
    return rc;
}

static int sync_parent(const char *path) {
    char *copy = strdup(path);
    if (!copy) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY);
    int rc = fd >= 0 ? sync_fd(fd, dir) : AIL_ERROR(AIL_ERR_IO, "cannot open %s: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(copy);
    return rc;
}

int file_commit(const char *path) {
    char partial[4200];
    file_partial_path(path, partial, sizeof partial);
    AIL_CHECK(sync_tree(partial, 0));
    if (rename(partial, path) != 0)
        return AIL_ERROR(AIL_ERR_IO, "cannot rename %s to %s: %s", partial, path, strerror(errno));
    return sync_parent(path);
}

int file_write_atomic(const char *path, const void *data, size_t len) {
    char partial[4200];
    file_partial_path(path, partial, sizeof partial);
    int fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return AIL_ERROR(AIL_ERR_IO, "cannot create %s: %s", partial, strerror(errno));
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    int ok = done == len;
    if (close(fd) != 0) ok = 0;
    if (!ok) {
        int e = errno;
        unlink(partial);
        return AIL_ERROR(AIL_ERR_IO, "cannot write %s: %s", partial, strerror(e));
    }
    int rc = file_commit(path);
    if (rc != AIL_OK) unlink(partial);
    return rc;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path) == 0 ? 0 : errno;
}

int file_remove_tree(const char *path) {
    if (!file_exists(path)) return AIL_OK;
    // depth first (children before their directory), not crossing symbolic links
    int e = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (e != 0) return AIL_ERROR(AIL_ERR_IO, "cannot remove %s: %s", path, strerror(e > 0 ? e : errno));
    return AIL_OK;
}

int file_commit_replace(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return file_commit(path);
    char partial[4200];
    file_partial_path(path, partial, sizeof partial);
    AIL_CHECK(sync_tree(partial, 0));
    if (renameat2(AT_FDCWD, partial, AT_FDCWD, path, RENAME_EXCHANGE) != 0)
        return AIL_ERROR(AIL_ERR_IO, "cannot swap %s with %s: %s", partial, path, strerror(errno));
    AIL_CHECK(sync_parent(path));
    return file_remove_tree(partial);  // the old tree
}
