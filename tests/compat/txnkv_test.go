// The official Go client (client-go v2.0.4, default configuration) against a tikv-c cluster:
// the transactional API (txnkv): 2PC, snapshot reads, conflicts, pessimistic locks with
// lock waiting, iteration across regions, and locks left by a client killed mid-commit.
package compat

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pingcap/kvproto/pkg/kvrpcpb"
	"github.com/tikv-c/compat/cluster"
	"github.com/tikv/client-go/v2/kv"
	"github.com/tikv/client-go/v2/tikv"
	"github.com/tikv/client-go/v2/tikvrpc"
	"github.com/tikv/client-go/v2/txnkv"
	"github.com/tikv/client-go/v2/txnkv/transaction"

	tikverr "github.com/tikv/client-go/v2/error"
)

// txnTiKVConfig is the store configuration of the transactional cluster: API V1 (no TTL),
// fast heartbeats, and a GC worker that polls PD's safe point every second.
const txnTiKVConfig = `
[raftstore]
raft-base-tick-interval = "100ms"
pd-heartbeat-tick-interval = "1s"
pd-store-heartbeat-tick-interval = "1s"
split-region-check-tick-interval = "1s"

[gc]
poll-safe-point-interval = "1s"
`

var (
	txnOnce   sync.Once
	txnShared *cluster.Cluster
	txnMainT  *mainT
)

// txnCluster returns the transactional tests' cluster, started on first use.
func txnCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	txnOnce.Do(func() {
		txnMainT = &mainT{}
		txnShared = cluster.Start(txnMainT, cluster.Options{Stores: 3, TiKVConfig: txnTiKVConfig})
	})
	return txnShared
}

func closeTxnCluster() {
	if txnMainT != nil {
		txnMainT.cleanup()
	}
}

