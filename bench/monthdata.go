package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// The month scenario's arrivals: a calendar month (UTC, 30 days) of data subjects, each with the
// records the simulator will hold for it, made when it arrives and not before.
var monthStart = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

const (
	monthLength = 30 * 24 * time.Hour
	// A share of the subjects arrives in bursts, all at the same minute, on burstDays days of
	// the month; the others arrive as a Poisson process over the whole month.
	burstDays  = 3
	burstShare = 0.3
	// Each subject has 1 to maxRecords records, each a chat or a conversation with even odds;
	// one subject in profileOdds asks for its consumer profile too (erase_consumer_profile),
	// which is a record to delete when it has conversations.
	maxRecords  = 20
	profileOdds = 3
)

// monthSubject is one data subject of the month scenario: who it is and its records (the
// benchSubject), when it arrives, and the records' start times before that arrival.
type monthSubject struct {
	benchSubject
	arrive    time.Duration   // after monthStart
	burst     bool            // arrives in one of the bursts
	chatAges  []time.Duration // start of each chat before arrival
	convAges  []time.Duration
	profileOf string // the consumer profile to create ("" when not asked for or no conversations)
}

// monthDemand is a month of arrivals at one demand level.
type monthDemand struct {
	Level    float64 // asked for: the share of the quota's carrying capacity
	Quota    int     // monthly quota of deletion requests
	Subjects []monthSubject
	Targets  map[service.TargetKind]int // records to delete, per kind
	// Ideal is the fewest requests that hold every record and send each by its erasure's latest
	// safe submit time (deadlineIdeal, summed over the kinds): what demand is measured by.
	// IdsOnly is ceil(ids/100) per kind, summed: deadlines aside, and not reachable without
	// missing them.
	Ideal, IdsOnly int
	Bursts         []time.Duration // when each burst arrives, after monthStart
}

// MaxIDsPerRequest is LivePerson's bound on the ids of one deletion request.
const MaxIDsPerRequest = 100

// monthArrivals draws subjects, each with its arrival, until one more would make the month need
// more than level × quota requests at the deadline ideal. The same seed and arguments give the
// same arrivals, and a lower level a prefix of a higher one's draw.
func monthArrivals(seed uint64, quota int, level float64) monthDemand {
	rng := rand.New(rand.NewPCG(seed, seed^0x3017))
	target := max(1, int(math.Round(level*float64(quota))))
	d := monthDemand{Level: level, Quota: quota}

	// Bursts on distinct days between the 3rd and the 25th, at a random minute of the day, so
	// that their deadlines fall within the run and their work within the month's quota.
	days := rng.Perm(23)[:burstDays]
	for _, day := range days {
		at := time.Duration(day+2)*24*time.Hour + time.Duration(rng.IntN(24*60))*time.Minute
		d.Bursts = append(d.Bursts, at)
	}
	slices.Sort(d.Bursts)
	codes := rng.Perm(int(math.Pow(26, 4)))
	draw := func() monthSubject {
		s := drawMonthSubject(rng, codes[len(d.Subjects)])
		if rng.Float64() < burstShare {
			s.burst, s.arrive = true, d.Bursts[rng.IntN(burstDays)]
		} else {
			// Given their number, the arrival times of a Poisson process are independent and
			// uniform over the month.
			s.arrive = time.Duration(rng.Int64N(int64(monthLength)))
		}
		return s
	}
	// The ideal only grows as subjects are added: draw by doubling until it passes the target,
	// then find the longest prefix within it.
	ideal := func(n int) int { dl, _ := idealOf(d.Subjects[:n], nil); return sumKinds(dl) }
	for n := 8; ; n *= 2 {
		for len(d.Subjects) < n && len(d.Subjects) < len(codes) {
			d.Subjects = append(d.Subjects, draw())
		}
		if ideal(len(d.Subjects)) > target || len(d.Subjects) == len(codes) {
			break
		}
	}
	lo, hi := 0, len(d.Subjects) // ideal(lo) ≤ target < ideal(hi), or hi is all
	if ideal(hi) <= target {
		lo = hi
	}
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; ideal(mid) <= target {
			lo = mid
		} else {
			hi = mid
		}
	}
	d.Subjects = d.Subjects[:lo]
	dl, ids := idealOf(d.Subjects, nil)
	d.Ideal, d.IdsOnly = sumKinds(dl), sumKinds(ids)
	d.Targets = map[service.TargetKind]int{}
	for _, s := range d.Subjects {
		for k, n := range s.targets() {
			d.Targets[k] += n
		}
	}
	slices.SortStableFunc(d.Subjects, func(a, b monthSubject) int { return int(a.arrive - b.arrive) })
	return d
}

