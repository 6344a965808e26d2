package server

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// oneChatLP is a LivePerson with one chat of customer ABC-123, ten days old; it creates no
// deletion request (the test ends before any would be sent).
type oneChatLP struct{ start time.Time }

var errNotHere = errors.New("not in this fake")

func (f oneChatLP) SearchChats(_ context.Context, _ string, from, to time.Time, keyword string) ([]service.ChatRecord, error) {
	if keyword == "ABC-123" && !f.start.Before(from) && f.start.Before(to) {
		return []service.ChatRecord{{EngagementID: "1234000001", Start: f.start, CustomerIDs: []string{"ABC-123"}}}, nil
	}
	return nil, nil
}
func (oneChatLP) ChatByID(context.Context, string, string, time.Time, time.Time) (service.ChatRecord, bool, error) {
	return service.ChatRecord{}, false, nil
}
func (oneChatLP) SearchConversations(context.Context, string, time.Time, time.Time, service.SDESearch) ([]service.ConversationRecord, error) {
	return nil, nil
}
func (oneChatLP) ConversationsByConsumer(context.Context, string, string) ([]service.ConversationRecord, error) {
	return nil, nil
}
func (oneChatLP) ConversationsByID(context.Context, string, []string) ([]service.ConversationRecord, error) {
	return nil, nil
}
func (oneChatLP) CreateDeletion(context.Context, string, service.TargetKind, []string) (service.Deletion, error) {
	return service.Deletion{}, errNotHere
}
func (oneChatLP) ListDeletions(context.Context, string, time.Time, time.Time) ([]service.Deletion, error) {
	return nil, nil
}
func (oneChatLP) GetDeletion(context.Context, string, int64) (service.Deletion, error) {
	return service.Deletion{}, errNotHere
}
func (oneChatLP) CancelDeletion(context.Context, string, int64) (service.Deletion, error) {
	return service.Deletion{}, errNotHere
}

// TestSeparationOfDutiesThroughTheServer: a principal holding both submitter and approver
// submits a MANUAL erasure; its own confirmation is refused, another approver's passes.
func TestSeparationOfDutiesThroughTheServer(t *testing.T) {
	callers := Callers{Tokens: []TokenPrincipal{
		{Principal: "alice", SHA256: tokenHash("alice-token"), Roles: []Role{RoleSubmitter, RoleApprover, RoleViewer}},
		{Principal: "bob", SHA256: tokenHash("bob-token"), Roles: []Role{RoleApprover}},
	}}
	e := newTLSEnv(t, callers, Options{})
	ctx, stop := context.WithCancel(context.Background())
	p := e.svc.NewPipeline(oneChatLP{start: time.Now().Add(-10 * 24 * time.Hour)}, service.PipelineConfig{})
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	t.Cleanup(func() { stop(); <-ran })

	client := e.client()
	alice, bob := withToken(context.Background(), "alice-token"), withToken(context.Background(), "bob-token")
	res, err := client.Submit(alice, &erasurev1.SubmitRequest{RequestId: uuid.NewString(), AccountId: "1234",
		Subject: customerID("ABC-123"), Channels: []erasurev1.Channel{erasurev1.Channel_CHANNEL_CHAT},
		Confirmation: erasurev1.Confirmation_CONFIRMATION_MANUAL})
	if err != nil {
		t.Fatal(err)
	}
	name := res.GetErasure().GetName()
	var plan *erasurev1.ResolveResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		plan, err = client.Resolve(alice, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: name}})
		if err != nil {
			t.Fatal(err)
		}
		if plan.GetErasure().GetState() == erasurev1.State_STATE_AWAITING_CONFIRMATION {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("erasure never awaited confirmation: %v", plan.GetErasure())
		}
		p.Wake()
		time.Sleep(20 * time.Millisecond)
	}
	confirm := &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: name},
		Decision: &erasurev1.Decision{Kind: &erasurev1.Decision_Confirm{Confirm: &erasurev1.Confirm{PlanEtag: plan.GetPlan().GetPlanEtag()}}}}
	_, err = client.Resolve(alice, confirm)
	if status.Code(err) != codes.PermissionDenied || errorReason(err) != "SELF_APPROVAL" {
		t.Fatalf("submitter confirms its own erasure: %v, want PERMISSION_DENIED SELF_APPROVAL", err)
	}
	if _, err := client.Resolve(bob, confirm); err != nil {
		t.Errorf("another approver's confirmation: %v", err)
	}
	// Alice's refused confirmation is in the audit trail, recorded by the server.
	got := auditRecords(t, e.db)
	if !slices.ContainsFunc(got, func(a service.AuditEntry) bool {
		return a.Principal == "alice" && "erasures/"+a.Erasure == name && a.Action == service.AuditConfirm && a.Outcome == "PERMISSION_DENIED" && a.Detail == "SELF_APPROVAL"
	}) {
		t.Errorf("no audit record of the refused self-approval in %+v", got)
	}
}

