// Authorization by key range with real processes: roles defined with pd-ctl live in PD, the
// stores load them and check every request; a certificate whose role may only read a..m
// cannot write there nor read n..z, over BatchCommands and unary calls alike, and each
// refusal is an audit record.
package security

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikv-c/compat/cluster"
	"github.com/tikv/client-go/v2/config"
	"github.com/tikv/client-go/v2/rawkv"
)

func clientAs(t *testing.T, c *cluster.Cluster, p *pki, name string) *rawkv.Client {
	t.Helper()
	sec := config.NewSecurity(p.path("ca.pem"), p.path(name+".pem"), p.path(name+".key"), nil)
	cli, err := rawkv.NewClientWithOpts(context.Background(), c.PDAddrs(), rawkv.WithSecurity(sec))
	if err != nil {
		t.Fatalf("client %s: %v", name, err)
	}
	return cli
}

func TestRolesByKeyRange(t *testing.T) {
	dir := t.TempDir()
	p := &pki{t: t, dir: dir}
	p.ca("ca", "tikv-c test CA")
	p.cert("ca", "node", "tikv-node")
	p.cert("ca", "client", "tikv-client")
	p.cert("ca", "reader", "reader")
	c := cluster.Start(t, cluster.Options{Stores: 3, TiKVConfig: tikvConfig, TLS: &cluster.TLS{
		CA: p.path("ca.pem"), Cert: p.path("node.pem"), Key: p.path("node.key"),
		AllowedCN: []string{"tikv-node", "tikv-client", "reader"}, Audit: true,
		Extra: "authorization = true\nauth-failure-burst = 100000",
	}})
	pdctl := func(args ...string) string {
		t.Helper()
		full := append([]string{"-u", "https://" + c.PD.Status, "--ca-path", p.path("ca.pem"),
			"--cert-path", p.path("client.pem"), "--key-path", p.path("client.key"), "role"}, args...)
		out, err := exec.Command(filepath.Join(c.BinDir, "pd-ctl"), full...).CombinedOutput()
		if err != nil {
			t.Fatalf("pd-ctl role %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The admin binding comes last: once the admin may write, the stores have the whole
	// policy (each store polls PD once a second; the reader also waits below).
	pdctl("grant", "reader-am", "read", "a", "m")
	pdctl("bind", "reader", "reader-am")
	pdctl("grant", "everything", "admin", "", "")
	pdctl("bind", "tikv-client", "everything")
	if out := pdctl("show"); !strings.Contains(out, "reader-am") {
		t.Fatalf("role show: %s", out)
	}
	// Now that tikv-client is a superuser, nobody else may change the roles.
	out, err := exec.Command(filepath.Join(c.BinDir, "pd-ctl"), "-u", "https://"+c.PD.Status,
		"--ca-path", p.path("ca.pem"), "--cert-path", p.path("reader.pem"), "--key-path",
		p.path("reader.key"), "role", "grant", "reader-am", "write", "a", "z").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "admin on every key") {
		t.Fatalf("reader changed the roles: %v\n%s", err, out)
	}

	ctx := context.Background()
	admin := clientAs(t, c, p, "client")
	defer admin.Close()
	// The stores pick the policy up within a second or two.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := admin.Put(ctx, []byte("b"), []byte("vb"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin put: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := admin.Put(ctx, []byte("p"), []byte("vp")); err != nil {
		t.Fatal(err)
	}

	for _, batch := range []uint{128, 0} {
		restore := config.UpdateGlobal(func(c *config.Config) { c.TiKVClient.MaxBatchSize = batch })
		reader := clientAs(t, c, p, "reader")
		for {
			v, err := reader.Get(ctx, []byte("b"))
			if err == nil && string(v) == "vb" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("batch %d: reader get b: %q %v", batch, v, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		keys, _, err := reader.Scan(ctx, []byte("a"), []byte("m"), 10)
		if err != nil || len(keys) != 1 {
			t.Fatalf("batch %d: reader scan a..m: %d keys, %v", batch, len(keys), err)
		}
		if err := reader.Put(ctx, []byte("b"), []byte("x")); err == nil ||
			!strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("batch %d: reader put b: %v, want permission denied", batch, err)
		}
		if v, err := reader.Get(ctx, []byte("p")); err == nil ||
			!strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("batch %d: reader get p: %q %v, want permission denied", batch, v, err)
		}
		// RawScanResponse has no error field: the refusal is a region error (BatchCommands)
		// or PERMISSION_DENIED, which client-go retries until its backoff or the context
		// ends; a short context keeps the test fast.
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if _, _, err := reader.Scan(sctx, []byte("a"), []byte("z"), 10); err == nil {
			t.Fatalf("batch %d: reader scan a..z succeeded", batch)
		}
		cancel()
		if err := reader.DeleteRange(ctx, []byte("a"), []byte("c")); err == nil {
			t.Fatalf("batch %d: reader delete range a..c succeeded", batch)
		}
		reader.Close()
		restore()
	}
	if v, err := admin.Get(ctx, []byte("b")); err != nil || string(v) != "vb" {
		t.Fatalf("b changed: %q %v", v, err)
	}
	// An admin action that is allowed is recorded too.
	if err := admin.DeleteRange(ctx, []byte("x"), []byte("y")); err != nil {
		t.Fatalf("admin delete range: %v", err)
	}

	// The refusals are in the stores' audit logs, the role changes in PD's.
	var all string
	for _, s := range c.Stores {
		b, _ := os.ReadFile(s.AuditLog)
		all += string(b)
	}
	for _, want := range []string{`"method":"RawPut"`, `"method":"RawGet"`, `"method":"RawScan"`,
		`"method":"RawDeleteRange"`} {
		found := false
		for _, line := range strings.Split(all, "\n") {
			if strings.Contains(line, `"event":"request_rejected"`) &&
				strings.Contains(line, `"peer":"reader"`) && strings.Contains(line, want) {
				found = true
			}
		}
		if !found {
			t.Fatalf("no request_rejected record for reader with %s in the stores' audit logs", want)
		}
	}
	if !strings.Contains(all, `"event":"admin"`) || !strings.Contains(all, `cn=tikv-client","method":"RawDeleteRange"`) {
		t.Fatalf("no admin record for tikv-client's RawDeleteRange in the stores' audit logs")
	}
	pdLog, _ := os.ReadFile(c.PD.AuditLog)
	if strings.Count(string(pdLog), `"method":"role change"`) < 4 ||
		strings.Count(string(pdLog), `"method":"POST /pd/api/v1/security/authz"`) < 4 {
		t.Fatalf("PD audit log lacks the role changes:\n%s", pdLog)
	}
}
