// The official Go client (client-go v2.0.4, default configuration) against a tikv-c cluster:
// the raw KV API, with BatchCommands on (the default) and off.
package compat

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tikv-c/compat/cluster"
	"github.com/tikv/client-go/v2/config"
	"github.com/tikv/client-go/v2/rawkv"
)

// tikvConfig is the store configuration every compat cluster uses: TTL on (API V1TTL), and
// PD heartbeats fast enough for a test.
const tikvConfig = `
[storage]
enable-ttl = true

[raftstore]
raft-base-tick-interval = "100ms"
pd-heartbeat-tick-interval = "1s"
pd-store-heartbeat-tick-interval = "1s"
split-region-check-tick-interval = "1s"
`

// shared serves the raw KV tests; the transactional tests get a cluster of their own
// (txnShared), because raw splits put raw keys on region boundaries, which transactional
// clients cannot decode (kvproto's API V1 does not mix the two in one key space either).
var shared *cluster.Cluster

func TestMain(m *testing.M) {
	if stage := os.Getenv(crashChildEnv); stage != "" {
		os.Exit(crashChildMain(stage))
	}
	os.Exit(runWithCluster(m))
}

// runWithCluster starts one 3-store cluster for the whole package.
func runWithCluster(m *testing.M) int {
	t := &mainT{}
	shared = cluster.Start(t, cluster.Options{Stores: 3, TiKVConfig: tikvConfig})
	code := m.Run()
	closeTxnCluster()
	t.cleanup()
	return code
}

// withBatch runs f twice: with BatchCommands on (client-go's default) and off.
func withBatch(t *testing.T, f func(t *testing.T, c *rawkv.Client)) {
	for _, batch := range []uint{128, 0} {
		name := "batch-commands-on"
		if batch == 0 {
			name = "batch-commands-off"
		}
		t.Run(name, func(t *testing.T) {
			restore := config.UpdateGlobal(func(c *config.Config) { c.TiKVClient.MaxBatchSize = batch })
			defer restore()
			ctx := context.Background()
			c, err := rawkv.NewClientWithOpts(ctx, shared.PDAddrs())
			if err != nil {
				t.Fatalf("new client: %v", err)
			}
			defer c.Close()
			f(t, c)
		})
	}
}

func key(prefix string, i int) []byte { return []byte(fmt.Sprintf("%s%06d", prefix, i)) }

func TestRawPutGetDelete(t *testing.T) {
	withBatch(t, func(t *testing.T, c *rawkv.Client) {
		ctx := context.Background()
		k := []byte("compat/put/" + t.Name())
		if err := c.Put(ctx, k, []byte("v1")); err != nil {
			t.Fatalf("put: %v", err)
		}
		v, err := c.Get(ctx, k)
		if err != nil || string(v) != "v1" {
			t.Fatalf("get present: %q %v", v, err)
		}
		v, err = c.Get(ctx, []byte("compat/absent/"+t.Name()))
		if err != nil || v != nil {
			t.Fatalf("get absent: %q %v, want nil nil", v, err)
		}
		// An empty value is a real value, distinct from absence.
		ek := []byte("compat/empty/" + t.Name())
		if err := c.Put(ctx, ek, []byte{}); err != nil {
			t.Fatalf("put empty: %v", err)
		}
		v, err = c.Get(ctx, ek)
		if err != nil || v == nil || len(v) != 0 {
			t.Fatalf("get empty: %q (nil=%v) %v, want empty non-nil", v, v == nil, err)
		}
		if err := c.Delete(ctx, k); err != nil {
			t.Fatalf("delete: %v", err)
		}
		v, err = c.Get(ctx, k)
		if err != nil || v != nil {
			t.Fatalf("get deleted: %q %v", v, err)
		}
	})
}

