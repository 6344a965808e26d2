package lpsim

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// Readings of LivePerson's documentation that the simulator can serve. Where
// the pages disagree, each reading is one of these values; a client has to
// survive every one of them.
const (
	// Shapes of the personalInfo and customerInfo engagement attributes.
	ShapeNested = "nested" // personalInfo.personalInfo.{name,surname,contacts:[{personalContact:{email,phone}}]}
	ShapeFlat   = "flat"   // personalInfo.{name,surname,contacts:[…]}; customerInfo.customerId
	ShapeDirect = "direct" // personalInfo.personalInfo.{name,surname,email,phone}, no contacts
	// ShapeDirectFlat is the direct form without the nesting:
	// personalInfo.{name,surname,email,phone}, no contacts.
	ShapeDirectFlat = "direct-flat"

	// What get and list of deletion requests answer.
	DeleteJSONEcho       = "echo"        // delete_json in create, get and list
	DeleteJSONCreateOnly = "create-only" // delete_json only in the create answer

	// Which Domain API forms answer, and how the single form answers.
	DiscoveryBothForms  = "both-forms"  // single and list form
	DiscoverySingleOnly = "single-only" // the list form answers 404
	AnswerObject        = "object"      // {"service","account","baseURI"}
	AnswerList          = "list"        // {"baseURIs":[{…}]}

	// Host names of the services (with Config.NamedHosts).
	HostDot  = "dot"  // va.msghist.liveperson.net
	HostDash = "dash" // va-a.msghist.liveperson.net

	// Who wrote a message of messageRecords, as the wire tells it.
	SentByPresent = "present" // sentBy "Consumer", "Agent" or "System", and participantId
	SentByAbsent  = "absent"  // no sentBy: the participantId alone names the author

	// What a deletion masks when it is DONE.
	MaskFull    = "full"    // every transcript line and message
	MaskPartial = "partial" // consumer lines and attributes; agent and system lines stay
)

// Variants choose among the readings LivePerson's documentation allows. The
// zero value serves the readings the simulator has always served: nested
// attributes, delete_json everywhere, both discovery forms with object
// answers, dot hosts, sentBy in every message, full masking, lenient by-id
// search, Engagement History searches without source accepted, and windows
// of 30 and 90 days checked without rounding. VariantsFromSeed picks every
// reading from a seed, so a failure can be replayed from the seed alone.
type Variants struct {
	PersonalInfo string // ShapeNested (default), ShapeFlat, ShapeDirect or ShapeDirectFlat
	CustomerInfo string // ShapeNested (default) or ShapeFlat
	// UnauthShare is the share of generated conversations whose attributes
	// are unauthenticated (GenOptions.Unauthenticated). The simulator serves
	// whatever each conversation's Unauthenticated flag says.
	UnauthShare     float64
	DeleteJSON      string // DeleteJSONEcho (default) or DeleteJSONCreateOnly
	Discovery       string // DiscoveryBothForms (default) or DiscoverySingleOnly
	DiscoveryAnswer string // AnswerObject (default) or AnswerList
	HostStyle       string // HostDot (default) or HostDash
	// SentBy is SentByPresent (default) or SentByAbsent: then a client tells
	// the consumer's messages by comparing each participantId with the
	// conversation's consumerParticipants.
	SentBy  string
	Masking string // MaskFull (default) or MaskPartial
	// EngWindowDays is Engagement History's "one month": 28, 30 or 31 days,
	// checked after rounding from down and to up to 10 minutes. 0 means 30
	// days, not rounded.
	EngWindowDays int
	// MsgWindowDays is Messaging Interactions' "three months": 89, 90 or 92
	// days, after rounding. 0 means 90 days, not rounded.
	MsgWindowDays int
	// ByIDStrict refuses an Engagement History body whose engagementId lacks
	// keyword_search_area or is a JSON string rather than a number.
	ByIDStrict bool
	// EngSourceRequired refuses an Engagement History search whose URL has
	// no source parameter (the documentation hints it may be required there
	// too, as in Messaging Interactions).
	EngSourceRequired bool
	// Quirks are the spellings the pages disagree on; a field Config.Quirks
	// sets wins over the same field here.
	Quirks Quirks
}

// Window lengths the documentation's words allow.
var (
	engWindowDays = []int{28, 30, 31}
	msgWindowDays = []int{89, 90, 92}
)

