// Authenticated replication with real processes: a raft or snapshot stream must name its
// sender (cluster id and store id metadata); with mutual TLS the sender's certificate must be
// the one PD recorded when that store registered. A 3-store cluster where every store has its
// own certificate serves and survives a store restart; a stream from another store's (valid,
// allowed) certificate or a client certificate claiming a store is refused and audited, as are
// a wrong cluster id and a store id PD does not know; a stream that forges another store's
// messages is ended at the first one. Without TLS the cluster id and store id checks still
// hold.
package security

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pingcap/kvproto/pkg/eraftpb"
	"github.com/pingcap/kvproto/pkg/metapb"
	"github.com/pingcap/kvproto/pkg/pdpb"
	"github.com/pingcap/kvproto/pkg/raft_serverpb"
	"github.com/pingcap/kvproto/pkg/tikvpb"
	"github.com/tikv-c/compat/cluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// replication is what the tests know about the running cluster.
type replication struct {
	clusterID uint64
	storeIDs  []uint64 // by store index
	region    *metapb.Region
	leader    *metapb.Peer
}

func inspect(t *testing.T, c *cluster.Cluster) *replication {
	t.Helper()
	pdc := c.PDClient()
	defer pdc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &replication{clusterID: pdc.GetClusterID(ctx), storeIDs: make([]uint64, len(c.Stores))}
	stores, err := pdc.GetAllStores(ctx)
	if err != nil {
		t.Fatalf("GetAllStores: %v", err)
	}
	for i, p := range c.Stores {
		for _, s := range stores {
			if s.Address == p.Addr {
				r.storeIDs[i] = s.Id
			}
		}
		if r.storeIDs[i] == 0 {
			t.Fatalf("PD does not know store %s", p.Addr)
		}
	}
	cluster.WaitFor(t, 30*time.Second, "a region with three peers and a leader", func() (bool, string) {
		reg, err := pdc.GetRegion(ctx, []byte(""))
		if err != nil || reg == nil || reg.Leader == nil || len(reg.Meta.Peers) != 3 {
			return false, fmt.Sprintf("%v %v", reg, err)
		}
		r.region, r.leader = reg.Meta, reg.Leader
		return true, ""
	})
	return r
}

// peerOn returns the region's peer on store @storeID.
func (r *replication) peerOn(t *testing.T, storeID uint64) *metapb.Peer {
	for _, p := range r.region.Peers {
		if p.StoreId == storeID {
			return p
		}
	}
	t.Fatalf("no peer on store %d", storeID)
	return nil
}

// heartbeat is a MsgHeartbeat from @from to @to with a term far ahead: applied, it would make
// the receiver follow a leader that never was.
func (r *replication) heartbeat(from, to *metapb.Peer) *raft_serverpb.RaftMessage {
	return &raft_serverpb.RaftMessage{
		RegionId: r.region.Id, FromPeer: from, ToPeer: to, RegionEpoch: r.region.RegionEpoch,
		Message: &eraftpb.Message{MsgType: eraftpb.MessageType_MsgHeartbeat, To: to.Id,
			From: from.Id, Term: 1000},
	}
}

// stream says how to open one replication stream to a store.
type stream struct {
	addr      string
	creds     credentials.TransportCredentials
	batch     bool   // BatchRaft, else Raft
	clusterID string // metadata, "" to leave it out
	storeID   string
	msg       *raft_serverpb.RaftMessage // nil: none
}

