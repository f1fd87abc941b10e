/*
 * cfg.h: configuration from TOML files with TiKV's key names, command-line overrides, TiKV's
 * readable sizes and durations, and a binding layer that fills a C struct.
 *
 * Owns: parsed documents (tkv_cfg_doc) and every value inside them. Values are borrowed
 * (const tkv_cfg_value *) and live until the document is freed or, for the value replaced,
 * until a tkv_cfg_set() overwrites it.
 * TOML: version 1.0 as configuration files use it: comments, bare/quoted/dotted keys, [tables]
 * and [dotted.tables], [[arrays of tables]], basic/literal/multi-line strings with every
 * escape, integers (decimal, 0x, 0o, 0b, underscores), floats (inf, nan), booleans, nested
 * arrays of mixed types, inline tables, and date-times (offset, local, date, time) kept as
 * their text. Duplicate keys and redefined tables are errors, input must be UTF-8, nesting is
 * bounded by TKV_CFG_MAX_DEPTH, and no input can trip an assertion.
 * Threads: a document is single-threaded while it is being changed (tkv_cfg_set); reading a
 * document that nobody changes is safe from any number of threads.
 * Errors: functions return 0 or a negative code: TKV_ECONFIG for bad input (the message, with
 * "name:line:column: " in front, goes to the caller's errmsg buffer of TKV_ERRMSG_LEN bytes,
 * which may be NULL), TKV_ENOTFOUND for a missing key, TKV_ETOOLARGE for input over
 * TKV_CFG_MAX_TEXT_LEN, -ENOMEM, -errno from file I/O, -EINVAL for a malformed path.
 * Ownership: tkv_cfg_parse() and tkv_cfg_load() give the caller a document to release with
 * tkv_cfg_free(); tkv_cfg_bind() fills caller structs whose strings are released with
 * tkv_cfg_unbind().
 * Dependencies: base.h (allocator, tkv_buf), log.h (unknown-key warnings by default).
 *
 * Usage (a server's start-up):
 *     static const tkv_cfg_field fields[] = {
 *         TKV_CFG_FIELD("server.addr", STR, my_cfg, addr, "\"127.0.0.1:20160\"", NULL),
 *         TKV_CFG_FIELD("raftstore.region-split-size", SIZE, my_cfg, split_bytes,
 *                       "\"96MiB\"", NULL),
 *     };
 *     tkv_cfg_doc *doc;
 *     char err[TKV_ERRMSG_LEN];
 *     int rc = tkv_cfg_load("tikv.toml", &doc, err);           // or tkv_cfg_new(&doc)
 *     if (rc == 0) rc = tkv_cfg_set(doc, "server.addr=\"0.0.0.0:20160\"", err);  // --set
 *     my_cfg cfg;
 *     if (rc == 0) rc = tkv_cfg_bind(doc, fields, TKV_ARRAY_LEN(fields), &cfg, NULL, NULL, err);
 *     tkv_cfg_free(doc);
 *     if (rc != 0) { fprintf(stderr, "%s\n", err); exit(1); }
 *     ...
 *     tkv_cfg_unbind(fields, TKV_ARRAY_LEN(fields), &cfg);
 */
#ifndef TKV_CFG_H
#define TKV_CFG_H

#include "base/base.h"

/* Tables and arrays nested deeper than this (counting every dotted-key level) are rejected. */
#define TKV_CFG_MAX_DEPTH 64
/* Longest document accepted (16 MiB): configuration files are small. */
#define TKV_CFG_MAX_TEXT_LEN (16u << 20)
/* Room for any string tkv_cfg_format_size() or tkv_cfg_format_duration() writes. */
#define TKV_CFG_FMT_LEN 64

typedef struct tkv_cfg_doc tkv_cfg_doc;
typedef struct tkv_cfg_value tkv_cfg_value;

/* The TOML value types. Date-times of all four kinds are TKV_CFG_DATETIME, kept as text. */
typedef enum tkv_cfg_type {
    TKV_CFG_STRING = 1,
    TKV_CFG_INTEGER,
    TKV_CFG_FLOAT,
    TKV_CFG_BOOL,
    TKV_CFG_DATETIME,
    TKV_CFG_ARRAY,
    TKV_CFG_TABLE,
} tkv_cfg_type;

