// Package bank is tikv-c's transactional torture test with real processes: one pd-server
// and three tikv-servers (127.0.0.1, random ports, temporary directories, stopped by PID)
// and eight client-go transaction clients (six optimistic, two pessimistic; every other one
// with one-phase commit, txn.SetEnable1PC) moving money between 100 accounts while a store
// is killed with SIGKILL and restarted every 15 seconds. With 1PC the stores pick commit
// timestamps themselves, so the kills also test that a new leader does not commit in one
// phase below a read its predecessor served.
//
// What it checks (snapshot isolation plus durability):
//   - every snapshot read of all accounts (point reads and scans) sees the original total;
//   - each transfer writes a ledger record in the same transaction; at the end the ledger
//     holds every acknowledged transfer, and replaying the ledger over the opening balances
//     gives exactly the final balances (no lost, partial or phantom transfer);
//   - the cluster made progress through the faults.
package bank

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tikv-c/compat/cluster"
	tikverr "github.com/tikv/client-go/v2/error"
	"github.com/tikv/client-go/v2/kv"
	"github.com/tikv/client-go/v2/txnkv"
	"github.com/tikv/client-go/v2/txnkv/transaction"
	pd "github.com/tikv/pd/client"
)

const (
	accounts       = 100
	openingBalance = 1000
	clients        = 8
	pessimistic    = 2 // of the clients
	killEvery      = 15 * time.Second
	downTime       = 4 * time.Second
	acctPrefix     = "bank/acct/"
	ledgerPrefix   = "bank/ledger/"
)

// bankTiKV makes failover quick: 100 ms Raft ticks (1 s election timeout), heartbeats every
// second.
const bankTiKV = `
[raftstore]
raft-base-tick-interval = "100ms"
pd-heartbeat-tick-interval = "1s"
pd-store-heartbeat-tick-interval = "1s"
split-region-check-tick-interval = "1s"
`

func acct(i int) []byte { return []byte(fmt.Sprintf("%s%03d", acctPrefix, i)) }

func allAccounts() [][]byte {
	keys := make([][]byte, accounts)
	for i := range keys {
		keys[i] = acct(i)
	}
	return keys
}

// transfer is one ledger record.
type transfer struct {
	startTS  uint64
	from, to int
	amount   int
}

func (x transfer) String() string { return fmt.Sprintf("%d %d %d", x.from, x.to, x.amount) }

func ledgerKey(startTS uint64) []byte { return []byte(fmt.Sprintf("%s%020d", ledgerPrefix, startTS)) }

func parseLedger(k, v []byte) (transfer, error) {
	var x transfer
	ts, err := strconv.ParseUint(strings.TrimPrefix(string(k), ledgerPrefix), 10, 64)
	if err != nil {
		return x, fmt.Errorf("ledger key %q: %v", k, err)
	}
	x.startTS = ts
	if _, err := fmt.Sscanf(string(v), "%d %d %d", &x.from, &x.to, &x.amount); err != nil {
		return x, fmt.Errorf("ledger record %q: %v", v, err)
	}
	return x, nil
}

func balance(v []byte) (int, error) { return strconv.Atoi(string(v)) }

func seconds(name string, def time.Duration) time.Duration {
	if s := os.Getenv(name); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return def
}

// stats counts what happened during the run.
type stats struct {
	acked, conflicts, deadlocks, undetermined, failed int64
	pointReads, scanReads, readErrors                 int64
}

type bank struct {
	t       *testing.T
	c       *cluster.Cluster
	stop    atomic.Bool
	st      stats
	mu      sync.Mutex
	ackLog  []transfer // acknowledged transfers
	badRead atomic.Value
}

func (b *bank) fail(format string, args ...any) {
	b.badRead.CompareAndSwap(nil, fmt.Sprintf(format, args...))
	b.stop.Store(true)
}

// sumPoint reads every account with one BatchGet at a fresh snapshot.
func (b *bank) sumPoint(ctx context.Context, c *txnkv.Client) (int, uint64, error) {
	ts, err := c.GetTimestamp(ctx)
	if err != nil {
		return 0, 0, err
	}
	vals, err := c.GetSnapshot(ts).BatchGet(ctx, allAccounts())
	if err != nil {
		return 0, ts, err
	}
	if len(vals) != accounts {
		return 0, ts, fmt.Errorf("snapshot at %d has %d accounts, want %d", ts, len(vals), accounts)
	}
	sum := 0
	for k, v := range vals {
		n, err := balance(v)
		if err != nil {
			return 0, ts, fmt.Errorf("account %s: %v", k, err)
		}
		sum += n
	}
	return sum, ts, nil
}

