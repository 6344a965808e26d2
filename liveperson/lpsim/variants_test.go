package lpsim

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// variantChoices name every reading VariantsFromSeed picks and how many
// values it has.
var variantChoices = []struct {
	name   string
	values int
	get    func(Variants) string
}{
	{"personalInfo", 4, func(v Variants) string { return v.PersonalInfo }},
	{"customerInfo", 2, func(v Variants) string { return v.CustomerInfo }},
	{"unauthShare", 2, func(v Variants) string { return fmt.Sprint(v.UnauthShare) }},
	{"deleteJSON", 2, func(v Variants) string { return v.DeleteJSON }},
	{"discovery", 2, func(v Variants) string { return v.Discovery }},
	{"discoveryAnswer", 2, func(v Variants) string { return v.DiscoveryAnswer }},
	{"hostStyle", 2, func(v Variants) string { return v.HostStyle }},
	{"masking", 2, func(v Variants) string { return v.Masking }},
	{"engWindow", 3, func(v Variants) string { return fmt.Sprint(v.EngWindowDays) }},
	{"msgWindow", 3, func(v Variants) string { return fmt.Sprint(v.MsgWindowDays) }},
	{"byIDStrict", 2, func(v Variants) string { return fmt.Sprint(v.ByIDStrict) }},
	{"participantsKey", 2, func(v Variants) string { return v.Quirks.ParticipantsKey }},
	{"siteIdKey", 2, func(v Variants) string { return v.Quirks.SiteIDKey }},
	{"getByIDObject", 2, func(v Variants) string { return fmt.Sprint(v.Quirks.GetByIDObject) }},
	{"requestIDAsText", 2, func(v Variants) string { return fmt.Sprint(v.Quirks.RequestIDAsText) }},
	{"deleteJSONObject", 2, func(v Variants) string { return fmt.Sprint(v.Quirks.DeleteJSONObject) }},
	{"sentBy", 2, func(v Variants) string { return v.SentBy }},
	{"engSourceRequired", 2, func(v Variants) string { return fmt.Sprint(v.EngSourceRequired) }},
}

// TestVariantsFromSeed: a seed always gives the same readings, seeds 1..64
// between them serve every value of every choice, and String names each.
func TestVariantsFromSeed(t *testing.T) {
	seen := map[string]map[string]bool{}
	combos := map[string]bool{}
	for seed := uint64(1); seed <= 64; seed++ {
		v := VariantsFromSeed(seed)
		if again := VariantsFromSeed(seed); again != v {
			t.Fatalf("VariantsFromSeed(%d) = %v, then %v", seed, v, again)
		}
		s := v.String()
		combos[s] = true
		engSource := "engSource=optional"
		if v.EngSourceRequired {
			engSource = "engSource=required"
		}
		for _, c := range variantChoices {
			if seen[c.name] == nil {
				seen[c.name] = map[string]bool{}
			}
			val := c.get(v)
			if val == "" || val == "0" && c.name != "unauthShare" {
				t.Errorf("seed %d leaves %s to the default", seed, c.name)
			}
			seen[c.name][val] = true
		}
		for _, want := range []string{"personalInfo=" + v.PersonalInfo, "customerInfo=" + v.CustomerInfo,
			"deleteJSON=" + v.DeleteJSON, "discovery=" + v.Discovery + "/" + v.DiscoveryAnswer, "hosts=" + v.HostStyle,
			"masking=" + v.Masking, fmt.Sprintf("engWindow=%dd", v.EngWindowDays), fmt.Sprintf("msgWindow=%dd", v.MsgWindowDays),
			fmt.Sprintf("unauthShare=%g", v.UnauthShare), "participants=" + v.Quirks.ParticipantsKey,
			"siteId=" + v.Quirks.SiteIDKey, "sentBy=" + v.SentBy,
			fmt.Sprintf("requestIdText=%v", v.Quirks.RequestIDAsText),
			fmt.Sprintf("deleteJSONObject=%v", v.Quirks.DeleteJSONObject), engSource} {
			if !strings.Contains(s, want) {
				t.Errorf("seed %d: String() = %q lacks %q", seed, s, want)
			}
		}
	}
	for _, c := range variantChoices {
		if len(seen[c.name]) != c.values {
			t.Errorf("seeds 1..64 give %s the values %v, want %d different", c.name, seen[c.name], c.values)
		}
	}
	if len(combos) < 60 {
		t.Errorf("seeds 1..64 give only %d different combinations: the choices are not independent", len(combos))
	}
	zero := (Variants{}).String()
	for _, want := range []string{"engWindow=30d-unrounded", "personalInfo=nested", "sentBy=present", "engSource=optional"} {
		if !strings.Contains(zero, want) {
			t.Errorf("zero Variants = %q lacks %q", zero, want)
		}
	}
}

