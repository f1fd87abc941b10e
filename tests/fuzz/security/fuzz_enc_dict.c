/*
 * fuzz_enc_dict.c: the encryption key dictionary (key.dict) and file dictionary (file.dict)
 * of src/security, and the master key file, on untrusted bytes and as a round trip.
 *
 * The first byte picks what the rest is:
 *   0: a recipe of dictionary operations (register, delete, rename and link files with names
 *      from the input, rotate the data key, look files up) on a dictionary opened for writing,
 *      checked against a model of what each file's cipher must be; then the dictionary is
 *      closed and reopened read-only and every file must have exactly the cipher it was given
 *      (round trip), and encryption-meta must describe it. Then the files on disk are damaged
 *      as the input says (a byte changed, the file cut short, bytes inserted): a changed
 *      key.dict must never open (its GCM tag or master key check fails: TKV_ECORRUPT or
 *      TKV_ECONFIG), and a damaged file.dict opens either not at all (TKV_ECORRUPT) or as
 *      the state after some prefix of the records that were written (a torn tail is cut off),
 *      never with an entry that was never written.
 *   1: raw key.dict and file.dict bytes (a length-prefixed split), opened read-only.
 *   2: a key.dict payload from the input, sealed under the master key with a valid header
 *      (so the payload checks are reached): it opens exactly when the payload is well formed
 *      as sec_keys.c documents it (current key id, count, 49-byte entries with a non-zero id
 *      and a known method, the current key present), and then lists exactly those keys.
 *   3: a master key file: accepted exactly when it is 64 hex digits followed only by white
 *      space, and then the key is those digits.
 * In every mode a refusal is TKV_ECORRUPT or TKV_ECONFIG with a message, never a crash, and
 * no message or encryption-meta output contains key material.
 */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "fuzz/fuzz.h"
#include "security/encryption.h"
#include "security/sec_int.h"

#define MAX_FILES 16
#define MAX_OPS   48
#define MAX_HIST  160

static char dict_dir[300], key_path[320], file_path[320], mk_path[320], mk2_path[320];
static const uint8_t master[32] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
                                   0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                   0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x12};
static uint8_t kd_header[32]; /* a valid key.dict header for the master key */

static uint64_t fixed_clock(void *ud)
{
    (void)ud;
    return 1700000000;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    sec__hex(p, n, out);
}

static void opts(sec_enc_opts *o, sec_method m, bool ro)
{
    sec_enc_opts_init(o);
    o->dict_dir = dict_dir;
    o->method = m;
    o->rotation_period_s = 0;
    o->master_key_path = mk_path;
    o->read_only = ro;
    o->now_s = fixed_clock;
}

static void clear_dict(void)
{
    fuzz_rmtree(dict_dir);
    FUZZ_CHECK(mkdir(dict_dir, 0700) == 0);
}

static void setup(void)
{
    if (dict_dir[0] != '\0')
        return;
    tkv_log_set_level(TKV_LOG_ERROR); /* key rotations log at INFO */
    const char *root = fuzz_tmpdir("enc");
    snprintf(dict_dir, sizeof(dict_dir), "%s/dict", root);
    snprintf(key_path, sizeof(key_path), "%s/key.dict", dict_dir);
    snprintf(file_path, sizeof(file_path), "%s/file.dict", dict_dir);
    snprintf(mk_path, sizeof(mk_path), "%s/master.key", root);
    snprintf(mk2_path, sizeof(mk2_path), "%s/probe.key", root);
    char mk[65];
    hex(master, 32, mk);
    fuzz_write_file(mk_path, mk, 64);
    /* A valid header, from a dictionary the code writes itself. */
    FUZZ_CHECK(mkdir(dict_dir, 0700) == 0);
    sec_enc_opts o;
    opts(&o, SEC_AES256_CTR, false);
    sec_keys *k;
    char err[TKV_ERRMSG_LEN];
    FUZZ_CHECK(sec_keys_open(&o, &k, err) == 0);
    sec_keys_close(k);
    uint8_t buf[4096];
    FUZZ_CHECK(fuzz_read_file(key_path, buf, sizeof(buf)) >= sizeof(kd_header));
    memcpy(kd_header, buf, sizeof(kd_header));
    clear_dict();
}

/* ---- key material never leaks ----------------------------------------------------------- */

typedef struct known_keys {
    char hex[MAX_OPS + 2][65];
    size_t n;
} known_keys;

