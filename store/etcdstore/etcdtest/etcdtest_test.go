package etcdtest

import (
	"context"
	"testing"
	"time"
)

// TestStopRestart: a three-member cluster keeps serving with one member stopped, and the member
// rejoins on its data.
func TestStopRestart(t *testing.T) {
	c := Start(t, 3)
	cli := c.TestClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "1"); err != nil {
		t.Fatal(err)
	}
	c.Stop(1)
	if _, err := cli.Put(ctx, "k", "2"); err != nil {
		t.Fatalf("Put with one member stopped = %v", err)
	}
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	c.Stop(2)
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "2" {
		t.Fatalf("Get after restarts = %v, %v; want 2", resp, err)
	}
}
