package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// The test callers: for each role one token principal ("t-<role>", token "secret-<role>") and
// one certificate principal ("c-<role>", common name "cn-<role>"). The metrics principals hold
// no role any RPC needs: they are the "wrong role" callers.
func testCallers() Callers {
	var c Callers
	for _, r := range allRoles {
		c.Tokens = append(c.Tokens, TokenPrincipal{Principal: "t-" + string(r), SHA256: tokenHash("secret-" + string(r)), Roles: []Role{r}})
		c.Certificates = append(c.Certificates, CertPrincipal{Principal: "c-" + string(r), CommonName: "cn-" + string(r), Roles: []Role{r}})
	}
	return c
}

// rpcCase calls one RPC (or one variant of Resolve) with a request that passes validation.
type rpcCase struct {
	name   string
	method string
	open   bool // no credentials needed (health)
	role   Role // the role needed; "" with open false: any authenticated caller
	call   func(ctx context.Context, conn *grpc.ClientConn) error
}

func erasureName() string { return "erasures/" + uuid.NewString() }

func rpcCases() []rpcCase {
	svc := func(conn *grpc.ClientConn) erasurev1.ErasureServiceClient {
		return erasurev1.NewErasureServiceClient(conn)
	}
	return []rpcCase{
		{"Submit", erasurev1.ErasureService_Submit_FullMethodName, false, RoleSubmitter, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).Submit(ctx, &erasurev1.SubmitRequest{RequestId: uuid.NewString(), AccountId: "1234", Subject: customerID("ABC-123")})
			return err
		}},
		{"Resolve/decision", erasurev1.ErasureService_Resolve_FullMethodName, false, RoleApprover, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).Resolve(ctx, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: erasureName()},
				Decision: &erasurev1.Decision{Kind: &erasurev1.Decision_Confirm{Confirm: &erasurev1.Confirm{PlanEtag: "0123456789abcdef0123"}}}})
			return err
		}},
		{"Resolve/preview", erasurev1.ErasureService_Resolve_FullMethodName, false, RoleSubmitter, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).Resolve(ctx, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Preview{
				Preview: &erasurev1.ResolvePreview{AccountId: "1234", Subject: customerID("ABC-123")}}})
			return err
		}},
		{"Resolve/read", erasurev1.ErasureService_Resolve_FullMethodName, false, RoleViewer, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).Resolve(ctx, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: erasureName()}})
			return err
		}},
		{"Status", erasurev1.ErasureService_Status_FullMethodName, false, RoleViewer, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).Status(ctx, &erasurev1.StatusRequest{Name: erasureName()})
			return err
		}},
		{"List", erasurev1.ErasureService_List_FullMethodName, false, RoleViewer, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).List(ctx, &erasurev1.ListRequest{AccountId: "1234"})
			return err
		}},
		{"Cancel", erasurev1.ErasureService_Cancel_FullMethodName, false, RoleSubmitter, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).Cancel(ctx, &erasurev1.CancelRequest{Name: erasureName()})
			return err
		}},
		{"SettleBatch", erasurev1.ErasureService_SettleBatch_FullMethodName, false, RoleOperator, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).SettleBatch(ctx, &erasurev1.SettleBatchRequest{AccountId: "1234", BatchId: 7,
				Outcome: &erasurev1.SettleBatchRequest_NotCreated{NotCreated: true}})
			return err
		}},
		{"ListAuditRecords", erasurev1.ErasureService_ListAuditRecords_FullMethodName, false, RoleAuditor, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).ListAuditRecords(ctx, &erasurev1.ListAuditRecordsRequest{})
			return err
		}},
		{"GetReceiptKeys", erasurev1.ErasureService_GetReceiptKeys_FullMethodName, false, RoleViewer, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := svc(c).GetReceiptKeys(ctx, &erasurev1.GetReceiptKeysRequest{})
			return err
		}},
		{"Watch", erasurev1.ErasureService_Watch_FullMethodName, false, RoleViewer, func(ctx context.Context, c *grpc.ClientConn) error {
			// The refusal of a stream arrives on its first Recv.
			st, err := svc(c).Watch(ctx, &erasurev1.WatchRequest{})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}},
		{"Backup", erasurev1.ErasureService_Backup_FullMethodName, false, RoleOperator, func(ctx context.Context, c *grpc.ClientConn) error {
			st, err := svc(c).Backup(ctx, &erasurev1.BackupRequest{})
			if err != nil {
				return err
			}
			for {
				if _, err := st.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		}},
		{"reflection v1", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", false, "", func(ctx context.Context, c *grpc.ClientConn) error {
			st, err := reflv1.NewServerReflectionClient(c).ServerReflectionInfo(ctx)
			if err != nil {
				return err
			}
			// A stream the server refused at once fails Send with io.EOF; its status comes from Recv.
			if err := st.Send(&reflv1.ServerReflectionRequest{MessageRequest: &reflv1.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
				return err
			}
			_, err = st.Recv()
			return err
		}},
		{"reflection v1alpha", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", false, "", func(ctx context.Context, c *grpc.ClientConn) error {
			st, err := reflv1alpha.NewServerReflectionClient(c).ServerReflectionInfo(ctx)
			if err != nil {
				return err
			}
			// A stream the server refused at once fails Send with io.EOF; its status comes from Recv.
			if err := st.Send(&reflv1alpha.ServerReflectionRequest{MessageRequest: &reflv1alpha.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
				return err
			}
			_, err = st.Recv()
			return err
		}},
		{"health", "/grpc.health.v1.Health/Check", true, "", func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}},
	}
}