static void note_key(known_keys *kk, const uint8_t *key, size_t len)
{
    if (len == 0 || kk->n == TKV_ARRAY_LEN(kk->hex))
        return;
    hex(key, len, kk->hex[kk->n++]);
}

static void check_no_key(const known_keys *kk, const char *text)
{
    char mk[65];
    hex(master, 32, mk);
    FUZZ_CHECK(strstr(text, mk) == NULL);
    for (size_t i = 0; i < kk->n; i++)
        FUZZ_CHECK(strstr(text, kk->hex[i]) == NULL);
}

/* Checks encryption-meta of @k: valid JSON with @nfiles files (-1: any), no key material. */
static json_t *check_meta(sec_keys *k, const known_keys *kk, long nfiles)
{
    tkv_buf out;
    tkv_buf_init(&out);
    int rc = sec_encryption_meta(k, &out);
    if (rc != 0)
        fprintf(stderr, "encryption-meta: %s\n", tkv_strerror(rc));
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(tkv_buf_append_u8(&out, 0) == 0);
    check_no_key(kk, (const char *)out.data);
    json_error_t jerr;
    json_t *j = json_loads((const char *)out.data, 0, &jerr);
    FUZZ_CHECK(j != NULL);
    FUZZ_CHECK(json_is_array(json_object_get(j, "keys")));
    FUZZ_CHECK(json_is_array(json_object_get(j, "files")));
    if (nfiles >= 0)
        FUZZ_CHECK(json_array_size(json_object_get(j, "files")) == (size_t)nfiles);
    tkv_buf_deinit(&out);
    return j;
}

/* ---- mode 0: the round trip ---------------------------------------------------------------- */

typedef struct mfile {
    char name[40];
    bool present;
    sec_cipher c;
} mfile;

typedef struct model {
    mfile f[MAX_FILES];
    size_t n;
} model;

static mfile *model_find(model *m, const char *name, bool add)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->f[i].name, name) == 0)
            return &m->f[i];
    if (!add || m->n == MAX_FILES)
        return NULL;
    mfile *f = &m->f[m->n++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

static size_t model_count(const model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += m->f[i].present;
    return n;
}

static bool cipher_eq(const sec_cipher *a, const sec_cipher *b)
{
    if (a->method != b->method)
        return false;
    if (a->method == SEC_PLAINTEXT)
        return true;
    return a->key_id == b->key_id && memcmp(a->key, b->key, sizeof(a->key)) == 0 &&
           memcmp(a->iv, b->iv, sizeof(a->iv)) == 0;
}

/* A file name from the input: mostly from a small set (so operations meet), sometimes raw
 * bytes (no '/', no NUL, not "." or ".."), which the dictionary stores as they are. */
static void pick_name(fuzz_in *in, char *out, size_t cap)
{
    uint8_t b = fuzz_u8(in);
    if (b < 200) {
        snprintf(out, cap, "%s%u.sst", b & 1 ? "db/" : "", (unsigned)(b >> 1) % 6);
        return;
    }
    size_t len;
    const uint8_t *p = fuzz_bytes(in, 24, &len);
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++)
        if (p[i] != '/' && p[i] != 0)
            out[o++] = (char)p[i];
    out[o] = '\0';
    if (o == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
        snprintf(out, cap, "x");
}

static void full_path(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dict_dir, name);
}

/* One recorded state of the file map after each record written, for the damage checks. */
typedef struct history {
    model states[MAX_HIST];
    size_t n;
} history;

static void record(history *h, const model *m)
{
    if (h->n < MAX_HIST)
        h->states[h->n++] = *m;
}

/* Does the opened dictionary @k hold exactly the map @m (and nothing else we know of)? */
static bool holds(sec_keys *k, const model *m, const model *names)
{
    for (size_t i = 0; i < names->n; i++) {
        char p[512];
        full_path(names->f[i].name, p, sizeof(p));
        sec_cipher c;
        bool found;
        int rc = sec_keys_file_cipher(k, p, &c, &found);
        const mfile *want = NULL;
        for (size_t j = 0; j < m->n; j++)
            if (strcmp(m->f[j].name, names->f[i].name) == 0 && m->f[j].present)
                want = &m->f[j];
        bool ok = rc == 0 && found == (want != NULL) && (!want || cipher_eq(&c, &want->c));
        sec_cipher_wipe(&c);
        if (!ok)
            return false;
    }
    return true;
}

