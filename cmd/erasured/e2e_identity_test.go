package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// TestE2EUnsearchableIdentifier: the purely numeric customer id 20240117 cannot be searched in
// Messaging Interactions, which finds nothing for it; her conversations carry her e-mail too.
// Her chats are erased, and then the erasure does not complete as if she had no conversation:
// it waits (BLOCKED_ON_IDENTIFIER_UNSEARCHABLE) until a Submit of the same subject with her
// e-mail as an alias joins it, which finds and erases her conversations; or until an approver
// confirms the plan as it is, and the receipt names messaging as not searched.
func TestE2EUnsearchableIdentifier(t *testing.T) {
	t.Run("an e-mail alias joins", func(t *testing.T) {
		e := newE2E(t, e2eOptions{consumers: 60})
		chats, convs := e.chatsOf(lpsim.DemoNumericCustomerID), e.convsOf(lpsim.DemoNumericCustomerID, "")
		name := e.waitUnsearchable(chats, convs)
		res := e.submitRequest(customerID(lpsim.DemoNumericCustomerID), withAliases(email(lpsim.DemoNumericEmail)))
		if !res.Deduplicated || res.Erasure.Name() != name {
			t.Fatalf("Submit with an alias = %s (deduplicated %v), want it joined to %s", res.Erasure.Name(), res.Deduplicated, name)
		}
		if got := res.Erasure; got.IdentifierUnsearchable || got.BlockedOn != service.BlockedNone || got.AliasCount != 1 {
			t.Errorf("joined: unsearchable %v, blocked_on %s, %d aliases; want searchable, woken, 1 alias",
				got.IdentifierUnsearchable, blockedName(got.BlockedOn), got.AliasCount)
		}
		// The final sweep searches the alias too and finds her conversations; the month is nearly
		// gone, so they are sent at once.
		e.pipe.Wake()
		e.waitFor(name, "her conversations sent", func(x service.Erasure) bool {
			return len(x.LPRequests) == 2 && x.State == service.StateSubmitted
		})
		if got, want := e.bodies(), []string{body("engagement", chats), body("conversation", convs)}; !slices.Equal(got, want) {
			t.Errorf("LivePerson deletion requests = %v, want %v", got, want)
		}
		e.deleteAtLivePerson(name)
		rc := e.status(name).Receipt
		if len(rc.AliasFingerprints) != 1 || len(rc.UnsearchedChannels) != 0 ||
			!strings.HasPrefix(rc.VerificationSummary, "4 of 4 re-read records verified") {
			t.Errorf("receipt: aliases %v, unsearched %v, summary %q; want one alias, every channel searched, 4 of 4",
				rc.AliasFingerprints, rc.UnsearchedChannels, rc.VerificationSummary)
		}
		e.wantMasked(chats, convs, true)
	})
	t.Run("an approver confirms as is", func(t *testing.T) {
		e := newE2E(t, e2eOptions{consumers: 60})
		chats, convs := e.chatsOf(lpsim.DemoNumericCustomerID), e.convsOf(lpsim.DemoNumericCustomerID, "")
		name := e.waitUnsearchable(chats, convs)
		bob := service.WithPrincipal(context.Background(), "bob")
		plan, _ := e.planOf(name)
		res, err := e.svc.Resolve(bob, name, &service.Decision{Confirm: true, PlanEtag: plan.Etag})
		if err != nil {
			t.Fatalf("confirm as is = %v", err)
		}
		done := *res.Erasure
		if done.State != service.StateCompleted || !done.UnsearchableAccepted || done.Receipt == nil {
			t.Fatalf("confirmed: %s, accepted %v, receipt %v; want COMPLETED with the acceptance and a receipt",
				done.State, done.UnsearchableAccepted, done.Receipt)
		}
		rc := done.Receipt
		if !slices.Equal(rc.UnsearchedChannels, []service.Channel{service.ChannelMessaging}) ||
			!strings.HasPrefix(rc.VerificationSummary, "2 of 2 re-read records verified") {
			t.Errorf("receipt: unsearched %v, summary %q; want messaging unsearched, 2 of 2", rc.UnsearchedChannels, rc.VerificationSummary)
		}
		if err := service.VerifyReceipt(*rc, e.keys.PublicKey()); err != nil {
			t.Errorf("VerifyReceipt = %v", err)
		}
		e.wantMasked(chats, nil, true)
		e.wantMasked(nil, convs, false) // never found: what the receipt admits
	})
}

// waitUnsearchable submits the numeric customer id, has her chats erased and returns the
// erasure once it waits on its unsearchable identifier, checking it never completed meanwhile.
func (e *e2eEnv) waitUnsearchable(chats, convs []string) string {
	e.t.Helper()
	if len(chats) != 2 || len(convs) != 2 {
		e.t.Fatalf("demo data: %d chats and %d conversations of %s, want 2 and 2", len(chats), len(convs), lpsim.DemoNumericCustomerID)
	}
	name := e.submit(customerID(lpsim.DemoNumericCustomerID))
	got := e.waitState(name, service.StateScheduled)
	plan, records := e.planOf(name)
	if !got.IdentifierUnsearchable || !plan.IdentifierUnsearchable || len(plan.Identifiers) != 1 || !plan.Identifiers[0].PossiblyUnsearchable {
		e.t.Errorf("unsearchable %v, plan unsearchable %v, identifiers %+v; want the customer id reported possibly unsearchable",
			got.IdentifierUnsearchable, plan.IdentifierUnsearchable, plan.Identifiers)
	}
	if want := planEntries("engagement", "QUEUED", chats...); !slices.Equal(records, want) {
		e.t.Errorf("plan = %v, want her chats only %v (Messaging Interactions finds nothing for the number)", records, want)
	}
	var searched bool
	for _, c := range e.calls(lpsim.ServiceMsgHist, lpsim.OpSearch) {
		searched = searched || strings.Contains(c.Body, lpsim.DemoNumericCustomerID)
	}
	if !searched {
		e.t.Error("the numeric customer id was not searched in Messaging Interactions at all")
	}
	e.advance(e2eBatchMaxWait)
	e.waitState(name, service.StateSubmitted)
	e.advance(e2eCancelWindow + time.Hour)
	e.waitState(name, service.StateDeleting)
	e.advance(e2eDeletionTime)
	got = e.waitFor(name, "blocked on IDENTIFIER_UNSEARCHABLE", func(x service.Erasure) bool {
		return x.BlockedOn == service.BlockedIdentifierUnsearchable
	})
	if got.State != service.StateVerifying || !got.NextAttemptTime.IsZero() {
		e.t.Errorf("waiting on the identifier: %s, next attempt %v; want VERIFYING with nothing scheduled", got.State, got.NextAttemptTime)
	}
	e.advance(3 * e2ePoll)
	time.Sleep(100 * time.Millisecond)
	if got := e.status(name); got.State != service.StateVerifying || got.BlockedOn != service.BlockedIdentifierUnsearchable {
		e.t.Errorf("later: %s, blocked_on %s; want it still waiting", got.State, blockedName(got.BlockedOn))
	}
	return name
}