func TestRawBatchOps(t *testing.T) {
	withBatch(t, func(t *testing.T, c *rawkv.Client) {
		ctx := context.Background()
		prefix := "compat/batch/" + t.Name() + "/"
		var keys, vals [][]byte
		for i := 0; i < 200; i++ {
			keys = append(keys, key(prefix, i))
			vals = append(vals, []byte(fmt.Sprintf("value-%d", i)))
		}
		if err := c.BatchPut(ctx, keys, vals); err != nil {
			t.Fatalf("batch put: %v", err)
		}
		got, err := c.BatchGet(ctx, append(keys, []byte(prefix+"missing")))
		if err != nil {
			t.Fatalf("batch get: %v", err)
		}
		for i := range keys {
			if !bytes.Equal(got[i], vals[i]) {
				t.Fatalf("batch get %s = %q, want %q", keys[i], got[i], vals[i])
			}
		}
		if got[len(keys)] != nil {
			t.Fatalf("missing key returned %q", got[len(keys)])
		}
		if err := c.BatchDelete(ctx, keys[:100]); err != nil {
			t.Fatalf("batch delete: %v", err)
		}
		got, err = c.BatchGet(ctx, keys)
		if err != nil {
			t.Fatalf("batch get after delete: %v", err)
		}
		for i := range keys {
			if (i < 100) != (got[i] == nil) {
				t.Fatalf("after batch delete key %d = %q", i, got[i])
			}
		}
	})
}