// twoPeopleLP adds to oneChatLP a chat of victim@example.com, found only by that address.
type twoPeopleLP struct{ oneChatLP }

func (f twoPeopleLP) SearchChats(ctx context.Context, account string, from, to time.Time, keyword string) ([]service.ChatRecord, error) {
	if keyword == "victim@example.com" && !f.start.Before(from) && f.start.Before(to) {
		return []service.ChatRecord{{EngagementID: "1234000099", Start: f.start, Emails: []string{"victim@example.com"}}}, nil
	}
	return f.oneChatLP.SearchChats(ctx, account, from, to, keyword)
}

// awaitPlan reads the erasure's plan as ctx's caller until the erasure awaits confirmation.
func awaitPlan(t *testing.T, client erasurev1.ErasureServiceClient, ctx context.Context, p *service.Pipeline, name string) *erasurev1.ResolveResponse {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		plan, err := client.Resolve(ctx, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: name}})
		if err != nil {
			t.Fatal(err)
		}
		if plan.GetErasure().GetState() == erasurev1.State_STATE_AWAITING_CONFIRMATION {
			return plan
		}
		if time.Now().After(deadline) {
			t.Fatalf("erasure never awaited confirmation: %v", plan.GetErasure())
		}
		p.Wake()
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJoinerCannotConfirm: bob joins alice's MANUAL erasure with an identifier of his own, which
// brings another person's chat into the plan. Bob is refused the confirmation as the submitter
// would be; carol, who asked for nothing, confirms.
func TestJoinerCannotConfirm(t *testing.T) {
	callers := Callers{Tokens: []TokenPrincipal{
		{Principal: "alice", SHA256: tokenHash("alice-token"), Roles: []Role{RoleSubmitter}},
		{Principal: "bob", SHA256: tokenHash("bob-token"), Roles: []Role{RoleSubmitter, RoleApprover, RoleViewer}},
		{Principal: "carol", SHA256: tokenHash("carol-token"), Roles: []Role{RoleApprover, RoleViewer}},
	}}
	e := newTLSEnv(t, callers, Options{})
	ctx, stop := context.WithCancel(context.Background())
	p := e.svc.NewPipeline(twoPeopleLP{oneChatLP{start: time.Now().Add(-10 * 24 * time.Hour)}}, service.PipelineConfig{})
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	t.Cleanup(func() { stop(); <-ran })

	client := e.client()
	alice, bob, carol := withToken(context.Background(), "alice-token"), withToken(context.Background(), "bob-token"), withToken(context.Background(), "carol-token")
	submit := func(ctx context.Context, aliases ...*erasurev1.Subject) *erasurev1.SubmitResponse {
		t.Helper()
		res, err := client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: uuid.NewString(), AccountId: "1234",
			Subject: customerID("ABC-123"), Channels: []erasurev1.Channel{erasurev1.Channel_CHANNEL_CHAT},
			Confirmation: erasurev1.Confirmation_CONFIRMATION_MANUAL, Aliases: aliases})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	name := submit(alice).GetErasure().GetName()
	awaitPlan(t, client, carol, p, name)
	joined := submit(bob, &erasurev1.Subject{Id: &erasurev1.Subject_Email{Email: "victim@example.com"}})
	if !joined.GetDeduplicated() || joined.GetErasure().GetName() != name {
		t.Fatalf("bob's Submit did not join alice's erasure: %v", joined)
	}
	plan := awaitPlan(t, client, carol, p, name)
	if n := len(plan.GetPlan().GetGroups()); n == 0 {
		t.Fatalf("empty plan: %v", plan.GetPlan())
	}
	confirm := &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: name},
		Decision: &erasurev1.Decision{Kind: &erasurev1.Decision_Confirm{Confirm: &erasurev1.Confirm{PlanEtag: plan.GetPlan().GetPlanEtag()}}}}
	_, err := client.Resolve(bob, confirm)
	if status.Code(err) != codes.PermissionDenied || errorReason(err) != "SELF_APPROVAL" {
		t.Fatalf("the joiner confirms: %v, want PERMISSION_DENIED SELF_APPROVAL", err)
	}
	reject := &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: name},
		Decision: &erasurev1.Decision{Kind: &erasurev1.Decision_Reject{Reject: &erasurev1.Reject{Reason: "mine"}}}}
	if _, err := client.Resolve(bob, reject); status.Code(err) != codes.PermissionDenied || errorReason(err) != "SELF_APPROVAL" {
		t.Fatalf("the joiner rejects: %v, want PERMISSION_DENIED SELF_APPROVAL", err)
	}
	if _, err := client.Resolve(carol, confirm); err != nil {
		t.Errorf("carol's confirmation: %v", err)
	}
}
