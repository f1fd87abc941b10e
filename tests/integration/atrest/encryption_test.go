package atrest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tikv-c/compat/cluster"
)

// encryptionTOML is [security.encryption] with a file master key and, when @previous is not
// empty, the previous master key (master-key rotation).
func encryptionTOML(method, period, master, previous string) string {
	s := fmt.Sprintf(`
[security.encryption]
data-encryption-method = %q
data-key-rotation-period = %q

[security.encryption.master-key]
type = "file"
path = %q
`, method, period, master)
	if previous != "" {
		s += fmt.Sprintf(`
[security.encryption.previous-master-key]
type = "file"
path = %q
`, previous)
	}
	return s
}

// writeMasterKey writes a random 256-bit master key as 64 hex digits (mode 0600) and returns
// its path and the hex text.
func writeMasterKey(t *testing.T, dir, name string) (string, string) {
	key := randomHex(t, 32)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, key
}

// dataDirs returns PD's and every store's data directory.
func dataDirs(c *cluster.Cluster) []string {
	dirs := []string{c.PD.DataDir}
	for _, s := range c.Stores {
		dirs = append(dirs, s.DataDir)
	}
	return dirs
}

// encryptionMeta runs `tikv-ctl encryption-meta dump-key` on a stopped server's data
// directory with the configuration file @cfg and returns the parsed JSON.
func encryptionMeta(t *testing.T, c *cluster.Cluster, cfg, dataDir string, secrets ...string) map[string]any {
	t.Helper()
	out, err := ctl(t, c, "--config", cfg, "--data-dir", dataDir, "encryption-meta", "dump-key")
	if err != nil {
		t.Fatalf("tikv-ctl encryption-meta: %v\n%s", err, out)
	}
	for _, s := range secrets {
		if strings.Contains(strings.ToLower(out), strings.ToLower(s)) {
			t.Fatalf("tikv-ctl encryption-meta printed key material")
		}
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(out), &meta); err != nil {
		t.Fatalf("encryption-meta output is not JSON: %v\n%s", err, out)
	}
	return meta
}

// assertNowhere fails if any file under the data directories holds one of the datasets'
// values (their canary prefix: no value can appear without it).
func assertNowhere(t *testing.T, c *cluster.Cluster, sets ...*dataset) {
	t.Helper()
	for _, d := range sets {
		hits, searched := filesContaining(t, d.canary, dataDirs(c)...)
		if len(hits) > 0 {
			t.Fatalf("plaintext values found in %v", hits)
		}
		t.Logf("canary %s: in none of %d files", d.canary, searched)
	}
}

