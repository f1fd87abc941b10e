// Package cluster starts and stops a local tikv-c cluster (pd-server + tikv-servers) for
// tests: 127.0.0.1 only, random free ports, temporary data directories, every process
// stopped by PID. Binaries come from $TKV_BIN_DIR (default ../../build/bin relative to this
// package's tests).
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pd "github.com/tikv/pd/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Options says what to start.
type Options struct {
	Stores     int    // number of tikv-server processes (default 3)
	PDConfig   string // extra TOML for pd-server (written to a file and passed with --config)
	TiKVConfig string // extra TOML for every tikv-server
	BinDir     string // where pd-server and tikv-server are; default $TKV_BIN_DIR
	TLS        *TLS   // nil: plaintext everywhere
	// StoreDir gives store i's data directory (e.g. on a small file system); default
	// <cluster dir>/tikv<i+1>.
	StoreDir func(i int) string
}

// TLS turns on mutual TLS on every channel: the servers use Cert/Key (signed by CA) for what
// they serve and what they dial, the harness's own PD clients too.
type TLS struct {
	CA, Cert, Key string   // PEM files
	AllowedCN     []string // cert-allowed-cn of every server (empty: any name the CA signed)
	Audit         bool     // give every server an audit log (Proc.AuditLog)
	Extra         string   // more lines for every server's [security] section
	// StoreCert, when set, gives store i its own certificate and key (PEM files) instead of
	// Cert/Key, so that each store has its own certificate name.
	StoreCert func(i int) (cert, key string)
}

// securityTOML returns the [security] section for a server with audit log @audit and
// certificate @cert / @key.
func (t *TLS) securityTOML(pd bool, audit, cert, key string) string {
	ca := "ca-path"
	if pd {
		ca = "cacert-path"
	}
	names := make([]string, len(t.AllowedCN))
	for i, n := range t.AllowedCN {
		names[i] = fmt.Sprintf("%q", n)
	}
	s := fmt.Sprintf("\n[security]\n%s = %q\ncert-path = %q\nkey-path = %q\ncert-allowed-cn = [%s]\n",
		ca, t.CA, cert, key, strings.Join(names, ", "))
	if audit != "" {
		s += fmt.Sprintf("audit-log = %q\n", audit)
	}
	return s + t.Extra + "\n"
}

// security returns the PD client option for the harness's own PD clients.
func (c *Cluster) security() pd.SecurityOption {
	if c.opts.TLS == nil {
		return pd.SecurityOption{}
	}
	return pd.SecurityOption{CAPath: c.opts.TLS.CA, CertPath: c.opts.TLS.Cert, KeyPath: c.opts.TLS.Key}
}

// serverConfig returns @base plus, with TLS, the [security] section of process @p (store
// index @store, -1 for PD).
func (c *Cluster) serverConfig(p *Proc, base string, pd bool, store int) string {
	t := c.opts.TLS
	if t == nil {
		return base
	}
	if t.Audit {
		p.AuditLog = filepath.Join(c.Dir, p.Name+"-audit.log")
	}
	cert, key := t.Cert, t.Key
	if store >= 0 && t.StoreCert != nil {
		cert, key = t.StoreCert(store)
	}
	return base + t.securityTOML(pd, p.AuditLog, cert, key)
}

// Proc is one server process.
type Proc struct {
	Name    string
	Args    []string
	LogPath string
	DataDir string
	Addr    string // gRPC address (host:port)
	Status  string // status / HTTP address
	// AuditLog is the process's audit log (with Options.TLS.Audit), else "".
	AuditLog string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Cluster is a running cluster.
type Cluster struct {
	t      testing.TB
	Dir    string
	BinDir string
	PD     *Proc
	Stores []*Proc
	opts   Options
}

// handedOut remembers the ports FreePort gave, so two servers of one test never get the
// same port (a port given earlier but not yet bound would otherwise look free again).
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// FreePort returns a port that was free on 127.0.0.1 a moment ago and was not returned
// before by this process.
func FreePort(t testing.TB) int {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut[port] || attempt > 100 {
			handedOut[port] = true
			return port
		}
	}
}

func binDir(o Options) string {
	if o.BinDir != "" {
		return o.BinDir
	}
	if d := os.Getenv("TKV_BIN_DIR"); d != "" {
		return d
	}
	abs, _ := filepath.Abs("../../build/bin")
	return abs
}

// Start launches PD and the stores and waits until the cluster serves.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Stores == 0 {
		o.Stores = 3
	}
	dir, err := os.MkdirTemp("", "tikvc-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Dir: dir, BinDir: binDir(o), opts: o}
	t.Cleanup(c.Close)
	c.startPD()
	for i := 0; i < o.Stores; i++ {
		c.AddStore()
	}
	c.WaitStoresUp(o.Stores, 60*time.Second)
	return c
}

