package server

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// The service's enums are numbered like the proto enums, so conversions are plain casts; the
// tests check the two stay in step.

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func toProto(e service.Erasure) *erasurev1.Erasure {
	out := &erasurev1.Erasure{
		Name:                   e.Name(),
		RequestId:              e.RequestID,
		AccountId:              e.AccountID,
		SubjectKind:            erasurev1.SubjectKind(e.SubjectKind),
		SubjectFingerprint:     e.Fingerprint,
		EraseConsumerProfile:   e.EraseConsumerProfile,
		Confirmation:           erasurev1.Confirmation(e.Confirmation),
		ExternalRef:            e.ExternalRef,
		State:                  erasurev1.State(e.State),
		ReceivedTime:           ts(e.ReceivedTime),
		CreateTime:             ts(e.CreateTime),
		UpdateTime:             ts(e.UpdateTime),
		DueTime:                ts(e.DueTime),
		AtRisk:                 e.AtRisk,
		BlockedOn:              erasurev1.BlockedOn(e.BlockedOn),
		NextAttemptTime:        ts(e.NextAttemptTime),
		LastError:              e.LastError,
		Revision:               int64(e.Revision),
		SubmittedBy:            e.SubmittedBy,
		Reason:                 e.Reason,
		IdentifierUnsearchable: e.IdentifierUnsearchable,
		TargetCounts:           countsToProto(e.TargetCounts),
		AliasCount:             e.AliasCount,
		UnsearchableAccepted:   e.UnsearchableAccepted,
		PurgeTime:              ts(e.PurgeTime),
		AtRiskTime:             ts(e.AtRiskTime),
		Purged:                 e.Purged,
	}
	for _, c := range e.Channels {
		out.Channels = append(out.Channels, erasurev1.Channel(c))
	}
	for _, r := range e.LPRequests {
		out.LivepersonRequests = append(out.LivepersonRequests, &erasurev1.LivePersonRequest{
			RequestId: r.ID, Kind: erasurev1.TargetKind(r.Kind), Status: r.Status, RecordCount: r.RecordCount,
		})
	}
	for _, b := range e.HeldBatches {
		out.HeldBatches = append(out.HeldBatches, &erasurev1.HeldBatch{
			BatchId: b.BatchID, Kind: erasurev1.TargetKind(b.Kind), RecordCount: b.RecordCount,
			CandidateRequestIds: b.Candidates, SendTime: ts(b.SendTime),
		})
	}
	if r := e.Receipt; r != nil {
		out.Receipt = receiptToProto(*r)
	}
	return out
}

func receiptToProto(r service.Receipt) *erasurev1.Receipt {
	out := &erasurev1.Receipt{
		Erasure:              r.Erasure,
		AccountId:            r.AccountID,
		SubjectFingerprint:   r.SubjectFingerprint,
		Counts:               countsToProto(r.Counts),
		LivepersonRequestIds: r.LPRequestIDs,
		ReceivedTime:         ts(r.ReceivedTime),
		CompleteTime:         ts(r.CompleteTime),
		VerificationSummary:  r.VerificationSummary,
		PreviousHash:         r.PreviousHash,
		Hash:                 r.Hash,
		Signature:            r.Signature,
		KeyId:                r.KeyID,
		AliasFingerprints:    r.AliasFingerprints,
		UnverifiableCount:    r.UnverifiableCount,
		NotFoundCount:        r.NotFoundCount,
		Jws:                  service.ReceiptJWS(r),
	}
	for _, c := range r.UnsearchedChannels {
		out.UnsearchedChannels = append(out.UnsearchedChannels, erasurev1.Channel(c))
	}
	return out
}

// ReceiptFromProto is a receipt as the API carries it, in the form service.VerifyReceipt checks:
// every signed field, so that a receipt read back from Status (or grpcurl's JSON of it)
// verifies offline.
func ReceiptFromProto(pr *erasurev1.Receipt) service.Receipt {
	t := func(p *timestamppb.Timestamp) time.Time {
		if p == nil {
			return time.Time{}
		}
		return p.AsTime()
	}
	rc := service.Receipt{
		Erasure:             pr.GetErasure(),
		AccountID:           pr.GetAccountId(),
		SubjectFingerprint:  pr.GetSubjectFingerprint(),
		LPRequestIDs:        pr.GetLivepersonRequestIds(),
		ReceivedTime:        t(pr.GetReceivedTime()),
		CompleteTime:        t(pr.GetCompleteTime()),
		VerificationSummary: pr.GetVerificationSummary(),
		PreviousHash:        pr.GetPreviousHash(),
		Hash:                pr.GetHash(),
		Signature:           pr.GetSignature(),
		KeyID:               pr.GetKeyId(),
		AliasFingerprints:   pr.GetAliasFingerprints(),
		UnverifiableCount:   pr.GetUnverifiableCount(),
		NotFoundCount:       pr.GetNotFoundCount(),
	}
	for _, c := range pr.GetCounts() {
		rc.Counts = append(rc.Counts, service.TargetCount{Kind: service.TargetKind(c.GetKind()), Status: service.TargetStatus(c.GetStatus()), Count: c.GetCount()})
	}
	for _, c := range pr.GetUnsearchedChannels() {
		rc.UnsearchedChannels = append(rc.UnsearchedChannels, service.Channel(c))
	}
	return rc
}

