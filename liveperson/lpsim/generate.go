package lpsim

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// The demo subjects Generate adds (Options.Demo) for the sandbox: all their
// chats and conversations are closed and searchable, except one open
// conversation of the second subject. A near-miss neighbour shares the first
// subject's surname and almost her ids, so that exact filtering shows. The
// hidden subject's records are found only by a client that reads every
// documented shape: her chat's e-mail is in the flat personalInfo form, one
// conversation carries only unauthenticated attributes and another none at
// all (found through her consumer id). The numeric subject's customer id
// cannot be searched in Messaging Interactions; her e-mail can. The first
// subject's conversations each hold one message that is not plain text: her
// e-mail in rich content, and a hosted file.
const (
	DemoAccount = "1234"

	DemoCustomerID = "DEMO-CUST-1"
	DemoEmail      = "jane.doe@example.com"
	DemoConsumerID = "d3m0c0n5-0000-4000-8000-000000000001"

	DemoOpenCustomerID = "DEMO-CUST-2" // has one open conversation
	DemoOpenEmail      = "john.smith@example.com"
	DemoOpenConsumerID = "d3m0c0n5-0000-4000-8000-000000000002"

	DemoNearMissCustomerID = "DEMO-CUST-10"
	DemoNearMissEmail      = "jane.doe@example.org"
	DemoNearMissConsumerID = "d3m0c0n5-0000-4000-8000-000000000010"

	DemoHiddenCustomerID = "DEMO-CUST-3"
	DemoHiddenEmail      = "ada.lovelace@example.com"
	DemoHiddenConsumerID = "d3m0c0n5-0000-4000-8000-000000000003"

	DemoNumericCustomerID = "20240117"
	DemoNumericEmail      = "numeric.person@example.com"
	DemoNumericConsumerID = "d3m0c0n5-0000-4000-8000-000000000004"
)

// GenOptions shape Generate's dataset.
type GenOptions struct {
	Now       time.Time // the simulator's now; default time.Now()
	Accounts  []string  // default [DemoAccount]
	Consumers int       // per account; default 2000
	Demo      bool      // add the demo subjects to the first account
	// Unauthenticated is the share of conversations whose attributes are
	// unauthenticated (Variants.UnauthShare); one in 25 is, whatever it says.
	Unauthenticated float64
}

var (
	firstNames = []string{"Jane", "John", "Maria", "Ahmed", "Wei", "Olga", "Liam", "Emma", "Noah", "Ava", "Lucas",
		"Mia", "Ethan", "Sofia", "Mateo", "Chloe", "Arjun", "Yuki", "Fatima", "Oliver", "Amara", "Jan", "Janet", "Jon"}
	surnames = []string{"Doe", "Smith", "Nguyen", "Garcia", "Kowalski", "Brown", "Khan", "Chen", "Müller",
		"Rossi", "Silva", "Jones", "Taylor", "Lee", "Patel", "Martin"}
	domains  = []string{"example.com", "example.org", "mail.test", "corp.example"}
	prefixes = []string{"ABC", "CUST", "XK", "AC"}
)

// Generate builds a deterministic dataset: per account, Consumers people with
// chats and conversations spread over 13 months (and a few older, beyond
// retention), shared surnames, near-miss customer ids (ABC-123 / ABC-1234),
// numeric ids Messaging Interactions cannot search, open conversations and
// chats still running, chats whose personalInfo is flat, conversations with
// unauthenticated attributes only, later conversations of a consumer that
// carry no attribute at all, and consumer messages in rich content or hosted
// files.
func Generate(seed uint64, o GenOptions) Dataset {
	if o.Now.IsZero() {
		o.Now = time.Now().UTC()
	}
	if len(o.Accounts) == 0 {
		o.Accounts = []string{DemoAccount}
	}
	if o.Consumers <= 0 {
		o.Consumers = 2000
	}
	g := &gen{rng: rand.New(rand.NewPCG(seed, seed^0xda7a)), content: rand.New(rand.NewPCG(seed, seed^0xc047e47)),
		now: o.Now, used: map[string]bool{}, unauth: o.Unauthenticated}
	var d Dataset
	for i, acct := range o.Accounts {
		if o.Demo && i == 0 {
			g.demo(&d, acct)
		}
		var ids []string
		for range o.Consumers {
			p := g.person(acct, ids)
			ids = append(ids, p.customerID)
			g.records(&d, p, g.rng.IntN(4), g.rng.IntN(4))
		}
	}
	return d
}

