package atrest

import (
	"context"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pingcap/kvproto/pkg/kvrpcpb"
	"github.com/pingcap/kvproto/pkg/tikvpb"
	"github.com/tikv-c/compat/cluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// security.redact-info-log as TiKV has it: with false the split key a store logs is printed,
// with true it is replaced by "?", with "marker" it is printed between ‹ and ›.
func TestRedactInfoLog(t *testing.T) {
	for _, mode := range []string{"false", "true", `"marker"`} {
		t.Run(mode, func(t *testing.T) {
			cfg := fastTiKV + "\n[security]\nredact-info-log = " + mode + "\n"
			c := cluster.Start(t, cluster.Options{Stores: 1, TiKVConfig: cfg})
			pdc := c.PDClient()
			defer pdc.Close()
			splitKey := "redact/" + randomHex(t, 8)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			region, err := pdc.GetRegion(ctx, []byte(splitKey))
			if err != nil || region == nil || region.Leader == nil {
				t.Fatalf("get region: %v", err)
			}
			conn, err := grpc.Dial(c.Stores[0].Addr,
				grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			resp, err := tikvpb.NewTikvClient(conn).SplitRegion(ctx, &kvrpcpb.SplitRegionRequest{
				Context: &kvrpcpb.Context{RegionId: region.Meta.GetId(),
					RegionEpoch: region.Meta.GetRegionEpoch(), Peer: region.Leader},
				SplitKeys: [][]byte{[]byte(splitKey)}})
			if err != nil || resp.GetRegionError() != nil {
				t.Fatalf("split region: %v %v", err, resp.GetRegionError())
			}
			var line string
			waitFor(t, 30*time.Second, "the split logged", func() (bool, string) {
				b, err := os.ReadFile(c.Stores[0].LogPath)
				if err != nil {
					return false, err.Error()
				}
				for _, l := range strings.Split(string(b), "\n") {
					if strings.Contains(l, `["region split"]`) {
						line = l
						return true, ""
					}
				}
				return false, "no region split line yet"
			})
			// Region boundaries are logged in their stored (memcomparable, so not printable)
			// form, as upper-case hex: the first 8-byte group is the key's first 8 bytes.
			keyHex := strings.ToUpper(hex.EncodeToString([]byte(splitKey[:8])))
			b, _ := os.ReadFile(c.Stores[0].LogPath)
			all := string(b)
			switch mode {
			case "false":
				if !strings.Contains(line, "[start_key="+keyHex) {
					t.Fatalf("redact-info-log = false: the key (%s) is not in %q", keyHex, line)
				}
			case "true":
				if strings.Contains(all, keyHex) || strings.Contains(all, splitKey) ||
					!strings.Contains(line, "[start_key=?]") {
					t.Fatalf("redact-info-log = true: the key was logged (or no '?'): %q", line)
				}
			default:
				if !strings.Contains(line, "[start_key=‹"+keyHex) {
					t.Fatalf("redact-info-log = marker: no ‹key› in %q", line)
				}
			}
			t.Logf("%s", line)
		})
	}
}