func newTxnClient(t *testing.T) *txnkv.Client {
	t.Helper()
	c, err := txnkv.NewClient(txnCluster(t).PDAddrs())
	if err != nil {
		t.Fatalf("txn client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func begin(t *testing.T, c *txnkv.Client) *transaction.KVTxn {
	t.Helper()
	txn, err := c.Begin()
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	return txn
}

// txnGet reads key k in a fresh transaction; nil means absent.
func txnGet(t *testing.T, c *txnkv.Client, k []byte) []byte {
	t.Helper()
	txn := begin(t, c)
	defer txn.Rollback()
	v, err := txn.Get(context.Background(), k)
	if tikverr.IsErrNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	return v
}

// txnPut writes pairs (k, v) in one transaction; a nil value deletes.
func txnPut(t *testing.T, c *txnkv.Client, kvs ...[]byte) uint64 {
	t.Helper()
	txn := begin(t, c)
	for i := 0; i+1 < len(kvs); i += 2 {
		var err error
		if kvs[i+1] == nil {
			err = txn.Delete(kvs[i])
		} else {
			err = txn.Set(kvs[i], kvs[i+1])
		}
		if err != nil {
			t.Fatalf("buffer write: %v", err)
		}
	}
	if err := txn.Commit(context.Background()); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return commitTSOf(txn)
}

func commitTSOf(txn *transaction.KVTxn) uint64 {
	return transaction.TxnProbe{KVTxn: txn}.GetCommitTS()
}

func TestTxnSetGetDeleteCommit(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	k1, k2 := []byte("compat/txn/basic/a"), []byte("compat/txn/basic/b")

	txn := begin(t, c)
	if err := txn.Set(k1, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := txn.Set(k2, bytes.Repeat([]byte("x"), 1000)); err != nil { // not inlined
		t.Fatal(err)
	}
	// The transaction sees its own writes before commit; others do not.
	if v, err := txn.Get(ctx, k1); err != nil || string(v) != "v1" {
		t.Fatalf("own write: %q %v", v, err)
	}
	if v := txnGet(t, c, k1); v != nil {
		t.Fatalf("uncommitted write visible to another transaction: %q", v)
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if commitTS := commitTSOf(txn); commitTS <= txn.StartTS() {
		t.Fatalf("commit ts %d not after start ts %d", commitTS, txn.StartTS())
	}
	if v := txnGet(t, c, k1); string(v) != "v1" {
		t.Fatalf("after commit: %q", v)
	}
	if v := txnGet(t, c, k2); len(v) != 1000 {
		t.Fatalf("long value after commit: %d bytes", len(v))
	}

	// BatchGet, then delete one key.
	txn = begin(t, c)
	got, err := txn.BatchGet(ctx, [][]byte{k1, k2, []byte("compat/txn/basic/absent")})
	if err != nil || len(got) != 2 || string(got[string(k1)]) != "v1" {
		t.Fatalf("batch get: %d pairs %v", len(got), err)
	}
	if err := txn.Delete(k1); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatalf("commit delete: %v", err)
	}
	if v := txnGet(t, c, k1); v != nil {
		t.Fatalf("deleted key reads %q", v)
	}

	// A rolled-back transaction leaves nothing.
	txn = begin(t, c)
	if err := txn.Set(k1, []byte("never")); err != nil {
		t.Fatal(err)
	}
	if err := txn.Rollback(); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if v := txnGet(t, c, k1); v != nil {
		t.Fatalf("rolled-back write visible: %q", v)
	}
}

func TestTxnSnapshotReadAtOlderTimestamp(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	k, gone := []byte("compat/txn/snap/k"), []byte("compat/txn/snap/gone")
	txnPut(t, c, k, []byte("old"), gone, []byte("here"))
	ts, err := c.GetTimestamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	txnPut(t, c, k, []byte("new"), gone, nil)

	old := c.GetSnapshot(ts)
	if v, err := old.Get(ctx, k); err != nil || string(v) != "old" {
		t.Fatalf("snapshot at %d: %q %v, want old", ts, v, err)
	}
	if v, err := old.Get(ctx, gone); err != nil || string(v) != "here" {
		t.Fatalf("key deleted later, read at %d: %q %v", ts, v, err)
	}
	now, err := c.GetTimestamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur := c.GetSnapshot(now)
	if v, err := cur.Get(ctx, k); err != nil || string(v) != "new" {
		t.Fatalf("snapshot at %d: %q %v, want new", now, v, err)
	}
	if _, err := cur.Get(ctx, gone); !tikverr.IsErrNotFound(err) {
		t.Fatalf("deleted key at %d: %v, want not found", now, err)
	}
	// A transaction started at the old timestamp reads the old world too.
	txn, err := c.Begin(tikv.WithStartTS(ts))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Rollback()
	if v, err := txn.Get(ctx, k); err != nil || string(v) != "old" {
		t.Fatalf("txn at old start ts: %q %v", v, err)
	}
}

func TestTxnWriteConflict(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	k := []byte("compat/txn/conflict")
	txnPut(t, c, k, []byte("0"))

	t1, t2 := begin(t, c), begin(t, c)
	for i, txn := range []*transaction.KVTxn{t1, t2} {
		if err := txn.Set(k, []byte(fmt.Sprintf("t%d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := t1.Commit(ctx); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	err := t2.Commit(ctx)
	if err == nil {
		t.Fatalf("second transaction committed over a newer write")
	}
	if !tikverr.IsErrWriteConflict(err) {
		t.Fatalf("second commit: %v, want a write conflict", err)
	}
	if v := txnGet(t, c, k); string(v) != "t1" {
		t.Fatalf("value after conflict: %q, want t1", v)
	}
}

// lockKeyLikeTiDB takes a pessimistic lock on k for txn, as TiDB's executor does: a write
// conflict (the lock holder committed after our for_update_ts) is retried with a fresh
// for_update_ts. It returns the value the lock returned.
func lockKeyLikeTiDB(ctx context.Context, c *txnkv.Client, txn *transaction.KVTxn, k []byte) ([]byte, int, error) {
	retries := 0
	for {
		forUpdateTS, err := c.GetTimestamp(ctx)
		if err != nil {
			return nil, retries, err
		}
		lockCtx := kv.NewLockCtx(forUpdateTS, kv.LockAlwaysWait, time.Now())
		lockCtx.InitReturnValues(1)
		err = txn.LockKeys(ctx, lockCtx, k)
		if err == nil {
			return lockCtx.Values[string(k)].Value, retries, nil
		}
		if !tikverr.IsErrWriteConflict(err) || retries > 20 {
			return nil, retries, err
		}
		retries++
	}
}

func TestTxnPessimisticLockWaitsForHolder(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	k := []byte("compat/txn/pessimistic")
	txnPut(t, c, k, []byte("0"))

	holder := begin(t, c)
	holder.SetPessimistic(true)
	if _, _, err := lockKeyLikeTiDB(ctx, c, holder, k); err != nil {
		t.Fatalf("holder lock: %v", err)
	}

	waiter := begin(t, c)
	waiter.SetPessimistic(true)
	var holderCommitting atomic.Bool
	type result struct {
		value           []byte
		retries         int
		err             error
		afterCommitting bool
	}
	done := make(chan result, 1)
	go func() {
		v, n, err := lockKeyLikeTiDB(ctx, c, waiter, k)
		done <- result{v, n, err, holderCommitting.Load()}
	}()

	// The waiter cannot get the lock while the holder has it (TiKV waits up to
	// wait-for-lock-timeout, answers KeyIsLocked, the client checks the holder is alive and
	// asks again), however long we watch.
	select {
	case r := <-done:
		t.Fatalf("waiter got the lock while the holder held it: %q %v", r.value, r.err)
	case <-time.After(2500 * time.Millisecond):
	}

	if err := holder.Set(k, []byte("holder")); err != nil {
		t.Fatal(err)
	}
	holderCommitting.Store(true)
	if err := holder.Commit(ctx); err != nil {
		t.Fatalf("holder commit: %v", err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("waiter did not get the lock within 30s of the holder's commit")
	}
	if r.err != nil {
		t.Fatalf("waiter lock: %v (after %d write-conflict retries)", r.err, r.retries)
	}
	if !r.afterCommitting || string(r.value) != "holder" {
		t.Fatalf("waiter locked before the holder committed, or saw %q (want holder)", r.value)
	}
	t.Logf("waiter got the lock after %d write-conflict retries", r.retries)
	if err := waiter.Set(k, []byte("waiter")); err != nil {
		t.Fatal(err)
	}
	if err := waiter.Commit(ctx); err != nil {
		t.Fatalf("waiter commit: %v", err)
	}
	if v := txnGet(t, c, k); string(v) != "waiter" {
		t.Fatalf("final value %q, want waiter", v)
	}
}

// splitTxn splits transactional regions at user keys through TiKV's SplitRegion (what
// KVStore.SplitRegions sends; the store encodes the keys) and waits until PD routes each key
// to a region starting there.
func splitTxn(t *testing.T, c *txnkv.Client, keys ...[]byte) {
	t.Helper()
	splitUntil(t, keys, func(ctx context.Context) error {
		_, err := c.SplitRegions(ctx, keys, false, nil)
		return err
	}, func(ctx context.Context, k []byte) bool {
		loc, err := c.GetRegionCache().LocateKey(tikv.NewBackofferWithVars(ctx, 5000, nil), k)
		if err == nil && !bytes.Equal(loc.StartKey, k) {
			c.GetRegionCache().InvalidateCachedRegion(loc.Region)
		}
		return err == nil && bytes.Equal(loc.StartKey, k)
	})
}

// sendToRegion sends req to the leader of the region holding key, retrying region errors.
func sendToRegion(t *testing.T, c *txnkv.Client, key []byte, req *tikvrpc.Request) *tikvrpc.Response {
	t.Helper()
	bo := tikv.NewBackofferWithVars(context.Background(), 20000, nil)
	for {
		loc, err := c.GetRegionCache().LocateKey(bo, key)
		if err != nil {
			t.Fatalf("locate %q: %v", key, err)
		}
		resp, err := c.SendReq(bo, req, loc.Region, 10*time.Second)
		if err != nil {
			t.Fatalf("send %s: %v", req.Type, err)
		}
		rerr, err := resp.GetRegionError()
		if err != nil {
			t.Fatalf("%s: %v", req.Type, err)
		}
		if rerr == nil {
			return resp
		}
		if err := bo.Backoff(tikv.BoRegionMiss(), fmt.Errorf("%s", rerr)); err != nil {
			t.Fatalf("%s: region error %v", req.Type, rerr)
		}
	}
}

// locksOn returns how many locks (of any transaction) the keys have, through KvScanLock.
func locksOn(t *testing.T, c *txnkv.Client, keys ...[]byte) int {
	t.Helper()
	n := 0
	for _, k := range keys {
		resp := sendToRegion(t, c, k, tikvrpc.NewRequest(tikvrpc.CmdScanLock, &kvrpcpb.ScanLockRequest{
			MaxVersion: math.MaxUint64, StartKey: k, EndKey: append(append([]byte{}, k...), 0), Limit: 10,
		}))
		sl := resp.Resp.(*kvrpcpb.ScanLockResponse)
		if sl.Error != nil {
			t.Fatalf("scan lock: %v", sl.Error)
		}
		n += len(sl.Locks)
	}
	return n
}

func TestTxnIterAcrossRegions(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	prefix := "compat/txn/iter/"
	splitTxn(t, c, key(prefix, 30), key(prefix, 60))

	// One transaction over three regions: 2PC with secondaries in other regions.
	txn := begin(t, c)
	for i := 0; i < 100; i++ {
		if err := txn.Set(key(prefix, i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}

	check := func(name string, it interface {
		Valid() bool
		Key() []byte
		Value() []byte
		Next() error
		Close()
	}, from, to, step int) {
		t.Helper()
		defer it.Close()
		n := 0
		for i := from; i != to; i += step {
			if !it.Valid() {
				t.Fatalf("%s: ended at %d, want %d", name, i, to)
			}
			if !bytes.Equal(it.Key(), key(prefix, i)) || string(it.Value()) != fmt.Sprintf("v%d", i) {
				t.Fatalf("%s: %q=%q, want key %d", name, it.Key(), it.Value(), i)
			}
			n++
			if err := it.Next(); err != nil {
				t.Fatalf("%s next: %v", name, err)
			}
		}
		if step > 0 && it.Valid() {
			t.Fatalf("%s: more than %d keys (%q)", name, n, it.Key())
		}
		if step < 0 && it.Valid() && strings.HasPrefix(string(it.Key()), prefix) {
			t.Fatalf("%s: more than %d keys (%q)", name, n, it.Key())
		}
	}
	reader := begin(t, c)
	defer reader.Rollback()
	it, err := reader.Iter(key(prefix, 10), key(prefix, 90))
	if err != nil {
		t.Fatal(err)
	}
	check("iter [10, 90)", it, 10, 90, 1)
	rit, err := reader.IterReverse(key(prefix, 90))
	if err != nil {
		t.Fatal(err)
	}
	check("reverse iter below 90", rit, 89, -1, -1)
	// A reverse KvScan with an empty start_key reads from the region's end (what client-go
	// and libtikvc send for the last region they scan): the middle region gives 59..30.
	// client-go commits the secondaries in the background: a raw KvScan (which resolves
	// nothing) may still meet their locks for a moment.
	var pairs []*kvrpcpb.KvPair
	waitUntil(t, 10*time.Second, "secondary locks committed", func() bool {
		resp := sendToRegion(t, c, key(prefix, 45), tikvrpc.NewRequest(tikvrpc.CmdScan, &kvrpcpb.ScanRequest{
			Limit: 1000, Version: timestamp(t, c), Reverse: true,
		}))
		pairs = resp.Resp.(*kvrpcpb.ScanResponse).Pairs
		for _, p := range pairs {
			if p.Error != nil {
				return false
			}
		}
		return true
	})
	if len(pairs) != 30 || !bytes.Equal(pairs[0].Key, key(prefix, 59)) ||
		!bytes.Equal(pairs[29].Key, key(prefix, 30)) {
		t.Fatalf("reverse KvScan from the region's end: %d pairs from %q to %q", len(pairs),
			pairs[0].Key, pairs[len(pairs)-1].Key)
	}

	// The transaction's own writes merge into the iteration.
	if err := reader.Set(key(prefix, 45), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := reader.Delete(key(prefix, 46)); err != nil {
		t.Fatal(err)
	}
	it, err = reader.Iter(key(prefix, 44), key(prefix, 48))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for it.Valid() {
		seen = append(seen, fmt.Sprintf("%s=%s", it.Key()[len(prefix):], it.Value()))
		if err := it.Next(); err != nil {
			t.Fatal(err)
		}
	}
	it.Close()
	want := "000044=v44 000045=mine 000047=v47"
	if strings.Join(seen, " ") != want {
		t.Fatalf("iteration with own writes: %v, want %s", seen, want)
	}
}

// crashChildEnv selects the child mode of the test binary (see TestMain).
const crashChildEnv = "TKV_COMPAT_CRASH_CHILD"

// runCrashChild starts this test binary as a child that commits keys=value and stops at
// stage ("prewritten": prewrite done, commit never sent; "primary-committed": primary
// committed, secondaries never sent), then kills it with SIGKILL.
func runCrashChild(t *testing.T, stage, value string, keys ...[]byte) {
	t.Helper()
	var ks []string
	for _, k := range keys {
		ks = append(ks, string(k))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+stage,
		"TKV_COMPAT_PD="+txnCluster(t).PD.Addr, "TKV_COMPAT_VALUE="+value,
		"TKV_COMPAT_KEYS="+strings.Join(ks, "\n"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for reached := false; !reached; {
		select {
		case l, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("child exited before %s: %s", stage, stderr.String())
			}
			reached = l == "STAGE "+stage
		case <-deadline:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child did not reach %s: %s", stage, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

func TestTxnKilledClientLocksResolvedByReader(t *testing.T) {
	c := newTxnClient(t)
	prefix := "compat/txn/crash/"
	splitTxn(t, c, key(prefix, 50))
	// Keys in two regions: the primary in the first, a secondary in the second.
	keys := [][]byte{key(prefix, 10), key(prefix, 20), key(prefix, 70)}
	args := []([]byte){}
	for _, k := range keys {
		args = append(args, k, []byte("before"))
	}
	txnPut(t, c, args...)

	// Killed after prewrite: the locks stay until a reader finds the primary's TTL expired
	// and rolls the transaction back; everyone then reads the old values.
	runCrashChild(t, "prewritten", "lost", keys...)
	if n := locksOn(t, c, keys...); n != len(keys) {
		t.Fatalf("the killed transaction left %d locks, want %d", n, len(keys))
	}
	// While the primary's TTL runs, readers push its min_commit_ts and read past the locks;
	// once it has expired, a reader rolls the transaction back and removes what it met.
	start := time.Now()
	for locksOn(t, c, keys...) > 0 {
		for _, k := range []([]byte){keys[2], keys[0], keys[1]} {
			if v := txnGet(t, c, k); string(v) != "before" {
				t.Fatalf("after a crash before commit, %q reads %q, want before", k, v)
			}
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("readers left the killed transaction's locks for 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("readers rolled the killed transaction back after %v", time.Since(start))
	// Its keys are writable again.
	txnPut(t, c, keys[0], []byte("again"), keys[2], []byte("again"))

	// Killed after the primary committed: the transaction is committed; readers of the
	// secondaries commit their locks.
	runCrashChild(t, "primary-committed", "kept", keys...)
	// client-go commits the primary's whole region batch first: the key in the other region
	// keeps its lock.
	if n := locksOn(t, c, keys[2]); n != 1 {
		t.Fatalf("after the primary's commit the secondary in another region has %d locks", n)
	}
	// Readers see the committed values at once and commit the locks they meet (client-go
	// resolves them in the background).
	waitUntil(t, 30*time.Second, "readers committing the secondaries", func() bool {
		for _, k := range []([]byte){keys[2], keys[1], keys[0]} {
			if v := txnGet(t, c, k); string(v) != "kept" {
				t.Fatalf("after a crash after the primary's commit, %q reads %q, want kept", k, v)
			}
		}
		return locksOn(t, c, keys...) == 0
	})
}

// snapGet reads k at ts; nil means absent.
func snapGet(t *testing.T, c *txnkv.Client, ts uint64, k []byte) []byte {
	t.Helper()
	v, err := c.GetSnapshot(ts).Get(context.Background(), k)
	if tikverr.IsErrNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %q at %d: %v", k, ts, err)
	}
	return v
}

func timestamp(t *testing.T, c *txnkv.Client) uint64 {
	t.Helper()
	ts, err := c.GetTimestamp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// waitUntil polls cond every 200 ms for up to timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %v", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The GC worker of every store reads PD's GC safe point (advanced by client-go's KVStore.GC
// after it resolved older locks) and removes the versions no read at or above it can see.
func TestTxnGCRemovesVersionsBelowSafePoint(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	prefix := "compat/txn/gc/"
	k, gone, long := key(prefix, 1), key(prefix, 2), key(prefix, 3)
	big := bytes.Repeat([]byte("o"), 500) // kept in the default column family
	txnPut(t, c, k, []byte("v1"), gone, []byte("x"), long, big)
	mid := timestamp(t, c)
	txnPut(t, c, k, []byte("v2"), gone, nil, long, []byte("short"))
	if v := snapGet(t, c, mid, k); string(v) != "v1" {
		t.Fatalf("before GC, read at %d: %q", mid, v)
	}

	safePoint := timestamp(t, c)
	got, err := c.GC(ctx, safePoint)
	if err != nil || got != safePoint {
		t.Fatalf("GC to %d: PD holds %d, %v", safePoint, got, err)
	}
	// The old versions disappear from reads below the safe point once the stores collected.
	waitUntil(t, 60*time.Second, "GC of versions below the safe point", func() bool {
		return snapGet(t, c, mid, k) == nil && snapGet(t, c, mid, long) == nil
	})
	if v := snapGet(t, c, mid, gone); v != nil {
		t.Fatalf("a version below a delete at the safe point survived GC: %q", v)
	}
	// Reads at and above the safe point see exactly what they saw before.
	for _, ts := range []uint64{safePoint, timestamp(t, c)} {
		if v := snapGet(t, c, ts, k); string(v) != "v2" {
			t.Fatalf("after GC, read at %d: %q, want v2", ts, v)
		}
		if v := snapGet(t, c, ts, long); string(v) != "short" {
			t.Fatalf("after GC, read at %d: %q, want short", ts, v)
		}
		if v := snapGet(t, c, ts, gone); v != nil {
			t.Fatalf("after GC, deleted key reads %q at %d", v, ts)
		}
	}

	// KvGC sent by a client works the same way, region by region.
	k4 := key(prefix, 4)
	txnPut(t, c, k4, []byte("a"))
	mid = timestamp(t, c)
	txnPut(t, c, k4, []byte("b"))
	sp := timestamp(t, c)
	resp := sendToRegion(t, c, k4, tikvrpc.NewRequest(tikvrpc.CmdGC, &kvrpcpb.GCRequest{SafePoint: sp}))
	if e := resp.Resp.(*kvrpcpb.GCResponse).Error; e != nil {
		t.Fatalf("KvGC: %v", e)
	}
	if v := snapGet(t, c, mid, k4); v != nil {
		t.Fatalf("after KvGC, read below the safe point: %q", v)
	}
	if v := snapGet(t, c, sp, k4); string(v) != "b" {
		t.Fatalf("after KvGC, read at the safe point: %q", v)
	}
}

func TestTxnDeleteRangeAndUnsafeDestroyRange(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	prefix := "compat/txn/range/"
	splitTxn(t, c, key(prefix, 25), key(prefix, 50), key(prefix, 75))
	var args [][]byte
	for i := 0; i < 100; i++ {
		args = append(args, key(prefix, i), []byte(fmt.Sprintf("v%d", i)))
	}
	txnPut(t, c, args...)
	count := func(ts uint64, follower bool) int {
		snap := c.GetSnapshot(ts)
		if follower {
			snap.SetReplicaRead(kv.ReplicaReadFollower)
		}
		var keys [][]byte
		for i := 0; i < 100; i++ {
			keys = append(keys, key(prefix, i))
		}
		got, err := snap.BatchGet(ctx, keys)
		if err != nil {
			t.Fatalf("batch get: %v", err)
		}
		return len(got)
	}
	if n := count(timestamp(t, c), false); n != 100 {
		t.Fatalf("%d keys before, want 100", n)
	}

	// KvDeleteRange over three regions: [10, 60).
	if _, err := c.DeleteRange(ctx, key(prefix, 10), key(prefix, 60), 2); err != nil {
		t.Fatalf("delete range: %v", err)
	}
	if n := count(timestamp(t, c), false); n != 50 {
		t.Fatalf("%d keys after deleting 50, want 50", n)
	}

	// UnsafeDestroyRange on every store, below Raft: [55, 90) goes from leaders and
	// followers alike; the rest stays.
	if err := c.UnsafeDestroyRange(ctx, key(prefix, 55), key(prefix, 90)); err != nil {
		t.Fatalf("unsafe destroy range: %v", err)
	}
	now := timestamp(t, c)
	for _, follower := range []bool{false, true} {
		if n := count(now, follower); n != 20 {
			t.Fatalf("%d keys after destroying [55, 90) (follower read %v), want 20", n, follower)
		}
	}
	if v := txnGet(t, c, key(prefix, 9)); string(v) != "v9" {
		t.Fatalf("key outside the ranges: %q", v)
	}
	if v := txnGet(t, c, key(prefix, 95)); string(v) != "v95" {
		t.Fatalf("key outside the ranges: %q", v)
	}
}

// moveLeader asks PD (HTTP API) to move the leader of regionID to storeID and waits for it.
func moveLeader(t *testing.T, c *txnkv.Client, regionID, storeID uint64) {
	t.Helper()
	body := fmt.Sprintf(`{"name":"transfer-leader","region_id":%d,"to_store_id":%d}`, regionID, storeID)
	waitUntil(t, 30*time.Second, "leader transfer", func() bool {
		r, err := c.GetPDClient().GetRegionByID(context.Background(), regionID)
		if err == nil && r != nil && r.Leader != nil && r.Leader.GetStoreId() == storeID {
			return true
		}
		resp, err := http.Post("http://"+txnCluster(t).PD.Status+"/pd/api/v1/operators",
			"application/json", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
		}
		return false
	})
}

// leaderStore returns the store leading the region that holds k (through PD).
func leaderStore(t *testing.T, c *txnkv.Client, k []byte) (regionID, storeID uint64) {
	t.Helper()
	loc, err := c.GetRegionCache().LocateKey(tikv.NewBackofferWithVars(context.Background(), 5000, nil), k)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.GetPDClient().GetRegionByID(context.Background(), loc.Region.GetID())
	if err != nil || r == nil || r.Leader == nil {
		t.Fatalf("region %d: %v", loc.Region.GetID(), err)
	}
	return loc.Region.GetID(), r.Leader.GetStoreId()
}

// Two pessimistic transactions lock k1 and k2, then each asks for the other's key. The two
// waits happen on different stores (the regions' leaders are moved apart first), so only
// the cluster-wide detector (TiKV's: on the leader of the region holding the empty key, fed
// by every store over deadlock.Deadlock/Detect) can see the cycle: one of them is told
// "deadlock" and rolls back, the other then gets its lock.
func TestTxnDeadlockAcrossStoresIsDetected(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	prefix := "compat/txn/deadlock/"
	k1, k2 := key(prefix, 1), key(prefix, 2)
	splitTxn(t, c, k2)
	txnPut(t, c, k1, []byte("1"), k2, []byte("2"))
	r1, s1 := leaderStore(t, c, k1)
	r2, s2 := leaderStore(t, c, k2)
	if s1 == s2 {
		stores, err := c.GetPDClient().GetAllStores(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stores {
			if s.GetId() != s1 {
				moveLeader(t, c, r2, s.GetId())
				break
			}
		}
	}
	_, s2 = leaderStore(t, c, k2)
	if s1 == s2 {
		t.Fatalf("regions %d and %d still led by one store", r1, r2)
	}
	t.Logf("k1 led by store %d, k2 by store %d", s1, s2)

	a, b := begin(t, c), begin(t, c)
	a.SetPessimistic(true)
	b.SetPessimistic(true)
	if _, _, err := lockKeyLikeTiDB(ctx, c, a, k1); err != nil {
		t.Fatalf("a locks k1: %v", err)
	}
	if _, _, err := lockKeyLikeTiDB(ctx, c, b, k2); err != nil {
		t.Fatalf("b locks k2: %v", err)
	}
	type result struct {
		who string
		err error
	}
	done := make(chan result, 2)
	go func() { _, _, err := lockKeyLikeTiDB(ctx, c, a, k2); done <- result{"a", err} }()
	go func() { _, _, err := lockKeyLikeTiDB(ctx, c, b, k1); done <- result{"b", err} }()

	var first result
	select {
	case first = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("neither transaction was told about the deadlock within 30s")
	}
	var dl *tikverr.ErrDeadlock
	if !errors.As(first.err, &dl) {
		t.Fatalf("%s: %v, want a deadlock error", first.who, first.err)
	}
	victim, winner := a, b
	if first.who == "b" {
		victim, winner = b, a
	}
	t.Logf("%s was told: %v", first.who, first.err)
	if err := victim.Rollback(); err != nil {
		t.Fatalf("rollback of the victim: %v", err)
	}
	var second result
	select {
	case second = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the other transaction did not get its lock after the victim rolled back")
	}
	if second.err != nil {
		t.Fatalf("%s: %v", second.who, second.err)
	}
	if err := winner.Set(k1, []byte("w1")); err != nil {
		t.Fatal(err)
	}
	if err := winner.Set(k2, []byte("w2")); err != nil {
		t.Fatal(err)
	}
	if err := winner.Commit(ctx); err != nil {
		t.Fatalf("winner commit: %v", err)
	}
	if v := txnGet(t, c, k1); string(v) != "w1" {
		t.Fatalf("k1 = %q", v)
	}
}

// What txnkv needs besides the kvrpcpb methods: PD's etcd KV API for the GC safe point
// (client-go loads it every 10 s and refuses reads after 99 s without it; TiDB's GC worker
// saves it there) and GetStoreSafeTS on every store (polled every 2 s).
func TestTxnSafePointServices(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	spkv := c.GetSafePointKV()
	sp := strconv.FormatUint(timestamp(t, c), 10)
	if err := spkv.Put(tikv.GcSavedSafePoint, sp); err != nil {
		t.Fatalf("etcd put: %v", err)
	}
	if v, err := spkv.Get(tikv.GcSavedSafePoint); err != nil || v != sp {
		t.Fatalf("etcd get: %q %v, want %s", v, err, sp)
	}
	stores, err := c.GetPDClient().GetAllStores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		req := tikvrpc.NewRequest(tikvrpc.CmdStoreSafeTS, &kvrpcpb.StoreSafeTSRequest{
			KeyRange: &kvrpcpb.KeyRange{StartKey: []byte{}, EndKey: []byte{}},
		}, kvrpcpb.Context{})
		resp, err := c.GetTiKVClient().SendRequest(ctx, s.GetAddress(), req, 5*time.Second)
		if err != nil {
			t.Fatalf("GetStoreSafeTS on store %d: %v", s.GetId(), err)
		}
		if _, ok := resp.Resp.(*kvrpcpb.StoreSafeTSResponse); !ok {
			t.Fatalf("GetStoreSafeTS on store %d: %T", s.GetId(), resp.Resp)
		}
	}
	// Reads keep working with the saved safe point in place.
	txnPut(t, c, []byte("compat/txn/safepoint"), []byte("v"))
	if v := txnGet(t, c, []byte("compat/txn/safepoint")); string(v) != "v" {
		t.Fatalf("read: %q", v)
	}
}
