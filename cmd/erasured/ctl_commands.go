package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/google/uuid"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// ctlCommand is one `erasured ctl` command. setup registers its flags on fs and returns the
// check run once they are parsed, and the command itself.
type ctlCommand struct {
	usage            string
	minArgs, maxArgs int
	setup            func(fs *flag.FlagSet) (check func() error, run ctlRun)
}

type ctlRun func(ctx context.Context, c *ctl, args []string) error

func noCheck() error { return nil }

var ctlCommands = map[string]ctlCommand{
	"list":    {usage: "list [--account A] [--state STATE]... [--external-ref REF]", maxArgs: 0, setup: ctlList},
	"get":     {usage: "get NAME", minArgs: 1, maxArgs: 1, setup: ctlGet},
	"plan":    {usage: "plan NAME", minArgs: 1, maxArgs: 1, setup: ctlPlan},
	"watch":   {usage: "watch [NAME] [--from REV]", maxArgs: 1, setup: ctlWatchCmd},
	"confirm": {usage: "confirm NAME --etag E", minArgs: 1, maxArgs: 1, setup: ctlConfirm},
	"reject":  {usage: "reject NAME --reason R", minArgs: 1, maxArgs: 1, setup: ctlReject},
	"cancel":  {usage: "cancel NAME --reason R", minArgs: 1, maxArgs: 1, setup: ctlCancel},
	"submit": {usage: "submit --account A (--customer-id X | --email X | --phone X | --consumer-id X) [--request-id UUID] [--external-ref REF] [--manual]",
		setup: ctlSubmit},
	"audit":        {usage: "audit [--erasure NAME]", setup: ctlAudit},
	"backup":       {usage: "backup FILE", minArgs: 1, maxArgs: 1, setup: ctlBackup},
	"receipt-keys": {usage: "receipt-keys [--format base64|jwk|pem]", setup: ctlReceiptKeys},
}

// erasureName accepts `erasures/ID` or a bare ID.
func erasureName(s string) string {
	if strings.HasPrefix(s, "erasures/") {
		return s
	}
	return "erasures/" + s
}

// stateList is the repeatable --state flag: STATE_COMPLETED, COMPLETED or completed.
type stateList []erasurev1.State

func (l *stateList) String() string { return fmt.Sprint(*l) }

func (l *stateList) Set(v string) error {
	name := strings.ToUpper(strings.TrimSpace(v))
	if !strings.HasPrefix(name, "STATE_") {
		name = "STATE_" + name
	}
	n, ok := erasurev1.State_value[name]
	if !ok || n == 0 {
		return fmt.Errorf("unknown state %q", v)
	}
	*l = append(*l, erasurev1.State(n))
	return nil
}

func ctlList(fs *flag.FlagSet) (func() error, ctlRun) {
	account := fs.String("account", "", "")
	ref := fs.String("external-ref", "", "")
	var states stateList
	fs.Var(&states, "state", "")
	return noCheck, func(ctx context.Context, c *ctl, _ []string) error {
		all := &erasurev1.ListResponse{}
		req := &erasurev1.ListRequest{AccountId: *account, States: states, ExternalRef: *ref, PageSize: 1000}
		for {
			cctx, cancel := c.call(ctx)
			page, err := c.client.List(cctx, req)
			cancel()
			if err != nil {
				return err
			}
			all.Erasures = append(all.Erasures, page.Erasures...)
			if page.NextPageToken == "" {
				break
			}
			req.PageToken = page.NextPageToken
		}
		return c.printErasures(all, all.Erasures)
	}
}

func ctlGet(*flag.FlagSet) (func() error, ctlRun) {
	return noCheck, func(ctx context.Context, c *ctl, args []string) error {
		cctx, cancel := c.call(ctx)
		defer cancel()
		resp, err := c.client.Status(cctx, &erasurev1.StatusRequest{Name: erasureName(args[0])})
		if err != nil {
			return err
		}
		return c.printErasure(resp, resp.Erasure)
	}
}

func ctlPlan(*flag.FlagSet) (func() error, ctlRun) {
	return noCheck, func(ctx context.Context, c *ctl, args []string) error {
		cctx, cancel := c.call(ctx)
		defer cancel()
		resp, err := c.client.Resolve(cctx, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: erasureName(args[0])}})
		if err != nil {
			return err
		}
		return c.printPlan(resp)
	}
}

func ctlConfirm(fs *flag.FlagSet) (func() error, ctlRun) {
	etag := fs.String("etag", "", "")
	check := func() error {
		if *etag == "" {
			return errors.New("--etag is required: the plan_etag of the plan reviewed (erasured ctl plan NAME)")
		}
		return nil
	}
	return check, decide(func() *erasurev1.Decision {
		return &erasurev1.Decision{Kind: &erasurev1.Decision_Confirm{Confirm: &erasurev1.Confirm{PlanEtag: *etag}}}
	})
}

func ctlReject(fs *flag.FlagSet) (func() error, ctlRun) {
	reason := fs.String("reason", "", "")
	return needReason(reason), decide(func() *erasurev1.Decision {
		return &erasurev1.Decision{Kind: &erasurev1.Decision_Reject{Reject: &erasurev1.Reject{Reason: *reason}}}
	})
}

// needReason requires --reason: the reason is kept on the erasure for whoever looks later.
func needReason(reason *string) func() error {
	return func() error {
		if strings.TrimSpace(*reason) == "" {
			return errors.New("--reason is required (no personal data in it)")
		}
		return nil
	}
}