// sumScan reads every account with an iterator inside a read-only transaction.
func (b *bank) sumScan(c *txnkv.Client) (int, uint64, error) {
	txn, err := c.Begin()
	if err != nil {
		return 0, 0, err
	}
	defer txn.Rollback()
	it, err := txn.Iter([]byte(acctPrefix), []byte(ledgerPrefix))
	if err != nil {
		return 0, txn.StartTS(), err
	}
	defer it.Close()
	sum, n := 0, 0
	for it.Valid() && strings.HasPrefix(string(it.Key()), acctPrefix) {
		v, err := balance(it.Value())
		if err != nil {
			return 0, txn.StartTS(), fmt.Errorf("account %s: %v", it.Key(), err)
		}
		sum += v
		n++
		if err := it.Next(); err != nil {
			return 0, txn.StartTS(), err
		}
	}
	if n != accounts {
		return 0, txn.StartTS(), fmt.Errorf("scan at %d saw %d accounts, want %d", txn.StartTS(), n, accounts)
	}
	return sum, txn.StartTS(), nil
}

// readPessimistic locks both accounts (TiDB's SELECT ... FOR UPDATE: a fresh for_update_ts,
// bounded lock waiting) and returns their latest values.
func readPessimistic(ctx context.Context, c *txnkv.Client, txn *transaction.KVTxn, keys [][]byte) (map[string][]byte, error) {
	txn.SetPessimistic(true)
	forUpdateTS, err := c.GetTimestamp(ctx)
	if err != nil {
		return nil, err
	}
	lockCtx := kv.NewLockCtx(forUpdateTS, 2000, time.Now())
	lockCtx.InitReturnValues(len(keys))
	if err := txn.LockKeys(ctx, lockCtx, keys...); err != nil {
		return nil, err
	}
	vals := map[string][]byte{}
	for k, v := range lockCtx.Values {
		if v.Exists {
			vals[k] = v.Value
		}
	}
	return vals, nil
}

// transferOnce moves a random amount between two random accounts and records it in the
// ledger, all in one transaction: optimistic (reads at start_ts, conflicts found at
// prewrite) or pessimistic (locks first, then reads the latest values).
func (b *bank) transferOnce(c *txnkv.Client, rng *rand.Rand, pessimistic, onePC bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	txn, err := c.Begin()
	if err != nil {
		atomic.AddInt64(&b.st.failed, 1)
		return
	}
	txn.SetEnable1PC(onePC)
	from := rng.Intn(accounts)
	to := rng.Intn(accounts - 1)
	if to >= from {
		to++
	}
	var vals map[string][]byte
	if pessimistic {
		vals, err = readPessimistic(ctx, c, txn, [][]byte{acct(from), acct(to)})
	} else {
		vals, err = txn.BatchGet(ctx, [][]byte{acct(from), acct(to)})
	}
	if err != nil || len(vals) != 2 {
		_ = txn.Rollback()
		var dl *tikverr.ErrDeadlock
		if errors.As(err, &dl) {
			atomic.AddInt64(&b.st.deadlocks, 1)
		} else if tikverr.IsErrWriteConflict(err) || errors.Is(err, tikverr.ErrLockWaitTimeout) {
			atomic.AddInt64(&b.st.conflicts, 1)
		} else {
			atomic.AddInt64(&b.st.failed, 1)
		}
		return
	}
	fb, err1 := balance(vals[string(acct(from))])
	tb, err2 := balance(vals[string(acct(to))])
	if err1 != nil || err2 != nil {
		b.fail("corrupt balance: %v %v", err1, err2)
		return
	}
	x := transfer{startTS: txn.StartTS(), from: from, to: to, amount: rng.Intn(fb/4 + 1)}
	_ = txn.Set(acct(from), []byte(strconv.Itoa(fb-x.amount)))
	_ = txn.Set(acct(to), []byte(strconv.Itoa(tb+x.amount)))
	_ = txn.Set(ledgerKey(x.startTS), []byte(x.String()))
	err = txn.Commit(ctx)
	switch {
	case err == nil:
		atomic.AddInt64(&b.st.acked, 1)
		b.mu.Lock()
		b.ackLog = append(b.ackLog, x)
		b.mu.Unlock()
	case tikverr.IsErrWriteConflict(err):
		atomic.AddInt64(&b.st.conflicts, 1)
	case tikverr.IsErrorUndetermined(err):
		atomic.AddInt64(&b.st.undetermined, 1)
	default:
		atomic.AddInt64(&b.st.failed, 1)
	}
}

