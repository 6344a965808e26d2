package liveperson_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/google/go-cmp/cmp"
)

const byIDPath = "/messaging_history/api/account/" + acct + "/conversations/conversation/search"

// maskedConversation is one conversation whose messages and attributes all
// show the deletion mask.
func maskedConversation(id string) string {
	m := liveperson.DeletedMarker
	return `{"info":{"conversationId":"` + id + `","status":"CLOSE"},"consumerParticipants":[{"participantId":"p-1"}],` +
		`"sdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"` + m + `"}}}]},` +
		`"messageRecords":[{"sentBy":"Consumer","messageData":{"msg":{"text":"` + m + `"}}}]}`
}

func mhAnswer(count int, records ...string) string {
	return `{"_metadata":{"count":` + strconv.Itoa(count) + `},"conversationHistoryRecords":[` +
		strings.Join(records, ",") + `]}`
}

// TestContentReadOnlyWhenAsked: messageRecords in an answer count as the
// conversation's content only when they were asked for; an answer carrying
// them unasked is not trusted to hold them all.
func TestContentReadOnlyWhenAsked(t *testing.T) {
	_, c := newRecorder(t, func(recorded) string { return mhAnswer(1, maskedConversation("c-1")) })
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		read         func() ([]liveperson.Conversation, error)
		contentRead  bool
		wantedMasked bool
	}{
		{"search", func() ([]liveperson.Conversation, error) {
			return c.SearchConversations(ctx, acct, liveperson.ConversationQuery{From: t0.Add(-24 * time.Hour), To: t0, CustomerInfo: "C-1"})
		}, false, false},
		{"by consumer", func() ([]liveperson.Conversation, error) {
			return c.ConversationsByConsumer(ctx, acct, "p-1", nil, nil)
		}, false, false},
		{"by id without messages", func() ([]liveperson.Conversation, error) {
			return c.ConversationsByID(ctx, acct, []string{"c-1"}, []string{"consumerParticipants", "sdes"})
		}, false, false},
		{"by id with messages", func() ([]liveperson.Conversation, error) {
			return c.ConversationsByID(ctx, acct, []string{"c-1"}, nil)
		}, true, true},
	} {
		got, err := tc.read()
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %+v, %v", tc.name, got, err)
		}
		if got[0].ContentRead != tc.contentRead || got[0].Masked() != tc.wantedMasked {
			t.Errorf("%s: ContentRead, Masked() = %v, %v; want %v, %v", tc.name, got[0].ContentRead, got[0].Masked(),
				tc.contentRead, tc.wantedMasked)
		}
	}
}

// TestConversationsByIDCount: a missing conversation is taken for erased, so
// an answer counting more records than it holds is paged through by offset,
// and fails as retryable when paging brings nothing new.
func TestConversationsByIDCount(t *testing.T) {
	ctx := context.Background()
	ids := []string{"c-1", "c-2"}
	for _, tc := range []struct {
		name   string
		answer func(offset int) string
		want   []string // nil: a retryable error
		calls  int
	}{
		{"complete", func(int) string { return mhAnswer(2, maskedConversation("c-1"), maskedConversation("c-2")) },
			ids, 1},
		{"one missing, count agrees", func(int) string { return mhAnswer(1, maskedConversation("c-1")) },
			[]string{"c-1"}, 1},
		{"no count", func(int) string { return `{"conversationHistoryRecords":[` + maskedConversation("c-1") + `]}` },
			[]string{"c-1"}, 1},
		{"paged by offset", func(offset int) string {
			return mhAnswer(2, maskedConversation(ids[min(offset, 1)]))
		}, ids, 2},
		{"truncated, offset ignored", func(int) string { return mhAnswer(2, maskedConversation("c-1")) }, nil, 2},
		{"truncated, nothing more", func(offset int) string {
			if offset > 0 {
				return mhAnswer(2)
			}
			return mhAnswer(2, maskedConversation("c-1"))
		}, nil, 2},
		{"counted more than asked, all there", func(int) string {
			return mhAnswer(5, maskedConversation("c-1"), maskedConversation("c-2"))
		}, ids, 1},
	} {
		rec, c := newRecorder(t, func(r recorded) string {
			offset, _ := strconv.Atoi(r.Query.Get("offset"))
			return tc.answer(offset)
		})
		got, err := c.ConversationsByID(ctx, acct, ids, nil)
		if tc.want == nil {
			if liveperson.KindOf(err) != liveperson.KindRetryable || !strings.Contains(err.Error(), "fewer records") {
				t.Errorf("%s: %+v, %v; want a retryable error", tc.name, got, err)
			}
		} else {
			var gotIDs []string
			for _, cv := range got {
				gotIDs = append(gotIDs, cv.ConversationID)
			}
			if err != nil || !cmp.Equal(gotIDs, tc.want) {
				t.Errorf("%s: %v, %v; want %v", tc.name, gotIDs, err, tc.want)
			}
		}
		calls := rec.Calls()
		if len(calls) != tc.calls {
			t.Errorf("%s: %d calls, want %d", tc.name, len(calls), tc.calls)
		}
		for i, call := range calls {
			if q := call.Query; call.Path != byIDPath || q.Get("offset") != strconv.Itoa(i) || q.Get("limit") != "100" {
				t.Errorf("%s: call %d = %s?%s, want offset %d and limit 100", tc.name, i, call.Path, q.Encode(), i)
			}
		}
	}
}

// TestConversationsByIDChunks: a by-id read with messages asks for at most
// 20 conversations at a time, so that a hundred long conversations do not
// outgrow the response size limit; without messages, 100 at a time.
func TestConversationsByIDChunks(t *testing.T) {
	rec, c := newRecorder(t, func(r recorded) string {
		var body struct {
			IDs []string `json:"conversationIds"`
		}
		_ = json.Unmarshal([]byte(r.Body), &body)
		var recs []string
		for _, id := range body.IDs {
			recs = append(recs, maskedConversation(id))
		}
		return mhAnswer(len(recs), recs...)
	})
	ids := make([]string, 45)
	for i := range ids {
		ids[i] = fmt.Sprintf("c-%02d", i)
	}
	for _, tc := range []struct {
		name    string
		content []string
		sizes   []int
	}{
		{"with messages", nil, []int{20, 20, 5}},
		{"without messages", []string{"consumerParticipants", "sdes"}, []int{45}},
	} {
		before := len(rec.Calls())
		got, err := c.ConversationsByID(context.Background(), acct, ids, tc.content)
		if err != nil || len(got) != len(ids) {
			t.Fatalf("%s: %d conversations, %v; want %d", tc.name, len(got), err, len(ids))
		}
		var sizes []int
		var asked []string
		for _, call := range rec.Calls()[before:] {
			var body struct {
				IDs []string `json:"conversationIds"`
			}
			_ = json.Unmarshal([]byte(call.Body), &body)
			sizes = append(sizes, len(body.IDs))
			asked = append(asked, body.IDs...)
		}
		if !cmp.Equal(sizes, tc.sizes) || !cmp.Equal(asked, ids) {
			t.Errorf("%s: requests of %v ids (%d asked), want %v covering all", tc.name, sizes, len(asked), tc.sizes)
		}
	}
}