// decide records an approver's decision on a MANUAL erasure.
func decide(decision func() *erasurev1.Decision) ctlRun {
	return func(ctx context.Context, c *ctl, args []string) error {
		cctx, cancel := c.call(ctx)
		defer cancel()
		resp, err := c.client.Resolve(cctx, &erasurev1.ResolveRequest{
			Target: &erasurev1.ResolveRequest_Name{Name: erasureName(args[0])}, Decision: decision()})
		if err != nil {
			return err
		}
		return c.printErasure(resp, resp.Erasure)
	}
}

func ctlCancel(fs *flag.FlagSet) (func() error, ctlRun) {
	reason := fs.String("reason", "", "")
	return needReason(reason), func(ctx context.Context, c *ctl, args []string) error {
		cctx, cancel := c.call(ctx)
		defer cancel()
		resp, err := c.client.Cancel(cctx, &erasurev1.CancelRequest{Name: erasureName(args[0]), Reason: *reason})
		if err != nil {
			return err
		}
		return c.printErasure(resp, resp.Erasure)
	}
}

func ctlSubmit(fs *flag.FlagSet) (func() error, ctlRun) {
	account := fs.String("account", "", "")
	requestID := fs.String("request-id", "", "")
	ref := fs.String("external-ref", "", "")
	manual := fs.Bool("manual", false, "")
	ids := map[string]*string{}
	for _, k := range []string{"customer-id", "email", "phone", "consumer-id"} {
		ids[k] = fs.String(k, "", "")
	}
	var subject *erasurev1.Subject
	check := func() error {
		if *account == "" {
			return errors.New("--account is required")
		}
		var given []string
		for k, v := range ids {
			if *v != "" {
				given = append(given, "--"+k)
			}
		}
		if len(given) != 1 {
			return errors.New("give exactly one of --customer-id, --email, --phone, --consumer-id")
		}
		switch given[0] {
		case "--customer-id":
			subject = &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{CustomerId: *ids["customer-id"]}}
		case "--email":
			subject = &erasurev1.Subject{Id: &erasurev1.Subject_Email{Email: *ids["email"]}}
		case "--phone":
			subject = &erasurev1.Subject{Id: &erasurev1.Subject_Phone{Phone: *ids["phone"]}}
		default:
			subject = &erasurev1.Subject{Id: &erasurev1.Subject_ConsumerId{ConsumerId: *ids["consumer-id"]}}
		}
		return nil
	}
	return check, func(ctx context.Context, c *ctl, _ []string) error {
		if *requestID == "" {
			// Printed before the call: after a lost answer, the same id retries safely.
			*requestID = uuid.NewString()
			fmt.Fprintf(c.errOut, "request id %s (to retry safely: --request-id %s)\n", *requestID, *requestID)
		}
		req := &erasurev1.SubmitRequest{RequestId: *requestID, AccountId: *account, Subject: subject, ExternalRef: *ref}
		if *manual {
			req.Confirmation = erasurev1.Confirmation_CONFIRMATION_MANUAL
		}
		cctx, cancel := c.call(ctx)
		defer cancel()
		resp, err := c.client.Submit(cctx, req)
		if err != nil {
			return err
		}
		if resp.Deduplicated && c.opts.output != "json" {
			fmt.Fprintf(c.errOut, "deduplicated: %s is an open erasure of the same subject\n", resp.Erasure.GetName())
		}
		return c.printErasure(resp, resp.Erasure)
	}
}

func ctlAudit(fs *flag.FlagSet) (func() error, ctlRun) {
	name := fs.String("erasure", "", "")
	return noCheck, func(ctx context.Context, c *ctl, _ []string) error {
		req := &erasurev1.ListAuditRecordsRequest{PageSize: 1000}
		if *name != "" {
			req.Name = erasureName(*name)
		}
		all := &erasurev1.ListAuditRecordsResponse{}
		for {
			cctx, cancel := c.call(ctx)
			page, err := c.client.ListAuditRecords(cctx, req)
			cancel()
			if err != nil {
				return err
			}
			all.Records = append(all.Records, page.Records...)
			if page.NextPageToken == "" {
				break
			}
			req.PageToken = page.NextPageToken
		}
		return c.printAudit(all)
	}
}

// ctlReceiptKeys prints the public keys that verify the server's receipts. With --format it
// prints the key signing new receipts alone, in that form, for `erasured receipt verify
// --public-key` or an auditor's tool; -o json prints the response, every key in every form.
func ctlReceiptKeys(fs *flag.FlagSet) (func() error, ctlRun) {
	format := fs.String("format", "", "")
	check := func() error {
		switch *format {
		case "", "base64", "jwk", "pem":
			return nil
		}
		return fmt.Errorf("--format must be base64, jwk or pem, not %q", *format)
	}
	return check, func(ctx context.Context, c *ctl, _ []string) error {
		cctx, cancel := c.call(ctx)
		defer cancel()
		resp, err := c.client.GetReceiptKeys(cctx, &erasurev1.GetReceiptKeysRequest{})
		if err != nil {
			return err
		}
		keys := resp.GetKeys()
		switch {
		case c.opts.output == "json":
			return c.printJSON(resp, jsonDoc)
		case len(keys) == 0:
			return errors.New("the server named no receipt key")
		case *format != "":
			out, err := formatReceiptKey(keys[0].GetKeyId(), keys[0].GetPublicKey(), *format)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.out, strings.TrimRight(out, "\n"))
			return err
		case c.opts.output == "name":
			for _, k := range keys {
				fmt.Fprintln(c.out, k.GetKeyId())
			}
			return nil
		}
		for i, k := range keys {
			role := "verifies earlier receipts"
			if i == 0 {
				role = "signs new receipts"
			}
			fmt.Fprintf(c.out, "%s (%s)\n  base64: %s\n  jwk:    %s\n  pem:\n%s", k.GetKeyId(), role,
				base64.StdEncoding.EncodeToString(k.GetPublicKey()), k.GetJwk(), k.GetPem())
		}
		return nil
	}
}