/* ---- documents ------------------------------------------------------------------------- */

/* Parses the TOML document of @len bytes at @text (no NUL needed) into a new document.
 * @name names the source in error messages and value origins ("tikv.toml").
 * Errors: TKV_ECONFIG with "name:line:column: reason" in @errmsg (columns count characters
 * from 1), TKV_ETOOLARGE beyond TKV_CFG_MAX_TEXT_LEN, -ENOMEM. On error *@doc is NULL. */
TKV_MUST_USE int tkv_cfg_parse(const char *text, size_t len, const char *name, tkv_cfg_doc **doc,
                               char *errmsg);
/* Reads and parses the file at @path (named by @path in messages).
 * Errors: as tkv_cfg_parse(), and -errno when the file cannot be read (message in @errmsg). */
TKV_MUST_USE int tkv_cfg_load(const char *path, tkv_cfg_doc **doc, char *errmsg);
/* Creates an empty document (for a server started without a file). Errors: -ENOMEM. */
TKV_MUST_USE int tkv_cfg_new(tkv_cfg_doc **doc);
/* Releases @doc and every value in it; NULL is a no-op. */
void tkv_cfg_free(tkv_cfg_doc *doc);

/* Applies a command-line override "key.path=value" to @doc: the key is a TOML key (dotted,
 * quoted parts allowed) and the value a TOML value, so strings need their quotes:
 *     raftstore.region-split-size="96MiB"     server.grpc-concurrency=8
 *     pd.endpoints=["127.0.0.1:2379"]         security.encryption.master-key.type="file"
 * The value replaces any value at that path (a table too) and missing tables are created.
 * Values set here report "--set:1:column" as their origin.
 * Errors: TKV_ECONFIG (bad syntax; a part of the path that is a non-table value or an array
 * of tables), TKV_ETOOLARGE (longer than TKV_CFG_MAX_TEXT_LEN), -ENOMEM. On error the values of
 * @doc are unchanged. Thread: changes @doc. */
TKV_MUST_USE int tkv_cfg_set(tkv_cfg_doc *doc, const char *assignment, char *errmsg);

/* Writes @doc as TOML to @out (appending): plain keys first, then a [header] per table and
 * [[header]] per array-of-tables element. Parsing the output gives an equal document.
 * Floats use the shortest form that reads back exactly (C locale). Errors: -ENOMEM (@out
 * keeps what it had before the call). */
TKV_MUST_USE int tkv_cfg_dump(const tkv_cfg_doc *doc, tkv_buf *out);

/* Returns true when @a and @b hold the same data: same types, strings byte-equal, floats
 * equal (NaN equals NaN, 0.0 differs from -0.0), arrays equal in order, tables with the same
 * keys mapping to equal values in any order. How a table was written (header, dotted keys,
 * inline) does not matter. NULL equals only NULL. */
bool tkv_cfg_equal(const tkv_cfg_value *a, const tkv_cfg_value *b);

/* ---- lookups --------------------------------------------------------------------------- */

/* Returns the root table of @doc. Lifetime: until tkv_cfg_free(@doc). */
const tkv_cfg_value *tkv_cfg_root(const tkv_cfg_doc *doc);
/* Returns the value at the dotted @path ("security.encryption.master-key.type", parsed as a
 * TOML key, so "a.\"b.c\"" names key "b.c" in table a) under the root of @doc, or NULL when a
 * part is missing, a non-table is in the way, or @path is malformed. Plain dotted paths
 * allocate nothing; paths with quotes do, and give NULL when memory runs out. */
const tkv_cfg_value *tkv_cfg_get(const tkv_cfg_doc *doc, const char *path);
/* Like tkv_cfg_get() below the table @table (NULL when @table is not a table). */
const tkv_cfg_value *tkv_cfg_lookup(const tkv_cfg_value *table, const char *path);

/* Typed lookups at @path under the root of @doc. Each returns 0 and stores the value,
 * TKV_ENOTFOUND when nothing is there, TKV_ECONFIG when the value has another type, -EINVAL
 * for a malformed @path, or -ENOMEM (quoted paths only). Outputs are untouched on error. */
/* Stores the string's bytes (NUL-terminated, but may hold NULs: see @len, may be NULL). */
TKV_MUST_USE int tkv_cfg_get_str(const tkv_cfg_doc *doc, const char *path, const char **s,
                                 size_t *len);
