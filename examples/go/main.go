// Command go-example is an erasured client in Go over the generated code of the gen module. It
// submits an erasure for a sandbox demo subject, watches it to STATE_COMPLETED (dropping the
// stream part way on purpose and resuming where it left off), and sends a malformed Submit to
// show how the field violations and the ErrorInfo reason are read from the error's details.
//
//	go run . [ADDR]      (ADDR defaults to ERASURED_ADDR or 127.0.0.1:50051)
//
// It exits non-zero if anything it checks does not hold. Its go.mod keeps its own go line and
// grpc version: the gen module asks for no more than its generated code needs.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const account = "1234"

// subject is one only this example erases (the Node and Python examples take others).
var subject = &erasurev1.Subject{Id: &erasurev1.Subject_Email{Email: "numeric.person@example.com"}}

func main() {
	addr := "127.0.0.1:50051"
	if a := os.Getenv("ERASURED_ADDR"); a != "" {
		addr = a
	}
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	err := run(ctx, addr)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("go example: all checks passed")
}

func run(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials())) // the sandbox: loopback, no TLS
	if err != nil {
		return err
	}
	defer conn.Close()
	client := erasurev1.NewErasureServiceClient(conn)
	if err := malformedSubmit(ctx, client); err != nil {
		return err
	}
	return submitAndWatch(ctx, client)
}

// malformedSubmit shows the error of a request that breaks the proto's rules: INVALID_ARGUMENT
// with a BadRequest detail naming each field, and an ErrorInfo.
func malformedSubmit(ctx context.Context, client erasurev1.ErasureServiceClient) error {
	fmt.Println("Submit with a bad request_id, account_id and e-mail:")
	_, err := client.Submit(ctx, &erasurev1.SubmitRequest{
		RequestId: "nope", AccountId: "12-34",
		Subject: &erasurev1.Subject{Id: &erasurev1.Subject_Email{Email: "not-an-email"}},
	}, grpc.WaitForReady(true))
	if err == nil {
		return errors.New("check failed: a malformed Submit was accepted")
	}
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		return fmt.Errorf("check failed: INVALID_ARGUMENT, not %v: %v", st.Code(), st.Message())
	}
	// status.Details decodes the google.rpc.Status that grpc sends in the
	// grpc-status-details-bin trailer into the errdetails types.
	var info *errdetails.ErrorInfo
	var bad *errdetails.BadRequest
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			bad = d
		}
	}
	if info == nil || bad == nil {
		return errors.New("check failed: the error carries an ErrorInfo and a BadRequest")
	}
	fmt.Printf("  %v, ErrorInfo reason %s (domain %s)\n", st.Code(), info.GetReason(), info.GetDomain())
	// No reason (string.uuid, ...) here, unlike the Node and Python examples: the errdetails of
	// the genproto that grpc 1.64 brings has no FieldViolation.reason (a newer one reads it).
	var fields []string
	for _, v := range bad.GetFieldViolations() {
		fields = append(fields, v.GetField())
		fmt.Printf("  field %s: %s\n", v.GetField(), v.GetDescription())
	}
	if info.GetReason() != "INVALID_REQUEST" {
		return fmt.Errorf("check failed: ErrorInfo reason INVALID_REQUEST, not %s", info.GetReason())
	}
	for _, want := range []string{"request_id", "account_id", "subject.email"} {
		if !slices.Contains(fields, want) {
			return fmt.Errorf("check failed: a field violation for %s (got %v)", want, fields)
		}
	}
	return nil
}

// errStop ends a watch on purpose, part way: the caller then resumes it.
var errStop = errors.New("disconnected on purpose")

// errDone ends a watch once the erasure is COMPLETED.
var errDone = errors.New("completed")

