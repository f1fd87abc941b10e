/*
 * fake_pd.h: a fake PD cluster for the PD client and libtikvc tests, on rpc_server.
 *
 * One to three members on 127.0.0.1 (random ports); one is the leader. Followers answer
 * GetMembers (naming the leader) and fail every other call with UNAVAILABLE "not leader",
 * as a real PD follower does. The fake holds the cluster's truth that the fake stores
 * (fake_store.h) route by: regions (key ranges, epochs, peers, leaders) and stores.
 *
 * Served: GetMembers, Tso (stream), GetRegion, GetPrevRegion, GetRegionByID, ScanRegions,
 * GetStore, GetAllStores, IsBootstrapped, Bootstrap, AllocID, PutStore, StoreHeartbeat,
 * RegionHeartbeat (stream; answers each heartbeat with a TransferLeader operator naming the
 * heartbeat's leader), AskBatchSplit, ReportBatchSplit, GetGCSafePoint, UpdateGCSafePoint,
 * etcd KV Range and Put.
 *
 * Threads: handlers run on the members' completion-queue threads; every field below is
 * guarded by `mu` (tests take it to read counters or change the truth).
 */
#ifndef TKV_TEST_FAKE_PD_H
#define TKV_TEST_FAKE_PD_H

#include <pthread.h>

#include "base/base.h"
#include "metapb.pb-c.h"
#include "rpc/rpc.h"

#define FPD_MAX_MEMBERS 3
#define FPD_MAX_REGIONS 64
#define FPD_MAX_PEERS   3
#define FPD_MAX_STORES  8
#define FPD_MAX_KEY     64
#define FPD_MAX_TSO_LOG 4096
#define FPD_MAX_STREAMS 16
#define FPD_MAX_ETCD    8
#define FPD_WAIT_MS     10000

/* Counted methods. */
enum {
    FPD_GET_MEMBERS,
    FPD_TSO,
    FPD_GET_REGION,
    FPD_GET_PREV_REGION,
    FPD_GET_REGION_BY_ID,
    FPD_SCAN_REGIONS,
    FPD_GET_STORE,
    FPD_GET_ALL_STORES,
    FPD_IS_BOOTSTRAPPED,
    FPD_BOOTSTRAP,
    FPD_ALLOC_ID,
    FPD_PUT_STORE,
    FPD_STORE_HEARTBEAT,
    FPD_REGION_HEARTBEAT,
    FPD_ASK_BATCH_SPLIT,
    FPD_REPORT_BATCH_SPLIT,
    FPD_GET_GC_SAFE_POINT,
    FPD_UPDATE_GC_SAFE_POINT,
    FPD_ETCD_RANGE,
    FPD_ETCD_PUT,
    FPD_N_METHODS,
};

typedef struct fpd_peer {
    uint64_t id;
    uint64_t store_id;
} fpd_peer;

typedef struct fpd_region {
    uint64_t id;
    uint8_t start[FPD_MAX_KEY];
    size_t start_len;
    uint8_t end[FPD_MAX_KEY]; /* empty: +infinity */
    size_t end_len;
    uint64_t conf_ver;
    uint64_t version;
    fpd_peer peers[FPD_MAX_PEERS];
    size_t n_peers;
    size_t leader; /* index into peers */
} fpd_region;

typedef struct fpd_store {
    uint64_t id;
    char addr[64];
    int state; /* metapb StoreState */
} fpd_store;

typedef struct fpd_stream {
    rpc_call *call;
    int member;
} fpd_stream;

