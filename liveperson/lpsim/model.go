package lpsim

import (
	"errors"
	"slices"
	"time"
)

// DeletedMarker replaces deleted content, as LivePerson writes it.
const DeletedMarker = "*** LP deleted data ***"

// Authors of transcript lines and messages.
const (
	AuthorConsumer = "consumer"
	AuthorAgent    = "agent"
	AuthorSystem   = "system"
)

// Kinds of a conversation's message (Line.Kind). A chat transcript line is
// always text: Engagement History sends its Text whatever the kind.
const (
	// KindText is a plain message: messageData.msg.text.
	KindText = ""
	// KindRich is structured content, messageData.richContent: Text is shown
	// as a button's title and link (no text field anywhere).
	KindRich = "rich"
	// KindFile is a hosted file, messageData.file: Path is its relativePath
	// and Text its caption, sent only when not empty.
	KindFile = "file"
)

// Line is one line of a chat transcript or one message of a conversation,
// with who wrote it: a partial masking keeps agent and system lines. Masking
// replaces the whole content of a line, rich content and files included,
// by the mask text: a masked line is a text line.
type Line struct {
	Author string // AuthorConsumer, AuthorAgent or AuthorSystem
	Text   string
	Kind   string // KindText (default), KindRich or KindFile
	Path   string // KindFile: the file's relativePath
}

// Alternating returns lines written in turn by the consumer and the agent,
// the consumer first: the short way to build a transcript.
func Alternating(texts ...string) []Line {
	out := make([]Line, len(texts))
	for i, t := range texts {
		out[i] = Line{Author: AuthorConsumer, Text: t}
		if i%2 == 1 {
			out[i].Author = AuthorAgent
		}
	}
	return out
}

// Chat is a chat engagement (Engagement History).
type Chat struct {
	EngagementID string // account id followed by the chat session id
	Account      string
	VisitorID    string
	Start, End   time.Time
	Ended        bool
	// customerInfo and personalInfo engagement attributes.
	CustomerID    string
	Name, Surname string
	Email, Phone  string
	// PersonalInfoShape serves this chat's personalInfo in one shape
	// (ShapeNested, ShapeFlat, ShapeDirect) whatever the variant says; ""
	// follows the variant.
	PersonalInfoShape string
	Transcript        []Line
	// Lines are transcript texts written in turn by the consumer and the
	// agent (see Alternating). Adding the chat appends them to Transcript and
	// empties Lines, so a stored chat has one transcript.
	Lines []string
}

// Conversation is a messaging conversation (Messaging Interactions).
type Conversation struct {
	ID            string // UUID
	Account       string
	ConsumerID    string // participantId of the consumer
	Status        string // "OPEN" or "CLOSE"
	Start, End    time.Time
	CustomerID    string
	Name, Surname string
	Email, Phone  string
	// Unauthenticated attributes are served in unAuthSdes (only to v=2
	// requests) instead of sdes.
	Unauthenticated   bool
	PersonalInfoShape string // as Chat.PersonalInfoShape
	Transcript        []Line
	// Messages are message texts written in turn by the consumer and the
	// agent; adding the conversation appends them to Transcript, as
	// Chat.Lines.
	Messages []string
}

// ConsumerProfile is the consumer-level personal data a consumer deletion masks.
type ConsumerProfile struct {
	ID                  string
	Account             string
	FirstName, LastName string
	Email, Phone        string
}

// Dataset is a set of records to Load into a simulator.
type Dataset struct {
	Chats         []Chat
	Conversations []Conversation
	Consumers     []ConsumerProfile
}

// Errors of the inspection methods.
var (
	ErrNotFound = errors.New("lpsim: no such record")
	ErrExists   = errors.New("lpsim: record exists")
)

// Load adds every record of d.
func (s *Sim) Load(d Dataset) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range d.Chats {
		if err := s.addChat(c); err != nil {
			return err
		}
	}
	for _, c := range d.Conversations {
		if err := s.addConversation(c); err != nil {
			return err
		}
	}
	for _, p := range d.Consumers {
		s.consumers[p.Account+"/"+p.ID] = &p
	}
	return nil
}

// AddChat adds one chat.
func (s *Sim) AddChat(c Chat) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addChat(c)
}

