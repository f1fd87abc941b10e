/*
 * sec_file.c: files we write ourselves (snapshot files, PD's files), encrypted with the same
 * per-file AES-CTR cipher as RocksDB's files and registered in the same file dictionary.
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "security/sec_int.h"

#define SEC_FILE_CHUNK 65536

struct sec_file {
    int fd;
    bool writing;
    uint64_t pos;
    sec_cipher c;
    uint8_t *scratch; /* SEC_FILE_CHUNK bytes for encrypting writes */
};

/* Opens @path for writing (a new file, registered in @k) or reading (with the cipher @k has
 * for it). */
static int file_open(sec_keys *k, const char *path, bool writing, sec_file **out)
{
    if (path == NULL || out == NULL)
        return -EINVAL;
    sec_file *f = tkv_calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    f->fd = -1;
    f->writing = writing;
    f->c.method = SEC_PLAINTEXT;
    int rc = 0;
    if (writing && (f->scratch = tkv_malloc(SEC_FILE_CHUNK)) == NULL)
        rc = -ENOMEM;
    /* A new file is registered before it exists, as RocksDB's files are: a crash in between
     * leaves an entry for a missing or empty file, which is harmless. */
    if (rc == 0 && k != NULL)
        rc = writing ? sec_keys_new_file(k, path, &f->c)
                     : sec_keys_file_cipher(k, path, &f->c, NULL);
    if (rc == 0) {
        f->fd = writing ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
                        : open(path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0)
            rc = -errno;
    }
    if (rc != 0) {
        sec_cipher_wipe(&f->c);
        tkv_free(f->scratch);
        tkv_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int sec_file_open_write(sec_keys *k, const char *path, sec_file **out)
{
    return file_open(k, path, true, out);
}

int sec_file_open_read(sec_keys *k, const char *path, sec_file **out)
{
    return file_open(k, path, false, out);
}

int sec_file_write(sec_file *f, const void *data, size_t len)
{
    if (!f->writing)
        return -EBADF;
    const uint8_t *p = data;
    while (len > 0) {
        size_t n = TKV_MIN(len, (size_t)SEC_FILE_CHUNK);
        memcpy(f->scratch, p, n);
        int rc = sec_cipher_apply(&f->c, f->pos, f->scratch, n);
        if (rc != 0)
            return rc;
        size_t done = 0;
        while (done < n) {
            ssize_t w = write(f->fd, f->scratch + done, n - done);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            done += (size_t)w;
        }
        f->pos += n;
        p += n;
        len -= n;
    }
    return 0;
}

int sec_file_read(sec_file *f, void *buf, size_t cap, size_t *got)
{
    *got = 0;
    if (f->writing)
        return -EBADF;
    ssize_t n;
    do {
        n = read(f->fd, buf, cap);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    int rc = sec_cipher_apply(&f->c, f->pos, buf, (size_t)n);
    if (rc != 0)
        return rc;
    f->pos += (uint64_t)n;
    *got = (size_t)n;
    return 0;
}

int sec_file_sync(sec_file *f)
{
    return fdatasync(f->fd) == 0 ? 0 : -errno;
}

int sec_file_close(sec_file *f)
{
    if (f == NULL)
        return 0;
    int rc = close(f->fd) == 0 ? 0 : -errno;
    sec_cipher_wipe(&f->c);
    if (f->scratch != NULL)
        sec__wipe(f->scratch, SEC_FILE_CHUNK);
    tkv_free(f->scratch);
    tkv_free(f);
    return rc;
}

int sec_file_remove(sec_keys *k, const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return -errno;
    return k != NULL ? sec_keys_delete_file(k, path) : 0;
}

int sec_file_rename(sec_keys *k, const char *src, const char *dst)
{
    if (k == NULL)
        return rename(src, dst) == 0 ? 0 : -errno;
    /* The destination takes the source's entry first, so a crash between the two steps
     * leaves both names readable; a failed rename puts the destination's entry back. */
    sec_cipher old;
    bool had;
    int rc = sec_keys_file_cipher(k, dst, &old, &had);
    if (rc == 0)
        rc = sec_keys_link_file(k, src, dst);
    if (rc == 0 && rename(src, dst) != 0) {
        rc = -errno;
        TKV_IGNORE(sec__keys_restore(k, dst, &old, had));
    }
    sec_cipher_wipe(&old);
    if (rc == 0)
        rc = sec_keys_delete_file(k, src);
    return rc;
}
