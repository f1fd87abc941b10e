package compat

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/pingcap/failpoint"
	"github.com/tikv/client-go/v2/tikvrpc"
	"github.com/tikv/client-go/v2/tikvrpc/interceptor"
	"github.com/tikv/client-go/v2/txnkv"
	"github.com/tikv/client-go/v2/util"
)

// crashChildMain is the test binary run as a child by runCrashChild: a client that commits
// TKV_COMPAT_KEYS = TKV_COMPAT_VALUE through PD at TKV_COMPAT_PD and stops at @stage,
// announcing "STAGE <stage>" on stdout, then waits to be killed. Returns the exit code.
func crashChildMain(stage string) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "crash child: %s: %v\n", what, err)
		return 1
	}
	c, err := txnkv.NewClient([]string{os.Getenv("TKV_COMPAT_PD")})
	if err != nil {
		return fail("client", err)
	}
	txn, err := c.Begin()
	if err != nil {
		return fail("begin", err)
	}
	value := []byte(os.Getenv("TKV_COMPAT_VALUE"))
	for _, k := range strings.Split(os.Getenv("TKV_COMPAT_KEYS"), "\n") {
		if err := txn.Set([]byte(k), value); err != nil {
			return fail("set", err)
		}
	}
	ctx := context.Background()
	switch stage {
	case "prewritten":
		// Every prewrite is answered; the first commit request never leaves.
		txn.SetRPCInterceptor(func(next interceptor.RPCInterceptorFunc) interceptor.RPCInterceptorFunc {
			return func(target string, req *tikvrpc.Request) (*tikvrpc.Response, error) {
				if req.Type == tikvrpc.CmdCommit {
					fmt.Println("STAGE prewritten")
					select {}
				}
				return next(target, req)
			}
		})
		err = txn.Commit(ctx)
		return fail("commit returned", err)
	case "primary-committed":
		// client-go's own hook: commit the primary, skip the secondaries.
		util.EnableFailpoints()
		if err := failpoint.Enable("tikvclient/beforeCommitSecondaries", `return("skip")`); err != nil {
			return fail("failpoint", err)
		}
		if err := txn.Commit(util.SetSessionID(ctx, 1)); err != nil {
			return fail("commit", err)
		}
		fmt.Println("STAGE primary-committed")
		select {}
	}
	return fail("stage", fmt.Errorf("unknown stage %q", stage))
}