// watch streams the erasure's changes from start and hands each event to onEvent until it
// returns an error; cancelling the call's context is the disconnect.
func watch(ctx context.Context, client erasurev1.ErasureServiceClient, name string, start int64, onEvent func(*erasurev1.WatchEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Watch(ctx, &erasurev1.WatchRequest{Name: name, StartRevision: start})
	if err != nil {
		return err
	}
	for {
		res, err := stream.Recv()
		if err != nil {
			return err
		}
		if len(res.GetEvents()) == 0 {
			fmt.Printf("  heartbeat: everything up to revision %d was sent\n", res.GetProgressRevision())
		}
		for _, ev := range res.GetEvents() {
			if err := onEvent(ev); err != nil {
				return err // the rest of this batch comes again after a resume
			}
		}
	}
}

func submitAndWatch(ctx context.Context, client erasurev1.ErasureServiceClient) error {
	requestID := newUUID()
	res, err := client.Submit(ctx, &erasurev1.SubmitRequest{
		RequestId: requestID, AccountId: account, Subject: subject, ExternalRef: "GO-EXAMPLE",
	})
	if err != nil {
		return fmt.Errorf("Submit: %w", err)
	}
	e := res.GetErasure()
	joined := ""
	if res.GetDeduplicated() {
		joined = ", joined an open erasure of the same subject"
	}
	fmt.Printf("Submit: %s %v (request_id %s, revision %d%s)\n", e.GetName(), e.GetState(), requestID, e.GetRevision(), joined)

	// Start from the Submit's own revision, so that the first states are seen even if they
	// passed before the Watch began. The first event is then the change the Submit made: it
	// created the erasure, so its previous_state is STATE_UNSPECIFIED (when the Submit joined an
	// open erasure, it is the state before that erasure's latest change). Every later event's
	// previous_state is the state of the event before it, across the resume too: a lost change
	// breaks that chain.
	var seen []int64
	last := e.GetRevision() - 1
	var prev *erasurev1.WatchEvent
	onEvent := func(ev *erasurev1.WatchEvent) error {
		if ev.GetRevision() <= last {
			return fmt.Errorf("check failed: revision %d follows %d (strictly increasing, none repeated)", ev.GetRevision(), last)
		}
		er := ev.GetErasure()
		switch {
		case prev == nil && ev.GetRevision() != e.GetRevision():
			return fmt.Errorf("check failed: the first event is the Submit's change at revision %d, not %d", e.GetRevision(), ev.GetRevision())
		case prev == nil && er.GetState() != e.GetState():
			return fmt.Errorf("check failed: the first event shows the Submit's state %v, not %v", e.GetState(), er.GetState())
		case prev == nil && !res.GetDeduplicated() && ev.GetPreviousState() != erasurev1.State_STATE_UNSPECIFIED:
			return fmt.Errorf("check failed: the change that created the erasure has previous_state STATE_UNSPECIFIED, not %v", ev.GetPreviousState())
		case prev != nil && ev.GetPreviousState() != prev.GetErasure().GetState():
			return fmt.Errorf("check failed: revision %d has previous_state %v, but the change before it (revision %d) left %v: a change was lost",
				ev.GetRevision(), ev.GetPreviousState(), prev.GetRevision(), prev.GetErasure().GetState())
		}
		last, prev = ev.GetRevision(), ev
		seen = append(seen, last)
		blocked := ""
		if er.GetBlockedOn() != erasurev1.BlockedOn_BLOCKED_ON_UNSPECIFIED {
			blocked = fmt.Sprintf(" (%v)", er.GetBlockedOn())
		}
		fmt.Printf("  revision %d: %v -> %v%s\n", last, ev.GetPreviousState(), er.GetState(), blocked)
		switch er.GetState() {
		case erasurev1.State_STATE_COMPLETED:
			return errDone
		case erasurev1.State_STATE_FAILED, erasurev1.State_STATE_CANCELLED, erasurev1.State_STATE_REJECTED:
			return fmt.Errorf("check failed: the erasure ends COMPLETED, not %v", er.GetState())
		}
		return nil
	}

	fmt.Printf("Watch %s from revision %d; it is dropped on purpose after two changes\n", e.GetName(), last+1)
	err = watch(ctx, client, e.GetName(), last+1, func(ev *erasurev1.WatchEvent) error {
		if err := onEvent(ev); err != nil || len(seen) < 2 {
			return err
		}
		return errStop
	})
	resumes := 0
	for errors.Is(err, errStop) || status.Code(err) == codes.Unavailable {
		if resumes++; resumes > 5 {
			return errors.New("check failed: completion within 5 resumes")
		}
		resume := onEvent
		if errors.Is(err, errStop) {
			// Wait until the erasure changed while no one watched: the resumed watch must then
			// replay that history, starting at or before the revision Status reports.
			changed, err := changedSince(ctx, client, e.GetName(), last)
			if err != nil {
				return err
			}
			fmt.Printf("  disconnected on purpose; Status shows revision %d > %d, so the resume must replay it\n", changed, last)
			first := true
			resume = func(ev *erasurev1.WatchEvent) error {
				if first && ev.GetRevision() > changed {
					return fmt.Errorf("check failed: the resumed watch starts at revision %d, after %d (which Status reported): history was lost", ev.GetRevision(), changed)
				}
				first = false
				return onEvent(ev)
			}
		} else {
			fmt.Printf("  disconnected (%v)\n", err)
		}
		fmt.Printf("  resuming with start_revision = last seen + 1 = %d\n", last+1)
		err = watch(ctx, client, e.GetName(), last+1, resume)
	}
	if !errors.Is(err, errDone) {
		return fmt.Errorf("Watch: %w", err)
	}
	if resumes == 0 {
		return errors.New("check failed: the watch was resumed at least once")
	}
	fmt.Printf("Watch: STATE_COMPLETED after %d changes and %d resume(s), revisions %v\n", len(seen), resumes, seen)

	st, err := client.Status(ctx, &erasurev1.StatusRequest{Name: e.GetName()})
	if err != nil {
		return fmt.Errorf("Status: %w", err)
	}
	if st.GetErasure().GetState() != erasurev1.State_STATE_COMPLETED || st.GetErasure().GetReceipt() == nil {
		return fmt.Errorf("check failed: Status agrees: COMPLETED with a receipt, not %v", st.GetErasure().GetState())
	}
	fmt.Printf("Status: %v, receipt signed by %s\n", st.GetErasure().GetState(), st.GetErasure().GetReceipt().GetKeyId())
	return nil
}

// changedSince polls Status until the erasure's revision (that of its latest change) passes rev,
// and returns it.
func changedSince(ctx context.Context, client erasurev1.ErasureServiceClient, name string, rev int64) (int64, error) {
	for {
		st, err := client.Status(ctx, &erasurev1.StatusRequest{Name: name})
		if err != nil {
			return 0, fmt.Errorf("Status: %w", err)
		}
		if r := st.GetErasure().GetRevision(); r > rev {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("check failed: the erasure changes after revision %d: %w", rev, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// newUUID returns a random (version 4) UUID, the form request_id takes.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