type gen struct {
	rng *rand.Rand
	// content draws the rich and file messages apart from rng, so that a
	// seed's records stay what they were before those messages existed.
	content *rand.Rand
	now     time.Time
	used    map[string]bool
	unauth  float64 // share of unauthenticated conversations
}

type person struct {
	account, customerID, first, last, email, phone, visitor, consumer string
}

func (g *gen) pick(list []string) string { return list[g.rng.IntN(len(list))] }

func (g *gen) person(acct string, earlier []string) person {
	p := person{account: acct, first: g.pick(firstNames), last: g.pick(surnames)}
	switch n := g.rng.IntN(100); {
	case n < 8 && len(earlier) > 0:
		p.customerID = earlier[g.rng.IntN(len(earlier))] + fmt.Sprint(g.rng.IntN(10)) // near miss
	case n < 50:
		p.customerID = fmt.Sprintf("%s-%d", g.pick(prefixes), g.rng.IntN(99990)+10)
	case n < 70:
		p.customerID = fmt.Sprint(100000 + g.rng.IntN(899999999)) // numeric: unsearchable in msgHist
	default:
		p.customerID = fmt.Sprintf("%d%s", g.rng.IntN(999), string(rune('A'+g.rng.IntN(26)))+string(rune('A'+g.rng.IntN(26))))
	}
	local := fmt.Sprintf("%s.%s", p.first, p.last)
	if g.rng.IntN(3) == 0 {
		local += fmt.Sprint(g.rng.IntN(99))
	}
	p.email = toLowerASCII(local) + "@" + g.pick(domains)
	p.phone = fmt.Sprintf("+44 7700 9%05d", g.rng.IntN(100000))
	p.visitor = g.hex(12)
	p.consumer = g.uuid()
	return p
}

// records adds chats and conversations of one person at random times.
func (g *gen) records(d *Dataset, p person, chats, convs int) {
	span := 410 * 24 * time.Hour // a little beyond 13 months: some fall out of retention
	for range chats {
		start := g.now.Add(-time.Duration(g.rng.Int64N(int64(span)))).Add(-10 * time.Minute).Truncate(time.Second)
		end := start.Add(time.Duration(3+g.rng.IntN(40)) * time.Minute)
		c := g.chat(p, start, end)
		c.Ended = end.Before(g.now) && g.rng.IntN(50) != 0
		if g.rng.IntN(7) == 0 { // some chats carry no personalInfo
			c.Name, c.Surname, c.Email, c.Phone = "", "", "", ""
		}
		if g.rng.IntN(20) == 0 { // and some carry it flat, whatever the variant
			c.PersonalInfoShape = ShapeFlat
		}
		d.Chats = append(d.Chats, c)
	}
	for i := range convs {
		start := g.now.Add(-time.Duration(g.rng.Int64N(int64(span)))).Add(-10 * time.Minute).Truncate(time.Second)
		cv := g.conversation(p, start, start.Add(time.Duration(5+g.rng.IntN(120))*time.Minute))
		if g.rng.IntN(30) == 0 || cv.End.After(g.now) {
			cv.Status, cv.End = "OPEN", time.Time{}
		}
		switch n := g.rng.IntN(25); {
		case n == 0 && i > 0: // found only through the consumer of an earlier one
			cv.CustomerID, cv.Name, cv.Surname, cv.Email, cv.Phone = "", "", "", "", ""
		case n == 1 || g.rng.Float64() < g.unauth:
			cv.Unauthenticated = true
		}
		switch g.content.IntN(10) {
		case 0:
			cv.Transcript = append(cv.Transcript, richLine(p.email))
		case 1:
			caption := ""
			if g.content.IntN(2) == 0 {
				caption = "My ID card, " + p.first + " " + p.last
			}
			cv.Transcript = append(cv.Transcript, fileLine(p, cv.ID, caption))
		}
		d.Conversations = append(d.Conversations, cv)
	}
	d.Consumers = append(d.Consumers, ConsumerProfile{ID: p.consumer, Account: p.account, FirstName: p.first,
		LastName: p.last, Email: p.email, Phone: p.phone})
}

