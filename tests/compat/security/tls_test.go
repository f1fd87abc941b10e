// Mutual TLS on every channel of a 3-store tikv-c cluster, checked with the official Go
// client (client-go v2.0.4, config.Security) and real processes: the cluster serves a client
// with a certificate from its CA and an allowed name; a client without a certificate, with a
// certificate from another CA, or with a name that merely contains an allowed name is refused
// by TiKV, PD, the status port and PD's HTTP API, and every refusal is an audit record; a
// certificate rotated on disk is served without a restart; `tikv-ctl audit verify` accepts
// the audit logs and detects an edited or truncated copy. Certificates are made with the
// openssl CLI in a temporary directory at test time.
package security

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pingcap/kvproto/pkg/kvrpcpb"
	"github.com/pingcap/kvproto/pkg/metapb"
	"github.com/pingcap/kvproto/pkg/pdpb"
	"github.com/pingcap/kvproto/pkg/raft_serverpb"
	"github.com/pingcap/kvproto/pkg/tikvpb"
	"github.com/tikv-c/compat/cluster"
	"github.com/tikv/client-go/v2/config"
	"github.com/tikv/client-go/v2/rawkv"
	pd "github.com/tikv/pd/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const tikvConfig = `
[raftstore]
raft-base-tick-interval = "100ms"
pd-heartbeat-tick-interval = "1s"
pd-store-heartbeat-tick-interval = "1s"
`

// pki is a directory of PEM files made by openssl.
type pki struct {
	t   *testing.T
	dir string
}

func (p *pki) openssl(args ...string) {
	p.t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = p.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

// ca makes a self-signed CA <name>.pem / <name>.key.
func (p *pki) ca(name, cn string) {
	p.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-keyout", name+".key", "-out", name+".pem", "-days", "2", "-subj", "/CN="+cn)
}

// cert makes <name>.pem / <name>.key for @cn signed by CA @ca, usable by servers (IP SAN
// 127.0.0.1) and clients.
func (p *pki) cert(ca, name, cn string) {
	ext := "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
	if err := os.WriteFile(p.path(name+".ext"), []byte(ext), 0o600); err != nil {
		p.t.Fatal(err)
	}
	p.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-keyout", name+".key", "-out", name+".csr", "-subj", "/CN="+cn)
	p.openssl("x509", "-req", "-in", name+".csr", "-CA", ca+".pem", "-CAkey", ca+".key",
		"-CAcreateserial", "-out", name+".pem", "-days", "2", "-extfile", name+".ext")
}

// replace puts @src over @dst by copy and rename (what a certificate manager does).
func replace(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// serial returns the serial number of the certificate @addr presents to a TLS client
// trusting @p's cluster CA and presenting the client certificate.
func serial(p *pki, addr string, h2 bool) (*big.Int, error) {
	cfg := tlsConfig(p, "client")
	if h2 {
		cfg.NextProtos = []string{"h2"}
	}
	conn, err := tls.DialWithDialer(&netDialer, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

var netDialer = net.Dialer{Timeout: 5 * time.Second}

// tlsConfig trusts the cluster CA and presents <client>.pem ("" for no certificate).
func tlsConfig(p *pki, client string) *tls.Config {
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(p.path("ca.pem"))
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if client != "" {
		// As client-go does: the certificate is sent whatever CAs the server asks for.
		pair, err := tls.LoadX509KeyPair(p.path(client+".pem"), p.path(client+".key"))
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &pair, err
		}
	}
	return cfg
}

// call runs @f on a connection to @addr as client @client and returns the gRPC code.
func call(t *testing.T, p *pki, addr, client string, f func(context.Context, *grpc.ClientConn) error) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, addr, grpc.WithBlock(),
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig(p, client))))
	if err != nil {
		t.Fatalf("dial %s as %q: %v", addr, client, err)
	}
	defer conn.Close()
	return status.Code(f(ctx, conn))
}

// rawGet calls tikvpb.Tikv/RawGet on a store.
func rawGet(t *testing.T, p *pki, addr, client string) codes.Code {
	return call(t, p, addr, client, func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := tikvpb.NewTikvClient(conn).RawGet(ctx, &kvrpcpb.RawGetRequest{Key: []byte("a")})
		return err
	})
}

// getMembers calls pdpb.PD/GetMembers on PD.
func getMembers(t *testing.T, p *pki, addr, client string) codes.Code {
	return call(t, p, addr, client, func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := pdpb.NewPDClient(conn).GetMembers(ctx, &pdpb.GetMembersRequest{})
		return err
	})
}

// auditHas waits until @log has a peer_rejected record containing every one of @parts.
func auditHas(t *testing.T, log string, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(log)
		for _, line := range strings.Split(string(b), "\n") {
			ok := strings.Contains(line, `"event":"peer_rejected"`)
			for _, part := range parts {
				ok = ok && strings.Contains(line, part)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no peer_rejected record with %q in %s:\n%s", parts, log, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newClient(t *testing.T, c *cluster.Cluster, p *pki) *rawkv.Client {
	t.Helper()
	sec := config.NewSecurity(p.path("ca.pem"), p.path("client.pem"), p.path("client.key"), nil)
	cli, err := rawkv.NewClientWithOpts(context.Background(), c.PDAddrs(), rawkv.WithSecurity(sec))
	if err != nil {
		t.Fatalf("client with a valid certificate: %v", err)
	}
	return cli
}

func putGet(t *testing.T, cli *rawkv.Client, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		k := []byte(fmt.Sprintf("%s-%04d", prefix, i))
		if err := cli.Put(ctx, k, append([]byte("v-"), k...)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	for i := 0; i < n; i++ {
		k := []byte(fmt.Sprintf("%s-%04d", prefix, i))
		v, err := cli.Get(ctx, k)
		if err != nil || !bytes.Equal(v, append([]byte("v-"), k...)) {
			t.Fatalf("get %s: %q, %v", k, v, err)
		}
	}
	keys, _, err := cli.Scan(ctx, []byte(prefix), []byte(prefix+"~"), n+10)
	if err != nil || len(keys) != n {
		t.Fatalf("scan %s: %d keys, %v", prefix, len(keys), err)
	}
}

func TestMutualTLSEverywhere(t *testing.T) {
	dir := t.TempDir()
	p := &pki{t: t, dir: dir}
	p.ca("ca", "tikv-c test CA")
	p.ca("other-ca", "another CA")
	p.cert("ca", "node", "tikv-node")
	p.cert("ca", "node-rotated", "tikv-node")
	p.cert("ca", "client", "tikv-client")
	p.cert("ca", "evil", "evil-tikv-client")
	p.cert("other-ca", "foreign", "tikv-client")
	// The servers read their files from a directory the test rotates in place.
	live := filepath.Join(dir, "live")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "node.pem", "node.key"} {
		replace(t, p.path(f), filepath.Join(live, f))
	}
	c := cluster.Start(t, cluster.Options{Stores: 3, TiKVConfig: tikvConfig, TLS: &cluster.TLS{
		CA: filepath.Join(live, "ca.pem"), Cert: filepath.Join(live, "node.pem"),
		Key:       filepath.Join(live, "node.key"),
		AllowedCN: []string{"tikv-node", "tikv-client"}, Audit: true,
		// Many refusals from 127.0.0.1 are the point of this test: no ban. Only the nodes'
		// name may send raft messages and snapshots.
		Extra: "auth-failure-burst = 100000\ncert-allowed-peer-cn = [\"tikv-node\"]",
	}})
	store := c.Stores[0]

	t.Run("the Go client with TLS options reads and writes", func(t *testing.T) {
		cli := newClient(t, c, p)
		defer cli.Close()
		putGet(t, cli, "tls", 200)
	})

	t.Run("TiKV refuses bad client certificates and audits each refusal", func(t *testing.T) {
		if got := rawGet(t, p, store.Addr, "client"); got != codes.OK {
			t.Fatalf("allowed client: %v", got)
		}
		if got := rawGet(t, p, store.Addr, ""); got != codes.Unauthenticated {
			t.Fatalf("no certificate: %v, want Unauthenticated", got)
		}
		auditHas(t, store.AuditLog, "no client certificate", "/tikvpb.Tikv/RawGet")
		if got := rawGet(t, p, store.Addr, "foreign"); got != codes.Unauthenticated {
			t.Fatalf("certificate of another CA: %v, want Unauthenticated", got)
		}
		auditHas(t, store.AuditLog, "client certificate not trusted", "cn=tikv-client")
		if got := rawGet(t, p, store.Addr, "evil"); got != codes.PermissionDenied {
			t.Fatalf("evil-tikv-client: %v, want PermissionDenied", got)
		}
		auditHas(t, store.AuditLog, "name not allowed", "cn=evil-tikv-client")
	})

	t.Run("only the stores' certificate name may send raft messages", func(t *testing.T) {
		// A store's stream names its sender (replication_test.go): here store 2, whose
		// certificate name is the one every store of this cluster shares.
		r := inspect(t, c)
		md := metadata.Pairs("tikvc-cluster-id", u64(r.clusterID), "tikvc-store-id", u64(r.storeIDs[1]))
		raft := func(ctx context.Context, conn *grpc.ClientConn) error {
			ctx = metadata.NewOutgoingContext(ctx, md)
			s, err := tikvpb.NewTikvClient(conn).Raft(ctx)
			if err != nil {
				return err
			}
			// A message for a region nobody has, addressed to this store: harmless if it
			// were accepted, but a client may not send it at all.
			_ = s.Send(&raft_serverpb.RaftMessage{RegionId: 999999,
				FromPeer: &metapb.Peer{Id: 999998, StoreId: r.storeIDs[1]}})
			_, err = s.CloseAndRecv()
			return err
		}
		if got := call(t, p, store.Addr, "client", raft); got != codes.PermissionDenied {
			t.Fatalf("tikv-client sending raft: %v, want PermissionDenied", got)
		}
		auditHas(t, store.AuditLog, "may not send replication messages", "cn=tikv-client",
			"/tikvpb.Tikv/Raft")
		// Unavailable while the receiver looks the sending store up in PD.
		cluster.WaitFor(t, 15*time.Second, "tikv-node sending raft", func() (bool, string) {
			got := call(t, p, store.Addr, "node", raft)
			return got == codes.OK, got.String()
		})
		md = metadata.MD{}
		if got := call(t, p, store.Addr, "node", raft); got != codes.Unauthenticated {
			t.Fatalf("tikv-node sending raft without naming its store: %v, want Unauthenticated", got)
		}
		auditHas(t, store.AuditLog, "without a valid tikvc-cluster-id", "/tikvpb.Tikv/Raft")
	})

	t.Run("PD refuses the same clients and audits them", func(t *testing.T) {
		if got := getMembers(t, p, c.PD.Addr, "client"); got != codes.OK {
			t.Fatalf("allowed client: %v", got)
		}
		for _, tc := range []struct {
			name, cert string
			code       codes.Code
			audit      []string
		}{
			{"no certificate", "", codes.Unauthenticated, []string{"no client certificate"}},
			{"another CA", "foreign", codes.Unauthenticated,
				[]string{"client certificate not trusted", "cn=tikv-client"}},
			{"superstring name", "evil", codes.PermissionDenied,
				[]string{"name not allowed", "cn=evil-tikv-client"}},
		} {
			if got := getMembers(t, p, c.PD.Addr, tc.cert); got != tc.code {
				t.Fatalf("%s: %v, want %v", tc.name, got, tc.code)
			}
			auditHas(t, c.PD.AuditLog, append(tc.audit, "/pdpb.PD/GetMembers")...)
		}
		// And a rawkv client with a refused certificate cannot start.
		sec := config.NewSecurity(p.path("ca.pem"), p.path("evil.pem"), p.path("evil.key"), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if cli, err := rawkv.NewClientWithOpts(ctx, c.PDAddrs(), rawkv.WithSecurity(sec),
			rawkv.WithPDOptions(pd.WithMaxErrorRetry(1))); err == nil {
			cli.Close()
			t.Fatal("rawkv client with evil-tikv-client started")
		}
	})

	t.Run("status port and PD HTTP API speak mutual TLS", func(t *testing.T) {
		get := func(url, client string) (int, error) {
			hc := &http.Client{Timeout: 10 * time.Second,
				Transport: &http.Transport{TLSClientConfig: tlsConfig(p, client)}}
			resp, err := hc.Get(url)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		if code, err := get("https://"+store.Status+"/metrics", "client"); err != nil || code != 200 {
			t.Fatalf("status /metrics with a certificate: %d %v", code, err)
		}
		if code, _ := get("https://"+store.Status+"/metrics", ""); code == 200 {
			t.Fatal("status /metrics answered without a certificate")
		}
		if code, _ := get("https://"+store.Status+"/metrics", "evil"); code == 200 {
			t.Fatal("status /metrics answered evil-tikv-client")
		}
		auditHas(t, store.AuditLog, "GET /metrics", "cn=evil-tikv-client")
		if _, err := get("http://"+store.Status+"/metrics", ""); err == nil {
			// A plaintext request to a TLS port gets no HTTP answer.
			t.Log("plaintext request got an answer (expected a TLS alert)")
		}
		pdctl := filepath.Join(c.BinDir, "pd-ctl")
		out, err := exec.Command(pdctl, "-u", "https://"+c.PD.Status, "--ca-path", p.path("ca.pem"),
			"--cert-path", p.path("client.pem"), "--key-path", p.path("client.key"),
			"store").CombinedOutput()
		if err != nil || !strings.Contains(string(out), store.Addr) {
			t.Fatalf("pd-ctl over https: %v\n%s", err, out)
		}
		out, err = exec.Command(pdctl, "-u", "https://"+c.PD.Status, "--ca-path", p.path("ca.pem"),
			"--cert-path", p.path("evil.pem"), "--key-path", p.path("evil.key"),
			"store").CombinedOutput()
		if err == nil {
			t.Fatalf("pd-ctl as evil-tikv-client succeeded:\n%s", out)
		}
		auditHas(t, c.PD.AuditLog, "/pd/api/v1/stores", "cn=evil-tikv-client")
	})

	t.Run("a certificate rotated on disk is served without a restart", func(t *testing.T) {
		before, err := serial(p, store.Addr, true)
		if err != nil {
			t.Fatal(err)
		}
		pdBefore, err := serial(p, c.PD.Status, false)
		if err != nil {
			t.Fatal(err)
		}
		// Key and certificate change one after the other; until both are in place the
		// servers keep the previous pair.
		replace(t, p.path("node-rotated.key"), filepath.Join(live, "node.key"))
		replace(t, p.path("node-rotated.pem"), filepath.Join(live, "node.pem"))
		want, err := exec.Command("openssl", "x509", "-noout", "-serial", "-in",
			p.path("node-rotated.pem")).Output()
		if err != nil {
			t.Fatal(err)
		}
		wantSerial, _ := new(big.Int).SetString(strings.TrimSpace(strings.TrimPrefix(string(want), "serial=")), 16)
		deadline := time.Now().Add(30 * time.Second)
		for _, target := range []struct {
			addr string
			h2   bool
			old  *big.Int
		}{{store.Addr, true, before}, {c.PD.Status, false, pdBefore}} {
			for {
				got, err := serial(p, target.addr, target.h2)
				if err == nil && got.Cmp(wantSerial) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s still presents serial %v (err %v), want %v", target.addr, got,
						err, wantSerial)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if target.old.Cmp(wantSerial) == 0 {
				t.Fatal("rotated certificate has the old serial")
			}
		}
		// The cluster keeps serving with the new certificate (servers reconnect to each other
		// and to PD with it as connections are renewed).
		cli := newClient(t, c, p)
		defer cli.Close()
		putGet(t, cli, "rotated", 50)
	})

	t.Run("tikv-ctl audit verify accepts the logs and detects tampering", func(t *testing.T) {
		for _, s := range c.Stores {
			s.Stop(false)
		}
		c.PD.Stop(false)
		ctl := filepath.Join(c.BinDir, "tikv-ctl")
		verify := func(path string) (int, string) {
			out, err := exec.Command(ctl, "audit", "verify", path).CombinedOutput()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode(), string(out)
			}
			if err != nil {
				t.Fatalf("tikv-ctl: %v", err)
			}
			return 0, string(out)
		}
		for _, log := range []string{store.AuditLog, c.PD.AuditLog} {
			if code, out := verify(log); code != 0 || !strings.Contains(out, "sealed") {
				t.Fatalf("intact %s: exit %d: %s", log, code, out)
			}
		}
		orig, err := os.ReadFile(store.AuditLog)
		if err != nil {
			t.Fatal(err)
		}
		head, _ := os.ReadFile(store.AuditLog + ".head")
		copyWith := func(name string, body []byte) string {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, body, 0o600); err != nil {
				t.Fatal(err)
			}
			if head != nil {
				if err := os.WriteFile(path+".head", head, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			return path
		}
		if code, out := verify(copyWith("copy.log", orig)); code != 0 {
			t.Fatalf("an exact copy fails: %s", out)
		}
		edited := bytes.Replace(orig, []byte("cn=evil-tikv-client"), []byte("cn=good-tikv-client"), 1)
		if bytes.Equal(edited, orig) {
			t.Fatal("nothing to edit in the audit log")
		}
		if code, out := verify(copyWith("edited.log", edited)); code != 1 || !strings.Contains(out, "FAILED") {
			t.Fatalf("edited log: exit %d: %s", code, out)
		}
		lines := bytes.SplitAfter(orig, []byte("\n"))
		truncated := bytes.Join(lines[:len(lines)-3], nil)
		if code, out := verify(copyWith("truncated.log", truncated)); code != 1 || !strings.Contains(out, "FAILED") {
			t.Fatalf("truncated log: exit %d: %s", code, out)
		}
	})
}

// callFrom is call with the connection made from local address @src (127.0.0.0/8 is all
// loopback on Linux, so 127.0.0.2 is another source address for the server).
func callFrom(t *testing.T, p *pki, src, addr, client string) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := grpc.DialContext(ctx, addr, grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", a)
		}),
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig(p, client))))
	if err != nil {
		t.Fatalf("dial %s from %s as %q: %v", addr, src, client, err)
	}
	defer conn.Close()
	_, err = tikvpb.NewTikvClient(conn).RawGet(ctx, &kvrpcpb.RawGetRequest{Key: []byte("a")})
	return status.Code(err)
}

func TestRepeatedRefusalsBanOnlyTheOffendingAddress(t *testing.T) {
	dir := t.TempDir()
	p := &pki{t: t, dir: dir}
	p.ca("ca", "tikv-c test CA")
	p.cert("ca", "node", "tikv-node")
	p.cert("ca", "client", "tikv-client")
	p.cert("ca", "evil", "evil-tikv-client")
	c := cluster.Start(t, cluster.Options{Stores: 1, TiKVConfig: tikvConfig, TLS: &cluster.TLS{
		CA: p.path("ca.pem"), Cert: p.path("node.pem"), Key: p.path("node.key"),
		AllowedCN: []string{"tikv-node", "tikv-client"}, Audit: true,
		Extra: "auth-failure-burst = 3",
	}})
	store := c.Stores[0]
	// Three refusals are tolerated, the fourth bans 127.0.0.2.
	for i := 0; i < 4; i++ {
		if got := callFrom(t, p, "127.0.0.2", store.Addr, "evil"); got != codes.PermissionDenied {
			t.Fatalf("evil call %d: %v", i, got)
		}
	}
	auditHas(t, store.AuditLog, "name not allowed", "cn=evil-tikv-client")
	b, _ := os.ReadFile(store.AuditLog)
	if !strings.Contains(string(b), `"event":"peer_banned","peer":"127.0.0.2"`) {
		t.Fatalf("no peer_banned record for 127.0.0.2:\n%s", b)
	}
	// Banned: every connection from that address is closed as soon as it is accepted, before
	// any certificate is looked at...
	if !closedAtOnce(t, "127.0.0.2", store.Addr) {
		t.Fatal("a connection from the banned address was not closed at once")
	}
	auditHas(t, store.AuditLog, "temporarily refused", `"peer":"ipv4:127.0.0.2:`)
	// ...while a client elsewhere is served at once, and the cluster still works.
	start := time.Now()
	if got := callFrom(t, p, "127.0.0.1", store.Addr, "client"); got != codes.OK {
		t.Fatalf("good client from 127.0.0.1: %v", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the good client took %v", d)
	}
	cli := newClient(t, c, p)
	defer cli.Close()
	putGet(t, cli, "after-ban", 20)
}

