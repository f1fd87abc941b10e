package raftstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tikv-c/compat/cluster"
)

// A replica kept down while the others compact their raft logs catches up through a
// snapshot when it comes back.
func TestLaggingReplicaCatchesUpBySnapshot(t *testing.T) {
	cfg := fastTiKV + `
raft-log-gc-threshold = 10
raft-log-gc-count-limit = 100
`
	c := cluster.Start(t, cluster.Options{Stores: 3, TiKVConfig: cfg, PDConfig: fastPD})
	pdc := c.PDClient()
	defer pdc.Close()
	waitReplicated(t, pdc, 3, 90*time.Second)
	cli := newRawClient(t, c)
	ids := storeIDs(t, c, pdc)

	// Keep down a store that leads nothing.
	leaders := map[uint64]bool{}
	for _, r := range regions(t, pdc) {
		leaders[r.Leader.GetStoreId()] = true
	}
	down := -1
	for i := range c.Stores {
		if !leaders[ids[i]] {
			down = i
			break
		}
	}
	if down < 0 {
		t.Fatalf("every store leads a region")
	}
	c.Stores[down].Stop(false)

	const n = 3000
	prefix := "snap/"
	val := func(i int) []byte { return []byte(fmt.Sprintf("v%d", i)) }
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := cli.Put(ctx, key(prefix, i), val(i))
		cancel()
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	c.RestartStore(down)
	waitFor(t, 60*time.Second, "snapshot applied on the restarted store", func() (bool, string) {
		v := metric(t, c.Stores[down].Status, "tikv_raftstore_snapshot_traffic_total",
			`type="applied"`)
		return v >= 1, fmt.Sprintf("applied snapshots: %v", v)
	})
	waitReplicated(t, pdc, 3, 60*time.Second)
	// The restarted replica is now needed for a quorum: its data must be complete.
	other := (down + 1) % 3
	c.Stores[other].Stop(false)
	readBack(t, cli, prefix, n, val)
}
