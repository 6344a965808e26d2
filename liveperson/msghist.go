package liveperson

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode"
)

const (
	opMsgSearch     = "conversations.search"
	opMsgByConsumer = "conversations.byConsumer"
	opMsgByID       = "conversations.byId"
	// MaxConversationIDs bounds one by-id lookup.
	MaxConversationIDs = 100
	// MaxConversationIDsWithMessages is how many conversations one by-id
	// request asks for when it reads their messages: a hundred long
	// conversations could outgrow the response size limit.
	MaxConversationIDsWithMessages = 20
	contentMessages                = "messageRecords"
)

// SearchContent is the contentToRetrieve of searches and by-consumer reads:
// what the pipeline needs to match and delete, not whole transcripts.
// Unauthenticated attributes are named apart from sdes and come only with v=2.
var SearchContent = []string{"consumerParticipants", "sdes", "unAuthSdes"}

// ContentByID is the contentToRetrieve of by-id reads, which verify deletions
// and read explicit targets: the messages as well.
var ContentByID = []string{"consumerParticipants", "sdes", "unAuthSdes", "messageRecords"}

// ConversationQuery is one Messaging Interactions search.
type ConversationQuery struct {
	From, To time.Time // required; at most MaxConversationWindow apart once rounded
	// Status defaults to ["CLOSE"]; ["OPEN"] finds conversations not yet
	// deletable.
	Status []string
	// CustomerInfo and PersonalInfo are searched as phrases (sdeSearch, OR'ed).
	CustomerInfo string
	PersonalInfo string
	Content      []string // contentToRetrieve; default SearchContent
}

// Consumer is a consumer participant of a conversation.
type Consumer struct {
	ID                                string // participantId: the id a consumer deletion takes
	FirstName, LastName, Email, Phone string
}

// Conversation is a messaging conversation as Messaging Interactions returns it.
type Conversation struct {
	ConversationID string
	Status         string // "OPEN" or "CLOSE"
	Start, End     time.Time
	Partial        bool
	Consumers      []Consumer
	// Attributes holds the values of both sdes and unAuthSdes; Unauth those
	// of unAuthSdes alone.
	Attributes
	Unauth Attributes
	// ContentRead is true when messageRecords were asked for and the answer
	// carried them, even empty.
	ContentRead bool
	Messages    []Line
}

// ConsumerIDs returns the participant ids of the conversation's consumers.
func (c Conversation) ConsumerIDs() []string {
	ids := make([]string, 0, len(c.Consumers))
	for _, p := range c.Consumers {
		ids = append(ids, p.ID)
	}
	return ids
}

// Masked reports whether LivePerson has masked the conversation: its messages
// were read, and every consumer-authored message and every attribute value
// shows the deletion mask. A conversation read without its messages is never
// Masked.
func (c Conversation) Masked() bool { return contentMasked(c.ContentRead, c.Messages, c.Attributes) }

// PossiblyUnsearchable reports whether Messaging Interactions may fail to
// find v: attribute values "comprised of numbers" (no letter) with more than
// three consecutive digits cannot currently be searched. The search is sent
// anyway; the caller reports the identifier instead of trusting an empty
// answer.
func PossiblyUnsearchable(v string) bool {
	run, longRun := 0, false
	for _, r := range v {
		switch {
		case unicode.IsLetter(r):
			return false
		case unicode.IsDigit(r):
			if run++; run > 3 {
				longRun = true
			}
		default:
			run = 0
		}
	}
	return longRun
}

// SearchConversations returns every conversation matching q, all pages read.
// Matching is fuzzy: callers filter exactly. A value PossiblyUnsearchable is
// searched all the same.
func (c *Client) SearchConversations(ctx context.Context, account string, q ConversationQuery) ([]Conversation, error) {
	if err := checkWindow(ServiceMessaging, opMsgSearch, q.From, q.To, MaxConversationWindow); err != nil {
		return nil, err
	}
	content := orDefault(q.Content, SearchContent)
	m := map[string]any{"start": window(q.From, q.To), "status": orDefault(q.Status, []string{"CLOSE"}),
		"contentToRetrieve": content}
	sde := map[string]string{}
	for key, v := range map[string]string{"customerInfo": q.CustomerInfo, "personalInfo": q.PersonalInfo} {
		if v == "" {
			continue
		}
		p, err := quote(ServiceMessaging, opMsgSearch, v)
		if err != nil {
			return nil, err
		}
		sde[key] = p
	}
	if len(sde) > 0 {
		m["sdeSearch"] = sde
	}
	body, _ := json.Marshal(m)
	return c.conversationPages(ctx, account, opMsgSearch, "/conversations/search", body, content)
}

