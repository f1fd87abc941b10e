// go-ycsb-lite: YCSB workloads A and C against a tikv-c (or TiKV) cluster through the official
// Go client, client-go v2.0.4 with its default configuration (rawkv, BatchCommands on), so
// the figures a TiKV user would see sit in the same table as tikv-bench's.
//
// It follows tikv-bench exactly: 16-byte keys "tkvb" + 12 digits, 100-byte self-describing
// values (key, epoch, version, balance, filler, FNV-1a checksum), YCSB's scrambled zipfian
// (constant 0.99), closed-loop clients (one goroutine each), warm-up then a measured
// window, log-linear latency histograms, server CPU and RSS from /proc, and the same
// ledger check on every read (the value was written for that key, and it is not older than
// a write that was acknowledged alone before the read began). Results go to --json in
// tikv-bench's format with system "client-go", so `tikv-bench report` merges them.
//
//	go-ycsb-lite --pd ADDRS [--workloads ycsb-a,ycsb-c] [--clients 64] [--keys 100000]
//	             [--warmup 2] [--seconds 6] [--quick] [--json FILE] [--server-pids P,P]
//	             [--no-preload] [--seed N]
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tikv/client-go/v2/rawkv"
)

const (
	keyLen      = 16
	valueLen    = 100
	prefixKV    = "tkvb"
	zipfTheta   = 0.99
	zipfItems   = 10000000000
	preloadSize = 2000
)

// ---- keys and values ---------------------------------------------------------------------

func makeKey(idx uint64) []byte {
	k := make([]byte, keyLen)
	copy(k, prefixKV)
	for i := keyLen - 1; i >= 4; i-- {
		k[i] = byte('0' + idx%10)
		idx /= 10
	}
	return k
}

func fnv32(p []byte) uint32 {
	h := uint32(2166136261)
	for _, b := range p {
		h ^= uint32(b)
		h *= 16777619
	}
	return h
}