// closedAtOnce opens a TCP connection from @src to @addr and reports whether the server
// closed it (EOF or reset) within 5 s without sending anything.
func closedAtOnce(t *testing.T, src, addr string) bool {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return true // reset before Dial returned
	}
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [16]byte
	n, err := conn.Read(b[:])
	var ne net.Error
	return n == 0 && err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// metricValue reads one sample ("name" or `name{label="v"}`) from a Prometheus text page.
func metricValue(page, sample string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, sample+" ") {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, sample+" "), "%g", &v)
			return v
		}
	}
	return 0
}

// A client that fails the TLS handshake (it does not trust the cluster's CA) from 127.0.0.3,
// and a flood of TCP connect-and-close from 127.0.0.4, each get their address refused after
// auth-failure-burst failures, with audit records and metrics; a good client from 127.0.0.1
// keeps being served at once, and its own connections are never counted.
func TestFailedHandshakesBanOnlyTheOffendingAddress(t *testing.T) {
	dir := t.TempDir()
	p := &pki{t: t, dir: dir}
	p.ca("ca", "tikv-c test CA")
	p.ca("other-ca", "another CA")
	p.cert("ca", "node", "tikv-node")
	p.cert("ca", "client", "tikv-client")
	p.cert("other-ca", "foreign", "tikv-client")
	c := cluster.Start(t, cluster.Options{Stores: 1, TiKVConfig: tikvConfig, TLS: &cluster.TLS{
		CA: p.path("ca.pem"), Cert: p.path("node.pem"), Key: p.path("node.key"),
		AllowedCN: []string{"tikv-node", "tikv-client"}, Audit: true,
		Extra: "auth-failure-burst = 3",
	}})
	store := c.Stores[0]
	cli := newClient(t, c, p)
	defer cli.Close()
	putGet(t, cli, "before", 5)

	// A client that trusts another CA aborts every handshake with the store.
	pool := x509.NewCertPool()
	other, _ := os.ReadFile(p.path("other-ca.pem"))
	pool.AppendCertsFromPEM(other)
	pair, err := tls.LoadX509KeyPair(p.path("foreign.pem"), p.path("foreign.key"))
	if err != nil {
		t.Fatal(err)
	}
	bad := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair},
		NextProtos: []string{"h2"}}
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	for i := 0; i < 4; i++ {
		conn, err := tls.DialWithDialer(&d, "tcp", store.Addr, bad)
		if err == nil {
			conn.Close()
			t.Fatalf("handshake %d with a foreign CA succeeded", i)
		}
		// The good client is served in between, without delay.
		start := time.Now()
		putGet(t, cli, fmt.Sprintf("during-%d", i), 1)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("the good client took %v", el)
		}
	}
	auditHas(t, store.AuditLog, "tls handshake failed or aborted", `"peer":"ipv4:127.0.0.3:`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(store.AuditLog)
		if strings.Contains(string(b), `"event":"peer_banned","peer":"127.0.0.3"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no peer_banned record for 127.0.0.3:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !closedAtOnce(t, "127.0.0.3", store.Addr) {
		t.Fatal("a connection from the banned 127.0.0.3 was not closed at once")
	}

	// Plain TCP connect-and-close floods count too.
	d4 := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}
	for i := 0; i < 50; i++ {
		if conn, err := d4.Dial("tcp", store.Addr); err == nil {
			conn.Close()
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(store.AuditLog)
		if strings.Contains(string(b), `"event":"peer_banned","peer":"127.0.0.4"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no peer_banned record for 127.0.0.4:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The good client from 127.0.0.1 was never counted and is still served at once.
	start := time.Now()
	putGet(t, cli, "after", 10)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the good client took %v", el)
	}
	b, _ := os.ReadFile(store.AuditLog)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "127.0.0.1") && strings.Contains(line, "tls handshake failed") {
			t.Fatalf("a connection of the good client was counted: %s", line)
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig(p, "client")}}
	resp, err := hc.Get("https://" + store.Status + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if v := metricValue(string(page), "tikv_server_tls_handshake_failures_total"); v < 6 {
		t.Fatalf("tikv_server_tls_handshake_failures_total = %v, want >= 6", v)
	}
	if v := metricValue(string(page), `tikv_server_grpc_connections_refused_total{reason="banned"}`); v < 1 {
		t.Fatalf("refused connections of banned addresses = %v, want >= 1", v)
	}
	if v := metricValue(string(page), "tikv_server_peer_bans_total"); v < 2 {
		t.Fatalf("tikv_server_peer_bans_total = %v, want >= 2", v)
	}
}