// splitUntil calls split(ctx) until started(ctx, k) holds for every key (a region starts
// there and serves), for up to 60 s.
func splitUntil(t *testing.T, keys [][]byte, split func(ctx context.Context) error,
	started func(ctx context.Context, k []byte) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if err := split(ctx); err != nil {
			t.Logf("split regions: %v (retrying)", err)
		}
		done := true
		for _, k := range keys {
			if !started(ctx, k) {
				done = false
				break
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("regions not split at %q in time", keys)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// splitAt asks PD to split at the given raw keys and waits until the regions exist.
func splitAt(t *testing.T, keys ...[]byte) {
	t.Helper()
	pdc := shared.PDClient()
	defer pdc.Close()
	splitUntil(t, keys, func(ctx context.Context) error {
		_, err := pdc.SplitRegions(ctx, keys)
		return err
	}, func(ctx context.Context, k []byte) bool {
		r, err := pdc.GetRegion(ctx, k)
		return err == nil && r != nil && bytes.Equal(r.Meta.GetStartKey(), k) && r.Leader != nil
	})
}

func TestRawScanAcrossRegions(t *testing.T) {
	prefix := "compat/scan/"
	splitAt(t, key(prefix, 30), key(prefix, 60))
	withBatch(t, func(t *testing.T, c *rawkv.Client) {
		ctx := context.Background()
		var keys, vals [][]byte
		for i := 0; i < 100; i++ {
			keys = append(keys, key(prefix, i))
			vals = append(vals, []byte(fmt.Sprintf("v%d", i)))
		}
		if err := c.BatchPut(ctx, keys, vals); err != nil {
			t.Fatalf("batch put: %v", err)
		}
		ks, vs, err := c.Scan(ctx, key(prefix, 10), key(prefix, 90), 1000)
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		if len(ks) != 80 {
			t.Fatalf("scan returned %d keys, want 80", len(ks))
		}
		for i := range ks {
			if !bytes.Equal(ks[i], keys[10+i]) || !bytes.Equal(vs[i], vals[10+i]) {
				t.Fatalf("scan[%d] = %s=%s", i, ks[i], vs[i])
			}
		}
		ks, _, err = c.Scan(ctx, key(prefix, 25), nil, 10)
		if err != nil || len(ks) != 10 || !bytes.Equal(ks[9], keys[34]) {
			t.Fatalf("limited scan: %d keys, %v", len(ks), err)
		}
		// ReverseScan: [end, start) downward.
		ks, vs, err = c.ReverseScan(ctx, key(prefix, 90), key(prefix, 10), 1000)
		if err != nil {
			t.Fatalf("reverse scan: %v", err)
		}
		if len(ks) != 80 {
			t.Fatalf("reverse scan returned %d keys, want 80", len(ks))
		}
		for i := range ks {
			if !bytes.Equal(ks[i], keys[89-i]) || !bytes.Equal(vs[i], vals[89-i]) {
				t.Fatalf("reverse scan[%d] = %s", i, ks[i])
			}
		}
		ks, _, err = c.ReverseScan(ctx, key(prefix, 65), nil, 10)
		if err != nil || len(ks) != 10 || !bytes.Equal(ks[0], keys[64]) || !bytes.Equal(ks[9], keys[55]) {
			t.Fatalf("limited reverse scan: %d keys, %v", len(ks), err)
		}
	})
}

func TestRawDeleteRange(t *testing.T) {
	prefix := "compat/delrange/"
	splitAt(t, key(prefix, 50))
	withBatch(t, func(t *testing.T, c *rawkv.Client) {
		ctx := context.Background()
		var keys, vals [][]byte
		for i := 0; i < 100; i++ {
			keys = append(keys, key(prefix, i))
			vals = append(vals, []byte("x"))
		}
		if err := c.BatchPut(ctx, keys, vals); err != nil {
			t.Fatalf("batch put: %v", err)
		}
		if err := c.DeleteRange(ctx, key(prefix, 20), key(prefix, 80)); err != nil {
			t.Fatalf("delete range: %v", err)
		}
		ks, _, err := c.Scan(ctx, key(prefix, 0), key(prefix, 100), 1000)
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		if len(ks) != 40 || !bytes.Equal(ks[19], keys[19]) || !bytes.Equal(ks[20], keys[80]) {
			t.Fatalf("after delete range: %d keys", len(ks))
		}
	})
}

func TestRawCompareAndSwap(t *testing.T) {
	withBatch(t, func(t *testing.T, c *rawkv.Client) {
		c.SetAtomicForCAS(true)
		ctx := context.Background()
		k := []byte("compat/cas/" + t.Name())
		prev, ok, err := c.CompareAndSwap(ctx, k, nil, []byte("a"))
		if err != nil || !ok || prev != nil {
			t.Fatalf("cas from absent: %q %v %v", prev, ok, err)
		}
		prev, ok, err = c.CompareAndSwap(ctx, k, []byte("wrong"), []byte("b"))
		if err != nil || ok || string(prev) != "a" {
			t.Fatalf("cas with wrong previous: %q %v %v", prev, ok, err)
		}
		prev, ok, err = c.CompareAndSwap(ctx, k, []byte("a"), []byte("b"))
		if err != nil || !ok || string(prev) != "a" {
			t.Fatalf("cas: %q %v %v", prev, ok, err)
		}
		v, err := c.Get(ctx, k)
		if err != nil || string(v) != "b" {
			t.Fatalf("get after cas: %q %v", v, err)
		}
	})
}

func TestRawTTL(t *testing.T) {
	withBatch(t, func(t *testing.T, c *rawkv.Client) {
		ctx := context.Background()
		k := []byte("compat/ttl/" + t.Name())
		if err := c.PutWithTTL(ctx, k, []byte("v"), 100); err != nil {
			t.Fatalf("put with ttl: %v", err)
		}
		ttl, err := c.GetKeyTTL(ctx, k)
		if err != nil || ttl == nil || *ttl == 0 || *ttl > 100 {
			t.Fatalf("get key ttl: %v %v", ttl, err)
		}
		plain := []byte("compat/ttl/plain/" + t.Name())
		if err := c.Put(ctx, plain, []byte("v")); err != nil {
			t.Fatalf("put: %v", err)
		}
		ttl, err = c.GetKeyTTL(ctx, plain)
		if err != nil || ttl == nil || *ttl != 0 {
			t.Fatalf("ttl of a key without ttl: %v %v, want 0", ttl, err)
		}
		ttl, err = c.GetKeyTTL(ctx, []byte("compat/ttl/absent"))
		if err != nil || ttl != nil {
			t.Fatalf("ttl of an absent key: %v %v, want nil", ttl, err)
		}
		short := []byte("compat/ttl/short/" + t.Name())
		if err := c.PutWithTTL(ctx, short, []byte("v"), 1); err != nil {
			t.Fatalf("put with ttl 1: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, err := c.Get(ctx, short)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if v == nil {
				break // expired keys are invisible
			}
			if time.Now().After(deadline) {
				t.Fatalf("key with ttl 1s still visible after 10s")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
