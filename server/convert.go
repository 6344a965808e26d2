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
	}
	for _, c := range e.Channels {
		out.Channels = append(out.Channels, erasurev1.Channel(c))
	}
	for _, r := range e.LPRequests {
		out.LivepersonRequests = append(out.LivepersonRequests, &erasurev1.LivePersonRequest{
			RequestId: r.ID, Kind: erasurev1.TargetKind(r.Kind), Status: r.Status, RecordCount: r.RecordCount,
		})
	}
	if r := e.Receipt; r != nil {
		out.Receipt = &erasurev1.Receipt{
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
		}
	}
	return out
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

func submitFromProto(r *erasurev1.SubmitRequest) service.SubmitRequest {
	out := service.SubmitRequest{
		RequestID:            r.GetRequestId(),
		AccountID:            r.GetAccountId(),
		Subject:              subjectFromProto(r.GetSubject()),
		EraseConsumerProfile: r.GetEraseConsumerProfile(),
		Confirmation:         service.Confirmation(r.GetConfirmation()),
		ExternalRef:          r.GetExternalRef(),
	}
	for _, c := range r.GetChannels() {
		out.Channels = append(out.Channels, service.Channel(c))
	}
	if r.GetReceivedTime() != nil {
		out.ReceivedTime = r.GetReceivedTime().AsTime()
	}
	return out
}

func eventToProto(ev service.Event) *erasurev1.WatchEvent {
	e := ev.Erasure
	e.Revision = ev.Revision
	return &erasurev1.WatchEvent{
		Revision:      int64(ev.Revision),
		Erasure:       toProto(e),
		PreviousState: erasurev1.State(ev.PreviousState),
		Time:          ts(ev.Time),
	}
}

func planToProto(p service.Plan) *erasurev1.Plan {
	out := &erasurev1.Plan{
		PlanEtag:                 p.Etag,
		OpenConversationsHeld:    int32(p.OpenConversationsHeld),
		LivepersonRequestsNeeded: int32(p.LivePersonRequestsNeeded),
		IdentifierUnsearchable:   p.IdentifierUnsearchable,
	}
	for _, g := range p.Groups {
		pg := &erasurev1.PlanGroup{Kind: erasurev1.TargetKind(g.Kind)}
		for _, r := range g.Records {
			pg.Records = append(pg.Records, &erasurev1.PlanRecord{Id: r.ID, Status: erasurev1.TargetStatus(r.Status), LivepersonRequestId: r.LPRequest})
		}
		out.Groups = append(out.Groups, pg)
	}
	return out
}
