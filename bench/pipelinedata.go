package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// A benchSubject is one data subject of the pipeline scenario, with the records the benchmark
// gave it, so that its targets — and from them the ideal — are known exactly.
type benchSubject struct {
	customerID string
	consumer   string   // participant id of its conversations ("" without conversations)
	profile    bool     // erase_consumer_profile: its consumer is a target too
	chats      []string // engagement ids
	convs      []string // conversation ids
}

// targets counts the subject's LivePerson records of each kind that erasured must delete.
func (s benchSubject) targets() map[service.TargetKind]int {
	out := map[service.TargetKind]int{service.KindEngagement: len(s.chats), service.KindConversation: len(s.convs)}
	if s.profile && s.consumer != "" {
		out[service.KindConsumer] = 1
	}
	return out
}

// benchSubjects adds n subjects' records to sim, all closed and searchable (ended at least two
// days before now, sim time), at most recordAge old so that they stay within LivePerson's
// retention while the simulator's clock runs through the benchmark:
//
//   - a fifth have no records at all (erasured must still search everything, then complete);
//   - the others 0–3 chats and 0–2 conversations (at least one record), and half of them ask for
//     the consumer profile, a consumer target when they have conversations.
//
// Customer ids are "PB-" and four letters: searchable in Messaging Interactions (no run of
// digits), and LivePerson's fuzzy search finds exactly the subject's own records (two subjects'
// codes are never prefixes of one another, and no generated record has a "pb" token).
func benchSubjects(sim *lpsim.Sim, account string, n int, seed uint64, now time.Time) ([]benchSubject, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0xbe0c4))
	const recordAge = 200 * 24 * time.Hour
	when := func() time.Time {
		return now.Add(-2*24*time.Hour - time.Duration(rng.Int64N(int64(recordAge)))).Truncate(time.Second)
	}
	codes := rng.Perm(int(math.Pow(26, 4)))
	subjects := make([]benchSubject, n)
	for i := range subjects {
		code := ""
		for c := codes[i]; len(code) < 4; c /= 26 {
			code += string(rune('A' + c%26))
		}
		s := benchSubject{customerID: "PB-" + code}
		email := "pb." + code + "@bench.example"
		chats, convs := 0, 0
		if rng.IntN(5) > 0 {
			chats, convs = rng.IntN(4), rng.IntN(3)
			if chats+convs == 0 {
				chats = 1
			}
			s.profile = rng.IntN(2) == 0
		}
		for range chats {
			start := when()
			c := lpsim.Chat{Account: account, VisitorID: fmt.Sprintf("pbvisitor%04d", i), Start: start,
				End: start.Add(12 * time.Minute), Ended: true, CustomerID: s.customerID, Name: "Pat", Surname: "Bench",
				Email: email, Lines: []string{"Hello, I am customer " + s.customerID + ".", "How can I help?"}}
			for {
				c.EngagementID = account + fmt.Sprintf("%010d", rng.Int64N(1e10))
				err := sim.AddChat(c)
				if err == nil {
					break
				}
				if err != lpsim.ErrExists {
					return nil, err
				}
			}
			s.chats = append(s.chats, c.EngagementID)
		}
		if convs > 0 {
			s.consumer = uuidFrom(rng)
		}
		for range convs {
			start := when()
			c := lpsim.Conversation{ID: uuidFrom(rng), Account: account, ConsumerID: s.consumer, Status: "CLOSE",
				Start: start, End: start.Add(30 * time.Minute), CustomerID: s.customerID, Name: "Pat", Surname: "Bench",
				Email: email, Messages: []string{"Hi, " + s.customerID + " here.", "What can I do for you?"}}
			if err := sim.AddConversation(c); err != nil {
				return nil, err
			}
			s.convs = append(s.convs, c.ID)
		}
		subjects[i] = s
	}
	return subjects, nil
}

func uuidFrom(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// erased reports how many of the subjects' records the simulator shows masked, and how many of
// the other (generated) records: every one of the first, none of the second.
func erased(sim *lpsim.Sim, account string, subjects []benchSubject, others lpsim.Dataset) (mine, total, wrong int) {
	for _, s := range subjects {
		for _, id := range s.chats {
			total++
			if c, ok := sim.Chat(id); !ok || c.CustomerID == lpsim.DeletedMarker {
				mine++
			}
		}
		for _, id := range s.convs {
			total++
			if c, ok := sim.Conversation(id); !ok || c.CustomerID == lpsim.DeletedMarker {
				mine++
			}
		}
		if s.profile && s.consumer != "" {
			total++
			if p, ok := sim.Consumer(account, s.consumer); !ok || p.Email == lpsim.DeletedMarker {
				mine++
			}
		}
	}
	for _, c := range others.Chats {
		if got, ok := sim.Chat(c.EngagementID); ok && got.CustomerID == lpsim.DeletedMarker && c.CustomerID != "" {
			wrong++
		}
	}
	for _, c := range others.Conversations {
		if got, ok := sim.Conversation(c.ID); ok && got.CustomerID == lpsim.DeletedMarker && c.CustomerID != "" {
			wrong++
		}
	}
	return mine, total, wrong
}
