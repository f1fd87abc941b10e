/*
 * sec_env.cc: the encrypting RocksDB environment (the only C++ in tikv-c).
 *
 * Why not RocksDB's NewEncryptedEnv with an EncryptionProvider: the stock encrypted file
 * system keeps each file's cipher in a prefix at the start of the file, so files written
 * before encryption was switched on (no prefix) would be misread, and with a zero-length
 * prefix the provider cannot tell a file being created (needs a fresh IV) from one being
 * read, nor follow renames (RocksDB writes CURRENT as a temporary file and renames it). So,
 * as TiKV does, the cipher of each file lives in our file dictionary, and this file system
 * wrapper keeps the dictionary in step with every create, reopen, reuse, rename, link and
 * delete. The per-file data path reuses RocksDB's own EncryptedSequentialFile,
 * EncryptedRandomAccessFile, EncryptedWritableFile and EncryptedRandomRWFile (prefix length
 * 0) with a BlockAccessCipherStream that runs AES-CTR through OpenSSL (sec__ctr_xor).
 *
 * Why a hand-built rocksdb_env_t: the C API (rocksdb/c.h) only declares the struct, and it
 * has no constructor that wraps a C++ Env. Its definition in RocksDB's c.cc is
 * `struct rocksdb_env_t { Env* rep; bool is_default; };` (unchanged since the C API began,
 * and what rocksdb_options_set_env reads: opt->rep.env = env->rep), so we repeat it here
 * and build one around our Env. It is freed by sec_env_free, never by rocksdb_env_destroy.
 */
#include <memory>
#include <new>
#include <string>

#include <rocksdb/env.h>
#include <rocksdb/env_encryption.h>
#include <rocksdb/file_system.h>

/* base.h is a C header without extern "C" guards of its own. */
extern "C" {
#include "base/base.h"
}
#include "security/sec_int.h"

extern "C" {
struct rocksdb_env_t {
    rocksdb::Env *rep;
    bool is_default;
};
}

namespace
{

using rocksdb::FileOptions;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Status;

IOStatus io_error(const std::string &what, int rc)
{
    if (rc == -ENOMEM)
        return IOStatus::NoSpace(what, "out of memory");
    if (rc == TKV_ECORRUPT)
        return IOStatus::Corruption(what, tkv_strerror(rc));
    return IOStatus::IOError(what, tkv_strerror(rc));
}

/* AES-CTR over a whole file: any offset can be processed on its own, so the stream is
 * stateless and safe for RocksDB's concurrent positional reads. */
class CtrStream final : public rocksdb::BlockAccessCipherStream
{
  public:
    explicit CtrStream(const sec_cipher &c) : c_(c)
    {
    }
    ~CtrStream() override
    {
        sec_cipher_wipe(&c_);
    }
    CtrStream(const CtrStream &) = delete;
    CtrStream &operator=(const CtrStream &) = delete;

    size_t BlockSize() override
    {
        return 16;
    }
    Status Encrypt(uint64_t offset, char *data, size_t n) override
    {
        return apply(offset, data, n);
    }
    Status Decrypt(uint64_t offset, char *data, size_t n) override
    {
        return apply(offset, data, n);
    }

  protected:
    void AllocateScratch(std::string &) override
    {
    }
    /* Not used: Encrypt and Decrypt above handle whole ranges. */
    Status EncryptBlock(uint64_t, char *, char *) override
    {
        return Status::NotSupported("CtrStream works on ranges");
    }
    Status DecryptBlock(uint64_t, char *, char *) override
    {
        return Status::NotSupported("CtrStream works on ranges");
    }