func splitmix(s *uint64) uint64 {
	*s += 0x9E3779B97F4A7C15
	z := *s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func fill(v []byte) {
	s := uint64(fnv32(v[:32]))<<32 | uint64(fnv32(v[8:32]))
	for off := 32; off < 96; off += 8 {
		binary.BigEndian.PutUint64(v[off:], splitmix(&s))
	}
}

func makeValue(key []byte, epoch, version uint32, balance int64) []byte {
	v := make([]byte, valueLen)
	copy(v, key)
	binary.BigEndian.PutUint32(v[16:], epoch)
	binary.BigEndian.PutUint32(v[20:], version)
	binary.BigEndian.PutUint64(v[24:], uint64(balance))
	fill(v)
	binary.BigEndian.PutUint32(v[96:], fnv32(v[:96]))
	return v
}

// parseValue checks that v was written by a tikv-bench tool for key; returns epoch, version.
func parseValue(v, key []byte) (uint32, uint32, error) {
	if len(v) != valueLen {
		return 0, 0, fmt.Errorf("value of %s has %d bytes, want %d", key, len(v), valueLen)
	}
	if binary.BigEndian.Uint32(v[96:]) != fnv32(v[:96]) {
		return 0, 0, fmt.Errorf("value of %s: checksum mismatch", key)
	}
	if string(v[:keyLen]) != string(key) {
		return 0, 0, fmt.Errorf("value read for %s was written for %s", key, v[:keyLen])
	}
	want := make([]byte, valueLen)
	copy(want, v[:32])
	fill(want)
	if string(want[32:96]) != string(v[32:96]) {
		return 0, 0, fmt.Errorf("value of %s: filler bytes differ", key)
	}
	return binary.BigEndian.Uint32(v[16:]), binary.BigEndian.Uint32(v[20:]), nil
}

// ---- the ledger (see tikv-bench's tb.h) --------------------------------------------------

type keyState struct {
	issued, floor, inflight atomic.Uint32
}

type ledger struct {
	epoch uint32
	keys  []keyState
}

type write struct {
	idx     uint64
	version uint32
	solo    bool
}

func (l *ledger) writeBegin(idx uint64) write {
	k := &l.keys[idx]
	solo := k.inflight.Add(1) == 1
	return write{idx, k.issued.Add(1), solo}
}

func (l *ledger) writeEnd(w write, ok bool) {
	k := &l.keys[w.idx]
	if ok && w.solo && k.issued.Load() == w.version {
		for {
			cur := k.floor.Load()
			if cur >= w.version || k.floor.CompareAndSwap(cur, w.version) {
				break
			}
		}
	}
	k.inflight.Add(^uint32(0))
}

func (l *ledger) check(idx uint64, floor uint32, v []byte) error {
	key := makeKey(idx)
	if v == nil {
		return fmt.Errorf("%s not found (every key was written)", key)
	}
	epoch, version, err := parseValue(v, key)
	if err != nil {
		return err
	}
	if epoch != l.epoch {
		if floor > 0 {
			return fmt.Errorf("stale read of %s: a value of an earlier run after version %d was acknowledged", key, floor)
		}
		return nil
	}
	if issued := l.keys[idx].issued.Load(); version > issued {
		return fmt.Errorf("%s: version %d was never written (last %d)", key, version, issued)
	}
	if version < floor {
		return fmt.Errorf("stale read of %s: version %d after version %d was acknowledged", key, version, floor)
	}
	return nil
}

// ---- YCSB's scrambled zipfian ------------------------------------------------------------

func zeta(n uint64, theta float64) float64 {
	m := n
	if m > 1000000 {
		m = 1000000
	}
	sum := 0.0
	for i := m; i >= 1; i-- {
		sum += math.Pow(float64(i), -theta)
	}
	if n == m {
		return sum
	}
	dm, dn := float64(m), float64(n)
	integral := (math.Pow(dn, 1-theta) - math.Pow(dm, 1-theta)) / (1 - theta)
	ends := (math.Pow(dn, -theta) - math.Pow(dm, -theta)) / 2
	slopes := (-theta*math.Pow(dn, -theta-1) + theta*math.Pow(dm, -theta-1)) / 12
	return sum + integral + ends + slopes
}

type zipf struct {
	items                          uint64
	theta, zetan, alpha, eta, half float64
}

func newZipf(items uint64, theta float64) *zipf {
	z := &zipf{items: items, theta: theta, zetan: zeta(items, theta)}
	z.alpha = 1 / (1 - theta)
	z.eta = (1 - math.Pow(2/float64(items), 1-theta)) / (1 - zeta(2, theta)/z.zetan)
	z.half = math.Pow(0.5, theta)
	return z
}

// rng is xoshiro256** seeded by splitmix64, as tikv-c's tkv_rng.
type rng struct{ s [4]uint64 }

func newRng(seed uint64) *rng {
	r := &rng{}
	for i := range r.s {
		r.s[i] = splitmix(&seed)
	}
	return r
}

func (r *rng) next() uint64 {
	res := bits.RotateLeft64(r.s[1]*5, 7) * 9
	t := r.s[1] << 17
	r.s[2] ^= r.s[0]
	r.s[3] ^= r.s[1]
	r.s[1] ^= r.s[2]
	r.s[0] ^= r.s[3]
	r.s[2] ^= t
	r.s[3] = bits.RotateLeft64(r.s[3], 45)
	return res
}

func (r *rng) float() float64 { return float64(r.next()>>11) * (1.0 / (1 << 53)) }

func (z *zipf) next(r *rng) uint64 {
	u := r.float()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < 1+z.half {
		return 1
	}
	v := uint64(float64(z.items) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	if v >= z.items {
		v = z.items - 1
	}
	return v
}

func fnv64(v uint64) uint64 {
	h := uint64(0xCBF29CE484222325)
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		v >>= 8
		h *= 1099511628211
	}
	if int64(h) < 0 && h != 1<<63 {
		h = uint64(-int64(h))
	}
	return h
}

// ---- histogram (tikv-bench's layout: exact below 256 ns, 128 sub-buckets per octave) -----

const (
	subBits = 8
	maxBits = 47
	buckets = (1 << subBits) + (maxBits-subBits+1)*(1<<(subBits-1))
)

type hist struct {
	count, sum, max uint64
	b               [buckets]uint64
}

func histIndex(ns uint64) int {
	if ns < 1<<subBits {
		return int(ns)
	}
	msb := 63 - bits.LeadingZeros64(ns)
	if msb > maxBits {
		return buckets - 1
	}
	shift := msb - (subBits - 1)
	top := int(ns >> uint(shift))
	return (1 << subBits) + (msb-subBits)*(1<<(subBits-1)) + top - (1 << (subBits - 1))
}

func bucketHigh(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	j := i - (1 << subBits)
	shift := uint(j/(1<<(subBits-1)) + 1)
	low := uint64((1<<(subBits-1))+j%(1<<(subBits-1))) << shift
	return low + (1 << shift) - 1
}

func (h *hist) record(ns uint64) {
	h.b[histIndex(ns)]++
	h.count++
	h.sum += ns
	if ns > h.max {
		h.max = ns
	}
}

func (h *hist) merge(o *hist) {
	for i := range h.b {
		h.b[i] += o.b[i]
	}
	h.count += o.count
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

func (h *hist) percentile(p float64) uint64 {
	if h.count == 0 {
		return 0
	}
	if p >= 100 {
		return h.max
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.count)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.b {
		seen += c
		if seen >= rank {
			v := bucketHigh(i)
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}

// ---- /proc -------------------------------------------------------------------------------

type procSample struct {
	cpu      float64
	rss, hwm uint64
	missing  int
}

func sampleProcs(pids []int) procSample {
	var s procSample
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		status, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil || err2 != nil {
			s.missing++
			continue
		}
		text := string(stat)
		fields := strings.Fields(text[strings.LastIndexByte(text, ')')+1:])
		if len(fields) < 13 {
			s.missing++
			continue
		}
		ut, _ := strconv.ParseUint(fields[11], 10, 64)
		st, _ := strconv.ParseUint(fields[12], 10, 64)
		s.cpu += float64(ut+st) / 100 // USER_HZ is 100 on Linux
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				if f[0] == "VmRSS:" {
					s.rss += kb * 1024
				} else {
					s.hwm += kb * 1024
				}
			}
		}
	}
	return s
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// ---- the closed loop ---------------------------------------------------------------------

type result struct {
	System         string   `json:"system"`
	Driver         string   `json:"driver"`
	Workload       string   `json:"workload"`
	Clients        int      `json:"clients"`
	Keys           uint64   `json:"keys"`
	Mode           string   `json:"mode"`
	Seconds        float64  `json:"seconds"`
	Ops            uint64   `json:"ops"`
	TotalOps       uint64   `json:"total_ops"`
	Errors         uint64   `json:"errors"`
	Retries        uint64   `json:"retries"`
	OpsPerSec      float64  `json:"ops_per_sec"`
	P50            float64  `json:"p50_ms"`
	P99            float64  `json:"p99_ms"`
	P999           float64  `json:"p999_ms"`
	Mean           float64  `json:"mean_ms"`
	Max            float64  `json:"max_ms"`
	ServerCPUPer1k *float64 `json:"server_cpu_s_per_1k,omitempty"`
	ServerRSS      *uint64  `json:"server_rss_bytes,omitempty"`
	ServerRSSPeak  *uint64  `json:"server_rss_peak_bytes,omitempty"`
	ClientCPUPer1k float64  `json:"client_cpu_s_per_1k"`
	ErrorSamples   []string `json:"error_samples"`
}

type bench struct {
	c    *rawkv.Client
	l    *ledger
	n    uint64
	z    *zipf
	seed uint64
	pids []int
	mu   sync.Mutex
	errs []string
	errN atomic.Uint64
}

func (b *bench) fail(err error) {
	b.errN.Add(1)
	b.mu.Lock()
	if len(b.errs) < 5 {
		b.errs = append(b.errs, err.Error())
	}
	b.mu.Unlock()
}

// op runs one YCSB operation on a zipfian key: a read with probability readPct/100, else an
// update (a blind put, as YCSB's update).
func (b *bench) op(ctx context.Context, r *rng, readPct uint64) error {
	idx := fnv64(b.z.next(r)) % b.n
	key := makeKey(idx)
	if r.next()%100 < readPct {
		floor := b.l.keys[idx].floor.Load()
		v, err := b.c.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("client-go get %s: %w", key, err)
		}
		return b.l.check(idx, floor, v)
	}
	w := b.l.writeBegin(idx)
	err := b.c.Put(ctx, key, makeValue(key, b.l.epoch, w.version, 0))
	b.l.writeEnd(w, err == nil)
	if err != nil {
		return fmt.Errorf("client-go put %s: %w", key, err)
	}
	return nil
}

func (b *bench) cell(workload string, clients int, warmup, window time.Duration, cellSeed uint64) result {
	readPct := map[string]uint64{"ycsb-a": 50, "ycsb-b": 95, "ycsb-c": 100}[workload]
	b.errs = nil
	b.errN.Store(0)
	start := time.Now()
	ws, we := start.Add(warmup), start.Add(warmup+window)
	var stop atomic.Bool
	hists := make([]hist, clients)
	ops := make([]uint64, clients)
	total := make([]uint64, clients)
	var wg sync.WaitGroup
	ctx := context.Background()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := newRng(cellSeed*1000003 + uint64(i))
			for !stop.Load() {
				t0 := time.Now()
				err := b.op(ctx, r, readPct)
				t1 := time.Now()
				total[i]++
				if err != nil {
					b.fail(err)
					return
				}
				if !t1.Before(ws) && t1.Before(we) {
					hists[i].record(uint64(t1.Sub(t0).Nanoseconds()))
					ops[i]++
				}
			}
		}(i)
	}
	time.Sleep(time.Until(ws))
	p0, c0 := sampleProcs(b.pids), selfCPU()
	time.Sleep(time.Until(we))
	p1, c1 := sampleProcs(b.pids), selfCPU()
	stop.Store(true)
	wg.Wait()

	var h hist
	res := result{System: "client-go", Driver: "client-go-rawkv", Workload: workload,
		Clients: clients, Keys: b.n, Mode: "goroutines", Seconds: window.Seconds()}
	for i := 0; i < clients; i++ {
		h.merge(&hists[i])
		res.Ops += ops[i]
		res.TotalOps += total[i]
	}
	res.Errors = b.errN.Load()
	res.ErrorSamples = append([]string{}, b.errs...)
	res.OpsPerSec = float64(res.Ops) / res.Seconds
	res.P50 = float64(h.percentile(50)) / 1e6
	res.P99 = float64(h.percentile(99)) / 1e6
	res.P999 = float64(h.percentile(99.9)) / 1e6
	if h.count > 0 {
		res.Mean = float64(h.sum) / float64(h.count) / 1e6
	}
	res.Max = float64(h.max) / 1e6
	if len(b.pids) > 0 && res.Ops > 0 {
		cpu := (p1.cpu - p0.cpu) * 1000 / float64(res.Ops)
		rss, hwm := p1.rss, p1.hwm
		res.ServerCPUPer1k, res.ServerRSS, res.ServerRSSPeak = &cpu, &rss, &hwm
		if p0.missing > 0 || p1.missing > 0 {
			res.Errors++
			res.ErrorSamples = append(res.ErrorSamples, "server processes could not be read from /proc")
		}
	}
	if res.Ops > 0 {
		res.ClientCPUPer1k = (c1 - c0) * 1000 / float64(res.Ops)
	}
	return res
}