// ConversationsByConsumer returns the conversations of one consumer
// (participant id), no time window. Status defaults to ["CLOSE"], content to
// SearchContent.
func (c *Client) ConversationsByConsumer(ctx context.Context, account, consumerID string, status, content []string) ([]Conversation, error) {
	if consumerID == "" {
		return nil, invalid(ServiceMessaging, opMsgByConsumer, "consumer id required")
	}
	content = orDefault(content, SearchContent)
	body, _ := json.Marshal(map[string]any{"consumer": consumerID, "status": orDefault(status, []string{"CLOSE"}),
		"contentToRetrieve": content})
	return c.conversationPages(ctx, account, opMsgByConsumer, "/conversations/consumer/search", body, content)
}

// ConversationsByID reads up to 100 conversations by id, e.g. to verify a
// deletion; content defaults to ContentByID, messages included. Unknown ids
// are simply absent from the result. With messages, the ids are read
// MaxConversationIDsWithMessages at a time, so that an answer stays well
// under the response size limit.
func (c *Client) ConversationsByID(ctx context.Context, account string, ids []string, content []string) ([]Conversation, error) {
	uniq, err := uniqueIDs(ServiceMessaging, opMsgByID, ids, true)
	if err != nil {
		return nil, err
	}
	content = orDefault(content, ContentByID)
	messages := slices.Contains(content, contentMessages)
	chunk := MaxConversationIDs
	if messages {
		chunk = MaxConversationIDsWithMessages
	}
	var out []Conversation
	for part := range slices.Chunk(uniq, chunk) {
		got, err := c.conversationsByID(ctx, account, part, content, messages)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// conversationsByID reads one chunk of ids. The caller counts an id missing
// from the answer as gone, so an answer that says it holds more records than
// it returned is paged through by offset; if that brings nothing new (the
// by-id read does not page), the read fails as retryable rather than let
// missing conversations pass for erased.
func (c *Client) conversationsByID(ctx context.Context, account string, ids, content []string, messages bool) ([]Conversation, error) {
	body, _ := json.Marshal(map[string]any{"conversationIds": ids, "contentToRetrieve": content})
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	seen := map[string]bool{}
	var out []Conversation
	found := 0
	for offset := 0; ; {
		page, count, err := c.conversationPage(ctx, account, opMsgByID, "/conversations/conversation/search", body, offset, messages)
		if err != nil {
			return nil, err
		}
		fresh := 0
		for _, cv := range page {
			if seen[cv.ConversationID] {
				continue
			}
			seen[cv.ConversationID] = true
			out = append(out, cv)
			fresh++
			if want[cv.ConversationID] {
				found++
			}
		}
		offset += len(page)
		if len(out) > c.maxResults {
			return nil, &Error{Kind: KindTerminal, Service: ServiceMessaging, Op: opMsgByID, Reason: "too many results"}
		}
		if len(out) >= count || found == len(want) {
			return out, nil
		}
		if fresh == 0 {
			return nil, &Error{Kind: KindRetryable, Service: ServiceMessaging, Op: opMsgByID,
				Reason: "answer holds fewer records than it counts"}
		}
	}
}

// conversationPage reads one page of a Messaging Interactions method at offset. v=2 is what
// returns unauthenticated attributes; messages says whether messageRecords were asked for.
func (c *Client) conversationPage(ctx context.Context, account, op, path string, body []byte, offset int, messages bool) ([]Conversation, int, error) {
	var page []Conversation
	var count int
	err := c.do(ctx, request{
		service: ServiceMessaging, op: op, account: account, method: http.MethodPost,
		path: "/messaging_history/api/account/" + url.PathEscape(account) + path,
		query: url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(MaxPageSize)},
			"source": {c.source}, "v": {"2"}},
		body: body, contentType: "application/json",
		decode: func(_ int, b []byte) error {
			var err error
			page, count, err = decodeConversations(b, messages)
			return err
		},
	})
	return page, count, err
}