  private:
    Status apply(uint64_t offset, char *data, size_t n)
    {
        int rc =
            sec__ctr_xor(c_.method, c_.key, c_.iv, offset, reinterpret_cast<uint8_t *>(data), n);
        return rc == 0 ? Status::OK() : Status::IOError("AES-CTR", tkv_strerror(rc));
    }
    sec_cipher c_;
};

/* Owns a sec_cipher for the duration of one file operation and wipes it. */
struct CipherGuard {
    sec_cipher c{};
    CipherGuard() = default;
    CipherGuard(const CipherGuard &) = delete;
    CipherGuard &operator=(const CipherGuard &) = delete;
    ~CipherGuard()
    {
        sec_cipher_wipe(&c);
    }
    bool encrypted() const
    {
        return c.method != SEC_PLAINTEXT;
    }
    std::unique_ptr<rocksdb::BlockAccessCipherStream> stream() const
    {
        return std::unique_ptr<rocksdb::BlockAccessCipherStream>(new CtrStream(c));
    }
};

/* clang 14's analyzer loses track of the message buffer inside RocksDB's IOStatus when one is
 * returned by value from its header-only factories (IOStatus::IOError, NotSupported); ASan's
 * leak check runs over these paths in test_encryption and finds nothing. */
// NOLINTBEGIN(clang-analyzer-cplusplus.NewDeleteLeaks)
class KeyedFileSystem final : public rocksdb::FileSystemWrapper
{
  public:
    KeyedFileSystem(const std::shared_ptr<rocksdb::FileSystem> &base, sec_keys *keys)
        : rocksdb::FileSystemWrapper(base), keys_(keys)
    {
    }
    const char *Name() const override
    {
        return "TikvcKeyedFileSystem";
    }

    IOStatus NewSequentialFile(const std::string &fname, const FileOptions &opts,
                               std::unique_ptr<rocksdb::FSSequentialFile> *result,
                               IODebugContext *dbg) override
    {
        CipherGuard g;
        int rc = sec_keys_file_cipher(keys_, fname.c_str(), &g.c, nullptr);
        if (rc != 0)
            return io_error(fname, rc);
        IOStatus s = target()->NewSequentialFile(fname, opts, result, dbg);
        if (s.ok() && g.encrypted())
            *result = std::make_unique<rocksdb::EncryptedSequentialFile>(std::move(*result),
                                                                         g.stream(), 0);
        return s;
    }

    IOStatus NewRandomAccessFile(const std::string &fname, const FileOptions &opts,
                                 std::unique_ptr<rocksdb::FSRandomAccessFile> *result,
                                 IODebugContext *dbg) override
    {
        CipherGuard g;
        int rc = sec_keys_file_cipher(keys_, fname.c_str(), &g.c, nullptr);
        if (rc != 0)
            return io_error(fname, rc);
        IOStatus s = target()->NewRandomAccessFile(fname, opts, result, dbg);
        if (s.ok() && g.encrypted())
            *result = std::make_unique<rocksdb::EncryptedRandomAccessFile>(std::move(*result),
                                                                           g.stream(), 0);
        return s;
    }

    IOStatus NewWritableFile(const std::string &fname, const FileOptions &opts,
                             std::unique_ptr<rocksdb::FSWritableFile> *result,
                             IODebugContext *dbg) override
    {
        CipherGuard g;
        int rc = sec_keys_new_file(keys_, fname.c_str(), &g.c);
        if (rc != 0)
            return io_error(fname, rc);
        IOStatus s = target()->NewWritableFile(fname, opts, result, dbg);
        return wrap_writable(s, g, result);
    }

    IOStatus ReopenWritableFile(const std::string &fname, const FileOptions &opts,
                                std::unique_ptr<rocksdb::FSWritableFile> *result,
                                IODebugContext *dbg) override
    {
        /* Appending to an existing file keeps its cipher; a missing file is a new one. */
        CipherGuard g;
        int rc = existing_or_new(fname, g, dbg);
        if (rc != 0)
            return io_error(fname, rc);
        IOStatus s = target()->ReopenWritableFile(fname, opts, result, dbg);
        return wrap_writable(s, g, result);
    }

    IOStatus ReuseWritableFile(const std::string &fname, const std::string &old_fname,
                               const FileOptions &opts,
                               std::unique_ptr<rocksdb::FSWritableFile> *result,
                               IODebugContext *dbg) override
    {
        /* A recycled log is overwritten from the start: it gets a fresh IV so no keystream is
         * used twice. */
        CipherGuard g;
        int rc = sec_keys_new_file(keys_, fname.c_str(), &g.c);
        if (rc != 0)
            return io_error(fname, rc);
        IOStatus s = target()->ReuseWritableFile(fname, old_fname, opts, result, dbg);
        if (s.ok() && (rc = sec_keys_delete_file(keys_, old_fname.c_str())) != 0)
            return io_error(old_fname, rc);
        return wrap_writable(s, g, result);
    }