// TestEveryMethodHasARole walks the service's descriptor: a method missing from the role table
// would be refused to everyone, and one missing from rpcCases would escape the table test.
func TestEveryMethodHasARole(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range rpcCases() {
		covered[c.method] = true
		acc, ok := methodRoles[c.method]
		if !ok {
			t.Errorf("%s: not in the role table", c.name)
			continue
		}
		if acc.open != c.open {
			t.Errorf("%s: open = %v in the table, the test expects %v", c.name, acc.open, c.open)
		}
		if !acc.byRequest && (len(acc.roles) != 0 || c.role != "") && (len(acc.roles) != 1 || acc.roles[0] != c.role) {
			t.Errorf("%s: roles %v in the table, the test expects %q", c.name, acc.roles, c.role)
		}
	}
	sd := erasurev1.ErasureService_ServiceDesc
	var methods []string
	for _, m := range sd.Methods {
		methods = append(methods, "/"+sd.ServiceName+"/"+m.MethodName)
	}
	for _, s := range sd.Streams {
		methods = append(methods, "/"+sd.ServiceName+"/"+s.StreamName)
	}
	for _, m := range methods {
		if _, ok := methodRoles[m]; !ok {
			t.Errorf("%s has no entry in the role table", m)
		}
		if !covered[m] {
			t.Errorf("%s is not called by the table test", m)
		}
	}
}

// TestMethodMissingFromTableIsRefused: a method nobody listed is closed, even to the anonymous
// caller of the auth-less server, who holds every role.
func TestMethodMissingFromTableIsRefused(t *testing.T) {
	s := newServer(nil, Options{})
	ctx := withCaller(context.Background(), &caller{principal: anonymous, roles: allRoles})
	err := s.authorize(ctx, "/erasure.v1.ErasureService/Unlisted", nil)
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("unlisted method: %v, want PERMISSION_DENIED", err)
	}
}

// TestAuthTable runs every RPC × {no credentials, wrong credential, wrong role, right role} ×
// {bearer token, client certificate} against a TLS server with a client CA.
func TestAuthTable(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{})
	anon := e.dial()
	stranger := e.dial(e.clientCA.clientCert(t, "cn-stranger")) // signed by the client CA, names no caller
	certConns := map[Role]*grpc.ClientConn{}
	for _, r := range allRoles {
		certConns[r] = e.dial(e.clientCA.clientCert(t, "cn-"+string(r)))
	}
	type cred struct {
		kind, name string
		conn       *grpc.ClientConn
		token      string
		want       func(c rpcCase) string // "ok", "unauthenticated", "denied", "passes" (not an auth error)
	}
	for _, c := range rpcCases() {
		right := c.role
		if right == "" {
			right = RoleViewer
		}
		creds := []cred{
			{"token", "none", anon, "", wantRefused("unauthenticated")},
			{"token", "wrong", anon, "secret-nobody", wantRefused("unauthenticated")},
			{"token", "wrong role", anon, "secret-metrics", wantRefused("denied")},
			{"token", "right role", anon, "secret-" + string(right), wantRefused("passes")},
			{"mtls", "none", anon, "", wantRefused("unauthenticated")},
			{"mtls", "wrong", stranger, "", wantRefused("unauthenticated")},
			{"mtls", "wrong role", certConns[RoleMetrics], "", wantRefused("denied")},
			{"mtls", "right role", certConns[right], "", wantRefused("passes")},
		}
		for _, cr := range creds {
			t.Run(c.name+"/"+cr.kind+"/"+cr.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(withToken(context.Background(), cr.token), 10*time.Second)
				defer cancel()
				err := c.call(ctx, cr.conn)
				checkAuthOutcome(t, c, cr.want(c), err)
			})
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, "secret-") {
		t.Errorf("a token reached the logs: %s", logs)
	}
	if !strings.Contains(e.logs.String(), `"msg":"authentication failed"`) {
		t.Errorf("authentication failures not logged")
	}
}