typedef struct fake_pd {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t cluster_id;
    int n_members;
    rpc_server *srv[FPD_MAX_MEMBERS];
    char addr[FPD_MAX_MEMBERS][64];
    int leader;
    struct fpd_member_ud {
        struct fake_pd *pd;
        int idx;
    } ud[FPD_MAX_MEMBERS];

    int calls[FPD_N_METHODS];
    int not_leader_answers;
    /* fake_pd_set_leader leaves open streams alone (a leader change the clients have not
     * noticed yet: their next unary call meets "not leader"). */
    bool quiet_leader_change;

    /* cluster truth */
    bool bootstrapped;
    uint64_t next_id;
    fpd_region regions[FPD_MAX_REGIONS]; /* sorted by start key */
    size_t n_regions;
    fpd_store stores[FPD_MAX_STORES];
    size_t n_stores;
    int region_lookups_fail; /* the next N region lookups answer UNAVAILABLE */
    /* When non-zero, region answers name the peer on this store as the leader, whatever the
     * truth (a PD that has not heard the last election yet). */
    uint64_t stale_leader_store;
    uint8_t last_region_key[FPD_MAX_KEY]; /* key of the last GetRegion / GetPrevRegion */
    size_t last_region_key_len;

    /* TSO */
    int64_t tso_physical;
    int64_t tso_logical;
    uint32_t tso_counts[FPD_MAX_TSO_LOG]; /* count of each TsoRequest, in order */
    size_t n_tso_reqs;
    bool tso_hold; /* park Tso requests until fake_pd_tso_release */
    rpc_call *tso_held[FPD_MAX_TSO_LOG];
    uint32_t tso_held_count[FPD_MAX_TSO_LOG];
    size_t n_tso_held;
    fpd_stream streams[FPD_MAX_STREAMS]; /* open Tso and RegionHeartbeat calls */

    /* server-side calls */
    uint64_t last_heartbeat_region;
    uint64_t gc_safe_point;
    uint64_t last_sender_id;
    uint64_t last_cluster_id_seen;
    struct {
        char key[64];
        char value[64];
    } etcd[FPD_MAX_ETCD];
    size_t n_etcd;
} fake_pd;

/* Makes the servers of fakes started from now on use @tls (NULL: plaintext); @tls must stay
 * valid while they start. */
void fpd_set_server_tls(const rpc_tls *tls);
/* Returns the TLS setting of fpd_set_server_tls. */
const rpc_tls *fpd_server_tls(void);

/* Starts @n_members members (member 0 leads) with cluster id @cluster_id. Fails the test on
 * error. */
void fake_pd_start(fake_pd *p, int n_members, uint64_t cluster_id);
/* Stops every member and frees what the fake holds. */
void fake_pd_stop(fake_pd *p);
/* Makes member @idx the leader; streams open on the former leader end with UNAVAILABLE. */
void fake_pd_set_leader(fake_pd *p, int idx);
/* Stops member @idx (its server goes away; a later fake_pd_stop skips it). */
void fake_pd_kill_member(fake_pd *p, int idx);

/* Returns the number of calls of @method so far. */
int fake_pd_calls(fake_pd *p, int method);
/* Waits until calls[@method] >= @want; returns false after FPD_WAIT_MS. */
bool fake_pd_wait_calls(fake_pd *p, int method, int want);

/* Truth editing (takes mu). Keys are bytes as PD stores them. */
void fake_pd_add_store(fake_pd *p, uint64_t id, const char *addr);
/* Adds a region [start, end) with peers on @store_ids (peer ids id*10+i), leader index 0. */
void fake_pd_add_region(fake_pd *p, uint64_t id, tkv_slice start, tkv_slice end,
                        const uint64_t *store_ids, size_t n_stores);
/* Splits region @id at @key: the left part keeps @id, the right part gets @new_id; both get
 * version + 1 (as TiKV's BatchSplit does). */
void fake_pd_split(fake_pd *p, uint64_t id, tkv_slice key, uint64_t new_id);
/* As fake_pd_split, with mu held by the caller. */
void fake_pd_split_locked(fake_pd *p, uint64_t id, tkv_slice key, uint64_t new_id);
/* Moves region @id's leadership to its peer on @store_id. */
void fake_pd_set_region_leader(fake_pd *p, uint64_t id, uint64_t store_id);
/* Returns the index of region @id, or -1. Under mu. */
int fake_pd_region_index(fake_pd *p, uint64_t id);

/* Releases every parked Tso request (answering each) and stops parking. */
void fake_pd_tso_release(fake_pd *p);

/* Initializes @cv on the monotonic clock (for fpd_cond_wait_ms). */
void fpd_cond_init(pthread_cond_t *cv);
/* Waits on @cv (initialized by fpd_cond_init) for at most @ms milliseconds. */
void fpd_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms);

/* A metapb Region message built over caller storage. */
typedef struct fpd_region_msg {
    Metapb__Region r;
    Metapb__RegionEpoch ep;
    Metapb__Peer peers[FPD_MAX_PEERS];
    Metapb__Peer *pp[FPD_MAX_PEERS];
    Metapb__Peer leader;
} fpd_region_msg;

/* Fills @m from @r; the message borrows @r's keys (keep @r unchanged while it is used). */
void fpd_region_to_msg(const fpd_region *r, fpd_region_msg *m);

#endif /* TKV_TEST_FAKE_PD_H */