func countsToProto(in []service.TargetCount) []*erasurev1.TargetCount {
	var out []*erasurev1.TargetCount
	for _, c := range in {
		out = append(out, &erasurev1.TargetCount{Kind: erasurev1.TargetKind(c.Kind), Status: erasurev1.TargetStatus(c.Status), Count: c.Count})
	}
	return out
}

func subjectFromProto(s *erasurev1.Subject) service.Subject {
	switch id := s.GetId().(type) {
	case *erasurev1.Subject_CustomerId:
		return service.Subject{Kind: service.SubjectCustomerID, Value: id.CustomerId}
	case *erasurev1.Subject_Email:
		return service.Subject{Kind: service.SubjectEmail, Value: id.Email}
	case *erasurev1.Subject_Phone:
		return service.Subject{Kind: service.SubjectPhone, Value: id.Phone}
	case *erasurev1.Subject_ConsumerId:
		return service.Subject{Kind: service.SubjectConsumerID, Value: id.ConsumerId}
	case *erasurev1.Subject_Targets:
		return service.Subject{Kind: service.SubjectTargets,
			ConversationIDs: id.Targets.GetConversationIds(), EngagementIDs: id.Targets.GetEngagementIds()}
	}
	return service.Subject{}
}

// aliasesFromProto converts the aliases of a SubmitRequest or a ResolvePreview.
func aliasesFromProto(in []*erasurev1.Subject) []service.Subject {
	var out []service.Subject
	for _, a := range in {
		out = append(out, subjectFromProto(a))
	}
	return out
}

func submitFromProto(r *erasurev1.SubmitRequest) service.SubmitRequest {
	out := service.SubmitRequest{
		RequestID:            r.GetRequestId(),
		AccountID:            r.GetAccountId(),
		Subject:              subjectFromProto(r.GetSubject()),
		EraseConsumerProfile: r.GetEraseConsumerProfile(),
		Confirmation:         service.Confirmation(r.GetConfirmation()),
		ExternalRef:          r.GetExternalRef(),
		Aliases:              aliasesFromProto(r.GetAliases()),
	}
	for _, c := range r.GetChannels() {
		out.Channels = append(out.Channels, service.Channel(c))
	}
	if r.GetReceivedTime() != nil {
		out.ReceivedTime, out.ReceivedTimeSet = r.GetReceivedTime().AsTime(), true
	}
	return out
}

func eventToProto(ev service.Event) *erasurev1.WatchEvent {
	e := ev.Erasure
	e.Revision = ev.Revision
	out := &erasurev1.WatchEvent{
		Revision:      int64(ev.Revision),
		Erasure:       toProto(e),
		PreviousState: erasurev1.State(ev.PreviousState),
		Time:          ts(ev.Time),
	}
	for _, s := range ev.Skipped {
		out.SkippedStates = append(out.SkippedStates, erasurev1.State(s))
	}
	return out
}

func planToProto(p service.Plan) *erasurev1.Plan {
	out := &erasurev1.Plan{
		PlanEtag:                 p.Etag,
		OpenConversationsHeld:    int32(p.OpenConversationsHeld),
		LivepersonRequestsNeeded: int32(p.LivePersonRequestsNeeded),
		IdentifierUnsearchable:   p.IdentifierUnsearchable,
	}
	for _, id := range p.Identifiers {
		out.Identifiers = append(out.Identifiers, &erasurev1.PlanIdentifier{
			Kind: erasurev1.SubjectKind(id.Kind), Fingerprint: id.Fingerprint, PossiblyUnsearchable: id.PossiblyUnsearchable,
		})
	}
	for _, g := range p.Groups {
		pg := &erasurev1.PlanGroup{Kind: erasurev1.TargetKind(g.Kind)}
		for _, r := range g.Records {
			pg.Records = append(pg.Records, &erasurev1.PlanRecord{Id: r.ID, Fingerprint: r.Fingerprint,
				Status: erasurev1.TargetStatus(r.Status), LivepersonRequestId: r.LPRequest})
		}
		out.Groups = append(out.Groups, pg)
	}
	return out
}