// wantRefused gives the expected outcome of a credential class, adjusted for open methods and
// those any authenticated caller may call.
func wantRefused(class string) func(c rpcCase) string {
	return func(c rpcCase) string {
		switch {
		case c.open:
			return "ok"
		case class == "denied" && c.role == "":
			return "passes"
		}
		return class
	}
}

func checkAuthOutcome(t *testing.T, c rpcCase, want string, err error) {
	t.Helper()
	code := status.Code(err)
	switch want {
	case "ok":
		if err != nil {
			t.Errorf("%v, want OK", err)
		}
	case "unauthenticated":
		if code != codes.Unauthenticated {
			t.Errorf("%v, want UNAUTHENTICATED", err)
		} else if r := errorReason(err); r != "UNAUTHENTICATED" {
			t.Errorf("reason %q, want UNAUTHENTICATED", r)
		}
	case "denied":
		if code != codes.PermissionDenied {
			t.Fatalf("%v, want PERMISSION_DENIED", err)
		}
		info := errorInfo(err)
		if info.GetReason() != "PERMISSION_DENIED" || info.GetMetadata()["role"] != string(c.role) {
			t.Errorf("ErrorInfo %v, want reason PERMISSION_DENIED naming role %s", info, c.role)
		}
	case "passes":
		switch code {
		case codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted:
			t.Errorf("right role refused: %v", err)
		case codes.Unavailable:
			// The service's UNAVAILABLE (no pipeline in this server) carries a reason; a
			// connection that failed does not.
			if errorReason(err) == "" {
				t.Errorf("call did not reach the service: %v", err)
			}
		}
	}
}

func errorInfo(err error) *errdetails.ErrorInfo {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// TestTokenAndCertificateMustAgree: both credentials of one principal add up; credentials of
// two principals on one call are refused.
func TestTokenAndCertificateMustAgree(t *testing.T) {
	callers := Callers{
		Tokens:       []TokenPrincipal{{Principal: "desk", SHA256: tokenHash("desk-token"), Roles: []Role{RoleViewer}}, {Principal: "other", SHA256: tokenHash("other-token"), Roles: []Role{RoleViewer}}},
		Certificates: []CertPrincipal{{Principal: "desk", CommonName: "desk", Roles: []Role{RoleOperator}}},
	}
	e := newTLSEnv(t, callers, Options{})
	conn := e.dial(e.clientCA.clientCert(t, "desk"))
	st := rpcCases()[4]
	if st.name != "Status" {
		t.Fatal("rpcCases changed order")
	}
	ctx := context.Background()
	checkAuthOutcome(t, st, "passes", st.call(withToken(ctx, "desk-token"), conn))
	// The certificate alone gives operator, not viewer: the roles of both credentials add up.
	checkAuthOutcome(t, st, "denied", st.call(ctx, conn))
	checkAuthOutcome(t, st, "unauthenticated", st.call(withToken(ctx, "other-token"), conn))
	if !strings.Contains(e.logs.String(), "name different principals") {
		t.Errorf("the mismatch is not logged: %s", e.logs.String())
	}
}

// TestPlaintextClientToTLSServerFails: the server speaks only TLS.
func TestPlaintextClientToTLSServerFails(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{})
	conn := e.dialWith(insecure.NewCredentials())
	ctx, cancel := context.WithTimeout(withToken(context.Background(), "secret-viewer"), 5*time.Second)
	defer cancel()
	_, err := erasurev1.NewErasureServiceClient(conn).List(ctx, &erasurev1.ListRequest{AccountId: "1234"})
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Errorf("plaintext call to a TLS server: %v, want it to fail at the connection", err)
	}
}

// TestTokenOverTLSWithoutClientCertificate: a client CA on the server does not shut out
// callers that authenticate with a token.
func TestTokenOverTLSWithoutClientCertificate(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{})
	ctx := withToken(context.Background(), "secret-viewer")
	if _, err := e.client().List(ctx, &erasurev1.ListRequest{AccountId: "1234"}); err != nil {
		t.Errorf("token caller without a client certificate: %v", err)
	}
}

// TestUntrustedClientCertificateFailsHandshake: a certificate the client CA did not sign does
// not get as far as a call.
func TestUntrustedClientCertificateFailsHandshake(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{})
	rogue := newCA(t, "rogue CA").clientCert(t, "cn-viewer")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.client(rogue).List(ctx, &erasurev1.ListRequest{AccountId: "1234"})
	if code := status.Code(err); code == codes.OK || code == codes.PermissionDenied {
		t.Errorf("rogue client certificate: %v, want a failed connection", err)
	}
}