func (b *bench) preload(threads int) error {
	var next atomic.Uint64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for firstErr.Load() == nil {
				lo := next.Add(preloadSize) - preloadSize
				if lo >= b.n {
					return
				}
				hi := lo + preloadSize
				if hi > b.n {
					hi = b.n
				}
				keys := make([][]byte, 0, hi-lo)
				vals := make([][]byte, 0, hi-lo)
				for i := lo; i < hi; i++ {
					k := makeKey(i)
					keys = append(keys, k)
					vals = append(vals, makeValue(k, b.l.epoch, 1, 0))
				}
				if err := b.c.BatchPut(context.Background(), keys, vals); err != nil {
					firstErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	for i := range b.l.keys {
		b.l.keys[i].issued.Store(1)
		b.l.keys[i].floor.Store(1)
	}
	return nil
}

func main() {
	pd := flag.String("pd", "", "PD endpoints, comma-separated")
	workloads := flag.String("workloads", "ycsb-a,ycsb-c", "ycsb-a, ycsb-b, ycsb-c")
	clientsFlag := flag.String("clients", "64", "concurrency levels")
	keys := flag.Uint64("keys", 100000, "preloaded keys")
	warmup := flag.Float64("warmup", -1, "seconds before the window (default 2, --quick 0.5)")
	seconds := flag.Float64("seconds", -1, "measured window (default 6, --quick 1.5)")
	quick := flag.Bool("quick", false, "short cells")
	jsonOut := flag.String("json", "", "write results as JSON")
	pidsFlag := flag.String("server-pids", "", "server processes whose CPU and RSS are reported")
	noPreload := flag.Bool("no-preload", false, "the keys already exist")
	seed := flag.Uint64("seed", 0, "PRNG seed (0: from the clock)")
	flag.Parse()
	if *pd == "" {
		fmt.Fprintln(os.Stderr, "go-ycsb-lite: --pd is required")
		os.Exit(2)
	}
	if *warmup < 0 {
		*warmup = 2
		if *quick {
			*warmup = 0.5
		}
	}
	if *seconds < 0 {
		*seconds = 6
		if *quick {
			*seconds = 1.5
		}
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	var pids []int
	for _, p := range strings.Split(*pidsFlag, ",") {
		if p == "" {
			continue
		}
		v, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "go-ycsb-lite: bad pid %q\n", p)
			os.Exit(2)
		}
		pids = append(pids, v)
	}
	c, err := rawkv.NewClientWithOpts(context.Background(), strings.Split(*pd, ","))
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-ycsb-lite: connect: %v\n", err)
		os.Exit(1)
	}
	defer c.Close()
	b := &bench{c: c, n: *keys, z: newZipf(zipfItems, zipfTheta), seed: *seed, pids: pids,
		l: &ledger{epoch: uint32(*seed^*seed>>32) | 1, keys: make([]keyState, *keys)}}
	fmt.Printf("go-ycsb-lite: client-go v2.0.4 (default config), seed %d, %d keys\n", *seed, *keys)
	if !*noPreload {
		t0 := time.Now()
		if err := b.preload(8); err != nil {
			fmt.Fprintf(os.Stderr, "go-ycsb-lite: preload: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("go-ycsb-lite: preloaded %d keys in %.1f s\n", *keys, time.Since(t0).Seconds())
	}
	failed := false
	var results []result
	for wi, w := range strings.Split(*workloads, ",") {
		if w != "ycsb-a" && w != "ycsb-b" && w != "ycsb-c" {
			fmt.Fprintf(os.Stderr, "go-ycsb-lite: unknown workload %s\n", w)
			os.Exit(2)
		}
		for li, cs := range strings.Split(*clientsFlag, ",") {
			n, err := strconv.Atoi(cs)
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "go-ycsb-lite: bad clients %q\n", cs)
				os.Exit(2)
			}
			r := b.cell(w, n, time.Duration(*warmup*float64(time.Second)),
				time.Duration(*seconds*float64(time.Second)), *seed+uint64(wi*100+li))
			line := fmt.Sprintf("client-go rawkv %-8s %4d clients %10.0f ops/s  p50 %7.3f  p99 %7.3f  p99.9 %7.3f ms",
				w, n, r.OpsPerSec, r.P50, r.P99, r.P999)
			if r.ServerCPUPer1k != nil {
				line += fmt.Sprintf("  cpu %.3f s/1k  rss %.0f MiB", *r.ServerCPUPer1k, float64(*r.ServerRSS)/(1<<20))
			}
			if r.Errors > 0 {
				line += fmt.Sprintf("  ERRORS %d", r.Errors)
				failed = true
			}
			if r.Ops == 0 {
				failed = true
			}
			fmt.Println(line)
			for _, e := range r.ErrorSamples {
				fmt.Println("    error:", e)
			}
			results = append(results, r)
		}
	}
	if *jsonOut != "" {
		out, _ := json.MarshalIndent(map[string]any{"tool": "go-ycsb-lite", "seed": *seed, "results": results}, "", " ")
		if err := os.WriteFile(*jsonOut, out, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "go-ycsb-lite: %v\n", err)
			failed = true
		}
	}
	if failed {
		fmt.Println("go-ycsb-lite: FAILED")
		os.Exit(1)
	}
	fmt.Println("go-ycsb-lite: ok")
}
