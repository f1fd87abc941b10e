package raftstore

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tikv-c/compat/cluster"
)

// smallRegions splits regions at about 1 MiB (appended to fastTiKV, inside [raftstore]).
const smallRegions = `region-split-check-diff = "128KiB"

[coprocessor]
region-split-size = "1MiB"
region-max-size = "1536KiB"
`

// With a 1 MiB split size, writing 50 MiB splits the data into many regions while clients
// keep reading and writing across the splits without errors surfacing.
func TestSplitUnderLoad(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Stores: 3, TiKVConfig: fastTiKV + smallRegions,
		PDConfig: fastPD})
	pdc := c.PDClient()
	defer pdc.Close()
	waitReplicated(t, pdc, 3, 90*time.Second)
	cli := newRawClient(t, c)

	const n = 12800 // 4 KiB values: 50 MiB
	const workers = 16
	prefix := "split/"
	val := func(i int) []byte {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, 4096)
		copy(v, fmt.Sprintf("%d:", i))
		return v
	}
	var next int64 = -1
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				err := cli.Put(ctx, key(prefix, i), val(i))
				if err == nil && i%64 == 63 {
					// Read something written earlier: it may have moved to another region.
					var v []byte
					v, err = cli.Get(ctx, key(prefix, i/2))
					if err == nil && !bytes.Equal(v, val(i/2)) {
						err = fmt.Errorf("get %d returned %d bytes", i/2, len(v))
					}
				}
				cancel()
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("op %d: %w", i, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		t.Fatalf("an error surfaced to the client: %v", e)
	}
	waitFor(t, 60*time.Second, "regions split", func() (bool, string) {
		rs := regions(t, pdc)
		return len(rs) >= 20, fmt.Sprintf("%d regions", len(rs))
	})
	t.Logf("%d regions after writing 50 MiB", len(regions(t, pdc)))
	readBack(t, cli, prefix, n, val)
	// A scan crosses every region boundary and sees every key once, in order.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := 0
	start := key(prefix, 0)
	for {
		keys, _, err := cli.Scan(ctx, start, key(prefix, n), 1000)
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		for _, k := range keys {
			if !bytes.Equal(k, key(prefix, got)) {
				t.Fatalf("scan returned %s, want %s", k, key(prefix, got))
			}
			got++
		}
		if len(keys) < 1000 {
			break
		}
		start = append(keys[len(keys)-1], 0)
	}
	if got != n {
		t.Fatalf("scan saw %d keys, want %d", got, n)
	}
}

// A fourth store joins; PD moves replicas until region counts per store differ by at most one
// region or 10%.
func TestNewStoreReceivesReplicas(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Stores: 3, TiKVConfig: fastTiKV + smallRegions,
		PDConfig: fastPD})
	pdc := c.PDClient()
	defer pdc.Close()
	waitReplicated(t, pdc, 3, 90*time.Second)
	cli := newRawClient(t, c)
	val := bytes.Repeat([]byte("b"), 4096)
	for i := 0; i < 3000; i++ { // 12 MiB: a dozen regions or so
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := cli.Put(ctx, key("balance/", i), val)
		cancel()
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	waitFor(t, 60*time.Second, "regions split", func() (bool, string) {
		rs := regions(t, pdc)
		return len(rs) >= 6, fmt.Sprintf("%d regions", len(rs))
	})
	c.AddStore()
	c.WaitStoresUp(4, 60*time.Second)
	waitFor(t, 180*time.Second, "replicas balanced over 4 stores", func() (bool, string) {
		ids := storeIDs(t, c, pdc)
		counts := map[uint64]int{}
		for _, id := range ids {
			counts[id] = 0
		}
		rs := regions(t, pdc)
		for _, r := range rs {
			if len(r.PendingPeers) > 0 {
				return false, fmt.Sprintf("region %d has pending peers", r.Meta.GetId())
			}
			for _, p := range r.Meta.GetPeers() {
				counts[p.GetStoreId()]++
			}
		}
		lo, hi := math.MaxInt32, 0
		for _, n := range counts {
			if n < lo {
				lo = n
			}
			if n > hi {
				hi = n
			}
		}
		ok := len(counts) == 4 && (hi-lo <= 1 || float64(hi-lo) <= 0.1*float64(hi))
		return ok, fmt.Sprintf("%d regions, replicas per store %v", len(rs), counts)
	})
	readBack(t, cli, "balance/", 3000, func(int) []byte { return val })
}