// conversationPages reads every page of a search; records LivePerson marks
// partial are re-read by id with the same content.
func (c *Client) conversationPages(ctx context.Context, account, op, path string, body []byte, content []string) ([]Conversation, error) {
	messages := slices.Contains(content, contentMessages)
	var out []Conversation
	for offset := 0; ; {
		page, count, err := c.conversationPage(ctx, account, op, path, body, offset, messages)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		offset += len(page)
		if len(out) > c.maxResults {
			return nil, &Error{Kind: KindTerminal, Service: ServiceMessaging, Op: op, Reason: "too many results; narrow the search"}
		}
		if len(page) == 0 || offset >= count {
			break
		}
	}
	// Partial records are re-read by id, in batches of the by-id limit.
	var partial []string
	at := map[string]int{}
	for i, cv := range out {
		if cv.Partial {
			partial = append(partial, cv.ConversationID)
			at[cv.ConversationID] = i
		}
	}
	for len(partial) > 0 {
		n := min(len(partial), MaxConversationIDs)
		full, err := c.rereadConversations(ctx, account, partial[:n], content)
		if err != nil {
			return nil, err
		}
		for _, cv := range full {
			out[at[cv.ConversationID]] = cv
		}
		partial = partial[n:]
	}
	return out, nil
}

func (c *Client) rereadConversations(ctx context.Context, account string, ids, content []string) ([]Conversation, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var got []Conversation
	for range partialRereads {
		recs, err := c.ConversationsByID(ctx, account, ids, content)
		if err != nil {
			return nil, err
		}
		got = got[:0]
		complete := true
		for _, r := range recs {
			if want[r.ConversationID] {
				got = append(got, r)
				complete = complete && !r.Partial
			}
		}
		if complete {
			return got, nil
		}
	}
	return nil, &Error{Kind: KindRetryable, Service: ServiceMessaging, Op: opMsgByID, Reason: "record stays partial"}
}

func orDefault(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return v
}

type mhResponse struct {
	Metadata metadata   `json:"_metadata"`
	Records  []mhRecord `json:"conversationHistoryRecords"`
}

type mhRecord struct {
	Info *struct {
		ConversationID flexString `json:"conversationId"`
		Status         flexString `json:"status"`
		StartTimeL     millis     `json:"startTimeL"`
		EndTimeL       millis     `json:"endTimeL"`
		IsPartial      bool       `json:"isPartial"`
	} `json:"info"`
	// The docs' example spells the array consumerParticipant; tables and
	// real clients say consumerParticipants. Both are read.
	ConsumerParticipants participants    `json:"consumerParticipants"`
	ConsumerParticipant  participants    `json:"consumerParticipant"`
	SDEs                 *sdes           `json:"sdes"`
	UnAuthSDEs           *sdes           `json:"unAuthSdes"`
	MessageRecords       json.RawMessage `json:"messageRecords"`
}

type participant struct {
	ParticipantID flexString `json:"participantId"`
	FirstName     flexString `json:"firstName"`
	LastName      flexString `json:"lastName"`
	Email         flexString `json:"email"`
	Phone         flexString `json:"phone"`
}

// participants accepts an array of participants or a single object.
type participants []participant

func (p *participants) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var one participant
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*p = participants{one}
		return nil
	}
	var many []participant
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*p = many
	return nil
}

// decodeConversations decodes one Messaging Interactions page. messages says
// whether messageRecords were asked for: only then does a record's
// messageRecords count as its content read (an answer carrying more than was
// asked for is not trusted to be complete).
func decodeConversations(b []byte, messages bool) ([]Conversation, int, error) {
	var r mhResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, 0, err
	}
	if r.Metadata.partial() {
		return nil, 0, errPartial
	}
	out := make([]Conversation, 0, len(r.Records))
	for _, rec := range r.Records {
		if rec.Info == nil || rec.Info.ConversationID == "" {
			return nil, 0, errMissingID
		}
		unauth := rec.UnAuthSDEs.attributes()
		cv := Conversation{
			ConversationID: string(rec.Info.ConversationID), Status: string(rec.Info.Status),
			Start: rec.Info.StartTimeL.time(), End: rec.Info.EndTimeL.time(), Partial: rec.Info.IsPartial,
			Attributes: rec.SDEs.attributes().merge(unauth), Unauth: unauth,
		}
		for _, p := range append(rec.ConsumerParticipants, rec.ConsumerParticipant...) {
			if p.ParticipantID == "" {
				continue
			}
			cv.Consumers = append(cv.Consumers, Consumer{ID: string(p.ParticipantID), FirstName: string(p.FirstName),
				LastName: string(p.LastName), Email: string(p.Email), Phone: string(p.Phone)})
		}
		cv.Messages, cv.ContentRead = messageLines(rec.MessageRecords, cv.ConsumerIDs())
		cv.ContentRead = cv.ContentRead && messages
		out = append(out, cv)
	}
	return out, max(r.Metadata.Count, len(out)), nil
}
