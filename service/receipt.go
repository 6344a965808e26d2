package service

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Receipts are signed with an Ed25519 key derived from the key directory's root secret, as a JWS
// (receiptjws.go), and chained: each holds the hash of the one before, under its signature, so a
// missing or altered receipt breaks the chain.

type receiptHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// signedContent is what the hash and signature of a receipt signed before the JWS form cover:
// the receipt's JSON with Hash and Signature empty. New receipts are signed as a JWS
// (receiptjws.go); these only verify.
func signedContent(r Receipt) ([]byte, error) {
	r.Hash, r.Signature = "", ""
	r.ReceivedTime = r.ReceivedTime.UTC()
	r.CompleteTime = r.CompleteTime.UTC()
	return json.Marshal(r)
}

// complete attaches a signed receipt to r and appends it to the chain, in tx. It is half of a
// change: the caller has set r.State to COMPLETED and then stores the change through transition
// in this transaction. An erasure in any other state gets no receipt: complete refuses before
// writing anything, so a caller's mistake cannot leave a receipt for an open erasure in the
// chain.
func (s *Service) complete(tx store.Tx, r *record, ts []Target, now time.Time) error {
	if r.State != StateCompleted {
		return fmt.Errorf("erasure %s: a receipt is for a COMPLETED erasure, not one %s", r.ID, r.State)
	}
	var head receiptHead
	if v := tx.Get(schema.Ledger, schema.ReceiptHeadKey); v != nil {
		if err := json.Unmarshal(v, &head); err != nil {
			return err
		}
	}
	o, err := outcomeOf(ts)
	if err != nil {
		return err
	}
	rc := Receipt{
		Erasure:             r.Name(),
		AccountID:           r.AccountID,
		SubjectFingerprint:  r.Fingerprint,
		Counts:              model.CountTargets(ts),
		LPRequestIDs:        model.LPRequestIDs(&r.Erasure),
		ReceivedTime:        r.ReceivedTime.UTC(),
		CompleteTime:        now.UTC(),
		VerificationSummary: o.summary(r.IdentifierUnsearchable),
		PreviousHash:        head.Hash,
		KeyID:               s.keys.SigningKeyID(),
		UnverifiableCount:   int32(o.unverifiable),
		NotFoundCount:       int32(o.notFound),
	}
	for _, a := range r.Aliases {
		rc.AliasFingerprints = append(rc.AliasFingerprints, a.Fingerprint)
	}
	if r.IdentifierUnsearchable {
		// Only an approver's acceptance lets such an erasure complete.
		rc.UnsearchedChannels = []Channel{ChannelMessaging}
	}
	if err := signReceipt(&rc, s.keys.signing); err != nil {
		return err
	}
	v, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	head = receiptHead{Seq: head.Seq + 1, Hash: rc.Hash}
	if err := tx.Put(schema.Receipts, schema.ReceiptKey(head.Seq), v); err != nil {
		return err
	}
	hv, err := json.Marshal(head)
	if err != nil {
		return err
	}
	if err := tx.Put(schema.Ledger, schema.ReceiptHeadKey, hv); err != nil {
		return err
	}
	r.Receipt = &rc
	r.BlockedOn = BlockedNone
	return nil
}

// outcome counts what a completed erasure's records came to.
type outcome struct {
	verified     int // re-read after deletion: masked with the content read, or gone
	reread       int // records that can be re-read (chats and conversations), not counting not-found ones
	unverifiable int // consumer profiles LivePerson reports deleted: no read can check them
	notFound     int // named records LivePerson does not have
}

// outcomeOf counts ts, and refuses to call an erasure complete while any of its records is
// neither verified, nor a consumer profile reported deleted, nor not found.
func outcomeOf(ts []Target) (outcome, error) {
	var o outcome
	for _, t := range ts {
		switch {
		case t.Status == TargetNotFound:
			o.notFound++
		case t.Kind == KindConsumer && (t.Status == TargetDone || t.Status == TargetVerified):
			o.unverifiable++
		case t.Kind != KindConsumer && t.Status == TargetVerified:
			o.verified++
			o.reread++
		default:
			return outcome{}, fmt.Errorf("complete: a record of kind %s is still in status %d", t.Kind, t.Status)
		}
	}
	return o, nil
}

// summary says in words what was verified, and no more. unsearched: an approver accepted that
// Messaging Interactions may have been unable to search some of the subject's identifiers while
// no searchable one led to the person's consumer.
func (o outcome) summary(unsearched bool) string {
	plural := func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	var parts []string
	if o.reread > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d re-read records verified erased (content masked or record gone)", o.verified, o.reread))
	}
	if o.unverifiable > 0 {
		parts = append(parts, plural(o.unverifiable,
			"consumer profile reported deleted by LivePerson, which offers no read to verify it",
			"consumer profiles reported deleted by LivePerson, which offers no read to verify them"))
	}
	notFound := plural(o.notFound, "named record not found", "named records not found")
	switch {
	case len(parts) > 0 && o.notFound > 0:
		parts = append(parts, notFound)
	case len(parts) == 0 && o.notFound > 0:
		parts = append(parts, "nothing found: "+notFound+" at LivePerson")
	case len(parts) == 0:
		parts = append(parts, "nothing found: no LivePerson record carries any of the subject's identifiers")
	}
	if unsearched {
		parts = append(parts, "messaging not searched for certain: Messaging Interactions may be unable to search some of the subject's identifiers and no searchable one led to the person's consumer, and an approver accepted the plan without it")
	}
	return strings.Join(parts, "; ")
}

// VerifyReceipt checks a receipt's hash and signature against pub, in the form it was signed in:
// a receipt signed as a JWS by the JWS its fields rebuild (its kid must name pub), one signed
// before by its signature over the earlier content. A receipt whose fields were changed after
// signing matches neither form's hash and fails.
func VerifyReceipt(r Receipt, pub ed25519.PublicKey) error {
	payload, ok, err := jwsForm(r)
	if err != nil {
		return err
	}
	if ok {
		jws, err := compactJWS(r, payload)
		if err != nil {
			return err
		}
		_, _, err = openReceiptJWS(jws, pub)
		return err
	}
	content, err := signedContent(r)
	if err != nil {
		return err
	}
	if hashOf(content) != r.Hash {
		return errors.New("receipt hash does not match its content")
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil {
		return fmt.Errorf("receipt signature is not base64: %w", err)
	}
	if !ed25519.Verify(pub, content, sig) {
		return errors.New("receipt signature is not valid for this public key")
	}
	return nil
}