// With encryption on, no value written appears in plaintext in any file under PD's or the
// stores' data directories, before or after a data-key rotation and a master-key rotation,
// and the cluster reads everything back after each restart. A plaintext control run shows
// the search finds values when they are stored as they are.
func TestEncryptionAtRest(t *testing.T) {
	keyDir := t.TempDir()

	mk1, mk1hex := writeMasterKey(t, keyDir, "master1.key")
	mk2, mk2hex := writeMasterKey(t, keyDir, "master2.key")

	t.Run("control: plaintext values are found; switching encryption on keeps them readable",
		func(t *testing.T) {
			c := cluster.Start(t, cluster.Options{Stores: 1, PDConfig: "# plaintext\n",
				TiKVConfig: fastTiKV})
			cli := newRawClient(t, c)
			d := newDataset(t, "plain/", 300, 1024)
			d.write(t, cli)
			cli.Close()
			c.StopAll()
			hits, searched := filesContaining(t, d.canary, dataDirs(c)...)
			if len(hits) == 0 {
				t.Fatalf("control: the canary is in none of %d files of a plaintext store",
					searched)
			}
			t.Logf("control: canary found in %d of %d files, e.g. %s", len(hits), searched,
				hits[0])
			// Encryption switched on over plaintext data: the old files stay readable, new
			// ones are encrypted.
			enc := encryptionTOML("aes128-ctr", "7d", mk1, "")
			c.SetConfigs(enc, fastTiKV+enc)
			c.StartAll()
			cli = newRawClient(t, c)
			d.check(t, cli)
			e := newDataset(t, "plain/after/", 300, 1024)
			e.write(t, cli)
			e.check(t, cli)
			cli.Close()
			c.StopAll()
			assertNowhere(t, c, e)
		})

	enc := encryptionTOML("aes256-ctr", "7d", mk1, "")
	c := cluster.Start(t, cluster.Options{Stores: 3, PDConfig: enc, TiKVConfig: fastTiKV + enc})
	tikvCfg, pdCfg := filepath.Join(c.Dir, "tikv.toml"), filepath.Join(c.Dir, "pd.toml")

	// 1. Written under the first data key.
	cli := newRawClient(t, c)
	a := newDataset(t, "enc/a/", 3000, 1024) // 3 MiB: memtables flush, SST files appear
	a.write(t, cli)
	a.check(t, cli)
	cli.Close()
	c.StopAll()
	assertNowhere(t, c, a)
	checkPrivate(t, dataDirs(c)...)
	if n := countSuffix(t, ".sst", dataDirs(c)...); n == 0 {
		t.Fatalf("no SST files were written: the search covered write-ahead logs only")
	} else {
		t.Logf("%d SST files among the files searched", n)
	}
	var firstKeys []int
	for _, dir := range dataDirs(c) {
		cfg := tikvCfg
		if dir == c.PD.DataDir {
			cfg = pdCfg
		}
		meta := encryptionMeta(t, c, cfg, dir, mk1hex)
		if meta["method"] != "aes256-ctr" {
			t.Fatalf("%s: method %v", dir, meta["method"])
		}
		firstKeys = append(firstKeys, len(meta["keys"].([]any)))
	}
	t.Logf("data keys per data directory after the first run: %v", firstKeys)

	// 2. Data-key rotation: a one-second period makes every server replace its data key at
	// start (the key is older than that) and again while it runs.
	enc = encryptionTOML("aes256-ctr", "1s", mk1, "")
	c.SetConfigs(enc, fastTiKV+enc)
	c.StartAll()
	cli = newRawClient(t, c)
	a.check(t, cli)
	b := newDataset(t, "enc/b/", 1000, 1024)
	b.write(t, cli)
	b.check(t, cli)
	cli.Close()
	c.StopAll()
	for i, dir := range dataDirs(c) {
		cfg := tikvCfg
		if dir == c.PD.DataDir {
			cfg = pdCfg
		}
		meta := encryptionMeta(t, c, cfg, dir, mk1hex)
		if n := len(meta["keys"].([]any)); n <= firstKeys[i] {
			t.Fatalf("%s: %d data keys after rotation, %d before", dir, n, firstKeys[i])
		}
	}
	assertNowhere(t, c, a, b)

	// 3. Master-key rotation: the new master key with the old one as previous-master-key;
	// the dictionaries are rewritten under the new key at start.
	enc = encryptionTOML("aes256-ctr", "7d", mk2, mk1)
	c.SetConfigs(enc, fastTiKV+enc)
	c.StartAll()
	cli = newRawClient(t, c)
	a.check(t, cli)
	b.check(t, cli)
	d := newDataset(t, "enc/c/", 500, 1024)
	d.write(t, cli)
	cli.Close()
	c.StopAll()
	assertNowhere(t, c, a, b, d)
	checkPrivate(t, dataDirs(c)...)

	// The old master key alone no longer opens the dictionaries.
	oldOnly := filepath.Join(keyDir, "old-only.toml")
	if err := os.WriteFile(oldOnly, []byte(encryptionTOML("aes256-ctr", "7d", mk1, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl(t, c, "--config", oldOnly, "--data-dir", c.Stores[0].DataDir,
		"encryption-meta"); err == nil {
		t.Fatalf("the previous master key alone still opens the dictionary:\n%s", out)
	} else {
		t.Logf("old master key refused: %s", strings.TrimSpace(out))
	}

	// 4. The new master key alone reads everything.
	enc = encryptionTOML("aes256-ctr", "7d", mk2, "")
	c.SetConfigs(enc, fastTiKV+enc)
	c.StartAll()
	cli = newRawClient(t, c)
	a.check(t, cli)
	b.check(t, cli)
	d.check(t, cli)
	cli.Close()
	c.StopAll()
	encryptionMeta(t, c, tikvCfg, c.Stores[0].DataDir, mk1hex, mk2hex)
}
