package raftstore

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pingcap/kvproto/pkg/kvrpcpb"
	"github.com/pingcap/kvproto/pkg/metapb"
	"github.com/pingcap/kvproto/pkg/tikvpb"
	"github.com/tikv-c/compat/cluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// An over-limit key, a stale region epoch and a region the store does not have each get the
// error a client acts on, and nothing is written.
func TestRegionErrorsWriteNothing(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Stores: 1, TiKVConfig: fastTiKV})
	pdc := c.PDClient()
	defer pdc.Close()
	waitReplicated(t, pdc, 1, 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	region, err := pdc.GetRegion(ctx, []byte("errors/"))
	if err != nil || region == nil || region.Leader == nil {
		t.Fatalf("get region: %v", err)
	}
	store, err := pdc.GetStore(ctx, region.Leader.GetStoreId())
	if err != nil {
		t.Fatalf("get store: %v", err)
	}
	conn, err := grpc.DialContext(ctx, store.GetAddress(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	kv := tikvpb.NewTikvClient(conn)
	good := &kvrpcpb.Context{RegionId: region.Meta.GetId(), RegionEpoch: region.Meta.GetRegionEpoch(),
		Peer: region.Leader}

	notWritten := func(k []byte) {
		t.Helper()
		resp, err := kv.RawGet(ctx, &kvrpcpb.RawGetRequest{Context: good, Key: k})
		if err != nil || resp.GetRegionError() != nil || resp.GetError() != "" {
			t.Fatalf("raw get %q: %v %v %q", k, err, resp.GetRegionError(), resp.GetError())
		}
		if !resp.GetNotFound() {
			t.Fatalf("key %q was written", k)
		}
	}

	// The control: a good request writes.
	resp, err := kv.RawPut(ctx, &kvrpcpb.RawPutRequest{Context: good, Key: []byte("errors/ok"),
		Value: []byte("v")})
	if err != nil || resp.GetRegionError() != nil || resp.GetError() != "" {
		t.Fatalf("good put: %v %v %q", err, resp.GetRegionError(), resp.GetError())
	}

	// A key over storage.max-key-size (8 KiB).
	big := append([]byte("errors/big/"), bytes.Repeat([]byte("k"), 9000)...)
	resp, err = kv.RawPut(ctx, &kvrpcpb.RawPutRequest{Context: good, Key: big, Value: []byte("v")})
	if err != nil {
		t.Fatalf("big key: %v", err)
	}
	if resp.GetError() == "" && resp.GetRegionError() == nil {
		t.Fatalf("a 9000-byte key was accepted")
	}
	t.Logf("over-limit key: %q", resp.GetError())
	scan, err := kv.RawScan(ctx, &kvrpcpb.RawScanRequest{Context: good, StartKey: []byte("errors/big/"),
		EndKey: []byte("errors/big0"), Limit: 10})
	if err != nil || len(scan.GetKvs()) != 0 {
		t.Fatalf("after the big key: %v, %d keys", err, len(scan.GetKvs()))
	}

	// A stale epoch (an older version).
	stale := *good
	stale.RegionEpoch = &metapb.RegionEpoch{ConfVer: good.RegionEpoch.GetConfVer(),
		Version: good.RegionEpoch.GetVersion() - 1}
	if good.RegionEpoch.GetVersion() <= 1 {
		stale.RegionEpoch.Version = good.RegionEpoch.GetVersion() + 5
	}
	resp, err = kv.RawPut(ctx, &kvrpcpb.RawPutRequest{Context: &stale, Key: []byte("errors/stale"),
		Value: []byte("v")})
	if err != nil {
		t.Fatalf("stale put: %v", err)
	}
	enm := resp.GetRegionError().GetEpochNotMatch()
	if enm == nil || len(enm.GetCurrentRegions()) == 0 ||
		enm.GetCurrentRegions()[0].GetId() != region.Meta.GetId() {
		t.Fatalf("stale epoch answered %v", resp.GetRegionError())
	}
	notWritten([]byte("errors/stale"))

	// A region the store does not have.
	missing := *good
	missing.RegionId = 987654321
	resp, err = kv.RawPut(ctx, &kvrpcpb.RawPutRequest{Context: &missing, Key: []byte("errors/missing"),
		Value: []byte("v")})
	if err != nil {
		t.Fatalf("missing region put: %v", err)
	}
	if rnf := resp.GetRegionError().GetRegionNotFound(); rnf == nil || rnf.GetRegionId() != 987654321 {
		t.Fatalf("missing region answered %v", resp.GetRegionError())
	}
	notWritten([]byte("errors/missing"))

	// Another store's id.
	wrong := *good
	wrong.Peer = &metapb.Peer{Id: good.Peer.GetId(), StoreId: 4242}
	resp, err = kv.RawPut(ctx, &kvrpcpb.RawPutRequest{Context: &wrong, Key: []byte("errors/store"),
		Value: []byte("v")})
	if err != nil || resp.GetRegionError().GetStoreNotMatch() == nil {
		t.Fatalf("wrong store answered %v %v", err, resp.GetRegionError())
	}
	notWritten([]byte("errors/store"))
}