func (s *Sim) addChat(c Chat) error {
	if _, ok := s.chats[c.EngagementID]; ok || c.EngagementID == "" {
		return ErrExists
	}
	c.Transcript = append(slices.Clone(c.Transcript), Alternating(c.Lines...)...)
	c.Lines = nil
	s.chats[c.EngagementID] = &c
	s.chatOrder = append(s.chatOrder, &c)
	s.chatsSorted = false
	return nil
}

// AddConversation adds one conversation (and a bare consumer profile if none).
func (s *Sim) AddConversation(c Conversation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addConversation(c)
}

func (s *Sim) addConversation(c Conversation) error {
	if _, ok := s.convs[c.ID]; ok || c.ID == "" {
		return ErrExists
	}
	if c.Status == "" {
		c.Status = "CLOSE"
	}
	c.Transcript = append(slices.Clone(c.Transcript), Alternating(c.Messages...)...)
	c.Messages = nil
	s.convs[c.ID] = &c
	s.convOrder = append(s.convOrder, &c)
	s.convsSorted = false
	if _, ok := s.consumers[c.Account+"/"+c.ConsumerID]; !ok && c.ConsumerID != "" {
		s.consumers[c.Account+"/"+c.ConsumerID] = &ConsumerProfile{ID: c.ConsumerID, Account: c.Account,
			FirstName: c.Name, LastName: c.Surname, Email: c.Email, Phone: c.Phone}
	}
	return nil
}

// AddConsumer adds or replaces a consumer profile.
func (s *Sim) AddConsumer(p ConsumerProfile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consumers[p.Account+"/"+p.ID] = &p
}

// CloseConversation closes an open conversation now (sim clock).
func (s *Sim) CloseConversation(id string) error {
	return s.UpdateConversation(id, func(c *Conversation) {
		c.Status, c.End = "CLOSE", s.clock.Now()
	})
}

// UpdateChat changes a chat in place (attributes, times, ...).
func (s *Sim) UpdateChat(id string, fn func(*Chat)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.chats[id]
	if !ok {
		return ErrNotFound
	}
	fn(c)
	c.Transcript, c.Lines = append(c.Transcript, Alternating(c.Lines...)...), nil
	s.chatsSorted = false
	return nil
}

// UpdateConversation changes a conversation in place.
func (s *Sim) UpdateConversation(id string, fn func(*Conversation)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.convs[id]
	if !ok {
		return ErrNotFound
	}
	fn(c)
	c.Transcript, c.Messages = append(c.Transcript, Alternating(c.Messages...)...), nil
	s.convsSorted = false
	return nil
}

// Chat returns a copy of a chat, after applying any deletion now due.
func (s *Sim) Chat(id string) (Chat, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	c, ok := s.chats[id]
	if !ok {
		return Chat{}, false
	}
	out := *c
	out.Transcript = slices.Clone(c.Transcript)
	return out, true
}

// Conversation returns a copy of a conversation, after applying any deletion
// now due.
func (s *Sim) Conversation(id string) (Conversation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	c, ok := s.convs[id]
	if !ok {
		return Conversation{}, false
	}
	out := *c
	out.Transcript = slices.Clone(c.Transcript)
	return out, true
}

// Consumer returns a copy of a consumer profile.
func (s *Sim) Consumer(account, id string) (ConsumerProfile, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	p, ok := s.consumers[account+"/"+id]
	if !ok {
		return ConsumerProfile{}, false
	}
	return *p, true
}

// Counts returns how many chats and conversations are loaded.
func (s *Sim) Counts() (chats, conversations int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.chats), len(s.convs)
}

func maskAll(vals ...*string) {
	for _, v := range vals {
		if *v != "" {
			*v = DeletedMarker
		}
	}
}

// maskTranscript masks what a DONE deletion masks of a transcript: every
// line, or in the partial reading only the consumer's lines.
func (s *Sim) maskTranscript(lines []Line) {
	for i := range lines {
		if s.cfg.Variants.Masking == MaskPartial && lines[i].Author != AuthorConsumer {
			continue
		}
		lines[i] = Line{Author: lines[i].Author, Text: DeletedMarker}
	}
}