// drawMonthSubject draws a subject's records. Customer ids are "PM-" and four letters,
// searchable everywhere and never a prefix of another's (as the pipeline scenario's).
func drawMonthSubject(rng *rand.Rand, code int) monthSubject {
	id := ""
	for c := code; len(id) < 4; c /= 26 {
		id += string(rune('A' + c%26))
	}
	s := monthSubject{benchSubject: benchSubject{customerID: "PM-" + id}}
	n := 1 + rng.IntN(maxRecords)
	// Ages: closed between a day and 300 days before arrival, within LivePerson's 13 months of
	// retention until the run's end.
	age := func() time.Duration {
		return 24*time.Hour + time.Duration(rng.Int64N(int64(300*24*time.Hour))).Truncate(time.Second)
	}
	for range n {
		if rng.IntN(2) == 0 {
			s.chatAges = append(s.chatAges, age())
			s.chats = append(s.chats, "")
		} else {
			s.convAges = append(s.convAges, age())
			s.convs = append(s.convs, "")
		}
	}
	s.profile = rng.IntN(profileOdds) == 0
	if len(s.convs) > 0 {
		s.consumer = uuidFrom(rng)
		if s.profile {
			s.profileOf = s.consumer
		}
	}
	// Record ids are drawn now, so that every policy's run sees the same ones.
	for j := range s.chats {
		s.chats[j] = fmt.Sprintf("%s%010d", monthAccount, rng.Int64N(1e10))
	}
	for j := range s.convs {
		s.convs[j] = uuidFrom(rng)
	}
	return s
}

// create adds the subject's records to sim, relative to now (its arrival).
func (s *monthSubject) create(sim *lpsim.Sim, now time.Time) error {
	email := "pm." + s.customerID[3:] + "@bench.example"
	for j, id := range s.chats {
		start := now.Add(-s.chatAges[j])
		err := sim.AddChat(lpsim.Chat{Account: monthAccount, EngagementID: id, VisitorID: "pmvisitor" + s.customerID[3:],
			Start: start, End: start.Add(12 * time.Minute), Ended: true, CustomerID: s.customerID, Name: "Pat",
			Surname: "Month", Email: email, Lines: []string{"Hello, I am customer " + s.customerID + ".", "How can I help?"}})
		if err != nil {
			return fmt.Errorf("chat: %w", err)
		}
	}
	for j, id := range s.convs {
		start := now.Add(-s.convAges[j])
		err := sim.AddConversation(lpsim.Conversation{ID: id, Account: monthAccount, ConsumerID: s.consumer, Status: "CLOSE",
			Start: start, End: start.Add(30 * time.Minute), CustomerID: s.customerID, Name: "Pat", Surname: "Month",
			Email: email, Messages: []string{"Hi, " + s.customerID + " here.", "What can I do for you?"}})
		if err != nil {
			return fmt.Errorf("conversation: %w", err)
		}
	}
	if s.profileOf != "" {
		sim.AddConsumer(lpsim.ConsumerProfile{ID: s.profileOf, Account: monthAccount, FirstName: "Pat", LastName: "Month", Email: email})
	}
	return nil
}