func (b *bank) checkTotal(c *txnkv.Client, scan bool) {
	var sum int
	var ts uint64
	var err error
	if scan {
		sum, ts, err = b.sumScan(c)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		sum, ts, err = b.sumPoint(ctx, c)
		cancel()
	}
	if err != nil {
		if strings.Contains(err.Error(), "want") {
			b.fail("%v", err)
		}
		atomic.AddInt64(&b.st.readErrors, 1)
		return
	}
	if sum != accounts*openingBalance {
		b.fail("snapshot at %d (scan %v) sees a total of %d, want %d", ts, scan, sum,
			accounts*openingBalance)
	}
	if scan {
		atomic.AddInt64(&b.st.scanReads, 1)
	} else {
		atomic.AddInt64(&b.st.pointReads, 1)
	}
}

func newClient(t *testing.T, c *cluster.Cluster) *txnkv.Client {
	t.Helper()
	cli, err := txnkv.NewClient(c.PDAddrs())
	if err != nil {
		t.Fatalf("txn client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// waitReplicated waits until every region has three voters and a leader.
func waitReplicated(t *testing.T, pdc pd.Client, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	why := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rs, err := pdc.ScanRegions(ctx, nil, nil, 1000)
		cancel()
		ok := err == nil && len(rs) > 0
		for _, r := range rs {
			if len(r.Meta.GetPeers()) != 3 || r.Leader == nil || len(r.PendingPeers) > 0 {
				ok = false
				why = fmt.Sprintf("region %d: %d peers, leader %v, %d pending", r.Meta.GetId(),
					len(r.Meta.GetPeers()), r.Leader != nil, len(r.PendingPeers))
			}
		}
		if ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("regions not replicated in %v: %s", timeout, why)
}

// setUp opens the accounts, splitting them over three regions so that transfers are
// cross-region two-phase commits.
func setUp(t *testing.T, c *cluster.Cluster, cli *txnkv.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if _, err := cli.SplitRegions(ctx, [][]byte{acct(33), acct(66), []byte(ledgerPrefix)}, false, nil); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("split: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	pdc := c.PDClient()
	defer pdc.Close()
	waitReplicated(t, pdc, 90*time.Second)
	txn, err := cli.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < accounts; i++ {
		_ = txn.Set(acct(i), []byte(strconv.Itoa(openingBalance)))
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatalf("open accounts: %v", err)
	}
}

func TestBankTransfersSurviveStoreKills(t *testing.T) {
	runFor := seconds("TKV_BANK_SECONDS", 65*time.Second)
	c := cluster.Start(t, cluster.Options{Stores: 3, TiKVConfig: bankTiKV})
	setUp(t, c, newClient(t, c))
	b := &bank{t: t, c: c}

	var wg sync.WaitGroup
	seed := time.Now().UnixNano()
	if s := os.Getenv("TKV_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("TKV_SEED=%d", seed)
	for i := 0; i < clients; i++ {
		cli := newClient(t, c)
		rng := rand.New(rand.NewSource(seed + int64(i)))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; !b.stop.Load(); n++ {
				b.transferOnce(cli, rng, i < pessimistic, i%2 == 1)
				if n%10 == 9 {
					b.checkTotal(cli, i%2 == 0)
				}
			}
		}(i)
	}
	reader := newClient(t, c)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; !b.stop.Load(); n++ {
			b.checkTotal(reader, n%2 == 1)
		}
	}()

	// The nemesis: every 15 s one store (in turn) is killed with SIGKILL and restarted a few
	// seconds later.
	start := time.Now()
	kills := 0
	for next := killEvery; !b.stop.Load(); {
		now := time.Since(start)
		if now >= runFor {
			break
		}
		if now >= next {
			victim := kills % len(c.Stores)
			t.Logf("%5.1fs: kill -9 store %d (%d acknowledged transfers so far)", now.Seconds(),
				victim+1, atomic.LoadInt64(&b.st.acked))
			c.Stores[victim].Stop(true)
			time.Sleep(downTime)
			c.RestartStore(victim)
			t.Logf("%5.1fs: store %d restarted", time.Since(start).Seconds(), victim+1)
			kills++
			next += killEvery
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	st := &b.st
	t.Logf("%.0fs, %d kills: %d transfers acknowledged, %d write conflicts or lock wait timeouts, "+
		"%d deadlocks, %d undetermined, %d failed; %d point and %d scan snapshot reads of the "+
		"total, %d read errors", elapsed.Seconds(), kills, st.acked, st.conflicts, st.deadlocks,
		st.undetermined, st.failed, st.pointReads, st.scanReads, st.readErrors)
	if v := b.badRead.Load(); v != nil {
		t.Fatalf("%s", v)
	}
	if kills < int(runFor/killEvery) {
		t.Fatalf("only %d kills in %v", kills, elapsed)
	}
	if st.acked < 50 || st.pointReads+st.scanReads < 20 {
		t.Fatalf("too little progress through the faults: %d transfers, %d reads", st.acked,
			st.pointReads+st.scanReads)
	}
	b.verifyLedger(newClient(t, c))
}

// verifyLedger reads the accounts and the ledger in one snapshot: the total is intact,
// every acknowledged transfer is in the ledger, and the ledger replayed over the opening
// balances gives exactly the balances.
func (b *bank) verifyLedger(cli *txnkv.Client) {
	t := b.t
	var err error
	var bal map[int]int
	var ledger map[uint64]transfer
	// The last restarted store may still be catching up: retry transient read failures.
	for attempt := 0; ; attempt++ {
		bal, ledger, err = readAll(cli)
		if err == nil {
			break
		}
		if attempt == 10 || strings.Contains(err.Error(), "ledger") {
			t.Fatalf("final read: %v", err)
		}
		t.Logf("final read: %v (retrying)", err)
		time.Sleep(time.Second)
	}
	want := make([]int, accounts)
	for i := range want {
		want[i] = openingBalance
	}
	for _, x := range ledger {
		want[x.from] -= x.amount
		want[x.to] += x.amount
	}
	total := 0
	for i := 0; i < accounts; i++ {
		total += bal[i]
		if bal[i] != want[i] {
			t.Fatalf("account %d holds %d, but the ledger (%d transfers) says %d", i, bal[i],
				len(ledger), want[i])
		}
	}
	if total != accounts*openingBalance {
		t.Fatalf("final total %d, want %d", total, accounts*openingBalance)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range b.ackLog {
		got, ok := ledger[x.startTS]
		if !ok {
			t.Fatalf("acknowledged transfer %d (%v) is lost", x.startTS, x)
		}
		if got != x {
			t.Fatalf("acknowledged transfer %d is %v in the ledger, want %v", x.startTS, got, x)
		}
	}
	t.Logf("ledger: %d committed transfers (%d acknowledged), balances match it exactly",
		len(ledger), len(b.ackLog))
}

func readAll(cli *txnkv.Client) (map[int]int, map[uint64]transfer, error) {
	txn, err := cli.Begin()
	if err != nil {
		return nil, nil, err
	}
	defer txn.Rollback()
	it, err := txn.Iter([]byte(acctPrefix), nil)
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	bal := map[int]int{}
	ledger := map[uint64]transfer{}
	for it.Valid() && strings.HasPrefix(string(it.Key()), "bank/") {
		k := string(it.Key())
		switch {
		case strings.HasPrefix(k, acctPrefix):
			i, err1 := strconv.Atoi(strings.TrimPrefix(k, acctPrefix))
			v, err2 := balance(it.Value())
			if err1 != nil || err2 != nil {
				return nil, nil, fmt.Errorf("ledger: bad account %q=%q", k, it.Value())
			}
			bal[i] = v
		case strings.HasPrefix(k, ledgerPrefix):
			x, err := parseLedger(it.Key(), it.Value())
			if err != nil {
				return nil, nil, fmt.Errorf("ledger: %v", err)
			}
			ledger[x.startTS] = x
		}
		if err := it.Next(); err != nil {
			return nil, nil, err
		}
	}
	if len(bal) != accounts {
		return nil, nil, fmt.Errorf("ledger: %d accounts, want %d", len(bal), accounts)
	}
	return bal, ledger, nil
}
