/*
 * pd_testutil.h: helpers the pd unit tests share: temporary directories, a fake clock, a
 * cluster over in-memory storage with stores and regions built from compact descriptions,
 * and a recorder for the operator commands PD sends on heartbeat streams.
 *
 * Owns: the fixture's storage, ID allocator, cluster and recorded commands (tc_close
 * releases them). Single-threaded.
 */
#ifndef TKV_TEST_PD_TESTUTIL_H
#define TKV_TEST_PD_TESTUTIL_H

#include "pd/pd_int.h"

/* Returns TKV_SEED from the environment, or a fresh seed (printed either way). */
uint64_t pdt_seed(void);
/* Creates a temporary directory from @tmpl ("/tmp/pd-XXXXXX") in place; fails the test on
 * error. */
void pdt_mkdtemp(char *tmpl);
/* Removes the directory tree at @path. */
void pdt_rmtree(const char *path);

/* A fake millisecond clock; pass pdt_clock_read and a pointer to it as clock and ud. */
uint64_t pdt_clock_read(void *ud);

/* One command received on a heartbeat stream. */
typedef struct pdt_cmd {
    uint64_t store_id; /* the stream's store */
    uint64_t region_id;
    enum { PDT_NONE, PDT_CHANGE_PEER, PDT_TRANSFER, PDT_SPLIT } kind;
    int change_type; /* ERAFTPB__CONF_CHANGE_TYPE__* */
    uint64_t peer_id, peer_store;
    int peer_role;
    size_t nsplit_keys;
    int split_policy;
} pdt_cmd;

#define PDT_MAX_CMDS 4096

/* A region as a test describes it. Keys are strings ("" is unbounded). */
typedef struct pdt_region {
    uint64_t id;
    char start[32], end[32];
    uint64_t version, conf_ver;
    size_t n;
    uint64_t peer_ids[8], stores[8];
    bool learner[8];
    uint64_t leader_store;
    uint64_t pending_peer; /* a peer id reported pending, or 0 */
    uint64_t down_peer;    /* a peer id reported down, or 0 */
    uint64_t approximate_size;
} pdt_region;

typedef struct pdt_cluster {
    pd_storage *st;
    pd_id_alloc ids;
    pd_cluster *c;
    uint64_t now;
    pdt_cmd cmds[PDT_MAX_CMDS];
    size_t ncmds;
} pdt_cluster;

/* Opens a cluster over in-memory storage with @cfg (NULL: defaults) and the fake clock at
 * 1,000,000 ms; the command recorder is installed. */
void pdt_open(pdt_cluster *t, const pd_sched_cfg *cfg);
/* Frees everything. */
void pdt_close(pdt_cluster *t);
/* Bootstraps with store @store_id and a first region (id @region_id, one peer @peer_id). */
void pdt_bootstrap(pdt_cluster *t, uint64_t store_id, uint64_t region_id, uint64_t peer_id);
/* PutStore with address "127.0.0.1:<20160+id>" and labels "k=v,k=v" (may be NULL). */
void pdt_put_store(pdt_cluster *t, uint64_t id, const char *labels);
/* Sends a store heartbeat for @id at the current fake time. */
void pdt_store_hb(pdt_cluster *t, uint64_t id);
/* Heartbeats every store. */
void pdt_store_hb_all(pdt_cluster *t);
/* Sends a region heartbeat; returns the pd_result type (0 for OK). */
int pdt_region_hb(pdt_cluster *t, const pdt_region *r);
/* Builds the pdt_region describing the region @id as PD holds it (fails if absent). */
void pdt_region_get(pdt_cluster *t, uint64_t id, pdt_region *out);
/* Applies @cmd to @r as a store would (peer changes bump conf_ver, transfers move the
 * leader). Returns false for commands it cannot apply (splits). */
bool pdt_apply(pdt_region *r, const pdt_cmd *cmd);
/* Returns the operator of region @id (NULL when none); the cluster mutex is not held. */
pd_operator *pdt_op(pdt_cluster *t, uint64_t id);
/* Forgets recorded commands. */
void pdt_clear_cmds(pdt_cluster *t);

#endif /* TKV_TEST_PD_TESTUTIL_H */