// send opens the stream, sends its message, closes it and returns the status it ended with.
func (s stream) send(t *testing.T) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, s.addr, grpc.WithBlock(), grpc.WithTransportCredentials(s.creds))
	if err != nil {
		t.Fatalf("dial %s: %v", s.addr, err)
	}
	defer conn.Close()
	var kv []string
	if s.clusterID != "" {
		kv = append(kv, "tikvc-cluster-id", s.clusterID)
	}
	if s.storeID != "" {
		kv = append(kv, "tikvc-store-id", s.storeID)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	cli := tikvpb.NewTikvClient(conn)
	if s.batch {
		st, err := cli.BatchRaft(ctx)
		if err != nil {
			return status.Code(err)
		}
		if s.msg != nil {
			_ = st.Send(&tikvpb.BatchRaftMessage{Msgs: []*raft_serverpb.RaftMessage{s.msg}})
		}
		_, err = st.CloseAndRecv()
		return status.Code(err)
	}
	st, err := cli.Raft(ctx)
	if err != nil {
		return status.Code(err)
	}
	if s.msg != nil {
		_ = st.Send(s.msg)
	}
	_, err = st.CloseAndRecv()
	return status.Code(err)
}

// endsWith retries @s until it ends with @want (a store PD is being asked about is refused
// with Unavailable until the answer is in).
func (s stream) endsWith(t *testing.T, want codes.Code) {
	t.Helper()
	cluster.WaitFor(t, 15*time.Second, "stream ends with "+want.String(), func() (bool, string) {
		got := s.send(t)
		return got == want, got.String()
	})
}

var refusedRe = regexp.MustCompile(`(?m)^tikv_raftstore_raft_refused_total\{type="(stream|message)"\} (\d+)`)