static void damage_and_check(fuzz_in *in, const history *h, const model *names,
                             const known_keys *kk)
{
    static uint8_t kd[1 << 16], fd[1 << 16];
    size_t kn = fuzz_read_file(key_path, kd, sizeof(kd));
    size_t fn = fuzz_read_file(file_path, fd, sizeof(fd));
    bool key_side = fuzz_u8(in) & 1;
    uint8_t *buf = key_side ? kd : fd;
    size_t n = key_side ? kn : fn;
    if (n == 0)
        return;
    uint8_t how = fuzz_u8(in) % 3;
    size_t at = (size_t)fuzz_uint(in, 2) % n;
    static uint8_t out[(1 << 16) + 64];
    size_t on;
    bool changed;
    if (how == 0) { /* change one byte */
        memcpy(out, buf, n);
        uint8_t x = fuzz_u8(in);
        out[at] ^= x ? x : 1;
        on = n;
        changed = true;
    } else if (how == 1) { /* cut short */
        memcpy(out, buf, at);
        on = at;
        changed = at < n;
    } else { /* insert bytes */
        size_t len;
        const uint8_t *p = fuzz_bytes(in, 32, &len);
        memcpy(out, buf, at);
        memcpy(out + at, p, len);
        memcpy(out + at + len, buf + at, n - at);
        on = n + len;
        changed = len > 0;
    }
    fuzz_write_file(key_side ? key_path : file_path, out, on);
    sec_enc_opts o;
    opts(&o, SEC_AES256_CTR, true);
    sec_keys *k;
    char err[TKV_ERRMSG_LEN];
    int rc = sec_keys_open(&o, &k, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT || rc == TKV_ECONFIG);
    if (rc != 0) {
        FUZZ_CHECK(err[0] != '\0');
        check_no_key(kk, err);
        /* A file dictionary is refused only when damaged; a key dictionary always is. */
        FUZZ_CHECK(changed);
        return;
    }
    if (key_side) {
        /* GCM: a changed key.dict never opens. */
        FUZZ_CHECK(!changed);
    } else {
        /* The map is the state after some prefix of the records, never anything else. */
        bool some = false;
        for (size_t i = h->n; i-- > 0 && !some;)
            some = holds(k, &h->states[i], names);
        FUZZ_CHECK(some);
    }
    json_decref(check_meta(k, kk, -1));
    sec_keys_close(k);
}

