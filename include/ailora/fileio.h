/* fileio.h - whole-file reads and the one atomic-commit rule for every output.
 *
 * Every output ailora writes (HDF5 run files, caches and INIT files, JSON,
 * safetensors, whole model directories) is built under "<path>.partial" and then
 * committed by file_commit:
 *
 *     fsync(<path>.partial)              a file; for a directory every file in it
 *                                        (recursively) and the directory itself
 *     rename(<path>.partial, <path>)     atomic on POSIX file systems
 *     fsync(dirname(<path>))             makes the rename itself durable
 *
 * so a reader (or a job restarted after a node loss) sees either the previous
 * complete output or the new complete one, never half of either.
 */
#ifndef AILORA_FILEIO_H
#define AILORA_FILEIO_H

#include <stddef.h>

/* Reads the whole file into a malloc'ed, NUL-terminated buffer; *len (may be NULL)
 * receives the byte count. Errors name the path. */
int file_read_all(const char *path, char **buf, size_t *len);

/* "<path>.partial": where an output is written before it is complete. */
void file_partial_path(const char *path, char *buf, size_t len);

/* Commits "<path>.partial" onto path as above (call on one rank, after every
 * handle on the partial output is closed). rename() replaces an existing file;
 * an existing non-empty directory at path makes it fail (callers refuse those first). */
int file_commit(const char *path);

/* Writes len bytes to path through file_commit. For small outputs (JSON, text). */
int file_write_atomic(const char *path, const void *data, size_t len);

/* 1 if path exists (file, directory or anything else), else 0. */
int file_exists(const char *path);

/* Removes path and, for a directory, everything below it (symbolic links are
 * removed, never followed). An absent path is AIL_OK. */
int file_remove_tree(const char *path);

/* file_commit for a directory output that replaces an existing directory at path:
 * "<path>.partial" is synced, then swapped with path in one atomic step
 * (renameat2 RENAME_EXCHANGE), so readers see the old or the new tree, never
 * neither; the old tree, now at "<path>.partial", is then removed. Without an
 * existing path it is file_commit. Callers decide whether path may be replaced. */
int file_commit_replace(const char *path);

#endif