    IOStatus NewRandomRWFile(const std::string &fname, const FileOptions &opts,
                             std::unique_ptr<rocksdb::FSRandomRWFile> *result,
                             IODebugContext *dbg) override
    {
        CipherGuard g;
        int rc = existing_or_new(fname, g, dbg);
        if (rc != 0)
            return io_error(fname, rc);
        IOStatus s = target()->NewRandomRWFile(fname, opts, result, dbg);
        if (s.ok() && g.encrypted())
            *result =
                std::make_unique<rocksdb::EncryptedRandomRWFile>(std::move(*result), g.stream(), 0);
        return s;
    }

    IOStatus DeleteFile(const std::string &fname, const IOOptions &opts,
                        IODebugContext *dbg) override
    {
        IOStatus s = target()->DeleteFile(fname, opts, dbg);
        if (!s.ok())
            return s;
        int rc = sec_keys_delete_file(keys_, fname.c_str());
        return rc == 0 ? s : io_error(fname, rc);
    }

    IOStatus RenameFile(const std::string &src, const std::string &dst, const IOOptions &opts,
                        IODebugContext *dbg) override
    {
        return move_or_link(src, dst, opts, dbg, true);
    }

    IOStatus LinkFile(const std::string &src, const std::string &dst, const IOOptions &opts,
                      IODebugContext *dbg) override
    {
        return move_or_link(src, dst, opts, dbg, false);
    }

  private:
    /* The cipher of @fname when it exists, else that of a newly registered file. */
    int existing_or_new(const std::string &fname, CipherGuard &g, IODebugContext *dbg)
    {
        IOStatus exists = target()->FileExists(fname, IOOptions(), dbg);
        return exists.ok() ? sec_keys_file_cipher(keys_, fname.c_str(), &g.c, nullptr)
                           : sec_keys_new_file(keys_, fname.c_str(), &g.c);
    }

    static IOStatus wrap_writable(const IOStatus &s, const CipherGuard &g,
                                  std::unique_ptr<rocksdb::FSWritableFile> *result)
    {
        if (s.ok() && g.encrypted())
            *result =
                std::make_unique<rocksdb::EncryptedWritableFile>(std::move(*result), g.stream(), 0);
        return s;
    }

    /* The destination takes the source's entry before the file system acts, so a crash in
     * between leaves both names readable; a failure puts the destination's entry back. */
    IOStatus move_or_link(const std::string &src, const std::string &dst, const IOOptions &opts,
                          IODebugContext *dbg, bool move)
    {
        CipherGuard old;
        bool had = false;
        int rc = sec_keys_file_cipher(keys_, dst.c_str(), &old.c, &had);
        if (rc == 0)
            rc = sec_keys_link_file(keys_, src.c_str(), dst.c_str());
        if (rc != 0)
            return io_error(dst, rc);
        IOStatus s = move ? target()->RenameFile(src, dst, opts, dbg)
                          : target()->LinkFile(src, dst, opts, dbg);
        if (!s.ok()) {
            if (sec__keys_restore(keys_, dst.c_str(), &old.c, had) != 0)
                return IOStatus::IOError(dst, "file dictionary could not be restored");
            return s;
        }
        if (move && (rc = sec_keys_delete_file(keys_, src.c_str())) != 0)
            return io_error(src, rc);
        return s;
    }

    sec_keys *keys_;
};
// NOLINTEND(clang-analyzer-cplusplus.NewDeleteLeaks)

} // namespace

struct sec_env {
    std::shared_ptr<rocksdb::FileSystem> fs;
    std::unique_ptr<rocksdb::Env> env;
    rocksdb_env_t c_env;
};

extern "C" int sec_env_new(sec_keys *k, sec_env **out)
{
    if (k == nullptr || out == nullptr)
        return -EINVAL;
    sec_env *e = new (std::nothrow) sec_env();
    if (e == nullptr)
        return -ENOMEM;
    try {
        e->fs = std::make_shared<KeyedFileSystem>(rocksdb::FileSystem::Default(), k);
        e->env = rocksdb::NewCompositeEnv(e->fs);
    } catch (const std::bad_alloc &) {
        delete e;
        return -ENOMEM;
    }
    if (e->env == nullptr) {
        delete e;
        return -ENOMEM;
    }
    e->c_env.rep = e->env.get();
    e->c_env.is_default = true; /* rocksdb_env_destroy, if misused, would not delete rep */
    *out = e;
    return 0;
}

extern "C" void *sec_env_rocksdb(sec_env *e)
{
    return &e->c_env;
}

extern "C" void sec_env_free(sec_env *e)
{
    delete e;
}
