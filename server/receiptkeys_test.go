package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// TestGetReceiptKeys: the key handed out is the service's signing key, and its JWK and PEM
// forms read back, by a JOSE library and by x509, as the same key.
func TestGetReceiptKeys(t *testing.T) {
	h := newHarness(t, Options{})
	resp, err := h.client.GetReceiptKeys(context.Background(), &erasurev1.GetReceiptKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := service.NewKeyring("test", []byte("0123456789abcdef0123456789abcdef")) // the harness's master key
	if len(resp.GetKeys()) != 1 {
		t.Fatalf("GetReceiptKeys = %d keys, want the signing key alone", len(resp.GetKeys()))
	}
	k := resp.GetKeys()[0]
	if !bytes.Equal(k.GetPublicKey(), keys.PublicKey()) || k.GetKeyId() != keys.SigningKeyID() {
		t.Errorf("key %s, want the signing key %s", k.GetKeyId(), keys.SigningKeyID())
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(k.GetJwk())); err != nil {
		t.Fatalf("jwk %s: %v", k.GetJwk(), err)
	}
	if pub, ok := jwk.Key.(ed25519.PublicKey); !ok || !bytes.Equal(pub, keys.PublicKey()) || jwk.KeyID != k.GetKeyId() || jwk.Algorithm != "EdDSA" {
		t.Errorf("jwk %s is not the signing key with its kid and alg EdDSA", k.GetJwk())
	}
	block, _ := pem.Decode([]byte(k.GetPem()))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("pem %q is no PUBLIC KEY block", k.GetPem())
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if p, ok := pub.(ed25519.PublicKey); err != nil || !ok || !bytes.Equal(p, keys.PublicKey()) {
		t.Errorf("pem holds %T, %v; want the signing key", pub, err)
	}
}

// TestGetReceiptKeysNeedsViewer: a viewer gets the keys, by token or certificate; a caller
// without the role, or without credentials, does not.
func TestGetReceiptKeysNeedsViewer(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{})
	anon := e.dial()
	call := rpcCase{name: "GetReceiptKeys", method: erasurev1.ErasureService_GetReceiptKeys_FullMethodName, role: RoleViewer}
	for _, tt := range []struct {
		name  string
		token string
		want  string
	}{
		{"viewer token", "secret-viewer", "ok"},
		{"submitter token", "secret-submitter", "denied"},
		{"metrics token", "secret-metrics", "denied"},
		{"no token", "", "unauthenticated"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(withToken(context.Background(), tt.token), 10*time.Second)
			defer cancel()
			resp, err := erasurev1.NewErasureServiceClient(anon).GetReceiptKeys(ctx, &erasurev1.GetReceiptKeysRequest{})
			checkAuthOutcome(t, call, tt.want, err)
			if tt.want == "ok" && len(resp.GetKeys()) != 1 {
				t.Errorf("viewer got %d keys, want 1", len(resp.GetKeys()))
			}
		})
	}
	viewerCert := e.dial(e.clientCA.clientCert(t, "cn-viewer"))
	if _, err := erasurev1.NewErasureServiceClient(viewerCert).GetReceiptKeys(context.Background(), &erasurev1.GetReceiptKeysRequest{}); err != nil {
		t.Errorf("viewer by certificate: %v", err)
	}
}

// TestReceiptPayloadIsProtoJSON: the JWS payload is the receipt as the API shows it in proto3
// JSON (what grpcurl and every protobuf library print), less hash, signature and jws: the
// service writes it without the generated code, and this holds the two together.
func TestReceiptPayloadIsProtoJSON(t *testing.T) {
	at := time.Date(2026, 3, 10, 12, 0, 0, 123_456_789, time.UTC)
	rc := service.Receipt{
		Erasure: "erasures/x", AccountID: "1234", SubjectFingerprint: "fp",
		Counts: []service.TargetCount{
			{Kind: service.KindEngagement, Status: service.TargetVerified, Count: 2},
			{Kind: service.KindConversation, Status: service.TargetDone, Count: 0},
			{Kind: service.KindConsumer, Status: service.TargetNotFound, Count: 1},
			{Kind: 9, Status: 0, Count: 1}, // a kind this build has no name for, and no status
		},
		LPRequestIDs: []int64{1, 1<<53 + 1, -5}, ReceivedTime: at, CompleteTime: at.Add(time.Hour - 123_456_789 + 5_000_000),
		VerificationSummary: "2 of 2 <ok> & \"fine\"", PreviousHash: "ph", Hash: "h", Signature: "s", KeyID: "k",
		AliasFingerprints:  []string{"a1"},
		UnsearchedChannels: []service.Channel{service.ChannelChat, service.ChannelMessaging, 7},
		UnverifiableCount:  1, NotFoundCount: 2,
	}
	minimal := service.Receipt{Erasure: "erasures/y", ReceivedTime: time.Unix(1, 0), CompleteTime: time.Unix(2, 1000)}
	for name, r := range map[string]service.Receipt{"full": rc, "minimal": minimal} {
		js, err := protojson.Marshal(receiptToProto(r))
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal(js, &want); err != nil {
			t.Fatal(err)
		}
		delete(want, "hash")
		delete(want, "signature")
		delete(want, "jws")
		payload, err := service.ReceiptPayload(r)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(payload, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: payload differs from the receipt's proto3 JSON (-protojson +payload):\n%s", name, diff)
		}
	}
}

