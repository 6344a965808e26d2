package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/boltstore"
)

// TestBackupWhileSubmitting takes a backup over the wire while Submits keep arriving, and
// checks that the file passes bbolt's check and that a service opened on it with the same
// keyring reads every erasure submitted before the backup began.
func TestBackupWhileSubmitting(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := context.Background()
	var before []string
	for i := range 40 {
		before = append(before, h.submit(fmt.Sprintf("4a7c1f62-0d5e-4f3b-9b7e-%012d", i+1), customerID(fmt.Sprint("B-", i))).GetName())
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var during atomic.Int64
	started := make(chan struct{})
	var submitErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := h.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: fmt.Sprintf("4a7c1f62-0d5e-4f3b-9b7e-%012d", i),
				AccountId: "1234", Subject: customerID(fmt.Sprint("D-", i))})
			if err != nil {
				submitErr = err
				return
			}
			if during.Add(1) == 5 {
				close(started) // Submits are flowing: the backup starts among them
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("Submits did not start")
	}
	st, err := h.client.Backup(ctx, &erasurev1.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var data bytes.Buffer
	var first *erasurev1.BackupResponse
	for {
		msg, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Backup Recv: %v", err)
		}
		if first == nil {
			first = msg
		} else if msg.GetSize() != 0 || msg.GetRevision() != 0 {
			t.Errorf("a later chunk repeats size %d / revision %d", msg.GetSize(), msg.GetRevision())
		}
		if len(msg.GetData()) > backupChunk {
			t.Errorf("chunk of %d bytes, more than %d", len(msg.GetData()), backupChunk)
		}
		data.Write(msg.GetData())
	}
	close(stop)
	wg.Wait()
	if submitErr != nil {
		t.Fatalf("Submit during the backup: %v", submitErr)
	}
	t.Logf("%d Submits ran around the backup", during.Load())
	if first == nil || first.GetSize() != int64(data.Len()) || first.GetRevision() < int64(len(before)) {
		t.Fatalf("first chunk %v for %d bytes, want the size and a revision of at least %d", first, data.Len(), len(before))
	}

	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, data.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := boltstore.CheckFile(path); err != nil {
		t.Fatalf("bbolt check of the backup: %v", err)
	}

	db, err := boltstore.Open(path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := service.NewKeyring("test", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(db, keys, service.Config{})
	if err != nil {
		t.Fatalf("service on the restored store: %v", err)
	}
	for _, name := range before {
		if _, err := svc.Status(ctx, name); err != nil {
			t.Errorf("restored Status(%s) = %v", name, err)
		}
	}
	// The restored service knows the subjects: a repeated Submit is deduplicated onto the old erasure.
	res, err := svc.Submit(ctx, service.SubmitRequest{RequestID: "4a7c1f62-0d5e-4f3b-9b7e-ffffffffffff", AccountID: "1234",
		Subject: service.Subject{Kind: service.SubjectCustomerID, Value: "B-0"}})
	if err != nil || !res.Deduplicated || res.Erasure.Name() != before[0] {
		t.Errorf("restored Submit of a known subject = %+v, %v; want deduplicated onto %s", res, err, before[0])
	}
}
