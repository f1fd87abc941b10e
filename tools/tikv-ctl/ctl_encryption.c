/*
 * ctl_encryption.c: `tikv-ctl encryption-meta`, TiKV's offline look at a data directory's
 * encryption metadata (issue 9): the data keys (id, method, creation time) and the files
 * encrypted with them (name, key id, method, IV), never key material. Opens the key
 * dictionary read-only with the master key of the store's configuration, so it needs
 * [security.encryption] from --config, and reads the data directory from --data-dir (or the
 * configuration's storage.data-dir).
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/cfg.h"
#include "ctl.h"
#include "security/config.h"

/* Keeps the files of @meta whose name is @path (relative to @dir, or absolute under it). */
static void filter_files(json_t *meta, const char *dir, const char *path)
{
    size_t dn = strlen(dir);
    if (strncmp(path, dir, dn) == 0 && path[dn] == '/')
        path += dn + 1;
    json_t *files = json_object_get(meta, "files");
    for (size_t i = json_array_size(files); i-- > 0;) {
        const char *name = json_string_value(json_object_get(json_array_get(files, i), "name"));
        if (name == NULL || strcmp(name, path) != 0)
            json_array_remove(files, i);
    }
}

/* Prints the part of @meta the subcommand asks for. */
static int print_meta(const ctl_opts *o, json_t *meta, const char *dir)
{
    const char *sub = o->n_pos > 1 ? o->pos[1] : "";
    if (strcmp(sub, "dump-key") == 0) {
        json_object_del(meta, "files");
    } else if (strcmp(sub, "dump-file") == 0) {
        json_object_del(meta, "keys");
        if (o->enc_path != NULL)
            filter_files(meta, dir, o->enc_path);
    } else if (sub[0] != '\0') {
        fprintf(stderr,
                "tikv-ctl: encryption-meta: unknown subcommand '%s' (dump-key, "
                "dump-file)\n",
                sub);
        return CTL_USAGE;
    }
    char *text = json_dumps(meta, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL)
        return CTL_FAILED;
    puts(text);
    free(text);
    return CTL_OK;
}

/* The file holds many keys this binding does not know (the server's own): not warned about
 * here. */
static void ignore_key(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

int ctl_encryption_meta(const ctl_opts *o)
{
    if (o->config_path == NULL) {
        fprintf(stderr, "tikv-ctl: encryption-meta needs --config (the store's TOML, for "
                        "[security.encryption])\n");
        return CTL_USAGE;
    }
    char err[TKV_ERRMSG_LEN] = "";
    tkv_cfg_doc *doc = NULL;
    if (tkv_cfg_load(o->config_path, &doc, err) != 0) {
        fprintf(stderr, "tikv-ctl: %s\n", err);
        return CTL_USAGE;
    }
    sec_config sc;
    int rc = tkv_cfg_bind(doc, sec_config_fields, SEC_CONFIG_N_FIELDS, &sc, ignore_key, NULL, err);
    char dir[1024] = "";
    const char *s = NULL;
    size_t len = 0;
    if (o->data_dir != NULL)
        snprintf(dir, sizeof(dir), "%s", o->data_dir);
    else if (tkv_cfg_get_str(doc, "storage.data-dir", &s, &len) == 0 && len < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", (int)len, s);
    tkv_cfg_free(doc);
    if (rc != 0) {
        fprintf(stderr, "tikv-ctl: %s\n", err);
        return CTL_USAGE;
    }
    int out = CTL_OK;
    sec_enc_opts eo;
    sec_keys *k = NULL;
    if (dir[0] == '\0') {
        fprintf(stderr, "tikv-ctl: encryption-meta needs --data-dir (or storage.data-dir)\n");
        out = CTL_USAGE;
    } else if (!sec_config_encryption_on(&sc)) {
        fprintf(stderr, "tikv-ctl: %s: [security.encryption.master-key] is not configured\n",
                o->config_path);
        out = CTL_USAGE;
    } else if (sec_config_enc_opts(&sc, dir, &eo, err) != 0) {
        fprintf(stderr, "tikv-ctl: %s\n", err);
        out = CTL_USAGE;
    } else {
        eo.read_only = true;
        if (sec_keys_open(&eo, &k, err) != 0) {
            fprintf(stderr, "tikv-ctl: open the key dictionary in %s: %s\n", dir, err);
            out = CTL_FAILED;
        }
    }
    tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &sc);
    if (out != CTL_OK)
        return out;
    tkv_buf b;
    tkv_buf_init(&b);
    json_t *meta = NULL;
    if (sec_encryption_meta(k, &b) == 0)
        meta = json_loadb((const char *)b.data, b.len, 0, NULL);
    sec_keys_close(k);
    tkv_buf_deinit(&b);
    if (meta == NULL) {
        fprintf(stderr, "tikv-ctl: cannot describe the key dictionary\n");
        return CTL_FAILED;
    }
    out = print_meta(o, meta, dir);
    json_decref(meta);
    return out;
}