func (g *gen) chat(p person, start, end time.Time) Chat {
	return Chat{EngagementID: g.engagementID(p.account), Account: p.account, VisitorID: p.visitor,
		Start: start, End: end, Ended: true, CustomerID: p.customerID, Name: p.first, Surname: p.last,
		Email: p.email, Phone: p.phone, Transcript: []Line{
			{Author: AuthorSystem, Text: "Thank you for contacting us. An agent will be with you shortly."},
			{Author: AuthorConsumer, Text: "Hi, this is " + p.first + " " + p.last + "."},
			{Author: AuthorAgent, Text: "Hello, how can I help?"},
			{Author: AuthorConsumer, Text: "My customer number is " + p.customerID + " and my email " + p.email + "."},
			{Author: AuthorAgent, Text: "Thanks, all sorted."},
		}}
}

func (g *gen) conversation(p person, start, end time.Time) Conversation {
	return Conversation{ID: g.uuid(), Account: p.account, ConsumerID: p.consumer, Status: "CLOSE",
		Start: start, End: end, CustomerID: p.customerID, Name: p.first, Surname: p.last,
		Email: p.email, Phone: p.phone, Transcript: []Line{
			{Author: AuthorSystem, Text: "Welcome! You are connected to our support team."},
			{Author: AuthorConsumer, Text: "Hello, I am " + p.first + " " + p.last},
			{Author: AuthorAgent, Text: "Hi! What can I do for you?"},
			{Author: AuthorConsumer, Text: "Please update the address of " + p.customerID + ", my email is " + p.email},
		}}
}

// richLine is a consumer's structured-content message showing value.
func richLine(value string) Line {
	return Line{Author: AuthorConsumer, Kind: KindRich, Text: value}
}

// fileLine is a file the consumer sent in a conversation, with an optional
// caption.
func fileLine(p person, conversation, caption string) Line {
	return Line{Author: AuthorConsumer, Kind: KindFile, Text: caption,
		Path: "/v1/AUTH_async-images/" + p.account + "/" + conversation + "/id-card.jpg"}
}

// demo adds the documented demo subjects: closed records ended a day or more
// ago, so they are searchable at once.
func (g *gen) demo(d *Dataset, acct string) {
	jane := person{account: acct, customerID: DemoCustomerID, first: "Jane", last: "Doe", email: DemoEmail,
		phone: "+44 7700 900001", visitor: "demovisitor01", consumer: DemoConsumerID}
	john := person{account: acct, customerID: DemoOpenCustomerID, first: "John", last: "Smith", email: DemoOpenEmail,
		phone: "+44 7700 900002", visitor: "demovisitor02", consumer: DemoOpenConsumerID}
	near := person{account: acct, customerID: DemoNearMissCustomerID, first: "Janet", last: "Doe",
		email: DemoNearMissEmail, phone: "+44 7700 900010", visitor: "demovisitor10", consumer: DemoNearMissConsumerID}
	day := 24 * time.Hour
	ago := func(n int) time.Time { return g.now.Add(-time.Duration(n) * day).Truncate(time.Second) }
	for _, p := range []struct {
		who          person
		chats, convs []int // days ago
	}{{jane, []int{3, 40, 200}, []int{5, 90}}, {john, []int{10, 70}, []int{20}}, {near, []int{15}, []int{25}}} {
		for _, n := range p.chats {
			d.Chats = append(d.Chats, g.chat(p.who, ago(n), ago(n).Add(12*time.Minute)))
		}
		for i, n := range p.convs {
			cv := g.conversation(p.who, ago(n), ago(n).Add(30*time.Minute))
			if p.who.customerID == DemoCustomerID {
				// The first subject also wrote her e-mail in rich content and
				// sent a file without caption: erased only when those show
				// the mask too.
				if i == 0 {
					cv.Transcript = append(cv.Transcript, richLine(p.who.email))
				} else {
					cv.Transcript = append(cv.Transcript, fileLine(p.who, cv.ID, ""))
				}
			}
			d.Conversations = append(d.Conversations, cv)
		}
		d.Consumers = append(d.Consumers, ConsumerProfile{ID: p.who.consumer, Account: acct, FirstName: p.who.first,
			LastName: p.who.last, Email: p.who.email, Phone: p.who.phone})
	}
	open := g.conversation(john, g.now.Add(-3*time.Hour), time.Time{})
	open.Status = "OPEN"
	d.Conversations = append(d.Conversations, open)
	g.demoHidden(d, acct, ago)
}

