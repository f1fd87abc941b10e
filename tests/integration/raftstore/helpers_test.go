// Package raftstore holds tikv-c's replication integration tests: real pd-server and
// tikv-server processes on 127.0.0.1 (random ports, temporary directories, stopped by PID)
// driven by the official Go client and raw gRPC calls.
package raftstore

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tikv-c/compat/cluster"
	"github.com/tikv/client-go/v2/rawkv"
	pd "github.com/tikv/pd/client"
)

// fastTiKV makes a test cluster react in seconds: 100 ms Raft ticks (1 s election timeout),
// heartbeats every second, frequent split checks and log compaction.
const fastTiKV = `
[storage]
enable-ttl = true

[raftstore]
raft-base-tick-interval = "100ms"
pd-heartbeat-tick-interval = "1s"
pd-store-heartbeat-tick-interval = "1s"
split-region-check-tick-interval = "500ms"
raft-log-gc-tick-interval = "500ms"
`

// fastPD lets PD move several replicas at once.
const fastPD = `
[schedule]
max-snapshot-count = 16
max-pending-peer-count = 64
`

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	cluster.WaitFor(t, timeout, what, cond)
}

func newRawClient(t *testing.T, c *cluster.Cluster) *rawkv.Client {
	t.Helper()
	cli, err := rawkv.NewClientWithOpts(context.Background(), c.PDAddrs())
	if err != nil {
		t.Fatalf("raw client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// regions returns every region with its leader, through PD.
func regions(t *testing.T, pdc pd.Client) []*pd.Region {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := pdc.ScanRegions(ctx, nil, nil, 100000)
	if err != nil {
		t.Logf("scan regions: %v", err)
		return nil
	}
	return rs
}

// storeIDs maps each store process (by index) to its store id, through PD's addresses.
func storeIDs(t *testing.T, c *cluster.Cluster, pdc pd.Client) map[int]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stores, err := pdc.GetAllStores(ctx)
	if err != nil {
		t.Fatalf("get stores: %v", err)
	}
	out := map[int]uint64{}
	for i, p := range c.Stores {
		for _, s := range stores {
			if s.GetAddress() == p.Addr {
				out[i] = s.GetId()
			}
		}
	}
	return out
}

// waitReplicated waits until every region has @n voters, a leader, and no pending or down
// peers.
func waitReplicated(t *testing.T, pdc pd.Client, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "regions fully replicated", func() (bool, string) {
		rs := regions(t, pdc)
		if len(rs) == 0 {
			return false, "no regions"
		}
		for _, r := range rs {
			voters := 0
			for _, p := range r.Meta.GetPeers() {
				if p.GetRole().String() == "Voter" {
					voters++
				}
			}
			if voters != n || r.Leader == nil || len(r.PendingPeers) > 0 || len(r.DownPeers) > 0 {
				return false, fmt.Sprintf("region %d: %d voters, leader %v, %d pending, %d down",
					r.Meta.GetId(), voters, r.Leader != nil, len(r.PendingPeers), len(r.DownPeers))
			}
		}
		return true, ""
	})
}

// metric returns the sum of the samples of @name whose labels contain @labels, read from a
// store's /metrics.
func metric(t *testing.T, status, name, labels string) float64 {
	resp, err := http.Get("http://" + status + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? ([0-9.eE+-]+)$`)
	sum := 0.0
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		if labels != "" && !strings.Contains(m[1], labels) {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func key(prefix string, i int) []byte { return []byte(fmt.Sprintf("%s%08d", prefix, i)) }

// readBack checks every key in [0, n) of @prefix with batch gets; @want gives the value.
func readBack(t *testing.T, cli *rawkv.Client, prefix string, n int, want func(i int) []byte) {
	t.Helper()
	const chunk = 256
	for lo := 0; lo < n; lo += chunk {
		hi := lo + chunk
		if hi > n {
			hi = n
		}
		var keys [][]byte
		for i := lo; i < hi; i++ {
			keys = append(keys, key(prefix, i))
		}
		// A transient failure (a store that just restarted, a leader moving) is retried; a
		// wrong or missing value never is.
		var vals [][]byte
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			vals, err = cli.BatchGet(ctx, keys)
			cancel()
			if err == nil {
				break
			}
			t.Logf("batch get %d..%d: %v (retrying)", lo, hi, err)
		}
		if err != nil {
			t.Fatalf("batch get %d..%d: %v", lo, hi, err)
		}
		for i := lo; i < hi; i++ {
			w := want(i)
			if string(vals[i-lo]) != string(w) {
				t.Fatalf("key %s = %q, want %q", keys[i-lo], vals[i-lo], w)
			}
		}
	}
}
