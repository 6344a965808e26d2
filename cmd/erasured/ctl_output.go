package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/server"
)

// With -o json a command prints the RPC's response as protojson (List and ListAuditRecords with
// every page in one response); watch prints one WatchEvent per line. With -o name it prints only
// the erasures' names.

var (
	jsonDoc  = protojson.MarshalOptions{Multiline: true, Indent: "  "}
	jsonLine = protojson.MarshalOptions{}
)

func (c *ctl) printJSON(m proto.Message, opts protojson.MarshalOptions) error {
	b, err := opts.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.out, "%s\n", b)
	return err
}

// printErasures prints a list: one line per erasure.
func (c *ctl) printErasures(resp proto.Message, es []*erasurev1.Erasure) error {
	switch c.opts.output {
	case "json":
		return c.printJSON(resp, jsonDoc)
	case "name":
		for _, e := range es {
			fmt.Fprintln(c.out, e.GetName())
		}
		return nil
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tBLOCKED ON\tDUE\tAT RISK\tREF")
	for _, e := range es {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.GetName(), e.GetState(), blockedOnText(e.GetBlockedOn()),
			timeText(e.GetDueTime()), yesNo(e.GetAtRisk()), orDash(e.GetExternalRef()))
	}
	return w.Flush()
}

// printErasure prints one erasure in full.
func (c *ctl) printErasure(resp proto.Message, e *erasurev1.Erasure) error {
	switch c.opts.output {
	case "json":
		return c.printJSON(resp, jsonDoc)
	case "name":
		_, err := fmt.Fprintln(c.out, e.GetName())
		return err
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	row("name", e.GetName())
	row("state", e.GetState().String())
	row("blocked on", blockedOnText(e.GetBlockedOn()))
	row("next attempt", timeText(e.GetNextAttemptTime()))
	row("due", timeText(e.GetDueTime()))
	row("at risk", yesNo(e.GetAtRisk()))
	row("account", e.GetAccountId())
	row("request id", e.GetRequestId())
	row("external ref", orDash(e.GetExternalRef()))
	row("subject", fmt.Sprintf("%s, %d aliases", e.GetSubjectKind(), e.GetAliasCount()))
	row("confirmation", e.GetConfirmation().String())
	row("submitted by", e.GetSubmittedBy())
	row("received", timeText(e.GetReceivedTime()))
	row("created", timeText(e.GetCreateTime()))
	row("updated", timeText(e.GetUpdateTime()))
	row("revision", fmt.Sprint(e.GetRevision()))
	if e.GetLastError() != "" {
		row("last error", e.GetLastError())
	}
	if e.GetReason() != "" {
		row("reason", e.GetReason())
	}
	if e.GetIdentifierUnsearchable() {
		row("identifier unsearchable", fmt.Sprintf("yes (accepted: %s)", yesNo(e.GetUnsearchableAccepted())))
	}
	for _, tc := range e.GetTargetCounts() {
		row("records", fmt.Sprintf("%s %s %d", tc.GetKind(), tc.GetStatus(), tc.GetCount()))
	}
	for _, r := range e.GetLivepersonRequests() {
		row("liveperson request", fmt.Sprintf("%d %s %s, %d records", r.GetRequestId(), r.GetKind(), r.GetStatus(), r.GetRecordCount()))
	}
	for _, b := range e.GetHeldBatches() {
		row("held batch", fmt.Sprintf("%d %s, %d records, candidates %v (settle with SettleBatch)",
			b.GetBatchId(), b.GetKind(), b.GetRecordCount(), b.GetCandidateRequestIds()))
	}
	if r := e.GetReceipt(); r != nil {
		row("receipt", fmt.Sprintf("completed %s, hash %s, key %s", timeText(r.GetCompleteTime()), r.GetHash(), r.GetKeyId()))
	}
	if e.GetPurgeTime() != nil {
		row("purge", fmt.Sprintf("%s (purged: %s)", timeText(e.GetPurgeTime()), yesNo(e.GetPurged())))
	}
	return w.Flush()
}

// printPlan prints an erasure's plan: its etag (for confirm), its identifiers and its records.
func (c *ctl) printPlan(resp *erasurev1.ResolveResponse) error {
	if c.opts.output == "json" {
		return c.printJSON(resp, jsonDoc)
	}
	p := resp.GetPlan()
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "erasure:\t%s\t%s\n", resp.GetErasure().GetName(), resp.GetErasure().GetState())
	fmt.Fprintf(w, "plan etag:\t%s\n", p.GetPlanEtag())
	fmt.Fprintf(w, "liveperson requests needed:\t%d\n", p.GetLivepersonRequestsNeeded())
	fmt.Fprintf(w, "open conversations held:\t%d\n", p.GetOpenConversationsHeld())
	fmt.Fprintf(w, "identifier unsearchable:\t%s\n", yesNo(p.GetIdentifierUnsearchable()))
	for _, id := range p.GetIdentifiers() {
		note := ""
		if id.GetPossiblyUnsearchable() {
			note = "\tpossibly unsearchable"
		}
		fmt.Fprintf(w, "identifier:\t%s\t%s%s\n", id.GetKind(), id.GetFingerprint(), note)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	w = tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tRECORD\tSTATUS\tLIVEPERSON REQUEST")
	for _, g := range p.GetGroups() {
		for _, r := range g.GetRecords() {
			req := "-"
			if r.GetLivepersonRequestId() != 0 {
				req = fmt.Sprint(r.GetLivepersonRequestId())
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", g.GetKind(), r.GetId(), r.GetStatus(), req)
		}
	}
	return w.Flush()
}

// printEvent prints one change as it streams; current marks the erasure as it was when the
// watch began rather than a change.
func (c *ctl) printEvent(ev *erasurev1.WatchEvent, current bool) error {
	if c.opts.output == "json" {
		return c.printJSON(ev, jsonLine)
	}
	e := ev.GetErasure()
	change := fmt.Sprintf("%s -> %s", ev.GetPreviousState(), e.GetState())
	if sk := ev.GetSkippedStates(); len(sk) > 0 {
		names := make([]string, len(sk))
		for i, s := range sk {
			names[i] = s.String()
		}
		change += " (skipped " + strings.Join(names, ", ") + ")"
	}
	switch {
	case current:
		change = "now " + e.GetState().String()
	case ev.GetPreviousState() == erasurev1.State_STATE_UNSPECIFIED:
		change = "created " + e.GetState().String()
	case ev.GetPreviousState() == e.GetState():
		change = "updated " + e.GetState().String()
	}
	line := fmt.Sprintf("%d\t%s\t%s\t%s", ev.GetRevision(), timeText(ev.GetTime()), e.GetName(), change)
	if b := e.GetBlockedOn(); b != erasurev1.BlockedOn_BLOCKED_ON_UNSPECIFIED {
		line += "\tblocked on " + b.String()
	}
	if e.GetAtRisk() {
		line += "\tAT RISK"
	}
	_, err := fmt.Fprintln(c.out, line)
	return err
}

// printAudit prints the audit trail, one record a line.
func (c *ctl) printAudit(resp *erasurev1.ListAuditRecordsResponse) error {
	if c.opts.output == "json" {
		return c.printJSON(resp, jsonDoc)
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tPRINCIPAL\tACTION\tERASURE\tOUTCOME\tDETAIL")
	for _, r := range resp.GetRecords() {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetSequence(), timeText(r.GetTime()), r.GetPrincipal(),
			r.GetAction(), orDash(r.GetErasure()), r.GetOutcome(), orDash(r.GetDetail()))
	}
	return w.Flush()
}

// describeError spells a gRPC error out for an operator: the canonical code, the message, the
// ErrorInfo reason and metadata, and each field violation. Other errors pass through.
func describeError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	for _, d := range st.Details() {
		// The violations are listed one by one below; the message lists them too.
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			msg, _, _ = strings.Cut(msg, "\n")
			msg = strings.TrimSuffix(msg, ":")
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", server.CodeName(st.Code()), msg)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			fmt.Fprintf(&b, "\n  reason: %s", d.GetReason())
			keys := make([]string, 0, len(d.GetMetadata()))
			for k := range d.GetMetadata() {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "\n  %s: %s", k, d.GetMetadata()[k])
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fmt.Fprintf(&b, "\n  field %s: %s", v.GetField(), v.GetDescription())
			}
		}
	}
	return errors.New(b.String())
}

func blockedOnText(b erasurev1.BlockedOn) string {
	if b == erasurev1.BlockedOn_BLOCKED_ON_UNSPECIFIED {
		return "-"
	}
	return b.String()
}

func timeText(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Truncate(time.Second).Format(time.RFC3339)
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