func (c *Cluster) writeConfig(name, text string) string {
	if text == "" {
		return ""
	}
	p := filepath.Join(c.Dir, name+".toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *Cluster) startPD() {
	port, http := FreePort(c.t), FreePort(c.t)
	p := &Proc{
		Name:    "pd",
		DataDir: filepath.Join(c.Dir, "pd"),
		Addr:    fmt.Sprintf("127.0.0.1:%d", port),
		Status:  fmt.Sprintf("127.0.0.1:%d", http),
		LogPath: filepath.Join(c.Dir, "pd.log"),
	}
	scheme := "http://"
	if c.opts.TLS != nil {
		scheme = "https://"
	}
	p.Args = []string{"--name", "pd1", "--client-urls", scheme + p.Addr,
		"--data-dir", p.DataDir, "--http-addr", p.Status}
	if cfg := c.writeConfig("pd", c.serverConfig(p, c.opts.PDConfig, true, -1)); cfg != "" {
		p.Args = append(p.Args, "--config", cfg)
	}
	c.PD = p
	c.launch(p, "pd-server")
}

// AddStore starts one more tikv-server and returns its index.
func (c *Cluster) AddStore() int {
	i := len(c.Stores)
	port, status := FreePort(c.t), FreePort(c.t)
	dataDir := filepath.Join(c.Dir, fmt.Sprintf("tikv%d", i+1))
	if c.opts.StoreDir != nil {
		dataDir = c.opts.StoreDir(i)
	}
	p := &Proc{
		Name:    fmt.Sprintf("tikv%d", i+1),
		DataDir: dataDir,
		Addr:    fmt.Sprintf("127.0.0.1:%d", port),
		Status:  fmt.Sprintf("127.0.0.1:%d", status),
		LogPath: filepath.Join(c.Dir, fmt.Sprintf("tikv%d.log", i+1)),
	}
	p.Args = []string{"--pd", c.PD.Addr, "--addr", p.Addr, "--status-addr", p.Status,
		"--data-dir", p.DataDir}
	// One tikv.toml for every store, unless each store has its own audit log or certificate.
	cfgName := "tikv"
	if c.opts.TLS != nil && (c.opts.TLS.Audit || c.opts.TLS.StoreCert != nil) {
		cfgName = p.Name
	}
	if cfg := c.writeConfig(cfgName, c.serverConfig(p, withoutReserve(c.opts.TiKVConfig), false, i)); cfg != "" {
		p.Args = append(p.Args, "--config", cfg)
	}
	c.Stores = append(c.Stores, p)
	c.launch(p, "tikv-server")
	return i
}

// withoutReserve turns TiKV's storage.reserve-space off unless the test sets it: by default
// every store would allocate a placeholder of 1% of the disk and refuse writes once the
// shared test disk is within 5% of full, which tests that are not about disk space must not
// depend on.
func withoutReserve(cfg string) string {
	if strings.Contains(cfg, "reserve-space") {
		return cfg
	}
	lines := strings.Split(cfg, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == "[storage]" {
			rest := append([]string{"reserve-space = \"0\""}, lines[i+1:]...)
			return strings.Join(append(lines[:i+1], rest...), "\n")
		}
	}
	return "[storage]\nreserve-space = \"0\"\n\n" + cfg
}

func (c *Cluster) launch(p *Proc, bin string) {
	log, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(c.BinDir, bin), p.Args...)
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		log.Close()
		c.t.Fatalf("start %s: %v", bin, err)
	}
	log.Close()
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
}