// refused returns the store's tikv_raftstore_raft_refused_total counts (stream, message).
func refused(t *testing.T, hc *http.Client, scheme string, store *cluster.Proc) (int, int) {
	t.Helper()
	resp, err := hc.Get(scheme + "://" + store.Status + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n := map[string]int{}
	for _, m := range refusedRe.FindAllStringSubmatch(string(b), -1) {
		n[m[1]], _ = strconv.Atoi(m[2])
	}
	return n["stream"], n["message"]
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func TestReplicationIsAuthenticatedOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	p := &pki{t: t, dir: dir}
	p.ca("ca", "tikv-c test CA")
	p.cert("ca", "pd", "tikv-pd")
	p.cert("ca", "client", "tikv-client")
	names := []string{"tikv-pd", "tikv-client"}
	for i := 1; i <= 3; i++ {
		p.cert("ca", fmt.Sprintf("store%d", i), fmt.Sprintf("tikv-store-%d", i))
		names = append(names, fmt.Sprintf("tikv-store-%d", i))
	}
	c := cluster.Start(t, cluster.Options{Stores: 3, TiKVConfig: tikvConfig, TLS: &cluster.TLS{
		CA: p.path("ca.pem"), Cert: p.path("pd.pem"), Key: p.path("pd.key"),
		AllowedCN: names, Audit: true, Extra: "auth-failure-burst = 100000",
		StoreCert: func(i int) (string, string) {
			n := fmt.Sprintf("store%d", i+1)
			return p.path(n + ".pem"), p.path(n + ".key")
		},
	}})
	creds := func(name string) credentials.TransportCredentials {
		return credentials.NewTLS(tlsConfig(p, name))
	}
	hc := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig(p, "client")}}

	t.Run("a cluster of stores with their own certificates serves and survives a restart", func(t *testing.T) {
		cli := newClient(t, c, p)
		putGet(t, cli, "rid", 100)
		cli.Close()
		c.RestartStore(1)
		c.WaitStoresUp(3, 60*time.Second)
		cli = newClient(t, c, p)
		defer cli.Close()
		putGet(t, cli, "rid-after", 100)
	})

	r := inspect(t, c)
	// The receiver is a follower; the stream claims to be the leader's store.
	lead, recv, other := -1, -1, -1
	for i, id := range r.storeIDs {
		switch {
		case id == r.leader.StoreId:
			lead = i
		case recv < 0:
			recv = i
		default:
			other = i
		}
	}
	leaderPeer, recvPeer := r.peerOn(t, r.storeIDs[lead]), r.peerOn(t, r.storeIDs[recv])
	forged := r.heartbeat(leaderPeer, recvPeer)
	target := c.Stores[recv]
	cid := u64(r.clusterID)
	// A BatchRaft stream to the receiver over the third store's certificate, claiming store
	// @claim and carrying the forged heartbeat.
	fromOther := func(claim uint64) stream {
		return stream{addr: target.Addr, creds: creds(fmt.Sprintf("store%d", other+1)), batch: true,
			clusterID: cid, storeID: u64(claim), msg: forged}
	}

	t.Run("another store's certificate claiming the leader's store is refused and audited", func(t *testing.T) {
		streams0, _ := refused(t, hc, "https", target)
		s := fromOther(r.storeIDs[lead])
		s.endsWith(t, codes.PermissionDenied)
		auditHas(t, target.AuditLog, "claimed store "+u64(r.storeIDs[lead]),
			fmt.Sprintf("cn=tikv-store-%d", other+1), "not the one store", "/tikvpb.Tikv/BatchRaft")
		// A client certificate the allow-list admits cannot claim a store either.
		s.creds, s.batch = creds("client"), false
		if got := s.send(t); got != codes.PermissionDenied {
			t.Fatalf("client certificate claiming store %d: %v, want PermissionDenied", r.storeIDs[lead], got)
		}
		auditHas(t, target.AuditLog, "claimed store "+u64(r.storeIDs[lead]), "cn=tikv-client",
			"/tikvpb.Tikv/Raft")
		if streams, _ := refused(t, hc, "https", target); streams < streams0+2 {
			t.Fatalf("refused streams %d, want at least %d", streams, streams0+2)
		}
	})

	t.Run("a store forging another store's messages on its own stream is cut off", func(t *testing.T) {
		_, msgs0 := refused(t, hc, "https", target)
		s := fromOther(r.storeIDs[other])
		s.endsWith(t, codes.PermissionDenied)
		auditHas(t, target.AuditLog, "claimed store "+u64(r.storeIDs[other]),
			"message from a peer of store "+u64(r.storeIDs[lead]))
		if _, msgs := refused(t, hc, "https", target); msgs != msgs0+1 {
			t.Fatalf("forged messages dropped %d, want %d", msgs, msgs0+1)
		}
		// Its own identity with nothing forged is accepted.
		s.msg = nil
		if got := s.send(t); got != codes.OK {
			t.Fatalf("store %d's own stream: %v", r.storeIDs[other], got)
		}
	})

	t.Run("wrong cluster id and unknown store id are refused and audited", func(t *testing.T) {
		s := fromOther(r.storeIDs[other])
		s.clusterID = u64(r.clusterID + 1)
		if got := s.send(t); got != codes.PermissionDenied {
			t.Fatalf("wrong cluster id: %v, want PermissionDenied", got)
		}
		auditHas(t, target.AuditLog, "cluster id "+u64(r.clusterID+1))
		s.clusterID, s.storeID = cid, "987654321"
		s.endsWith(t, codes.PermissionDenied)
		auditHas(t, target.AuditLog, "claimed store 987654321", "unknown to PD")
		s.storeID = ""
		if got := s.send(t); got != codes.Unauthenticated {
			t.Fatalf("no store id: %v, want Unauthenticated", got)
		}
	})

	t.Run("PD records each store's certificate name and refuses another certificate for it", func(t *testing.T) {
		leadID := r.storeIDs[lead]
		pdCall := func(client string, f func(context.Context, pdpb.PDClient) (*pdpb.ResponseHeader, error)) *pdpb.ResponseHeader {
			var hdr *pdpb.ResponseHeader
			code := call(t, p, c.PD.Addr, client, func(ctx context.Context, conn *grpc.ClientConn) error {
				var err error
				hdr, err = f(ctx, pdpb.NewPDClient(conn))
				return err
			})
			if code != codes.OK {
				t.Fatalf("PD call as %s: %v", client, code)
			}
			return hdr
		}
		getStore := func() *metapb.Store {
			var st *metapb.Store
			pdCall("client", func(ctx context.Context, pc pdpb.PDClient) (*pdpb.ResponseHeader, error) {
				resp, err := pc.GetStore(ctx, &pdpb.GetStoreRequest{
					Header: &pdpb.RequestHeader{ClusterId: r.clusterID}, StoreId: leadID})
				if err == nil {
					st = resp.Store
				}
				return resp.GetHeader(), err
			})
			return st
		}
		label := func(st *metapb.Store) string {
			for _, l := range st.GetLabels() {
				if l.Key == "tikv-c.cert-name" {
					return l.Value
				}
			}
			return ""
		}
		want := fmt.Sprintf("tikv-store-%d", lead+1)
		if got := label(getStore()); got != want {
			t.Fatalf("store %d's certificate name label %q, want %q", leadID, got, want)
		}
		// Store O's certificate re-registering the leader's store id (with its own name in
		// the request's labels) and heartbeating for it: refused, audited, record unchanged.
		hdr := pdCall(fmt.Sprintf("store%d", other+1), func(ctx context.Context, pc pdpb.PDClient) (*pdpb.ResponseHeader, error) {
			resp, err := pc.PutStore(ctx, &pdpb.PutStoreRequest{
				Header: &pdpb.RequestHeader{ClusterId: r.clusterID},
				Store: &metapb.Store{Id: leadID, Address: "127.0.0.1:1",
					Labels: []*metapb.StoreLabel{{Key: "tikv-c.cert-name", Value: want}}}})
			return resp.GetHeader(), err
		})
		if hdr.GetError() == nil || !strings.Contains(hdr.GetError().Message, "another certificate name") {
			t.Fatalf("PutStore of store %d by another store's certificate: %v", leadID, hdr.GetError())
		}
		hdr = pdCall(fmt.Sprintf("store%d", other+1), func(ctx context.Context, pc pdpb.PDClient) (*pdpb.ResponseHeader, error) {
			resp, err := pc.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{
				Header: &pdpb.RequestHeader{ClusterId: r.clusterID},
				Stats:  &pdpb.StoreStats{StoreId: leadID}})
			return resp.GetHeader(), err
		})
		if hdr.GetError() == nil {
			t.Fatalf("StoreHeartbeat of store %d by another store's certificate was accepted", leadID)
		}
		auditHas(t, c.PD.AuditLog, fmt.Sprintf("cn=tikv-store-%d", other+1), "/pdpb.PD/PutStore",
			"another certificate name")
		auditHas(t, c.PD.AuditLog, "/pdpb.PD/StoreHeartbeat", "another certificate name")
		if st := getStore(); st.Address != c.Stores[lead].Addr || label(st) != want {
			t.Fatalf("store %d's record changed: %v", leadID, st)
		}
	})

	t.Run("the cluster still serves", func(t *testing.T) {
		cli := newClient(t, c, p)
		defer cli.Close()
		putGet(t, cli, "rid-end", 20)
	})
}

func TestReplicationSenderIdentityWithoutTLS(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Stores: 3, TiKVConfig: tikvConfig})
	r := inspect(t, c)
	recv := 0
	if r.storeIDs[recv] == r.leader.StoreId {
		recv = 1
	}
	target := c.Stores[recv]
	lead := r.peerOn(t, r.leader.StoreId)
	forged := r.heartbeat(lead, r.peerOn(t, r.storeIDs[recv]))
	s := stream{addr: target.Addr, creds: insecure.NewCredentials(), batch: true,
		clusterID: u64(r.clusterID + 1), storeID: u64(r.leader.StoreId), msg: forged}
	if got := s.send(t); got != codes.PermissionDenied {
		t.Fatalf("wrong cluster id: %v, want PermissionDenied", got)
	}
	s.clusterID, s.storeID = u64(r.clusterID), "987654321"
	s.endsWith(t, codes.PermissionDenied)
	s.clusterID = ""
	if got := s.send(t); got != codes.Unauthenticated {
		t.Fatalf("no cluster id: %v, want Unauthenticated", got)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	if streams, _ := refused(t, hc, "http", target); streams < 3 {
		t.Fatalf("refused streams %d, want at least 3", streams)
	}
}