static void mode_round_trip(fuzz_in *in)
{
    static const sec_method methods[] = {SEC_AES128_CTR, SEC_AES192_CTR, SEC_AES256_CTR,
                                         SEC_PLAINTEXT};
    sec_method method = methods[fuzz_u8(in) % 4];
    sec_enc_opts o;
    opts(&o, method, false);
    sec_keys *k;
    char err[TKV_ERRMSG_LEN];
    FUZZ_CHECK(sec_keys_open(&o, &k, err) == 0);
    model m, names;
    memset(&m, 0, sizeof(m));
    memset(&names, 0, sizeof(names));
    known_keys kk;
    memset(&kk, 0, sizeof(kk));
    static history h;
    h.n = 0;
    record(&h, &m);
    size_t nops = fuzz_below(in, MAX_OPS);
    for (size_t i = 0; i < nops && in->n > 0; i++) {
        char a[40], b[40], pa[512], pb[512];
        uint8_t op = fuzz_u8(in) % 6;
        pick_name(in, a, sizeof(a));
        full_path(a, pa, sizeof(pa));
        model_find(&names, a, true);
        mfile *fa = model_find(&m, a, true);
        if (fa == NULL)
            break;
        int rc;
        sec_cipher c;
        switch (op) {
        case 0: { /* a new file */
            uint64_t cur = sec_keys_current_id(k);
            rc = sec_keys_new_file(k, pa, &c);
            FUZZ_CHECK(rc == 0);
            FUZZ_CHECK(c.method == (cur == 0 ? SEC_PLAINTEXT : sec_keys_method(k)));
            FUZZ_CHECK(c.key_id == cur);
            note_key(&kk, c.key, sec__method_key_len(c.method));
            bool was = fa->present;
            fa->present = cur != 0;
            fa->c = c;
            if (fa->present || was)
                record(&h, &m); /* a put, or a delete of an entry that existed */
            break;
        }
        case 1: /* deleted */
            FUZZ_CHECK(sec_keys_delete_file(k, pa) == 0);
            if (fa->present) {
                fa->present = false;
                record(&h, &m);
            }
            break;
        case 2:   /* renamed */
        case 3: { /* linked */
            pick_name(in, b, sizeof(b));
            full_path(b, pb, sizeof(pb));
            model_find(&names, b, true);
            mfile *fb = model_find(&m, b, true);
            fa = model_find(&m, a, false); /* the table may have moved */
            if (fb == NULL || fa == NULL)
                break;
            rc = op == 2 ? sec_keys_rename_file(k, pa, pb) : sec_keys_link_file(k, pa, pb);
            FUZZ_CHECK(rc == 0);
            if (strcmp(a, b) == 0)
                break;
            if (fa->present) {
                fb->present = true;
                fb->c = fa->c;
                record(&h, &m);
                if (op == 2) {
                    fa->present = false;
                    record(&h, &m);
                }
            } else if (fb->present) {
                fb->present = false;
                record(&h, &m);
            }
            break;
        }
        case 4:
            FUZZ_CHECK(sec_keys_rotate(k) == 0);
            break;
        default: { /* looked up */
            bool found;
            rc = sec_keys_file_cipher(k, pa, &c, &found);
            FUZZ_CHECK(rc == 0);
            FUZZ_CHECK(found == fa->present);
            FUZZ_CHECK(!found || cipher_eq(&c, &fa->c));
            break;
        }
        }
        sec_cipher_wipe(&c);
    }
    json_decref(check_meta(k, &kk, (long)model_count(&m)));
    sec_keys_close(k);
    /* Reopened read-only (as tikv-ctl does), everything is as it was. */
    opts(&o, method, true);
    FUZZ_CHECK(sec_keys_open(&o, &k, err) == 0);
    FUZZ_CHECK(holds(k, &m, &names));
    json_decref(check_meta(k, &kk, (long)model_count(&m)));
    sec_keys_close(k);
    if (in->n > 0)
        damage_and_check(in, &h, &names, &kk);
}

/* ---- modes 1 and 2: untrusted dictionaries --------------------------------------------- */

static void open_untrusted(const known_keys *kk, int *rc_out, sec_keys **out)
{
    sec_enc_opts o;
    opts(&o, SEC_PLAINTEXT, true);
    char err[TKV_ERRMSG_LEN];
    int rc = sec_keys_open(&o, out, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT || rc == TKV_ECONFIG);
    if (rc != 0) {
        FUZZ_CHECK(err[0] != '\0');
        check_no_key(kk, err);
    }
    *rc_out = rc;
}

