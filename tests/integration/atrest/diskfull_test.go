package atrest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pingcap/kvproto/pkg/errorpb"
	"github.com/pingcap/kvproto/pkg/kvrpcpb"
	"github.com/pingcap/kvproto/pkg/tikvpb"
	"github.com/tikv-c/compat/cluster"
	pd "github.com/tikv/pd/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	// The store's whole file system, and storage.reserve-space. The store raises the reserve
	// to twice what its engines may flush and compact at once (with fastTiKV's 1 MiB
	// memtables: 2 x (4 CFs x 1 MiB + 2 x 8 MiB outputs) x 1.1 per engine, 88 MiB in all), so
	// AlmostFull comes below 88 MiB free and AlreadyFull below 44 MiB. The reserve is large
	// next to the data on purpose: RocksDB's compactions need room for a second copy of what
	// they rewrite, and on a disk this small that is most of the data.
	smallFSBytes = 192 << 20
	reserveSpace = "64MiB"
)

// smallFS gives a directory on a file system of smallFSBytes: a loop-mounted ext4 image when
// the test runs as root and mount -o loop works, else a tmpfs of that size, else "" (then the
// store simulates the small disk with raftstore.capacity, which makes the disk watcher count
// the data directory's size against that capacity). It returns the directory and what it is.
func smallFS(t *testing.T) (string, string) {
	base := t.TempDir()
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TKV_DISK_FULL_SIMULATE") == "1" { // to exercise the fallback by hand
		return "", "TKV_DISK_FULL_SIMULATE=1"
	}
	if os.Geteuid() != 0 {
		return "", "not root: cannot mount a small file system"
	}
	mounted := func(kind string, args ...string) bool {
		out, err := exec.Command("mount", args...).CombinedOutput()
		if err != nil {
			t.Logf("mount %s failed: %v: %s", kind, err, strings.TrimSpace(string(out)))
			return false
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", mnt, err, out)
			}
		})
		return true
	}
	img := filepath.Join(base, "fs.img")
	if f, err := os.Create(img); err == nil {
		err = f.Truncate(smallFSBytes)
		f.Close()
		out, mkErr := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput()
		if err == nil && mkErr == nil && mounted("loop", "-o", "loop", img, mnt) {
			return mnt, "loop-mounted ext4 image"
		}
		t.Logf("ext4 image: %v %v %s", err, mkErr, strings.TrimSpace(string(out)))
	}
	if mounted("tmpfs", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", smallFSBytes),
		"tmpfs", mnt) {
		return mnt, "tmpfs"
	}
	return "", "neither a loop mount nor a tmpfs mount works here"
}

// fillClient writes through raw gRPC to the one store, so the region error itself is seen
// (the official client retries DiskFull until its backoff runs out).
type fillClient struct {
	t   *testing.T
	pdc pd.Client
	kv  tikvpb.TikvClient
}

// batchPut writes @keys/@vals with @opt and returns the region error (nil when written).
func (f *fillClient) batchPut(keys, vals [][]byte, opt kvrpcpb.DiskFullOpt) *errorpb.Error {
	f.t.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		region, err := f.pdc.GetRegion(ctx, keys[0])
		if err != nil || region == nil || region.Leader == nil {
			cancel()
			f.t.Fatalf("get region: %v", err)
		}
		var pairs []*kvrpcpb.KvPair
		for i := range keys {
			pairs = append(pairs, &kvrpcpb.KvPair{Key: keys[i], Value: vals[i]})
		}
		resp, err := f.kv.RawBatchPut(ctx, &kvrpcpb.RawBatchPutRequest{
			Context: &kvrpcpb.Context{RegionId: region.Meta.GetId(),
				RegionEpoch: region.Meta.GetRegionEpoch(), Peer: region.Leader, DiskFullOpt: opt},
			Pairs: pairs})
		cancel()
		if err != nil {
			f.t.Fatalf("raw batch put: %v", err)
		}
		if resp.GetError() != "" {
			f.t.Fatalf("raw batch put: %s", resp.GetError())
		}
		re := resp.GetRegionError()
		if re == nil || re.GetDiskFull() != nil || attempt >= 20 {
			return re
		}
		time.Sleep(200 * time.Millisecond) // a split or a leader change: ask PD again
	}
}