// TestReceiptPayloadSignsEveryField: every field of the API's Receipt, hash, signature and jws
// aside, is in the signed payload. It sets each field found by reflection, so a field added to
// the message but not carried into the signature (by ReceiptFromProto and ReceiptPayload)
// fails here: a receipt must not show what was not signed.
func TestReceiptPayloadSignsEveryField(t *testing.T) {
	pr := &erasurev1.Receipt{}
	fillNonZero(t, pr.ProtoReflect())
	js, err := protojson.Marshal(pr)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	unsigned := map[string]bool{"hash": true, "signature": true, "jws": true}
	for name := range unsigned {
		if _, ok := want[name]; !ok {
			t.Errorf("Receipt has no field %s: update the fields left out of the payload", name)
		}
		delete(want, name)
	}
	payload, err := service.ReceiptPayload(ReceiptFromProto(pr))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	requireFields(t, "Receipt", pr.ProtoReflect().Descriptor(), got, unsigned)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("payload of a receipt with every field set differs from its proto3 JSON (-protojson +payload):\n%s", diff)
	}
}

// requireFields requires each field of md, but those in skip, in obj, the JSON object of an md;
// fields of messages of this API are required in their first element likewise.
func requireFields(t *testing.T, path string, md protoreflect.MessageDescriptor, obj map[string]any, skip map[string]bool) {
	t.Helper()
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if skip[fd.JSONName()] {
			continue
		}
		v, ok := obj[fd.JSONName()]
		if !ok {
			t.Errorf("%s.%s is not in the signed payload", path, fd.Name())
			continue
		}
		if fd.Kind() != protoreflect.MessageKind || fd.Message().ParentFile().Package() != md.ParentFile().Package() {
			continue
		}
		if l, ok := v.([]any); ok && len(l) > 0 {
			v = l[0]
		}
		if m, ok := v.(map[string]any); ok {
			requireFields(t, path+"."+string(fd.Name()), fd.Message(), m, nil)
		} else {
			t.Errorf("%s.%s in the signed payload is %v, not an object", path, fd.Name(), v)
		}
	}
}

// fillNonZero sets every field of m to a value other than its zero value, lists to one such
// element, and fills messages within likewise.
func fillNonZero(t *testing.T, m protoreflect.Message) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			t.Fatalf("%s is a map: teach fillNonZero to fill one", fd.FullName())
		case fd.IsList():
			l := m.Mutable(fd).List()
			l.Append(nonZero(t, fd, l.NewElement))
		default:
			m.Set(fd, nonZero(t, fd, func() protoreflect.Value { return m.NewField(fd) }))
		}
	}
}

// nonZero is a value of fd's kind other than its zero value; newMessage makes an empty one of
// a message field.
func nonZero(t *testing.T, fd protoreflect.FieldDescriptor, newMessage func() protoreflect.Value) protoreflect.Value {
	t.Helper()
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(3)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(1_773_144_001) // a valid Timestamp's seconds too
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(3)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(3)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1.5)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(1.5)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(string(fd.Name()) + "-value")
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{1})
	case protoreflect.MessageKind, protoreflect.GroupKind:
		v := newMessage()
		fillNonZero(t, v.Message())
		return v
	}
	t.Fatalf("%s: no non-zero value for kind %s", fd.FullName(), fd.Kind())
	return protoreflect.Value{}
}
