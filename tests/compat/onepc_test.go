// One-phase commit through the official Go client (client-go v2.0.4 with
// txn.SetEnable1PC(true)): a transaction whose keys are in one region is committed by its
// prewrite (the store picks the commit_ts, above every snapshot read it has served). Checks
// that the stores really commit in one phase (their tikv_storage_one_pc_total counter), that
// reads, snapshot reads at an earlier ts, write conflicts, pessimistic transactions and a
// bank's invariant all still hold.
package compat

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikv/client-go/v2/txnkv"
	"github.com/tikv/client-go/v2/txnkv/transaction"

	tikverr "github.com/tikv/client-go/v2/error"
)

// onePCCount sums tikv_storage_one_pc_total{result} over every store's /metrics.
func onePCCount(t *testing.T, result string) int {
	t.Helper()
	total := 0
	want := `tikv_storage_one_pc_total{result="` + result + `"} `
	for _, s := range txnCluster(t).Stores {
		resp, err := http.Get("http://" + s.Status + "/metrics")
		if err != nil {
			continue // a store being restarted by another test has no counter to add
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, want) {
				v, err := strconv.ParseFloat(strings.TrimPrefix(line, want), 64)
				if err == nil {
					total += int(v)
				}
			}
		}
		resp.Body.Close()
	}
	return total
}

func begin1PC(t *testing.T, c *txnkv.Client) *transaction.KVTxn {
	t.Helper()
	txn := begin(t, c)
	txn.SetEnable1PC(true)
	return txn
}