// TestWindowReadings: windows are held to the reading's month after being
// rounded to 10 minutes, so a 28-day window aligned to 10 minutes passes in
// every reading and an unaligned one a millisecond longer does not in the
// 28-day reading; the zero value keeps the unrounded 30 and 90 days.
func TestWindowReadings(t *testing.T) {
	aligned := t0 // 12:00:00
	unaligned := t0.Add(3*time.Minute + 7*time.Second + 5*time.Millisecond)
	for _, tc := range []struct {
		name     string
		v        Variants
		path     string
		from, to time.Time
		want     int
	}{
		{"eng 28d aligned in 28", Variants{EngWindowDays: 28}, engPath, aligned.Add(-28 * day), aligned, 200},
		{"eng 28d aligned in 30", Variants{EngWindowDays: 30}, engPath, aligned.Add(-28 * day), aligned, 200},
		{"eng 28d aligned in 31", Variants{EngWindowDays: 31}, engPath, aligned.Add(-28 * day), aligned, 200},
		{"eng 28d aligned in default", Variants{}, engPath, aligned.Add(-28 * day), aligned, 200},
		{"eng 28d+1ms unaligned in 28", Variants{EngWindowDays: 28}, engPath, unaligned.Add(-28 * day), unaligned.Add(time.Millisecond), 400},
		{"eng 28d unaligned in 28 (rounds to 28d10m)", Variants{EngWindowDays: 28}, engPath, unaligned.Add(-28 * day), unaligned, 400},
		{"eng 28d+1ms unaligned in 30", Variants{EngWindowDays: 30}, engPath, unaligned.Add(-28 * day), unaligned.Add(time.Millisecond), 200},
		{"eng 30d unaligned in 30", Variants{EngWindowDays: 30}, engPath, unaligned.Add(-30 * day), unaligned, 400},
		{"eng 30d unaligned in default", Variants{}, engPath, unaligned.Add(-30 * day), unaligned, 200},
		{"eng 30d+1ms in default", Variants{}, engPath, unaligned.Add(-30 * day), unaligned.Add(time.Millisecond), 400},
		{"eng 31d aligned in 31", Variants{EngWindowDays: 31}, engPath, aligned.Add(-31 * day), aligned, 200},
		{"msg 89d aligned in 89", Variants{MsgWindowDays: 89}, msgPath, aligned.Add(-89 * day), aligned, 200},
		{"msg 89d aligned in 92", Variants{MsgWindowDays: 92}, msgPath, aligned.Add(-89 * day), aligned, 200},
		{"msg 89d aligned in default", Variants{}, msgPath, aligned.Add(-89 * day), aligned, 200},
		{"msg 89d unaligned in 89", Variants{MsgWindowDays: 89}, msgPath, unaligned.Add(-89 * day), unaligned, 400},
		{"msg 89d+1ms unaligned in 90", Variants{MsgWindowDays: 90}, msgPath, unaligned.Add(-89 * day), unaligned.Add(time.Millisecond), 200},
		{"msg 90d unaligned in 90", Variants{MsgWindowDays: 90}, msgPath, unaligned.Add(-90 * day), unaligned, 400},
		{"msg 90d unaligned in default", Variants{}, msgPath, unaligned.Add(-90 * day), unaligned, 200},
		{"msg 92d aligned in 92", Variants{MsgWindowDays: 92}, msgPath, aligned.Add(-92 * day), aligned, 200},
	} {
		h := newHarness(t, Config{Variants: tc.v})
		if st, b := h.do(t, "POST", tc.path, "source=t&limit=100", "{"+startJSON(tc.from, tc.to)+"}"); st != tc.want {
			t.Errorf("%s (%v): %d %s, want %d", tc.name, tc.v, st, b, tc.want)
		}
	}

	// Rounding widens what is searched: a chat that started 2 minutes before
	// an unaligned from is inside the rounded window.
	h := newHarness(t, Config{Variants: Variants{EngWindowDays: 28}})
	c := shapedChat("early")
	c.Start = unaligned.Add(-5 * day).Add(-2 * time.Minute)
	_ = h.sim.AddChat(c)
	if n := len(h.engRecords(t, "{"+startJSON(unaligned.Add(-5*day), unaligned)+"}")); n != 1 {
		t.Errorf("chat inside the rounded window: %d records, want 1", n)
	}
}

