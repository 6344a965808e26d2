package port

import (
	"context"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/service"
)

// noticeRetries passes the client's retries within a call on to the service, which shows the
// outage on the erasure at once (blocked on LivePerson, with the next attempt) and logs it,
// naming the service that failed: with the client's default policy a call retries for minutes
// (5, 10, 15 s and longer, a host discovery or token fetch retrying inside each attempt), and
// nothing would show before it gives up.
//
// Only failures that look like an outage are passed on (5xx, transport failures, timeouts,
// partial answers, failed host discovery). A 429 is LivePerson pacing us, which the client
// absorbs; showing each one would turn routine throttling into Watch events.
func noticeRetries(ctx context.Context) context.Context {
	return liveperson.WithRetryNotice(ctx, func(r liveperson.Retry) {
		if r.Err == nil || r.Err.Kind != liveperson.KindRetryable {
			return
		}
		service.RetryingCall(ctx, service.CallRetry{Service: r.Err.Service, Attempt: r.Attempt, Wait: r.Wait,
			Err: portErr(r.Err)})
	})
}