// PID returns the process id (0 when not started).
func (p *Proc) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop ends a process by PID: SIGKILL when kill is true (a crash), else SIGTERM and wait.
func (p *Proc) Stop(kill bool) {
	if !p.Running() {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// RestartStore starts store i again with the same data directory and ports.
func (c *Cluster) RestartStore(i int) {
	p := c.Stores[i]
	p.Stop(false)
	c.launch(p, "tikv-server")
}

// SetConfigs replaces the TOML pd-server and the tikv-servers read at their next (re)start
// (a configuration change across a restart, e.g. a new master key).
func (c *Cluster) SetConfigs(pdConfig, tikvConfig string) {
	c.opts.PDConfig, c.opts.TiKVConfig = pdConfig, tikvConfig
	if c.writeConfig("pd", pdConfig) == "" || c.writeConfig("tikv", withoutReserve(tikvConfig)) == "" {
		c.t.Fatalf("SetConfigs: both configurations must be non-empty")
	}
}

// StopAll stops every store, then PD (SIGTERM, waiting for each).
func (c *Cluster) StopAll() {
	for _, p := range c.Stores {
		p.Stop(false)
	}
	c.PD.Stop(false)
}

// StartAll starts PD and every store again (same ports and directories) and waits until
// the stores are up.
func (c *Cluster) StartAll() {
	c.launch(c.PD, "pd-server")
	for _, p := range c.Stores {
		c.launch(p, "tikv-server")
	}
	c.WaitStoresUp(len(c.Stores), 60*time.Second)
}

// RestartPD restarts pd-server with the same data directory and ports.
func (c *Cluster) RestartPD() {
	c.PD.Stop(false)
	c.launch(c.PD, "pd-server")
}

// PDAddrs returns the PD endpoints clients are given.
func (c *Cluster) PDAddrs() []string { return []string{c.PD.Addr} }

// PDClient returns a PD client (closed by the caller).
func (c *Cluster) PDClient() pd.Client {
	cli, err := pd.NewClientWithContext(context.Background(), c.PDAddrs(), c.security())
	if err != nil {
		c.t.Fatalf("pd client: %v", err)
	}
	return cli
}

// WaitStoresUp waits until PD reports n stores Up with recent heartbeats.
func (c *Cluster) WaitStoresUp(n int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, p := range append([]*Proc{c.PD}, c.Stores...) {
			if p.cmd != nil && !p.Running() {
				c.t.Fatalf("%s exited early; log:\n%s", p.Name, tail(p.LogPath, 40))
			}
		}
		last = c.probeStores(n)
		if last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.dumpLogs()
	c.t.Fatalf("cluster not ready after %v: %v", timeout, last)
}

func (c *Cluster) probeStores(n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cli, err := pd.NewClientWithContext(ctx, c.PDAddrs(), c.security(),
		pd.WithMaxErrorRetry(1))
	if err != nil {
		return err
	}
	defer cli.Close()
	stores, err := cli.GetAllStores(ctx)
	if err != nil {
		return err
	}
	up := 0
	for _, s := range stores {
		if s.GetState().String() == "Up" && s.GetLastHeartbeat() != 0 {
			up++
		}
	}
	if up < n {
		return fmt.Errorf("%d of %d stores up", up, n)
	}
	region, err := cli.GetRegion(ctx, []byte(""))
	if err != nil {
		return err
	}
	if region == nil || region.Leader == nil || region.Leader.GetId() == 0 {
		return fmt.Errorf("first region has no leader yet")
	}
	// PD's view lags a restart (the last heartbeat is the old process's): every running store
	// must also accept connections itself.
	for _, p := range c.Stores {
		if p.cmd == nil || !p.Running() {
			continue
		}
		if err := c.probeStore(p); err != nil {
			return fmt.Errorf("%s not serving yet: %v", p.Name, err)
		}
	}
	return nil
}

// probeStore checks that store @p accepts connections. With TLS it asks the health service
// over mutual TLS: a connection closed before a completed handshake and a call would count
// as a failed handshake for 127.0.0.1 in the store's brute-force guard.
func (c *Cluster) probeStore(p *Proc) error {
	if c.opts.TLS == nil {
		conn, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	pair, err := tls.LoadX509KeyPair(c.opts.TLS.Cert, c.opts.TLS.Key)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(c.opts.TLS.CA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, p.Addr, grpc.WithBlock(),
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) dumpLogs() {
	for _, p := range append([]*Proc{c.PD}, c.Stores...) {
		if p != nil {
			c.t.Logf("---- %s (%s) ----\n%s", p.Name, p.LogPath, tail(p.LogPath, 60))
		}
	}
}

// WaitFor polls @cond every 200 ms until it holds, and fails the test with @what and the last
// reason @cond gave when @timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not done after %v (%s)", what, timeout, last)
}

// Close stops every process by PID and removes the data unless the test failed (then the
// logs are printed and the directory kept for inspection) or TKV_KEEP_CLUSTER is set.
func (c *Cluster) Close() {
	for _, p := range c.Stores {
		p.Stop(false)
	}
	if c.PD != nil {
		c.PD.Stop(false)
	}
	if c.t.Failed() {
		c.dumpLogs()
		c.t.Logf("cluster data kept in %s", c.Dir)
		return
	}
	if os.Getenv("TKV_KEEP_CLUSTER") != "" {
		c.t.Logf("cluster data kept in %s (TKV_KEEP_CLUSTER)", c.Dir)
		return
	}
	_ = os.RemoveAll(c.Dir)
}