TKV_MUST_USE int tkv_cfg_get_int(const tkv_cfg_doc *doc, const char *path, int64_t *v);
/* Accepts integers too (converted). */
TKV_MUST_USE int tkv_cfg_get_float(const tkv_cfg_doc *doc, const char *path, double *v);
TKV_MUST_USE int tkv_cfg_get_bool(const tkv_cfg_doc *doc, const char *path, bool *v);
/* Stores the array value; walk it with tkv_cfg_len() and tkv_cfg_at(). */
TKV_MUST_USE int tkv_cfg_get_array(const tkv_cfg_doc *doc, const char *path,
                                   const tkv_cfg_value **arr);
/* Stores the table value; walk it with tkv_cfg_len(), tkv_cfg_key_at(), tkv_cfg_at(). */
TKV_MUST_USE int tkv_cfg_get_table(const tkv_cfg_doc *doc, const char *path,
                                   const tkv_cfg_value **table);

/* ---- values ---------------------------------------------------------------------------- */

/* Returns the type of @v. */
tkv_cfg_type tkv_cfg_type_of(const tkv_cfg_value *v);
/* Returns a static name for @t ("string", "integer", "float", "boolean", "datetime", "array",
 * "table"). */
const char *tkv_cfg_type_name(tkv_cfg_type t);
/* Returns the text of a string or date-time value (NUL-terminated; its length in @len if not
 * NULL), or NULL for other types. */
const char *tkv_cfg_str(const tkv_cfg_value *v, size_t *len);
/* Returns an integer value (0 for other types). */
int64_t tkv_cfg_int(const tkv_cfg_value *v);
/* Returns a float value, an integer converted, or 0 for other types. */
double tkv_cfg_float(const tkv_cfg_value *v);
/* Returns a boolean value (false for other types). */
bool tkv_cfg_bool(const tkv_cfg_value *v);
/* Returns the number of elements of an array or keys of a table (0 for other types). */
size_t tkv_cfg_len(const tkv_cfg_value *v);
/* Returns element @i of an array or the value of key @i of a table (in the order written),
 * or NULL when @i is out of range. */
const tkv_cfg_value *tkv_cfg_at(const tkv_cfg_value *v, size_t i);
/* Returns key @i of table @v (NUL-terminated; length in @len if not NULL; keys may hold
 * NULs), or NULL when @v is not a table or @i is out of range. Use it to find unknown keys. */
const char *tkv_cfg_key_at(const tkv_cfg_value *v, size_t i, size_t *len);
/* Returns the name of the source @v came from (the file name, "--set") and stores where it
 * starts there (1-based line and column) in @line and @col (each may be NULL). */
const char *tkv_cfg_origin(const tkv_cfg_value *v, unsigned *line, unsigned *col);

/* ---- TiKV's readable values ------------------------------------------------------------ */

/* Parses a TiKV readable size: a decimal number (a fraction allowed: "1.5GiB") and a unit,
 * B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB or P/PB/PiB, all powers of 1024 as in TiKV; no
 * unit means bytes. Spaces around are ignored. Fractions of a byte are dropped.
 * Errors: TKV_ECONFIG (empty, bad number, unknown unit, more than 2^64-1 bytes) with the
 * reason in @errmsg (may be NULL). */
TKV_MUST_USE int tkv_cfg_parse_size(const char *s, size_t len, uint64_t *bytes, char *errmsg);
/* Parses a TiKV readable duration: numbers (fractions allowed) with units d, h, m, s, ms, each
 * unit at most once and from largest to smallest ("1h", "1m30s", "500ms", "1.5h", "1d 12h").
 * The result is in milliseconds (smaller fractions are dropped). Unlike TiKV the empty string
 * is an error, not zero. Errors: TKV_ECONFIG (empty, bad number, unknown or repeated unit,
 * out of order, over 2^64-1 ms) with the reason in @errmsg (may be NULL). */
TKV_MUST_USE int tkv_cfg_parse_duration(const char *s, size_t len, uint64_t *ms, char *errmsg);
/* Writes @bytes as TiKV prints sizes ("96MiB", "1GiB", "0KiB"; "1000B" when not a whole number
 * of KiB) into @out (@cap bytes, TKV_CFG_FMT_LEN is always enough) and returns its length. */