// demoHidden adds the subjects whose records only a careful client finds.
func (g *gen) demoHidden(d *Dataset, acct string, ago func(int) time.Time) {
	ada := person{account: acct, customerID: DemoHiddenCustomerID, first: "Ada", last: "Lovelace",
		email: DemoHiddenEmail, phone: "+44 7700 900003", visitor: "demovisitor03", consumer: DemoHiddenConsumerID}
	flat := g.chat(ada, ago(8), ago(8).Add(12*time.Minute))
	flat.PersonalInfoShape = ShapeFlat
	unauth := g.conversation(ada, ago(12), ago(12).Add(30*time.Minute))
	unauth.Unauthenticated = true
	bare := g.conversation(ada, ago(30), ago(30).Add(30*time.Minute))
	bare.CustomerID, bare.Name, bare.Surname, bare.Email, bare.Phone = "", "", "", "", ""
	// Her consumer is known from a conversation with her customer id in authenticated
	// attributes; the bare one is reached only through that consumer. (Unauthenticated
	// attributes alone are not enough to follow a consumer: anyone can type an e-mail.)
	authed := g.conversation(ada, ago(20), ago(20).Add(30*time.Minute))
	authed.Name, authed.Surname, authed.Email, authed.Phone = "", "", "", ""

	num := person{account: acct, customerID: DemoNumericCustomerID, first: "Noor", last: "Person",
		email: DemoNumericEmail, phone: "+44 7700 900004", visitor: "demovisitor04", consumer: DemoNumericConsumerID}
	d.Chats = append(d.Chats, flat, g.chat(num, ago(6), ago(6).Add(12*time.Minute)),
		g.chat(num, ago(45), ago(45).Add(12*time.Minute)))
	d.Conversations = append(d.Conversations, unauth, bare, authed, g.conversation(num, ago(9), ago(9).Add(30*time.Minute)),
		g.conversation(num, ago(60), ago(60).Add(30*time.Minute)))
	for _, p := range []person{ada, num} {
		d.Consumers = append(d.Consumers, ConsumerProfile{ID: p.consumer, Account: acct, FirstName: p.first,
			LastName: p.last, Email: p.email, Phone: p.phone})
	}
}

func (g *gen) engagementID(acct string) string {
	for {
		id := acct + fmt.Sprintf("%010d", g.rng.Int64N(1e10))
		if !g.used[id] {
			g.used[id] = true
			return id
		}
	}
}

func (g *gen) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (g *gen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.rng.IntN(16)]
	}
	return string(b)
}

func toLowerASCII(s string) string {
	b := []rune(s)
	for i, r := range b {
		switch {
		case r >= 'A' && r <= 'Z':
			b[i] = r + 'a' - 'A'
		case r == 'ü':
			b[i] = 'u'
		}
	}
	return string(b)
}