/* Looks every listed file up: found, or refused for naming a key that is missing. */
static void check_lookups(sec_keys *k, json_t *meta)
{
    json_t *files = json_object_get(meta, "files");
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *e = json_array_get(files, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        if (name == NULL) {
            /* Not UTF-8: listed in hex instead. */
            FUZZ_CHECK(json_string_value(json_object_get(e, "name_hex")) != NULL);
            continue;
        }
        if (strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue; /* a name our path lookups cannot spell as it is */
        char p[8192];
        if (snprintf(p, sizeof(p), "%s/%s", dict_dir, name) >= (int)sizeof(p))
            continue;
        sec_cipher c;
        bool found;
        int rc = sec_keys_file_cipher(k, p, &c, &found);
        FUZZ_CHECK(rc == 0 || rc == TKV_ECORRUPT || rc == -ENAMETOOLONG);
        FUZZ_CHECK(rc != 0 || found);
        sec_cipher_wipe(&c);
    }
}

static void mode_raw(fuzz_in *in)
{
    uint8_t flags = fuzz_u8(in);
    size_t klen = (size_t)fuzz_uint(in, 2);
    if (klen > in->n)
        klen = in->n;
    if (flags & 1)
        fuzz_write_file(key_path, in->p, klen);
    if (flags & 2)
        fuzz_write_file(file_path, in->p + klen, in->n - klen);
    known_keys kk;
    memset(&kk, 0, sizeof(kk));
    int rc;
    sec_keys *k;
    open_untrusted(&kk, &rc, &k);
    if (rc != 0)
        return;
    /* Random bytes are never a key dictionary sealed under our master key. */
    FUZZ_CHECK(!(flags & 1));
    json_t *meta = check_meta(k, &kk, -1);
    check_lookups(k, meta);
    json_decref(meta);
    sec_keys_close(k);
}

static void mode_sealed(fuzz_in *in)
{
    /* The payload as the input gives it, sealed properly. */
    const uint8_t *payload = in->p;
    size_t plen = in->n;
    static uint8_t file[32 + 16 + 65536];
    if (plen > 65536)
        plen = 65536;
    memcpy(file, kd_header, 32);
    FUZZ_CHECK(sec__gcm_seal(master, file + 20, file, 32, payload, plen, file + 32,
                             file + 32 + plen) == 0);
    fuzz_write_file(key_path, file, 32 + plen + 16);
    /* The model of the payload (sec_keys.c's header comment). */
    bool valid =
        plen >= 12 && (plen - 12) % 49 == 0 && sec__get_u32(payload + 8) == (plen - 12) / 49;
    size_t n = valid ? (plen - 12) / 49 : 0;
    uint64_t current = valid ? sec__get_u64(payload) : 0;
    bool has_current = current == 0;
    known_keys kk;
    memset(&kk, 0, sizeof(kk));
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = payload + 12 + i * 49;
        uint64_t id = sec__get_u64(e);
        size_t len = sec__method_key_len((sec_method)e[8]);
        if (id == 0 || len == 0)
            valid = false;
        has_current = has_current || id == current;
        note_key(&kk, e + 17, len);
    }
    valid = valid && has_current;
    int rc;
    sec_keys *k;
    open_untrusted(&kk, &rc, &k);
    FUZZ_CHECK(valid ? rc == 0 : rc == TKV_ECORRUPT);
    if (rc != 0)
        return;
    json_t *meta = check_meta(k, &kk, 0);
    FUZZ_CHECK((uint64_t)json_integer_value(json_object_get(meta, "current_key_id")) == current);
    json_t *keys = json_object_get(meta, "keys");
    FUZZ_CHECK(json_array_size(keys) == n);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = payload + 12 + i * 49;
        json_t *jk = json_array_get(keys, i);
        FUZZ_CHECK((uint64_t)json_integer_value(json_object_get(jk, "id")) == sec__get_u64(e));
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(jk, "method")),
                          sec_method_name((sec_method)e[8])) == 0);
        FUZZ_CHECK((uint64_t)json_integer_value(json_object_get(jk, "creation_time")) ==
                   sec__get_u64(e + 9));
    }
    json_decref(meta);
    sec_keys_close(k);
}

/* ---- mode 3: the master key file ------------------------------------------------------- */

static void mode_master_key(fuzz_in *in)
{
    fuzz_write_file(mk2_path, in->p, in->n);
    uint8_t key[32];
    char err[TKV_ERRMSG_LEN];
    int rc = sec_master_key_load(mk2_path, key, err);
    FUZZ_CHECK(rc == 0 || rc == TKV_ECONFIG);
    size_t n = in->n;
    while (n > 0 && (in->p[n - 1] == '\n' || in->p[n - 1] == '\r' || in->p[n - 1] == ' ' ||
                     in->p[n - 1] == '\t'))
        n--;
    bool valid = n == 64 && in->n <= 4096;
    for (size_t i = 0; valid && i < 64; i++)
        valid = sec__hex_digit(in->p[i]) >= 0;
    FUZZ_CHECK(valid ? rc == 0 : rc == TKV_ECONFIG);
    if (rc != 0) {
        FUZZ_CHECK(err[0] != '\0');
        /* The message never repeats the file's key-like contents (a run of hex digits). */
        size_t run = 0;
        while (run < in->n && run < 64 && sec__hex_digit(in->p[run]) >= 0)
            run++;
        if (run >= 16) {
            char probe[17];
            memcpy(probe, in->p, 16);
            probe[16] = '\0';
            FUZZ_CHECK(strstr(err, probe) == NULL);
        }
        return;
    }
    uint8_t want[32];
    FUZZ_CHECK(sec__hex_decode((const char *)in->p, 64, want) == 0);
    FUZZ_CHECK(memcmp(key, want, 32) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size == 0)
        return 0;
    fuzz_in in = fuzz_in_of(data + 1, size - 1);
    switch (data[0] % 4) {
    case 0:
        mode_round_trip(&in);
        break;
    case 1:
        mode_raw(&in);
        break;
    case 2:
        mode_sealed(&in);
        break;
    default:
        mode_master_key(&in);
        break;
    }
    clear_dict();
    return 0;
}
