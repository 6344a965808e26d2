package liveperson_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/google/go-cmp/cmp"
)

func TestSearchEngagements(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	day := 24 * time.Hour
	for _, c := range []lpsim.Chat{
		chat(acct+"0000000001", "ABC-123", "jane.doe@example.com", t0.Add(-3*day)),
		chat(acct+"0000000002", "ABC-1234", "jane.doe@example.org", t0.Add(-4*day)), // near miss
		chat(acct+"0000000003", "ZZZ-999", "bob@example.net", t0.Add(-5*day)),
	} {
		if err := e.sim.AddChat(c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.c.SearchEngagements(context.Background(), acct, liveperson.EngagementQuery{
		From: t0.Add(-10 * day), To: t0, Keyword: "ABC-123"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range got {
		ids = append(ids, g.EngagementID+"="+g.CustomerIDs[0])
	}
	// Fuzzy: the near miss comes back too; exact filtering is the caller's.
	if diff := cmp.Diff([]string{acct + "0000000002=ABC-1234", acct + "0000000001=ABC-123"}, ids); diff != "" {
		t.Errorf("hits (-want +got):\n%s", diff)
	}
	first := got[1]
	if first.VisitorID != "v-"+acct+"0000000001" || !first.Ended || first.Emails[0] != "jane.doe@example.com" ||
		first.Phones[0] != "+44 7700 900001" || !first.Start.Equal(t0.Add(-3*day)) || len(first.Transcript) != 1 ||
		!first.ContentRead || !first.Transcript[0].Consumer || first.Masked() {
		t.Errorf("decoded engagement = %+v", first)
	}

	calls := e.sim.CallsTo(lpsim.ServiceEngHist, lpsim.OpSearch)
	if len(calls) != 1 {
		t.Fatalf("%d search calls, want 1", len(calls))
	}
	q, _ := url.ParseQuery(calls[0].Query)
	if q.Get("offset") != "0" || q.Get("limit") != "100" || q.Get("sort") != "start:asc" || q.Get("source") != "erasured-test" {
		t.Errorf("query = %s", calls[0].Query)
	}
	var body struct {
		Keyword string `json:"keyword"`
		Area    struct {
			Types []string `json:"types"`
		} `json:"keyword_search_area"`
		Start struct{ From, To int64 } `json:"start"`
	}
	if err := json.Unmarshal([]byte(calls[0].Body), &body); err != nil {
		t.Fatal(err)
	}
	if body.Keyword != `"ABC-123"` || len(body.Area.Types) != 2 || body.Start.To != t0.UnixMilli() {
		t.Errorf("body = %s", calls[0].Body)
	}
}

func TestSearchEngagementsPaging(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	for i := range 250 {
		if err := e.sim.AddChat(chat(fmt.Sprintf("%s%010d", acct, i), "PAGE-1", "p@example.com",
			t0.Add(-time.Duration(i+3)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.c.SearchEngagements(context.Background(), acct, liveperson.EngagementQuery{
		From: t0.Add(-20 * 24 * time.Hour), To: t0, Keyword: "PAGE-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 250 {
		t.Errorf("got %d records, want 250", len(got))
	}
	var offsets []string
	for _, c := range e.sim.CallsTo(lpsim.ServiceEngHist, lpsim.OpSearch) {
		q, _ := url.ParseQuery(c.Query)
		offsets = append(offsets, q.Get("offset"))
	}
	if diff := cmp.Diff([]string{"0", "100", "200"}, offsets); diff != "" {
		t.Errorf("offsets (-want +got):\n%s", diff)
	}
}

// TestSearchEngagementsPartial: a result LivePerson flags partial is asked
// again. (Partial records: TestEngagementPartialRecordReread.)
func TestSearchEngagementsPartial(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	for i := range 4 {
		if err := e.sim.AddChat(chat(fmt.Sprintf("%s%010d", acct, i), "PART-1", "p@example.com",
			t0.Add(-time.Duration(i+3)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	q := liveperson.EngagementQuery{From: t0.Add(-24 * time.Hour), To: t0, Keyword: "PART-1"}

	t.Run("partialResult", func(t *testing.T) {
		e.sim.ClearFaults()
		before := len(e.clk.Sleeps())
		e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceEngHist, Kind: lpsim.FaultPartialResult, Times: 1})
		got, err := e.c.SearchEngagements(context.Background(), acct, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 {
			t.Errorf("got %d records after retry, want 4", len(got))
		}
		if s := e.clk.Sleeps()[before:]; len(s) != 1 || s[0] != 5*time.Second {
			t.Errorf("waits = %v, want [5s]", s)
		}
	})
}

func TestSearchEngagementsValidation(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	for name, q := range map[string]liveperson.EngagementQuery{
		"no window":       {Keyword: "x"},
		"too long":        {From: t0.Add(-29 * 24 * time.Hour), To: t0},
		"rounded past":    {From: t0.Add(-28*24*time.Hour + 3*time.Minute), To: t0.Add(3 * time.Minute)},
		"id not a number": {From: t0.Add(-time.Hour), To: t0, EngagementID: "eng-1"},
		"reversed":        {From: t0, To: t0.Add(-time.Hour)},
		"quote inside":    {From: t0.Add(-time.Hour), To: t0, Keyword: `a"b`},
	} {
		_, err := e.c.SearchEngagements(context.Background(), acct, q)
		if liveperson.KindOf(err) != liveperson.KindInvalid {
			t.Errorf("%s: err = %v, want KindInvalid", name, err)
		}
	}
	if n := len(e.sim.Calls()); n != 0 {
		t.Errorf("%d calls sent for invalid queries, want 0", n)
	}
}

func TestSearchEngagementsFilters(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	c := chat(acct+"0000000007", "F-1", "f@example.com", t0.Add(-48*time.Hour))
	_ = e.sim.AddChat(c)
	_ = e.sim.AddChat(chat(acct+"0000000008", "F-2", "g@example.com", t0.Add(-47*time.Hour)))
	got, err := e.c.SearchEngagements(context.Background(), acct, liveperson.EngagementQuery{
		From: t0.Add(-72 * time.Hour), To: t0, VisitorID: c.VisitorID})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range got {
		ids = append(ids, g.EngagementID)
	}
	sort.Strings(ids)
	if diff := cmp.Diff([]string{c.EngagementID}, ids); diff != "" {
		t.Errorf("visitor filter (-want +got):\n%s", diff)
	}
}