// TestNewAuthRefuses lists the caller sets NewAuth must refuse, and checks Update keeps the
// old callers when it refuses.
func TestNewAuthRefuses(t *testing.T) {
	h := tokenHash("x")
	for name, c := range map[string]Callers{
		"unknown role":      {Tokens: []TokenPrincipal{{Principal: "a", SHA256: h, Roles: []Role{"admin"}}}},
		"empty principal":   {Tokens: []TokenPrincipal{{SHA256: h, Roles: []Role{RoleViewer}}}},
		"anonymous":         {Certificates: []CertPrincipal{{Principal: "anonymous", CommonName: "x"}}},
		"duplicate hash":    {Tokens: []TokenPrincipal{{Principal: "a", SHA256: h}, {Principal: "b", SHA256: h}}},
		"duplicate CN":      {Certificates: []CertPrincipal{{Principal: "a", CommonName: "x"}, {Principal: "b", CommonName: "x"}}},
		"empty common name": {Certificates: []CertPrincipal{{Principal: "a"}}},
		"no hash":           {Tokens: []TokenPrincipal{{Principal: "a"}}},
		"names differing by case": {Tokens: []TokenPrincipal{{Principal: "alice", SHA256: h}},
			Certificates: []CertPrincipal{{Principal: "Alice", CommonName: "x"}}},
		"two tokens, names differing by case": {Tokens: []TokenPrincipal{{Principal: "alice", SHA256: h}, {Principal: "ALICE", SHA256: tokenHash("y")}}},
		"Anonymous":                           {Tokens: []TokenPrincipal{{Principal: "Anonymous", SHA256: h}}},
		"trailing space":                      {Certificates: []CertPrincipal{{Principal: "alice ", CommonName: "x"}}},
		"leading space":                       {Tokens: []TokenPrincipal{{Principal: " alice", SHA256: h}}},
		"inner space":                         {Tokens: []TokenPrincipal{{Principal: "al ice", SHA256: h}}},
		"control character":                   {Tokens: []TokenPrincipal{{Principal: "alice\x7f", SHA256: h}}},
		"line separator":                      {Tokens: []TokenPrincipal{{Principal: "alice\u2028", SHA256: h}}},
		"format character":                    {Tokens: []TokenPrincipal{{Principal: "al\u200dice", SHA256: h}}},
		"decomposed accent":                   {Tokens: []TokenPrincipal{{Principal: "jose\u0301", SHA256: h}}},
		"composed accent":                     {Tokens: []TokenPrincipal{{Principal: "jos\u00e9", SHA256: h}}},
		"fullwidth letters":                   {Tokens: []TokenPrincipal{{Principal: "\uff41lice", SHA256: h}}},
		"too long":                            {Tokens: []TokenPrincipal{{Principal: strings.Repeat("a", 129), SHA256: h}}},
	} {
		if _, err := NewAuth(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// One principal may hold a token and a certificate; every allowed character passes.
	if _, err := NewAuth(Callers{Tokens: []TokenPrincipal{{Principal: "svc-A_1.x@corp:eu", SHA256: h}},
		Certificates: []CertPrincipal{{Principal: "svc-A_1.x@corp:eu", CommonName: "x"}}}); err != nil {
		t.Errorf("a principal with a token and a certificate: %v", err)
	}
	a, err := NewAuth(Callers{Tokens: []TokenPrincipal{{Principal: "a", SHA256: h, Roles: []Role{RoleMetrics}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(Callers{Tokens: []TokenPrincipal{{Principal: "", SHA256: h}}}); err == nil {
		t.Fatal("Update accepted an empty principal")
	}
	if p, roles, ok := a.Token("x"); !ok || p != "a" || len(roles) != 1 || roles[0] != RoleMetrics {
		t.Errorf("after a refused Update: Token = %q %v %v, want the old caller", p, roles, ok)
	}
	if err := a.Update(Callers{Tokens: []TokenPrincipal{{Principal: "b", SHA256: tokenHash("y")}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := a.Token("x"); ok {
		t.Error("the old token still works after Update")
	}
	if p, _, ok := a.Token("y"); !ok || p != "b" {
		t.Errorf("new token: %q %v", p, ok)
	}
	if _, _, ok := a.Token(""); ok {
		t.Error("the empty token is accepted")
	}
}

// TestCertificateLookup: only a verified chain names a caller.
func TestCertificateLookup(t *testing.T) {
	a, err := NewAuth(testCallers())
	if err != nil {
		t.Fatal(err)
	}
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "cn-metrics"}}
	if p, roles, ok := a.Certificate(&tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}); !ok || p != "c-metrics" || len(roles) != 1 || roles[0] != RoleMetrics {
		t.Errorf("verified certificate: %q %v %v", p, roles, ok)
	}
	if _, _, ok := a.Certificate(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}); ok {
		t.Error("an unverified certificate names a caller")
	}
	if _, _, ok := a.Certificate(nil); ok {
		t.Error("no connection state names a caller")
	}
}