// fsFree returns the free bytes of the file system holding @dir (what non-root users get).
func fsFree(t *testing.T, dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// A store on a small file system filled by writes answers DiskFull (first AlmostFull, then,
// for writes allowed there, AlreadyFull), keeps serving reads, does not crash, accepts writes
// again after a delete range (compacted) and reads everything back after a restart.
func TestDiskFull(t *testing.T) {
	mnt, kind := smallFS(t)
	cfg := fastTiKV + "\n[storage]\nreserve-space = \"" + reserveSpace + "\"\n"
	opts := cluster.Options{Stores: 1}
	watchDir := ""
	if mnt != "" {
		opts.StoreDir = func(i int) string { return filepath.Join(mnt, fmt.Sprintf("tikv%d", i+1)) }
		watchDir = mnt
		t.Logf("store data directory on a %d MiB %s", smallFSBytes>>20, kind)
	} else {
		cfg = strings.Replace(cfg, "[raftstore]\n",
			fmt.Sprintf("[raftstore]\ncapacity = \"%dMiB\"\n", smallFSBytes>>20), 1)
		t.Logf("%s: simulating a %d MiB disk with raftstore.capacity", kind, smallFSBytes>>20)
	}
	opts.TiKVConfig = cfg
	c := cluster.Start(t, opts)
	store := c.Stores[0]
	pdc := c.PDClient()
	defer pdc.Close()
	conn, err := grpc.Dial(store.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f := &fillClient{t: t, pdc: pdc, kv: tikvpb.NewTikvClient(conn)}
	free := func() string {
		if watchDir == "" {
			return "simulated"
		}
		return fmt.Sprintf("%d MiB free", fsFree(t, watchDir)>>20)
	}

	cli := newRawClient(t, c)
	defer cli.Close()
	keep := newDataset(t, "keep/", 200, 1024)
	keep.write(t, cli)

	// 1. Fill until the store refuses: 256 KiB batches, paced to about 2.5 MiB/s so the
	// one-second disk watcher sees the reserve long before the file system is exhausted.
	var fillKeys, fillVals [][]byte
	var full *errorpb.Error
	for batch := 0; batch < 1000 && full == nil; batch++ {
		var ks, vs [][]byte
		for i := 0; i < 16; i++ {
			ks = append(ks, []byte(fmt.Sprintf("fill/%08d", len(fillKeys)+i)))
			vs = append(vs, []byte(randomHex(t, 8<<10)))
		}
		if re := f.batchPut(ks, vs, kvrpcpb.DiskFullOpt_NotAllowedOnFull); re != nil {
			if re.GetDiskFull() == nil {
				t.Fatalf("batch %d: region error %v", batch, re)
			}
			full = re
			break
		}
		fillKeys = append(fillKeys, ks...)
		fillVals = append(fillVals, vs...)
		if !store.Running() {
			t.Fatalf("the store exited while being filled")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if full == nil {
		t.Fatalf("%d MiB written and no DiskFull (%s)", len(fillKeys)*16>>10, free())
	}
	t.Logf("DiskFull after %d MiB of values (%s): stores %v, %q", len(fillKeys)*16>>10, free(),
		full.GetDiskFull().GetStoreId(), full.GetDiskFull().GetReason())

	// 2. Writes allowed on an almost full disk go on until the disk is already full.
	var already *errorpb.Error
	for batch := 0; batch < 1000 && already == nil; batch++ {
		ks := [][]byte{[]byte(fmt.Sprintf("fill/%08d", len(fillKeys)))}
		vs := [][]byte{[]byte(randomHex(t, 32<<10))}
		re := f.batchPut(ks, vs, kvrpcpb.DiskFullOpt_AllowedOnAlmostFull)
		if re != nil {
			if re.GetDiskFull() == nil {
				t.Fatalf("region error %v", re)
			}
			if strings.Contains(re.GetDiskFull().GetReason(), "already") {
				already = re
			}
			break
		}
		fillKeys = append(fillKeys, ks...)
		fillVals = append(fillVals, vs...)
		time.Sleep(50 * time.Millisecond)
	}
	if already == nil {
		t.Fatalf("writes allowed on an almost full disk never reached AlreadyFull (%s)", free())
	}
	t.Logf("AlreadyFull (%s): %q", free(), already.GetDiskFull().GetReason())
	if re := f.batchPut([][]byte{[]byte("fill/x")}, [][]byte{[]byte("v")},
		kvrpcpb.DiskFullOpt_NotAllowedOnFull); re == nil || re.GetDiskFull() == nil {
		t.Fatalf("an ordinary write on a full disk: %v", re)
	}

	// 3. Reads go on: a sample of the filled keys and everything kept.
	for i := 0; i < len(fillKeys); i += 37 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		v, err := cli.Get(ctx, fillKeys[i])
		cancel()
		if err != nil || !bytes.Equal(v, fillVals[i]) {
			t.Fatalf("read %s on a full disk: %v (%d bytes)", fillKeys[i], err, len(v))
		}
	}
	keep.check(t, cli)
	if !store.Running() {
		t.Fatalf("the store exited on a full disk")
	}

	// 4. A delete range is accepted on a full disk; once its range is compacted, writes are
	// accepted again. RocksDB's own compactions may have freed some room meanwhile: write
	// until the store refuses again, so the delete range is what brings writes back.
	for batch := 0; ; batch++ {
		ks := [][]byte{[]byte(fmt.Sprintf("fill/%08d", len(fillKeys)))}
		vs := [][]byte{[]byte(randomHex(t, 32<<10))}
		re := f.batchPut(ks, vs, kvrpcpb.DiskFullOpt_NotAllowedOnFull)
		if re != nil && re.GetDiskFull() != nil {
			t.Logf("refused again after %d more writes (%s)", batch, free())
			break
		}
		if re != nil || batch > 2000 {
			t.Fatalf("refilling: %v after %d writes", re, batch)
		}
		fillKeys = append(fillKeys, ks...)
		fillVals = append(fillVals, vs...)
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	err = cli.DeleteRange(ctx, []byte("fill/"), []byte("fill0"))
	cancel()
	if err != nil {
		t.Fatalf("delete range on a full disk: %v", err)
	}
	start := time.Now()
	waitFor(t, 120*time.Second, "writes accepted after the delete range", func() (bool, string) {
		re := f.batchPut([][]byte{[]byte("probe")}, [][]byte{[]byte("v")},
			kvrpcpb.DiskFullOpt_NotAllowedOnFull)
		if re != nil {
			return false, fmt.Sprintf("%v (%s)", re, free())
		}
		return true, ""
	})
	t.Logf("writes accepted %.1f s after the delete range (%s)", time.Since(start).Seconds(), free())
	after := newDataset(t, "after/", 200, 1024)
	after.write(t, cli)

	// 5. Nothing was lost or corrupted: restart and read back.
	c.RestartStore(0)
	c.WaitStoresUp(1, 60*time.Second)
	// PD still has the last heartbeat from before the restart: wait until the store itself
	// answers a read.
	waitFor(t, 60*time.Second, "the restarted store serves reads", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		region, err := pdc.GetRegion(ctx, keep.keys[0])
		if err != nil || region == nil || region.Leader == nil {
			return false, fmt.Sprintf("get region: %v", err)
		}
		resp, err := f.kv.RawGet(ctx, &kvrpcpb.RawGetRequest{Key: keep.keys[0],
			Context: &kvrpcpb.Context{RegionId: region.Meta.GetId(),
				RegionEpoch: region.Meta.GetRegionEpoch(), Peer: region.Leader}})
		if err != nil || resp.GetRegionError() != nil {
			return false, fmt.Sprintf("%v %v", err, resp.GetRegionError())
		}
		return true, ""
	})
	cli2 := newRawClient(t, c)
	defer cli2.Close()
	keep.check(t, cli2)
	after.check(t, cli2)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	left, _, err := cli2.Scan(ctx, []byte("fill/"), []byte("fill0"), 10)
	cancel()
	if err != nil || len(left) != 0 {
		t.Fatalf("after the delete range: %v, %d keys left", err, len(left))
	}
}
