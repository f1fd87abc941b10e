/*
 * pd_sec.c: pd-server's storage security (issue 9): the [security.encryption] keys of the
 * configuration file, bound with src/security's table, and the runtime that keeps PD's data
 * directory private and its on-disk store encrypted (contract in pd.h).
 */
#include <stdio.h>

#include "base/cfg.h"
#include "pd/pd.h"
#include "security/config.h"

/* The file holds many keys this binding does not know (the server's own): not warned about
 * here. */
static void ignore_key(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

int pd_security_open(const char *config_path, const char *data_dir, sec_runtime **out,
                     char errmsg[TKV_ERRMSG_LEN])
{
    *out = NULL;
    sec_config sc;
    memset(&sc, 0, sizeof(sc));
    tkv_cfg_doc *doc = NULL;
    int rc = config_path != NULL && config_path[0] != '\0' ? tkv_cfg_load(config_path, &doc, errmsg)
                                                           : tkv_cfg_new(&doc);
    if (rc != 0)
        return rc;
    /* Only the encryption keys matter here: PD names its TLS paths differently (cacert-path),
     * and every other key is pd_config's. */
    rc = tkv_cfg_bind(doc, sec_config_fields, SEC_CONFIG_N_FIELDS, &sc, ignore_key, NULL, errmsg);
    tkv_cfg_free(doc);
    if (rc != 0)
        return rc;
    sec_runtime_opts so;
    sec_runtime_opts_init(&so);
    so.name = "pd";
    so.data_dir = data_dir;
    so.config = &sc;
    rc = sec_runtime_open(&so, out, errmsg);
    if (rc == 0)
        rc = sec_runtime_start(*out);
    if (rc != 0 && *out != NULL) {
        sec_runtime_close(*out);
        *out = NULL;
    }
    tkv_cfg_unbind(sec_config_fields, SEC_CONFIG_N_FIELDS, &sc);
    return rc;
}