func commit1PC(t *testing.T, c *txnkv.Client, kvs ...[]byte) uint64 {
	t.Helper()
	txn := begin1PC(t, c)
	for i := 0; i+1 < len(kvs); i += 2 {
		if err := txn.Set(kvs[i], kvs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(context.Background()); err != nil {
		t.Fatalf("1PC commit: %v", err)
	}
	return commitTSOf(txn)
}

func TestTxnOnePCCommitsInOnePhase(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	k1, k2 := []byte("compat/txn/1pc/a"), []byte("compat/txn/1pc/b")

	// The first 1PC prewrite in a region after its leader was elected falls back to 2PC
	// while the store fetches a timestamp for its max_ts; later ones commit in one phase.
	before := onePCCount(t, "committed")
	var last uint64
	waitUntil(t, 20*time.Second, "a transaction committed in one phase", func() bool {
		last = commit1PC(t, c, k1, []byte("1"), k2, []byte("2"))
		return onePCCount(t, "committed") > before
	})
	if v1, v2 := txnGet(t, c, k1), txnGet(t, c, k2); string(v1) != "1" || string(v2) != "2" {
		t.Fatalf("after 1PC: %q %q", v1, v2)
	}
	if last == 0 {
		t.Fatalf("no commit_ts")
	}

	// A snapshot read at r, then a 1PC transaction that started before r writes the key:
	// its commit_ts is above r, so reading at r again gives the same answer.
	w := begin1PC(t, c)
	r := timestamp(t, c)
	if v := snapGet(t, c, r, k1); string(v) != "1" {
		t.Fatalf("read at %d: %q", r, v)
	}
	if err := w.Set(k1, []byte("w")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if cts := commitTSOf(w); cts <= r {
		t.Fatalf("1PC commit_ts %d is not above the earlier read at %d", cts, r)
	}
	if v := snapGet(t, c, r, k1); string(v) != "1" {
		t.Fatalf("repeated read at %d changed: %q", r, v)
	}
	if v := txnGet(t, c, k1); string(v) != "w" {
		t.Fatalf("latest: %q", v)
	}

	// Write conflicts are still found.
	t1, t2 := begin1PC(t, c), begin1PC(t, c)
	_ = t1.Set(k2, []byte("t1"))
	_ = t2.Set(k2, []byte("t2"))
	if err := t1.Commit(ctx); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	if err := t2.Commit(ctx); !tikverr.IsErrWriteConflict(err) {
		t.Fatalf("second commit: %v, want a write conflict", err)
	}
	if v := txnGet(t, c, k2); string(v) != "t1" {
		t.Fatalf("after conflict: %q", v)
	}

	// A pessimistic transaction commits its locked keys in one phase too.
	p := begin1PC(t, c)
	p.SetPessimistic(true)
	if _, _, err := lockKeyLikeTiDB(ctx, c, p, k1); err != nil {
		t.Fatalf("lock: %v", err)
	}
	_ = p.Set(k1, []byte("p"))
	done := onePCCount(t, "committed")
	if err := p.Commit(ctx); err != nil {
		t.Fatalf("pessimistic 1PC commit: %v", err)
	}
	if onePCCount(t, "committed") <= done {
		t.Fatalf("the pessimistic transaction was not committed in one phase")
	}
	if v := txnGet(t, c, k1); string(v) != "p" {
		t.Fatalf("after pessimistic 1PC: %q", v)
	}
	if n := locksOn(t, c, k1, k2); n != 0 {
		t.Fatalf("%d locks left behind", n)
	}
}

// A bank in one region: concurrent 1PC transfers (conflicts retried) while readers check
// the total at snapshot timestamps; no transfer is lost.
func TestTxnOnePCBankKeepsItsTotal(t *testing.T) {
	c := newTxnClient(t)
	ctx := context.Background()
	const accounts, initial, workers = 10, 100, 4
	key := func(i int) []byte { return []byte(fmt.Sprintf("compat/txn/1pcbank/%02d", i)) }
	var kvs [][]byte
	for i := 0; i < accounts; i++ {
		kvs = append(kvs, key(i), []byte(strconv.Itoa(initial)))
	}
	commit1PC(t, c, kvs...)
	before := onePCCount(t, "committed")

	total := func(txn *transaction.KVTxn) (int, error) {
		sum := 0
		for i := 0; i < accounts; i++ {
			v, err := txn.Get(ctx, key(i))
			if err != nil {
				return 0, err
			}
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return 0, err
			}
			sum += n
		}
		return sum, nil
	}

	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	deadline := time.Now().Add(5 * time.Second)
	transfers := make([]int, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w) + time.Now().UnixNano()))
			for time.Now().Before(deadline) {
				from, to := rng.Intn(accounts), rng.Intn(accounts)
				if from == to {
					continue
				}
				txn, err := c.Begin()
				if err != nil {
					errs <- err
					return
				}
				txn.SetEnable1PC(true)
				fv, err1 := txn.Get(ctx, key(from))
				tv, err2 := txn.Get(ctx, key(to))
				if err1 != nil || err2 != nil {
					txn.Rollback()
					continue // a lock or a region error: try another transfer
				}
				f, _ := strconv.Atoi(string(fv))
				g, _ := strconv.Atoi(string(tv))
				amount := rng.Intn(5) + 1
				_ = txn.Set(key(from), []byte(strconv.Itoa(f-amount)))
				_ = txn.Set(key(to), []byte(strconv.Itoa(g+amount)))
				if err := txn.Commit(ctx); err != nil {
					if tikverr.IsErrWriteConflict(err) {
						continue
					}
					errs <- fmt.Errorf("transfer: %v", err)
					return
				}
				transfers[w]++
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(deadline) {
			txn, err := c.Begin()
			if err != nil {
				errs <- err
				return
			}
			sum, err := total(txn)
			txn.Rollback()
			if err == nil && sum != accounts*initial {
				errs <- fmt.Errorf("snapshot total %d, want %d", sum, accounts*initial)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	done := 0
	for _, n := range transfers {
		done += n
	}
	if done == 0 {
		t.Fatalf("no transfer committed")
	}
	final := begin(t, c)
	defer final.Rollback()
	if sum, err := total(final); err != nil || sum != accounts*initial {
		t.Fatalf("final total %d (%v), want %d", sum, err, accounts*initial)
	}
	if got := onePCCount(t, "committed") - before; got < done/2 {
		t.Fatalf("only %d of %d transfers were committed in one phase", got, done)
	}
	t.Logf("%d transfers, %d committed in one phase", done, onePCCount(t, "committed")-before)
}