size_t tkv_cfg_format_size(uint64_t bytes, char *out, size_t cap);
/* Writes @ms as TiKV prints durations ("1h30m", "1m30s500ms", "0s") and returns its length. */
size_t tkv_cfg_format_duration(uint64_t ms, char *out, size_t cap);

/* ---- binding to C structs -------------------------------------------------------------- */

/* What a field holds, and which TOML values it accepts. */
typedef enum tkv_cfg_kind {
    TKV_CFG_K_BOOL,     /* bool; a boolean */
    TKV_CFG_K_INT,      /* int; an integer in int's range */
    TKV_CFG_K_I64,      /* int64_t; an integer */
    TKV_CFG_K_U64,      /* uint64_t; a non-negative integer */
    TKV_CFG_K_F64,      /* double; a float or an integer */
    TKV_CFG_K_STR,      /* char * (owned, tkv_malloc'd); a string without NUL characters */
    TKV_CFG_K_STRLIST,  /* tkv_cfg_strlist (owned); an array of such strings */
    TKV_CFG_K_SIZE,     /* uint64_t bytes; a readable-size string or an integer of bytes */
    TKV_CFG_K_DURATION, /* uint64_t milliseconds; a readable-duration string */
    /* char * (owned); a boolean, stored as "true" or "false", or a string without NUL
     * characters: for TiKV keys that take either (security.redact-info-log = true | "marker") */
    TKV_CFG_K_BOOLSTR,
} tkv_cfg_kind;

/* A bound list of strings ("pd.endpoints"). Owned by the struct it is in. */
typedef struct tkv_cfg_strlist {
    char **items;
    size_t len;
} tkv_cfg_strlist;

/* A field validator: returns 0 when the bound value at @field (of the field's kind) is
 * acceptable, else non-zero with a reason in @msg (@cap bytes). */
typedef int (*tkv_cfg_check_fn)(const void *field, char *msg, size_t cap);

/* One configuration key bound to a struct member. */
typedef struct tkv_cfg_field {
    const char *key;        /* dotted TiKV name: "raftstore.region-split-size" */
    tkv_cfg_kind kind;      /* the member's type */
    size_t offset;          /* offsetof(struct, member) */
    const char *def;        /* default as a TOML value ("\"96MiB\"", "4", "true"); NULL = 0 */
    tkv_cfg_check_fn check; /* NULL accepts every value of the kind */
} tkv_cfg_field;

/* Builds a tkv_cfg_field: TKV_CFG_FIELD("server.addr", STR, my_cfg, addr, "\"x\"", NULL). */
#define TKV_CFG_FIELD(key, kind, type, member, def, check)                                         \
    {                                                                                              \
        (key), TKV_CFG_K_##kind, offsetof(type, member), (def), (check)                            \
    }

/* Receives one warning line ("tikv.toml:3:1: unknown configuration key 'server.adr'"). */
typedef void (*tkv_cfg_warn_fn)(void *arg, const char *msg);

/* Fills the struct at @out from @doc (NULL: defaults only) through the @n @fields: every field
 * first gets its default, then the document's value when there is one, then its validator
 * runs. Keys in @doc that no field names are reported through @warn (NULL logs them at WARN
 * level) as "name:line:column: unknown configuration key 'a.b'"; an unknown table is reported
 * once. The members' previous contents are overwritten, not freed.
 * Errors: TKV_ECONFIG when a value has the wrong type, is out of range, fails to parse as a
 * size or duration, or fails its validator, or when a table on a field's path holds another
 * type; the message names the origin and key ("tikv.toml:4:29: raftstore.region-split-size:
 * unknown size unit 'XB'"); errors in defaults name "default". -ENOMEM. On error every
 * member is released as by tkv_cfg_unbind(). */
TKV_MUST_USE int tkv_cfg_bind(const tkv_cfg_doc *doc, const tkv_cfg_field *fields, size_t n,
                              void *out, tkv_cfg_warn_fn warn, void *warn_arg, char *errmsg);
/* Releases the strings and lists of the struct at @out bound through @fields and zeroes them;
 * other members are left alone. Safe to call twice. */
void tkv_cfg_unbind(const tkv_cfg_field *fields, size_t n, void *out);

#endif /* TKV_CFG_H */
