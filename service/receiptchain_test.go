package service

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// completeNothingFound submits an erasure for a subject LivePerson holds nothing of and runs it
// to COMPLETED (past the search lag), returning its receipt.
func (e *pipeEnv) completeNothingFound(rid string) Receipt {
	e.t.Helper()
	name := e.submit(submitReq(rid, "1234", customer("NOBODY-"+rid[len(rid)-1:]))).Erasure.Name()
	e.settle()
	e.advance(e.cfg.SearchLag)
	done := e.wantState(name, StateCompleted)
	if done.Receipt == nil {
		e.t.Fatalf("%s: COMPLETED without a receipt", name)
	}
	return *done.Receipt
}

// checkJWSReceipt requires rc to verify against the service's key, signed as a JWS.
func (e *pipeEnv) checkJWSReceipt(what string, rc Receipt) {
	e.t.Helper()
	pub := e.svc.keys.PublicKey()
	if err := VerifyReceipt(rc, pub); err != nil {
		e.t.Errorf("%s: VerifyReceipt = %v", what, err)
	}
	jws := ReceiptJWS(rc)
	if jws == "" {
		e.t.Fatalf("%s: not signed as a JWS", what)
	}
	if err := VerifyReceiptJWS(rc, jws, pub); err != nil {
		e.t.Errorf("%s: VerifyReceiptJWS = %v", what, err)
	}
}

// TestReceiptsChain: each receipt holds the hash of the one signed before it, under its
// signature; the first has none.
func TestReceiptsChain(t *testing.T) {
	e := newPipeEnv(t)
	first := e.completeNothingFound("00000000-0000-4000-8000-000000000001")
	second := e.completeNothingFound("00000000-0000-4000-8000-000000000002")
	if first.PreviousHash != "" {
		t.Errorf("the first receipt's previous hash = %q, want none", first.PreviousHash)
	}
	if second.PreviousHash == "" || second.PreviousHash != first.Hash {
		t.Errorf("the second receipt's previous hash = %q, want the first's hash %s", second.PreviousHash, first.Hash)
	}
	if first.Hash == second.Hash {
		t.Error("two receipts have the same hash")
	}
	e.checkJWSReceipt("first receipt", first)
	e.checkJWSReceipt("second receipt", second)
}

// TestReceiptChainContinuesFromOldForm: on a server whose last receipt was signed before the
// JWS form, the next receipt, a JWS, links to that receipt's hash, and both verify.
func TestReceiptChainContinuesFromOldForm(t *testing.T) {
	raw, err := os.ReadFile("testdata/receipt-before-jws.json")
	if err != nil {
		t.Fatal(err)
	}
	var old Receipt
	if err := json.Unmarshal(raw, &old); err != nil {
		t.Fatal(err)
	}
	e := newPipeEnv(t)
	head, _ := json.Marshal(receiptHead{Seq: 7, Hash: old.Hash})
	if err := e.db.Update(context.Background(), func(tx store.Tx) error {
		return tx.Put(schema.Ledger, schema.ReceiptHeadKey, head)
	}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * 24 * time.Hour) // after the old receipt was signed

	next := e.completeNothingFound("00000000-0000-4000-8000-000000000003")
	if next.PreviousHash != old.Hash {
		t.Errorf("the receipt after one of the old form names previous %q, want its hash %s", next.PreviousHash, old.Hash)
	}
	if err := VerifyReceipt(old, e.svc.keys.PublicKey()); err != nil {
		t.Errorf("the old-form receipt: VerifyReceipt = %v", err)
	}
	if ReceiptJWS(old) != "" {
		t.Error("the old-form receipt rebuilds a JWS")
	}
	e.checkJWSReceipt("the receipt after the old form", next)
}