// TestRetentionCalendarMonths: records are kept 13 calendar months, not a
// fixed number of days.
func TestRetentionCalendarMonths(t *testing.T) {
	h := newHarness(t, Config{})
	limit := t0.AddDate(0, -13, 0) // 2025-02-15 12:00
	for id, start := range map[string]time.Time{"gone": limit.Add(-time.Hour), "kept": limit.Add(time.Hour)} {
		c := shapedChat(id)
		c.Start, c.End = start, start.Add(10*time.Minute)
		_ = h.sim.AddChat(c)
		_ = h.sim.AddConversation(Conversation{ID: id, Account: acct, ConsumerID: "p1", Start: c.Start, End: c.End})
	}
	eng := h.engRecords(t, "{"+startJSON(limit.Add(-5*day), limit.Add(5*day))+"}")
	msg := h.msgRecords(t, byCons, "source=t", `{"consumer":"p1"}`)
	if len(eng) != 1 || dig(eng[0], "info", "engagementId") != "kept" || len(msg) != 1 || dig(msg[0], "info", "conversationId") != "kept" {
		t.Errorf("retained: %d chats, %d conversations; want only the ones inside 13 months", len(eng), len(msg))
	}
}

// TestEngagementByID: the strict reading refuses an engagementId without
// keyword_search_area or as a string; the lenient one takes both. Both take
// a number, however long.
func TestEngagementByID(t *testing.T) {
	const id = "207623244295067780"
	area := `,"keyword_search_area":{"types":["ea.customerInfo","ea.personalInfo"]}`
	for _, tc := range []struct {
		name, filter string
		strict, lax  int // status, and 1 record when 200
	}{
		{"number with area", `,"engagementId":` + id + area, 200, 200},
		{"number without area", `,"engagementId":` + id, 400, 200},
		{"string with area", `,"engagementId":"` + id + `"` + area, 400, 200},
		{"string without area", `,"engagementId":"` + id + `"`, 400, 200},
		{"fraction", `,"engagementId":1.5` + area, 400, 400},
	} {
		for _, strict := range []bool{true, false} {
			h := newHarness(t, Config{Variants: Variants{ByIDStrict: strict}})
			_ = h.sim.AddChat(shapedChat(id))
			_ = h.sim.AddChat(shapedChat("207623244295067781"))
			want := tc.lax
			if strict {
				want = tc.strict
			}
			st, b := h.do(t, "POST", engPath, "limit=100", "{"+startJSON(t0.Add(-5*day), t0)+tc.filter+"}")
			if st != want {
				t.Errorf("%s (strict %v): %d %s, want %d", tc.name, strict, st, b, want)
				continue
			}
			if recs, _ := dig(decodeJSON(t, b), "interactionHistoryRecords").([]any); st == 200 &&
				(len(recs) != 1 || dig(recs[0], "info", "engagementId") != id) {
				t.Errorf("%s (strict %v): records %v, want only %s", tc.name, strict, recs, id)
			}
		}
	}
}
