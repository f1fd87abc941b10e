// Package atrest holds tikv-c's storage-security integration tests (issue 9): real pd-server
// and tikv-server processes on 127.0.0.1 (random ports, temporary directories, stopped by
// PID): encryption at rest of every data directory with data-key and master-key rotation,
// and a store on a small file system that fills up and recovers.
package atrest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikv-c/compat/cluster"
	"github.com/tikv/client-go/v2/rawkv"
)

// fastTiKV makes a test cluster react in seconds (100 ms Raft ticks, frequent log GC) with
// small memtables, so SST files appear after a few MiB.
const fastTiKV = `
[raftstore]
raft-base-tick-interval = "100ms"
pd-heartbeat-tick-interval = "1s"
pd-store-heartbeat-tick-interval = "1s"
raft-log-gc-tick-interval = "500ms"

[rocksdb.defaultcf]
write-buffer-size = "1MiB"

[raftdb.defaultcf]
write-buffer-size = "1MiB"
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
	return cli
}

// randomHex returns 2*n random hex digits.
func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// dataset is a set of keys and values written by a test; every value starts with the
// dataset's canary, a random string that appears nowhere else.
type dataset struct {
	canary string
	keys   [][]byte
	vals   [][]byte
}

// newDataset makes n pairs under @prefix with values of about @size bytes (random hex,
// so compression cannot hide them).
func newDataset(t *testing.T, prefix string, n, size int) *dataset {
	d := &dataset{canary: "tikvc-canary-" + randomHex(t, 8) + "-"}
	for i := 0; i < n; i++ {
		d.keys = append(d.keys, []byte(fmt.Sprintf("%s%08d", prefix, i)))
		d.vals = append(d.vals, []byte(d.canary+randomHex(t, size/2)))
	}
	return d
}

// write stores the dataset in batches.
func (d *dataset) write(t *testing.T, cli *rawkv.Client) {
	t.Helper()
	const chunk = 64
	for lo := 0; lo < len(d.keys); lo += chunk {
		hi := lo + chunk
		if hi > len(d.keys) {
			hi = len(d.keys)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := cli.BatchPut(ctx, d.keys[lo:hi], d.vals[lo:hi])
		cancel()
		if err != nil {
			t.Fatalf("batch put %d..%d: %v", lo, hi, err)
		}
	}
}

// check reads the whole dataset back and compares every value.
func (d *dataset) check(t *testing.T, cli *rawkv.Client) {
	t.Helper()
	const chunk = 128
	for lo := 0; lo < len(d.keys); lo += chunk {
		hi := lo + chunk
		if hi > len(d.keys) {
			hi = len(d.keys)
		}
		var vals [][]byte
		var err error
		// A transient failure (a store that just restarted, a leader moving) is retried; a
		// wrong or missing value never is.
		for attempt := 0; attempt < 5; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			vals, err = cli.BatchGet(ctx, d.keys[lo:hi])
			cancel()
			if err == nil {
				break
			}
			t.Logf("batch get %d..%d: %v (retrying)", lo, hi, err)
			time.Sleep(time.Second)
		}
		if err != nil {
			t.Fatalf("batch get %d..%d: %v", lo, hi, err)
		}
		for i := lo; i < hi; i++ {
			if !bytes.Equal(vals[i-lo], d.vals[i]) {
				t.Fatalf("key %s: got %d bytes %.40q, want %.40q", d.keys[i], len(vals[i-lo]),
					vals[i-lo], d.vals[i])
			}
		}
	}
}

// filesContaining walks every regular file under each root and returns those holding
// @needle, with how many files were searched.
func filesContaining(t *testing.T, needle string, roots ...string) ([]string, int) {
	t.Helper()
	var hits []string
	searched := 0
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !de.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			searched++
			if bytes.Contains(b, []byte(needle)) {
				hits = append(hits, path)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
	}
	return hits, searched
}

// countSuffix returns how many regular files under the roots have names ending in @suffix.
func countSuffix(t *testing.T, suffix string, roots ...string) int {
	t.Helper()
	n := 0
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() && strings.HasSuffix(path, suffix) {
				n++
			}
			return err
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
	}
	return n
}

// checkPrivate fails unless every directory under each root is 0700 and every file 0600 (or
// stricter: nothing for group or others).
func checkPrivate(t *testing.T, roots ...string) {
	t.Helper()
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if de.Name() == "lost+found" {
				return filepath.SkipDir // the file system's, not ours
			}
			info, err := de.Info()
			if err != nil {
				return err
			}
			if info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: mode %v lets group or others in", path, info.Mode().Perm())
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
	}
}

// ctl runs tikv-ctl from the binary directory and returns its output and error.
func ctl(t *testing.T, c *cluster.Cluster, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.BinDir, "tikv-ctl"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), err
}