// VariantsFromSeed picks each reading independently and deterministically
// from seed.
func VariantsFromSeed(seed uint64) Variants {
	r := rand.New(rand.NewPCG(seed, 0x76617269616e7473))
	pick := func(opts ...string) string { return opts[r.IntN(len(opts))] }
	days := func(opts []int) int { return opts[r.IntN(len(opts))] }
	v := Variants{
		PersonalInfo:    pick(ShapeNested, ShapeFlat, ShapeDirect, ShapeDirectFlat),
		CustomerInfo:    pick(ShapeNested, ShapeFlat),
		DeleteJSON:      pick(DeleteJSONEcho, DeleteJSONCreateOnly),
		Discovery:       pick(DiscoveryBothForms, DiscoverySingleOnly),
		DiscoveryAnswer: pick(AnswerObject, AnswerList),
		HostStyle:       pick(HostDot, HostDash),
		Masking:         pick(MaskFull, MaskPartial),
		EngWindowDays:   days(engWindowDays),
		MsgWindowDays:   days(msgWindowDays),
		ByIDStrict:      r.IntN(2) == 1,
		Quirks: Quirks{
			ParticipantsKey: pick("consumerParticipants", "consumerParticipant"),
			SiteIDKey:       pick("siteid", "siteId"),
			GetByIDObject:   r.IntN(2) == 1,
		},
	}
	if r.IntN(2) == 1 {
		v.UnauthShare = 0.3
	}
	// Later choices are drawn last, so that a seed keeps the readings it
	// picked before they existed.
	v.Quirks.RequestIDAsText = r.IntN(2) == 1
	v.Quirks.DeleteJSONObject = r.IntN(2) == 1
	v.SentBy = pick(SentByPresent, SentByAbsent)
	v.EngSourceRequired = r.IntN(2) == 1
	return v
}

// withDefaults fills every empty choice with its default reading.
func (v Variants) withDefaults() Variants {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&v.PersonalInfo, ShapeNested)
	def(&v.CustomerInfo, ShapeNested)
	def(&v.DeleteJSON, DeleteJSONEcho)
	def(&v.Discovery, DiscoveryBothForms)
	def(&v.DiscoveryAnswer, AnswerObject)
	def(&v.HostStyle, HostDot)
	def(&v.SentBy, SentByPresent)
	def(&v.Masking, MaskFull)
	def(&v.Quirks.ParticipantsKey, "consumerParticipants")
	def(&v.Quirks.SiteIDKey, "siteid")
	return v
}

// String names every choice, so that a test can print the readings it ran
// against.
func (v Variants) String() string {
	v = v.withDefaults()
	win := func(days, def int) string {
		if days == 0 {
			return fmt.Sprintf("%dd-unrounded", def)
		}
		return fmt.Sprintf("%dd", days)
	}
	byID, getByID, engSource := "lenient", "array", "optional"
	if v.ByIDStrict {
		byID = "strict"
	}
	if v.EngSourceRequired {
		engSource = "required"
	}
	if v.Quirks.GetByIDObject {
		getByID = "object"
	}
	return fmt.Sprintf("personalInfo=%s customerInfo=%s unauthShare=%g deleteJSON=%s discovery=%s/%s hosts=%s "+
		"sentBy=%s masking=%s engWindow=%s msgWindow=%s byID=%s engSource=%s participants=%s siteId=%s getByID=%s "+
		"requestIdText=%v deleteJSONObject=%v",
		v.PersonalInfo, v.CustomerInfo, v.UnauthShare, v.DeleteJSON, v.Discovery, v.DiscoveryAnswer, v.HostStyle,
		v.SentBy, v.Masking, win(v.EngWindowDays, 30), win(v.MsgWindowDays, 90), byID, engSource,
		v.Quirks.ParticipantsKey, v.Quirks.SiteIDKey, getByID, v.Quirks.RequestIDAsText, v.Quirks.DeleteJSONObject)
}

// searchWindow is a search method's limit on start.to - start.from.
type searchWindow struct {
	max   time.Duration
	round bool // from rounded down and to up to 10 minutes before the check
}

func windowOf(days, def int) searchWindow {
	if days == 0 {
		return searchWindow{max: time.Duration(def) * 24 * time.Hour}
	}
	return searchWindow{max: time.Duration(days) * 24 * time.Hour, round: true}
}

func (v Variants) engWindow() searchWindow { return windowOf(v.EngWindowDays, 30) }
func (v Variants) msgWindow() searchWindow { return windowOf(v.MsgWindowDays, 90) }

// windowRounding is the step LivePerson rounds start.from down and start.to
// up to.
const windowRounding = 10 * time.Minute

// checkStart validates the required start window and returns it as
// LivePerson applies it: rounded first, when the reading rounds, and then
// held to the limit.
func checkStart(w http.ResponseWriter, st *window, lim searchWindow) (from, to time.Time, ok bool) {
	if st == nil || st.From == 0 || st.To == 0 {
		badRequest(w, "start is required")
		return from, to, false
	}
	from, to = time.UnixMilli(st.From).UTC(), time.UnixMilli(st.To).UTC()
	if !to.After(from) {
		badRequest(w, "start.to must be after start.from")
		return from, to, false
	}
	if lim.round {
		from = from.Truncate(windowRounding)
		if up := to.Truncate(windowRounding); up.Before(to) {
			to = up.Add(windowRounding)
		}
	}
	if to.Sub(from) > lim.max {
		badRequest(w, "time range too long")
		return from, to, false
	}
	return from, to, true
}
